"""The 68 iBUG 300-W landmarks on the built-in head: where each one sits on the template.

Fitting a face video needs, for each of dlib's 68 points, the template point it corresponds to
(docs/driving.md). For the built-in template ``builtin-v1`` these were found once by lifting dlib's
own landmarks off a frontal render and are stored in ``builtin_landmarks.json`` (beside this
module), as neutral world positions; ``calibrate_builtin_landmarks`` is the recipe that wrote it:

1. the built-in template at ``face_levels=1`` is painted with scikit-image's astronaut photo,
   projected onto the face by her five landmarks (the photo-textured oracle target of
   ``pipeline.oracle.default_target``) and rendered as splats from the frontal evaluation camera;
2. dlib's 68-point predictor finds the landmarks in that render;
3. each landmark becomes the front-facing face vertex nearest to it in the image (among the
   vertices within ``pick_radius_px``, the closest to the camera).

At run time each stored position picks the nearest face vertex of the avatar's own (upsampled)
template, so the table serves every ``face_levels``. The actor's neutral face is matched at the
start of a drive (``fit.neutral_offsets``), so the table need not fit any one person exactly.
The jaw contour (points 0–16) follows the face's silhouette in turned views rather than fixed
skin points; the fit gives it a lower weight (``FitConfig.contour_weight``).

Written by hand: the lifting (a few lines of projection); the landmarks are dlib's.
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
JAW_CONTOUR = tuple(range(0, 17))  # iBUG 300-W: jaw line
RIGHT_BROW, LEFT_BROW = tuple(range(17, 22)), tuple(range(22, 27))  # image-left brow first
EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT = tuple(range(36, 42)), tuple(range(42, 48))
INNER_MOUTH = tuple(range(60, 68))


@dataclass(frozen=True)
class CalibrationConfig:
    """How ``calibrate_builtin_landmarks`` lifts dlib's landmarks onto the template.

    Attributes:
        size: square render size, pixels.
        face_levels: template face subdivision levels of the render.
        pick_radius_px: candidate vertices lie within this distance of a landmark, pixels.
    """

    size: int = 512
    face_levels: int = 1
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


def template_landmark_vertices(head: HeadModel) -> np.ndarray:
    """(68,) vertex indices of the landmarks on ``head`` (built-in templates only)."""
    if not head.name.startswith("builtin"):
        raise InputError(f"driving an avatar made on {head.name} is not supported yet: only the built-in template "
                         "has 68-landmark correspondences (docs/driving.md)")
    return landmark_vertices(head, np.asarray(load_landmark_table()["positions"], dtype=np.float64))


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
    from arc2avatar.evaluate.testing import astronaut_photo, photo_avatar
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.pipeline.config import TemplateConfig
    from arc2avatar.pipeline.oracle import frontal_camera
    from arc2avatar.pipeline.template import build_head

    photo = astronaut_photo()
    detector = DlibFaceDetector()
    avatar = photo_avatar(photo, detector.largest_face(photo).keypoints, face_levels=config.face_levels)
    head = build_head(TemplateConfig(face_levels=config.face_levels, rest_levels=0)).upsampled.head
    camera = frontal_camera(config.size)
    image = (avatar.render_cameras(camera)[0].numpy() * 255).round().astype(np.uint8)
    faces = detector.detect(image)
    if not faces:
        raise RuntimeError("dlib found no face on the calibration render")
    landmarks = detector.landmarks_68(image, faces[0].box)
    index = lift_landmarks(head, landmarks, camera, config.pick_radius_px)
    positions = head.vertices[torch.from_numpy(index)].double().numpy()
    return {"template": head.name, "scheme": "iBUG 300-W 68 points (dlib shape_predictor_68_face_landmarks)",
            "recipe": "arc2avatar.drive.landmarks.calibrate_builtin_landmarks", "config": vars(config),
            "positions": [[round(float(v), 6) for v in p] for p in positions]}


__all__ = [
    "CalibrationConfig", "EYE_IMAGE_LEFT", "EYE_IMAGE_RIGHT", "INNER_MOUTH", "JAW_CONTOUR", "LEFT_BROW", "NUM_LANDMARKS",
    "RIGHT_BROW", "TABLE_FILE", "calibrate_builtin_landmarks", "landmark_vertices", "load_landmark_table",
    "template_landmark_vertices", "lift_landmarks",
]
