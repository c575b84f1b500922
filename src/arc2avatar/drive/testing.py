"""Test machinery of driving: a known performance rendered as a driver video (closed loop).

``known_sequence`` is a sequence in which jaw_open, smile and brow_raise rise and fall at
different times (so their correlations with each other are low), both eyes blink at
``blink_frames``, and the head turns ±``yaw_deg`` and nods ±``pitch_deg``; frame 0 is the
neutral face looking at the camera. ``render_driver`` renders it on a photo-textured avatar
(``evaluate.testing.photo_avatar``) through ``animate``'s own frame renderer, so the drive is
checked against what ``animate --sequence`` makes of the same file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from arc2avatar.pipeline.expressions import ExpressionSequence


@dataclass(frozen=True)
class KnownPerformance:
    """The closed loop's performance, frames at ``fps``.

    Attributes:
        frames: number of frames.
        fps: frames per second.
        yaw_deg: amplitude of the head turn (one full left-right cycle), degrees.
        pitch_deg: amplitude of the nod (two cycles), degrees.
        blink_frames: frames at which both eyes are fully closed.
        blink_half_width: frames from closed to open.
    """

    frames: int = 64
    fps: float = 24.0
    yaw_deg: float = 20.0
    pitch_deg: float = 10.0
    blink_frames: tuple[int, ...] = (20, 52)
    blink_half_width: float = 2.5


def _bump(t: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    x = np.clip(np.abs(t - centre) / half_width, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(math.pi * x)


def known_sequence(p: KnownPerformance = KnownPerformance()) -> ExpressionSequence:
    """The performance as an ``ExpressionSequence`` with a head pose (see the module docstring)."""
    t = np.arange(p.frames, dtype=np.float64)
    n = p.frames / 64.0  # the design is written for 64 frames and stretched
    jaw = 0.8 * _bump(t, 14 * n, 8 * n) + 0.6 * _bump(t, 46 * n, 8 * n)
    smile = 0.9 * _bump(t, 30 * n, 10 * n)
    brow = 1.0 * _bump(t, 39 * n, 7 * n) + 0.7 * _bump(t, 8 * n, 6 * n)
    blink = np.zeros_like(t)
    for frame in p.blink_frames:
        blink = np.maximum(blink, np.clip(1.0 - np.abs(t - frame) / p.blink_half_width, 0.0, 1.0))
    names = ("jaw_open", "smile", "brow_raise", "blink_left", "blink_right")
    weights = np.stack([jaw, smile, brow, blink, blink], axis=1)
    pose = np.zeros((p.frames, 7))
    pose[:, 0] = p.yaw_deg * np.sin(2 * math.pi * t / p.frames)
    pose[:, 1] = p.pitch_deg * np.sin(4 * math.pi * t / p.frames)
    pose[:, 6] = 1.0
    return ExpressionSequence(p.fps, names, torch.from_numpy(weights).float(), torch.from_numpy(pose).float())


def render_driver(avatar, setup, sequence: ExpressionSequence, size: int, radius: float = 4.5):
    """(T, size, size, 3) uint8 frames of ``sequence`` on ``avatar`` (``animation_frames``)."""
    from arc2avatar.pipeline.expressions import AnimationConfig, animation_frames

    config = AnimationConfig(size=size, radius=radius)
    frames = [(f.numpy() * 255).round().astype(np.uint8) for f in animation_frames(avatar, setup, sequence, config)]
    return np.stack(frames)





def render_textured_driver(photo: np.ndarray, keypoints: np.ndarray, sequence: ExpressionSequence, size: int,
                           radius: float = 4.5, face_levels: int = 1) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of ``sequence`` on the photo-textured oracle target
    (``pipeline.oracle.default_target``: the photo sampled at full resolution, sharper than splats),
    deformed by the built-in blendshapes and posed by ``avatar.pose``, from the frontal camera."""
    from dataclasses import replace

    from arc2avatar.avatar.pose import HeadPose, transform_points
    from arc2avatar.pipeline.config import TemplateConfig
    from arc2avatar.pipeline.oracle import default_target, frontal_camera
    from arc2avatar.pipeline.template import build_head

    head = build_head(TemplateConfig(face_levels=face_levels, rest_levels=0)).upsampled.head
    target = default_target(head, photo=photo, photo_keypoints=keypoints)
    camera = frontal_camera(size, radius=radius)
    frames = []
    for index in range(sequence.num_frames):
        deformed = head.deform(head.expression_vector(sequence.frame(index)))
        vertices = target.vertices + (deformed - head.vertices)
        if sequence.head_pose is not None:
            vertices = transform_points(vertices, HeadPose.from_vector(sequence.head_pose[index]))
        image = replace(target, vertices=vertices).render(camera)[0]
        frames.append((image.numpy() * 255).round().astype(np.uint8))
    return np.stack(frames)
__all__ = ["KnownPerformance", "known_sequence", "render_driver", "render_textured_driver"]
