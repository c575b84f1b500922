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

At run time a landmark follows the blendshapes of the avatar template's face vertex nearest to
its position, so the table serves every ``face_levels``. The actor's neutral face is matched at
the start of a drive (``fit``), so the table need not fit any one person exactly.

Written by hand: the lifting and triangulation (a few lines); the solver is scipy's, the landmarks dlib's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arc2avatar.errors import InputError
from arc2avatar.head.model import HeadModel

TABLE_FILE = Path(__file__).with_name("builtin_landmarks.json")
NUM_LANDMARKS = 68
JAW_CONTOUR = tuple(range(17))  # iBUG 300-W: jaw line
RIGHT_BROW, LEFT_BROW = tuple(range(17, 22)), tuple(range(22, 27))  # image-left brow first
EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT = tuple(range(36, 42)), tuple(range(42, 48))
INNER_MOUTH = tuple(range(60, 68))


@dataclass(frozen=True)
class CalibrationConfig:
    """How ``calibrate_builtin_landmarks`` places dlib's landmarks on the template.

    Attributes:
        size: square render size, pixels.
        radius: camera distance of the renders, world units (the face ≈ 150 px wide).
        face_levels: template face subdivision levels of the textured target.
        yaws_deg, pitches_deg: the head poses rendered (every combination), degrees.
        pick_radius_px: frontal lifting: candidate vertices lie within this distance, pixels.
    """

    size: int = 384
    radius: float = 3.2
    face_levels: int = 1
    yaws_deg: tuple[float, ...] = (-24.0, -12.0, 0.0, 12.0, 24.0)
    pitches_deg: tuple[float, ...] = (-12.0, 0.0, 12.0)
    pick_radius_px: float = 3.0


def load_landmark_table(path: Path = TABLE_FILE) -> dict:
    """The stored table: ``{"template": "builtin-v1", "positions": [[x, y, z] × 68], ...}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if len(data["positions"]) != NUM_LANDMARKS:
        raise ValueError(f"{path}: expected {NUM_LANDMARKS} landmark positions")
    return data


def landmark_vertices(head: HeadModel, positions_l3: np.ndarray) -> np.ndarray:
    """(68,) int64: the face vertex of ``head`` nearest to each stored neutral position."""
    vertices = head.vertices.detach().cpu().double().numpy()
    face = np.flatnonzero(head.face_mask.cpu().numpy())
    distance = np.linalg.norm(vertices[face][None, :, :] - np.asarray(positions_l3)[:, None, :], axis=-1)
    return face[distance.argmin(axis=1)].astype(np.int64)


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
    from arc2avatar.cameras.model import project_points
    from arc2avatar.pipeline.oracle import _vertex_normals

    vertices = head.vertices.float()
    pixels, depth = project_points(camera, vertices)
    pixels, depth = pixels[0].double().numpy() - 0.5, depth[0].double().numpy()  # to pixel indices
    centre = camera.viewmats[0].inverse()[:3, 3]
    facing = ((_vertex_normals(vertices, head.faces) * (centre - vertices)).sum(-1) > 0).numpy()
    candidates = np.flatnonzero(facing & head.face_mask.numpy())
    out = np.empty(NUM_LANDMARKS, dtype=np.int64)
    for i, point in enumerate(np.asarray(landmarks_682, dtype=np.float64)):
        distance = np.linalg.norm(pixels[candidates] - point, axis=-1)
        near = candidates[distance <= pick_radius_px]
        out[i] = near[depth[near].argmin()] if near.size else candidates[distance.argmin()]
    return out


def calibrate_builtin_landmarks(config: CalibrationConfig = CalibrationConfig()) -> dict:
    """Re-derive the stored table (see the module docstring); returns the JSON-ready dict."""
    from scipy.optimize import least_squares

    from arc2avatar.avatar.pose import HeadPose
    from arc2avatar.drive.fit import DriveCamera, FitConfig
    from arc2avatar.drive.testing import (
        render_textured_driver,
    )
    from arc2avatar.evaluate.testing import grace_hopper_photo
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.pipeline.config import TemplateConfig
    from arc2avatar.pipeline.expressions import ExpressionSequence
    from arc2avatar.pipeline.oracle import frontal_camera
    from arc2avatar.pipeline.template import build_head

    photo = grace_hopper_photo()
    detector = DlibFaceDetector()
    keypoints = detector.largest_face(photo).keypoints
    poses = [(yaw, pitch) for pitch in config.pitches_deg for yaw in config.yaws_deg]
    table = np.zeros((len(poses), 7))
    table[:, 0], table[:, 1], table[:, 6] = [p[0] for p in poses], [p[1] for p in poses], 1.0
    sequence = ExpressionSequence(30.0, (), torch.zeros(len(poses), 0), torch.from_numpy(table).float())
    frames = render_textured_driver(photo, keypoints, sequence, config.size, config.radius, config.face_levels)
    camera = DriveCamera(config.size, config.size, FitConfig(radius=config.radius))
    views: list[tuple[np.ndarray, np.ndarray]] = []  # (rotation, landmarks) per view with a face
    for frame, row in zip(frames, table):
        faces = detector.detect(frame)
        if faces:
            views.append((HeadPose.from_vector(row).rotation_matrix(), detector.landmarks_68(frame, faces[0].box)))
    head = build_head(TemplateConfig(face_levels=config.face_levels, rest_levels=0)).upsampled.head
    frontal = [lm for (rotation, lm), row in zip(views, table) if np.allclose(rotation, np.eye(3))]
    start = head.vertices[torch.from_numpy(lift_landmarks(head, frontal[0], frontal_camera(config.size, config.radius),
                                                          config.pick_radius_px))].double().numpy()
    positions = np.empty_like(start)
    for i in range(NUM_LANDMARKS):
        def residuals(point: np.ndarray, i: int = i) -> np.ndarray:
            return np.concatenate([camera.project((rotation @ point)[None])[0][0] - lm[i] for rotation, lm in views])

        positions[i] = least_squares(residuals, start[i]).x
    return {"template": head.name, "scheme": "iBUG 300-W 68 points (dlib shape_predictor_68_face_landmarks)",
            "recipe": "arc2avatar.drive.landmarks.calibrate_builtin_landmarks",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
            "views_used": len(views),
            "positions": [[round(float(v), 6) for v in p] for p in positions]}


__all__ = [
    "EYE_IMAGE_LEFT",
    "EYE_IMAGE_RIGHT",
    "INNER_MOUTH",
    "JAW_CONTOUR",
    "LEFT_BROW",
    "NUM_LANDMARKS",
    "RIGHT_BROW",
    "TABLE_FILE",
    "CalibrationConfig",
    "calibrate_builtin_landmarks",
    "landmark_vertices",
    "lift_landmarks",
    "load_landmark_table",
    "template_landmarks",
]
