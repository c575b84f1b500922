"""5-point similarity alignment onto the ArcFace template, 112×112 crop (docs/method.md §1).

Written by hand (numpy): the least-squares similarity fit (Umeyama 1991, the estimator behind
insightface's ``norm_crop`` via scikit-image's ``SimilarityTransform``; equal to it within 1e-4
here), to keep scikit-image out of the runtime dependencies. The warp is OpenCV's
``cv2.warpAffine`` (bilinear, black border), the call ``norm_crop`` makes: its fixed-point
interpolation differs from a float warp (Pillow's) by up to a hundred grey levels at edges
under strong scaling, and the ArcFace network was fed ``norm_crop``'s crops
(tests/test_parity.py holds ours to within one grey level of ``norm_crop``).

Coordinates: pixel-index convention, pixel (row i, column j) centred at (x=j, y=i), as OpenCV
and insightface use (the ArcFace template is in that convention), so the matrix goes to
``warpAffine`` unchanged.
"""

from __future__ import annotations

import numpy as np

# The standard ArcFace 5-point template for a 112×112 crop (x, y; "left" as seen in the
# image): left eye, right eye, nose tip, left / right mouth corner (docs/method.md §1). THE one place.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_CROP_SIZE = 112


def estimate_similarity(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", TPAMI 1991, eq. 40–42 (reflections excluded).

    Args:
        src_xy: (N, 2) points, N ≥ 2.
        dst_xy: (N, 2) corresponding points.

    Returns:
        (3, 3) float64 homogeneous matrix M with dst ≈ M @ [x, y, 1].
    """
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)                     # (2, 2)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    src_var = (src_c ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sing) @ sign) / src_var) if src_var > 0 else 1.0
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def alignment_matrix(keypoints_xy: np.ndarray,
                     template_xy: np.ndarray = ARCFACE_TEMPLATE_112) -> np.ndarray:
    """(3, 3) similarity taking image keypoints (5, 2) onto the template (pixel-index coords)."""
    return estimate_similarity(keypoints_xy, template_xy)


def warp_face(image_rgb: np.ndarray, matrix: np.ndarray,
              size: int = ARCFACE_CROP_SIZE) -> np.ndarray:
    """Warp an image with ``matrix`` (image -> crop, pixel-index coords) into a size² crop.

    Bilinear sampling, black outside the image (``cv2.warpAffine`` with border 0, as ``norm_crop``).

    Args:
        image_rgb: (H, W, 3) uint8.
        matrix: (3, 3) similarity from ``alignment_matrix``.
        size: crop side in pixels.

    Returns:
        (size, size, 3) uint8 crop.
    """
    import cv2  # opencv-python-headless, a core dependency (the reference warp, module docstring)

    crop = cv2.warpAffine(np.ascontiguousarray(image_rgb), np.asarray(matrix, np.float64)[:2], (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.asarray(crop, dtype=np.uint8)


def align_face(image_rgb: np.ndarray, keypoints_xy: np.ndarray,
               size: int = ARCFACE_CROP_SIZE) -> np.ndarray:
    """ArcFace crop of a face: (H, W, 3) uint8 + its (5, 2) keypoints -> (112, 112, 3) uint8."""
    template = ARCFACE_TEMPLATE_112 * (size / ARCFACE_CROP_SIZE)
    return warp_face(image_rgb, alignment_matrix(keypoints_xy, template), size)
