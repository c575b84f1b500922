"""Adam over the splat parameters with the log-linear learning-rate table (docs/method.md §4, §7).

One named parameter group per attribute (``means``, ``f_dc``, ``log_scales``, ``opacity_logits``,
``quats``; the names of ``GaussianSplats.params``), as 3DGS and the official release do
(docs/official-code.md §3.2). The schedule is exp((1−τ)·ln lr_init + τ·ln lr_final) with
τ = clip(step / max_steps, 0, 1) and no delay multiplier (the release's 0.01 delay has no effect).

Written by hand: the LR table as data and the 3-line schedule (no library ships 3DGS's
schedule); freezing. Frozen groups stay in the optimiser with lr 0 and their gradients dropped
before each step (``drop_frozen_grads``), so a phase can unfreeze them without rebuilding Adam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from arc2avatar.splats.model import PARAM_NAMES, GaussianSplats


@dataclass(frozen=True)
class SplatOptimConfig:
    """Adam and the per-attribute learning rates (docs/method.md §4; docs/official-code.md §3.2, §8).

    Every ``*_lr_init`` / ``*_lr_final`` pair is log-linearly interpolated over ``max_steps``;
    equal values mean a constant rate.

    Attributes:
        means_lr_init, means_lr_final: xyz rate before scaling, 1.4e-4 → 1.4e-6 (world units
            per step per ``spatial_lr_scale``).
        spatial_lr_scale: multiplies the xyz rates: the scene extent, 4.5 (docs/method.md §4).
        f_dc_lr_init, f_dc_lr_final: colour (SH DC) rate, 5e-3 → 3e-3.
        opacity_lr_init, opacity_lr_final: opacity-logit rate, 1.75e-2 constant.
        scales_lr_init, scales_lr_final: log-scale rate, 2.5e-3 → 5e-4.
        quats_lr_init, quats_lr_final: quaternion rate, 1e-3 → 2e-4.
        betas: Adam (β1, β2) = (0.9, 0.999).
        eps: Adam ε = 1e-15 (3DGS; smaller than torch's default so tiny gradients still move).
        max_steps: iterations of the schedule: 7000 (docs/official-code.md §3.2, not 30000).
        frozen: parameter names held fixed (lr 0, gradients dropped), e.g. ``("means",)``.
    """

    means_lr_init: float = 1.4e-4
    means_lr_final: float = 1.4e-6
    spatial_lr_scale: float = 4.5
    f_dc_lr_init: float = 5e-3
    f_dc_lr_final: float = 3e-3
    opacity_lr_init: float = 1.75e-2
    opacity_lr_final: float = 1.75e-2
    scales_lr_init: float = 2.5e-3
    scales_lr_final: float = 5e-4
    quats_lr_init: float = 1e-3
    quats_lr_final: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-15
    max_steps: int = 7000
    frozen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.frozen if name not in PARAM_NAMES]
        if unknown:
            raise ValueError(f"cannot freeze {unknown}: splat parameters are {list(PARAM_NAMES)}")
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")
        rates = [f for f in self.__dataclass_fields__ if f.endswith(("_lr_init", "_lr_final")) or f == "spatial_lr_scale"]
        bad = [f"{name}={getattr(self, name)}" for name in rates if not 0 <= getattr(self, name) < math.inf]
        if bad:
            raise ValueError(f"optim learning rates must be finite and ≥ 0 (got {', '.join(bad)})")
        if not 0 < self.eps < 1:
            raise ValueError(f"optim.eps must be in (0, 1) (got {self.eps})")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be in [0, 1) (got {self.betas})")

    @classmethod
    def expression(cls, **overrides: object) -> "SplatOptimConfig":
        """The expression-correction preset (docs/method.md §7; docs/official-code.md §6 ``expr_*``):
        xyz 1.4e-4 → 1.4e-6, colour 5e-3 → 3e-3, opacity 5e-2, scale 5e-3 → 5e-4,
        rotation 1e-3 → 2e-4, over 500 iterations. ``spatial_lr_scale`` stays 4.5 (the release
        applies it to every xyz rate)."""
        preset = cls(
            means_lr_init=1.4e-4,
            means_lr_final=1.4e-6,
            f_dc_lr_init=5e-3,
            f_dc_lr_final=3e-3,
            opacity_lr_init=5e-2,
            opacity_lr_final=5e-2,
            scales_lr_init=5e-3,
            scales_lr_final=5e-4,
            quats_lr_init=1e-3,
            quats_lr_final=2e-4,
            max_steps=500,
        )
        return replace(preset, **overrides)  # type: ignore[arg-type]

    def lr_range(self, name: str) -> tuple[float, float]:
        """(lr_init, lr_final) of parameter group ``name``, spatial scale applied to ``means``."""
        table = {
            "means": (self.means_lr_init * self.spatial_lr_scale, self.means_lr_final * self.spatial_lr_scale),
            "f_dc": (self.f_dc_lr_init, self.f_dc_lr_final),
            "log_scales": (self.scales_lr_init, self.scales_lr_final),
            "opacity_logits": (self.opacity_lr_init, self.opacity_lr_final),
            "quats": (self.quats_lr_init, self.quats_lr_final),
        }
        return table[name]


def log_linear_lr(step: int, lr_init: float, lr_final: float, max_steps: int) -> float:
    """exp((1−τ)·ln lr_init + τ·ln lr_final), τ = clip(step / max_steps, 0, 1) (3DGS schedule).

    Equal endpoints give that constant exactly; a zero endpoint gives 0 (a frozen rate).
    """
    if lr_init == lr_final:
        return float(lr_init)
    if lr_init <= 0.0 or lr_final <= 0.0:
        if lr_init < 0.0 or lr_final < 0.0:
            raise ValueError(f"learning rates must be ≥ 0, got {lr_init} → {lr_final}")
        return 0.0
    tau = min(max(step / max_steps, 0.0), 1.0)
    return math.exp((1.0 - tau) * math.log(lr_init) + tau * math.log(lr_final))


def make_optimizer(splats: GaussianSplats, config: SplatOptimConfig = SplatOptimConfig()) -> torch.optim.Adam:
    """Adam with one group per splat parameter, ``group["name"]`` = the parameter's name.

    Rates are those of step 0; call ``update_learning_rates`` at the start of every iteration.
    Frozen groups carry ``group["frozen"] = True`` and lr 0.
    """
    groups = []
    for name in PARAM_NAMES:
        frozen = name in config.frozen
        lr = 0.0 if frozen else config.lr_range(name)[0]
        groups.append({"params": [splats.params[name]], "lr": lr, "name": name, "frozen": frozen})
    return torch.optim.Adam(groups, lr=0.0, betas=config.betas, eps=config.eps)


def update_learning_rates(optimizer: torch.optim.Optimizer, step: int, config: SplatOptimConfig) -> dict[str, float]:
    """Set every named group's lr for ``step`` (0 for frozen groups); returns name → lr."""
    rates: dict[str, float] = {}
    for group in optimizer.param_groups:
        name = group.get("name")
        if name not in PARAM_NAMES:
            continue
        lr_init, lr_final = config.lr_range(name)
        lr = 0.0 if group.get("frozen", False) else log_linear_lr(step, lr_init, lr_final, config.max_steps)
        group["lr"] = lr
        rates[name] = lr
    return rates


def drop_frozen_grads(optimizer: torch.optim.Optimizer) -> None:
    """Set the gradients of frozen groups to None so Adam skips them entirely (no moment
    drift, no NaN leaking through an lr-0 update). Call between ``backward()`` and ``step()``."""
    for group in optimizer.param_groups:
        if group.get("frozen", False):
            for param in group["params"]:
                param.grad = None


def zero_rows(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer,
    rows: Tensor,
    names: tuple[str, ...] = ("means",),
) -> None:
    """Hold ``rows`` ((N,) bool) of the named parameters exactly fixed in the coming step.

    Zeroes those rows' gradients and Adam moments: with m = v = 0 Adam's update is exactly 0.
    This is the "freeze face xyz" option (docs/official-code.md §7.13: the 1e8 regulariser weights
    in effect do this): call with ``rows=splats.face_mask`` between ``backward()`` and ``step()``.
    """
    for name in names:
        param = splats.params[name]
        if param.grad is not None:
            param.grad[rows] = 0.0
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][rows] = 0.0
