"""Claims about SCRFD decoding (letterbox, anchors, NMS, largest face) on the tiny SCRFD, and
about 5-point alignment onto the ArcFace template (docs/method.md §1)."""

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from arc2avatar.identity.align import (
    ARCFACE_TEMPLATE_112,
    align_face,
    alignment_matrix,
    estimate_similarity,
    warp_face,
)
from arc2avatar.identity.detect import ScrfdDetector, anchor_centres, largest_face, nms
from arc2avatar.testing.identity_weights import (
    TinyScrfdConfig,
    plant_face,
    template_keypoint_offsets,
    write_tiny_scrfd,
)

DET_SIZE = 640


@pytest.fixture(scope="module")
def tiny_scrfd(tmp_path_factory) -> Path:
    return write_tiny_scrfd(tmp_path_factory.mktemp("w") / "scrfd_10g_bnkps.onnx")


def _grey_photo(height: int, width: int) -> np.ndarray:
    """Real (non-red) photo content of any size: skimage's camera, tiled."""
    camera = data.camera()
    reps = (height // camera.shape[0] + 1, width // camera.shape[1] + 1)
    return np.ascontiguousarray(np.stack([np.tile(camera, reps)[:height, :width]] * 3, -1))


def _expected_keypoints(box: np.ndarray) -> np.ndarray:
    centre = (box[:2] + box[2:]) / 2
    half = (box[2] - box[0]) / 2
    return centre + template_keypoint_offsets(1.0).reshape(5, 2) * half


@pytest.mark.parametrize("height, width", [(960, 1280), (1280, 800)])
def test_planted_faces_are_found_in_original_pixels_and_largest_is_chosen(
        tiny_scrfd: Path, height: int, width: int):
    # Letterbox scale: the long side becomes 640. Faces are planted so that, in the letterboxed
    # canvas, they are squares of side 4·stride centred on an anchor of that stride.
    scale = DET_SIZE / max(height, width)
    image = _grey_photo(height, width)
    small = plant_face(image, (160 / scale, 160 / scale), 64 / scale)       # stride 16
    big = plant_face(image, (288 / scale, 352 / scale), 128 / scale)        # stride 32
    tiny = plant_face(image, (96 / scale, 448 / scale), 32 / scale)         # stride 8
    detector = ScrfdDetector(tiny_scrfd, det_size=DET_SIZE)
    faces = detector.detect(image)
    assert len(faces) == 3
    boxes = sorted((f.box for f in faces), key=lambda b: b[0])
    for found, planted in zip(boxes, sorted([small, big, tiny], key=lambda b: b[0])):
        assert np.abs(found - planted).max() <= 1.0 / scale + 0.5
    chosen = largest_face(faces)
    assert np.abs(chosen.box - big).max() <= 1.0 / scale + 0.5
    assert np.abs(chosen.keypoints - _expected_keypoints(chosen.box)).max() < 1e-3
    assert all(f.score > 0.9 for f in faces)


def test_image_without_face_gives_no_detection(tiny_scrfd: Path):
    assert ScrfdDetector(tiny_scrfd).detect(_grey_photo(480, 640)) == []


def test_batched_output_layout_decodes_the_same(tmp_path: Path, tiny_scrfd: Path):
    batched = write_tiny_scrfd(tmp_path / "b.onnx", TinyScrfdConfig(batched=True))
    image = _grey_photo(640, 640)
    plant_face(image, (320, 320), 64)
    plain, other = ScrfdDetector(tiny_scrfd).detect(image), ScrfdDetector(batched).detect(image)
    assert len(plain) == len(other) == 1
    assert np.array_equal(plain[0].box, other[0].box)


def test_anchor_centres_are_row_major_with_two_anchors_per_cell():
    centres = anchor_centres(2, 3, 16, 2)
    assert centres.shape == (12, 2)
    assert centres[:4].tolist() == [[0, 0], [0, 0], [16, 0], [16, 0]]
    assert centres[6].tolist() == [0, 16]


def test_nms_keeps_best_of_overlapping_boxes_and_all_disjoint_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]],
                     np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.1], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty], [0, 0, 1]])


def test_similarity_is_recovered_exactly_from_transformed_template():
    truth = _similarity(3.7, 23.0, 412.5, 180.25)
    keypoints = (truth @ np.c_[ARCFACE_TEMPLATE_112, np.ones(5)].T).T[:, :2]
    estimated = alignment_matrix(keypoints)          # image -> template
    assert np.allclose(estimated, np.linalg.inv(truth), atol=1e-9)


def test_similarity_fit_matches_least_squares_on_noisy_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    dst = (_similarity(0.5, -40, 10, 20) @ np.c_[src, np.ones(5)].T).T[:, :2]
    noisy = dst + rng.normal(0, 0.5, dst.shape)
    fit = estimate_similarity(src, noisy)
    residual = np.linalg.norm((fit @ np.c_[src, np.ones(5)].T).T[:, :2] - noisy)
    for perturbation in (1e-3, -1e-3):  # any nearby similarity fits worse
        worse = fit.copy()
        worse[:2, :2] *= 1 + perturbation
        assert np.linalg.norm((worse @ np.c_[src, np.ones(5)].T).T[:, :2] - noisy) > residual


def _blob_image(points_xy: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    image = np.zeros(shape)
    for x, y in points_xy:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _centroids(grey: np.ndarray, near_xy: np.ndarray, radius: int) -> np.ndarray:
    out = []
    ys, xs = np.mgrid[: grey.shape[0], : grey.shape[1]]
    for x, y in near_xy:
        mask = (xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2
        w = grey * mask
        out.append([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    return np.array(out)


def test_warped_landmarks_land_within_half_a_pixel_of_the_template():
    truth = _similarity(2.6, -17.0, 150.3, 90.8)       # template -> photo
    keypoints = (truth @ np.c_[ARCFACE_TEMPLATE_112, np.ones(5)].T).T[:, :2]
    grey = _blob_image(keypoints, (480, 520), sigma=2.6 * 1.5)
    crop = align_face(np.stack([grey] * 3, -1), keypoints)
    assert crop.shape == (112, 112, 3)
    found = _centroids(crop[..., 0].astype(np.float64), ARCFACE_TEMPLATE_112, radius=5)
    assert np.abs(found - ARCFACE_TEMPLATE_112).max() < 0.5
    # Tighter than the claim: a half-pixel convention slip (Pillow's pixel centres at +0.5
    # versus OpenCV's at 0) would show up here as ~0.45 px.
    assert np.linalg.norm(found - ARCFACE_TEMPLATE_112, axis=1).mean() < 0.05


def test_warp_outside_the_photo_is_black():
    image = np.full((50, 50, 3), 200, np.uint8)
    crop = warp_face(image, _similarity(1.0, 0.0, 80.0, 80.0))   # photo lands bottom-right
    assert (crop[:20, :20] == 0).all() and (crop[100:, 100:] == 200).all()
