"""View-dependent conditioning and Perp-Neg (docs/method.md §2; docs/official-code.md §1.3–1.4).

Written by hand (no library implements it for our embeddings): the blend of the ID embedding with
SD-CLIP view prompts, the azimuth interpolation with its negative weights (the stable-dreamfusion
/ LucidDreamer rule the official release kept), and the perpendicular aggregation of the
negative directions, per sample over the whole latent.

Azimuth convention: degrees from the frontal view, (−180, 180] (``Cameras.azimuth_deg``); the
rule is symmetric in the sign of the azimuth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from .configs import PriorConfig

ViewName = Literal["front", "side", "back"]
#: Order of the view prompts in ``PriorConfig.view_prompts`` and of ``ViewEmbeddings`` fields.
VIEW_NAMES: tuple[ViewName, ViewName, ViewName] = ("front", "side", "back")
#: Azimuth (degrees) of the front/side boundary and of a half turn.
QUARTER_TURN_DEG = 90.0


@dataclass(frozen=True)
class ViewEmbeddings:
    """Every prompt embedding the guidance needs, each (77, 768), computed once (docs/method.md §2).

    Attributes:
        front, side, back: e_d = α·e_id + (1−α)·CLIP_sd("<d> view").
        uncond: CLIP_sd(negative prompt), the CFG unconditional branch.
        inversion: CLIP_sd(""), used only for the DDIM inversion.
    """

    front: Tensor
    side: Tensor
    back: Tensor
    uncond: Tensor
    inversion: Tensor

    def view(self, name: ViewName) -> Tensor:
        return {"front": self.front, "side": self.side, "back": self.back}[name]

    @staticmethod
    def zeros(seq_len: int = 77, dim: int = 768, device: torch.device | str = "cpu") -> "ViewEmbeddings":
        """All-zero embeddings (for denoisers that ignore the context, e.g. the oracle)."""
        z = torch.zeros(seq_len, dim, device=device)
        return ViewEmbeddings(front=z, side=z, back=z, uncond=z, inversion=z)


def blend_view_embeddings(e_id: Tensor, e_views: Tensor, alpha: float) -> Tensor:
    """e_d = α·e_id + (1−α)·e_view(d), element-wise over the whole sequence (paper eq. 6, eq. 8 in §B.2;
    docs/method.md §2.2).

    Args:
        e_id: (77, D) Arc2Face ID embedding.
        e_views: (3, 77, D) SD-CLIP embeddings of the front/side/back view prompts.
    Returns:
        (3, 77, D) view embeddings.
    """
    return alpha * e_id.unsqueeze(0) + (1.0 - alpha) * e_views


@dataclass(frozen=True)
class PerpNegWeights:
    """Result of the azimuth rule for one view (docs/official-code.md §1.4).

    Attributes:
        positive: ((view, mix weight), (view, mix weight)): the positive embedding is their sum.
        negatives: ((view, w1), (view, w2)): the two negative prompts in order with their weights.
    """

    positive: tuple[tuple[ViewName, float], tuple[ViewName, float]]
    negatives: tuple[tuple[ViewName, float], tuple[ViewName, float]]


def perp_neg_weights(azimuth_deg: float, config: PriorConfig = PriorConfig()) -> PerpNegWeights:
    """Positive mix and negative weights of one view (docs/official-code.md §1.4).

    Front half (|az| < 90): r = 1 − |az|/90; positive r·front + (1−r)·side; negatives front
    (0 if r > 0.8 else w·e^(−2r)) then side (0 if r < 0.2 else w·e^(−10(1−r))).
    Back half (|az| ≥ 90): r = 1 − (|az|−90)/90; positive r·side + (1−r)·back; negatives side
    (0 if r > 0.8 else ½·w·e^(−10r)) then front (w).
    """
    az = abs(float(azimuth_deg))
    w = config.perp_neg_w
    if az < QUARTER_TURN_DEG:
        r = 1.0 - az / QUARTER_TURN_DEG
        w_front = 0.0 if r > config.front_neg_off_above else w * math.exp(-config.front_decay * r)
        w_side = 0.0 if r < config.side_neg_off_below else w * math.exp(-config.side_decay * (1.0 - r))
        return PerpNegWeights(positive=(("front", r), ("side", 1.0 - r)), negatives=(("front", w_front), ("side", w_side)))
    r = 1.0 - (az - QUARTER_TURN_DEG) / QUARTER_TURN_DEG
    w_side = 0.0 if r > config.back_side_neg_off_above else w * config.back_side_neg_factor * math.exp(-config.side_decay * r)
    return PerpNegWeights(positive=(("side", r), ("back", 1.0 - r)), negatives=(("side", w_side), ("front", w)))


@dataclass(frozen=True)
class ViewConditioning:
    """Per-view prompt embeddings of one batch of B views.

    Attributes:
        uncond, positive, negative1, negative2: (B, 77, D) contexts of the four branches.
        inversion: (B, 77, D) empty-prompt context of the DDIM inversion.
        neg_weights: (B, 2) Perp-Neg weights of negative1, negative2.
    """

    uncond: Tensor
    positive: Tensor
    negative1: Tensor
    negative2: Tensor
    inversion: Tensor
    neg_weights: Tensor

    def main_contexts(self) -> Tensor:
        """(4B, 77, D): [uncond; positive; negative1; negative2], the layout of the main UNet call."""
        return torch.cat([self.uncond, self.positive, self.negative1, self.negative2], dim=0)


def view_conditioning(
    azimuths_deg: Tensor | Sequence[float], embeds: ViewEmbeddings, config: PriorConfig = PriorConfig()
) -> ViewConditioning:
    """Build the four contexts and the negative weights for B views from their azimuths (docs/method.md §2)."""
    azimuths = [float(a) for a in torch.as_tensor(azimuths_deg).flatten().tolist()]
    positives, negs1, negs2, weights = [], [], [], []
    for az in azimuths:
        rule = perp_neg_weights(az, config)
        positives.append(sum(mix * embeds.view(name) for name, mix in rule.positive))
        (n1, w1), (n2, w2) = rule.negatives
        negs1.append(embeds.view(n1))
        negs2.append(embeds.view(n2))
        weights.append([w1, w2])
    batch = len(azimuths)
    return ViewConditioning(
        uncond=embeds.uncond.unsqueeze(0).expand(batch, -1, -1),
        positive=torch.stack(positives),
        negative1=torch.stack(negs1),
        negative2=torch.stack(negs2),
        inversion=embeds.inversion.unsqueeze(0).expand(batch, -1, -1),
        # built on the host, copied without waiting for the GPU (pageable memory is staged at once)
        neg_weights=torch.tensor(weights, dtype=torch.float32).to(embeds.front.device, non_blocking=True),
    )


def perpendicular_component(a: Tensor, b: Tensor, norm_floor: float = 1e-6) -> Tensor:
    """a − (⟨a,b⟩/max(‖b‖², floor))·b per sample over all non-batch dims. a, b: (B, ...)."""
    dims = tuple(range(1, a.ndim))
    dot = (a * b).sum(dim=dims, keepdim=True)
    norm_sq = (b * b).sum(dim=dims, keepdim=True).clamp_min(norm_floor)
    return a - (dot / norm_sq) * b


def perp_neg_combine(
    eps_uncond: Tensor,
    eps_pos: Tensor,
    eps_negs: Sequence[Tensor],
    neg_weights: Tensor,
    guidance_scale: float,
    skip_below: float = 1e-4,
    norm_floor: float = 1e-6,
) -> Tensor:
    """Perp-Neg guided noise ε̂ = ε_u + cfg·(Δ_pos + Σ_k w_k·perp(Δ_k, Δ_pos)) (docs/official-code.md §1.4).

    Args:
        eps_uncond, eps_pos: (B, C, h, w) predictions of the unconditional and positive branches.
        eps_negs: K tensors (B, C, h, w), the negative branches.
        neg_weights: (B, K) weights; per sample, terms with |w| ≤ ``skip_below`` are skipped.
        guidance_scale: CFG scale (docs/method.md §2: 1.25).
    Returns:
        (B, C, h, w) ε̂.
    """
    delta_pos = eps_pos - eps_uncond
    delta = delta_pos
    view_shape = (-1,) + (1,) * (eps_pos.ndim - 1)
    for k, eps_neg in enumerate(eps_negs):
        w = neg_weights[:, k].to(eps_pos.dtype).reshape(view_shape)
        term = w * perpendicular_component(eps_neg - eps_uncond, delta_pos, norm_floor)
        delta = delta + torch.where(w.abs() > skip_below, term, torch.zeros_like(term))
    return eps_uncond + guidance_scale * delta
