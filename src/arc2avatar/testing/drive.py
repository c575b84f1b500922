"""Test machinery of driving: a known performance rendered as a driver video (closed loop).

``known_sequence`` is a sequence in which jaw_open, smile and brow_raise rise and fall at
different times (so their correlations with each other are low), both eyes blink at
``blink_frames``, and the head turns ±``yaw_deg`` and nods ±``pitch_deg``; frame 0 is the
neutral face looking at the camera. ``render_driver`` renders it on a photo-textured avatar
(``testing.photos.photo_avatar``) through ``animate``'s own frame renderer, so the drive is
checked against what ``animate --sequence`` makes of the same file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from arc2avatar.drive.landmarks import NUM_LANDMARKS, lift_landmarks
from arc2avatar.animate.sequence import ExpressionSequence
from arc2avatar.animate.render import AnimationConfig, animation_frames
from arc2avatar.avatar.pose import HeadPose, transform_points
from arc2avatar.avatar.template import TemplateConfig, build_head
from arc2avatar.drive.fit import DriveCamera, FitConfig
from arc2avatar.identity.dlib_faces import DlibFaceDetector
from arc2avatar.pipeline.oracle import default_target, frontal_camera
from arc2avatar.testing.photos import grace_hopper_photo


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


def _blinks(t: np.ndarray, frames: tuple[int, ...], half_width: float) -> np.ndarray:
    """Both eyes' blink weight: 1 at each of ``frames``, falling linearly to 0 over ``half_width``."""
    blink = np.zeros_like(t)
    for frame in frames:
        blink = np.maximum(blink, np.clip(1.0 - np.abs(t - frame) / half_width, 0.0, 1.0))
    return blink


def known_sequence(p: KnownPerformance = KnownPerformance()) -> ExpressionSequence:
    """The performance as an ``ExpressionSequence`` with a head pose (see the module docstring)."""
    t = np.arange(p.frames, dtype=np.float64)
    n = p.frames / 64.0  # the design is written for 64 frames and stretched
    jaw = 0.8 * _bump(t, 14 * n, 8 * n) + 0.6 * _bump(t, 46 * n, 8 * n)
    smile = 0.9 * _bump(t, 30 * n, 10 * n)
    brow = 1.0 * _bump(t, 39 * n, 7 * n) + 0.7 * _bump(t, 8 * n, 6 * n)
    blink = _blinks(t, p.blink_frames, p.blink_half_width)
    names = ("jaw_open", "smile", "brow_raise", "blink_left", "blink_right")
    weights = np.stack([jaw, smile, brow, blink, blink], axis=1)
    pose = np.zeros((p.frames, 7))
    pose[:, 0] = p.yaw_deg * np.sin(2 * math.pi * t / p.frames)
    pose[:, 1] = p.pitch_deg * np.sin(4 * math.pi * t / p.frames)
    pose[:, 6] = 1.0
    return ExpressionSequence(p.fps, names, torch.from_numpy(weights).float(), torch.from_numpy(pose).float())


@dataclass(frozen=True)
class TogetherPerformance:
    """A performance in which jaw_open and smile vary at once (issue 24): each is a sum of
    ``sin²`` humps over the clip, ``jaw_cycles`` and ``smile_cycles`` of them (different whole
    numbers, so the two curves are uncorrelated over the clip while overlapping most of the
    time), with blinks of both eyes at ``blink_frames`` and one left-right head turn of
    ±``yaw_deg``; frame 0 is the neutral face looking at the camera.

    Attributes:
        frames, fps: the clip's length and rate.
        jaw_amplitude, smile_amplitude: peak weights.
        jaw_cycles, smile_cycles: humps over the clip.
        yaw_deg: amplitude of the head turn, degrees.
        blink_frames: frames at which both eyes are fully closed.
        blink_half_width: frames from closed to open.
    """

    frames: int = 48
    fps: float = 24.0
    jaw_amplitude: float = 0.5
    smile_amplitude: float = 0.9
    jaw_cycles: int = 1
    smile_cycles: int = 2
    yaw_deg: float = 12.0
    blink_frames: tuple[int, ...] = (16, 38)
    blink_half_width: float = 2.5


def together_sequence(p: TogetherPerformance = TogetherPerformance()) -> ExpressionSequence:
    """The ``TogetherPerformance`` as an ``ExpressionSequence`` with a head pose."""
    t = np.arange(p.frames, dtype=np.float64)
    phase = math.pi * t / p.frames
    jaw = p.jaw_amplitude * np.sin(p.jaw_cycles * phase) ** 2
    smile = p.smile_amplitude * np.sin(p.smile_cycles * phase) ** 2
    blink = _blinks(t, p.blink_frames, p.blink_half_width)
    names = ("jaw_open", "smile", "blink_left", "blink_right")
    weights = np.stack([jaw, smile, blink, blink], axis=1)
    pose = np.zeros((p.frames, 7))
    pose[:, 0] = p.yaw_deg * np.sin(2 * phase)
    pose[:, 6] = 1.0
    return ExpressionSequence(p.fps, names, torch.from_numpy(weights).float(), torch.from_numpy(pose).float())


def render_driver(avatar, setup, sequence: ExpressionSequence, size: int, radius: float = 4.5):
    """(T, size, size, 3) uint8 frames of ``sequence`` on ``avatar`` (``animation_frames``)."""
    config = AnimationConfig(size=size, radius=radius)
    frames = [(f.numpy() * 255).round().astype(np.uint8) for f in animation_frames(avatar, setup, sequence, config)]
    return np.stack(frames)





def render_textured_driver(photo: np.ndarray, keypoints: np.ndarray, sequence: ExpressionSequence, size: int,
                           radius: float = 4.5, face_levels: int = 1) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of ``sequence`` on the photo-textured oracle target
    (``pipeline.oracle.default_target``: the photo sampled at full resolution, sharper than splats),
    deformed by the built-in blendshapes and posed by ``avatar.pose``, from the frontal camera."""
    from dataclasses import replace


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
__all__ = ["KnownPerformance", "TogetherPerformance", "known_sequence", "render_driver", "render_textured_driver",
           "together_sequence"]


# ─────────────── the recipe of drive/builtin_landmarks.json (tooling, not library) ───────────────
@dataclass(frozen=True)
class CalibrationConfig:
    """How ``calibrate_builtin_landmarks`` places dlib's landmarks on the template.

    Attributes:
        size: square render size, pixels.
        radius: camera distance of the renders, world units (the face ≈ 150 px wide).
        face_levels: template face subdivision levels of the textured target.
        yaws_deg, pitches_deg: the head poses rendered (every combination), degrees.
        pick_radius_px: frontal lifting: candidate vertices lie within this distance, pixels.
    """

    size: int = 384
    radius: float = 3.2
    face_levels: int = 1
    yaws_deg: tuple[float, ...] = (-24.0, -12.0, 0.0, 12.0, 24.0)
    pitches_deg: tuple[float, ...] = (-12.0, 0.0, 12.0)
    pick_radius_px: float = 3.0


def calibrate_builtin_landmarks(config: CalibrationConfig = CalibrationConfig()) -> dict:
    """Re-derive the stored table (see the module docstring); returns the JSON-ready dict."""
    from scipy.optimize import least_squares


    photo = grace_hopper_photo()
    detector = DlibFaceDetector()
    keypoints = detector.largest_face(photo).keypoints
    poses = [(yaw, pitch) for pitch in config.pitches_deg for yaw in config.yaws_deg]
    table = np.zeros((len(poses), 7))
    table[:, 0], table[:, 1], table[:, 6] = [p[0] for p in poses], [p[1] for p in poses], 1.0
    sequence = ExpressionSequence(30.0, (), torch.zeros(len(poses), 0), torch.from_numpy(table).float())
    frames = render_textured_driver(photo, keypoints, sequence, config.size, config.radius, config.face_levels)
    camera = DriveCamera(config.size, config.size, FitConfig(radius=config.radius))
    views: list[tuple[np.ndarray, np.ndarray]] = []  # (rotation, landmarks) per view with a face
    for frame, row in zip(frames, table):
        faces = detector.detect(frame)
        if faces:
            views.append((HeadPose.from_vector(row).rotation_matrix(), detector.landmarks_68(frame, faces[0].box)))
    head = build_head(TemplateConfig(face_levels=config.face_levels, rest_levels=0)).upsampled.head
    frontal = [lm for (rotation, lm), row in zip(views, table) if np.allclose(rotation, np.eye(3))]
    start = head.vertices[torch.from_numpy(lift_landmarks(head, frontal[0], frontal_camera(config.size, config.radius),
                                                          config.pick_radius_px))].double().numpy()
    positions = np.empty_like(start)
    residual_px = np.empty(NUM_LANDMARKS)
    for i in range(NUM_LANDMARKS):
        def residuals(point: np.ndarray, i: int = i) -> np.ndarray:
            return np.concatenate([camera.project((rotation @ point)[None])[0][0] - lm[i] for rotation, lm in views])

        fitted = least_squares(residuals, start[i])
        positions[i] = fitted.x
        residual_px[i] = np.sqrt((fitted.fun.reshape(-1, 2) ** 2).sum(1).mean())
    return {"template": head.name, "scheme": "iBUG 300-W 68 points (dlib shape_predictor_68_face_landmarks)",
            "recipe": "arc2avatar.testing.drive.calibrate_builtin_landmarks",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
            "views_used": len(views),
            "positions": [[round(float(v), 6) for v in p] for p in positions],
            "residual_px": [round(float(v), 3) for v in residual_px]}
