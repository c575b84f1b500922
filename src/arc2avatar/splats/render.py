"""Render Gaussian splats: gsplat on CUDA, our gsplat-rules PyTorch rasteriser elsewhere.

``rasterize()`` is the one entry point (modelled on ``gsplat.rasterization``). On CUDA with gsplat
importable it calls gsplat; on CPU tensors it runs ``arc2avatar.splats._torch_raster`` (written by
hand: gsplat has no CPU path); on CUDA without a working gsplat it runs the same PyTorch code on the
GPU and warns once how to install gsplat. Both follow the same rules and are meant to agree to
≥ 40 dB PSNR (``benchmarks/render_parity.py`` measures it), so callers need not care which ran.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras
from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.splats._torch_raster import RasterRules, composite, plan_tiles, project_gaussians

Backend = Literal["auto", "gsplat", "torch"]

GSPLAT_INSTALL_HINT = (
    'install it with `pip install "arc2avatar[cuda]"` (gsplat>=1.5.3 compiles its CUDA kernels on '
    "first use; set TORCH_CUDA_ARCH_LIST to your GPU, e.g. TORCH_CUDA_ARCH_LIST=9.0 for an H100, "
    "and make sure nvcc matches torch's CUDA version)"
)


class GsplatUnavailableWarning(UserWarning):
    """gsplat could not be used on a CUDA device; the slower PyTorch rasteriser runs instead."""


@dataclass
class RenderOutput:
    """What ``rasterize`` returns (C cameras, N splats).

    Attributes:
        rgb: (C, H, W, 3) Σ c·α·T + T_final·background.
        alpha: (C, H, W, 1) 1 − T_final.
        depth: (C, H, W, 1) accumulated camera-space depth Σ z·α·T, not normalised by alpha
            (gsplat's "RGB+D"; divide by alpha for the expected depth).
        means2d: (C, N, 2) projected centres in pixels, 0 where culled. When it requires grad,
            ``retain_grad()`` was called: after ``backward()`` its ``.grad`` holds the screen-space
            gradient used by densification.
        radii: (C, N) int32 screen radius in pixels (max over x and y), 0 = culled.
        backend: "gsplat" or "torch", whichever rendered.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    means2d: Tensor
    radii: Tensor
    backend: str


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    cameras: Cameras,
    backgrounds: Tensor | None = None,
    *,
    backend: Backend = "auto",
    eps2d: float = 0.3,
) -> RenderOutput:
    """Rasterise N 3D Gaussians into C cameras, differentiably.

    Args:
        means: (N, 3) centres, world frame (z up, face toward +y; ``arc2avatar.cameras.model``).
        quats: (N, 4) rotations as quaternions (w, x, y, z); normalised again internally (like
            gsplat), so gradients are those of the normalised rotation.
        scales: (N, 3) standard deviations along the rotated axes, world units (real, not log).
        opacities: (N,) in [0, 1] (already through the sigmoid).
        colors: (N, 3) RGB in [0, 1] (SH degree 0 already evaluated).
        cameras: C pinhole cameras, OpenCV view matrices, pixel centres at +0.5; their ``near`` /
            ``far`` cull splat centres (depth < near or > far, as gsplat).
        backgrounds: (C, 3) or (3,) colour behind the splats; None = black.
        backend: "gsplat" (CUDA only), "torch" (our PyTorch rasteriser, any device) or "auto":
            gsplat for float32 CUDA tensors when it imports, otherwise torch (with one warning on
            CUDA).
        eps2d: px² added to the diagonal of every projected 2D covariance (gsplat's low-pass
            filter, 0.3).

    Returns:
        ``RenderOutput`` with rgb (C, H, W, 3), alpha and depth (C, H, W, 1), means2d (C, N, 2),
        radii (C, N), backend.

    Gradients reach means, quats, scales, opacities, colors and backgrounds.
    """
    _check_shapes(means, quats, scales, opacities, colors)
    C = len(cameras)
    backgrounds = _backgrounds(backgrounds, C, colors)
    chosen = _choose_backend(backend, means.device, means.dtype)
    if chosen == "gsplat":
        return _rasterize_gsplat(means, quats, scales, opacities, colors, cameras, backgrounds, eps2d)
    return _rasterize_torch(means, quats, scales, opacities, colors, cameras, backgrounds, eps2d)


def render_splats(splats: Any, cameras: Cameras, backgrounds: Tensor | None = None, **kwargs: Any) -> RenderOutput:
    """Render a ``GaussianSplats`` (or anything with ``means``, ``rotations``, ``scales``,
    ``opacities``, ``colors`` tensors of the shapes ``rasterize`` takes) into ``cameras``."""
    opacities = splats.opacities
    if opacities.dim() == 2 and opacities.shape[-1] == 1:
        opacities = opacities.squeeze(-1)
    return rasterize(
        splats.means, splats.rotations, splats.scales, opacities, splats.colors, cameras, backgrounds, **kwargs
    )


def _check_shapes(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor) -> None:
    N = means.shape[0]
    expected = {"means": (means, (N, 3)), "quats": (quats, (N, 4)), "scales": (scales, (N, 3)),
                "opacities": (opacities, (N,)), "colors": (colors, (N, 3))}  # fmt: skip
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"rasterize: {name} has shape {tuple(tensor.shape)}, expected {shape} for N={N} splats")


def _backgrounds(backgrounds: Tensor | None, num_cameras: int, like: Tensor) -> Tensor:
    """(C, 3) backgrounds from None / (3,) / (C, 3)."""
    if backgrounds is None:
        return like.new_zeros(num_cameras, 3)
    backgrounds = backgrounds.to(device=like.device, dtype=like.dtype)
    if backgrounds.shape == (3,):
        return backgrounds.expand(num_cameras, 3)
    if backgrounds.shape != (num_cameras, 3):
        raise ValueError(f"rasterize: backgrounds has shape {tuple(backgrounds.shape)}, expected (3,) or ({num_cameras}, 3)")
    return backgrounds


def _choose_backend(backend: Backend, device: torch.device, dtype: torch.dtype) -> str:
    """'gsplat' or 'torch' for splats on ``device`` (never sends CPU tensors to gsplat)."""
    if backend == "torch":
        return "torch"
    if backend not in ("auto", "gsplat"):
        raise InputError(f"unknown render backend {backend!r}: use 'auto', 'gsplat' or 'torch'")
    if backend == "gsplat":
        if device.type != "cuda":
            raise InputError(
                f"render backend 'gsplat' needs CUDA tensors, but the splats are on {device}: "
                "use backend='auto' or 'torch' to render on the CPU"
            )
        module, problem = _probe_gsplat()
        if module is None:
            raise MissingDependencyError(f"render backend 'gsplat' is unavailable ({problem}); {GSPLAT_INSTALL_HINT}")
        return "gsplat"
    if device.type != "cuda" or dtype != torch.float32:
        return "torch"
    module, _ = _probe_gsplat_warn_once()
    return "gsplat" if module is not None else "torch"


@functools.lru_cache(maxsize=1)
def _probe_gsplat() -> tuple[ModuleType | None, str | None]:
    """(gsplat module, None) when gsplat imports with its CUDA extension, else (None, why). Memoised."""
    try:
        import gsplat
        from gsplat.cuda._backend import _C
    except Exception as error:  # ImportError, or the JIT build failing (OSError, RuntimeError)
        return None, f"{type(error).__name__}: {error}".strip()
    if _C is None:
        return None, "gsplat imported but its CUDA extension did not load (no CUDA toolkit found)"
    return gsplat, None


@functools.lru_cache(maxsize=1)
def _probe_gsplat_warn_once() -> tuple[ModuleType | None, str | None]:
    """``_probe_gsplat`` that emits one ``GsplatUnavailableWarning`` per process when it fails."""
    module, problem = _probe_gsplat()
    if module is None:
        warnings.warn(
            f"gsplat is unavailable ({problem}); rendering with the slower PyTorch rasteriser on the GPU. "
            f"To use gsplat, {GSPLAT_INSTALL_HINT}.",
            GsplatUnavailableWarning,
            stacklevel=4,
        )
    return module, problem


def _rasterize_gsplat(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    cameras: Cameras, backgrounds: Tensor, eps2d: float,
) -> RenderOutput:  # fmt: skip
    gsplat, _ = _probe_gsplat()
    assert gsplat is not None
    renders, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors,
        viewmats=cameras.viewmats.to(means), Ks=cameras.Ks.to(means),
        width=cameras.width, height=cameras.height,
        near_plane=cameras.near, far_plane=cameras.far, eps2d=eps2d,
        packed=False, backgrounds=backgrounds.contiguous(), render_mode="RGB+D",
    )  # fmt: skip
    means2d = meta["means2d"]  # (C, N, 2)
    if means2d.requires_grad:
        means2d.retain_grad()
    radii = meta["radii"]
    if radii.dim() == 3:  # gsplat ≥ 1.5: per-axis (C, N, 2)
        radii = radii.amax(-1)
    return RenderOutput(renders[..., :3], alphas, renders[..., 3:4], means2d, radii.int(), "gsplat")


def _rasterize_torch(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    cameras: Cameras, backgrounds: Tensor, eps2d: float, rules: RasterRules = RasterRules(),
) -> RenderOutput:  # fmt: skip
    proj = project_gaussians(
        means, quats, scales, opacities,
        cameras.viewmats.to(means), cameras.Ks.to(means), cameras.width, cameras.height,
        cameras.near, cameras.far, eps2d, rules,
    )  # fmt: skip
    C, N = proj.depths.shape
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    plan = plan_tiles(proj.means2d.detach(), proj.radii, proj.depths.detach(), cameras.width, cameras.height, rules)
    features = torch.cat([colors.expand(C, N, 3), proj.depths[..., None]], dim=-1)  # (C, N, 4) RGB+D
    features_bg = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)  # (C, 4)
    image, alpha = composite(proj.means2d, proj.conics, opacities.expand(C, N), features, features_bg, plan, rules)
    return RenderOutput(image[..., :3], alpha, image[..., 3:4], proj.means2d, proj.radii.amax(-1), "torch")


__all__ = ["GsplatUnavailableWarning", "RenderOutput", "rasterize", "render_splats"]
