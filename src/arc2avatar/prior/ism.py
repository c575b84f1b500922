"""Interval Score Matching and SDS on latents, on timestep VALUES (docs/method.md §2; docs/official-code.md §2.2–2.7).

Written by hand: LucidDreamer's ISM as the official release runs it (no library offers it). The
step knows nothing of VAEs or of what cameras mean: it sees clean latents, a ``Denoiser`` and the
per-view contexts, and returns the gradient g on the latents.

ISM, with ᾱ_t = ``alphas_cumprod[t]`` indexed by the timestep value t (docs/official-code.md §2.3):
  t ~ U{t_min..t_max}; s = max(t − δT, 1); n = N(0,1) + offset·N(0,1)_(1,C,1,1);
  x_1 = √ᾱ_1·z + √(1−ᾱ_1)·n;  DDIM inversion (η = 0, empty prompt, no CFG) 1 → 1+δS → … → s;
  one more step s → t with ε_s = ε(x_s, s, ∅), which is also the target;
  ε̂ = Perp-Neg-CFG of ONE batched call on x_t over [uncond, pos, neg1, neg2];
  g = λ·w(t)·(ε̂ − ε_s), w(t) = √((1−ᾱ_t)/ᾱ_t), NaNs zeroed.
One DDIM inversion step c → n with ε = ε(x_c, c, ∅):  x̂0 = (x_c − √(1−ᾱ_c)·ε)/√ᾱ_c,
x_n = √ᾱ_n·x̂0 + √(1−ᾱ_n)·ε.
SDS: x_t = √ᾱ_t·z + √(1−ᾱ_t)·n, target n, same ε̂ and weighting.
The official ran a no-op inversion call when s = 1; we skip it (0 inversion calls then).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from .._timing import NULL_TIMER, Timer
from .configs import PriorConfig
from .views import ViewConditioning, perp_neg_combine

if TYPE_CHECKING:
    from arc2avatar.cameras.model import Cameras  # typing only


class Branch(IntEnum):
    """Which prompt a sample of a UNet call is conditioned on (lets an oracle answer honestly)."""

    INVERSION = 0  # empty prompt (DDIM inversion, ISM target)
    UNCOND = 1  # negative prompt (CFG unconditional branch)
    POSITIVE = 2  # view-blended ID embedding
    NEGATIVE = 3  # Perp-Neg negative view embeddings


class Denoiser(Protocol):
    """ε-prediction model used by the ISM/SDS step.

    Batch layout: every call's N samples are k stacked copies of the B views, sample n belongs to
    view n mod B (N = B for the inversion calls, N = 4B for the main call).
    """

    def prepare(self, clean_latents: Tensor, cameras: Cameras | None, flipped: bool) -> None:
        """Called once per guidance step before any prediction with the (B, C, h, w) clean latents."""

    def predict_eps(self, latents: Tensor, timesteps: Tensor, context: Tensor, branch: Tensor) -> Tensor:
        """ε(x_t, t, c): latents (N, C, h, w), timesteps (N,) values, context (N, 77, D), branch (N,)."""


@dataclass
class IsmResult:
    """One guidance step's latent gradient and diagnostics.

    Attributes:
        grad: (B, C, h, w) g = λ·w(t)·(ε̂ − target) in the latents' dtype, to inject on the latents.
        timestep, interval_timestep: t and s (s = t for SDS).
        unet_calls: number of denoiser calls (inversion + main).
        grad_norm: ‖g‖ over the whole batch, a 0-dim tensor on g's device (reading it with
            ``float()`` waits for the GPU; the loop reads it only when it logs).
        noise: (B, C, h, w) the added noise n (offset included), fp32 or wider.
        target: (B, C, h, w) the target ε (ε(x_s, s, ∅) for ISM, n for SDS), fp32 or wider.
        eps_guided: (B, C, h, w) ε̂, fp32 or wider.
    """

    grad: Tensor
    timestep: int
    interval_timestep: int
    unet_calls: int
    grad_norm: Tensor
    noise: Tensor
    target: Tensor
    eps_guided: Tensor


def sample_timesteps(config: PriorConfig, generator: torch.Generator | None) -> tuple[int, int]:
    """t ~ U{t_min..t_max} (inclusive, timestep values) and s = max(t − δT, s_floor) (docs/method.md §2).

    The draw happens on ``generator``'s device; pass a CPU generator to avoid a host–device sync
    (t decides how many inversion calls run, so the host must know it)."""
    device = generator.device if generator is not None else "cpu"
    t = int(torch.randint(config.t_min, config.t_max + 1, (1,), generator=generator, device=device).item())
    return t, max(t - config.delta_t, config.s_floor)


def sample_noise(shape: torch.Size, offset_std: float, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """(B, C, h, w) N(0,1) + offset_std·N(0,1) of shape (1, C, 1, 1) shared by the batch (docs/method.md §2)."""
    device = generator.device if generator is not None else like.device
    noise = torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float32)
    offset = torch.randn((1, shape[1], 1, 1), generator=generator, device=device, dtype=torch.float32)
    return (noise + offset_std * offset).to(device=like.device, dtype=like.dtype)


def guidance_weight(alpha_bar_t: float) -> float:
    """w(t) = √((1−ᾱ_t)/ᾱ_t) (docs/official-code.md §2.7)."""
    return ((1.0 - alpha_bar_t) / alpha_bar_t) ** 0.5


def ddim_inversion_step(x_c: Tensor, eps: Tensor, alpha_bar_c: float, alpha_bar_n: float) -> Tensor:
    """Deterministic DDIM step (η = 0) from timestep c to n (n > c inverts, n < c samples)."""
    x0_hat = (x_c - (1.0 - alpha_bar_c) ** 0.5 * eps) / alpha_bar_c**0.5
    return torch.nan_to_num(alpha_bar_n**0.5 * x0_hat + (1.0 - alpha_bar_n) ** 0.5 * eps)


def inversion_schedule(s: int, start: int, stride: int) -> list[int]:
    """Timestep values visited by the inversion x_start → x_s: [start, start+stride, …, s]."""
    values = [start]
    while values[-1] < s:
        values.append(min(values[-1] + stride, s))
    return values


def _predict(
    denoiser: Denoiser, x: Tensor, timestep: int, context: Tensor, branch: Branch | Tensor
) -> Tensor:
    n = x.shape[0]
    t = torch.full((n,), timestep, device=x.device, dtype=torch.long)
    b = branch if isinstance(branch, Tensor) else torch.full((n,), int(branch), device=x.device, dtype=torch.long)
    return denoiser.predict_eps(x, t, context, b)


def _invert(
    denoiser: Denoiser, z: Tensor, noise: Tensor, context: Tensor, abar: Tensor, s: int, t: int, config: PriorConfig
) -> tuple[Tensor, Tensor, int]:
    """DDIM-invert z from ``config.s_floor`` to s, then one step s → t (module doc).

    Returns:
        x_t (B, C, h, w), the target ε(x_s, s, ∅) and the number of denoiser calls.
    """
    start = config.s_floor
    a0 = float(abar[start])
    x = a0**0.5 * z + (1.0 - a0) ** 0.5 * noise
    steps = inversion_schedule(s, start, config.delta_s)
    for c, n in zip(steps[:-1], steps[1:]):
        eps = _predict(denoiser, x, c, context, Branch.INVERSION)
        x = ddim_inversion_step(x, eps, float(abar[c]), float(abar[n]))
    target = _predict(denoiser, x, s, context, Branch.INVERSION)
    x_t = ddim_inversion_step(x, target, float(abar[s]), float(abar[t]))
    return x_t, target, len(steps)


def ism_step(
    denoiser: Denoiser,
    latents: Tensor,
    conditioning: ViewConditioning,
    alphas_cumprod: Tensor,
    config: PriorConfig = PriorConfig(),
    generator: torch.Generator | None = None,
    cameras: Cameras | None = None,
    flipped: bool = False,
    *,
    timesteps: tuple[int, int] | None = None,
    timer: Timer = NULL_TIMER,
) -> IsmResult:
    """One ISM (paper eq. 2) or SDS (paper eq. 1, ``config.mode``) guidance step on clean latents (docs/method.md §2.3).

    Args:
        denoiser: the ε model (UNet or oracle); ``prepare`` is called first.
        latents: (B, C, h, w) clean latents z (detached here).
        conditioning: the B views' contexts and Perp-Neg weights.
        alphas_cumprod: (T,) ᾱ indexed by timestep value (a CPU tensor saves a device→host copy).
        generator: draws the noise and its offset (and t unless ``timesteps`` is given).
        cameras, flipped: passed through to ``denoiser.prepare`` only.
        timesteps: (t, s) drawn by the caller with ``sample_timesteps`` (on a CPU generator).
        timer: a ``StageTimer`` for the "inversion" and "main_prediction" stages.
    Returns:
        ``IsmResult`` with g (B, C, h, w) in the latents' dtype.
    """
    with torch.no_grad():
        # Inversion arithmetic in at least fp32 (fp16 latents on CUDA); the denoiser casts its input.
        z = latents.detach().to(torch.promote_types(latents.dtype, torch.float32))
        batch = z.shape[0]
        denoiser.prepare(z, cameras, flipped)
        abar = alphas_cumprod.detach().double().cpu()
        t, s = timesteps if timesteps is not None else sample_timesteps(config, generator)
        noise = sample_noise(z.shape, config.offset_noise, generator, z)
        calls = 0
        if config.mode == "ism":
            with timer.stage("inversion"):
                x_t, target, calls = _invert(denoiser, z, noise, conditioning.inversion, abar, s, t, config)
        else:
            s = t
            at = float(abar[t])
            x_t = at**0.5 * z + (1.0 - at) ** 0.5 * noise
            target = noise
        branches = torch.cat(
            [torch.full((batch,), int(b), device=z.device, dtype=torch.long)
             for b in (Branch.UNCOND, Branch.POSITIVE, Branch.NEGATIVE, Branch.NEGATIVE)]
        )
        with timer.stage("main_prediction"):
            eps_all = _predict(denoiser, x_t.repeat(4, 1, 1, 1), t, conditioning.main_contexts(), branches)
        calls += 1
        eps_u, eps_p, eps_n1, eps_n2 = eps_all.to(z.dtype).chunk(4, dim=0)
        eps_guided = perp_neg_combine(
            eps_u, eps_p, [eps_n1, eps_n2], conditioning.neg_weights, config.guidance_scale,
            config.perp_neg_skip, config.perp_norm_floor,
        )
        weight = config.lambda_guidance * guidance_weight(float(abar[t]))
        grad = torch.nan_to_num(weight * (eps_guided - target.to(z.dtype))).to(latents.dtype)
    return IsmResult(
        grad=grad,
        timestep=t,
        interval_timestep=s,
        unet_calls=calls,
        grad_norm=grad.float().norm(),
        noise=noise,
        target=target,
        eps_guided=eps_guided,
    )
