"""The Arc2Face prior: weights loading, ID prompt, view conditioning, Perp-Neg, LoRA, ISM/SDS (paper §3.1–3.3).

Public API (imported lazily: ``arc2avatar.prior.configs`` alone stays cheap, and diffusers /
transformers are imported only when models are built or loaded):

- ``PriorConfig``, ``AccelConfig`` and the network configs (``configs``);
- ``load_prior_models(paths, device, dtype) -> PriorModels``, ``load_lora(unet, path, scale)``;
- ``encode_id_prompt``, ``encode_text`` (``arc2face``);
- ``perp_neg_weights``, ``view_conditioning``, ``perp_neg_combine``, ``ViewEmbeddings`` (``views``);
- ``ism_step``, ``Denoiser``, ``Branch`` (``ism``); ``OracleDenoiser`` (``oracle``);
- the latent encoders (``latents``);
- ``GuidancePrior``, ``GuidanceContext``, ``GuidanceOutput``, ``IsmGuidance``, ``Arc2FaceGuidance``
  (``guidance``).

Random and tiny weights for tests and benchmarks are in ``arc2avatar.testing.prior_weights``.
"""

from __future__ import annotations

from arc2avatar._lazy import lazy_dir, lazy_exports

_LAZY = {
    "encode_id_prompt": "arc2face", "encode_text": "arc2face",
    "PriorConfig": "configs", "AccelConfig": "configs",
    "Arc2FaceGuidance": "guidance", "GuidanceContext": "guidance", "GuidanceOutput": "guidance",
    "GuidancePrior": "guidance", "IsmGuidance": "guidance", "UNetDenoiser": "guidance",
    "LatentEncoder": "latents", "RgbLatentEncoder": "latents", "VaeLatentEncoder": "latents",
    "Branch": "ism", "Denoiser": "ism", "IsmResult": "ism", "ism_step": "ism",
    "PriorModels": "loading", "load_lora": "loading", "load_prior_models": "loading",
    "OracleDenoiser": "oracle",
    "ViewEmbeddings": "views", "perp_neg_combine": "views", "perp_neg_weights": "views",
    "view_conditioning": "views",
}


__getattr__ = lazy_exports(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
__all__ = sorted(_LAZY)  # noqa: PLE0605 (a list, built from the table above)
