"""Image metrics for held-out views: PSNR and SSIM (``metrics.json``; paper §4).

SSIM is our own small implementation (Wang et al. 2004: 11×11 Gaussian window, σ 1.5,
K1 0.01, K2 0.03, population covariances, "valid" windows only) with separable ``conv2d``,
because it must run on torch tensors on the GPU and, for the mean-face fit (``losses.l1_dssim``),
be differentiable; scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`` gives the same numbers (checked in the tests).

Layouts: images are (B, 3, H, W) channels-first (training renders) or (C, H, W, 3) channels-last
(``RenderOutput.rgb``), values in [0, 1]; a single image (H, W, 3) or (3, H, W) is a batch of one.
Batch results are the mean over images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SsimConfig:
    """Constants of SSIM (Wang et al. 2004; 3DGS and scikit-image use the same).

    Attributes:
        window_size: side of the Gaussian window, pixels (11).
        sigma: std of the Gaussian window, pixels (1.5).
        k1, k2: stabilisers, C1 = (k1·L)², C2 = (k2·L)² (0.01, 0.03).
        data_range: L, the value range of the images (1 for [0, 1]).
    """

    window_size: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    data_range: float = 1.0


def to_bchw(images: Tensor, channels_last: bool | None = None) -> Tensor:
    """(B,3,H,W) / (B,H,W,3) / (3,H,W) / (H,W,3) → (B,3,H,W). ``channels_last=None`` guesses
    from which axis has 1 or 3 entries and raises when both ends do."""
    x = images.unsqueeze(0) if images.dim() == 3 else images
    if x.dim() != 4:
        raise ValueError(f"expected images of 3 or 4 dimensions, got shape {tuple(images.shape)}")
    if channels_last is None:
        last, first = x.shape[-1] in (1, 3), x.shape[1] in (1, 3)
        if last == first:
            raise ValueError(f"cannot tell the channel axis of shape {tuple(images.shape)}; pass channels_last")
        channels_last = last
    return x.permute(0, 3, 1, 2) if channels_last else x


def _check_pair(pred: Tensor, target: Tensor, channels_last: bool | None) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return to_bchw(pred, channels_last), to_bchw(target, channels_last)


def psnr_per_image(pred: Tensor, target: Tensor, *, data_range: float = 1.0,
                   channels_last: bool | None = None) -> Tensor:
    """(B,) PSNR in dB of each image, 10·log10(L² / MSE); +inf for identical images."""
    p, t = _check_pair(pred, target, channels_last)
    mse_b = (p - t).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse_b)


def psnr(pred: Tensor, target: Tensor, *, data_range: float = 1.0, channels_last: bool | None = None) -> Tensor:
    """Scalar: mean over the batch of per-image PSNR (dB)."""
    return psnr_per_image(pred, target, data_range=data_range, channels_last=channels_last).mean()


def gaussian_window(config: SsimConfig = SsimConfig(), *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """(window_size,) normalised 1-D Gaussian; the 2-D window is its outer product."""
    half = (config.window_size - 1) / 2
    x = torch.arange(config.window_size, dtype=dtype, device=device) - half
    g = torch.exp(-(x**2) / (2 * config.sigma**2))
    return g / g.sum()


def ssim_map(pred_bchw: Tensor, target_bchw: Tensor, config: SsimConfig = SsimConfig()) -> Tensor:
    """(B, C, H−w+1, W−w+1) local SSIM over every full window (w = window_size), per channel."""
    _, c, h, w = pred_bchw.shape
    if min(h, w) < config.window_size:
        raise ValueError(f"SSIM needs images of at least {config.window_size}² pixels, got {h}×{w}")
    g = gaussian_window(config, dtype=pred_bchw.dtype, device=pred_bchw.device)
    kernel_row = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)  # (C,1,1,w)
    kernel_col = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)  # (C,1,w,1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(x, kernel_row, groups=c), kernel_col, groups=c)

    mu_p, mu_t = blur(pred_bchw), blur(target_bchw)
    var_p = blur(pred_bchw * pred_bchw) - mu_p**2
    var_t = blur(target_bchw * target_bchw) - mu_t**2
    cov = blur(pred_bchw * target_bchw) - mu_p * mu_t
    c1 = (config.k1 * config.data_range) ** 2
    c2 = (config.k2 * config.data_range) ** 2
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def ssim_per_image(pred: Tensor, target: Tensor, *, config: SsimConfig = SsimConfig(),
                   channels_last: bool | None = None) -> Tensor:
    """(B,) mean SSIM of each image (channels averaged). Differentiable."""
    p, t = _check_pair(pred, target, channels_last)
    return ssim_map(p, t, config).flatten(1).mean(dim=1)


def ssim(pred: Tensor, target: Tensor, *, config: SsimConfig = SsimConfig(),
         channels_last: bool | None = None) -> Tensor:
    """Scalar: mean SSIM over the batch."""
    return ssim_per_image(pred, target, config=config, channels_last=channels_last).mean()


def image_metrics(pred: Tensor, target: Tensor, *, channels_last: bool | None = None) -> dict[str, object]:
    """Held-out-view metrics for ``metrics.json``: mean and per-view PSNR (dB) and SSIM.

    Non-finite PSNR (identical images) is reported as ``None`` in the per-view list and the
    mean is taken over finite values (``None`` if none).
    """
    with torch.no_grad():
        psnr_b = psnr_per_image(pred.float(), target.float(), channels_last=channels_last)
        ssim_b = ssim_per_image(pred.float(), target.float(), channels_last=channels_last)
    psnr_list = [float(v) if math.isfinite(float(v)) else None for v in psnr_b]
    finite = [v for v in psnr_list if v is not None]
    return {
        "psnr": sum(finite) / len(finite) if finite else None,
        "ssim": float(ssim_b.mean()),
        "psnr_per_view": psnr_list,
        "ssim_per_view": [float(v) for v in ssim_b],
        "num_views": int(psnr_b.shape[0]),
    }
