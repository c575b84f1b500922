"""Claims about the splat renderer (issue 2.4): gsplat's rules on the CPU, exact gradients, backends."""

from __future__ import annotations

import math
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

from arc2avatar.cameras import orbit_cameras
from arc2avatar.errors import InputError, MissingDependencyError
from arc2avatar.splats import render as render_module
from arc2avatar.splats.render import RasterRules
from arc2avatar.splats.render import GsplatUnavailableWarning, rasterize, render_splats

F64 = torch.float64


def _scene(dtype=F64, seed=0, count=7):
    """A small overlapping scene: splats near the origin, one very opaque pair stacked in depth."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(count, 3, generator=gen, dtype=dtype) * 0.25
    means[0] = torch.tensor([0.02, 0.3, 0.01])  # three nearly opaque splats stacked along the view:
    means[1] = torch.tensor([0.0, 0.1, 0.0])  # the second one is cut by T ≤ 1e-4
    means[2] = torch.tensor([-0.01, -0.1, 0.02])
    quats = torch.randn(count, 4, generator=gen, dtype=dtype)
    scales = torch.rand(count, 3, generator=gen, dtype=dtype) * 0.15 + 0.06
    opacities = torch.rand(count, generator=gen, dtype=dtype) * 0.6 + 0.3
    scales[:3] = 0.4
    opacities[:3] = torch.tensor([0.9995, 0.9995, 0.9])
    colors = torch.rand(count, 3, generator=gen, dtype=dtype)
    return means, quats, scales, opacities, colors


def _cameras(width=20, height=18, dtype=F64):
    cams = orbit_cameras(3.0, torch.tensor([90.0, 75.0]), torch.tensor([0.0, 40.0]), 0.8, width, height)
    return type(cams)(**{**cams.__dict__, "viewmats": cams.viewmats.to(dtype), "Ks": cams.Ks.to(dtype)})


def _naive_render(means, quats, scales, opacities, colors, cams, backgrounds, eps2d=0.3):
    """Obviously-correct reference: every pixel walks every splat front to back (gsplat 1.5.3 rules)."""
    C, H, W = len(cams), cams.height, cams.width
    rgb = torch.zeros(C, H, W, 3, dtype=means.dtype)
    alpha_img = torch.zeros(C, H, W, 1, dtype=means.dtype)
    depth_img = torch.zeros(C, H, W, 1, dtype=means.dtype)
    stops = 0  # pixels ended by the transmittance rule
    q = torch.nn.functional.normalize(quats, dim=-1)
    for c in range(C):
        R, t, K = cams.viewmats[c, :3, :3], cams.viewmats[c, :3, 3], cams.Ks[c]
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        splats = []
        for n in range(means.shape[0]):
            w, x, y, z = q[n]
            rot = torch.stack([
                torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
                torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
                torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
            ])  # fmt: skip
            cov = R @ rot @ torch.diag(scales[n] ** 2) @ rot.T @ R.T
            p = R @ means[n] + t
            if p[2] < cams.near or p[2] > cams.far or opacities[n] < 1 / 255:
                continue
            u = torch.clamp(p[0] / p[2], -1.3 * 0.5 * W / fx, 1.3 * 0.5 * W / fx)
            v = torch.clamp(p[1] / p[2], -1.3 * 0.5 * H / fy, 1.3 * 0.5 * H / fy)
            J = torch.stack([torch.stack([fx / p[2], 0 * u, -fx * u / p[2]]), torch.stack([0 * u, fy / p[2], -fy * v / p[2]])])
            cov2d = J @ cov @ J.T + eps2d * torch.eye(2, dtype=means.dtype)
            centre = torch.stack([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
            splats.append((p[2].item(), centre, torch.linalg.inv(cov2d), opacities[n], colors[n]))
        splats.sort(key=lambda s: s[0])
        for i in range(H):
            for j in range(W):
                pix = torch.tensor([j + 0.5, i + 0.5], dtype=means.dtype)
                T, acc, dep = 1.0, torch.zeros(3, dtype=means.dtype), 0.0
                for depth, centre, conic, opacity, color in splats:
                    d = centre - pix
                    sigma = 0.5 * d @ conic @ d
                    a = min(0.999, float(opacity * torch.exp(-sigma)))
                    if sigma < 0 or a < 1 / 255:
                        continue
                    if T * (1 - a) <= 1e-4:
                        stops += 1
                        break
                    acc = acc + color * a * T
                    dep += depth * a * T
                    T *= 1 - a
                rgb[c, i, j] = acc + T * backgrounds[c]
                alpha_img[c, i, j, 0] = 1 - T
                depth_img[c, i, j, 0] = dep
    return rgb, alpha_img, depth_img, stops


def test_tiled_rasteriser_matches_naive_per_pixel_loop_to_1e6():
    means, quats, scales, opacities, colors = _scene()
    cams = _cameras()
    backgrounds = torch.tensor([[0.2, 0.5, 0.9], [1.0, 1.0, 1.0]], dtype=F64)
    out = rasterize(means, quats, scales, opacities, colors, cams, backgrounds, backend="torch")
    rgb, alpha, depth, stops = _naive_render(means, quats, scales, opacities, colors, cams, backgrounds)
    assert stops > 3, "the scene must reach the transmittance stop"
    assert torch.allclose(out.rgb, rgb, atol=1e-6, rtol=0)
    assert torch.allclose(out.alpha, alpha, atol=1e-6, rtol=0)
    assert torch.allclose(out.depth, depth, atol=1e-6, rtol=0)
    assert out.backend == "torch"


@pytest.mark.parametrize("rules", [RasterRules(tile_size=16), RasterRules(tile_size=8), RasterRules(tile_size=4, pairs_per_chunk=64, max_saved_pairs=0),
                                   RasterRules(chunk_fill=0.0), RasterRules(chunk_fill=1.0, max_saved_pairs=0)])
def test_tile_size_chunking_and_recompute_change_neither_image_nor_gradients(rules):
    # chunk_fill also sets how the backward trims each tile to the splats that reached its pixels
    means, quats, scales, opacities, colors = (t.requires_grad_() for t in _scene())
    cams = _cameras()
    bg = torch.rand(2, 3, dtype=F64)
    results = []
    for r in (RasterRules(), rules):
        out = render_module._rasterize_torch(means, quats, scales, opacities, colors, cams, bg, 0.3, r)
        loss = (out.rgb * torch.linspace(0, 1, 3, dtype=F64)).sum() + out.alpha.sum() + out.depth.sum()
        grads = torch.autograd.grad(loss, (means, quats, scales, opacities, colors))
        results.append((out.rgb, *grads))
    for first, second in zip(*results):
        assert torch.allclose(first, second, atol=1e-10)


def test_gradients_match_central_finite_differences_for_every_input():
    means, quats, scales, opacities, colors = _scene()
    cams = _cameras(16, 16)
    backgrounds = torch.tensor([[0.3, 0.6, 0.1], [0.9, 0.2, 0.4]], dtype=F64)
    inputs = [means, quats, scales, opacities, colors, backgrounds]
    gen = torch.Generator().manual_seed(1)
    w_rgb = torch.rand(2, 16, 16, 3, generator=gen, dtype=F64)
    w_alpha = torch.rand(2, 16, 16, 1, generator=gen, dtype=F64)
    w_depth = torch.rand(2, 16, 16, 1, generator=gen, dtype=F64)

    def loss(*args):
        out = rasterize(*args[:5], cams, args[5], backend="torch")
        return (out.rgb * w_rgb).sum() + (out.alpha * w_alpha).sum() + 0.1 * (out.depth * w_depth).sum()

    leaves = [t.clone().requires_grad_() for t in inputs]
    analytic = torch.autograd.grad(loss(*leaves), leaves)
    eps = 1e-6
    for k, tensor in enumerate(inputs):
        numeric = torch.zeros_like(tensor)
        for idx in range(tensor.numel()):
            plus, minus = [t.clone() for t in inputs], [t.clone() for t in inputs]
            plus[k].view(-1)[idx] += eps
            minus[k].view(-1)[idx] -= eps
            numeric.view(-1)[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        assert torch.allclose(analytic[k], numeric, atol=1e-5, rtol=1e-4), f"input {k}"
        assert numeric.abs().max() > 1e-3  # every input really influences the image


def test_empty_scene_renders_the_background_with_zero_alpha_and_depth():
    cams = _cameras()
    empty = torch.zeros(0, 3, dtype=F64)
    bg = torch.tensor([0.25, 0.5, 0.75], dtype=F64)
    out = rasterize(empty, torch.zeros(0, 4, dtype=F64), empty, torch.zeros(0, dtype=F64), empty, cams, bg)
    assert torch.equal(out.rgb, bg.expand(2, 18, 20, 3))
    assert not out.alpha.any() and not out.depth.any()
    assert out.means2d.shape == (2, 0, 2) and out.radii.shape == (2, 0)


def test_big_opaque_splat_gives_depth_z_times_alpha_and_its_colour():
    cams = orbit_cameras(4.0, 90.0, 0.0, 0.6, 16, 16)
    out = rasterize(
        torch.tensor([[0.0, 1.0, 0.0]]),  # on the camera's axis, 3 units in front of it
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.tensor([[30.0, 30.0, 30.0]]),
        torch.tensor([0.9]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        cams,
        torch.tensor([0.0, 0.0, 1.0]),
    )
    assert torch.allclose(out.alpha, torch.full_like(out.alpha, 0.9), atol=2e-3)
    assert torch.allclose(out.depth, 3.0 * out.alpha, atol=1e-5)
    assert torch.allclose(out.rgb[..., 0:1], out.alpha, atol=1e-6)
    assert torch.allclose(out.rgb[..., 2:3], 1.0 - out.alpha, atol=1e-6)
    assert out.radii[0, 0] > 16


def test_splat_behind_the_camera_is_culled():
    cams = orbit_cameras(4.0, 90.0, 0.0, 0.6, 16, 16)  # camera at y = 4 looking toward −y
    behind = torch.tensor([[0.0, 6.0, 0.0], [0.0, 0.0, 0.0]])
    out = rasterize(
        behind, torch.tensor([[1.0, 0, 0, 0]] * 2), torch.full((2, 3), 0.3), torch.tensor([0.9, 0.9]),
        torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), cams,
    )  # fmt: skip
    assert out.radii[0, 0] == 0 and out.radii[0, 1] > 0
    assert torch.equal(out.means2d[0, 0], torch.zeros(2))
    assert out.rgb[..., 0].abs().max() == 0  # nothing red reaches the image


def test_means2d_keeps_its_screen_space_gradient_for_densification():
    means, quats, scales, opacities, colors = _scene(torch.float32)
    means.requires_grad_()
    out = rasterize(means, quats, scales, opacities, colors, _cameras(dtype=torch.float32))
    out.rgb.sum().backward()
    grad = out.means2d.grad
    assert grad is not None and grad.shape == (2, means.shape[0], 2)
    assert (grad[out.radii > 0].norm(dim=-1) > 0).all()
    assert (grad[out.radii == 0] == 0).all()


def test_render_splats_reads_a_gaussian_splats_like_object():
    means, quats, scales, opacities, colors = _scene(torch.float32)
    splats = SimpleNamespace(means=means, rotations=quats, scales=scales, opacities=opacities[:, None], colors=colors)
    cams = _cameras(dtype=torch.float32)
    direct = rasterize(means, quats, scales, opacities, colors, cams)
    assert torch.equal(render_splats(splats, cams).rgb, direct.rgb)


def test_gsplat_backend_on_cpu_tensors_raises_a_clear_error():
    means, quats, scales, opacities, colors = _scene(torch.float32)
    with pytest.raises(InputError, match="needs CUDA tensors.*backend='auto' or 'torch'"):
        rasterize(means, quats, scales, opacities, colors, _cameras(dtype=torch.float32), backend="gsplat")


def test_cuda_without_gsplat_falls_back_to_torch_with_one_helpful_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "gsplat", None)  # makes `import gsplat` raise ImportError
    render_module._probe_gsplat.cache_clear()
    render_module._probe_gsplat_warn_once.cache_clear()
    try:
        cuda = torch.device("cuda")
        with pytest.warns(GsplatUnavailableWarning, match=r'pip install "arc2avatar\[cuda\]".*TORCH_CUDA_ARCH_LIST'):
            assert render_module._choose_backend("auto", cuda, torch.float32) == "torch"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second call must stay silent
            assert render_module._choose_backend("auto", cuda, torch.float32) == "torch"
        assert render_module._choose_backend("auto", torch.device("cpu"), torch.float32) == "torch"
    finally:
        render_module._probe_gsplat.cache_clear()
        render_module._probe_gsplat_warn_once.cache_clear()


def test_explicit_gsplat_backend_without_gsplat_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gsplat", None)
    render_module._probe_gsplat.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r'pip install "arc2avatar\[cuda\]"'):
            render_module._choose_backend("gsplat", torch.device("cuda"), torch.float32)
    finally:
        render_module._probe_gsplat.cache_clear()


def test_cpu_rendering_never_probes_gsplat(monkeypatch):
    def fail():
        raise AssertionError("gsplat must not be imported for CPU tensors")

    monkeypatch.setattr(render_module, "_probe_gsplat", fail)
    monkeypatch.setattr(render_module, "_probe_gsplat_warn_once", fail)
    means, quats, scales, opacities, colors = _scene(torch.float32)
    out = rasterize(means, quats, scales, opacities, colors, _cameras(dtype=torch.float32))
    assert out.backend == "torch" and math.isfinite(out.rgb.sum().item())


def test_reduced_precision_matmul_setting_changes_nothing_and_is_restored():
    means, quats, scales, opacities, colors = _scene(torch.float32)
    cams = _cameras(dtype=torch.float32)
    exact = rasterize(means, quats, scales, opacities, colors, cams).rgb
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        fast = rasterize(means, quats, scales, opacities, colors, cams).rgb
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)
    assert torch.equal(fast, exact)
