"""Claims about the ISM / SDS step, the oracle teacher and the guidance interface (docs/method.md §2)."""

from __future__ import annotations

import math

import pytest
import torch

from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.prior.configs import PriorConfig, scheduler_config, unet_config
from arc2avatar.prior.guidance import GuidanceContext, IsmGuidance, UNetDenoiser
from arc2avatar.prior.latents import RgbLatentEncoder
from arc2avatar.prior.ism import ddim_inversion_step, inversion_schedule, ism_step
from arc2avatar.prior.oracle import OracleDenoiser
from arc2avatar.prior.views import ViewEmbeddings, perp_neg_weights, view_conditioning

AZIMUTHS = [10.0, 45.0, 120.0, -170.0]  # every view has a non-zero Perp-Neg weight


@pytest.fixture(scope="module")
def alphas_cumprod() -> torch.Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config()).alphas_cumprod


@pytest.fixture(scope="module")
def tiny_unet() -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(unet_config("tiny")).eval().requires_grad_(False)
    # the default init leaves the output conv at zero: perturb it so ε depends on the input
    torch.nn.init.normal_(unet.conv_out.weight, std=0.05)
    return unet


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("mode", ["ism", "sds"])
def test_honest_oracle_gives_lambda_cfg_times_z_minus_target(alphas_cumprod, seed, mode) -> None:
    config = PriorConfig(mode=mode)
    g = torch.Generator().manual_seed(seed)
    z, z_star = torch.randn(2, 4, 4, 6, 6, generator=g)
    cond = view_conditioning(AZIMUTHS, ViewEmbeddings.zeros(77, 8), config)
    assert (cond.neg_weights.abs() > 1e-4).any(dim=1).all()
    oracle = OracleDenoiser(lambda cams, flipped: z_star, alphas_cumprod)
    result = ism_step(oracle, z, cond, alphas_cumprod, config, g)
    expected = config.lambda_guidance * config.guidance_scale * (z - z_star)
    torch.testing.assert_close(result.grad, expected, atol=1e-5, rtol=0)
    assert config.t_min <= result.timestep <= config.t_max


def test_trapped_oracle_using_the_target_on_every_branch_gives_zero_ism_gradient(alphas_cumprod) -> None:
    """The oracle's trap (docs/method.md §2.4): inversion keeps x̂0 = z*, so ε̂ − ε(x_s) = 0 although z ≠ z*."""
    config = PriorConfig()
    g = torch.Generator().manual_seed(7)
    z, z_star = torch.randn(2, 4, 4, 6, 6, generator=g)
    cond = view_conditioning(AZIMUTHS, ViewEmbeddings.zeros(77, 8), config)
    trapped = OracleDenoiser(lambda cams, flipped: z_star, alphas_cumprod, all_branches_target=True)
    result = ism_step(trapped, z, cond, alphas_cumprod, config, g)
    assert result.grad.abs().max().item() < 1e-5
    assert (z - z_star).abs().max().item() > 1.0


def test_inversion_uses_at_most_nine_calls_and_ends_at_s() -> None:
    assert inversion_schedule(450, 1, 50) == [1, 51, 101, 151, 201, 251, 301, 351, 401, 450]
    assert len(inversion_schedule(450, 1, 50)) - 1 == 9
    assert inversion_schedule(1, 1, 50) == [1]


def test_ddim_inversion_then_sampling_with_the_same_eps_returns_the_start_within_1e_5(alphas_cumprod) -> None:
    g = torch.Generator().manual_seed(1)
    x = x_start = torch.randn(2, 4, 8, 8, generator=g)
    steps = inversion_schedule(450, 1, 50)
    eps_used = []
    for c, n in zip(steps[:-1], steps[1:]):
        eps = torch.randn(x.shape, generator=g)
        eps_used.append(eps)
        x = ddim_inversion_step(x, eps, float(alphas_cumprod[c]), float(alphas_cumprod[n]))
    for (c, n), eps in reversed(list(zip(zip(steps[:-1], steps[1:]), eps_used))):
        x = ddim_inversion_step(x, eps, float(alphas_cumprod[n]), float(alphas_cumprod[c]))
    torch.testing.assert_close(x, x_start, atol=1e-5, rtol=0)


def _reference_ism_gradient(unet, z, cond, abar, config, seed):
    """Straightforward re-derivation from docs/method.md §2 with plain loops (no helpers of the package)."""
    g = torch.Generator().manual_seed(seed)
    t = int(torch.randint(config.t_min, config.t_max + 1, (1,), generator=g).item())
    s = max(t - config.delta_t, 1)
    noise = torch.randn(z.shape, generator=g) + config.offset_noise * torch.randn((1, z.shape[1], 1, 1), generator=g)
    B = z.shape[0]

    def eps_of(x, timestep, ctx):
        return unet(x, torch.full((x.shape[0],), timestep), encoder_hidden_states=ctx).sample

    a = float(abar[1])
    x = math.sqrt(a) * z + math.sqrt(1 - a) * noise
    cur, calls = 1, 0
    while cur < s:
        nxt = min(cur + config.delta_s, s)
        e = eps_of(x, cur, cond.inversion)
        ac, an = float(abar[cur]), float(abar[nxt])
        x = math.sqrt(an) * (x - math.sqrt(1 - ac) * e) / math.sqrt(ac) + math.sqrt(1 - an) * e
        cur, calls = nxt, calls + 1
    target = eps_of(x, s, cond.inversion)
    a_s, a_t = float(abar[s]), float(abar[t])
    x_t = math.sqrt(a_t) * (x - math.sqrt(1 - a_s) * target) / math.sqrt(a_s) + math.sqrt(1 - a_t) * target
    e_u = eps_of(x_t, t, cond.uncond)
    e_p = eps_of(x_t, t, cond.positive)
    e_n = [eps_of(x_t, t, cond.negative1), eps_of(x_t, t, cond.negative2)]
    guided = torch.empty_like(z)
    for b in range(B):
        d_pos = (e_p[b] - e_u[b]).flatten()
        total = d_pos.clone()
        for k in range(2):
            w = float(cond.neg_weights[b, k])
            if abs(w) <= 1e-4:
                continue
            d_k = (e_n[k][b] - e_u[b]).flatten()
            proj = torch.dot(d_k, d_pos) / max(float(torch.dot(d_pos, d_pos)), 1e-6)
            total = total + w * (d_k - proj * d_pos)
        guided[b] = e_u[b] + config.guidance_scale * total.reshape(z.shape[1:])
    w_t = math.sqrt((1 - a_t) / a_t)
    return config.lambda_guidance * w_t * (guided - target), t, s, calls + 2


@pytest.mark.parametrize("seed", [11, 12])
def test_ism_on_the_tiny_unet_equals_an_independent_recomputation(tiny_unet, alphas_cumprod, seed) -> None:
    config = PriorConfig()
    g = torch.Generator().manual_seed(100 + seed)
    z = torch.randn(4, 4, 8, 8, generator=g)
    embeds = ViewEmbeddings(*torch.randn(5, 77, 768, generator=g).unbind(0))
    cond = view_conditioning(AZIMUTHS, embeds, config)
    with torch.no_grad():
        want, t, s, calls = _reference_ism_gradient(tiny_unet, z, cond, alphas_cumprod, config, seed)
    got = ism_step(UNetDenoiser(tiny_unet), z, cond, alphas_cumprod, config, torch.Generator().manual_seed(seed))
    assert (got.timestep, got.interval_timestep, got.unet_calls) == (t, s, calls)
    assert want.abs().max() > 1e-3
    torch.testing.assert_close(got.grad, want, atol=1e-5, rtol=1e-5)


def test_oracle_guidance_loss_gradient_on_renders_pulls_toward_the_target(alphas_cumprod) -> None:
    """Through IsmGuidance: RGB latents 2x−1, so ∂loss/∂render = 2·λ·cfg·(z − z*) (flip-aware)."""
    config = PriorConfig()
    g = torch.Generator().manual_seed(5)
    target_rgb = torch.rand(4, 3, 8, 8, generator=g)
    renders = torch.rand(4, 3, 8, 8, generator=g, requires_grad=True)

    def target_fn(cameras, flipped):
        img = target_rgb.flip(-1) if flipped else target_rgb
        return 2.0 * img - 1.0

    cams = orbit_cameras(radius=5.7, polar_deg=90.0, azimuth_deg=torch.tensor(AZIMUTHS), fovy=0.5, width=8, height=8)
    prior = IsmGuidance(OracleDenoiser(target_fn, alphas_cumprod), RgbLatentEncoder(), ViewEmbeddings.zeros(77, 8),
                        alphas_cumprod, config)
    seen_flips = set()
    for _ in range(6):
        renders.grad = None
        out = prior(renders, cams, GuidanceContext(g))
        out.loss.backward()
        seen_flips.add(out.extra["flipped"])
        want = 2.0 * config.lambda_guidance * config.guidance_scale * 2.0 * (renders.detach() - target_rgb)
        torch.testing.assert_close(renders.grad, want, atol=1e-5, rtol=0)
        assert out.grad_norm > 0 and out.extra["unet_calls"] >= 2
    assert seen_flips == {True, False}


def test_rgb_latent_encoder_reduces_resolution_by_area_averaging() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = RgbLatentEncoder(size=(2, 2)).encode(x, None)
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_perp_neg_weights_are_nonzero_for_the_test_azimuths() -> None:
    for az in AZIMUTHS:
        assert any(abs(w) > 1e-4 for _, w in perp_neg_weights(az).negatives)
