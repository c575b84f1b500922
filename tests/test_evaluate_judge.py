"""Claims about the face recognisers of the evaluation (issue 7.1–7.2): dlib's offline judge tells
real people apart on photos shipped in registry packages, the ArcFace path runs end to end on
tiny stand-in weights, scores and verdicts follow each recogniser's metric, and a missing
recogniser is explained."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from arc2avatar.errors import InputError, MissingWeightsError
from arc2avatar.evaluate.recognizers import (
    ArcFaceRecognizer,
    DlibRecognizer,
    FaceRecognizer,
    compare,
    load_recognizers,
    same_person,
)
from arc2avatar.evaluate.similarity import observe
from arc2avatar.testing.photos import astronaut_photo, grace_hopper_photo
from arc2avatar.identity.dlib_faces import DlibFaceDetector, arcface_points_from_68, dlib_model_files
from arc2avatar.testing.identity_weights import plant_face, write_tiny_identity_weights


@pytest.fixture(scope="module")
def judge() -> DlibRecognizer:
    return DlibRecognizer()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return astronaut_photo()


def _distance(judge: DlibRecognizer, a: np.ndarray, b: np.ndarray) -> float:
    seen = observe(judge, [a, b])
    assert seen.detected.all(), "dlib found no face"
    return float(compare(judge.metric, seen.embeddings[:1], seen.embeddings[1:])[0, 0])


def test_dlib_judge_says_a_photo_and_its_mirror_image_are_the_same_person(judge, astronaut):
    distance = _distance(judge, astronaut, np.ascontiguousarray(astronaut[:, ::-1]))
    assert 0.0 < distance < 0.6
    assert same_person(judge.metric, judge.threshold, distance)


def test_dlib_judge_says_a_photo_and_a_cropped_downscaled_copy_are_the_same_person(judge, astronaut):
    crop = Image.fromarray(astronaut[10:330, 80:360]).resize((210, 240), Image.Resampling.BICUBIC)
    distance = _distance(judge, astronaut, np.asarray(crop))
    assert distance < 0.6


def test_dlib_judge_says_two_different_people_are_not_the_same_person(judge, astronaut):
    distance = _distance(judge, astronaut, grace_hopper_photo())
    assert distance >= 0.6
    assert not same_person(judge.metric, judge.threshold, distance)


def test_dlib_finds_no_face_in_a_cat_or_a_blank_image(judge):
    from skimage import data

    assert judge.align(np.ascontiguousarray(data.chelsea())) is None
    assert judge.align(np.full((256, 256, 3), 255, np.uint8)) is None


def test_dlib_aligned_crops_are_150_pixel_chips_and_the_largest_face_is_used(judge, astronaut):
    face = judge.align(astronaut)
    assert face.crop.shape == (150, 150, 3) and face.crop.dtype == np.uint8
    assert face.faces_found >= 1
    x1, y1, x2, y2 = face.box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # the astronaut's face, not her suit patch
    assert isinstance(judge, FaceRecognizer)


def test_dlib_model_files_are_found_without_importing_face_recognition_models():
    files = dlib_model_files()
    assert files.recognition.is_file() and files.shape_5.is_file() and files.shape_68.is_file()
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources


def test_arcface_keypoints_from_68_landmarks_are_eye_centres_nose_tip_and_mouth_corners():
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = [[10, 20]] * 3 + [[14, 22]] * 3
    landmarks[42:48] = [[40, 20]] * 6
    landmarks[30] = [25, 35]
    landmarks[48], landmarks[54] = [15, 50], [35, 51]
    five = arcface_points_from_68(landmarks)
    assert np.allclose(five, [[12, 21], [40, 20], [25, 35], [15, 50], [35, 51]])


def test_dlib_keypoints_of_a_real_face_are_in_arcface_order(astronaut):
    face = DlibFaceDetector().largest_face(astronaut)
    left_eye, right_eye, nose, mouth_left, mouth_right = face.keypoints
    assert left_eye[0] < nose[0] < right_eye[0]           # image left to right
    assert mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])  # top to bottom


def test_scores_follow_each_metric_on_hand_computed_values():
    a = np.array([[3.0, 4.0]])
    b = np.array([[3.0, 4.0], [4.0, -3.0], [0.0, 0.0]])
    assert np.allclose(compare("euclidean", a, b), [[0.0, np.sqrt(50.0), 5.0]])
    assert np.allclose(compare("cosine", a, b[:2]), [[1.0, 0.0]])
    assert same_person("euclidean", 0.6, 0.59) and not same_person("euclidean", 0.6, 0.6)
    assert same_person("cosine", 0.4, 0.4) and not same_person("cosine", 0.4, 0.39)


def test_arcface_recognizer_detects_aligns_and_embeds_with_tiny_weights(tmp_path):
    paths = write_tiny_identity_weights(tmp_path / "weights")
    recognizer = ArcFaceRecognizer(paths["scrfd_onnx"], paths["arcface_onnx"])
    image = np.full((320, 320, 3), 40, np.uint8)
    plant_face(image, (160, 150), 64)
    seen = observe(recognizer, [image, np.full((320, 320, 3), 40, np.uint8)])
    assert seen.detected.tolist() == [True, False]
    assert seen.faces[0].crop.shape == (112, 112, 3)
    assert np.isclose(np.linalg.norm(seen.embeddings[0]), 1.0, atol=1e-5)
    assert np.isnan(seen.embeddings[1]).all()
    assert np.isclose(compare("cosine", seen.embeddings[:1], seen.embeddings[:1])[0, 0], 1.0)
    assert recognizer.guidance and recognizer.metric == "cosine"


def test_auto_recognizers_skip_arcface_without_weights_and_explicit_arcface_says_what_is_missing(tmp_path):
    loaded = load_recognizers(["auto"], weights=tmp_path / "empty")
    assert [type(r).__name__ for r in loaded] == ["DlibRecognizer"]
    with pytest.raises(MissingWeightsError, match="arcface.onnx"):
        load_recognizers(["arcface"], weights=tmp_path / "empty")
    with pytest.raises(InputError, match="unknown recogniser"):
        load_recognizers(["facenet"])


def test_auto_recognizers_load_both_when_arcface_weights_are_present(tmp_path):
    write_tiny_identity_weights(tmp_path / "weights")
    loaded = load_recognizers(["auto"], weights=tmp_path / "weights")
    assert [r.guidance for r in loaded] == [False, True]  # the independent judge first
