"""The prior's interface to the pipeline: renders + cameras → a loss whose gradient is the guidance.

Written by hand (docs/architecture.md, "The seams between packages"):
``GuidancePrior`` is the protocol; ``IsmGuidance`` runs ISM/SDS with any ``Denoiser`` and
``LatentEncoder`` (UNet + VAE for Arc2Face, the oracle + RGB latents for CPU proofs);
``Arc2FaceGuidance`` precomputes the Arc2Face prompt embeddings once and plugs the UNet in.

Per call (docs/method.md §2; docs/official-code.md §2.5): one coin flip (p = 0.5) flips the whole batch
horizontally; latents = encode(2·render − 1), clamped to [−1, 1] first (ours: the official did
not clamp, and the rasteriser can exceed 1); the view prompts come from ``cameras.azimuth_deg``;
``loss = Σ g.detach()·latents`` so that ∂loss/∂latents = g exactly (the official's
SpecifyGradient), and its value is meaningless (the official logged a constant 1).

Host–device syncs (issue 9): the coin flip and t decide Python control flow, so they are drawn
on ``host_generator`` (a CPU generator) when the caller gives one; only the noise is drawn on the
device generator. ᾱ is copied to the host once. The gradient norm stays a device tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import Tensor

from .._timing import NULL_TIMER, Timer
from ..weights.layout import WeightsPaths
from .arc2face import encode_id_prompt, encode_text
from .configs import AccelConfig, PriorConfig
from .ism import Denoiser, IsmResult, ism_step, sample_timesteps
from .latents import LatentEncoder, VaeLatentEncoder
from .loading import PriorModels, load_lora, load_prior_models
from .views import ViewEmbeddings, blend_view_embeddings, view_conditioning
from .accel import AcceleratedUNetDenoiser, AcceleratedVaeLatentEncoder, prepare_models

if TYPE_CHECKING:
    from ..cameras.model import Cameras


@dataclass
class GuidanceOutput:
    """Result of one guidance call.

    Attributes:
        loss: scalar whose gradient on the renders IS the guidance (its value means nothing).
        grad_norm: ‖g‖ on the latents: a float, or a 0-dim tensor (``float()`` reads it, and
            waits for the GPU; the optimisation loop does so only when it logs).
        timestep: t of this step.
        extra: diagnostics (interval timestep s, UNet calls, flipped, mode).
    """

    loss: Tensor
    grad_norm: float | Tensor
    timestep: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuidanceContext:
    """What the optimiser hands a prior with each step's renders (one object, every prior).

    Attributes:
        generator: draws the noise on the renders' device (and, without ``host_generator``, the
            flip and t too).
        host_generator: a CPU generator for the draws the host must know (flip, t) without a
            device sync; None = use ``generator``.
        backgrounds: (B, 3) colours the renders were composited on (the oracle renders its
            target on the same ones); None = unknown.
        phase: "face" when only the face splats were rendered (paper §3.4's face phase), else "head".
        timer: a ``StageTimer`` for per-stage times (the benchmark harness); a no-op by default.
    """

    generator: torch.Generator | None = None
    host_generator: torch.Generator | None = None
    backgrounds: Tensor | None = None
    phase: Literal["head", "face"] = "head"
    timer: Timer = NULL_TIMER


class GuidancePrior(Protocol):
    """Anything that turns renders (B, 3, H, W) in [0, 1] and their cameras into a guidance loss
    (Arc2Face ISM, plain SDS, the oracle of the offline demo)."""

    def __call__(self, renders: Tensor, cameras: Cameras, context: GuidanceContext = GuidanceContext()) -> GuidanceOutput:
        ...


class UNetDenoiser:
    """The Arc2Face UNet as a ``Denoiser`` (any loaded LoRA acts on every call at its set scale)."""

    def __init__(self, unet: Any) -> None:
        self.unet = unet

    def prepare(self, clean_latents: Tensor, cameras: Cameras | None, flipped: bool) -> None:
        """Nothing to prepare for a real UNet."""

    def predict_eps(self, latents: Tensor, timesteps: Tensor, context: Tensor, branch: Tensor) -> Tensor:
        dtype = self.unet.dtype
        return self.unet(latents.to(dtype), timesteps, encoder_hidden_states=context.to(dtype)).sample


class IsmGuidance:
    """ISM / SDS guidance with a pluggable denoiser and latent encoder (a ``GuidancePrior``).

    Args:
        denoiser: ε model (``UNetDenoiser``, ``OracleDenoiser``...).
        latent_encoder: ``VaeLatentEncoder`` or ``RgbLatentEncoder``.
        embeddings: prompt embeddings (each (77, D)).
        alphas_cumprod: (T,) ᾱ indexed by timestep value.
        config: ``PriorConfig``.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        latent_encoder: LatentEncoder,
        embeddings: ViewEmbeddings,
        alphas_cumprod: Tensor,
        config: PriorConfig = PriorConfig(),
    ) -> None:
        self.denoiser = denoiser
        self.latent_encoder = latent_encoder
        self.embeddings = embeddings
        self.alphas_cumprod = alphas_cumprod
        self.config = config
        self._alphas_cumprod_host = alphas_cumprod.detach().double().cpu()  # read by the host every step

    def __call__(self, renders: Tensor, cameras: Cameras, context: GuidanceContext = GuidanceContext()) -> GuidanceOutput:
        """renders (B, 3, H, W) in [0, 1] with their ``Cameras`` → ``GuidanceOutput`` (the
        context's generators and timer are used; backgrounds and phase do not matter here)."""
        generator, host_generator, timer = context.generator, context.host_generator, context.timer
        chooser = host_generator if host_generator is not None else generator
        device = chooser.device if chooser is not None else "cpu"
        flipped = bool(torch.rand((), generator=chooser, device=device).item() < self.config.flip_prob)
        images = renders.flip(-1) if flipped else renders
        images = 2.0 * images - 1.0
        if self.config.clamp_renders:
            images = images.clamp(-1.0, 1.0)
        with timer.stage("vae_encode"):
            latents = self.latent_encoder.encode(images, generator)  # (B, C, h, w), differentiable
        timesteps = sample_timesteps(self.config, chooser)  # after the encoder's draw, as before
        conditioning = view_conditioning(cameras.azimuth_deg, self.embeddings, self.config)
        result: IsmResult = ism_step(
            self.denoiser, latents, conditioning, self._alphas_cumprod_host, self.config, generator, cameras, flipped,
            timesteps=timesteps, timer=timer,
        )
        loss = (result.grad.detach().float() * latents.float()).sum()
        return GuidanceOutput(
            loss=loss,
            grad_norm=result.grad_norm,
            timestep=result.timestep,
            extra={
                "interval_timestep": result.interval_timestep,
                "unet_calls": result.unet_calls,
                "flipped": flipped,
                "mode": self.config.mode,
            },
        )


def arc2face_embeddings(models: PriorModels, id_embedding: Tensor, config: PriorConfig = PriorConfig()) -> ViewEmbeddings:
    """All prompt embeddings of docs/method.md §2 for one identity: (512,) or (1, 512) unit ArcFace vector."""
    id_vec = id_embedding.reshape(1, -1).float().to(models.device)
    e_id = encode_id_prompt(models.id_encoder, models.tokenizer, id_vec, config.id_prompt, config.id_placeholder)[0]
    prompts = [*config.view_prompts, config.negative_prompt, config.inversion_prompt]
    sd = encode_text(models.text_encoder, models.tokenizer, prompts)  # (5, 77, 768)
    front, side, back = blend_view_embeddings(e_id, sd[:3], config.view_alpha).unbind(0)
    return ViewEmbeddings(front=front, side=side, back=back, uncond=sd[3], inversion=sd[4])


class Arc2FaceGuidance(IsmGuidance):
    """Arc2Face ISM/SDS guidance for one identity (docs/method.md §2): UNet (+LoRA) denoiser, VAE latents.

    Args:
        models: loaded ``PriorModels`` (LoRA, if any, already attached to ``models.unet``).
        config: ``PriorConfig``.
        id_embedding: (512,) unit ArcFace embedding of the subject.
        latent_encoder: defaults to the VAE; ``RgbLatentEncoder`` for cheap CPU runs.
        accel: the CUDA fast path (``arc2avatar.prior.accel``; CUDA graphs, channels_last, fused
            LoRA); applied to ``models`` in place on a CUDA device, ignored on a CPU.
    """

    def __init__(
        self,
        models: PriorModels,
        config: PriorConfig,
        id_embedding: Tensor,
        latent_encoder: LatentEncoder | None = None,
        accel: Any = None,
    ) -> None:
        accel = AccelConfig() if accel is None else accel
        embeddings = arc2face_embeddings(models, id_embedding, config)  # before the LoRA is fused
        self.accel_report = prepare_models(models, accel)
        fast = accel.active(models.device) and (accel.cuda_graphs or accel.compile != "none")
        denoiser: Denoiser = AcceleratedUNetDenoiser(models.unet, accel) if fast else UNetDenoiser(models.unet)
        if latent_encoder is None:
            latent_encoder = AcceleratedVaeLatentEncoder(models.vae, accel) if fast else VaeLatentEncoder(models.vae)
        super().__init__(
            denoiser=denoiser,
            latent_encoder=latent_encoder,
            embeddings=embeddings,
            alphas_cumprod=models.alphas_cumprod,
            config=config,
        )
        self.models = models

    @classmethod
    def from_pretrained(
        cls,
        paths: WeightsPaths,
        id_embedding: Tensor,
        device: torch.device | str = "cpu",
        dtype: Any = None,
        lora: str | os.PathLike | None = None,
        config: PriorConfig = PriorConfig(),
        accel: Any = None,
    ) -> "Arc2FaceGuidance":
        """Load the models from ``paths`` (LoRA from ``lora`` or else ``paths.lora``) and build the guidance.

        ``dtype``: None = ``config.dtype`` ("auto": fp16 on CUDA, fp32 on CPU); ``accel``: an
        ``AccelConfig`` (default: the fast path on CUDA).
        """
        models = load_prior_models(paths, device, dtype if dtype is not None else config.dtype)
        lora_path = lora if lora is not None else paths.lora
        if lora_path is not None:
            load_lora(models.unet, lora_path, scale=config.lora_scale)
        return cls(models, config, id_embedding, accel=accel)
