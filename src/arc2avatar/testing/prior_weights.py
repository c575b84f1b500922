"""Random-weight prior folders in the REAL layouts (tests: tiny; GPU benchmarks: full size).

Written by hand (no library writes these): a folder that looks exactly like the real weights:
``arc2face/`` (UNet: config.json + diffusion_pytorch_model.safetensors), ``encoder/`` (Arc2Face
CLIP text encoder: config.json + pytorch_model.bin with transformers-4 ``text_model.`` keys),
``vae/``, ``text_encoder/`` (model.safetensors), ``tokenizer/`` and ``scheduler/``, so that tests
and benchmarks go through the real loader. Also the CLIP BPE tokenizer builder (the vocabulary
file ships in the ``open_clip_torch`` wheel; CLIP's construction rule: 256 byte symbols, the
same with ``</w>``, one entry per merge, then the two special tokens) and a random LoRA writer
in the diffusers formats.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import torch

from ..weights.layout import WeightsPaths
from ..prior.configs import (
    TOKENIZER_CONFIG,
    ModelSize,
    scheduler_config,
    text_encoder_config,
    unet_config,
    vae_config,
)
from .._io import atomic_path

#: CLIP's BPE file holds a header line then merges; CLIP keeps the first 49152 − 256 − 2 merges.
CLIP_MERGE_COUNT = 49152 - 256 - 2
#: Path of the BPE vocabulary inside the open_clip_torch wheel.
OPEN_CLIP_BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
#: Words given whole-word merges in the small fallback tokenizer (the prompts of docs/method.md §2).
FALLBACK_WORDS = ("photo", "of", "a", "id", "person", "front", "side", "back", "view")
END_OF_WORD = "</w>"
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------
def byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for bytes 0..255, in byte order.

    Printable Latin-1 bytes stand for themselves; the others map to code points 256, 257, ...
    """
    printable = set(range(ord("!"), ord("~") + 1))
    printable |= set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def _ordered_base_symbols() -> list[str]:
    """CLIP's base order: the printable bytes first (in byte order), then the remapped ones."""
    symbols = byte_symbols()
    printable = [s for b, s in enumerate(symbols) if ord(s) == b]
    remapped = [s for b, s in enumerate(symbols) if ord(s) != b]
    return printable + remapped


def read_clip_bpe_merges(bpe_path: str | os.PathLike) -> list[tuple[str, str]]:
    """The merges of CLIP's ``bpe_simple_vocab_16e6.txt.gz``, given that file or the open_clip wheel."""
    path = Path(bpe_path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            raw = gzip.decompress(wheel.read(OPEN_CLIP_BPE_MEMBER))
    else:
        raw = gzip.decompress(path.read_bytes())
    lines = raw.decode("utf-8").split("\n")[1 : CLIP_MERGE_COUNT + 1]
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


def _fallback_merges(words: tuple[str, ...] = FALLBACK_WORDS) -> list[tuple[str, str]]:
    """Left-to-right merges that make each of ``words`` one token ``word</w>`` (small vocab)."""
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + END_OF_WORD]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
    return merges


def write_clip_tokenizer(directory: str | os.PathLike, bpe_gz_path: str | os.PathLike | None) -> Path:
    """Write a ``CLIPTokenizer`` folder (vocab.json, merges.txt, configs) as SD-1.5's ``tokenizer/``.

    Args:
        directory: output folder (created).
        bpe_gz_path: CLIP's ``bpe_simple_vocab_16e6.txt.gz`` or an ``open_clip_torch`` wheel holding
            it: gives the real 49408-token vocabulary ("id" → 1014). ``None``: a small fallback
            vocabulary (bytes + whole-word tokens for the prompt words) for offline tests.
    """
    merges = read_clip_bpe_merges(bpe_gz_path) if bpe_gz_path is not None else _fallback_merges()
    base = _ordered_base_symbols()
    tokens = base + [s + END_OF_WORD for s in base] + ["".join(m) for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (out / "merges.txt").write_text(merges_text, encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2), encoding="utf-8")
    special = {k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _random_clip_state_dict(size: ModelSize) -> dict[str, torch.Tensor]:
    """A randomly initialised CLIP text tower's weights with transformers-4 ``text_model.`` keys."""
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig(**text_encoder_config(size)))
    return {f"text_model.{k}": v.contiguous() for k, v in model.state_dict().items()}


def write_random_weights(
    root: str | os.PathLike,
    size: ModelSize = "tiny",
    seed: int = 0,
    bpe_gz_path: str | os.PathLike | None = None,
) -> WeightsPaths:
    """Write random prior weights in the real folder layouts under ``root``; return their paths.

    Layout: ``arc2face/``, ``encoder/`` (pytorch_model.bin, as FoivosPar/Arc2Face ships it),
    ``vae/``, ``text_encoder/`` (model.safetensors), ``tokenizer/``, ``scheduler/``. Each folder is
    built in a temporary folder beside it and renamed into place (nothing half-written).

    Args:
        root: output folder.
        size: "tiny" (tests, a few MB of layers + the 49408×768 token tables) or "full" (the real
            shapes, ~4.5 GB in fp32; same FLOPs as the real networks).
        seed: torch seed of the random initialisation.
        bpe_gz_path: CLIP BPE file or open_clip wheel for the real tokenizer; None = fallback vocab.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    try:
        UNet2DConditionModel.from_config(unet_config(size)).save_pretrained(staging / "arc2face")
        AutoencoderKL.from_config(vae_config(size)).save_pretrained(staging / "vae")
        for name, fmt in (("encoder", "bin"), ("text_encoder", "safetensors")):
            folder = staging / name
            folder.mkdir()
            _write_json(folder / "config.json", text_encoder_config(size))
            state = _random_clip_state_dict(size)
            if fmt == "bin":
                torch.save(state, folder / "pytorch_model.bin")
            else:
                save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        write_clip_tokenizer(staging / "tokenizer", bpe_gz_path)
        (staging / "scheduler").mkdir()
        _write_json(staging / "scheduler" / "scheduler_config.json", scheduler_config())
        for child in staging.iterdir():
            target = root / child.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(child, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return WeightsPaths(
        arc2face_unet=root / "arc2face",
        arc2face_encoder=root / "encoder",
        sd_vae=root / "vae",
        sd_tokenizer=root / "tokenizer",
        sd_text_encoder=root / "text_encoder",
        sd_scheduler=root / "scheduler",
    )


LoraStyle = Literal["peft", "attn_processor", "lora_layer"]


def lora_target_modules(unet: torch.nn.Module) -> list[str]:
    """Names of the attention projections (to_q/to_k/to_v/to_out.0) of a diffusers UNet (docs/method.md §8)."""
    suffixes = (".to_q", ".to_k", ".to_v", ".to_out.0")
    return [n for n, m in unet.named_modules() if hasattr(m, "in_features") and n.endswith(suffixes)]


def write_random_lora(
    path: str | os.PathLike,
    unet: torch.nn.Module,
    rank: int = 4,
    style: LoraStyle = "peft",
    seed: int = 0,
    std: float = 0.02,
) -> Path:
    """Write a random multi-view-style LoRA (``pytorch_lora_weights.safetensors`` format) for ``unet``.

    Keys are prefixed ``unet.``; ``style`` picks the key naming:
    "peft" ``…attn1.to_q.lora_A.weight`` / ``lora_B`` (diffusers ≥ 0.24 training scripts);
    "lora_layer" ``…attn1.to_q.lora.down.weight`` / ``up`` (diffusers 0.21–0.23 LoRACompatibleLinear);
    "attn_processor" ``…attn1.processor.to_q_lora.down.weight`` (older attention-processor LoRA).
    Both factors are random (``std``), so the LoRA changes the UNet's output.
    """
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name in lora_target_modules(unet):
        layer = unet.get_submodule(name)
        down = torch.randn(rank, layer.in_features, generator=gen) * std
        up = torch.randn(layer.out_features, rank, generator=gen) * std
        if style == "peft":
            keys = (f"{name}.lora_A.weight", f"{name}.lora_B.weight")
        elif style == "lora_layer":
            keys = (f"{name}.lora.down.weight", f"{name}.lora.up.weight")
        elif style == "attn_processor":
            block, proj = name.rsplit(".to_", 1)
            proj = proj.replace("out.0", "out")
            keys = (f"{block}.processor.to_{proj}_lora.down.weight", f"{block}.processor.to_{proj}_lora.up.weight")
        else:
            raise ValueError(f"unknown LoRA style {style!r}")
        state[f"unet.{keys[0]}"] = down
        state[f"unet.{keys[1]}"] = up
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    return out
