"""Configurations of the prior: the network configs (real SD-1.5 / Arc2Face and tiny) and ``PriorConfig``.

Written by hand: the network configs are data copied in meaning from the public
``stable-diffusion-v1-5`` / ``FoivosPar/Arc2Face`` ``config.json`` files (docs/method.md §2, docs/official-code.md
§2.1), so that full-size random weights have the real shapes and FLOPs, and tiny ones keep the same
classes. ``PriorConfig`` holds every number of docs/method.md §2 as a field.

Tiny variant choice: the text encoders keep ``hidden_size`` 768 and the real vocabulary size 49408
(the real CLIP tokenizer's ids must index it, and the 512-d ArcFace vector is zero-padded to the
hidden size), and the tiny UNet keeps ``cross_attention_dim`` 768, so prompt embeddings are
real-sized (B, 77, 768). Everything else (layers, widths, blocks) is shrunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

ModelSize = Literal["tiny", "full"]
GuidanceMode = Literal["ism", "sds"]
DtypeName = Literal["auto", "fp32", "fp16", "bf16"]

#: Default negative prompt of the official release (docs/official-code.md §1.3); the CFG uncond branch.
RELEASE_NEGATIVE_PROMPT = (
    "unrealistic, blurry, low quality, out of focus, ugly, low contrast, dull, dark, low-resolution, "
    "gloomy, oversaturation, purple shadows, weird colors"
)


# --------------------------------------------------------------------------------------------
# Network configs (diffusers / transformers constructor kwargs, i.e. the ``config.json`` content)
# --------------------------------------------------------------------------------------------
def unet_config(size: ModelSize) -> dict[str, Any]:
    """``UNet2DConditionModel`` config: SD-1.5's (859.5M params; Arc2Face keeps it) or a tiny one."""
    if size == "full":
        return {
            "_class_name": "UNet2DConditionModel",
            "act_fn": "silu",
            "attention_head_dim": 8,
            "block_out_channels": [320, 640, 1280, 1280],
            "center_input_sample": False,
            "cross_attention_dim": 768,
            "down_block_types": [
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ],
            "downsample_padding": 1,
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "in_channels": 4,
            "layers_per_block": 2,
            "mid_block_scale_factor": 1,
            "norm_eps": 1e-05,
            "norm_num_groups": 32,
            "out_channels": 4,
            "sample_size": 64,
            "up_block_types": [
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ],
        }
    if size == "tiny":
        return {
            "_class_name": "UNet2DConditionModel",
            "act_fn": "silu",
            "attention_head_dim": 8,
            "block_out_channels": [32, 64],
            "cross_attention_dim": 768,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "in_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 32,
            "out_channels": 4,
            "sample_size": 8,
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        }
    raise ValueError(f"unknown model size {size!r}: expected 'tiny' or 'full'")


def vae_config(size: ModelSize) -> dict[str, Any]:
    """``AutoencoderKL`` config: SD-1.5's VAE (83.7M params, ×8 down, scaling 0.18215) or tiny (×2)."""
    if size == "full":
        return {
            "_class_name": "AutoencoderKL",
            "act_fn": "silu",
            "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "in_channels": 3,
            "latent_channels": 4,
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "out_channels": 3,
            "sample_size": 512,
            "scaling_factor": 0.18215,  # docs/method.md §2
            "up_block_types": ["UpDecoderBlock2D"] * 4,
        }
    if size == "tiny":
        return {
            "_class_name": "AutoencoderKL",
            "act_fn": "silu",
            "block_out_channels": [32, 32],
            "down_block_types": ["DownEncoderBlock2D"] * 2,
            "in_channels": 3,
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 32,
            "out_channels": 3,
            "sample_size": 16,
            "scaling_factor": 0.18215,  # docs/method.md §2
            "up_block_types": ["UpDecoderBlock2D"] * 2,
        }
    raise ValueError(f"unknown model size {size!r}: expected 'tiny' or 'full'")


def text_encoder_config(size: ModelSize) -> dict[str, Any]:
    """``CLIPTextModel`` config: CLIP ViT-L/14's text tower (SD-1.5 and the Arc2Face encoder) or tiny.

    Real: hidden 768, 12 layers, 12 heads, MLP 3072, vocabulary 49408, 77 positions, quick-GELU.
    Tiny: hidden 768 and vocabulary 49408 kept (see the module docstring), 2 layers, MLP 64.
    """
    base: dict[str, Any] = {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_act": "quick_gelu",
        "hidden_size": 768,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "num_attention_heads": 12,
        "projection_dim": 768,
        "vocab_size": 49408,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }
    if size == "full":
        return {**base, "intermediate_size": 3072, "num_hidden_layers": 12}
    if size == "tiny":
        return {**base, "intermediate_size": 64, "num_hidden_layers": 2}
    raise ValueError(f"unknown model size {size!r}: expected 'tiny' or 'full'")


def scheduler_config() -> dict[str, Any]:
    """SD-1.5's ``scheduler/scheduler_config.json`` read as a ``DDPMScheduler`` (docs/official-code.md §2.1).

    Scaled-linear betas 0.00085→0.012 over 1000 steps, ε-prediction, no sample clipping,
    "leading" spacing with ``steps_offset`` 1. The real file names ``PNDMScheduler``; we keep that.
    """
    return {
        "_class_name": "PNDMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
    }


#: The SD-1.5 tokenizer's ``tokenizer_config.json`` essentials (77 positions, pad = <|endoftext|>).
TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "CLIPTokenizer",
    "model_max_length": 77,
    "do_lower_case": True,
    "errors": "replace",
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "add_prefix_space": False,
}


# --------------------------------------------------------------------------------------------
# PriorConfig: every number of docs/method.md §2
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriorConfig:
    """Arc2Face ISM/SDS guidance settings. Every value is a number of docs/method.md §2 (docs/official-code.md §1–2).

    Attributes:
        id_prompt: prompt carrying the ID placeholder (docs/method.md §2; Arc2Face).
        id_placeholder: the word whose single token is replaced by the ArcFace vector (real id 1014).
        view_prompts: SD-CLIP prompts for the front, side and back views, in that order (docs/method.md §2).
        view_alpha: α of e_d = α·e_id + (1−α)·CLIP_sd("<d> view") (docs/method.md §2: 0.9).
        negative_prompt: SD-CLIP prompt of the unconditional CFG branch (docs/official-code.md §1.3).
        inversion_prompt: SD-CLIP prompt of the DDIM inversion (empty; docs/official-code.md §1.3).
        guidance_scale: CFG scale applied to the Perp-Neg direction (docs/method.md §2: 1.25).
        lora_scale: multi-view LoRA scale on every UNet call (docs/method.md §2: 0.45).
        lambda_guidance: λ multiplying the latent gradient (docs/method.md §2: 0.1).
        t_min, t_max: inclusive range of timestep VALUES sampled uniformly (docs/method.md §2: 21..500;
            official idx 20..499 + the table offset of 1, docs/official-code.md §2.3).
        delta_t: δT, s = max(t − δT, s_floor) (docs/method.md §2: 50).
        s_floor: smallest s and the timestep value where the inversion chain starts (1).
        delta_s: δS, stride of the DDIM inversion x0 → x_s in timestep values (docs/method.md §2: 50).
        offset_noise: std of the per-channel noise offset shared over the batch (docs/method.md §2: 0.1).
        flip_prob: probability of flipping the whole batch horizontally (docs/method.md §2: 0.5).
        perp_neg_w: base negative weight w of Perp-Neg (docs/official-code.md §1.4: −2).
        front_decay, side_decay: exponential decays of the negative weights (§1.4: 2, 10).
        front_neg_off_above: front-half front-negative weight is 0 when r > this (§1.4: 0.8).
        side_neg_off_below: front-half side-negative weight is 0 when r < this (§1.4: 0.2).
        back_side_neg_off_above: back-half side-negative weight is 0 when r > this (§1.4: 0.8).
        back_side_neg_factor: back-half side-negative weight is w·factor·exp(−side_decay·r) (§1.4: ½).
        perp_neg_skip: Perp-Neg terms with |w| ≤ this are skipped (§1.4: 1e-4).
        perp_norm_floor: floor of ‖Δ_pos‖² in the projection (§1.4: 1e-6).
        clamp_renders: clamp 2x−1 to [−1, 1] before the VAE (ours; the official did not clamp).
        mode: "ism" (interval score matching) or "sds" (target = the added noise).
        dtype: UNet/VAE precision: "auto" = fp16 on CUDA, fp32 on CPU (docs/method.md §2).
    """

    id_prompt: str = "photo of a id person"
    id_placeholder: str = "id"
    view_prompts: tuple[str, str, str] = ("front view", "side view", "back view")
    view_alpha: float = 0.9
    negative_prompt: str = RELEASE_NEGATIVE_PROMPT
    inversion_prompt: str = ""
    guidance_scale: float = 1.25
    lora_scale: float = 0.45
    lambda_guidance: float = 0.1
    t_min: int = 21
    t_max: int = 500
    delta_t: int = 50
    s_floor: int = 1
    delta_s: int = 50
    offset_noise: float = 0.1
    flip_prob: float = 0.5
    perp_neg_w: float = -2.0
    front_decay: float = 2.0
    side_decay: float = 10.0
    front_neg_off_above: float = 0.8
    side_neg_off_below: float = 0.2
    back_side_neg_off_above: float = 0.8
    back_side_neg_factor: float = 0.5
    perp_neg_skip: float = 1e-4
    perp_norm_floor: float = 1e-6
    clamp_renders: bool = True
    mode: GuidanceMode = "ism"
    dtype: DtypeName = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ("ism", "sds"):
            raise ValueError(f"PriorConfig.mode must be 'ism' or 'sds', got {self.mode!r}")
        if not 1 <= self.t_min <= self.t_max <= 999:
            raise ValueError(f"PriorConfig needs 1 ≤ t_min ≤ t_max ≤ 999, got {self.t_min}..{self.t_max}")
        if self.delta_s < 1 or self.delta_t < 0:
            raise ValueError("PriorConfig.delta_s must be ≥ 1 and delta_t ≥ 0")


# ─────────────────────────── the fast path on a CUDA GPU (prior/accel.py) ───────────────────────────
_OPTION_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a (dotted) Inductor config name
CompileMode = Literal["none", "default", "max-autotune-no-cudagraphs", "reduce-overhead"]
COMPILE_MODES: tuple[str, ...] = ("none", "default", "max-autotune-no-cudagraphs", "reduce-overhead")


@dataclass(frozen=True)
class AccelConfig:
    """How the prior runs on a CUDA GPU (issue 9). Nothing here changes the method's maths.

    Attributes:
        enabled: False = plain eager PyTorch (the baseline the benchmark harness compares with);
            ignored on a CPU, where everything below is off.
        cuda_graphs: capture and replay the UNet (one graph per batch shape) and the VAE
            encoder's forward + backward.
        channels_last: NHWC memory format for the UNet's convolutions.
        vae_channels_last: NHWC for the VAE too (off: slower in eager at 512², module doc).
        explicit_attention_above: VAE attention heads wider than this many channels run as two
            matrix products around a float32 softmax (``prior/attention.py``; SD-1.5's VAE has one
            512-wide head, which no fused kernel takes); None (``--set accel.explicit_attention_above=null``)
            = PyTorch's SDPA for every head.
        fuse_lora: merge the multi-view LoRA into the UNet weights once (exact up to fp16
            rounding of W + s·B·A; the LoRA is fixed during avatar optimisation).
        compile: ``torch.compile`` mode applied to the UNet and VAE encoder: "none" (no
            compilation time), "default" or "max-autotune-no-cudagraphs" (under our graphs), or
            "reduce-overhead" (Inductor's own CUDA graphs; needs ``cuda_graphs=False``).
            Inductor caches compiled kernels on disk (``TORCHINDUCTOR_CACHE_DIR``; the CLI points
            it into the arc2avatar cache, ``arc2avatar/_cache.py``), so only a
            machine's first run pays in full (docs/benchmarks.md: 189 s on a fresh H200 without the
            VAE's coordinate-descent tuning, which adds ≈ 2 minutes).
        unet_inductor, vae_inductor: boolean Inductor options (``torch._inductor.config`` names,
            dotted for nested ones) switched on when compiling the UNet / the VAE encoder, on top
            of ``compile``'s mode, e.g. ``[conv_1x1_as_mm, coordinate_descent_tuning]`` or
            ``[force_layout_optimization]`` (profiled in benchmarks/profile_prior.py). The VAE's
            default is both of its measured wins (module doc); the UNet's is none
            (coordinate-descent tuning left its calls unchanged for 6 more minutes of compiling).
        cudnn_benchmark: let cuDNN time its convolution algorithms for the fixed shapes and keep
            the fastest (sets the process-wide ``torch.backends.cudnn.benchmark``).
        warmup_calls: eager calls per shape before capture (cuDNN autotuning, lazy inits).
    """

    enabled: bool = True
    cuda_graphs: bool = True
    channels_last: bool = True
    vae_channels_last: bool = False
    explicit_attention_above: int | None = 256
    fuse_lora: bool = True
    compile: CompileMode = "default"
    unet_inductor: tuple[str, ...] = ()
    vae_inductor: tuple[str, ...] = ("force_layout_optimization", "coordinate_descent_tuning")
    cudnn_benchmark: bool = True
    warmup_calls: int = 3

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"AccelConfig.compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.compile == "reduce-overhead" and self.cuda_graphs:
            raise ValueError("AccelConfig.compile=reduce-overhead captures its own CUDA graphs: set cuda_graphs=false")
        if self.explicit_attention_above is not None and self.explicit_attention_above < 0:
            raise ValueError(f"AccelConfig.explicit_attention_above must be ≥ 0 or null, got {self.explicit_attention_above}")
        for name in (*self.unet_inductor, *self.vae_inductor):
            if not isinstance(name, str) or _OPTION_NAME.fullmatch(name) is None:
                raise ValueError(f"AccelConfig: {name!r} is not an option name (e.g. coordinate_descent_tuning)")
        if self.warmup_calls < 1:
            raise ValueError(f"AccelConfig.warmup_calls must be ≥ 1, got {self.warmup_calls}")

    def check_inductor_options(self) -> None:
        """Raise ``ValueError`` naming any ``unet_inductor`` / ``vae_inductor`` entry that is not a
        boolean ``torch._inductor.config`` option. Not done at construction: importing Inductor
        takes about a second, which commands that never compile should not pay."""
        for name in (*self.unet_inductor, *self.vae_inductor):
            if not isinstance(inductor_option(name), bool):
                raise ValueError(f"AccelConfig: {name!r} is not a boolean option of torch._inductor.config")

    @classmethod
    def eager(cls) -> "AccelConfig":
        """The plain eager baseline."""
        return cls(enabled=False)

    def active(self, device: Any) -> bool:
        """True when the fast path applies: enabled and on a CUDA device (a ``torch.device`` or its name)."""
        kind = getattr(device, "type", None) or str(device).split(":")[0]
        return self.enabled and kind == "cuda"


def inductor_option(name: str) -> Any:
    """The current value of a (dotted) ``torch._inductor.config`` option; None if there is none."""
    import torch._inductor.config as node

    for part in name.split("."):
        node = getattr(node, part, None)
    return node
