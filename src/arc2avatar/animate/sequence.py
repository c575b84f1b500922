"""Expression sequences: per-frame weights read from JSON / NPZ files or made by a preset.

Formats in docs/expressions.md. Written by hand: the formats and presets are ours.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from arc2avatar._io import npz_size_problem, read_json
from arc2avatar.avatar.pose import check_pose_table, pose_rows_to_tensor
from arc2avatar.avatar.rig import MAX_EXPRESSION_WEIGHT, MAX_POSE_RADIANS
from arc2avatar.errors import InputError, short_list


@dataclass(frozen=True)
class ExpressionSequence:
    """Per-frame expression weights.

    Attributes:
        fps: frames per second of the video.
        names: the K expression names the columns refer to (a subset of the template's).
        weights: (T, K) float32 weights, one row per frame.
        head_pose: optional (T, 7) float32 rigid head pose per frame (``arc2avatar.avatar.pose``:
            yaw, pitch, roll in degrees, translation x, y, z, scale); ``animate`` turns the whole
            avatar with it.
        joints: optional joint poses per frame, joint name → (T, 3) float32 axis-angle radians in
            the template's own joint frame (FLAME: ``{"jaw": ...}``, ``HeadModel.pose_names``);
            ``animate`` deforms the face through the template's skinning with them.
    """

    fps: float
    names: tuple[str, ...]
    weights: Tensor
    head_pose: Tensor | None = None
    joints: dict[str, Tensor] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.weights.shape[0])

    def frame(self, index: int) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.names, self.weights[index])}

    def joint_frame(self, index: int) -> dict[str, list[float]] | None:
        """Frame ``index``'s joint poses (``FaceRig.pose``'s ``pose``), or None without joints."""
        if not self.joints:
            return None
        return {name: [float(v) for v in values[index]] for name, values in self.joints.items()}


# Limits of a sequence file: frames (an hour at 30 fps), frame rate, distinct expression names
# (the FLAME template has 100 components, the built-in one 12), distinct joints (FLAME: 5), the
# JSON file's size (an hour of 30 fps with a dozen names per frame is ≈ 30 MB) and the NPZ's
# decompressed size. Every limit is checked before a table is built, so a hostile file costs
# time and memory in proportion to its size, never its frames × names (issue 26).
MAX_SEQUENCE_FRAMES = 108_000
MAX_SEQUENCE_FPS = 240.0
MAX_SEQUENCE_NAMES = 256
MAX_SEQUENCE_JOINTS = 16
MAX_SEQUENCE_JSON_BYTES = 64 << 20
MAX_SEQUENCE_BYTES = 256 << 20


def _is_number(value: Any) -> bool:
    """A JSON number (not a bool, not a string such as ``"0.5"``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _column_names(rows: list[dict[str, Any]], limit: int, what: str, source: str) -> list[str]:
    """The sorted distinct keys of ``rows``, refused (once, in one short line) beyond ``limit``."""
    names: set[str] = set()
    for row in rows:
        names.update(row)
        if len(names) > limit:
            raise InputError(f"{source}: more than {limit} distinct {what} names (e.g. {short_list(sorted(names), 4)}); "
                             f"no template has that many")
    return sorted(names)


def _joints_from_rows(rows: Any, num_frames: int, source: str) -> dict[str, Tensor]:
    """Joint name → (T, 3) from a JSON ``joints`` list (one ``{name: [x, y, z]}`` object per frame;
    a joint missing from a frame is at rest)."""
    if not isinstance(rows, list) or len(rows) != num_frames or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{source}: 'joints' must be a list of {num_frames} objects (one per frame) mapping joint "
                         "names to axis-angle [x, y, z] in radians")
    names = _column_names(rows, MAX_SEQUENCE_JOINTS, "joint", source)
    table = np.zeros((num_frames, len(names), 3), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32 becomes ±inf, refused by the value check
        _fill_joints(table, rows, {name: j for j, name in enumerate(names)}, source)
    return {name: torch.from_numpy(table[:, j].copy()) for j, name in enumerate(names)}


def _fill_joints(table: np.ndarray, rows: list[dict[str, Any]], column: dict[str, int], source: str) -> None:
    """Write each frame's joint poses into ``table`` (T, J, 3); each value must be 3 JSON numbers."""
    for t, row in enumerate(rows):
        for name, value in row.items():
            if not isinstance(value, list) or len(value) != 3 or not all(_is_number(v) for v in value):
                raise InputError(f"{source}: frame {t}: joint {name[:40]!r} must be a list of 3 numbers (axis-angle, "
                                 f"radians), got {json.dumps(value)[:40]}")
            try:
                table[t, column[name]] = value
            except OverflowError:  # an integer beyond float range; the value check names the bound
                table[t, column[name]] = math.inf


def _sequence_from_rows(fps: Any, frames: Any, source: str, head_pose: Any = None, joints: Any = None
                        ) -> ExpressionSequence:
    if not _is_number(fps) or not fps > 0:
        raise InputError(f"{source}: 'fps' must be a positive number, got {json.dumps(fps)[:40]}")
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise InputError(f"{source}: 'frames' must be a non-empty list of {{name: weight}} objects")
    if len(frames) > MAX_SEQUENCE_FRAMES:
        raise InputError(f"{source}: {len(frames)} frames, more than the {MAX_SEQUENCE_FRAMES} accepted")
    names = _column_names(frames, MAX_SEQUENCE_NAMES, "expression", source)
    weights = np.zeros((len(frames), len(names)), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32 becomes ±inf, refused by the value check
        _fill_weights(weights, frames, {name: k for k, name in enumerate(names)}, source)
    pose = None
    if head_pose is not None:
        pose = pose_rows_to_tensor(head_pose, len(frames), source)
    joint_table = None if joints is None else _joints_from_rows(joints, len(frames), source)
    return ExpressionSequence(float(fps), tuple(names), torch.from_numpy(weights), pose, joint_table)


def _fill_weights(weights: np.ndarray, frames: list[dict[str, Any]], column: dict[str, int], source: str) -> None:
    """Write each frame's weights into ``weights`` (T, K); each must be a JSON number."""
    for t, frame in enumerate(frames):
        for name, weight in frame.items():
            if not _is_number(weight):
                raise InputError(f"{source}: frame {t}: the weight of {name[:40]!r} must be a number, got "
                                 f"{json.dumps(weight)[:40]}")
            try:
                weights[t, column[name]] = weight
            except OverflowError:  # an integer beyond float range; the value check names the bound
                weights[t, column[name]] = math.inf


def _checked_sequence(sequence: ExpressionSequence, path: Path) -> ExpressionSequence:
    """The one value check of a loaded sequence (JSON or NPZ): frame count, fps, finite bounded weights."""
    if not 0 < sequence.fps <= MAX_SEQUENCE_FPS:
        raise InputError(f"sequence file {path}: 'fps' must be in (0, {MAX_SEQUENCE_FPS:g}], got {sequence.fps}")
    if sequence.num_frames > MAX_SEQUENCE_FRAMES:
        raise InputError(f"sequence file {path}: {sequence.num_frames} frames, more than the {MAX_SEQUENCE_FRAMES} accepted")
    if not bool((sequence.weights.abs() <= MAX_EXPRESSION_WEIGHT).all()):
        raise InputError(f"sequence file {path}: weights must be finite numbers within ±{MAX_EXPRESSION_WEIGHT:g}")
    if sequence.joints and not all(bool((v.abs() <= MAX_POSE_RADIANS).all()) for v in sequence.joints.values()):
        raise InputError(f"sequence file {path}: joint poses must be finite axis-angles within ±{MAX_POSE_RADIANS:.3g} rad")
    return sequence


def load_sequence(path: str | os.PathLike, default_fps: float = 30.0) -> ExpressionSequence:
    """Read a sequence file (format in docs/expressions.md).

    JSON: ``{"fps": 30, "frames": [{"smile": 0.3}, {"smile": 0.5, "jaw_open": 0.1}, ...]}``
    (a name missing from a frame weighs 0), optional ``"head_pose"``: one object per frame with
    ``yaw_deg, pitch_deg, roll_deg, tx, ty, tz, scale`` (``arc2avatar.avatar.pose``). NPZ:
    ``weights`` (T, K) float, ``names`` (K,) str, optional scalar ``fps``, optional ``head_pose``
    (T, 7). Optional joint poses (FLAME templates): JSON ``"joints"``, one ``{"jaw": [x, y, z]}``
    object per frame; NPZ ``joint_names`` (J,) str with ``joint_poses`` (T, J, 3), radians.
    Raises ``InputError`` naming the file on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sequence file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = read_json(path, "sequence file", max_bytes=MAX_SEQUENCE_JSON_BYTES)
        if not isinstance(data, dict):
            raise InputError(f"sequence file {path} must hold a JSON object with 'fps' and 'frames'")
        return _checked_sequence(
            _sequence_from_rows(data.get("fps", default_fps), data.get("frames"), str(path), data.get("head_pose"),
                                data.get("joints")), path)
    if suffix == ".npz":
        problem = npz_size_problem(path, MAX_SEQUENCE_BYTES)
        if problem:
            raise InputError(f"sequence file {path}: {problem}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"sequence file {path} is not a readable NPZ ({exc})") from None
        if "weights" not in arrays or "names" not in arrays:
            raise InputError(f"sequence file {path} needs arrays 'weights' (T, K) and 'names' (K,)")
        weights, names = arrays["weights"], arrays["names"]
        if weights.ndim != 2 or names.ndim != 1 or weights.shape[1] != names.shape[0] or weights.shape[0] == 0:
            raise InputError(f"sequence file {path}: 'weights' must be (T, K) with T ≥ 1 and 'names' (K,); "
                             f"got {weights.shape} and {names.shape}")
        if weights.dtype.kind not in REAL_KINDS or names.dtype.kind not in "US":
            raise InputError(f"sequence file {path}: 'weights' must be real numbers (not {weights.dtype}) and 'names' "
                             "strings")
        _check_npz_names(names, MAX_SEQUENCE_NAMES, "expression", path)
        fps_array = arrays.get("fps", np.asarray(default_fps))
        if fps_array.shape not in ((), (1,)) or fps_array.dtype.kind not in REAL_KINDS:
            raise InputError(f"sequence file {path}: 'fps' must be one real number")
        fps = float(fps_array.reshape(()))
        pose = None
        if "head_pose" in arrays:
            if arrays["head_pose"].dtype.kind not in REAL_KINDS:
                raise InputError(f"sequence file {path}: 'head_pose' must be real numbers, not {arrays['head_pose'].dtype}")
            pose = check_pose_table(torch.from_numpy(np.asarray(arrays["head_pose"], dtype=np.float32)), str(path))
            if pose.shape[0] != weights.shape[0]:
                raise InputError(f"sequence file {path}: 'head_pose' has {pose.shape[0]} rows for {weights.shape[0]} frames")
        joints = _npz_joints(arrays, weights.shape[0], path)
        sequence = ExpressionSequence(fps, tuple(str(n) for n in names), torch.from_numpy(weights.astype(np.float32)), pose,
                                      joints)
        return _checked_sequence(sequence, path)
    raise InputError(f"sequence file {path}: expected a .json or .npz file")


# numpy dtype kinds accepted as numbers in an NPZ sequence: integers and floats (not complex, not bool).
REAL_KINDS = "iuf"


def _check_npz_names(names: np.ndarray, limit: int, what: str, path: Path) -> None:
    """An NPZ's column names: at most ``limit``, none given twice (one short ``InputError``)."""
    if names.shape[0] > limit:
        raise InputError(f"sequence file {path}: {names.shape[0]} {what} names, more than the {limit} accepted")
    seen: set[str] = set()
    twice = sorted({str(n) for n in names if str(n) in seen or seen.add(str(n))})
    if twice:
        raise InputError(f"sequence file {path}: {what} name(s) {short_list(twice)} appear more than once")


def _npz_joints(arrays: dict[str, np.ndarray], num_frames: int, path: Path) -> dict[str, Tensor] | None:
    """An NPZ sequence's ``joint_names`` (J,) and ``joint_poses`` (T, J, 3), or None without them."""
    if "joint_names" not in arrays and "joint_poses" not in arrays:
        return None
    names, poses = arrays.get("joint_names"), arrays.get("joint_poses")
    if (names is None or poses is None or names.ndim != 1 or names.dtype.kind not in "US"
            or poses.dtype.kind not in REAL_KINDS or poses.shape != (num_frames, names.shape[0], 3)):
        raise InputError(f"sequence file {path}: joint poses need 'joint_names' (J,) strings and 'joint_poses' "
                         f"({num_frames}, J, 3) real numbers")
    _check_npz_names(names, MAX_SEQUENCE_JOINTS, "joint", path)
    table = torch.from_numpy(poses.astype(np.float32))
    return {str(name): table[:, j] for j, name in enumerate(names)}


@dataclass(frozen=True)
class PresetSequenceConfig:
    """Procedural sequences ``--preset`` (ours; the built-in template's expression names).

    Attributes:
        fps: frame rate, frames/s.
        duration_s: length of every preset, seconds.
        smile_peak: smile weight held in the middle of ``smile``.
        surprise_jaw, surprise_brow: jaw_open and brow_raise peaks of ``surprise``.
        talk_jaw: largest jaw_open of ``talk``; talk_syllable_hz: mouth openings per second.
        blink_times: blink centres as fractions of the duration; blink_half_width_s: half the
            length of one blink, seconds.
        ramp_fraction: share of the duration spent ramping in (and out) for smile/surprise.
    """

    fps: float = 30.0
    duration_s: float = 3.0
    smile_peak: float = 0.9
    surprise_jaw: float = 0.6
    surprise_brow: float = 1.0
    talk_jaw: float = 0.55
    talk_syllable_hz: float = 4.0
    blink_times: tuple[float, ...] = (0.3, 0.75)
    blink_half_width_s: float = 0.08
    ramp_fraction: float = 0.3


PRESET_NAMES: tuple[str, ...] = ("smile", "surprise", "talk", "blink")


def preset_sequence(name: str, config: PresetSequenceConfig = PresetSequenceConfig()) -> ExpressionSequence:
    """A named procedural sequence: ``smile``, ``surprise``, ``talk`` or ``blink``."""
    frames = max(1, int(round(config.fps * config.duration_s)))
    t = torch.arange(frames, dtype=torch.float32) / max(frames - 1, 1)  # (T,) in [0, 1]
    ramp = (torch.minimum(t, 1.0 - t) / config.ramp_fraction).clamp(0.0, 1.0)
    envelope = 0.5 - 0.5 * torch.cos(math.pi * ramp)  # smooth in, hold, smooth out
    if name == "smile":
        return ExpressionSequence(config.fps, ("smile",), (config.smile_peak * envelope)[:, None])
    if name == "surprise":
        weights = torch.stack([config.surprise_jaw * envelope, config.surprise_brow * envelope], dim=1)
        return ExpressionSequence(config.fps, ("jaw_open", "brow_raise"), weights)
    if name == "talk":
        seconds = t * config.duration_s
        syllables = 0.5 - 0.5 * torch.cos(2 * math.pi * config.talk_syllable_hz * seconds)
        accent = 0.6 + 0.4 * torch.sin(2 * math.pi * 0.7 * seconds).abs()  # uneven syllables
        return ExpressionSequence(config.fps, ("jaw_open",), (config.talk_jaw * syllables * accent)[:, None])
    if name == "blink":
        seconds = t * config.duration_s
        closed = torch.zeros(frames)
        for centre in config.blink_times:
            distance = (seconds - centre * config.duration_s).abs() / config.blink_half_width_s
            closed = torch.maximum(closed, (1.0 - distance).clamp(0.0, 1.0))
        return ExpressionSequence(config.fps, ("blink_left", "blink_right"), torch.stack([closed, closed], dim=1))
    raise InputError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
