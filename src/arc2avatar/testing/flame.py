"""A synthetic FLAME model for tests and benchmarks: random but valid arrays with FLAME's real
counts (the real model is user-supplied and never ships here)."""

from __future__ import annotations

import numpy as np

from arc2avatar.head.flame import FlameConfig, flame_head


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


def synthetic_flame_arrays(seed: int = 0, config: FlameConfig = FlameConfig()) -> dict[str, np.ndarray]:
    """Random but valid FLAME arrays with the real counts (5023 v, 9976 f, 5 joints, 400 comps).

    The geometry is an ellipsoidal head (open at the neck, 4441 vertices, nose bump toward +z) and
    two eyeballs (291 vertices each) in FLAME's frame (metres, y up, face toward +z). Skinning:
    eyeballs follow their eye joints; the lower front follows the jaw; the lowest rings the neck;
    the rest the root. Pose correctives respond to the jaw only, on jaw-weighted vertices. For tests and
    benchmarks; it is no likeness of FLAME.
    """
    rng = np.random.default_rng(seed)
    skin, skin_faces = uv_sphere(60, 74, np.deg2rad(150.0), closed=False)
    skin = skin * np.array([0.08, 0.12, 0.10])
    skin[:, 2] += 0.025 * np.exp(-((skin[:, 0] / 0.012) ** 2 + ((skin[:, 1] - 0.0) / 0.02) ** 2)) * (skin[:, 2] > 0)
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


def synthetic_flame_head(seed: int = 0):
    """The synthetic FLAME as a ``HeadModel`` (``head.flame.flame_head``), its kinematic tree's
    root sentinel set as ``read_flame_arrays`` sets a file's."""
    arrays = synthetic_flame_arrays(seed=seed)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    arrays["kintree_table"][0, 0] = -1
    return flame_head(arrays, name="synthetic-flame")

