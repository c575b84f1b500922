"""Reading a driving video: frames, frame rate, variable frame rate, huge resolutions.

Decoding is ffmpeg's, through ``imageio-ffmpeg`` (its binary ships in the wheel). What this
module adds (written by hand, a few checks around ffmpeg):

* **Checks.** A file ffmpeg cannot open, one without a video stream, or one that decodes to no
  frame is refused with one ``InputError`` naming the file.
* **Variable frame rate.** Frames are always decoded through ffmpeg's ``fps`` filter at the
  stream's nominal rate, so a variable-frame-rate video becomes a constant-rate one by its
  timestamps (frames duplicated or dropped; a constant-rate video passes unchanged). A video
  counts as variable-rate (``VideoInfo.resampled``, a warning) when its number of frames
  (``imageio_ffmpeg.count_frames_and_secs``) differs from duration × nominal rate by more than
  ``VideoConfig.vfr_tolerance`` (and 2 frames).
* **Huge frames.** Frames whose longer side exceeds ``VideoConfig.max_side`` are downscaled by
  ffmpeg's ``scale`` filter while decoding (tracking works on faces of ≈ 80–400 px; the output
  video shows the downscaled frame too).
* **Time range.** ``start_s`` / ``end_s`` cut the video by ffmpeg's ``-ss`` / ``-t``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arc2avatar.errors import InputError, MissingDependencyError, error_line


@dataclass(frozen=True)
class VideoConfig:
    """How a driving video is decoded.

    Attributes:
        max_side: frames with a longer side above this many pixels are downscaled to it.
        vfr_tolerance: relative difference of the frame count and duration × nominal rate above
            which the video counts as variable-frame-rate.
    """

    max_side: int = 1280
    vfr_tolerance: float = 0.02


@dataclass(frozen=True)
class VideoInfo:
    """What was found out about a video before decoding it.

    Attributes:
        path: the file.
        fps: frames per second of the decoded (constant-rate) frames.
        source_size: (width, height) in the file, pixels.
        size: (width, height) of the decoded frames, pixels (smaller when downscaled).
        duration_s: the file's duration, seconds (0 when unknown).
        resampled: True when the video has a variable frame rate (resampled to ``fps``).
        downscaled: True when the frames are decoded smaller than stored.
        start_s, end_s: the time range decoded (end None = to the end).
    """

    path: Path
    fps: float
    source_size: tuple[int, int]
    size: tuple[int, int]
    duration_s: float
    resampled: bool
    downscaled: bool
    start_s: float = 0.0
    end_s: float | None = None


def _ffmpeg() -> Any:
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise MissingDependencyError(f"reading videos needs imageio-ffmpeg: pip install imageio-ffmpeg ({error})") from error
    return imageio_ffmpeg


def _even(value: float) -> int:
    return max(2, round(value / 2.0) * 2)


def probe_video(path: str | os.PathLike, config: VideoConfig = VideoConfig(), start_s: float | None = None,
                end_s: float | None = None) -> VideoInfo:
    """Open ``path`` and read its size, rate and duration (``InputError`` when it is no video)."""
    ffmpeg = _ffmpeg()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video {path} does not exist")
    if start_s is not None and start_s < 0 or end_s is not None and end_s <= (start_s or 0.0):
        raise InputError(f"--start/--end: need 0 ≤ start < end, got start={start_s}, end={end_s}")
    reader = ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        raise InputError(f"{path} is not a video ffmpeg can read ({error_line(error, last=True)}); give an MP4, "
                         "MOV, AVI, MKV or WebM file") from None
    finally:
        reader.close()
    width, height = (int(v) for v in meta.get("source_size") or meta.get("size") or (0, 0))
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    if width <= 0 or height <= 0 or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"{path} has no readable video stream (size {width}x{height}, {fps} frames/s)")
    resampled = False
    try:
        frames, seconds = ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError):
        frames, seconds = 0, 0.0
    span = seconds or duration
    if frames > 1 and span > 0:
        expected = span * fps
        resampled = abs(frames - expected) > max(2.0, config.vfr_tolerance * expected)
    scale = min(1.0, config.max_side / max(width, height))
    size = (width, height) if scale == 1.0 else (_even(width * scale), _even(height * scale))
    return VideoInfo(path, fps, (width, height), size, duration, resampled, scale < 1.0, float(start_s or 0.0), end_s)


def read_frames(info: VideoInfo) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of ``info.size`` at ``info.fps`` over the chosen time range."""
    ffmpeg = _ffmpeg()
    inputs: list[str] = ["-ss", f"{info.start_s:.6f}"] if info.start_s > 0 else []
    outputs: list[str] = []
    if info.end_s is not None:
        outputs += ["-t", f"{info.end_s - info.start_s:.6f}"]
    filters = [f"fps={info.fps}"]
    if info.downscaled:
        filters.append(f"scale={info.size[0]}:{info.size[1]}")
    if filters:
        outputs += ["-vf", ",".join(filters)]
    width, height = info.size
    reader = ffmpeg.read_frames(str(info.path), input_params=inputs or None, output_params=outputs or None)
    try:
        next(reader)  # metadata
        for buffer in reader:
            yield np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
    except (OSError, RuntimeError) as error:
        raise InputError(f"{info.path}: decoding failed ({error_line(error, last=True)})") from None
    finally:
        reader.close()


__all__ = ["VideoConfig", "VideoInfo", "probe_video", "read_frames"]
