"""Multi-view LoRA fine-tuning of the Arc2Face UNet (docs/method.md §8; paper §3.2, E.1).

Libraries do the heavy parts: peft's ``LoraConfig`` + diffusers' ``add_adapter`` put the LoRA on
the UNet attention projections, diffusers' ``DDPMScheduler`` (from SD-1.5's scheduler config)
adds the noise, ``torch.optim.AdamW`` and ``torch.autocast``/``GradScaler`` train it, diffusers'
``save_lora_weights`` writes ``pytorch_lora_weights.safetensors``, ``DDIMScheduler`` samples the
validation images, tqdm shows progress.

Written by hand (no library does it for this model): the training step (Arc2Face ID-prompt
conditioning of every view, optionally α-blended with the SD-CLIP "front/side/back view" text by
azimuth exactly as the guidance blends it), the cached VAE latent distributions (the VAE is
frozen, so each image is encoded once and a latent is SAMPLED from its cached mean/std every
step), checkpoints that hold LoRA + optimizer + scaler + step + generator state so that a resumed
run continues bit-for-bit on CPU, and the JSON-lines log.

Several processes (one per GPU, launched by torchrun or ``--gpus N``): ``finetune.distributed``
joins the process group from the launcher's environment and wraps the UNet in PyTorch's
``DistributedDataParallel``; ``batch_size`` is then per process. One process is the path above,
unchanged.

Saved LoRA: keys as diffusers' ``save_lora_weights`` writes them (``unet.…to_q.lora.down.weight``),
with the peft scale α/r folded into the up factor, so a loader that assumes α = r (diffusers
without adapter metadata, ``prior.loading.load_lora``) reproduces the trained UNet at scale 1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from .._device import pick_device
from .._io import JsonlLogger, atomic_path, atomic_write_text, read_jsonl
from ..errors import InputError
from ..prior.configs import PriorConfig
from ..weights.layout import WeightsPaths
from .dataset import DatasetLimits, IdentityRecord, check_dataset, load_image_tensor
from .distributed import (RankInfo, barrier, mean_over_ranks, process_group, rank_device, rank_from_env, step_seed,
                          wrap_data_parallel)
from ..identity.embed import embed_photos
from ..prior.arc2face import encode_id_prompt, encode_text
from ..prior.loading import load_prior_models
from ..prior.views import blend_view_embeddings, perp_neg_weights

logger = logging.getLogger(__name__)

MixedPrecision = Literal["auto", "no", "fp16", "bf16"]
LORA_FILE = "pytorch_lora_weights.safetensors"
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "finetune_config.json"
VALIDATION_DIR = "validation"


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting of the multi-view LoRA training (docs/method.md §8 unless marked "ours").

    Attributes:
        rank: LoRA rank r (docs/method.md §8: 16).
        alpha: LoRA α; the LoRA branch is scaled by α/r (ours: α = r, i.e. scale 1).
        target_modules: UNet attention projections carrying the LoRA (docs/method.md §8: to_q/k/v/out).
        learning_rate: AdamW learning rate (docs/method.md §8: 1e-4).
        adam_betas, adam_eps, weight_decay: AdamW settings (torch/diffusers script defaults).
        max_grad_norm: gradient clipping of the LoRA parameters (ours; diffusers script default 1).
        steps: optimisation steps in total (a resumed run continues to this count).
        batch_size: views per step of ONE process (docs/method.md §8 benchmark: 4); with N processes
            (``--gpus N`` / torchrun) a step sees batch_size × N views.
        resolution: training image side, pixels (docs/method.md §8: 512).
        mixed_precision: "auto" = bf16 on CUDA if supported else fp16, "no" on CPU (docs/method.md §8).
        gradient_checkpointing: recompute UNet activations in backward to save memory (ours).
        view_text: α-blend the ID embedding with the SD-CLIP view prompt by azimuth (ours; the
            guidance's blend, docs/method.md §2). False = every view conditioned on e_id alone (paper).
        view_alpha, view_prompts, id_prompt: blend α and prompts (docs/method.md §2; from ``PriorConfig``).
        holdout_views: views per identity kept out of training for validation images (ours).
        validate_every: steps between validation images; 0 = never (ours).
        validation_inference_steps: DDIM steps of a validation image (ours; cheap).
        checkpoint_every: steps between checkpoints (0 = only the last step, which is always saved).
        keep_checkpoints: how many checkpoints to keep (oldest deleted).
        seed: seeds the LoRA initialisation and the training generator.
        device: "auto" = CUDA if available else CPU.
    """

    rank: int = 16
    alpha: float = 16.0
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    learning_rate: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    steps: int = 2000
    batch_size: int = 4
    resolution: int = 512
    mixed_precision: MixedPrecision = "auto"
    gradient_checkpointing: bool = False
    view_text: bool = False
    view_alpha: float = PriorConfig.view_alpha
    view_prompts: tuple[str, str, str] = PriorConfig.view_prompts
    id_prompt: str = PriorConfig.id_prompt
    holdout_views: int = 1
    validate_every: int = 500
    validation_inference_steps: int = 20
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        nonfinite = [f.name for f in dataclasses.fields(self)
                     if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))]
        if nonfinite:
            raise InputError(f"FinetuneConfig: {', '.join(nonfinite)} must be finite numbers")
        if self.rank < 1 or self.steps < 1 or self.batch_size < 1 or self.resolution % 8:
            raise InputError("FinetuneConfig: rank, steps and batch_size must be ≥ 1 and resolution a multiple of 8")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise InputError(f"FinetuneConfig.mixed_precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0.0 <= self.view_alpha <= 1.0:
            raise InputError(f"FinetuneConfig.view_alpha must be in [0, 1], got {self.view_alpha}")


@dataclass
class TrainResult:
    """What ``train_lora`` produced.

    Attributes:
        lora_path: the LoRA file (written by rank 0).
        step: the last step.
        losses: per-step losses of this call (with several processes: the mean over ranks).
        rank, world_size: this process's rank and the number of processes.
        lora_state: this process's final LoRA parameters (peft names, CPU, α/r not folded).
    """

    lora_path: Path
    step: int
    losses: list[float]
    rank: int = 0
    world_size: int = 1
    lora_state: dict[str, Tensor] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Precision and device
# --------------------------------------------------------------------------------------------
def autocast_dtype(device: torch.device, mixed_precision: MixedPrecision) -> torch.dtype | None:
    """Autocast dtype (None = full fp32). Mixed precision only on CUDA (docs/method.md §8)."""
    if device.type != "cuda" or mixed_precision == "no":
        return None
    if mixed_precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]


# --------------------------------------------------------------------------------------------
# Data: identities → cached conditioning and latent distributions
# --------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """Everything a step samples from, on the training device.

    Attributes:
        latent_mean, latent_std: (N, 4, R/8, R/8) VAE posterior of each training view, unscaled.
        contexts: (N, 77, 768) conditioning of each training view.
        holdout_contexts: (M, 77, 768) conditioning of each held-out view.
        holdout_images: (M, R, R, 3) held-out views in [0, 1] (CPU).
        holdout_names: "identity/file" of each held-out view.
    """

    latent_mean: Tensor
    latent_std: Tensor
    contexts: Tensor
    holdout_contexts: Tensor
    holdout_images: Tensor
    holdout_names: list[str]


def identity_vector(record: IdentityRecord, weights: WeightsPaths) -> Tensor:
    """(512,) unit ArcFace vector: ``id.npy`` if present, else embedded from ``frontal.png``."""
    if record.id_vector is not None:
        return torch.from_numpy(np.load(record.id_vector, allow_pickle=False).reshape(-1).astype(np.float32))
    return torch.from_numpy(embed_photos([record.frontal], weights).vector.astype(np.float32))  # type: ignore[list-item]


def view_blend_weights(azimuth_deg: float) -> dict[str, float]:
    """Mix of the front/side/back view embeddings at this azimuth, as the guidance uses it (docs/method.md §2)."""
    mix: dict[str, float] = {"front": 0.0, "side": 0.0, "back": 0.0}
    for name, weight in perp_neg_weights(azimuth_deg).positive:
        mix[name] += float(weight)
    return mix


def view_context(e_id: Tensor, e_text: dict[str, Tensor], azimuth_deg: float, config: FinetuneConfig) -> Tensor:
    """(77, 768) conditioning of one view: e_id, or Σ_d mix_d·(α·e_id + (1−α)·CLIP("<d> view"))."""
    if not config.view_text:
        return e_id

    mix = view_blend_weights(azimuth_deg)
    return sum(w * blend_view_embeddings(e_id, e_text[d][None], config.view_alpha)[0]  # type: ignore[return-value]
               for d, w in mix.items() if w)


def split_holdout(n_views: int, holdout: int) -> list[int]:
    """Indices of ``holdout`` views spread evenly over ``n_views`` (never all of them)."""
    holdout = min(holdout, n_views - 1)
    if holdout <= 0:
        return []
    return sorted({int(round((k + 0.5) * n_views / holdout)) % n_views for k in range(holdout)})


@torch.no_grad()
def prepare_data(records: list[IdentityRecord], models: Any, weights: WeightsPaths, config: FinetuneConfig) -> TrainingData:
    """Encode every identity's conditioning and every view's VAE posterior once."""
    device = models.device
    e_text_all = encode_text(models.text_encoder, models.tokenizer, list(config.view_prompts))  # (3, 77, 768)
    e_text = dict(zip(("front", "side", "back"), e_text_all))
    means, stds, contexts, h_ctx, h_img, h_names = [], [], [], [], [], []
    for record in records:
        vec = identity_vector(record, weights).to(device)
        e_id = encode_id_prompt(models.id_encoder, models.tokenizer, vec[None], config.id_prompt)[0]  # (77, 768)
        held = set(split_holdout(len(record.views), config.holdout_views))
        for k, view in enumerate(record.views):
            image = torch.from_numpy(load_image_tensor(view.path, config.resolution))  # (R, R, 3)
            ctx = view_context(e_id, e_text, view.azimuth_deg, config)
            if k in held:
                h_ctx.append(ctx)
                h_img.append(image)
                h_names.append(f"{record.root.name}/{view.path.name}")
                continue
            x = (image.permute(2, 0, 1)[None] * 2 - 1).to(device, models.vae.dtype)  # (1, 3, R, R)
            posterior = models.vae.encode(x).latent_dist
            means.append(posterior.mean[0].float())
            stds.append(posterior.std[0].float())
            contexts.append(ctx)
    hidden = e_text_all.shape[-1]
    return TrainingData(
        latent_mean=torch.stack(means), latent_std=torch.stack(stds), contexts=torch.stack(contexts).float(),
        holdout_contexts=torch.stack(h_ctx).float() if h_ctx else torch.zeros(0, 77, hidden, device=device),
        holdout_images=torch.stack(h_img) if h_img else torch.zeros(0, config.resolution, config.resolution, 3),
        holdout_names=h_names,
    )


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------
def add_lora(unet: Any, config: FinetuneConfig) -> list[Tensor]:
    """Attach a trainable LoRA (peft, gaussian init of A, zero B) and return its fp32 parameters."""
    from peft import LoraConfig

    torch.manual_seed(config.seed)
    unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                                target_modules=list(config.target_modules)))
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.data = p.data.float()
        p.requires_grad_(True)
    return params


def lora_state(unet: Any) -> dict[str, Tensor]:
    """The LoRA parameters by peft name (adapter name removed), CPU copies."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(unet).items()}


def diffusers_lora_state(unet: Any, config: FinetuneConfig) -> dict[str, Tensor]:
    """LoRA state in diffusers' key style with α/r folded into the up (B) factor (fp32)."""
    from diffusers.utils import convert_state_dict_to_diffusers

    scale = config.alpha / config.rank
    peft_state = {k: (v.float() * scale if ".lora_B." in k else v.float()) for k, v in lora_state(unet).items()}
    return convert_state_dict_to_diffusers(peft_state)


def save_lora(unet: Any, out_dir: Path, config: FinetuneConfig) -> Path:
    """Write ``out_dir/pytorch_lora_weights.safetensors`` with diffusers' ``save_lora_weights``, atomically."""
    from diffusers import StableDiffusionPipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".lora-", dir=out_dir))
    try:
        StableDiffusionPipeline.save_lora_weights(staging, unet_lora_layers=diffusers_lora_state(unet, config),
                                                  safe_serialization=True)
        os.replace(staging / LORA_FILE, out_dir / LORA_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / LORA_FILE


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def save_checkpoint(out_dir: Path, step: int, unet: Any, optimizer: Any, scaler: Any, generator: torch.Generator,
                    config: FinetuneConfig, world_size: int = 1) -> Path:
    """``checkpoints/step-NNNNNN.pt``: LoRA, optimizer, scaler, step and generator state (atomic).

    Nothing in it depends on the number of processes (``world_size`` is recorded for information;
    the generator is rank 0's), so it resumes on any number of them.
    """
    path = out_dir / CHECKPOINT_DIR / f"step-{step:06d}.pt"
    state = {"step": step, "lora": lora_state(unet), "optimizer": optimizer.state_dict(),
             "scaler": scaler.state_dict(), "generator": generator.get_state().cpu(),
             "config": dataclasses.asdict(config), "world_size": world_size}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    old = sorted((out_dir / CHECKPOINT_DIR).glob("step-*.pt"))[: -config.keep_checkpoints or None]
    for stale in old:
        stale.unlink()
    return path


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted((out_dir / CHECKPOINT_DIR).glob("step-*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: Path, unet: Any, optimizer: Any, scaler: Any, generator: torch.Generator) -> int:
    """Restore the training state from ``path``; return its step."""
    from peft import set_peft_model_state_dict

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); delete it to resume from an older one") from err
    device = next(unet.parameters()).device
    try:
        set_peft_model_state_dict(unet, {k: v.to(device) for k, v in state["lora"].items()})
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise InputError(f"checkpoint {path} does not fit this config ({type(err).__name__}: {err}); "
                         "resume with the rank/alpha/target_modules it was trained with") from err
    scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"].cpu())
    return int(state["step"])


# --------------------------------------------------------------------------------------------
# One step, validation
# --------------------------------------------------------------------------------------------
def training_step(unet: Any, data: TrainingData, scheduler: Any, generator: torch.Generator, config: FinetuneConfig,
                  amp_dtype: torch.dtype | None, scaling_factor: float) -> Tensor:
    """ε-prediction MSE on one batch (paper eq. 3; docs/method.md §8): sample views, t ~ U{0..T−1}, x_t = √ᾱ x0 + √(1−ᾱ) ε.

    The generator lives on the CPU, so draws are identical on every device.
    """
    device = data.latent_mean.device
    n = data.latent_mean.shape[0]
    idx = torch.randint(0, n, (config.batch_size,), generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
    shape = (config.batch_size, *data.latent_mean.shape[1:])
    eps_posterior = torch.randn(shape, generator=generator).to(device)
    noise = torch.randn(shape, generator=generator).to(device)
    idx_d, t_d = idx.to(device), t.to(device)
    x0 = (data.latent_mean[idx_d] + data.latent_std[idx_d] * eps_posterior) * scaling_factor  # (B, 4, h, w)
    x_t = scheduler.add_noise(x0, noise, t_d)
    weight_dtype = next(p for p in unet.parameters() if not p.requires_grad).dtype
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        pred = unet(x_t.to(weight_dtype), t_d, encoder_hidden_states=data.contexts[idx_d].to(weight_dtype)).sample
    return torch.nn.functional.mse_loss(pred.float(), noise, reduction="mean")


@torch.no_grad()
def validation_images(unet: Any, vae: Any, scheduler_folder: Path, data: TrainingData, config: FinetuneConfig,
                      amp_dtype: torch.dtype | None) -> Tensor:
    """(M, R, 2R, 3) in [0, 1]: [DDIM sample | ground truth] for each held-out view (fixed noise)."""
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_pretrained(scheduler_folder)
    ddim.set_timesteps(config.validation_inference_steps)
    device = data.latent_mean.device
    m = data.holdout_contexts.shape[0]
    x = torch.randn((m, *data.latent_mean.shape[1:]), generator=torch.Generator().manual_seed(config.seed)).to(device)
    dtype = vae.dtype
    for t in ddim.timesteps:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            eps = unet(x.to(dtype), t.to(device), encoder_hidden_states=data.holdout_contexts.to(dtype)).sample
        x = ddim.step(eps.float(), t, x).prev_sample
    images = vae.decode((x / vae.config.scaling_factor).to(dtype)).sample.float()
    images = ((images + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu()  # (M, R, R, 3)
    return torch.cat([images, data.holdout_images], dim=2)


def write_validation(out_dir: Path, step: int, sheet: Tensor) -> Path:
    """Stack the (M, R, 2R, 3) pairs vertically into ``validation/step-NNNNNN.png``."""
    from PIL import Image

    pixels = (sheet.reshape(-1, *sheet.shape[2:]).numpy() * 255).round().astype(np.uint8)
    path = out_dir / VALIDATION_DIR / f"step-{step:06d}.png"
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def check_run_folder(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a new run); refuses a used folder without ``resume``."""
    checkpoint = latest_checkpoint(out_dir) if out_dir.is_dir() else None
    if resume and checkpoint is None:
        raise InputError(f"--resume: {out_dir} has no checkpoint ({CHECKPOINT_DIR}/step-*.pt) to continue from")
    if not resume and (checkpoint is not None or (out_dir / LORA_FILE).exists()):
        raise InputError(f"{out_dir} already holds a fine-tuning run; use --resume to continue it or pick another -o")
    return checkpoint


def _log_lines(path: Path, records: list[dict]) -> None:
    with JsonlLogger(path) as log:
        for rec in records:
            log.log(rec)


def train_lora(
    data_root: str | os.PathLike,
    weights: WeightsPaths,
    out_dir: str | os.PathLike,
    config: FinetuneConfig = FinetuneConfig(),
    resume: bool = False,
    limits: DatasetLimits = DatasetLimits(),
    progress: bool = True,
) -> TrainResult:
    """Train the multi-view LoRA on ``data_root`` and write ``out_dir/pytorch_lora_weights.safetensors``.

    Args:
        data_root: dataset in the format of ``arc2avatar.finetune.dataset`` (checked first).
        weights: the prior weights (``resolve_weights(cfg, {"prior"})``; add "identity" and
            "detector" when an identity has ``frontal.png`` but no ``id.npy``).
        out_dir: receives the LoRA, ``finetune_config.json``, ``train_log.jsonl`` (one JSON object
            per step: step, loss, lr, seconds, world_size; appended at each checkpoint and at the
            end), ``checkpoints/`` and ``validation/``.
        config: the settings; on resume the CURRENT config is used (e.g. a larger ``steps``).
        resume: continue from the newest checkpoint in ``out_dir`` (written by any number of processes).
    Returns:
        ``TrainResult`` (LoRA path, final step, losses of the steps run in this call, final LoRA).

    Started by torchrun (or ``finetune.launcher.launch_training``) in N processes, each one
    trains data-parallel on its shard of the batch and rank 0 alone writes (see ``finetune.distributed``).
    Raises:
        InputError: broken dataset (every problem listed), out_dir already used without resume.
        MissingWeightsError: prior (or identity) weights missing.
    """
    out_dir = Path(out_dir)
    report = check_dataset(data_root, limits)
    report.raise_if_invalid()
    checkpoint = check_run_folder(out_dir, resume)
    ranks = rank_from_env()
    device = rank_device(ranks, config.device) if ranks.distributed else pick_device(config.device)
    with process_group(ranks, device):
        return _train(report.identities, weights, out_dir, config, checkpoint, ranks, device, progress)


def _train(identities: list[IdentityRecord], weights: WeightsPaths, out_dir: Path, config: FinetuneConfig,
           checkpoint: Path | None, ranks: RankInfo, device: torch.device, progress: bool) -> TrainResult:
    """The loop of ``train_lora`` on this process (rank 0 writes every file)."""
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm


    amp_dtype = autocast_dtype(device, config.mixed_precision)
    models = load_prior_models(weights, device, amp_dtype or torch.float32)
    scheduler = DDPMScheduler.from_pretrained(Path(weights.sd_scheduler))  # type: ignore[arg-type]
    if scheduler.config.prediction_type != "epsilon":
        raise InputError(f"{weights.sd_scheduler}: prediction_type is {scheduler.config.prediction_type!r}; "
                         "the multi-view LoRA is trained with ε-prediction (docs/method.md §8)")
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(device)
    data = prepare_data(identities, models, weights, config)
    unet = models.unet
    params = add_lora(unet, config)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(config.seed)
    step = load_checkpoint(checkpoint, unet, optimizer, scaler, generator) if checkpoint else 0
    barrier(ranks)  # every rank has read the checkpoint before rank 0 may prune old ones
    model = wrap_data_parallel(unet, ranks, device)  # DDP averages the LoRA gradients over ranks
    if ranks.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    losses: list[float] = []
    bar = tqdm(total=config.steps, initial=step, desc="finetune", disable=not (progress and ranks.is_main))
    scaling = float(models.vae.config.scaling_factor)
    pending: list[dict] = []
    start = time.perf_counter()
    while step < config.steps:
        if ranks.distributed:
            generator.manual_seed(step_seed(config.seed, ranks.rank, step + 1))
        optimizer.zero_grad(set_to_none=True)
        loss = training_step(model, data, scheduler, generator, config, amp_dtype, scaling)
        reported = mean_over_ranks(loss.detach(), ranks)  # the same value on every rank
        if not torch.isfinite(reported):
            raise FloatingPointError(f"non-finite loss at step {step + 1}; lower the learning rate or use bf16")
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        losses.append(reported.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if not ranks.is_main:
            continue
        pending.append({"step": step, "loss": losses[-1], "lr": config.learning_rate,
                        "seconds": round(time.perf_counter() - start, 4), "world_size": ranks.world_size})
        if config.validate_every and step % config.validate_every == 0 and len(data.holdout_names):
            unet.eval()
            write_validation(out_dir, step, validation_images(unet, models.vae, Path(weights.sd_scheduler),  # type: ignore[arg-type]
                                                              data, config, amp_dtype))
            unet.train()
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.steps:
            _log_lines(out_dir / LOG_FILE, pending)
            pending = []
            save_checkpoint(out_dir, step, unet, optimizer, scaler, generator, config, ranks.world_size)
    bar.close()
    unet.eval()
    lora_path = out_dir / LORA_FILE
    if ranks.is_main:
        _log_lines(out_dir / LOG_FILE, pending)
        save_lora(unet, out_dir, config)
        logger.info("wrote %s after %d steps", lora_path, step)
    barrier(ranks)  # the LoRA file exists when any rank returns
    return TrainResult(lora_path, step, losses, ranks.rank, ranks.world_size, lora_state(unet))


def iter_log(out_dir: str | os.PathLike) -> Iterator[dict]:
    """The records of ``train_log.jsonl``, in order."""
    path = Path(out_dir) / LOG_FILE
    if path.exists():
        yield from read_jsonl(path)


def loss_trend(losses: list[float], window: int = 5) -> tuple[float, float]:
    """(mean of the first ``window`` losses, mean of the last ``window``)."""
    if not losses:
        return math.nan, math.nan
    return float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
