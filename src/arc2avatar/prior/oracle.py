"""The honest oracle teacher: a ``Denoiser`` that knows the target (docs/method.md §2.4).

Written by hand (test machinery of ours). An oracle predicts x̂0 exactly and answers
ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t). THE TRAP: if every branch used x̂0 = z* (the target's latents),
DDIM inversion would keep x̂0 = z* along the chain, ε would stay constant and ISM's gradient
would be exactly zero. The honest oracle gives the POSITIVE branch x̂0 = z* and the INVERSION,
UNCOND and NEGATIVE branches x̂0 = z (the current clean latents, as a real unconditional model
reconstructs its input), so ISM gives g = λ·cfg·(z − z*): a clean pull toward the target.
``all_branches_target=True`` builds the trapped oracle, kept only to document the trap in tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from .ism import Branch

if TYPE_CHECKING:
    from arc2avatar.cameras.model import Cameras  # typing only

#: target_fn(cameras, flipped) -> (B, C, h, w) target latents z* for those views.
TargetFn = Callable[[Any, bool], Tensor]


class OracleDenoiser:
    """ε-oracle from a target: POSITIVE → x̂0 = z*, other branches → x̂0 = z (see module doc).

    Args:
        target_fn: (cameras, flipped) → (B, C, h, w) target latents in the same latent space as the
            guidance's ``LatentEncoder`` output (flipped horizontally when ``flipped``).
        alphas_cumprod: (T,) ᾱ indexed by timestep value.
        all_branches_target: the trapped oracle (every branch x̂0 = z*); tests only.
    """

    def __init__(self, target_fn: TargetFn, alphas_cumprod: Tensor, all_branches_target: bool = False) -> None:
        self.target_fn = target_fn
        self.alphas_cumprod = alphas_cumprod
        self.all_branches_target = all_branches_target
        self._clean: Tensor | None = None  # (B, C, h, w) z
        self._target: Tensor | None = None  # (B, C, h, w) z*

    def prepare(self, clean_latents: Tensor, cameras: Cameras | None, flipped: bool) -> None:
        """Store z and z* = target_fn(cameras, flipped) for this guidance step."""
        self._clean = clean_latents.detach()
        target = self.target_fn(cameras, flipped).detach()
        if target.shape != clean_latents.shape:
            raise ValueError(f"oracle target {tuple(target.shape)} != latents {tuple(clean_latents.shape)}")
        self._target = target.to(clean_latents)

    def predict_eps(self, latents: Tensor, timesteps: Tensor, context: Tensor, branch: Tensor) -> Tensor:
        """ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t) per sample; latents (N, C, h, w), N a multiple of B."""
        if self._clean is None or self._target is None:
            raise RuntimeError("OracleDenoiser.prepare() must be called before predict_eps()")
        repeats = latents.shape[0] // self._clean.shape[0]
        clean = self._clean.repeat(repeats, 1, 1, 1).to(latents)
        target = self._target.repeat(repeats, 1, 1, 1).to(latents)
        use_target = branch == int(Branch.POSITIVE)
        if self.all_branches_target:
            use_target = torch.ones_like(use_target)
        x0_hat = torch.where(use_target.reshape(-1, 1, 1, 1), target, clean)
        abar = self.alphas_cumprod.to(device=latents.device, dtype=latents.dtype)[timesteps].reshape(-1, 1, 1, 1)
        return (latents - abar.sqrt() * x0_hat) / (1.0 - abar).sqrt()
