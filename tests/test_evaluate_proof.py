"""The identity proof we can make offline (issue 7.6): the demo's oracle target textured with a
real photo (scikit-image's astronaut) is rebuilt by the whole pipeline, and dlib's independent
judge says the avatar's frontal render shows the person of the photo (distance < 0.6) and
still does at ±30° azimuth.

The whole run (``arc2avatar demo --photo`` + ``evaluate``: 4 min 9 s on 2 idle cores, 7 min 48 s
under load, with a fresh mean-face cache; 6 min 55 s in CI once the outputs became 512²) is marked
``slow``: CI runs it (it is the only proof of the claim), ``-m "not slow"`` leaves it out of a
quick run; its figures are in docs/benchmarks.md. The other tests check the links it rests on:
the photo lands on the template's landmarks, the textured target is the person to the judge, and so are splats with
the target's colours on the template the demo uses.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from arc2avatar.evaluate.recognizers import DlibRecognizer
from arc2avatar.evaluate.run import EvaluateConfig, evaluate
from arc2avatar.evaluate.similarity import observe, view_entry
from arc2avatar.testing.photos import astronaut_photo, photo_avatar
from arc2avatar.evaluate.views import EvalViews, evaluation_cameras, render_views
from arc2avatar.identity.dlib_faces import DlibFaceDetector
from arc2avatar.pipeline.api import demo
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.pipeline.oracle import (
    default_target,
    frontal_plane,
    photo_placement,
    template_landmarks,
)
from arc2avatar.avatar.template import build_head

PROOF_VIEWS = EvalViews(azimuth_min_deg=-30.0, azimuth_max_deg=30.0, azimuth_step_deg=30.0, polar_deg=(90.0,))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARC2AVATAR_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def photo_and_keypoints():
    photo = astronaut_photo()
    return photo, DlibFaceDetector().largest_face(photo).keypoints


def test_the_photo_placement_puts_the_template_landmarks_on_the_photo_landmarks(photo_and_keypoints):
    photo, keypoints = photo_and_keypoints
    head = build_head(TemplateConfig(face_levels=0, rest_levels=0)).upsampled.head
    matrix = photo_placement(head, photo.shape[:2], keypoints)
    plane = frontal_plane(template_landmarks(head)).double().numpy()
    mapped = plane @ matrix[:2, :2].T + matrix[:2, 2]
    eye_distance = np.linalg.norm(keypoints[1] - keypoints[0])
    residual = np.linalg.norm(mapped - keypoints, axis=1) / eye_distance  # a similarity fit of 5 points:
    assert residual[:2].max() < 0.06 and residual.max() < 0.2              # exact only for equal proportions


def test_the_eye_placement_moves_hoppers_eyes_onto_the_lid_line_and_leaves_the_astronaut_as_she_was():
    # oracle.eye_shifts: Grace Hopper's lower lids lie 0.031 above the line where the template's
    # lids meet (a blink closed below her eyes); the astronaut's lie on it on average, so the
    # identity proof's target is the one it was.
    from arc2avatar.pipeline.oracle import LOWER_LID_68, eye_shifts, lid_meeting_heights
    from arc2avatar.testing.photos import grace_hopper_photo

    head = build_head(TemplateConfig(face_levels=0, rest_levels=0)).upsampled.head
    detector = DlibFaceDetector()
    lid_line = np.mean([v for _, v in lid_meeting_heights(head)])
    for photo, moved in ((astronaut_photo(), False), (grace_hopper_photo(), True)):
        face = detector.largest_face(photo)
        landmarks = detector.landmarks_68(photo, face.box).astype(np.float64)
        target = default_target(head, photo=photo, photo_keypoints=face.keypoints, photo_landmarks=landmarks)
        plain = default_target(head, photo=photo, photo_keypoints=face.keypoints)
        assert torch.equal(target.colors, plain.colors) != moved
        matrix = photo_placement(head, photo.shape[:2], face.keypoints)
        inverse = np.linalg.inv(matrix)
        lower_lids = (landmarks @ inverse[:2, :2].T + inverse[:2, 2])[list(sum(LOWER_LID_68, ())), 1].mean()
        plane = frontal_plane(head.vertices.double())
        shifts = eye_shifts(head, plane, matrix, landmarks)
        if not moved:
            assert lower_lids >= lid_line - 0.01 and float(shifts.abs().max()) == 0.0
            continue
        drop = lid_line - lower_lids
        assert drop > 0.02, drop  # her lower lids lie above the lid line
        eyes = head.regions["eyes"]
        assert torch.allclose(shifts[eyes, 1].max(), torch.tensor(drop, dtype=torch.float64), rtol=0.05)
        far = head.regions["lips"] | head.regions["ears"]
        assert float(shifts[far].abs().max()) < 0.15 * drop  # the mouth and the ears stay


def test_the_textured_target_shows_the_person_of_the_photo_to_the_judge(photo_and_keypoints):
    photo, keypoints = photo_and_keypoints
    setup = build_head(TemplateConfig(face_levels=0, rest_levels=0))
    target = default_target(setup.upsampled.head, photo=photo, photo_keypoints=keypoints,
                            face_triangles=setup.upsampled.num_face_triangles)
    renders = (target.render(evaluation_cameras(PROOF_VIEWS)) * 255).round().to(torch.uint8).numpy()
    _assert_same_person(photo, renders)


def test_splats_with_the_target_colours_on_the_demo_template_are_the_person_to_the_judge(photo_and_keypoints):
    photo, keypoints = photo_and_keypoints
    avatar = photo_avatar(photo, keypoints, face_levels=1)  # the photo demo's template.face_levels
    _assert_same_person(photo, render_views(avatar, PROOF_VIEWS))


def _assert_same_person(photo: np.ndarray, renders: np.ndarray) -> None:
    judge = DlibRecognizer()
    seen = observe(judge, [photo, *renders])
    assert seen.detected.all(), seen.detected
    distances = np.linalg.norm(seen.embeddings[1:] - seen.embeddings[0], axis=1)
    assert (distances < 0.6).all(), distances


@pytest.mark.slow
def test_demo_avatar_of_a_real_photo_is_the_same_person_to_the_independent_judge(tmp_path, photo_and_keypoints):
    photo, _ = photo_and_keypoints
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(photo_path)
    result = demo(tmp_path / "out", photo=photo_path, progress=False)  # the cpu-smoke preset
    assert result.metrics["photo"]["placement"].startswith("5 landmarks")
    config = EvaluateConfig(views=PROOF_VIEWS, recognizers=("dlib",), fid_mode="off", expressions=None)
    report = evaluate(tmp_path / "out", [photo_path], config=config).report
    identity = report["identity"][0]
    frontal = view_entry(identity, 0.0, 90.0)
    assert frontal["detected"] and frontal["mean_score"] < 0.6, frontal
    for azimuth in (-30.0, 30.0):
        side = view_entry(identity, azimuth, 90.0)
        assert side["detected"] and side["same_person"], side
    # Identity kept (issue 24 item 6): the frontal neutral distance is no worse than before the
    # human-range blendshapes (0.447), and the trained avatar stays its photo's person at smile = 1
    # and jaw_open = 0.5 (rendered from the same views, judged by the same dlib recogniser).
    print(f"photo demo, dlib distance to the photo, frontal neutral: {frontal['mean_score']:.3f}")
    assert frontal["mean_score"] <= NEUTRAL_DISTANCE_BEFORE + 0.005, frontal
    distances = _expression_distances(tmp_path / "out", photo)
    for label, per_view in distances.items():
        print(f"photo demo, dlib distance to the photo at {label} (azimuth -30, 0, +30):", np.round(per_view, 3))
        assert per_view[1] < 0.6, (label, per_view)
    # The trained avatar blinks (issue 24; losses.frozen_regions): its lid shells were not painted
    # with the eye's colours, so MediaPipe reads each closed eye shut and the other one open.
    # Measured (suite, one thread): open 0.367 / 0.318, blink_left 0.360 / 0.063, blink_right
    # 0.046 / 0.345; with the lids trained on, 0.25 and 0.28 (a dark smear).
    from arc2avatar.errors import MissingDependencyError
    from arc2avatar.testing.mediapipe_mesh import mediapipe_folder

    try:
        mediapipe_folder()
    except MissingDependencyError:
        if os.environ.get("CI"):
            raise
        pytest.skip("MediaPipe Face Mesh is not installed (./setup.sh test): the trained blinks are not read")
    open_eyes, blink_left, blink_right = _trained_blinks(tmp_path / "out")
    print("photo demo, MediaPipe EAR (image-left / image-right) open, blink_left, blink_right:",
          open_eyes, blink_left, blink_right)
    assert blink_left[1] <= 0.12 and blink_right[0] <= 0.12, (open_eyes, blink_left, blink_right)
    assert abs(blink_left[0] / open_eyes[0] - 1) <= 0.1 and abs(blink_right[1] / open_eyes[1] - 1) <= 0.1


def _trained_blinks(avatar_dir) -> list[tuple[float, float]]:
    """MediaPipe Face Mesh's eye aspect ratios (image-left, image-right) of the avatar's frontal
    512² render (``testing.photos.tracker_cameras``, as tests/test_expression_tracker.py) open,
    at blink_left and at blink_right."""
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.testing.mediapipe_mesh import mediapipe_face_mesh, mesh_eye_aspect_ratios
    from arc2avatar.testing.photos import expression_renders

    renders = expression_renders(Avatar.load(avatar_dir), ({}, {"blink_left": 1.0}, {"blink_right": 1.0}))
    points = mediapipe_face_mesh([images[0] for images in renders])
    assert all(p is not None for p in points), "MediaPipe found no face in a render of the trained avatar"
    return [tuple(round(v, 3) for v in mesh_eye_aspect_ratios(p)) for p in points]


NEUTRAL_DISTANCE_BEFORE = 0.447  # the photo demo's frontal distance before issue 24 (docs/expressions.md)
KEPT_EXPRESSIONS = (("smile = 1", {"smile": 1.0}), ("jaw_open = 0.5", {"jaw_open": 0.5}))


def _expression_distances(avatar_dir, photo: np.ndarray) -> dict[str, np.ndarray]:
    """dlib distances to ``photo`` of the avatar at each of ``KEPT_EXPRESSIONS``, one per
    ``PROOF_VIEWS`` azimuth (NaN where no face is found)."""
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.rig import apply_expression, setup_for_avatar

    avatar = Avatar.load(avatar_dir)
    setup = setup_for_avatar(avatar)
    judge = DlibRecognizer()
    out = {}
    for label, weights in KEPT_EXPRESSIONS:
        renders = render_views(apply_expression(avatar, setup, weights), PROOF_VIEWS)
        seen = observe(judge, [photo, *renders])
        distances = np.linalg.norm(seen.embeddings[1:] - seen.embeddings[0], axis=1)
        out[label] = np.where(seen.detected[1:], distances, np.nan)
    return out


def test_a_photo_demo_on_cpu_smoke_selects_the_finer_face_and_a_set_still_wins(tmp_path, monkeypatch):
    import arc2avatar.pipeline.api as api
    from arc2avatar.confkit import load_yaml

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(api, "build_head", stop)  # after config.yaml is written, before any work
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut_photo()).save(photo_path)
    with pytest.raises(Stop):
        demo(tmp_path / "out", photo=photo_path, overrides=["iterations=50"], progress=False)
    saved = load_yaml(tmp_path / "out" / "config.yaml")
    assert saved["template"]["face_levels"] == 1 and saved["face_phase_fraction"] == 0.5
    assert saved["iterations"] == 50  # the user's --set wins over the photo-demo preset
    with pytest.raises(Stop):
        demo(tmp_path / "plain", progress=False)
    assert load_yaml(tmp_path / "plain" / "config.yaml")["template"]["face_levels"] == 0  # no photo: cpu-smoke as is


def test_photo_keypoints_without_a_face_is_refused_and_without_dlib_uses_the_centre_square(tmp_path, monkeypatch):
    import arc2avatar.identity.dlib_faces as dlib_faces
    from arc2avatar.errors import InputError, MissingDependencyError
    from arc2avatar.identity.image import load_face_photos
    from arc2avatar.pipeline.oracle import photo_keypoints
    from skimage import data

    cat = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(cat)
    with pytest.raises(InputError, match="no face found in .*cat.png"):
        photo_keypoints(load_face_photos([cat])[0])

    def missing(*args, **kwargs):
        raise MissingDependencyError("dlib is not installed")

    monkeypatch.setattr(dlib_faces, "DlibFaceDetector", missing)
    image, keypoints, info, landmarks = photo_keypoints(load_face_photos([cat])[0])
    assert keypoints is None and landmarks is None and info["placement"] == "centre square"
    assert image.shape[0] == image.shape[1] == min(data.chelsea().shape[:2])
