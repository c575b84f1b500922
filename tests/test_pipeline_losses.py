"""Claims about the non-guidance losses and the image metrics (docs/method.md §4, §6; docs/official-code.md §3.5, §4.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from arc2avatar.pipeline.config import LossWeights
from arc2avatar.pipeline.losses import (
    disparity,
    face_position_loss,
    l1_dssim,
    regularisation_losses,
    scale_loss,
    tv_loss,
)
from arc2avatar.pipeline.metrics import image_metrics, psnr, ssim


def test_tv_loss_matches_the_official_formula_on_a_hand_computed_array():
    # One image, one channel, 2×3: rows [0 1 3], [2 2 2].
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    # Δh: (2,1,-1) → Σ² = 6, / (C·(H−1)·W = 3) = 2; Δw: (1,2),(0,0) → Σ² = 5, / (C·H·(W−1) = 4)
    expected = 2.0 * (6.0 / 3.0 + 5.0 / 4.0) / 1
    assert tv_loss(x).item() == pytest.approx(expected)
    assert tv_loss(torch.cat([x, x])).item() == pytest.approx(expected)  # / B: batch-mean
    assert tv_loss(torch.ones(2, 3, 4, 4)).item() == 0.0


def test_disparity_normalises_opaque_pixels_between_0_and_1_and_background_to_0():
    fovx = 2 * math.atan(0.5)  # f = 1/(2·tan(fovx/2)) = 1
    # Pixels: opaque at depth 2 (disp 0.5), opaque at depth 4 (0.25), background (T=1: 1/10).
    depth = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    alpha = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    out = disparity(depth, alpha, fovx)
    d = [1.0 / (2.0 + 1e-5), 1.0 / (4.0 + 1e-5), 1.0 / (10.0 + 1e-5)]  # f/(D + 10·T + eps)
    lo, hi = d[1], d[0]  # min over opaque pixels, max over all
    expected = [(v - lo) / (hi - lo) for v in d]
    expected[2] = 0.0  # clamped
    assert out.flatten().tolist() == pytest.approx(expected, abs=1e-6)


def test_disparity_uses_the_global_minimum_when_no_pixel_is_opaque_and_per_image_fov():
    depth = torch.tensor([[[[0.5, 1.0]]], [[[0.5, 1.0]]]])
    alpha = torch.full_like(depth, 0.5)  # T = 0.5 > 0.1 everywhere
    out = disparity(depth, alpha, torch.tensor([0.5, 1.0]))
    assert out.flatten().tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-6)
    flat = disparity(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), 0.7)
    assert torch.isfinite(flat).all() and (flat == 0).all()


def test_scale_and_face_position_losses_are_nan_safe_means():
    assert scale_loss(torch.tensor([[1.0, 2.0, 3.0]])).item() == pytest.approx(2.0)
    means = torch.tensor([[1.0, 0.0, 0.0], [float("nan"), 0.0, 2.0]])
    anchors = torch.zeros(2, 3)
    assert face_position_loss(means, anchors).item() == pytest.approx((1 + 0 + 0 + 0 + 4) / 5)
    assert face_position_loss(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0


def test_regularisation_total_is_the_weighted_sum_and_freeze_skips_face_terms():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 8, 8, generator=g)
    disp = torch.rand(2, 1, 8, 8, generator=g)
    scales = torch.rand(10, 3, generator=g)
    means, anchors = torch.rand(5, 3, generator=g), torch.rand(5, 3, generator=g)
    lap = lambda x, x0: ((x - x0) ** 2).sum()  # noqa: E731 — stands in for head.laplacian
    w = LossWeights(tv_rgb=2.0, tv_disparity=3.0, scale=0.5, face_position=10.0, face_laplacian=100.0)
    out = regularisation_losses(w, rgb_bchw=rgb, disparity_b1hw=disp, scales=scales,
                                means_face=means, anchors_face=anchors, laplacian_fn=lap)
    expected = (2 * tv_loss(rgb) + 3 * tv_loss(disp) + 0.5 * scales.mean()
                + 10 * face_position_loss(means, anchors) + 100 * lap(means, anchors))
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)
    frozen = regularisation_losses(LossWeights(freeze_face_xyz=True), rgb_bchw=rgb, disparity_b1hw=disp,
                                   scales=scales, means_face=means, anchors_face=anchors, laplacian_fn=lap)
    assert frozen.face_position.item() == 0.0 and frozen.face_laplacian.item() == 0.0
    assert frozen.total.item() == pytest.approx((tv_loss(rgb) + tv_loss(disp) + scales.mean()).item(), rel=1e-6)


def _images(seed: int, n: int, h: int = 24, w: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.random((n, h, w, 3))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    return pred, target


def test_psnr_and_ssim_match_scikit_image_within_1e_3():
    pred, target = _images(0, 3)
    ref_psnr = np.mean([peak_signal_noise_ratio(t, p, data_range=1.0) for p, t in zip(pred, target)])
    ref_ssim = np.mean([
        structural_similarity(t, p, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for p, t in zip(pred, target)
    ])
    p_last, t_last = torch.from_numpy(pred).float(), torch.from_numpy(target).float()  # (C,H,W,3)
    assert psnr(p_last, t_last).item() == pytest.approx(ref_psnr, abs=1e-3)
    assert ssim(p_last, t_last).item() == pytest.approx(ref_ssim, abs=1e-3)
    p_first, t_first = p_last.permute(0, 3, 1, 2), t_last.permute(0, 3, 1, 2)  # (B,3,H,W)
    assert ssim(p_first, t_first).item() == pytest.approx(ref_ssim, abs=1e-3)
    report = image_metrics(p_last, t_last)
    assert report["num_views"] == 3 and report["psnr"] == pytest.approx(ref_psnr, abs=1e-3)


def test_identical_images_give_ssim_1_and_l1_dssim_0_and_the_loss_is_differentiable():
    _, target = _images(1, 2, 16, 16)
    t = torch.from_numpy(target).permute(0, 3, 1, 2).float()
    assert ssim(t, t).item() == pytest.approx(1.0, abs=1e-6)
    assert l1_dssim(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert image_metrics(t, t)["psnr"] is None  # infinite PSNR is not JSON
    pred = (t + 0.05 * torch.randn_like(t)).requires_grad_(True)
    loss = l1_dssim(pred, t, dssim_weight=0.2)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
