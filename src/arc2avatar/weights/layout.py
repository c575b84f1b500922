"""Where each weight file lives: the resolved paths handed to the loaders (docs/method.md §1–§2).

``arc2avatar.weights.resolver`` fills a ``WeightsPaths`` from a local folder in the official
layouts or from the Hugging Face Hub; loaders (``arc2avatar.prior``, ``arc2avatar.identity``)
take these paths and never search the disk themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightsPaths:
    """Resolved locations of every network arc2avatar uses. ``None`` = not needed / not found.

    Attributes:
        arc2face_unet: folder with ``config.json`` + ``diffusion_pytorch_model.safetensors``
            (FoivosPar/Arc2Face ``arc2face/``).
        arc2face_encoder: folder with ``config.json`` + ``pytorch_model.bin`` or
            ``model.safetensors`` (FoivosPar/Arc2Face ``encoder/``).
        arcface_onnx: ``arcface.onnx`` (FoivosPar/Arc2Face), the ArcFace R100 recogniser.
        scrfd_onnx: ``scrfd_10g_bnkps.onnx`` (insightface antelopev2), the face detector.
        sd_vae, sd_tokenizer, sd_text_encoder, sd_scheduler: the ``vae/``, ``tokenizer/``,
            ``text_encoder/`` and ``scheduler/`` folders of stable-diffusion-v1-5.
        lora: optional multi-view LoRA file in the diffusers format
            (``pytorch_lora_weights.safetensors``).
    """

    arc2face_unet: Path | None = None
    arc2face_encoder: Path | None = None
    arcface_onnx: Path | None = None
    scrfd_onnx: Path | None = None
    sd_vae: Path | None = None
    sd_tokenizer: Path | None = None
    sd_text_encoder: Path | None = None
    sd_scheduler: Path | None = None
    lora: Path | None = None
