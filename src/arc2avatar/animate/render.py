"""``arc2avatar animate``: one deformed avatar per frame of an ``ExpressionSequence``, rendered from
a fixed frontal camera or a slow orbit, written as an MP4."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from arc2avatar.animate.sequence import ExpressionSequence, load_sequence, preset_sequence
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.pose import HeadPose, pose_splats
from arc2avatar.avatar.safety import check_derived_output
from arc2avatar.avatar.rig import FaceRig, name_list, setup_for_avatar
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.errors import InputError, short_list
from arc2avatar._progress import track
from arc2avatar.avatar.media import write_video


@dataclass(frozen=True)
class AnimationConfig:
    """Camera path and video settings of ``animate``.

    Attributes:
        size: frame size, pixels (square).
        radius: camera distance, world units (4.5: the test views of docs/method.md §5).
        fovy: vertical field of view, radians (0.7, docs/method.md §5 test views).
        polar_deg: camera polar angle θ, degrees (90: eye level).
        orbit_amplitude_deg: ``--orbit`` swings the azimuth by ± this many degrees.
        orbit_cycles: full swings over the whole sequence with ``--orbit``.
        quality: imageio-ffmpeg quality 0–10.
    """

    size: int = 512
    radius: float = 4.5
    fovy: float = 0.7
    polar_deg: float = 90.0
    orbit_amplitude_deg: float = 30.0
    orbit_cycles: float = 1.0
    quality: int = 8


def animation_cameras(num_frames: int, config: AnimationConfig = AnimationConfig(), orbit: bool = False) -> Cameras:
    """(T,) cameras: frontal (φ = 0) on every frame, or a slow sinusoidal orbit around it."""
    t = torch.arange(num_frames, dtype=torch.float32) / max(num_frames, 1)
    azimuth = config.orbit_amplitude_deg * torch.sin(2 * math.pi * config.orbit_cycles * t) if orbit else torch.zeros(num_frames)
    return orbit_cameras(config.radius, config.polar_deg, azimuth, config.fovy, config.size, config.size)


def animation_frames(
    avatar: Avatar, setup: HeadSetup, sequence: ExpressionSequence, config: AnimationConfig = AnimationConfig(),
    orbit: bool = False,
) -> Iterator[Tensor]:
    """(H, W, 3) frames in [0, 1], one per row of ``sequence`` (rendered one by one)."""
    head = setup.upsampled.head
    unknown = sorted(set(sequence.names) - set(head.expression_names))
    if unknown:
        raise InputError(f"the sequence uses expression name(s) {short_list(unknown)} unknown to template {head.name}; "
                         f"valid names: {name_list(head.expression_names)}")
    joints = sorted(sequence.joints or ())
    if joints and not set(joints) <= set(head.pose_names or ()):
        valid = ", ".join(head.pose_names) if head.pose_names else "none"
        raise InputError(f"the sequence poses joint(s) {short_list(joints)} but template {head.name} has joints: {valid}")
    rig = FaceRig(avatar.splats, setup)
    cameras = animation_cameras(sequence.num_frames, config, orbit)
    for index in range(sequence.num_frames):
        splats = rig.pose(sequence.frame(index), sequence.joint_frame(index))
        if sequence.head_pose is not None:  # the whole head turns rigidly (arc2avatar.avatar.pose)
            splats = pose_splats(splats, HeadPose.from_vector(sequence.head_pose[index]))
        posed = Avatar(splats, avatar.template)
        yield posed.render_cameras(cameras[index:index + 1])[0]


def animate(
    avatar_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    sequence: str | os.PathLike | None = None,
    preset: str | None = None,
    orbit: bool = False,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    config: AnimationConfig = AnimationConfig(),
    progress: bool | None = None,
) -> int:
    """``arc2avatar animate``: render a sequence file or a preset to an MP4; returns the frame count.
    ``progress``: a bar per frame on stderr (None = only on a terminal)."""
    if (sequence is None) == (preset is None):
        raise InputError("give exactly one of --sequence FILE or --preset NAME")
    seq = load_sequence(sequence) if sequence is not None else preset_sequence(str(preset))
    check_derived_output(out_path, avatar_dir)  # never over the avatar's own files
    avatar = Avatar.load(avatar_dir)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    fps = seq.fps if float(seq.fps).is_integer() else round(seq.fps)
    frames = track(animation_frames(avatar, setup, seq, config, orbit), seq.num_frames, "animate", progress, unit="frame")
    return write_video(frames, out_path, fps=int(fps), quality=config.quality)
