"""A synthetic FLAME model for tests and benchmarks: random but valid arrays with FLAME's real
counts (the real model is user-supplied and never ships here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from arc2avatar.head.flame import DerivedMaskConfig, FlameConfig, derive_flame_masks, flame_head
from arc2avatar.head.frame import to_world_frame

SKIN_LONGITUDES, SKIN_RINGS, SKIN_POLAR_MAX_DEG = 60, 74, 150.0  # the synthetic skin's grid (4441 vertices)


@dataclass(frozen=True)
class SyntheticMouth:
    """The mouth slit of ``synthetic_flame_arrays(mouth=True)`` (FLAME's frame, metres).

    Attributes:
        upper_ring: the skin ring of the upper lip's edge (the lower lip's is the next ring down:
            polar angles 91.2° and 93.2°, ≈ 0.4 cm below the head's centre).
        half_columns: grid columns on each side of the midline the slit spans (6° each: the mouth
            ≈ 4.9 cm wide).
        cheek_slope: beyond the mouth corners the jaw's weight changes from 0 to 1 over a band
            this many times as tall as the distance from the corner (the skin stretches smoothly).
        front: (start, full) FLAME z where the jaw's weight rises from 0 to 1 toward the face.
        chin_fade: world units over which the jaw's weight fades out above the bottom of the
            derived face region (the rig moves face splats only: the jaw stays inside the face).
        nose_y, nose_radius_y: height and vertical radius of the nose bump (above the mouth).
    """

    upper_ring: int = 44
    half_columns: int = 3
    cheek_slope: float = 2.0
    front: tuple[float, float] = (0.035, 0.065)
    chin_fade: float = 0.12
    nose_y: float = 0.018
    nose_radius_y: float = 0.01


def _open_mouth(faces: np.ndarray, mouth: SyntheticMouth) -> np.ndarray:
    """The skin's triangles with the slit's cells removed and as many triangles added as a fan
    across the neck opening (FLAME's counts kept). Cells are in ``uv_sphere``'s face order."""
    n_lon, n_lat = SKIN_LONGITUDES, SKIN_RINGS
    columns = np.arange(-mouth.half_columns, mouth.half_columns) % n_lon
    first = n_lon + mouth.upper_ring * n_lon + columns
    removed = np.concatenate([first, first + (n_lat - 1) * n_lon])
    keep = np.ones(len(faces), dtype=bool)
    keep[removed] = False
    neck = 1 + (n_lat - 1) * n_lon + np.arange(len(removed) + 2)  # consecutive vertices of the last ring
    fan = np.stack([np.full(len(removed), neck[0]), neck[2:], neck[1:-1]], axis=1)  # facing down, out of the neck
    return np.concatenate([faces[keep], fan])


def _mouth_jaw_weight(skin: np.ndarray, faces: np.ndarray, mouth: SyntheticMouth) -> np.ndarray:
    """The jaw's weight on the skin of the mouth variant: 1 below the slit, 0 above it, fading
    over the cheeks beyond the corners, toward the back and above the bottom of the derived face
    region, 0 off it (FLAME's frame: y up, z forward)."""
    upper_lip = 1 + mouth.upper_ring * SKIN_LONGITUDES  # the ring's first vertex (on the midline)
    mouth_y = 0.5 * (skin[upper_lip, 1] + skin[upper_lip + SKIN_LONGITUDES, 1])
    corner_x = abs(skin[upper_lip + mouth.half_columns, 0])
    band = mouth.cheek_slope * np.maximum(np.abs(skin[:, 0]) - corner_x, 0.0) + 1e-9
    below = np.clip(0.5 + (mouth_y - skin[:, 1]) / (2.0 * band), 0.0, 1.0)
    start, full = mouth.front
    world, _ = to_world_frame(torch.from_numpy(skin))
    rule = DerivedMaskConfig()
    face = derive_flame_masks(world.numpy(), faces, rule)["face"]
    chin = np.clip((world[:, 2].numpy() - rule.face_z_band[0]) / mouth.chin_fade, 0.0, 1.0)
    return below * np.clip((skin[:, 2] - start) / (full - start), 0.0, 1.0) * chin * face


def uv_sphere(n_lon: int, n_lat: int, polar_max: float, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit-sphere grid in FLAME's frame (pole on +y): top pole, ``n_lat`` rings of ``n_lon``
    vertices down to polar angle ``polar_max`` (radians), and a bottom pole when ``closed``.
    Triangles are counter-clockwise seen from outside."""
    polar = np.linspace(0.0, polar_max, n_lat + 1)[1:] if not closed else np.linspace(0.0, np.pi, n_lat + 2)[1:-1]
    lon = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    sin_p, cos_p = np.sin(polar)[:, None], np.cos(polar)[:, None]
    ring = np.stack([sin_p * np.sin(lon)[None], np.repeat(cos_p, n_lon, 1), sin_p * np.cos(lon)[None]], axis=-1)
    ring = ring.reshape(-1, 3)
    vertices = [np.array([[0.0, 1.0, 0.0]]), ring]
    grid = 1 + np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    nxt = np.roll(grid, -1, axis=1)
    faces = [np.stack([np.zeros(n_lon, np.int64), grid[0], nxt[0]], axis=1)]
    upper, upper_next, lower, lower_next = grid[:-1], nxt[:-1], grid[1:], nxt[1:]
    faces.append(np.stack([upper, lower, lower_next], -1).reshape(-1, 3))
    faces.append(np.stack([upper, lower_next, upper_next], -1).reshape(-1, 3))
    if closed:
        bottom = 1 + n_lat * n_lon
        vertices.append(np.array([[0.0, -1.0, 0.0]]))
        faces.append(np.stack([np.full(n_lon, bottom), nxt[-1], grid[-1]], axis=1))
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int64)


def synthetic_flame_arrays(seed: int = 0, config: FlameConfig = FlameConfig(), mouth: bool = False) -> dict[str, np.ndarray]:
    """Random but valid FLAME arrays with the real counts (5023 v, 9976 f, 5 joints, 400 comps).

    The geometry is an ellipsoidal head (open at the neck, 4441 vertices, nose bump toward +z) and
    two eyeballs (291 vertices each) in FLAME's frame (metres, y up, face toward +z). Skinning:
    eyeballs follow their eye joints; the lower front follows the jaw; the lowest rings the neck;
    the rest the root. Pose correctives respond to the jaw only, on jaw-weighted vertices. For tests and
    benchmarks; it is no likeness of FLAME.

    ``mouth``: the lips part as FLAME's do: an open slit (``SyntheticMouth``) between the upper
    lip, which stays with the skull, and the lower lip, which follows the jaw fully; the jaw's
    weight fades out sideways from the mouth corners over the cheeks. The counts stay FLAME's: the
    slit's triangles are moved to a fan across part of the neck opening.
    """
    rng = np.random.default_rng(seed)
    skin, skin_faces = uv_sphere(SKIN_LONGITUDES, SKIN_RINGS, np.deg2rad(SKIN_POLAR_MAX_DEG), closed=False)
    if mouth:
        skin_faces = _open_mouth(skin_faces, SyntheticMouth())
    skin = skin * np.array([0.08, 0.12, 0.10])
    nose_y, nose_radius_y = (SyntheticMouth().nose_y, SyntheticMouth().nose_radius_y) if mouth else (0.0, 0.02)
    skin[:, 2] += 0.025 * np.exp(-((skin[:, 0] / 0.012) ** 2 + ((skin[:, 1] - nose_y) / nose_radius_y) ** 2)) * (skin[:, 2] > 0)
    eye, eye_faces = uv_sphere(17, 17, np.pi, closed=True)
    parts, faces, offset = [skin], [skin_faces], skin.shape[0]
    for side in (1.0, -1.0):  # FLAME's left eye sits at +x
        parts.append(eye * 0.012 + np.array([0.03 * side, 0.03, 0.085]))
        faces.append(eye_faces + offset)
        offset += eye.shape[0]
    v_template = np.concatenate(parts)
    f = np.concatenate(faces)
    V, J = v_template.shape[0], config.num_joints
    num_skin, num_eye = skin.shape[0], eye.shape[0]
    y, z = v_template[:, 1], v_template[:, 2]
    weights = np.zeros((V, J))
    jaw = np.clip((-0.02 - y) / 0.03, 0.0, 1.0) * np.clip((z - 0.02) / 0.03, 0.0, 1.0)
    if mouth:
        jaw[:num_skin] = _mouth_jaw_weight(skin, skin_faces, SyntheticMouth())
    neck = np.clip((-0.07 - y) / 0.03, 0.0, 1.0) * (1.0 - jaw)
    jaw[num_skin:] = 0.0
    neck[num_skin:] = 0.0
    weights[:, 2], weights[:, 1] = jaw, neck
    weights[:, 0] = 1.0 - jaw - neck
    weights[num_skin : num_skin + num_eye] = np.eye(J)[3]
    weights[num_skin + num_eye :] = np.eye(J)[4]
    regressor = np.zeros((J, V))
    regions = [
        np.arange(num_skin),
        np.flatnonzero(y < -0.09),
        np.flatnonzero((np.abs(y + 0.03) < 0.01) & (np.abs(z) < 0.02)),
        np.arange(num_skin, num_skin + num_eye),
        np.arange(num_skin + num_eye, V),
    ]
    for joint, members in enumerate(regions):
        regressor[joint, members] = 1.0 / members.size
    posedirs = np.zeros((V, 3, 9 * (J - 1)))
    jaw_block = slice(9 * (2 - 1), 9 * 2)  # features of joint 2 (the jaw) in vec(R_1..R_4 − I)
    posedirs[:, :, jaw_block] = rng.normal(0.0, 1e-3, (V, 3, 9)) * jaw[:, None, None]
    num_components = config.num_shape + config.num_expressions
    shapedirs = rng.normal(0.0, 1e-3, (V, 3, num_components)).astype(np.float32)
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
    return {
        "v_template": v_template,
        "f": f.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
    }


def synthetic_flame_head(seed: int = 0, mouth: bool = False, config: FlameConfig = FlameConfig()):
    """The synthetic FLAME as a ``HeadModel`` (``head.flame.flame_head``), its kinematic tree's
    root sentinel set as ``read_flame_arrays`` sets a file's; ``mouth`` as in ``synthetic_flame_arrays``."""
    arrays = synthetic_flame_arrays(seed=seed, mouth=mouth)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    arrays["kintree_table"][0, 0] = -1
    return flame_head(arrays, name="synthetic-flame", config=config)

