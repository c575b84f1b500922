"""The oracle prior: a known 3D head stands in for the diffusion model (architecture.md).

A diagnostic, kept in the library: the pipeline runs unchanged, but the guidance's denoised
estimate for each view is the render of a known target head from the same camera, with the same
background, through the same ISM/SDS plumbing (``arc2avatar.prior.oracle.OracleDenoiser``: the
positive branch answers the target, every other branch the current render, so ISM pulls with
g = λ·cfg·(z − z*)). If the optimisation rebuilds the target from views it never trained on,
the 3D machinery works.

Targets (``OracleTarget``): a mesh with per-vertex colours — by default the built-in head with a
painted "hair" cap and, optionally, a photo projected onto its face. Written by hand: test
machinery of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar.head.model import HeadModel
from arc2avatar.head.raster import render_mesh
from arc2avatar.prior.configs import PriorConfig
from arc2avatar.prior.guidance import GuidanceOutput, IsmGuidance, LatentEncoder, RgbLatentEncoder
from arc2avatar.prior.oracle import OracleDenoiser
from arc2avatar.prior.views import ViewEmbeddings


@dataclass(frozen=True)
class OracleTargetConfig:
    """How the default oracle target differs from the template the avatar starts from.

    Attributes:
        hair_color: RGB in [0, 1] painted on the scalp and the back of the head.
        hair_polar_deg: vertices whose direction from the head centre is within this angle of
            +z (degrees) become hair; behind the ears (y < ``hair_back_y``) as well.
        hair_back_y: world y below which upper-head vertices count as hair (back of the head).
        hair_min_z: world z above which the back of the head counts as hair.
        hair_volume: outward push of hair vertices, world units (a shape the avatar must grow).
        photo_face_width: width of the face region the photo covers, world units.
        photo_face_center_z: world z of the centre of the projected photo.
    """

    hair_color: tuple[float, float, float] = (0.23, 0.15, 0.10)
    hair_polar_deg: float = 55.0
    hair_back_y: float = -0.1
    hair_min_z: float = 0.05
    hair_volume: float = 0.04
    photo_face_width: float = 0.95
    photo_face_center_z: float = 0.18


@dataclass(frozen=True)
class OracleTarget:
    """A coloured triangle mesh the oracle renders (world frame, ``arc2avatar.cameras.model``).

    Attributes:
        vertices: (V, 3) float32; faces: (F, 3) int64; colors: (V, 3) float32 in [0, 1].
        face_triangles: the first ``face_triangles`` rows of ``faces`` are the face region (what
            the face phase renders); 0 = unknown (the whole mesh is used then).
    """

    vertices: Tensor
    faces: Tensor
    colors: Tensor
    face_triangles: int = 0

    def to(self, device: torch.device | str) -> "OracleTarget":
        return OracleTarget(self.vertices.to(device), self.faces.to(device), self.colors.to(device), self.face_triangles)

    @torch.no_grad()
    def render(self, cameras: Cameras, backgrounds: Tensor | None = None, face_only: bool = False) -> Tensor:
        """(C, H, W, 3) renders in [0, 1] on ``backgrounds`` ((C,3) or (3,); default white);
        ``face_only`` renders just the face region (the face phase's counterpart)."""
        if backgrounds is None:
            backgrounds = torch.ones(3, device=self.vertices.device)
        faces = self.faces[: self.face_triangles] if face_only and self.face_triangles else self.faces
        return render_mesh(self.vertices, faces, self.colors, cameras, backgrounds).rgb


def default_target(
    head: HeadModel,
    config: OracleTargetConfig = OracleTargetConfig(),
    photo: np.ndarray | None = None,
    face_triangles: int = 0,
) -> OracleTarget:
    """The template repainted with a hair cap (and pushed out there), optionally with ``photo``
    (H, W, 3 uint8, a roughly frontal, face-centred crop) projected onto the face region.
    ``face_triangles``: how many leading rows of ``head.faces`` form the face region."""
    vertices = head.vertices.clone()
    colors = head.vertex_colors.clone()
    direction = torch.nn.functional.normalize(vertices, dim=-1)
    cos_limit = float(np.cos(np.deg2rad(config.hair_polar_deg)))
    hair = (direction[:, 2] > cos_limit) | ((vertices[:, 1] < config.hair_back_y) & (vertices[:, 2] > config.hair_min_z))
    hair &= ~head.face_mask
    for name in ("ears", "neck"):
        if name in head.regions:
            hair &= ~head.regions[name]
    colors[hair] = torch.tensor(config.hair_color)
    normals = _vertex_normals(vertices, head.faces)
    vertices[hair] += config.hair_volume * normals[hair]
    if photo is not None:
        colors = _project_photo(vertices, colors, head.face_mask, photo, config)
    return OracleTarget(vertices=vertices, faces=head.faces.clone(), colors=colors.clamp(0, 1), face_triangles=face_triangles)


def _vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    tri = vertices[faces]  # (F, 3, 3)
    face_normals = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    normals = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), face_normals.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(normals, dim=-1)


def _project_photo(vertices: Tensor, colors: Tensor, face_mask: Tensor, photo: np.ndarray, config: OracleTargetConfig) -> Tensor:
    """Frontal orthographic projection of ``photo`` onto the face vertices, feathered at the border."""
    height, width = photo.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(photo)).float().permute(2, 0, 1)[None] / 255.0  # (1,3,H,W)
    half_w = config.photo_face_width / 2
    half_h = half_w * height / width
    # world +x shows on the image's left in a frontal view (cameras.model), so u runs along −x
    u = -vertices[:, 0] / half_w
    v = -(vertices[:, 2] - config.photo_face_center_z) / half_h
    grid = torch.stack([u, v], dim=-1).reshape(1, -1, 1, 2)
    sampled = torch.nn.functional.grid_sample(image, grid, align_corners=False, padding_mode="border")
    sampled = sampled[0, :, :, 0].T  # (V, 3)
    inside = (u.abs() < 1) & (v.abs() < 1) & (vertices[:, 1] > 0)
    weight = (1 - torch.maximum(u.abs(), v.abs())).clamp(0, 0.15) / 0.15  # feather the last 15%
    weight = torch.where(inside & face_mask, weight, torch.zeros_like(weight))[:, None]
    return colors * (1 - weight) + sampled * weight


class OraclePrior:
    """A ``GuidancePrior`` whose denoised estimate is the target's render (see module doc).

    Args:
        target: the head to rebuild.
        config: ``PriorConfig`` (ISM/SDS numbers, CFG, λ, flip probability...).
        latent_encoder: how renders become latents (``RgbLatentEncoder`` on CPU; the same VAE
            encoder as the real prior is possible on GPU). The target goes through the same one.
        alphas_cumprod: (1000,) ᾱ of the noise schedule (SD-1.5's by default).
    """

    def __init__(
        self,
        target: OracleTarget,
        config: PriorConfig = PriorConfig(),
        latent_encoder: LatentEncoder | None = None,
        alphas_cumprod: Tensor | None = None,
    ) -> None:
        from arc2avatar.prior.configs import scheduler_config

        self.target = target
        if alphas_cumprod is None:
            alphas_cumprod = _scaled_linear_alphas_cumprod(scheduler_config())
        encoder = latent_encoder if latent_encoder is not None else RgbLatentEncoder()
        self._backgrounds: Tensor | None = None
        self._face_only = False
        denoiser = OracleDenoiser(self._target_latents, alphas_cumprod.to(target.vertices.device))
        self._encoder = encoder
        dummy = torch.zeros(77, 8, device=target.vertices.device)
        embeddings = ViewEmbeddings(front=dummy, side=dummy, back=dummy, uncond=dummy, inversion=dummy)
        self.guidance = IsmGuidance(denoiser, encoder, embeddings, alphas_cumprod.to(target.vertices.device), config)

    def __call__(
        self,
        renders: Tensor,
        cameras: Any,
        generator: torch.Generator | None = None,
        backgrounds: Tensor | None = None,
        phase: str = "head",
        host_generator: torch.Generator | None = None,
        timer: Any = None,
    ) -> GuidanceOutput:
        """renders (B, 3, H, W) in [0, 1]; ``backgrounds`` (B, 3) they were composited on;
        ``phase`` "face" when only the face splats were rendered (the target's face region then);
        ``host_generator`` and ``timer`` as ``IsmGuidance``."""
        self._backgrounds = backgrounds
        self._face_only = phase == "face"
        extra = {"timer": timer} if timer is not None else {}
        try:
            return self.guidance(renders, cameras, generator, host_generator=host_generator, **extra)
        finally:
            self._backgrounds = None
            self._face_only = False

    @torch.no_grad()
    def _target_latents(self, cameras: Cameras, flipped: bool) -> Tensor:
        rgb = self.target.render(cameras, self._backgrounds, self._face_only).permute(0, 3, 1, 2)  # (B, 3, H, W)
        if flipped:
            rgb = rgb.flip(-1)
        return self._encoder.encode(2.0 * rgb - 1.0, None)


def _scaled_linear_alphas_cumprod(config: dict[str, Any]) -> Tensor:
    """ᾱ of SD-1.5's scaled-linear schedule (β from √β_start to √β_end, squared)."""
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def frontal_camera(size: int, radius: float = 4.5, fovy: float = 0.7, azimuth_deg: float = 0.0) -> Cameras:
    """One evaluation camera (for previews of targets and avatars)."""
    return orbit_cameras(radius, 90.0, azimuth_deg, fovy, size, size)


__all__ = ["OraclePrior", "OracleTarget", "OracleTargetConfig", "default_target", "frontal_camera"]
