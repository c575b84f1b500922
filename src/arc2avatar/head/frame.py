"""FLAME's coordinate frame → the arc2avatar world frame (docs/method.md §3, §5; docs/official-code.md §3.1).

FLAME stores heads with y up and the face toward +z, in metres. arc2avatar's world frame has z up
and the face toward +y, the bounding-box centre at the origin, and a head ``height`` of 2 world
units (the camera radii of docs/method.md §5 are in these units). The official release maps FLAME points
with a 90° turn about x then 180° about z, i.e. (x, y, z) → (−x, z, y); we use the same proper
rotation, then a uniform scale and a translation.

The map is a similarity ``p_world = s·R·p_flame + t``. Points use all three parts; displacements
(blendshape columns, pose-corrective offsets) use ``s·R`` only; rotations (joint poses) are
conjugated, ``R·Q·Rᵀ`` (scale-free). Written by hand because it is three lines of maths that no
library exposes in this form, and every FLAME quantity must go through the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# (x, y, z)_FLAME → (−x, z, y)_world: rows are the world axes in FLAME coordinates. det = +1.
FLAME_TO_WORLD_ROTATION: tuple[tuple[float, float, float], ...] = (
    (-1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
)


@dataclass(frozen=True)
class WorldFrameConfig:
    """How a template is placed in the world frame.

    Attributes:
        height: total z extent of the mapped vertices, world units (docs/method.md §5 radii assume 2.0).
    """

    height: float = 2.0


@dataclass(frozen=True)
class FrameTransform:
    """A similarity ``p ↦ scale·rotation·p + translation`` (source frame → target frame).

    Attributes:
        scale: uniform scale factor (target units per source unit).
        rotation: (3, 3) float64 proper rotation.
        translation: (3,) float64 offset, target units.
    """

    scale: float
    rotation: Tensor
    translation: Tensor

    def apply_points(self, points: Tensor, dim: int = -1) -> Tensor:
        """Map points; ``dim`` of ``points`` holds xyz (size 3). Returns the input dtype."""
        moved = torch.movedim(points, dim, -1)
        R = self.rotation.to(moved)
        out = self.scale * moved @ R.T + self.translation.to(moved)
        return torch.movedim(out, -1, dim)

    def apply_vectors(self, vectors: Tensor, dim: int = -1) -> Tensor:
        """Map displacements (no translation): ``scale·R·d``. ``dim`` holds xyz."""
        moved = torch.movedim(vectors, dim, -1)
        out = self.scale * moved @ self.rotation.to(moved).T
        return torch.movedim(out, -1, dim)

    def apply_rotations(self, rotations: Tensor) -> Tensor:
        """(..., 3, 3) rotations acting in the source frame → the same motion in the target frame."""
        R = self.rotation.to(rotations)
        return R @ rotations @ R.T

    def apply_axis_angle(self, axis_angle: Tensor) -> Tensor:
        """(..., 3) axis-angle in the source frame → target frame (proper rotation: ``R·ω``)."""
        return axis_angle @ self.rotation.to(axis_angle).T

    def inverse(self) -> "FrameTransform":
        """The inverse similarity (target frame → source frame)."""
        R_inv = self.rotation.T.contiguous()
        return FrameTransform(
            scale=1.0 / self.scale,
            rotation=R_inv,
            translation=-(R_inv @ self.translation) / self.scale,
        )


def to_world_frame(
    vertices_flame: Tensor, config: WorldFrameConfig = WorldFrameConfig()
) -> tuple[Tensor, FrameTransform]:
    """Map FLAME-frame vertices (V, 3) into the world frame.

    Rotation (x, y, z) → (−x, z, y), then a uniform scale making the z extent ``config.height``,
    then a translation putting the bounding-box centre at the origin.

    Returns:
        vertices_world: (V, 3) in the input dtype.
        transform: the ``FrameTransform`` used (float64), for displacements, poses and its inverse.
    """
    points = vertices_flame.detach().to(torch.float64)
    rotation = torch.tensor(FLAME_TO_WORLD_ROTATION, dtype=torch.float64)
    rotated = points @ rotation.T
    extent_z = float(rotated[:, 2].max() - rotated[:, 2].min())
    if not extent_z > 0.0:
        raise ValueError("cannot place a template with zero height in the world frame")
    scale = config.height / extent_z
    scaled = scale * rotated
    centre = 0.5 * (scaled.min(dim=0).values + scaled.max(dim=0).values)
    transform = FrameTransform(scale=scale, rotation=rotation, translation=-centre)
    return transform.apply_points(vertices_flame.to(torch.float64)).to(vertices_flame.dtype), transform


__all__ = ["FLAME_TO_WORLD_ROTATION", "FrameTransform", "WorldFrameConfig", "to_world_frame"]
