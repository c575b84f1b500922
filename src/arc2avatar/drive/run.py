"""``arc2avatar drive``: an avatar driven by a face video (docs/driving.md).

Stages: decode (``video``) → track (``track``) → fill the frames without a face → fit pose and
expression per frame (``fit``) → render the driven avatar (``FaceRig`` + ``avatar.pose``) →
encode. Outputs, each written atomically and only after every frame was fitted:

* ``OUT.mp4``: the driven avatar from the frontal animation camera (``--side-by-side``: the
  input frame with its tracked landmarks on the left);
* ``--sequence-out SEQ.json``: per-frame weights and head pose (and, on FLAME, the jaw's pose) in
  the sequence format that ``animate --sequence`` reads (docs/expressions.md);
* ``OUT.report.json`` beside the video (and printed): frames, frames without a face (filled by
  interpolation of the fitted parameters from their neighbours), mean tracking confidence,
  frames/s of each stage.

The sequence's head pose is relative to the neutral frame: at rest the avatar faces the camera,
centred, at its own size. (A generic template fitted to a particular face is off by a few
degrees in its rest orientation, mostly in pitch; measuring turns from the rest frame cancels
that. An actor whose rest frame is turned should pick a frontal one with ``--neutral-frame``.)

Templates: the built-in head fits its blendshapes (``FitConfig.expressions``) with the stored
landmark table (``landmarks``); a FLAME head (the avatar's own FLAME file, ``--flame``) fits its
first expression coefficients and the jaw's opening (``flame``), with FLAME's landmark embedding
(``--flame-landmarks``) or else the table carried onto FLAME's surface.
Written by hand: the orchestration.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arc2avatar._io import atomic_write_text, write_json
from arc2avatar.avatar.media import write_video
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.pose import HeadPose, angles_from_rotation, pose_splats, pose_table_rows
from arc2avatar.avatar.rig import FaceRig, setup_for_avatar
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.drive.fit import (
    DriveCamera,
    FitConfig,
    FrameFitter,
    FramePose,
    LandmarkModel,
    landmark_model,
    merge_halves,
)
from arc2avatar.drive.flame import JAW_NAME, FlameFitConfig, flame_landmark_model, read_landmark_embedding
from arc2avatar.drive.landmarks import landmark_residuals, template_landmarks
from arc2avatar.drive.track import FaceTracker, TrackConfig, TrackedFrame
from arc2avatar.drive.video import VideoConfig, VideoInfo, probe_video, read_frames
from arc2avatar.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriveConfig:
    """Everything ``drive`` does, apart from its files.

    Attributes:
        size: side of the rendered avatar frames, pixels.
        radius, fovy: the render camera (frontal; ``AnimationConfig``'s defaults).
        landmark_radius_px: radius of the landmark dots of ``--side-by-side``, output pixels.
        quality: imageio-ffmpeg quality 0–10.
        video, track, fit: the stages' settings.
        flame: what is fitted on a FLAME avatar (coefficients, jaw bounds).
    """

    size: int = 512
    radius: float = 4.5
    fovy: float = 0.7
    landmark_radius_px: float = 2.0
    quality: int = 8
    video: VideoConfig = field(default_factory=VideoConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    flame: FlameFitConfig = field(default_factory=FlameFitConfig)


@dataclass
class DriveResult:
    """What ``drive`` produced: the report (also written as JSON), the fitted ``weights`` (T, K)
    for ``names`` (on FLAME the last is ``jaw_open_rad``, the jaw's opening in radians),
    ``head_pose`` (T, 7) (``avatar.pose.POSE_FIELDS``), ``landmarks`` (T, 68, 2) (NaN without a
    face), and the paths written."""

    report: dict[str, Any]
    names: tuple[str, ...]
    weights: np.ndarray
    head_pose: np.ndarray
    landmarks: np.ndarray
    paths: dict[str, Path]


def _fill_missing(values_tk: np.ndarray, found_t: np.ndarray) -> np.ndarray:
    """Rows without a face linearly interpolated from the nearest rows with one (held at the ends)."""
    t = np.arange(len(found_t))
    out = values_tk.copy()
    for column in range(values_tk.shape[1]):
        out[~found_t, column] = np.interp(t[~found_t], t[found_t], values_tk[found_t, column])
    return out


def _relative_pose(pose: FramePose, neutral: FramePose) -> np.ndarray:
    """(7,) pose table row relative to the neutral frame: ``R·R₀ᵀ``, ``(t − t₀)/s₀``, ``s/s₀``."""
    yaw, pitch, roll = angles_from_rotation(pose.rotation() @ neutral.rotation().T)
    translation = (pose.translation - neutral.translation) / neutral.scale
    return np.array([yaw, pitch, roll, *translation, pose.scale / neutral.scale])


def _progress(iterable: Any, total: int | None, what: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=what, unit="frame", leave=False)


def track_video(info: VideoInfo, smooth: float, config: TrackConfig, progress: bool = False
                ) -> tuple[list[TrackedFrame], float, float]:
    """Track every frame; returns the results, decode seconds and track seconds."""
    tracker = FaceTracker(info.fps, smooth, config)
    results: list[TrackedFrame] = []
    decode_s = track_s = 0.0
    frames = read_frames(info)
    total = None if not info.duration_s else round(((info.end_s or info.duration_s) - info.start_s) * info.fps)
    start = time.perf_counter()
    for frame in _progress(frames, total, "tracking", progress):
        now = time.perf_counter()
        decode_s += now - start
        results.append(tracker(frame))
        start = time.perf_counter()
        track_s += start - now
    return results, decode_s, track_s


def drive(
    avatar: str | os.PathLike,
    video: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sequence_out: str | os.PathLike | None = None,
    side_by_side: bool = False,
    pose: bool = True,
    neutral_frame: int | None = None,
    smooth: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    flame_landmarks: str | os.PathLike | None = None,
    config: DriveConfig = DriveConfig(),
    progress: bool = True,
) -> DriveResult:
    """``arc2avatar drive``: drive the avatar folder ``avatar`` with the face in ``video``.

    Args:
        avatar: an avatar folder (built-in or FLAME template).
        video: the driving video (any format ffmpeg reads).
        out: the ``.mp4`` to write; the report goes beside it as ``OUT.report.json``.
        sequence_out: also write the fitted sequence (JSON, ``animate --sequence`` format).
        side_by_side: show the input frame with its landmarks left of the avatar.
        pose: follow the head's pose (False: expressions only, the avatar faces the camera).
        neutral_frame: the frame (index in the decoded range) with the actor's resting face;
            default the first frame with a face.
        smooth: landmark smoothing strength (0 = off; the One-Euro cut-off is divided by it).
        start, end: time range of the video, seconds.
        flame, flame_masks: a FLAME avatar's FLAME file (and masks), as at creation.
        flame_landmarks: FLAME's landmark embedding (``flame_static_embedding.pkl``); FLAME
            avatars only; without it the built-in landmark table is carried onto FLAME.
        config: the stages' settings.
        progress: show progress bars.

    Returns:
        A ``DriveResult``. Raises ``InputError`` for bad input (no video, no face, not an avatar…).
    """
    # 1. Check the inputs (the cheap ones first), then rebuild the avatar's template and landmarks.
    out, info, loaded, setup, model = _open_inputs(avatar, video, out, smooth, start, end, flame, flame_masks,
                                                   flame_landmarks, config)
    # 2. Track the face's 68 landmarks through the video; pick the neutral frame.
    tracked, found, neutral_index, decode_s, track_s = _track_faces(info, smooth, neutral_frame, start, end, config,
                                                                     progress)
    # 3. Fit expression weights and the head pose to every frame, relative to the neutral one.
    fit_start = time.perf_counter()
    names, weights, table = _fit_frames(model, info, tracked, found, neutral_index, pose, config, progress)
    fit_s = time.perf_counter() - fit_start
    landmarks = np.stack([t.landmarks if t.landmarks is not None else np.full((68, 2), np.nan) for t in tracked])
    # 4. Render the driven avatar (and the side-by-side view and the sequence file).
    timings: dict[str, float] = {"decode_s": decode_s, "track_s": track_s, "fit_s": fit_s}
    paths = _write_outputs(out, loaded, setup, info, names, weights, table if pose else None, landmarks, side_by_side,
                           sequence_out, config, timings, progress)
    # 5. Write the report beside the video.
    report = _report(info, tracked, found, neutral_index, setup, flame_landmarks, pose, timings, paths)
    report_path = out.with_name(out.stem + ".report.json")
    write_json(report, report_path)
    paths["report"] = report_path
    return DriveResult(report, names, weights, table, landmarks, paths)


def _open_inputs(
    avatar: str | os.PathLike, video: str | os.PathLike, out: str | os.PathLike, smooth: float, start: float | None,
    end: float | None, flame: str | os.PathLike | None, flame_masks: str | os.PathLike | None,
    flame_landmarks: str | os.PathLike | None, config: DriveConfig,
) -> tuple[Path, VideoInfo, Avatar, HeadSetup, LandmarkModel]:
    """Step 1: the output path, the video's description, the avatar, its template and landmark model."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"output {out} must be an .mp4 file")
    if smooth < 0:
        raise InputError(f"--smooth must be ≥ 0, got {smooth}")
    avatar_dir = Path(avatar)
    if not avatar_dir.is_dir():
        raise InputError(f"{avatar_dir} is not an avatar folder (written by `arc2avatar create`)")
    info = probe_video(video, config.video, start, end)  # the cheap check first
    loaded = Avatar.load(avatar_dir)
    setup = setup_for_avatar(loaded, flame, flame_masks)
    model = _landmark_model(setup, flame_landmarks, config)
    if info.resampled:
        log.warning("%s has a variable frame rate: resampled to a constant %.3f frames/s", info.path, info.fps)
    if info.downscaled:
        log.info("%s is %dx%d: tracked at %dx%d", info.path, *info.source_size, *info.size)
    return out, info, loaded, setup, model


def _track_faces(
    info: VideoInfo, smooth: float, neutral_frame: int | None, start: float | None, end: float | None,
    config: DriveConfig, progress: bool,
) -> tuple[list[TrackedFrame], np.ndarray, int, float, float]:
    """Step 2: the tracked frames, which of them show a face, the neutral frame's index and the
    decode and tracking seconds."""
    tracked, decode_s, track_s = track_video(info, smooth, config.track, progress)
    if not tracked:
        raise InputError(f"{info.path} holds no frames{' in the chosen time range' if start or end else ''}")
    found = np.array([t.landmarks is not None for t in tracked])
    if not found.any():
        raise InputError(f"no face was found in any of the {len(tracked)} frames of {info.path}; the face must be "
                         "visible, frontal-ish and at least ≈ 40 pixels wide")
    missing = int((~found).sum())
    if missing:
        log.warning("no face in %d of %d frames: their expressions and pose are interpolated", missing, len(tracked))
    neutral_index = int(np.flatnonzero(found)[0]) if neutral_frame is None else int(neutral_frame)
    if not 0 <= neutral_index < len(tracked) or not found[neutral_index]:
        raise InputError(f"--neutral-frame {neutral_frame}: the video has {len(tracked)} frames and that frame "
                         "must show a face")
    return tracked, found, neutral_index, decode_s, track_s


def _fit_frames(
    model: LandmarkModel, info: VideoInfo, tracked: list[TrackedFrame], found: np.ndarray, neutral_index: int,
    pose: bool, config: DriveConfig, progress: bool,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Step 3: expression names, (T, K) weights and the (T, 7) head-pose table (identity rows
    without ``pose``); frames without a face are interpolated."""
    fitter = FrameFitter(model, DriveCamera(info.size[0], info.size[1], config.fit), config.fit)
    neutral = fitter.set_neutral(tracked[neutral_index].landmarks)
    names = model.names
    weights = np.zeros((len(tracked), len(names)))
    table = np.zeros((len(tracked), 7))
    for index in _progress(range(len(tracked)), len(tracked), "fitting", progress):
        if found[index]:
            frame_pose = fitter.fit(tracked[index].landmarks)
            weights[index] = frame_pose.weights
            table[index] = _relative_pose(frame_pose, neutral)
    names, weights = merge_halves(names, _fill_missing(weights, found))
    table = _fill_missing(table, found)
    if not pose:
        table[:] = [0, 0, 0, 0, 0, 0, 1]
    return names, weights, table


def _report(
    info: VideoInfo, tracked: list[TrackedFrame], found: np.ndarray, neutral_index: int, setup: HeadSetup,
    flame_landmarks: str | os.PathLike | None, pose: bool, timings: dict[str, float], paths: dict[str, Path],
) -> dict[str, Any]:
    """Step 5: the run's report (``OUT.report.json``)."""
    frames = len(tracked)
    return {
        "video": str(info.path),
        "frames": frames,
        "fps": info.fps,
        "size": list(info.size),
        "source_size": list(info.source_size),
        "downscaled": info.downscaled,
        "resampled_vfr": info.resampled,
        "frames_without_face": int((~found).sum()),
        "frames_detected": int(sum(t.detected for t in tracked)),
        "mean_confidence": float(np.mean([t.confidence for t in tracked])),
        "neutral_frame": neutral_index,
        "template": setup.info.get("kind"),
        "landmarks": _landmark_source(setup, flame_landmarks),
        "head_pose": pose,
        "stage_fps": {name[:-2]: (frames / seconds if seconds > 0 else None) for name, seconds in timings.items()},
        "stage_seconds": timings,
        "outputs": {k: str(v) for k, v in paths.items()},
    }


def _landmark_model(setup: HeadSetup, flame_landmarks: str | os.PathLike | None, config: DriveConfig) -> LandmarkModel:
    """The fit's template side: the built-in table, or FLAME's coefficients and jaw."""
    if setup.info.get("kind") == "flame":

        embedding = None if flame_landmarks is None else read_landmark_embedding(flame_landmarks)
        return flame_landmark_model(setup.base, embedding, config.flame, landmark_residuals())
    if flame_landmarks is not None:
        raise InputError(f"--flame-landmarks is for avatars made on FLAME; this one was made on {setup.info.get('name')}")
    head = setup.upsampled.head
    points, vertex_index = template_landmarks(head)
    return landmark_model(head, points, vertex_index, config.fit.expressions, landmark_residuals(),
                          config.fit.agreeing_halves, config.fit.half_blend)


def _landmark_source(setup: HeadSetup, flame_landmarks: str | os.PathLike | None) -> str:
    if setup.info.get("kind") != "flame":
        return "built-in table"
    return f"FLAME embedding {Path(flame_landmarks).name}" if flame_landmarks else "built-in table carried onto FLAME"


def split_joints(names: tuple[str, ...], weights: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """Expression ``names``/``weights`` (T, K) without the jaw column, and the jaw's (T, 3)
    axis-angle poses from it (a rotation about FLAME's jaw x axis; None when not fitted)."""
    if JAW_NAME not in names:
        return names, weights, None
    column = names.index(JAW_NAME)
    jaw = np.zeros((len(weights), 3))
    jaw[:, 0] = weights[:, column]
    keep = [i for i in range(len(names)) if i != column]
    return tuple(names[i] for i in keep), weights[:, keep], jaw


def sequence_json(names: tuple[str, ...], weights: np.ndarray, head_pose: np.ndarray | None, fps: float) -> dict:
    """The ``animate --sequence`` JSON of fitted weights (and head pose; a fitted FLAME jaw goes
    into ``joints``)."""
    names, weights, jaw = split_joints(names, weights)
    data: dict[str, Any] = {"fps": float(fps),
                            "frames": [{n: round(float(w), 6) for n, w in zip(names, row)} for row in weights]}
    if head_pose is not None:
        data["head_pose"] = pose_table_rows(head_pose)
    if jaw is not None:
        data["joints"] = [{"jaw": [round(float(v), 6) for v in row]} for row in jaw]
    return data


def _draw_landmarks(frame: np.ndarray, landmarks: np.ndarray, height: int, radius: float) -> np.ndarray:
    """The input frame scaled to ``height`` rows with its landmarks drawn (green dots)."""
    from PIL import Image, ImageDraw

    scale = height / frame.shape[0]
    width = max(2, round(frame.shape[1] * scale / 2) * 2)
    image = Image.fromarray(frame).resize((width, height), Image.BILINEAR)
    if not np.isnan(landmarks).any():
        draw = ImageDraw.Draw(image)
        for x, y in (landmarks + 0.5) * scale:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(40, 220, 60))
    return np.asarray(image)


def _write_outputs(out: Path, avatar: Avatar, setup: HeadSetup, info: VideoInfo, names: tuple[str, ...], weights: np.ndarray,
                   head_pose: np.ndarray | None, landmarks: np.ndarray, side_by_side: bool,
                   sequence_out: str | os.PathLike | None, config: DriveConfig, timings: dict[str, float],
                   progress: bool) -> dict[str, Path]:
    rig = FaceRig(avatar.splats, setup)
    expression_names, expression_weights, jaw = split_joints(names, weights)
    camera = orbit_cameras(config.radius, 90.0, 0.0, config.fovy, config.size, config.size)
    inputs = read_frames(info) if side_by_side else None
    render_s = [0.0]

    def frames() -> Iterator[np.ndarray]:
        for index in _progress(range(len(weights)), len(weights), "rendering", progress):
            start = time.perf_counter()
            joints = None if jaw is None else {"jaw": jaw[index].tolist()}
            splats = rig.pose(dict(zip(expression_names, expression_weights[index].tolist())), joints)
            if head_pose is not None:
                splats = pose_splats(splats, HeadPose.from_vector(head_pose[index]))
            image = (Avatar(splats, avatar.template).render_cameras(camera)[0].numpy() * 255).round().astype(np.uint8)
            if inputs is not None:
                source = next(inputs, None)
                if source is not None:
                    image = np.concatenate([_draw_landmarks(source, landmarks[index], config.size,
                                                            config.landmark_radius_px), image], axis=1)
            render_s[0] += time.perf_counter() - start
            yield image

    paths: dict[str, Path] = {}
    encode_start = time.perf_counter()
    write_video(frames(), out, fps=max(1, round(info.fps)), quality=config.quality)
    timings["render_s"] = render_s[0]
    timings["encode_s"] = time.perf_counter() - encode_start - render_s[0]
    paths["video"] = out
    if sequence_out is not None:
        text = json.dumps(sequence_json(names, weights, head_pose, info.fps), indent=1)
        atomic_write_text(sequence_out, text + "\n")
        paths["sequence"] = Path(sequence_out)
    return paths


__all__ = ["DriveConfig", "DriveResult", "drive", "sequence_json", "split_joints", "track_video"]
