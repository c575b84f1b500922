"""How strongly a face shows an expression, read by an independent tracker (issue 24).

dlib's 68-point iBUG 300-W predictor (the one ``evaluate`` and ``drive`` use) finds the landmarks
in a render; these functions turn them into the usual measures:

* mouth aspect ratio: the mean inner-lip opening (points 61–67, 62–66, 63–65) over the
  inner-lip width (60–64); ≈ 0 with the lips closed, ≥ 0.5 for a wide-open mouth;
* eye aspect ratio (Soukupová & Čech, 2016): (|p2−p6| + |p3−p5|) / (2 |p1−p4|) per eye,
  ≈ 0.25–0.3 open, ≲ 0.1 closed;
* mouth width (outer corners 48–54), the corners' height (image y, smaller = higher) and the
  brow-to-eye distance (mean brow point to mean eye point, vertically).

Written by hand: the arithmetic on the landmarks (a few lines); the landmarks are dlib's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arc2avatar.errors import InputError
from arc2avatar.identity.dlib_faces import DlibFaceDetector

# iBUG 300-W indices (0-based). "Image-left" is the subject's right.
EYE_IMAGE_LEFT = (36, 37, 38, 39, 40, 41)
EYE_IMAGE_RIGHT = (42, 43, 44, 45, 46, 47)
BROWS = tuple(range(17, 27))
EYES = EYE_IMAGE_LEFT + EYE_IMAGE_RIGHT
MOUTH_CORNERS = (48, 54)
INNER_CORNERS = (60, 64)
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))


@dataclass(frozen=True)
class FaceMeasures:
    """What the tracker reads in one image (pixels; ratios are unitless).

    Attributes:
        mouth_aspect_ratio: inner-lip opening / inner-lip width.
        eye_aspect_ratio_image_left, eye_aspect_ratio_image_right: EAR of the eye on the image's
            left (the subject's right) and right.
        mouth_width: outer-corner distance, pixels.
        corner_heights: image y of the image-left and image-right mouth corner, pixels.
        brow_eye_distance: mean eye y − mean brow y, pixels.
        landmarks: (68, 2) the landmarks themselves.
    """

    mouth_aspect_ratio: float
    eye_aspect_ratio_image_left: float
    eye_aspect_ratio_image_right: float
    mouth_width: float
    corner_heights: tuple[float, float]
    brow_eye_distance: float
    landmarks: np.ndarray


def _distance(points: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(points[a] - points[b]))


def eye_aspect_ratio(points_682: np.ndarray, eye: tuple[int, ...]) -> float:
    """Soukupová & Čech's EAR of the six points ``eye`` (p1…p6) of ``points_682``."""
    p1, p2, p3, p4, p5, p6 = eye
    return (_distance(points_682, p2, p6) + _distance(points_682, p3, p5)) / (2.0 * _distance(points_682, p1, p4))


def mouth_aspect_ratio(points_682: np.ndarray) -> float:
    """Mean inner-lip opening over the inner-lip width."""
    opening = np.mean([_distance(points_682, a, b) for a, b in INNER_PAIRS])
    return float(opening / _distance(points_682, *INNER_CORNERS))


def measures_from_landmarks(points_682: np.ndarray) -> FaceMeasures:
    """All measures of one face's (68, 2) landmarks."""
    points = np.asarray(points_682, dtype=np.float64)
    return FaceMeasures(
        mouth_aspect_ratio=mouth_aspect_ratio(points),
        eye_aspect_ratio_image_left=eye_aspect_ratio(points, EYE_IMAGE_LEFT),
        eye_aspect_ratio_image_right=eye_aspect_ratio(points, EYE_IMAGE_RIGHT),
        mouth_width=_distance(points, *MOUTH_CORNERS),
        corner_heights=(float(points[MOUTH_CORNERS[0], 1]), float(points[MOUTH_CORNERS[1], 1])),
        brow_eye_distance=float(points[list(EYES), 1].mean() - points[list(BROWS), 1].mean()),
        landmarks=points,
    )


def measure_face(image_rgb: np.ndarray, detector=None) -> FaceMeasures:
    """The measures of the largest face dlib finds in ``image_rgb`` (H, W, 3 uint8);
    ``InputError`` when it finds none. ``detector``: a ``DlibFaceDetector`` to reuse."""
    if detector is None:
        detector = DlibFaceDetector()
    faces = detector.detect(image_rgb)
    if not faces:
        raise InputError("the tracker found no face in the image")
    return measures_from_landmarks(detector.landmarks_68(image_rgb, faces[0].box))


__all__ = ["FaceMeasures", "eye_aspect_ratio", "measure_face", "measures_from_landmarks", "mouth_aspect_ratio"]
