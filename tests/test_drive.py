"""``arc2avatar drive`` (issue 16): a closed loop from a rendered performance back to its weights
and head pose, cross-identity driving judged by dlib, replay through ``animate --sequence``,
the rigid head pose of splats, FLAME avatars (jaw and coefficients, with and without FLAME's
landmark embedding), and every bad input (one message, nothing written).

The driver video is the photo-textured oracle target (scikit-image's astronaut projected onto the
built-in head, ``testing.drive.render_textured_driver``) performing ``testing.drive.known_sequence``
(jaw_open, smile, brow_raise rising at different times, two blinks, a ±20° head turn and a ±10°
nod) at 320² — a few seconds on a CPU. The landmark table was calibrated on a different person
(Grace Hopper, ``drive.landmarks``). A second loop moves jaw_open and smile at once
(``testing.drive.together_sequence``) on both people's photo-textured heads (issue 24).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from arc2avatar.avatar.pose import (
    HeadPose,
    pose_splats,
    rotation_angle_deg,
    rotation_from_angles,
    transform_points,
)
from arc2avatar.drive.run import DriveConfig, drive
from arc2avatar.testing.drive import (
    KnownPerformance,
    TogetherPerformance,
    known_sequence,
    render_textured_driver,
    together_sequence,
)
from arc2avatar.drive.video import probe_video, read_frames
from arc2avatar.errors import InputError
from arc2avatar.testing.photos import (
    astronaut_photo,
    grace_hopper_photo,
    photo_avatar,
)
from arc2avatar.identity.dlib_faces import DlibFaceDetector
from arc2avatar.avatar.media import write_video

DRIVER_SIZE, DRIVER_RADIUS, OUT_SIZE = 320, 3.2, 128
FAST = DriveConfig(size=OUT_SIZE)


@pytest.fixture(scope="module")
def detector():
    return DlibFaceDetector()


@pytest.fixture(scope="module")
def avatars(tmp_path_factory, detector):
    """Untrained photo-textured avatars (``face_levels=1``) of the astronaut and Grace Hopper."""
    root = tmp_path_factory.mktemp("avatars")
    out = {}
    for name, photo in (("astronaut", astronaut_photo()), ("hopper", grace_hopper_photo())):
        avatar = photo_avatar(photo, detector.largest_face(photo).keypoints, face_levels=1)
        avatar.save(root / name)
        out[name] = (root / name, photo)
    return out


@pytest.fixture(scope="module")
def performance(tmp_path_factory, avatars, detector):
    """The known sequence, its driver frames and the driver MP4."""
    sequence = known_sequence(KnownPerformance())
    photo = avatars["astronaut"][1]
    frames = render_textured_driver(photo, detector.largest_face(photo).keypoints, sequence, DRIVER_SIZE, DRIVER_RADIUS)
    path = tmp_path_factory.mktemp("driver") / "driver.mp4"
    write_video(frames, path, fps=int(sequence.fps), quality=9)
    return sequence, frames, path


@pytest.fixture(scope="module")
def driven(tmp_path_factory, avatars, performance):
    out = tmp_path_factory.mktemp("driven")
    result = drive(avatars["astronaut"][0], performance[2], out / "driven.mp4", sequence_out=out / "seq.json",
                   config=FAST, progress=False)
    return result, out


# ----------------------------------------------------------------------------------------- pose
def test_head_pose_moves_splats_rigidly_and_composes_orientations(avatars):
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.splats.model import quat_to_rotmat

    splats = Avatar.load(avatars["astronaut"][0]).splats
    pose = HeadPose(20.0, -10.0, 5.0, (0.1, -0.2, 0.3), 1.2)
    moved = pose_splats(splats, pose)
    rotation = torch.from_numpy(rotation_from_angles(20.0, -10.0, 5.0)).float()
    expected = 1.2 * splats.means @ rotation.T + torch.tensor([0.1, -0.2, 0.3])
    assert torch.allclose(moved.means, expected, atol=1e-5)
    assert torch.allclose(moved.scales, 1.2 * splats.scales, rtol=1e-5)
    # each splat's covariance axes turn with the head: R_new = R · R_old
    assert torch.allclose(quat_to_rotmat(moved.rotations), rotation @ quat_to_rotmat(splats.rotations), atol=1e-5)
    identity = pose_splats(splats, HeadPose())
    assert torch.equal(identity.means, splats.means) and torch.equal(identity.params["quats"], splats.params["quats"])
    # yaw > 0 turns the face (+y) toward the subject's left (−x)
    nose = transform_points(torch.tensor([[0.0, 1.0, 0.0]]), HeadPose(yaw_deg=90.0))
    assert torch.allclose(nose, torch.tensor([[-1.0, 0.0, 0.0]]), atol=1e-6)


# ----------------------------------------------------------------------------------------- closed loop
def test_closed_loop_recovers_expressions_blinks_and_head_pose(driven, performance):
    result, _ = driven
    sequence = performance[0]
    report = result.report
    assert report["frames"] == sequence.num_frames and report["frames_without_face"] == 0
    assert report["mean_confidence"] > 0.8
    names = list(result.names)
    truth = dict(zip(sequence.names, sequence.weights.numpy().T))
    # The targets: Pearson ≥ 0.9, blinks ±2 frames, median pose error ≤ 3°. Measured
    # (docs/driving.md, "Closed loop"): jaw 0.947, smile 0.928, brow 0.987, both blinks (peaks 0.86,
    # 0.83), 1.6°.
    floors = {"jaw_open": 0.9, "smile": 0.9, "brow_raise": 0.9}
    for name, floor in floors.items():
        r = np.corrcoef(result.weights[:, names.index(name)], truth[name])[0, 1]
        assert r >= floor, (name, r)
    blink = result.weights[:, [names.index("blink_left"), names.index("blink_right")]].mean(axis=1)
    peaks = _peaks(blink, threshold=0.5)
    expected = KnownPerformance().blink_frames
    assert len(peaks) == len(expected), (peaks, blink.round(2))
    assert all(abs(p - e) <= 2 for p, e in zip(peaks, expected)), (peaks, blink.round(2))
    errors = [rotation_angle_deg(rotation_from_angles(*row[:3]), rotation_from_angles(*truth_row[:3].tolist()))
              for row, truth_row in zip(result.head_pose, sequence.head_pose)]
    assert np.median(errors) <= 3.0, np.round(errors, 1)


@pytest.mark.parametrize("who", ["astronaut", "hopper"])
def test_jaw_and_smile_varying_together_are_recovered_on_two_identities(avatars, detector, tmp_path, who):
    """Issue 24: jaw_open and smile at once (``together_sequence``: one jaw opening under two
    smiles, uncorrelated over the clip, with two blinks and a ±12° head turn), rendered on each
    person's photo-textured head (what the photo demo starts from) and driven back into that
    person's untrained photo avatar. Measured (docs/driving.md, "Expressions together"): jaw_open r
    0.94 / 0.97, smile 0.91 / 0.94 (astronaut / Grace Hopper)."""
    sequence = together_sequence(TogetherPerformance())
    path, photo = avatars[who]
    frames = render_textured_driver(photo, detector.largest_face(photo).keypoints, sequence, DRIVER_SIZE,
                                    DRIVER_RADIUS)
    video = tmp_path / "together.mp4"
    write_video(frames, video, fps=int(sequence.fps), quality=9)
    result = drive(path, video, tmp_path / "driven.mp4", config=DriveConfig(size=32), progress=False)
    assert result.report["frames_without_face"] == 0
    names = list(result.names)
    truth = dict(zip(sequence.names, sequence.weights.numpy().T))
    assert abs(np.corrcoef(truth["jaw_open"], truth["smile"])[0, 1]) < 0.05  # the two vary independently
    for name in ("jaw_open", "smile"):
        r = np.corrcoef(result.weights[:, names.index(name)], truth[name])[0, 1]
        assert r >= 0.85, (who, name, r)


def test_a_smile_fitted_in_halves_reads_a_symmetric_smile_whole_and_a_one_sided_one_as_its_weaker_side(avatars):
    """Landmarks made by the fit's own model (no tracker): a symmetric smile under a 15° turn comes
    back whole; a smile on one side only comes back as the other side's 0 (``agreeing_halves``)."""
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.rig import setup_for_avatar
    from arc2avatar.drive.fit import (
        LEFT_HALF,
        RIGHT_HALF,
        DriveCamera,
        FitConfig,
        FrameFitter,
        landmark_model,
        merge_halves,
    )
    from arc2avatar.drive.landmarks import landmark_residuals, template_landmarks

    head = setup_for_avatar(Avatar.load(avatars["astronaut"][0])).upsampled.head
    points, vertex_index = template_landmarks(head)
    config = FitConfig()
    model = landmark_model(head, points, vertex_index, config.expressions, landmark_residuals(), ("smile",))
    assert model.names[1:3] == ("smile" + RIGHT_HALF, "smile" + LEFT_HALF)
    whole = landmark_model(head, points, vertex_index, config.expressions).basis[:, :, 1]
    assert np.allclose(model.basis[:, :, 1] + model.basis[:, :, 2], whole)
    camera = DriveCamera(320, 320, config)
    rotation = rotation_from_angles(15.0, 0.0, 0.0)

    def landmarks(weights: np.ndarray) -> np.ndarray:
        return camera.project(0.9 * model.shape(weights) @ rotation.T)[0]

    for halves, expected in (((0.6, 0.6), 0.6), ((0.6, 0.0), 0.0)):
        fitter = FrameFitter(model, camera, config)
        fitter.set_neutral(landmarks(np.zeros(len(model.names))))
        weights = np.zeros(len(model.names))
        weights[1:3] = halves
        names, merged = merge_halves(model.names, fitter.fit(landmarks(weights)).weights[None])
        assert names == config.expressions
        assert merged[0, 1] == pytest.approx(expected, abs=0.05), merged


def test_lip_and_eyelid_points_follow_the_image_between_frames_and_fall_back_to_dlibs_where_the_flow_fails(
        performance, detector):
    """``LandmarkFlow`` on a real driver frame shifted by a known amount: with "dlib's" points given 3 px
    off, the blended points land near the true shift (the flow's precision, a ``flow_blend`` pull
    toward dlib's); on a blank frame the flow fails and dlib's points are taken; after ``reset``
    the first frame is dlib's alone."""
    from dataclasses import replace

    from arc2avatar.drive.track import LandmarkFlow, TrackConfig

    frame = performance[1][0]
    points = detector.landmarks_68(frame, detector.largest_face(frame).box).astype(np.float64)
    config = replace(TrackConfig(), flow_blend=0.3)
    flow = LandmarkFlow(config)
    lips = list(config.flow_landmarks)
    others = sorted(set(range(68)) - set(lips))
    assert np.array_equal(flow(frame, points), points)  # the first frame: dlib's points
    shift = np.array([2.0, 1.0])
    moved = np.roll(frame, (1, 2), axis=(0, 1))  # the image moves 2 px right and 1 px down
    biased = points + shift + 3.0  # "dlib" is 3 px off on this frame
    out = flow(moved, biased)
    error = np.linalg.norm(out[lips] - (points[lips] + shift), axis=1)
    assert np.median(error) < 0.3 * np.hypot(3.0, 3.0) + 0.3, error  # ≈ flow_blend of dlib's offset
    assert np.array_equal(out[others], biased[others])  # the other points are dlib's
    blank = np.full_like(frame, 128)
    assert np.allclose(flow(blank, biased)[lips], biased[lips])  # nothing to follow: dlib's
    flow.reset()
    assert np.array_equal(flow(moved, biased), biased)


def _peaks(signal: np.ndarray, threshold: float) -> list[int]:
    """Frame of the maximum of each run of frames above ``threshold``."""
    above = np.flatnonzero(signal > threshold)
    runs = np.split(above, np.flatnonzero(np.diff(above) > 1) + 1) if above.size else []
    return [int(run[signal[run].argmax()]) for run in runs]


# ----------------------------------------------------------------------------------------- replay
def test_animate_replays_the_drive_sequence_to_the_same_frames(driven, avatars, tmp_path):
    from arc2avatar.animate.render import AnimationConfig, animate
    from arc2avatar.animate.sequence import load_sequence

    result, out = driven
    sequence = load_sequence(out / "seq.json")
    assert sequence.head_pose is not None and sequence.head_pose.shape == (result.report["frames"], 7)
    animate(avatars["astronaut"][0], tmp_path / "replay.mp4", sequence=out / "seq.json",
            config=AnimationConfig(size=OUT_SIZE))
    driven_frames = _decode(out / "driven.mp4")
    replayed = _decode(tmp_path / "replay.mp4")
    assert driven_frames.shape == replayed.shape
    difference = np.abs(driven_frames.astype(np.float32) - replayed.astype(np.float32)).mean(axis=(1, 2, 3))
    assert difference.max() < 1.0, difference.max()  # uint8 levels: the same renders, encoded twice


def _decode(path) -> np.ndarray:
    return np.stack(list(read_frames(probe_video(path))))


# ----------------------------------------------------------------------------------------- cross identity
def test_a_second_avatar_driven_by_the_first_ones_video_stays_its_own_person(driven, avatars):
    """Driving Hopper's avatar with the astronaut's video fits the same sequence (the fit sees only
    the video), so her frontal-ish driven frames are rendered from it the way ``drive`` does."""
    from arc2avatar.evaluate.recognizers import DlibRecognizer
    from arc2avatar.evaluate.similarity import observe
    from arc2avatar.animate.render import AnimationConfig, animation_frames
    from arc2avatar.animate.sequence import ExpressionSequence
    from arc2avatar.avatar.rig import setup_for_avatar
    from arc2avatar.avatar.model import Avatar

    result, _ = driven
    frontal = [i for i, row in enumerate(result.head_pose) if abs(row[0]) < 8 and abs(row[1]) < 8][::3][:4]
    assert len(frontal) >= 3
    sequence = ExpressionSequence(24.0, result.names, torch.from_numpy(result.weights[frontal]).float(),
                                  torch.from_numpy(result.head_pose[frontal]).float())
    path, photo = avatars["hopper"]
    avatar = Avatar.load(path)
    renders = [(f.numpy() * 255).round().astype(np.uint8)
               for f in animation_frames(avatar, setup_for_avatar(avatar), sequence, AnimationConfig(size=512))]
    seen = observe(DlibRecognizer(), [photo, *renders])
    assert seen.detected.all()
    distances = np.linalg.norm(seen.embeddings[1:] - seen.embeddings[0], axis=1)
    assert (distances < 0.6).all(), distances


# ----------------------------------------------------------------------------------------- FLAME
@pytest.fixture(scope="module")
def flame_avatar(tmp_path_factory):
    """A FLAME avatar on the synthetic FLAME (``testing.flame``; no photo: it has no eye, nose
    and lip regions to align one by), its FLAME file and a landmark embedding in the layout FLAME
    ships (``flame_static_embedding.pkl``: 51 triangles and barycentric coordinates). The
    embedding is the built-in table carried onto the synthetic surface (``frontal_embedding``)
    with other barycentric coordinates, so the two ways of placing landmarks differ."""
    import pickle

    from arc2avatar.drive.flame import frontal_embedding
    from arc2avatar.drive.landmarks import load_landmark_table
    from arc2avatar.head.flame import load_flame
    from arc2avatar.testing.flame import synthetic_flame_arrays

    root = tmp_path_factory.mktemp("flame")
    flame = root / "flame.npz"
    np.savez(flame, **synthetic_flame_arrays(seed=0))
    photo_avatar(None, None, face_levels=1, flame=flame).save(root / "avatar")
    embedding = frontal_embedding(load_flame(flame), np.asarray(load_landmark_table()["positions"]))
    barycentric = np.random.default_rng(0).dirichlet(np.full(3, 4.0), size=51)
    with (root / "flame_static_embedding.pkl").open("wb") as handle:
        pickle.dump({"lmk_face_idx": embedding.face_index[17:].astype(np.uint32), "lmk_b_coords": barycentric},
                    handle, protocol=2)
    return root / "avatar", flame, root / "flame_static_embedding.pkl"


@pytest.mark.parametrize("with_embedding", [True, False], ids=["embedding", "carried-table"])
def test_a_flame_avatar_opens_its_jaw_with_the_drivers_and_replays(flame_avatar, performance, tmp_path, with_embedding):
    """The synthetic FLAME's expression basis is random, so only its jaw has a meaning to check:
    the fitted opening follows the driver's jaw_open (Pearson), is closed at rest, and the
    sequence file carries it as the jaw joint, which ``animate --sequence`` replays."""
    from arc2avatar.animate.render import AnimationConfig, animate
    from arc2avatar.animate.sequence import load_sequence
    from arc2avatar.drive.flame import JAW_NAME

    avatar, flame, embedding = flame_avatar
    sequence = performance[0]
    result = drive(avatar, performance[2], tmp_path / "driven.mp4", sequence_out=tmp_path / "seq.json", flame=flame,
                   flame_landmarks=embedding if with_embedding else None, config=FAST, progress=False)
    assert result.names[-1] == JAW_NAME and result.names[0] == "exp_000"
    jaw = result.weights[:, -1]
    truth = sequence.weights[:, sequence.names.index("jaw_open")].numpy()
    r = np.corrcoef(jaw, truth)[0, 1]
    assert r >= (0.9 if with_embedding else 0.8), r  # measured: 0.98 with the embedding, 0.85 carried
    assert jaw[0] < 0.01 and jaw.max() > 0.05, (jaw[0], jaw.max())
    yaw = np.corrcoef(result.head_pose[:, 0], sequence.head_pose[:, 0].numpy())[0, 1]
    assert yaw > 0.9, yaw
    assert result.report["landmarks"] == ("FLAME embedding flame_static_embedding.pkl" if with_embedding
                                          else "built-in table carried onto FLAME")

    replay = load_sequence(tmp_path / "seq.json")
    assert JAW_NAME not in replay.names and set(replay.joints) == {"jaw"}
    assert np.allclose(replay.joints["jaw"][:, 0].numpy(), jaw, atol=1e-5)
    animate(avatar, tmp_path / "replay.mp4", sequence=tmp_path / "seq.json", flame=flame,
            config=AnimationConfig(size=OUT_SIZE))
    difference = np.abs(_decode(tmp_path / "driven.mp4").astype(np.float32)
                        - _decode(tmp_path / "replay.mp4").astype(np.float32)).mean(axis=(1, 2, 3))
    assert difference.max() < 1.0, difference.max()


def test_flame_inputs_are_checked_before_anything_is_written(flame_avatar, avatars, performance, tmp_path):
    avatar, flame, _ = flame_avatar
    video = performance[2]
    with pytest.raises(InputError, match="--flame PATH"):
        drive(avatar, video, tmp_path / "o.mp4", config=FAST, progress=False)
    with pytest.raises(InputError, match="--flame-landmarks is for avatars made on FLAME"):
        drive(avatars["astronaut"][0], video, tmp_path / "o.mp4", flame_landmarks=tmp_path / "x.pkl", config=FAST,
              progress=False)
    bad = tmp_path / "in.txt"
    bad.write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(InputError, match="landmark embedding"):
        drive(avatar, video, tmp_path / "o.mp4", flame=flame, flame_landmarks=bad, config=FAST, progress=False)
    _nothing_written(tmp_path)
    from arc2avatar.cli.main import main

    assert main(["drive", str(avatar), str(video), "-o", str(tmp_path / "o.mp4"), "--flame", str(flame),
                 "--expressions", "smile"]) != 0
    _nothing_written(tmp_path)


def test_the_cli_drives_a_flame_avatar_with_its_options(flame_avatar, performance, tmp_path):
    from arc2avatar.cli.main import main

    avatar, flame, embedding = flame_avatar
    code = main(["drive", str(avatar), str(performance[2]), "-o", str(tmp_path / "o.mp4"), "--flame", str(flame),
                 "--flame-landmarks", str(embedding), "--flame-coefficients", "4", "--end", "0.5", "--size", "64",
                 "--sequence-out", str(tmp_path / "s.json"), "--no-pose", "-q"])
    assert code == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert len(data["frames"]) == len(data["joints"]) == 12 and "head_pose" not in data
    assert set(data["frames"][0]) == {"exp_000", "exp_001", "exp_002", "exp_003"}
    assert json.loads((tmp_path / "o.report.json").read_text())["template"] == "flame"


# ----------------------------------------------------------------------------------------- bad input
def _nothing_written(folder) -> None:
    assert [p.name for p in folder.iterdir() if p.name not in ("in.mp4", "in.txt", "blank.mp4")] == []


def test_not_a_video_an_empty_one_and_an_empty_time_range_are_refused(avatars, performance, tmp_path):
    avatar = avatars["astronaut"][0]
    text = tmp_path / "in.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="not a video"):
        drive(avatar, text, tmp_path / "o.mp4", config=FAST, progress=False)
    text.write_bytes(b"")
    with pytest.raises(InputError, match="not a video"):
        drive(avatar, text, tmp_path / "o.mp4", config=FAST, progress=False)
    with pytest.raises(InputError, match="no frames"):
        drive(avatar, performance[2], tmp_path / "o.mp4", start=100.0, end=101.0, config=FAST, progress=False)
    _nothing_written(tmp_path)


def test_a_video_without_a_face_and_a_folder_that_is_no_avatar_are_refused(avatars, tmp_path):
    blank = tmp_path / "blank.mp4"
    write_video(np.full((6, 96, 128, 3), 200, dtype=np.uint8), blank, fps=12)
    with pytest.raises(InputError, match="no face was found in any of the 6 frames"):
        drive(avatars["astronaut"][0], blank, tmp_path / "o.mp4", config=FAST, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no avatar"):
        drive(tmp_path / "empty", blank, tmp_path / "o.mp4", config=FAST, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.mp4", "empty"]


def test_the_cli_prints_one_line_and_exits_non_zero(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    run = subprocess.run(["python", "-m", "arc2avatar.cli.main", "drive", str(tmp_path), str(tmp_path / "in.txt"),
                          "-o", str(tmp_path / "o.mp4")], check=False, capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith("arc2avatar: error:"), run.stderr
    _nothing_written(tmp_path)


def test_a_face_lost_part_of_the_time_is_interpolated_and_counted(avatars, performance, tmp_path, caplog):
    frames = performance[1][:16].copy()
    frames[6:9] = 255  # the face leaves for three frames
    video = tmp_path / "in.mp4"
    write_video(frames, video, fps=24)
    result = drive(avatars["astronaut"][0], video, tmp_path / "o.mp4", config=FAST, progress=False)
    assert result.report["frames_without_face"] == 3
    assert "no face in 3 of 16 frames" in caplog.text
    yaw = result.head_pose[:, 0]
    assert np.allclose(yaw[6:9], np.interp([6, 7, 8], [5, 9], yaw[[5, 9]]), atol=1e-6)  # filled linearly
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert report["frames_without_face"] == 3 and report["frames"] == 16


def test_huge_frames_are_downscaled_and_a_variable_frame_rate_is_resampled(avatars, performance, tmp_path):
    import imageio_ffmpeg
    from PIL import Image

    huge = np.stack([np.asarray(Image.fromarray(f).resize((1600, 1600), Image.BILINEAR)) for f in performance[1][:3]])
    path = tmp_path / "in.mp4"
    write_video(huge, path, fps=24)
    info = probe_video(path)
    assert info.downscaled and max(info.size) <= 1280 and info.source_size == (1600, 1600)
    result = drive(avatars["astronaut"][0], path, tmp_path / "o.mp4", config=FAST, progress=False)
    assert result.report["downscaled"] and result.report["frames_without_face"] == 0

    # variable frame rate: 20 frames at 24 fps, then 4 frames half a second apart
    steady = tmp_path / "steady.mp4"
    write_video(performance[1][:24, ::2, ::2], steady, fps=24)
    vfr = tmp_path / "vfr.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(steady), "-vf",
                    r"setpts=if(lt(N\,20)\,N/24\,20/24+(N-19)*0.5)/TB", "-fps_mode", "vfr", "-an", str(vfr)],
                   check=True)
    info = probe_video(vfr)
    assert info.resampled
    frames = sum(1 for _ in read_frames(info))
    assert frames >= 30  # 24 frames spread over ≈ 2.9 s become a constant rate over the whole duration
