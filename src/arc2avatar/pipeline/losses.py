"""Losses besides the guidance (docs/method.md §4; docs/official-code.md §3.5, §4.3) and the mean-face fit loss (docs/method.md §6).

Written by hand because they are the method's own formulas, reproduced exactly:
- ``tv_loss``: the official ``utils/loss_utils.py:tv_loss`` normalisation,
  2·(Σ(Δ_h x)²/(C(H−1)W) + Σ(Δ_w x)²/(CH(W−1)))/B.
- ``disparity``: the official normalised disparity f/(D + 10·T + 1e-5) of docs/official-code.md §4.3,
  rescaled per image to [0, 1] between the smallest disparity of the (nearly) opaque pixels and
  the largest; differentiable like the official (min/max not detached).
- ``face_position_loss``: the nan-safe mean squared offset of face splats from their anchors.
- ``l1_dssim``: (1 − λ)·L1 + λ·(1 − SSIM) with our SSIM (``metrics.ssim_map``).
The uniform-Laplacian term comes from ``arc2avatar.head.laplacian`` and is passed in as a callable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from arc2avatar.pipeline.config import LossWeights
from arc2avatar.pipeline.metrics import SsimConfig, ssim_map, to_bchw

# laplacian_fn(means_face (F,3), anchors_face (F,3)) -> scalar mean((L x − L x0)²)
LaplacianLoss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class DisparityConfig:
    """Constants of the official normalised disparity (docs/official-code.md §4.3).

    Attributes:
        background_depth: depth added per unit of final transmittance T, world units (10), so
            empty pixels get a small disparity.
        eps: added to the denominator (1e-5).
        opaque_transmittance: pixels with T ≤ this define the lower end of the normalisation (0.1);
            if none, the image minimum is used.
        min_range: floor of (max − min) disparity, ours, so a flat image gives 0 instead of NaN.
    """

    background_depth: float = 10.0
    eps: float = 1e-5
    opaque_transmittance: float = 0.1
    min_range: float = 1e-12


def tv_loss(x_bchw: Tensor) -> Tensor:
    """Total variation, official normalisation (docs/official-code.md §3.5).

    Args:
        x_bchw: (B, C, H, W), H ≥ 2 and W ≥ 2.

    Returns:
        Scalar 2·(Σ(Δ_h x)²/(C·(H−1)·W) + Σ(Δ_w x)²/(C·H·(W−1)))/B, Δ over neighbouring pixels.
    """
    b, c, h, w = x_bchw.shape
    if h < 2 or w < 2:
        raise ValueError(f"tv_loss needs H, W ≥ 2, got shape {tuple(x_bchw.shape)}")
    dh = x_bchw[:, :, 1:, :] - x_bchw[:, :, :-1, :]
    dw = x_bchw[:, :, :, 1:] - x_bchw[:, :, :, :-1]
    return 2.0 * (dh.pow(2).sum() / (c * (h - 1) * w) + dw.pow(2).sum() / (c * h * (w - 1))) / b


def disparity(
    depth_b1hw: Tensor,
    alpha_b1hw: Tensor,
    fovx: float | Tensor,
    config: DisparityConfig = DisparityConfig(),
) -> Tensor:
    """Normalised disparity of docs/official-code.md §4.3, per image.

    Args:
        depth_b1hw: (B, 1, H, W) accumulated depth D = Σ z·α·T (``RenderOutput.depth``, permuted).
        alpha_b1hw: (B, 1, H, W) accumulated opacity; the transmittance is T = 1 − alpha.
        fovx: horizontal field of view in radians, a float or (B,) tensor.

    Returns:
        (B, 1, H, W) in [0, 1]: disp = f/(D + 10·T + 1e-5), f = 1/(2·tan(fovx/2));
        (disp − min_d)/(max disp − min_d) clamped to [0, 1], min_d = min disp over pixels with
        T ≤ 0.1, or the image minimum when there are none. Background ≈ 0.
    """
    b = depth_b1hw.shape[0]
    fov_b = torch.as_tensor(fovx, dtype=depth_b1hw.dtype, device=depth_b1hw.device).reshape(-1)
    fov_b = fov_b.expand(b) if fov_b.numel() == 1 else fov_b
    focal_b111 = (1.0 / (2.0 * torch.tan(fov_b / 2))).view(b, 1, 1, 1)
    transmittance = 1.0 - alpha_b1hw
    disp = focal_b111 / (depth_b1hw + config.background_depth * transmittance + config.eps)
    disp_flat = disp.flatten(1)  # (B, H·W)
    opaque = (transmittance <= config.opaque_transmittance).flatten(1)
    min_opaque = torch.where(opaque, disp_flat, torch.full_like(disp_flat, math.inf)).amin(dim=1)
    min_all = disp_flat.amin(dim=1)
    min_d = torch.where(opaque.any(dim=1), min_opaque, min_all).view(b, 1, 1, 1)
    max_d = disp_flat.amax(dim=1).view(b, 1, 1, 1)
    return ((disp - min_d) / (max_d - min_d).clamp_min(config.min_range)).clamp(0.0, 1.0)


def scale_loss(scales: Tensor) -> Tensor:
    """Scalar mean of the activated (augmented) scales, any shape (docs/official-code.md §3.5)."""
    return scales.mean()


def face_position_loss(means_face: Tensor, anchors_face: Tensor) -> Tensor:
    """Scalar nan-mean of (x − x0)² over face splats and axes (docs/official-code.md §3.5); 0 if empty.

    Args:
        means_face: (F, 3) current face-splat centres.
        anchors_face: (F, 3) their template anchors.
    """
    if means_face.shape != anchors_face.shape:
        raise ValueError(f"means {tuple(means_face.shape)} and anchors {tuple(anchors_face.shape)} differ")
    if means_face.numel() == 0:
        return means_face.sum()
    return torch.nanmean((means_face - anchors_face).pow(2))


def l1_dssim(pred: Tensor, target: Tensor, dssim_weight: float = 0.2, *,
             ssim_config: SsimConfig = SsimConfig(), channels_last: bool | None = None) -> Tensor:
    """Mean-face fit loss (docs/method.md §6, as 3DGS): (1 − λ)·mean|pred − target| + λ·(1 − SSIM).

    Args:
        pred, target: images (B,3,H,W) or (B,H,W,3) in [0, 1], H, W ≥ 11.
        dssim_weight: λ (docs/method.md §6: 0.2).
    """
    p = to_bchw(pred, channels_last)
    t = to_bchw(target, channels_last)
    l1 = (p - t).abs().mean()
    return (1.0 - dssim_weight) * l1 + dssim_weight * (1.0 - ssim_map(p, t, ssim_config).mean())


@dataclass
class RegularisationLosses:
    """Unweighted terms (for the log) and their weighted sum (for ``backward``).

    Attributes:
        tv_rgb, tv_disparity, scale, face_position, face_laplacian: scalar terms, unweighted;
            a term that is skipped (weight 0, frozen face xyz, no Laplacian) is a zero tensor.
        total: Σ weight·term (docs/method.md §4).
    """

    tv_rgb: Tensor
    tv_disparity: Tensor
    scale: Tensor
    face_position: Tensor
    face_laplacian: Tensor
    total: Tensor


def regularisation_losses(
    weights: LossWeights,
    *,
    rgb_bchw: Tensor,
    disparity_b1hw: Tensor,
    scales: Tensor,
    means_face: Tensor,
    anchors_face: Tensor,
    laplacian_fn: LaplacianLoss | None = None,
) -> RegularisationLosses:
    """Every non-guidance loss of one step (docs/method.md §4; docs/official-code.md §3.5).

    Args:
        weights: the ``losses`` group of the config.
        rgb_bchw: (B, 3, H, W) training renders with their augmented backgrounds.
        disparity_b1hw: (B, 1, H, W) from ``disparity``.
        scales: activated, augmented scales of every rendered splat, any shape.
        means_face, anchors_face: (F, 3) face-splat centres and anchors.
        laplacian_fn: the uniform-Laplacian difference loss on face triangles
            (``arc2avatar.head.laplacian``); ``None`` skips the term.

    The face terms are skipped when ``weights.freeze_face_xyz`` (positions are not optimised).
    """
    zero = rgb_bchw.new_zeros(())

    def term(weight: float, compute: Callable[[], Tensor]) -> Tensor:
        return compute() if weight != 0.0 else zero

    freeze = weights.freeze_face_xyz
    tv_rgb = term(weights.tv_rgb, lambda: tv_loss(rgb_bchw))
    tv_disp = term(weights.tv_disparity, lambda: tv_loss(disparity_b1hw))
    scale = term(weights.scale, lambda: scale_loss(scales))
    position = zero if freeze else term(weights.face_position, lambda: face_position_loss(means_face, anchors_face))
    laplacian = zero if freeze or laplacian_fn is None else term(
        weights.face_laplacian, lambda: laplacian_fn(means_face, anchors_face))
    total = (weights.tv_rgb * tv_rgb + weights.tv_disparity * tv_disp + weights.scale * scale
             + weights.face_position * position + weights.face_laplacian * laplacian)
    return RegularisationLosses(tv_rgb, tv_disp, scale, position, laplacian, total)
