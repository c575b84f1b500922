"""Loading the prior's networks from resolved ``WeightsPaths`` (docs/method.md §2; docs/official-code.md §2.1).

Uses diffusers / transformers ``from_pretrained`` on the real folder layouts and diffusers' PEFT
integration for the LoRA. Written by hand: only the checks around them (every missing piece
named in one ``MissingWeightsError``; corrupt files and unmatched LoRA keys as ``InputError``),
safe ``.bin`` loading (``weights_only=True``), and holding exactly ONE UNet and ONE VAE
(the official release held four UNets, docs/official-code.md §2.1).
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError, MissingWeightsError
from ..weights.layout import WeightsPaths
from .configs import DtypeName

logger = logging.getLogger(__name__)

#: LoRA adapter name used for the multi-view LoRA inside the UNet.
LORA_ADAPTER_NAME = "multiview"

_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

#: (WeightsPaths attribute, what it is, files that must exist in it (any one of a tuple)).
_REQUIRED: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("arc2face_unet", "Arc2Face UNet (FoivosPar/Arc2Face arc2face/)",
     (("config.json",), ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))),
    ("arc2face_encoder", "Arc2Face text encoder (FoivosPar/Arc2Face encoder/)",
     (("config.json",), ("pytorch_model.bin", "model.safetensors"))),
    ("sd_vae", "SD-1.5 VAE (stable-diffusion-v1-5 vae/)",
     (("config.json",), ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))),
    ("sd_text_encoder", "SD-1.5 CLIP text encoder (stable-diffusion-v1-5 text_encoder/)",
     (("config.json",), ("model.safetensors", "pytorch_model.bin"))),
    ("sd_tokenizer", "SD-1.5 tokenizer (stable-diffusion-v1-5 tokenizer/)",
     (("vocab.json",), ("merges.txt",))),
    ("sd_scheduler", "SD-1.5 scheduler config (stable-diffusion-v1-5 scheduler/)",
     (("scheduler_config.json",),)),
)


@dataclass
class PriorModels:
    """The prior's networks, each loaded once, in eval mode with frozen weights.

    Attributes:
        unet: Arc2Face ``UNet2DConditionModel`` (SD-1.5 architecture), ``dtype`` on ``device``.
        vae: SD-1.5 ``AutoencoderKL``, ``dtype`` (latents scaled by ``vae.config.scaling_factor``).
        id_encoder: Arc2Face fine-tuned ``CLIPTextModel`` (encodes the ID prompt), float32.
        text_encoder: SD-1.5 ``CLIPTextModel`` (view / negative / empty prompts), float32.
        tokenizer: SD-1.5 ``CLIPTokenizer`` (77 positions), shared by both encoders.
        alphas_cumprod: (1000,) float32 ᾱ of the DDPM schedule, indexed by timestep VALUE.
        device, dtype: where and in which precision the UNet and VAE run.
    """

    unet: Any
    vae: Any
    id_encoder: Any
    text_encoder: Any
    tokenizer: Any
    alphas_cumprod: Tensor
    device: torch.device
    dtype: torch.dtype


def resolve_dtype(device: torch.device | str, dtype: DtypeName | torch.dtype | None = "auto") -> torch.dtype:
    """UNet/VAE precision (docs/method.md §2): "auto"/None = fp16 on CUDA, fp32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected auto, fp32, fp16 or bf16")
    return _DTYPES[dtype]


def missing_prior_pieces(paths: WeightsPaths) -> list[str]:
    """Human-readable list of the prior weights that are not set or not on disk (empty = complete)."""
    problems: list[str] = []
    for attr, what, file_groups in _REQUIRED:
        folder: Path | None = getattr(paths, attr)
        if folder is None:
            problems.append(f"{what}: not found (WeightsPaths.{attr} is unset)")
            continue
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"{what}: folder {folder} does not exist")
            continue
        for group in file_groups:
            if not any((folder / name).is_file() for name in group):
                problems.append(f"{what}: {folder} has no {' or '.join(group)}")
    return problems


def check_prior_paths(paths: WeightsPaths) -> None:
    """Raise one ``MissingWeightsError`` naming every missing prior piece, or return."""
    problems = missing_prior_pieces(paths)
    if problems:
        raise MissingWeightsError(
            "The Arc2Face prior cannot be loaded; missing weights:\n  - "
            + "\n  - ".join(problems)
            + "\nGet them from FoivosPar/Arc2Face (arc2face/, encoder/) and "
            "stable-diffusion-v1-5/stable-diffusion-v1-5 (vae/, text_encoder/, tokenizer/, scheduler/) "
            "into your weights folder (see `arc2avatar weights --help`)."
        )


def _load(what: str, folder: Path, loader: Any, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained(folder, **kwargs)``; unreadable files become ``InputError``."""
    try:
        return loader.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, TypeError, pickle.UnpicklingError) as err:
        raise InputError(
            f"Could not read the {what} in {folder}: {type(err).__name__}: {err}. "
            "The files are corrupt or not in the expected layout; download them again."
        ) from err


def load_alphas_cumprod(scheduler_folder: str | os.PathLike) -> Tensor:
    """(1000,) ᾱ of the DDPM schedule described by ``scheduler_config.json`` (docs/official-code.md §2.1)."""
    from diffusers import DDPMScheduler

    scheduler = _load("scheduler config", Path(scheduler_folder), DDPMScheduler)
    return scheduler.alphas_cumprod.to(torch.float32)


def load_prior_models(
    paths: WeightsPaths,
    device: torch.device | str = "cpu",
    dtype: DtypeName | torch.dtype | None = "auto",
) -> PriorModels:
    """Load the Arc2Face prior (docs/method.md §2): one UNet, one VAE, two CLIP text encoders, tokenizer, ᾱ.

    Raises:
        MissingWeightsError: naming every missing folder/file.
        InputError: a file exists but cannot be read.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    check_prior_paths(paths)
    device = torch.device(device)
    torch_dtype = resolve_dtype(device, dtype)
    unet = _load("Arc2Face UNet", Path(paths.arc2face_unet), UNet2DConditionModel, torch_dtype=torch_dtype)
    vae = _load("SD-1.5 VAE", Path(paths.sd_vae), AutoencoderKL, torch_dtype=torch_dtype)
    # pytorch_model.bin is a pickle: transformers must only unpickle tensors (weights_only=True).
    id_encoder = _load("Arc2Face text encoder", Path(paths.arc2face_encoder), CLIPTextModel, weights_only=True)
    text_encoder = _load("SD-1.5 text encoder", Path(paths.sd_text_encoder), CLIPTextModel, weights_only=True)
    tokenizer = _load("SD-1.5 tokenizer", Path(paths.sd_tokenizer), CLIPTokenizer)
    alphas_cumprod = load_alphas_cumprod(Path(paths.sd_scheduler))
    for model in (unet, vae, id_encoder, text_encoder):
        model.requires_grad_(False)
        model.eval()
        model.to(device)
    models = PriorModels(
        unet=unet,
        vae=vae,
        id_encoder=id_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas_cumprod.to(device),
        device=device,
        dtype=torch_dtype,
    )
    return models


def _read_lora_file(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` LoRA file; unreadable → ``InputError``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InputError(f"LoRA file {path} does not exist: give the path of pytorch_lora_weights.safetensors.")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"LoRA file {path} is not a readable safetensors file ({' '.join(str(err).split())}); "
                         "download it again.") from err


def _unet_lora_state(state: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Keys for the UNet with the ``unet.`` prefix removed; text-encoder keys dropped with a warning."""
    unet_state = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
    others = [k for k in state if not k.startswith("unet.")]
    if others and unet_state:
        logger.warning(
            "LoRA file %s: %d keys not for the UNet (e.g. %s) are ignored; only the UNet LoRA is applied.",
            path, len(others), others[0],
        )
    if not unet_state:
        example = next(iter(state), "<empty file>")
        raise InputError(
            f"LoRA file {path} has no UNet keys (expected the diffusers format, keys starting with "
            f"'unet.', e.g. 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight'; "
            f"found e.g. {example!r})."
        )
    return unet_state


def _lora_parameter_count(unet: Any, adapter_name: str) -> int:
    return sum(1 for n, _ in unet.named_parameters() if (".lora_A." in n or ".lora_B." in n) and adapter_name in n)


def load_lora(
    unet: Any,
    path: str | os.PathLike,
    scale: float = 0.45,
    adapter_name: str = LORA_ADAPTER_NAME,
) -> None:
    """Attach the multi-view LoRA in the diffusers format to ``unet`` at ``scale`` (docs/method.md §2, §8).

    Accepts ``pytorch_lora_weights.safetensors`` with ``unet.``-prefixed keys in the PEFT style
    (``…to_q.lora_A.weight``) and the older diffusers styles (``…to_q.lora.down.weight``,
    ``…processor.to_q_lora.down.weight``), which diffusers converts. The scale multiplies the
    LoRA branch on every later UNet call (``set_adapters``), as ``cross_attention_kwargs
    ={"scale": 0.45}`` did in the official release (docs/official-code.md §2.1).

    Raises:
        InputError: missing/corrupt file, no UNet keys, or keys that match no UNet layer.
    """
    path = Path(path)
    state = _unet_lora_state(_read_lora_file(path), path)
    expected = sum(1 for k in state if k.endswith(".weight") and ("lora" in k))
    try:
        unet.load_lora_adapter(state, prefix=None, adapter_name=adapter_name)
    except (ValueError, RuntimeError, KeyError) as err:
        raise InputError(
            f"LoRA file {path} does not fit the Arc2Face UNet ({type(err).__name__}: {' '.join(str(err).split())[:300]}). "
            "Is it a LoRA for an SD-1.5 UNet in the diffusers format?"
        ) from err
    loaded = _lora_parameter_count(unet, adapter_name)
    if loaded < expected:
        if hasattr(unet, "delete_adapters") and adapter_name in getattr(unet, "peft_config", {}):
            unet.delete_adapters(adapter_name)
        raise InputError(
            f"LoRA file {path}: only {loaded} of its {expected} LoRA tensors match layers of the Arc2Face UNet. "
            "Is it a LoRA for an SD-1.5 UNet in the diffusers format?"
        )
    set_lora_scale(unet, scale, adapter_name)


def set_lora_scale(unet: Any, scale: float, adapter_name: str = LORA_ADAPTER_NAME) -> None:
    """Set the multiplier of the LoRA branch used on every later UNet call."""
    unet.set_adapters([adapter_name], weights=[float(scale)])
