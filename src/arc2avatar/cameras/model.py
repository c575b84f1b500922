"""The camera model shared by every renderer (docs/method.md §5; docs/official-code.md §4.1).

World frame: z up, the face looks toward +y, the head's centre at the origin. A camera on the
orbit sphere sits at ``r·(sinθ sinφ, sinθ cosφ, cosθ)``: θ is the polar angle from +z in degrees
(90 = horizon), φ the azimuth from +y toward +x in degrees (0 = frontal).

View space is OpenCV's, as gsplat expects: +z forward (depth > 0 in front of the camera), +y
down, +x right. At φ = 0 world +x appears on the image's left, as in the official release.
Intrinsics put the optical axis at the image centre with pixel centres at +0.5 (gsplat's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

WORLD_UP = (0.0, 0.0, 1.0)
MAX_RESOLUTION = 2048  # px: the largest render size any setting may ask for (the prior works at 512²)


@dataclass(frozen=True)
class Cameras:
    """A batch of C pinhole cameras.

    Attributes:
        viewmats: (C, 4, 4) world→camera matrices, OpenCV convention.
        Ks: (C, 3, 3) intrinsics in pixels.
        width, height: image size in pixels (shared by the batch).
        azimuth_deg: (C,) φ without jitter, degrees in (−180, 180]; drives the view prompts.
        polar_deg: (C,) θ without jitter, degrees.
        radius: (C,) distance of the un-jittered centre from the origin, world units.
        fovy: (C,) vertical field of view, radians.
        near, far: clipping distances, world units (docs/method.md §5: 0.01, 100).
    """

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int
    azimuth_deg: Tensor
    polar_deg: Tensor
    radius: Tensor
    fovy: Tensor
    near: float = 0.01
    far: float = 100.0

    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Cameras":
        """The cameras on ``device``; ``non_blocking`` lets a host→GPU copy not wait for the GPU."""
        return replace(
            self,
            viewmats=self.viewmats.to(device, non_blocking=non_blocking),
            Ks=self.Ks.to(device, non_blocking=non_blocking),
            azimuth_deg=self.azimuth_deg.to(device, non_blocking=non_blocking),
            polar_deg=self.polar_deg.to(device, non_blocking=non_blocking),
            radius=self.radius.to(device, non_blocking=non_blocking),
            fovy=self.fovy.to(device, non_blocking=non_blocking),
        )

    def __getitem__(self, index: int | slice | Tensor) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return replace(
            self,
            viewmats=self.viewmats[index],
            Ks=self.Ks[index],
            azimuth_deg=self.azimuth_deg[index],
            polar_deg=self.polar_deg[index],
            radius=self.radius[index],
            fovy=self.fovy[index],
        )

    def with_resolution(self, width: int, height: int) -> "Cameras":
        """The same cameras rendering ``width × height`` pixels (intrinsics rescaled)."""
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= width / self.width
        Ks[:, 1, :] *= height / self.height
        return replace(self, Ks=Ks, width=width, height=height)

    @property
    def centres(self) -> Tensor:
        """(C, 3) camera centres in world coordinates."""
        R = self.viewmats[:, :3, :3]
        t = self.viewmats[:, :3, 3]
        return -(R.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def cat(batches: list["Cameras"]) -> "Cameras":
        first = batches[0]
        if any(b.width != first.width or b.height != first.height for b in batches):
            raise ValueError("cannot concatenate cameras of different image sizes")
        return replace(
            first,
            viewmats=torch.cat([b.viewmats for b in batches]),
            Ks=torch.cat([b.Ks for b in batches]),
            azimuth_deg=torch.cat([b.azimuth_deg for b in batches]),
            polar_deg=torch.cat([b.polar_deg for b in batches]),
            radius=torch.cat([b.radius for b in batches]),
            fovy=torch.cat([b.fovy for b in batches]),
        )


def spherical_to_centre(radius: Tensor, polar_deg: Tensor, azimuth_deg: Tensor) -> Tensor:
    """(C, 3) camera centres ``r·(sinθ sinφ, sinθ cosφ, cosθ)``."""
    theta = torch.deg2rad(polar_deg)
    phi = torch.deg2rad(azimuth_deg)
    return torch.stack(
        [
            radius * torch.sin(theta) * torch.sin(phi),
            radius * torch.sin(theta) * torch.cos(phi),
            radius * torch.cos(theta),
        ],
        dim=-1,
    )


def look_at(centres: Tensor, targets: Tensor, up: Tensor | None = None) -> Tensor:
    """(C, 4, 4) OpenCV world→camera matrices looking from ``centres`` (C,3) at ``targets`` (C,3).

    ``up`` (C,3) is the world up hint (default +z, possibly jittered by the caller).
    """
    if up is None:
        up = centres.new_tensor(WORLD_UP).expand_as(centres)
    forward = torch.nn.functional.normalize(targets - centres, dim=-1)  # camera +z
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)  # camera +x
    down = torch.cross(forward, right, dim=-1)  # camera +y
    R = torch.stack([right, down, forward], dim=1)  # rows: camera axes in world coordinates
    viewmats = torch.zeros(centres.shape[0], 4, 4, dtype=centres.dtype, device=centres.device)
    viewmats[:, :3, :3] = R
    viewmats[:, :3, 3] = -(R @ centres.unsqueeze(-1)).squeeze(-1)
    viewmats[:, 3, 3] = 1.0
    return viewmats


def intrinsics(fovy: Tensor, width: int, height: int) -> Tensor:
    """(C, 3, 3) pinhole intrinsics with square pixels, principal point at the image centre."""
    focal = 0.5 * height / torch.tan(0.5 * fovy)
    Ks = torch.zeros(fovy.shape[0], 3, 3, dtype=fovy.dtype, device=fovy.device)
    Ks[:, 0, 0] = focal
    Ks[:, 1, 1] = focal
    Ks[:, 0, 2] = 0.5 * width
    Ks[:, 1, 2] = 0.5 * height
    Ks[:, 2, 2] = 1.0
    return Ks


def orbit_cameras(
    radius: Tensor | float,
    polar_deg: Tensor | float,
    azimuth_deg: Tensor | float,
    fovy: Tensor | float,
    width: int,
    height: int,
    *,
    centre_offset: Tensor | None = None,
    target: Tensor | None = None,
    up: Tensor | None = None,
) -> Cameras:
    """Cameras on the orbit sphere looking at the origin (or at jittered ``target``).

    Scalars broadcast against tensors; ``centre_offset``/``target``/``up`` are (C,3) jitters
    (docs/method.md §5) added by samplers; the recorded azimuth/polar/radius stay un-jittered.
    """
    values = [torch.as_tensor(v, dtype=torch.float32) for v in (radius, polar_deg, azimuth_deg, fovy)]
    values = [v.reshape(-1) for v in values]
    count = max(v.numel() for v in values)
    radius_t, polar_t, azimuth_t, fovy_t = [v.expand(count).clone() if v.numel() == 1 else v for v in values]
    centres = spherical_to_centre(radius_t, polar_t, azimuth_t)
    if centre_offset is not None:
        centres = centres + centre_offset
    targets = torch.zeros_like(centres) if target is None else target.expand_as(centres)
    viewmats = look_at(centres, targets, up)
    return Cameras(
        viewmats=viewmats,
        Ks=intrinsics(fovy_t, width, height),
        width=width,
        height=height,
        azimuth_deg=wrap_degrees(azimuth_t),
        polar_deg=polar_t,
        radius=radius_t,
        fovy=fovy_t,
    )


def wrap_degrees(angle_deg: Tensor) -> Tensor:
    """Wrap angles to (−180, 180]."""
    wrapped = torch.remainder(angle_deg + 180.0, 360.0) - 180.0
    return torch.where(wrapped == -180.0, torch.full_like(wrapped, 180.0), wrapped)


def project_points(cameras: Cameras, points: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points (N,3) into every camera: (C,N,2) pixel coords, (C,N) depths."""
    homo = torch.cat([points, points.new_ones(points.shape[0], 1)], dim=-1)  # (N,4)
    cam = torch.einsum("cij,nj->cni", cameras.viewmats, homo)[..., :3]  # (C,N,3)
    depth = cam[..., 2]
    uv = torch.einsum("cij,cnj->cni", cameras.Ks, cam)
    pix = uv[..., :2] / uv[..., 2:3].clamp_min(1e-9)
    return pix, depth


__all__ = [
    "Cameras",
    "intrinsics",
    "look_at",
    "orbit_cameras",
    "project_points",
    "spherical_to_centre",
    "wrap_degrees",
]
