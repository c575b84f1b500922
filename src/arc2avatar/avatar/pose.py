"""Rigid head pose of a whole avatar: turn, move and scale every splat (docs/driving.md).

A head pose is what a driving video adds to an expression: the head turns (yaw, pitch, roll),
moves and changes apparent size as a rigid whole. It acts on world points about the head's
centre (the world origin, ``arc2avatar.cameras.model``):

    x' = scale · R · x + translation

with ``R = Rz(yaw) · Rx(pitch) · Ry(roll)`` (intrinsic z–x'–y'' rotations, right-handed, degrees):

* yaw about world +z (up): positive turns the face (+y) toward world −x, the subject's left;
* pitch about world +x: positive tilts the face up (chin up);
* roll about world +y (the facing axis): positive tips the top of the head toward world +x.

On splats: means are transformed as points; orientations are composed as quaternions in
(w, x, y, z) order, ``q' = quat(R) ⊗ q``; standard deviations are multiplied by ``scale``; the
face splats' anchors move with them. The identity pose returns an exact copy.

A sequence stores one pose per frame as 7 numbers (``POSE_FIELDS``): yaw, pitch, roll in
degrees, translation x, y, z in world units, scale (1 = unchanged).

Written by hand: a few lines of glue; the Euler-angle and quaternion conversions are scipy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from arc2avatar.splats.rotations import matrix_to_quat, quat_multiply
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.errors import InputError

POSE_FIELDS: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg", "tx", "ty", "tz", "scale")
# Accepted ranges of a sequence's head pose (issue 26: a scale of 1e30 was accepted): angles within
# ±360° (any turn, written without wrapping), translations within ±10 world units (the head is
# ≈ 2 across and the camera 4.5 away: beyond that it is long out of view), scale in [0.1, 10].
MAX_POSE_DEGREES = 360.0
MAX_POSE_TRANSLATION = 10.0
POSE_SCALE_RANGE: tuple[float, float] = (0.1, 10.0)
EULER_ORDER = "ZXY"  # scipy: upper case = intrinsic; yaw about z, then pitch about x', roll about y''


@dataclass(frozen=True)
class HeadPose:
    """A rigid head pose (see the module docstring for the conventions).

    Attributes:
        yaw_deg, pitch_deg, roll_deg: rotation, degrees.
        translation: world units (x, y, z).
        scale: uniform scale about the head centre (1 = unchanged).
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0

    @classmethod
    def from_vector(cls, vector_7: np.ndarray | Tensor | list[float]) -> HeadPose:
        v = [float(x) for x in np.asarray(vector_7, dtype=np.float64).reshape(-1)]
        if len(v) != len(POSE_FIELDS):
            raise ValueError(f"a head pose has {len(POSE_FIELDS)} numbers {POSE_FIELDS}, got {len(v)}")
        return cls(v[0], v[1], v[2], (v[3], v[4], v[5]), v[6])

    def to_vector(self) -> np.ndarray:
        """(7,) float64 in ``POSE_FIELDS`` order."""
        return np.array([self.yaw_deg, self.pitch_deg, self.roll_deg, *self.translation, self.scale], dtype=np.float64)

    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) float64 ``R``."""
        return rotation_from_angles(self.yaw_deg, self.pitch_deg, self.roll_deg)

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.to_vector(), HeadPose().to_vector()))


def rotation_from_angles(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) float64 ``Rz(yaw) · Rx(pitch) · Ry(roll)``."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(EULER_ORDER, [yaw_deg, pitch_deg, roll_deg], degrees=True).as_matrix()


def angles_from_rotation(rotation_33: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a rotation matrix (inverse of ``rotation_from_angles``)."""
    from scipy.spatial.transform import Rotation

    yaw, pitch, roll = Rotation.from_matrix(np.asarray(rotation_33, dtype=np.float64)).as_euler(EULER_ORDER, degrees=True)
    return float(yaw), float(pitch), float(roll)


def rotation_angle_deg(a_33: np.ndarray, b_33: np.ndarray) -> float:
    """Angle of the rotation taking ``b`` to ``a``, degrees (the geodesic distance of two rotations)."""
    relative = np.asarray(a_33) @ np.asarray(b_33).T
    cosine = (np.trace(relative) - 1.0) / 2.0
    return float(math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))


def transform_points(points_n3: Tensor, pose: HeadPose) -> Tensor:
    """(N, 3) points under the pose: ``scale · R · x + translation``."""
    rotation = torch.as_tensor(pose.rotation_matrix(), dtype=points_n3.dtype, device=points_n3.device)
    translation = torch.as_tensor(pose.translation, dtype=points_n3.dtype, device=points_n3.device)
    return pose.scale * points_n3 @ rotation.T + translation


def pose_splats(splats: GaussianSplats, pose: HeadPose) -> GaussianSplats:
    """A new ``GaussianSplats``: every splat moved rigidly (and scaled) with the head pose."""
    if not pose.scale > 0:
        raise ValueError(f"head pose scale must be positive, got {pose.scale}")
    tensors = splats.to_tensors()
    if pose.is_identity:
        return GaussianSplats.from_tensors(tensors)
    means = tensors["means"]
    tensors["means"] = transform_points(means, pose)
    rotation = torch.as_tensor(pose.rotation_matrix(), dtype=torch.float64)[None]  # (1, 3, 3)
    quat = matrix_to_quat(rotation)[0].to(dtype=tensors["quats"].dtype, device=means.device)
    quats = tensors["quats"]
    tensors["quats"] = quat_multiply(quat, quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    tensors["log_scales"] = tensors["log_scales"] + math.log(pose.scale)
    face = tensors["face_mask"].bool()
    tensors["anchors"] = torch.where(face[:, None], transform_points(tensors["anchors"], pose), tensors["anchors"])
    return GaussianSplats.from_tensors(tensors)


def pose_rows_to_tensor(rows: object, num_frames: int, source: str) -> Tensor:
    """(T, 7) float32 from a sequence file's ``head_pose`` list (one object per frame with any of
    ``POSE_FIELDS``, a missing field taking the identity's value). Raises ``InputError`` naming
    ``source`` when the list is malformed or its length differs from the frames'."""
    if not isinstance(rows, list) or len(rows) != num_frames or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{source}: 'head_pose' must be a list of {num_frames} objects (one per frame) with "
                         f"fields {', '.join(POSE_FIELDS)}")
    identity = dict(zip(POSE_FIELDS, HeadPose().to_vector()))
    unknown = sorted({key for row in rows for key in row} - set(POSE_FIELDS))
    if unknown:
        raise InputError(f"{source}: unknown head_pose field(s) {', '.join(unknown)}; valid: {', '.join(POSE_FIELDS)}")
    values = [[row.get(k, identity[k]) for k in POSE_FIELDS] for row in rows]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in values for v in row):
        raise InputError(f"{source}: every head_pose value must be a number (not a string or true/false)")
    try:
        table = torch.tensor(values, dtype=torch.float64).float()
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise InputError(f"{source}: every head_pose value must be a number within its range") from None
    return check_pose_table(table, source)


def check_pose_table(table_t7: Tensor, source: str) -> Tensor:
    """``table_t7`` if it is a finite (T, 7) table within the accepted ranges (``MAX_POSE_DEGREES``,
    ``MAX_POSE_TRANSLATION``, ``POSE_SCALE_RANGE``), else ``InputError``."""
    if table_t7.ndim != 2 or table_t7.shape[1] != len(POSE_FIELDS):
        raise InputError(f"{source}: 'head_pose' must be (T, {len(POSE_FIELDS)}) ({', '.join(POSE_FIELDS)}), "
                         f"got {tuple(table_t7.shape)}")
    table = table_t7.double()
    low, high = POSE_SCALE_RANGE
    if not (bool((table[:, :3].abs() <= MAX_POSE_DEGREES).all()) and bool((table[:, 3:6].abs() <= MAX_POSE_TRANSLATION).all())
            and bool(((table[:, 6] >= low) & (table[:, 6] <= high)).all())):
        raise InputError(f"{source}: 'head_pose' values must be finite, angles within ±{MAX_POSE_DEGREES:g}°, "
                         f"translations within ±{MAX_POSE_TRANSLATION:g} world units and every scale in [{low:g}, {high:g}]")
    return table_t7.float()


def pose_table_rows(table_t7: Tensor | np.ndarray) -> list[dict[str, float]]:
    """The JSON rows of a (T, 7) pose table (inverse of ``pose_rows_to_tensor``)."""
    return [dict(zip(POSE_FIELDS, (round(float(v), 6) for v in row))) for row in np.asarray(table_t7)]


__all__ = [
    "EULER_ORDER",
    "POSE_FIELDS",
    "HeadPose",
    "angles_from_rotation",
    "check_pose_table",
    "pose_rows_to_tensor",
    "pose_splats",
    "pose_table_rows",
    "rotation_angle_deg",
    "rotation_from_angles",
    "transform_points",
]
