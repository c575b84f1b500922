"""Latent encoders of the prior: renders in [−1, 1] → the space the denoiser works in.

``VaeLatentEncoder`` is SD-1.5's VAE encoder (what Arc2Face denoises); ``RgbLatentEncoder`` keeps
RGB (area-resized), for the oracle prior of the offline demo and tests, which needs no weights.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor


class LatentEncoder(Protocol):
    """Maps images (B, 3, H, W) in [−1, 1] to latents (B, C, h, w), differentiably."""

    def encode(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        ...


def vae_moments(vae: Any, images: Tensor) -> Tensor:
    """encoder → quant_conv of an ``AutoencoderKL`` (the posterior's mean and log-variance)."""
    moments = vae.encoder(images)
    quant_conv = getattr(vae, "quant_conv", None)  # absent when the config sets use_quant_conv=False
    return quant_conv(moments) if quant_conv is not None else moments


class VaeLatentEncoder:
    """SD-1.5 VAE encoder: posterior SAMPLE × scaling factor (0.18215), as the official (§2.5)."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae

    def moments(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [−1, 1] → (B, 8, H/8, W/8) posterior mean and log-variance, differentiably."""
        return vae_moments(self.vae, images.to(self.vae.dtype))

    def encode(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """(B, 3, H, W) in [−1, 1] → (B, 4, H/8, W/8) latents in the VAE's dtype."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        posterior = DiagonalGaussianDistribution(self.moments(images))
        if generator is not None and generator.device != posterior.mean.device:
            eps = torch.randn(posterior.mean.shape, generator=generator, device=generator.device)
            sample = posterior.mean + posterior.std * eps.to(posterior.mean)
        else:
            sample = posterior.sample(generator=generator)
        return sample * self.vae.config.scaling_factor

    def decode(self, latents: Tensor) -> Tensor:
        """(B, 4, h, w) scaled latents → (B, 3, 8h, 8w) images in about [−1, 1] (not clamped): the
        pipeline's ``vae.decode(latents / scaling_factor)``; the inverse of ``encode`` up to the VAE's loss."""
        scaled = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        return self.vae.decode(scaled).sample


class RgbLatentEncoder:
    """RGB-space identity "latents" for CPU oracle runs: 2x−1 itself, optionally area-resized.

    Args:
        size: (h, w) of the latents; None keeps the render's resolution.
    """

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self.size = size

    def encode(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.size is None or tuple(images.shape[-2:]) == tuple(self.size):
            return images
        return torch.nn.functional.interpolate(images, size=self.size, mode="area")
