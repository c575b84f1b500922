"""The 68 iBUG 300-W landmarks on the built-in head: where each one sits on the template.

Fitting a face video needs, for each of dlib's 68 points, the template point it corresponds to
(docs/driving.md). For the built-in template ``builtin-v1`` these were measured once and are
stored in ``builtin_landmarks.json`` (beside this module) as neutral world positions;
``calibrate_builtin_landmarks`` is the recipe that wrote it:

1. the built-in template is painted with matplotlib's Grace Hopper portrait, projected onto the
   face by her five landmarks (the photo-textured oracle target, ``pipeline.oracle.default_target``;
   a different person from the astronaut of the closed-loop test) and rendered at 15 known head
   poses (yaw ±24°, pitch ±12°);
2. dlib's 68-point predictor finds the landmarks in every render;
3. each landmark's 3D position is the least-squares triangulation over the views (started from
   the face vertex it lies on in the frontal view): the point that best explains where dlib puts
   it, including dlib's own habits (the jaw contour sliding along the silhouette, the nose).
4. the RMS distance, over the views, between where dlib put each landmark and where its
   triangulated point projects (``residual_px``, pixels at 384²) says how consistently dlib
   places it on one point of the face: ≈ 2 px for the lips and eye corners, 4–14 px for the jaw
   contour (which slides). The fit weights landmarks by it (``fit.landmark_weights``).

At run time a landmark follows the blendshapes of the avatar template's face vertex nearest to
its position, so the table serves every ``face_levels``. The actor's neutral face is matched at
the start of a drive (``fit``), so the table need not fit any one person exactly.

Written by hand: the lifting and triangulation (a few lines); the solver is scipy's, the landmarks dlib's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.head.model import HeadModel, vertex_normals
from arc2avatar.cameras.model import project_points

TABLE_FILE = Path(__file__).with_name("builtin_landmarks.json")
NUM_LANDMARKS = 68
JAW_CONTOUR = tuple(range(17))  # iBUG 300-W: jaw line
RIGHT_BROW, LEFT_BROW = tuple(range(17, 22)), tuple(range(22, 27))  # image-left brow first
EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT = tuple(range(36, 42)), tuple(range(42, 48))
INNER_MOUTH = tuple(range(60, 68))
LIP_SEAM = (61, 62, 63, 65, 66, 67)  # inner lip points but the corners: where the two lips part
MOUTH_CORNERS = (48, 54, 60, 64)  # outer and inner corners: where the lip contours meet


def load_landmark_table(path: Path = TABLE_FILE) -> dict:
    """The stored table: ``{"template": "builtin-v1", "positions": [[x, y, z] × 68], ...}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if len(data["positions"]) != NUM_LANDMARKS:
        raise ValueError(f"{path}: expected {NUM_LANDMARKS} landmark positions")
    return data


def landmark_vertices(head: HeadModel, positions_l3: np.ndarray) -> np.ndarray:
    """(68,) int64: the face vertex of ``head`` nearest to each stored neutral position (on the
    visible skin: not on the inside of the mouth, nor on the lip seam that rolls into it)."""
    vertices = head.vertices.detach().cpu().double().numpy()
    on_skin = head.face_mask.cpu().numpy().copy()
    if "mouth_interior" in head.regions:  # landmarks lie on the visible skin: not on the teeth,
        on_skin &= ~head.regions["mouth_interior"].cpu().numpy()
    if "off_lip_seam" in head.regions:  # nor on the seam that rolls into the mouth as it opens
        on_skin &= head.regions["off_lip_seam"].cpu().numpy()
    if "eyelids" in head.regions:  # nor on the lid shells, hidden inside the eyes until a blink
        on_skin &= ~head.regions["eyelids"].cpu().numpy()
    face = np.flatnonzero(on_skin)
    distance = np.linalg.norm(vertices[face][None, :, :] - np.asarray(positions_l3)[:, None, :], axis=-1)
    return face[distance.argmin(axis=1)].astype(np.int64)


def landmark_residuals(path: Path = TABLE_FILE) -> np.ndarray | None:
    """(68,) the table's ``residual_px`` (step 4 above), or None for a table without them."""
    values = load_landmark_table(path).get("residual_px")
    return None if values is None else np.asarray(values, dtype=np.float64)


def template_landmarks(head: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """(68, 3) neutral landmark positions on ``head`` and (68,) the face vertex nearest to each
    (whose blendshape displacements the landmark follows). Built-in templates only."""
    if not head.name.startswith("builtin"):
        raise InputError(f"driving an avatar made on {head.name} is not supported yet: only the built-in template "
                         "has 68-landmark correspondences (docs/driving.md)")
    positions = np.asarray(load_landmark_table()["positions"], dtype=np.float64)
    return positions, landmark_vertices(head, positions)


def lift_landmarks(head: HeadModel, landmarks_682: np.ndarray, camera, pick_radius_px: float) -> np.ndarray:
    """(68,) vertex indices: each image landmark (pixel indices) lifted to the nearest front-facing
    face vertex of ``head`` seen by ``camera`` (one ``Cameras``), the closest to the camera among
    those within ``pick_radius_px``."""
    vertices = head.vertices.float()
    pixels, depth = project_points(camera, vertices)
    pixels, depth = pixels[0].double().numpy() - 0.5, depth[0].double().numpy()  # to pixel indices
    centre = camera.viewmats[0].inverse()[:3, 3]
    facing = ((vertex_normals(vertices, head.faces) * (centre - vertices)).sum(-1) > 0).numpy()
    candidates = np.flatnonzero(facing & head.face_mask.numpy())
    out = np.empty(NUM_LANDMARKS, dtype=np.int64)
    for i, point in enumerate(np.asarray(landmarks_682, dtype=np.float64)):
        distance = np.linalg.norm(pixels[candidates] - point, axis=-1)
        near = candidates[distance <= pick_radius_px]
        out[i] = near[depth[near].argmin()] if near.size else candidates[distance.argmin()]
    return out


__all__ = [
    "EYE_IMAGE_LEFT",
    "EYE_IMAGE_RIGHT",
    "INNER_MOUTH",
    "LIP_SEAM",
    "JAW_CONTOUR",
    "LEFT_BROW",
    "MOUTH_CORNERS",
    "NUM_LANDMARKS",
    "RIGHT_BROW",
    "TABLE_FILE",
    "landmark_residuals",
    "landmark_vertices",
    "lift_landmarks",
    "load_landmark_table",
    "template_landmarks",
]
