"""The Arc2Face prior: weights loading, ID prompt, view conditioning, Perp-Neg, LoRA, ISM/SDS (spec §2).

Public API (diffusers / transformers are imported only when models are built or loaded):

- ``PriorConfig`` and the network configs (``configs``);
- ``load_prior_models(paths, device, dtype) -> PriorModels``, ``load_lora(unet, path, scale)``;
- ``encode_id_prompt``, ``encode_text`` (``arc2face``);
- ``perp_neg_weights``, ``view_conditioning``, ``perp_neg_combine``, ``ViewEmbeddings`` (``views``);
- ``ism_step``, ``Denoiser``, ``Branch`` (``ism``); ``OracleDenoiser`` (``oracle``);
- ``GuidancePrior``, ``GuidanceOutput``, ``IsmGuidance``, ``Arc2FaceGuidance`` and the latent
  encoders (``guidance``); ``write_random_weights`` / ``write_clip_tokenizer`` (``synthetic``).
"""

from .arc2face import encode_id_prompt, encode_text
from .configs import PriorConfig
from .guidance import (
    Arc2FaceGuidance,
    GuidanceOutput,
    GuidancePrior,
    IsmGuidance,
    LatentEncoder,
    RgbLatentEncoder,
    UNetDenoiser,
    VaeLatentEncoder,
)
from .ism import Branch, Denoiser, IsmResult, ism_step
from .loading import PriorModels, load_lora, load_prior_models
from .oracle import OracleDenoiser
from .synthetic import write_clip_tokenizer, write_random_weights
from .views import ViewEmbeddings, perp_neg_combine, perp_neg_weights, view_conditioning

__all__ = [
    "Arc2FaceGuidance",
    "Branch",
    "Denoiser",
    "GuidanceOutput",
    "GuidancePrior",
    "IsmGuidance",
    "IsmResult",
    "LatentEncoder",
    "OracleDenoiser",
    "PriorConfig",
    "PriorModels",
    "RgbLatentEncoder",
    "UNetDenoiser",
    "VaeLatentEncoder",
    "ViewEmbeddings",
    "encode_id_prompt",
    "encode_text",
    "ism_step",
    "load_lora",
    "load_prior_models",
    "perp_neg_combine",
    "perp_neg_weights",
    "view_conditioning",
    "write_clip_tokenizer",
    "write_random_weights",
]
