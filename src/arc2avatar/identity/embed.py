"""Photos -> one identity embedding (docs/method.md §1; docs/official-code.md §1.1).

Per photo: decode (``image.py``), detect faces (``detect.py``), keep the largest, align its 5
keypoints to the ArcFace template (``align.py``), embed (``arcface.py``). Identity vector =
normalise(mean_i(normalise(e_i))) in float32. Photos without a face are skipped with a warning;
no face in any photo is an ``InputError`` naming them. All photos are decoded BEFORE any model
is loaded, so a bad file fails in a second.

Written by hand: only this orchestration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from arc2avatar.errors import InputError, MissingWeightsError
from arc2avatar.identity.align import align_face
from arc2avatar.identity.arcface import ArcFaceEmbedder
from arc2avatar.identity.detect import ScrfdConfig, ScrfdDetector, largest_face
from arc2avatar.identity.image import ImageLimits, Photo, load_image
from arc2avatar.weights.layout import WeightsPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoFaces:
    """What one photo contributed.

    Attributes:
        path: the photo.
        faces_found: number of faces detected (after NMS).
        chosen_box: (4,) float32 x1, y1, x2, y2 of the face used (the largest), or ``None``.
        score: its detection score, or ``None``.
    """

    path: Path
    faces_found: int
    chosen_box: np.ndarray | None
    score: float | None


@dataclass(frozen=True)
class IdentityEmbedding:
    """The identity condition of Arc2Face (docs/method.md §1).

    Attributes:
        vector: (512,) float32, unit L2 norm: normalise(mean(normalise(e_i))).
        per_photo: one ``PhotoFaces`` per input photo, in input order.
    """

    vector: np.ndarray
    per_photo: list[PhotoFaces] = field(default_factory=list)

    @property
    def photos_used(self) -> list[Path]:
        return [p.path for p in self.per_photo if p.chosen_box is not None]


def l2_normalise(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit-length rows (float32); a zero vector stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norm = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return vectors / np.maximum(norm, np.finfo(np.float32).tiny)


def combine_embeddings(raw_embeddings: np.ndarray) -> np.ndarray:
    """(N, 512) raw ArcFace vectors -> (512,) float32 normalise(mean(normalise(e_i)))."""
    return l2_normalise(l2_normalise(raw_embeddings).mean(axis=0))


def embed_photos(paths: Sequence[str | Path | Photo], weights: WeightsPaths,
                 det_size: int = ScrfdConfig.det_size,
                 limits: ImageLimits | None = None) -> IdentityEmbedding:
    """ArcFace identity embedding of the person in ``paths``.

    Args:
        paths: one or more photos of the same person (files, or ``Photo`` s already decoded).
        weights: needs ``scrfd_onnx`` and ``arcface_onnx`` (``resolve_weights(config,
            {"identity", "detector"})``).
        det_size: SCRFD input size in pixels (docs/method.md §1: 640).
        limits: photo decoding limits.

    Returns:
        ``IdentityEmbedding`` (unit 512-d vector + what each photo contributed).

    Raises:
        InputError: a photo cannot be read (raised before any model loads), or no photo shows
            a face (the message names them).
        MissingWeightsError: ``weights`` lacks the detector or the recogniser.
    """
    given = list(paths)
    paths = [p.path if isinstance(p, Photo) else Path(p) for p in given]
    if not paths:
        raise InputError("no photo given")
    missing = [name for name, value in (("scrfd_onnx", weights.scrfd_onnx),
                                        ("arcface_onnx", weights.arcface_onnx)) if value is None]
    if missing:
        raise MissingWeightsError(f"identity embedding needs {', '.join(missing)}; resolve "
                                  "weights with need={'identity', 'detector'}")
    limits = limits or ImageLimits()
    images = [p.pixels if isinstance(p, Photo) else load_image(p, limits.max_side, limits) for p in given]  # all decoded first

    detector = ScrfdDetector(weights.scrfd_onnx, det_size=det_size)
    embedder = ArcFaceEmbedder(weights.arcface_onnx)
    per_photo: list[PhotoFaces] = []
    crops: list[np.ndarray] = []
    for path, image in zip(paths, images):
        faces = detector.detect(image)
        face = largest_face(faces)
        if face is None:
            log.warning("no face found in %s; skipping it", path)
            per_photo.append(PhotoFaces(path, 0, None, None))
            continue
        if len(faces) > 1:
            log.info("%d faces in %s; using the largest (box %s, score %.2f)", len(faces), path,
                     np.round(face.box).astype(int).tolist(), face.score)
        per_photo.append(PhotoFaces(path, len(faces), face.box, face.score))
        crops.append(align_face(image, face.keypoints))
    if not crops:
        raise InputError("no face found in any photo: " + ", ".join(str(p) for p in paths)
                         + ". Use a photo where the face is clearly visible, frontal-ish, with "
                           "some margin around the head (tightly cropped faces are missed).")
    raw = embedder.embed(np.stack(crops))
    return IdentityEmbedding(combine_embeddings(raw), per_photo)
