"""Attention for wide heads on the fast path (issue 9): the same softmax(QKᵀ/√d)·V, a faster form.

The VAE encoder's mid-block attention is **one head of dimension 512** over 4096 tokens (64×64
latents of a 512² render). PyTorch's ``scaled_dot_product_attention`` has no fused kernel for heads
that wide (FlashAttention and cuDNN stop at 256), so it runs the memory-efficient kernel, whose
backward cost 15 ms per step for 4 views on an H200 (docs/benchmarks.md), a third of the VAE's
forward + backward. Written as two matrix products around a float32 softmax (the 4096×4096 scores
fit easily) it is a few cuBLAS calls and one softmax that Inductor fuses: the VAE backward went
from 34 to 19 ms per step, and the step's gradient came out closer to an fp32 reference than the
eager fp16 one (the harness's gradient check).

``FastAttnProcessor`` is a diffusers attention processor (the public extension point of
``Attention``) that does what diffusers' ``AttnProcessor2_0`` does for SD-1.5's blocks with a
chosen kernel; ``install_attention`` gives it, with the explicit form, to the attention modules
whose heads are wider than a threshold, decided once per module. Every other module keeps
diffusers' default processor: the UNet's heads (40/80/160) have fused kernels, and PyTorch
already picks cuDNN's for them on Hopper.

Written by hand: the processor's bookkeeping (reshapes, residual) and the explicit two-matmul
attention; the kernels themselves are cuBLAS's and Inductor's through PyTorch.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: (query, key, value, additive mask or None) → output; tensors (batch, heads, tokens, head_dim)
AttentionKernel = Callable[[Tensor, Tensor, Tensor, "Tensor | None"], Tensor]


def sdpa_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
    """PyTorch's default kernel choice (what the eager baseline runs)."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)


def explicit_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(QKᵀ/√d + mask)·V as two matrix products, the softmax in float32."""
    scores = torch.matmul(query * query.shape[-1] ** -0.5, key.transpose(-1, -2))  # (B, H, N, M)
    if mask is not None:
        scores = scores + mask
    return torch.matmul(scores.float().softmax(dim=-1).to(value.dtype), value)


class FastAttnProcessor:
    """Attention processor for diffusers' ``Attention`` with a chosen kernel.

    Covers what SD-1.5's UNet and VAE use: 3-D (tokens) or 4-D (image) input, an optional group
    norm, cross-attention, an attention mask, residual connection and output rescale. Modules with
    anything else (spatial norm, q/k norms, cross-norm) keep their processor (``supports``).
    """

    def __init__(self, kernel: AttentionKernel) -> None:
        self.kernel = kernel

    @staticmethod
    def supports(attn: Any) -> bool:
        return (getattr(attn, "spatial_norm", None) is None and getattr(attn, "norm_q", None) is None
                and getattr(attn, "norm_k", None) is None and not getattr(attn, "norm_cross", False))

    def __call__(self, attn: Any, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args: Any, **kwargs: Any) -> Tensor:
        residual = hidden_states
        image_shape = hidden_states.shape if hidden_states.ndim == 4 else None
        if image_shape is not None:  # (B, C, H, W) → (B, H·W, C)
            batch, channels, height, width = image_shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
            if encoder_hidden_states is None:
                context = hidden_states
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads

        def heads(x: Tensor) -> Tensor:  # (B, N, heads·d) → (B, heads, N, d)
            return x.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        out = self.kernel(heads(query), heads(key), heads(value), attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if image_shape is not None:
            out = out.transpose(-1, -2).reshape(image_shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def head_dim(attn: Any) -> int:
    """Channels per head of a diffusers ``Attention``."""
    return attn.inner_dim // attn.heads


def install_attention(module: torch.nn.Module, kernel: AttentionKernel = explicit_attention, wider_than: int = 0) -> int:
    """Give every supported diffusers ``Attention`` in ``module`` whose heads are wider than
    ``wider_than`` channels a ``FastAttnProcessor(kernel)``; returns how many were changed."""
    changed = 0
    for sub in module.modules():
        if (hasattr(sub, "set_processor") and hasattr(sub, "to_q") and FastAttnProcessor.supports(sub)
                and head_dim(sub) > wider_than):
            sub.set_processor(FastAttnProcessor(kernel))
            changed += 1
    return changed


__all__ = ["AttentionKernel", "FastAttnProcessor", "explicit_attention", "head_dim", "install_attention",
           "sdpa_attention"]
