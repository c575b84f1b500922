"""Masked densification and pruning of the splat set (docs/method.md §4; docs/official-code.md §3.3, §7.7–7.8).

Two layers, as in gsplat's ``strategy/default.py`` over ``strategy/ops.py`` (read for the
pattern, written anew here):

* **Primitives** on tensors + Adam state, each taking a boolean row selection:
  ``duplicate``, ``split``, ``remove``, ``reset_opacity``. They keep every parameter, Adam's
  ``exp_avg``/``exp_avg_sq``, the parameter's pending ``.grad``, the per-splat buffers
  (``face_mask``, ``vertex_index``, ``anchors``) and optional caller statistics aligned:
  kept rows keep their values, moments and gradients bit for bit and in the same order; removed
  rows are dropped; new rows are appended with zero moments, zero gradient and the buffers of a
  free splat (a template vertex binds exactly one splat, so copies are never bound).
  An empty selection touches nothing: tensors are rebuilt only when rows really change. The
  release rebuilt every parameter every 100 iterations in its prune-below-face step even when
  nothing was pruned; the fresh tensors had no ``.grad``, so the following ``optimizer.step()``
  silently updated nothing 29 times per run (docs/official-code.md §3.3). Here the pending gradient
  is carried over, so the step after a topology change still updates the kept rows.
* **Policy**: ``MaskedDensifier`` decides when and what, from ``MaskedDensifyConfig`` (and
  ``LatePruneConfig``), and never selects a face splat (``& ~face_mask`` on every selection),
  so face rows survive bit-identical, in order. Unlike the release, the opacity reset writes
  only the selected (free) rows: the release wrote σ(o) as a logit into face rows, making every
  face opacity σ(σ(o)) after each reset — we do not reproduce that (docs/method.md §4).
  Gradient statistics are accumulated over ALL views of a batch (the release used only the last
  of its 4 views, docs/official-code.md §7.8).

Written by hand: all of the above (no maintained library offers masked densification); the
late "disconnected splat" pruning on top of scipy's cKDTree and sparse connected components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from arc2avatar.splats.model import FREE_VERTEX_INDEX, PARAM_NAMES, GaussianSplats, quat_to_rotmat

# World z is up (arc2avatar.cameras.model): "below the face" compares this coordinate.
_UP_AXIS = 2
# Adam state entries that hold one row per splat (torch.optim.Adam; amsgrad adds the third).
_MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


# =============================================================================== primitives
def _swap_parameter(
    optimizer: torch.optim.Optimizer | None,
    old: nn.Parameter,
    new: nn.Parameter,
    rows_fn: Callable[[Tensor], Tensor],
) -> None:
    """Point the optimiser's group and state at ``new``; per-row state goes through ``rows_fn``."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        for i, param in enumerate(group["params"]):
            if param is old:
                group["params"][i] = new
                state = optimizer.state.pop(old, None)
                if state is not None:
                    for key in _MOMENT_KEYS:
                        if key in state:
                            state[key] = rows_fn(state[key])
                    optimizer.state[new] = state
                return
    raise ValueError(
        "the optimiser does not hold this splat parameter: was it built for another splat set, "
        "or before GaussianSplats.to()/select()? Build it with make_optimizer(splats, config)."
    )


def _replace_rows(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer | None,
    keep_n: Tensor,
    new_params: dict[str, Tensor],
    extras: dict[str, Tensor] | None,
) -> None:
    """Rows ← [rows[keep_n]; new rows]; moments, grads and stats of new rows are zero."""
    num_new = int(new_params["means"].shape[0])
    keep_idx = torch.nonzero(keep_n).squeeze(1)  # once; index_select beats repeated bool masks

    def rows_fn(tensor: Tensor) -> Tensor:
        pad = tensor.new_zeros((num_new, *tensor.shape[1:]))
        return torch.cat([tensor.index_select(0, keep_idx.to(tensor.device)), pad])

    for name in PARAM_NAMES:
        old = splats.params[name]
        kept = old.detach().index_select(0, keep_idx)
        data = torch.cat([kept, new_params[name].detach().to(old.dtype)])
        new = nn.Parameter(data, requires_grad=old.requires_grad)
        if old.grad is not None:
            new.grad = rows_fn(old.grad)
        _swap_parameter(optimizer, old, new, rows_fn)
        splats.params[name] = new

    device = splats.face_mask.device
    splats.face_mask = torch.cat(
        [splats.face_mask.index_select(0, keep_idx), torch.zeros(num_new, dtype=torch.bool, device=device)]
    )
    splats.vertex_index = torch.cat(
        [
            splats.vertex_index.index_select(0, keep_idx),
            torch.full((num_new,), FREE_VERTEX_INDEX, dtype=torch.int64, device=device),
        ]
    )
    splats.anchors = rows_fn(splats.anchors)
    if extras is not None:
        for key in list(extras):
            extras[key] = rows_fn(extras[key])
    splats.check_aligned()


def _check_selection(splats: GaussianSplats, select: Tensor) -> Tensor:
    if select.dtype != torch.bool or tuple(select.shape) != (splats.num_splats,):
        raise ValueError(
            f"selection must be a ({splats.num_splats},) bool mask, got {select.dtype} {tuple(select.shape)}"
        )
    return select.to(splats.device)


def duplicate(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer | None,
    select: Tensor,
    extras: dict[str, Tensor] | None = None,
) -> int:
    """Append an identical copy of each selected row (3DGS clone). Returns the rows added.

    Args:
        splats: modified in place (new ``nn.Parameter`` objects, also swapped into ``optimizer``).
        optimizer: Adam built by ``make_optimizer`` (or ``None``); copies start with zero moments.
        select: (N,) bool rows to copy.
        extras: optional name → (N, ...) per-splat statistics, updated in place (copies: zeros).
    """
    select = _check_selection(splats, select)
    count = int(select.sum().item())
    if count == 0:
        return 0
    new_params = {name: p.detach()[select] for name, p in splats.params.items()}
    keep_all = torch.ones(splats.num_splats, dtype=torch.bool, device=splats.device)
    _replace_rows(splats, optimizer, keep_all, new_params, extras)
    return count


def split(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer | None,
    select: Tensor,
    generator: torch.Generator | None = None,
    n: int = 2,
    scale_factor: float = 1.6,
    extras: dict[str, Tensor] | None = None,
) -> int:
    """Replace each selected splat by ``n`` children (3DGS split). Returns the children added.

    Children's centres are drawn from the parent's Gaussian, N(mean, R·diag(scale²)·Rᵀ); their
    scales are the parent's / ``scale_factor`` (3DGS: 0.8·n = 1.6 for n = 2); other parameters
    are copied. Parents are removed; children are appended after the kept rows, sample-major.

    Args:
        generator: draws the child offsets (any device; offsets are moved to the splats').
        n: children per parent.
        scale_factor: divisor of the parent's scales.
        extras: optional per-splat statistics, updated in place (children: zeros).
    """
    select = _check_selection(splats, select)
    count = int(select.sum().item())
    if count == 0:
        return 0
    params = {name: p.detach() for name, p in splats.params.items()}
    scales_k3 = torch.exp(params["log_scales"][select])
    rotmats_k33 = quat_to_rotmat(params["quats"][select])
    gen_device = generator.device if generator is not None else splats.device
    noise_nk3 = torch.randn((n, count, 3), generator=generator, device=gen_device).to(scales_k3) * scales_k3
    offsets_nk3 = torch.einsum("kij,nkj->nki", rotmats_k33, noise_nk3)
    children = {
        "means": (params["means"][select][None] + offsets_nk3).reshape(n * count, 3),
        "log_scales": torch.log(scales_k3 / scale_factor).repeat(n, 1),
    }
    for name in ("f_dc", "opacity_logits", "quats"):
        rows = params[name][select]
        children[name] = rows.repeat(n, *([1] * (rows.dim() - 1)))
    _replace_rows(splats, optimizer, ~select, children, extras)
    return n * count


def remove(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer | None,
    select: Tensor,
    extras: dict[str, Tensor] | None = None,
) -> int:
    """Drop the selected rows (with their moments, gradients and buffers). Returns the count."""
    select = _check_selection(splats, select)
    count = int(select.sum().item())
    if count == 0:
        return 0
    empty = {name: p.detach()[:0] for name, p in splats.params.items()}
    _replace_rows(splats, optimizer, ~select, empty, extras)
    return count


def reset_opacity(
    splats: GaussianSplats,
    optimizer: torch.optim.Optimizer | None,
    select: Tensor,
    max_value: float = 0.2,
) -> int:
    """Cap the opacity of the selected rows at ``max_value`` (3DGS reset). Returns the count.

    Works in logit space, in place: o ← min(o, logit(max_value)) on selected rows only, so rows
    already below the cap and all unselected rows keep their exact bits. Adam moments and the
    pending gradient of the selected rows are zeroed (the next step leaves them at the cap);
    other rows keep theirs. No tensor is rebuilt, so nothing is skipped.
    """
    select = _check_selection(splats, select)
    count = int(select.sum().item())
    if count == 0:
        return 0
    param = splats.params["opacity_logits"]
    cap = torch.logit(torch.tensor(max_value, dtype=param.dtype, device=param.device))
    with torch.no_grad():
        param[select] = torch.minimum(param[select], cap)
        if param.grad is not None:
            param.grad[select] = 0.0
    if optimizer is not None:
        state = optimizer.state.get(param, {})
        for key in _MOMENT_KEYS:
            if key in state:
                state[key][select] = 0.0
    return count


# =============================================================================== late pruning
def largest_component_mask(points_n3: np.ndarray, radius: float) -> np.ndarray:
    """(N,) bool: points in the largest connected component of the graph joining every pair
    closer than ``radius`` (scipy cKDTree.query_pairs + sparse connected_components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = points_n3.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    pairs_p2 = cKDTree(points_n3).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs_p2), dtype=np.int8), (pairs_p2[:, 0], pairs_p2[:, 1])), shape=(n, n))
    _, labels_n = connected_components(graph, directed=False)
    return labels_n == np.argmax(np.bincount(labels_n))


def knn_outlier_mask(points_n3: np.ndarray, k: int, n_std: float) -> np.ndarray:
    """(N,) bool: points whose mean distance to their k nearest neighbours exceeds
    mean + n_std·std of that quantity over all points (statistical outlier removal)."""
    from scipy.spatial import cKDTree

    n = points_n3.shape[0]
    if n <= k:
        return np.zeros(n, dtype=bool)
    distances_nk, _ = cKDTree(points_n3).query(points_n3, k=k + 1)
    mean_knn_n = distances_nk[:, 1:].mean(axis=1)
    return mean_knn_n > mean_knn_n.mean() + n_std * mean_knn_n.std()


# =============================================================================== policy
@dataclass(frozen=True)
class LatePruneConfig:
    """Late pruning of free splats (docs/method.md §4 ``paper``; paper E.4; absent from the release).

    Attributes:
        start_fraction: first eligible iteration as a fraction of the run: 0.85.
        disconnected_every: iterations between disconnected-splat prunes: 200.
        connectivity_radius: the radius graph joins splats closer than this, world units (ours:
            0.1, 5% of the 2-unit template height; a relative radius computed from splat
            spacing collapsed when clones sit exactly on their parents); ``None`` disables it.
        knn_neighbours: k of the k-NN outlier test (ours: 10).
        knn_std_factor: outlier if mean k-NN distance > mean + this × std over free splats
            (``None``, the default, disables the test: stacks of clones at one position skew the
            statistics so that ordinary hair splats were flagged).
        targeted_every: iterations between opacity/size prunes: 500.
        min_opacity: remove free splats with opacity below this: 0.05.
        max_scale: remove free splats whose largest std exceeds this, world units: 0.2.
    """

    start_fraction: float = 0.85
    disconnected_every: int = 200
    connectivity_radius: float | None = 0.1
    knn_neighbours: int = 10
    knn_std_factor: float | None = None
    targeted_every: int = 500
    min_opacity: float = 0.05
    max_scale: float = 0.2


@dataclass(frozen=True)
class MaskedDensifyConfig:
    """When and how free (non-face) splats are densified, pruned and reset (docs/method.md §4;
    docs/official-code.md §3.3, §8). Intervals are in iterations; events fire at iterations that are
    multiples of the interval inside [from, until].

    Attributes:
        densify_every, densify_from, densify_until: clone/split/prune schedule: 200, 200, 2800.
        grad_threshold: clone/split when the mean over visits of the NDC screen-space gradient
            norm is ≥ this: 0.005 (accumulated over all views of each batch).
        percent_dense: clone if max scale ≤ percent_dense·scene_extent, else split: 0.5.
        scene_extent: world units, 4.5 (the default camera radius).
        split_children: children per split: 2.
        split_scale_factor: children's scale divisor: 1.6 (3DGS: 0.8·2).
        prune_min_opacity: prune free splats with opacity below this: 0.2.
        prune_max_screen_radius: prune free splats whose largest screen radius since the last
            densification exceeds this, pixels at the render resolution: 20.
        prune_max_world_scale_fraction: prune free splats whose largest std exceeds this ×
            scene_extent: 0.1 (→ 0.45 world units).
        reset_every, reset_from, reset_until: opacity-reset schedule: 400, 400, 2800.
        reset_max_opacity: free opacities are capped at this: 0.2.
        prune_below_face_every: remove free splats whose z (up) is below the lowest face splat,
            every this many iterations (``release`` preset: 100; ``paper``: ``None`` = off).
        prune_below_face_until: last iteration of that rule: 2900 (release: while it < 3000).
        late: late pruning (``paper``), or ``None`` (``release``).
    """

    densify_every: int = 200
    densify_from: int = 200
    densify_until: int = 2800
    grad_threshold: float = 0.005
    percent_dense: float = 0.5
    scene_extent: float = 4.5
    split_children: int = 2
    split_scale_factor: float = 1.6
    prune_min_opacity: float = 0.2
    prune_max_screen_radius: float = 20.0
    prune_max_world_scale_fraction: float = 0.1
    reset_every: int = 400
    reset_from: int = 400
    reset_until: int = 2800
    reset_max_opacity: float = 0.2
    prune_below_face_every: int | None = None
    prune_below_face_until: int = 2900
    late: LatePruneConfig | None = field(default_factory=LatePruneConfig)

    @classmethod
    def paper(cls) -> "MaskedDensifyConfig":
        """Spec §4 ``paper``: no prune-below-face, late pruning on."""
        return cls()

    @classmethod
    def release(cls) -> "MaskedDensifyConfig":
        """Spec §4 ``release``: prune-below-face every 100 iterations, no late pruning."""
        return cls(prune_below_face_every=100, late=None)


def _fires(iteration: int, every: int | None, start: int, until: int) -> bool:
    return every is not None and every > 0 and start <= iteration <= until and iteration % every == 0


@dataclass
class DensifyReport:
    """What one ``MaskedDensifier.step`` did: the events that fired (``"densify"``,
    ``"reset"``, ``"prune_below_face"``, ``"disconnected"``, ``"late"``), row counts, and the
    splat count after it."""

    iteration: int
    events: list[str] = field(default_factory=list)
    cloned: int = 0
    split: int = 0
    pruned: int = 0
    reset: int = 0
    pruned_below_face: int = 0
    pruned_disconnected: int = 0
    pruned_late: int = 0
    num_splats: int = 0

    @property
    def topology_changed(self) -> bool:
        counted = ("cloned", "split", "pruned", "pruned_below_face", "pruned_disconnected", "pruned_late")
        return any(getattr(self, name) for name in counted)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MaskedDensifier:
    """The masked 3DGS policy: statistics from renders, then scheduled primitives on free splats.

    Per iteration: render, ``backward()``, ``accumulate(...)`` with the renderer's screen-space
    gradient and radii, then ``step(iteration, ...)``, then ``optimizer.step()``.
    The statistics (gradient-norm sum, visit count, max screen radius; (N,) each) are kept
    aligned through every topology change and reset after each densification event.

    Args:
        config: thresholds and schedules.
        max_steps: iterations of the whole run (``SplatOptimConfig.max_steps``), for late pruning.
    """

    def __init__(self, config: MaskedDensifyConfig = MaskedDensifyConfig(), max_steps: int = 7000) -> None:
        self.config = config
        self.max_steps = max_steps
        self.stats: dict[str, Tensor] | None = None  # grad_sum, visits, max_radii: (N,) float32

    # ------------------------------------------------------------------------- statistics
    def reset_statistics(self, num_splats: int, device: torch.device | str) -> None:
        """Zero the statistics for ``num_splats`` rows."""
        self.stats = {
            key: torch.zeros(num_splats, dtype=torch.float32, device=device)
            for key in ("grad_sum", "visits", "max_radii")
        }

    def accumulate(self, means2d_grad: Tensor, radii: Tensor, width: int, height: int) -> None:
        """Add one batch of views to the statistics.

        Args:
            means2d_grad: (C, N, 2) gradient of the loss w.r.t. the projected centres, in
                PIXEL units (gsplat's ``meta["means2d"].grad``); converted to NDC units by
                × (W/2, H/2). Every view counts, not only the last.
            radii: (C, N) or (C, N, 2) screen radii in pixels (gsplat ≥ 1.5 gives two); a view
                counts as a visit where the radius is > 0.
            width, height: image size of those renders, pixels.
        """
        grad_cn2 = means2d_grad.detach().float()
        if grad_cn2.dim() == 2:
            grad_cn2 = grad_cn2[None]
        radii_cn = radii.detach().float()
        if radii_cn.dim() == grad_cn2.dim():  # (C, N, 2) radii
            radii_cn = radii_cn.amax(dim=-1)
        if radii_cn.dim() == 1:
            radii_cn = radii_cn[None]
        num_splats = int(grad_cn2.shape[1])
        if tuple(radii_cn.shape) != tuple(grad_cn2.shape[:2]):
            raise ValueError(f"radii {tuple(radii.shape)} do not match means2d_grad {tuple(means2d_grad.shape)}")
        if self.stats is None:
            self.reset_statistics(num_splats, grad_cn2.device)
        assert self.stats is not None
        if int(self.stats["grad_sum"].shape[0]) != num_splats:
            raise ValueError(
                f"densifier statistics hold {self.stats['grad_sum'].shape[0]} splats but this render has {num_splats}: "
                "the splat set changed outside the densifier; call reset_statistics()"
            )
        to_ndc = torch.tensor([width / 2.0, height / 2.0], device=grad_cn2.device)
        norms_cn = torch.linalg.vector_norm(grad_cn2 * to_ndc, dim=-1)
        visible_cn = radii_cn > 0
        self.stats["grad_sum"] += torch.where(visible_cn, norms_cn, torch.zeros_like(norms_cn)).sum(0)
        self.stats["visits"] += visible_cn.sum(0).float()
        self.stats["max_radii"] = torch.maximum(self.stats["max_radii"], radii_cn.amax(dim=0))

    def _stats_for(self, splats: GaussianSplats) -> dict[str, Tensor]:
        if self.stats is None:
            self.reset_statistics(splats.num_splats, splats.device)
        assert self.stats is not None
        if int(self.stats["grad_sum"].shape[0]) != splats.num_splats:
            raise ValueError(
                f"densifier statistics hold {self.stats['grad_sum'].shape[0]} splats, the set has "
                f"{splats.num_splats}: it changed outside the densifier; call reset_statistics()"
            )
        return self.stats

    # ------------------------------------------------------------------------- schedule
    def step(
        self,
        iteration: int,
        splats: GaussianSplats,
        optimizer: torch.optim.Optimizer | None,
        generator: torch.Generator | None = None,
    ) -> DensifyReport:
        """Run whatever is scheduled at ``iteration``, in the release's order: densify + prune,
        opacity reset, prune-below-face, then late pruning. Face splats are never selected."""
        cfg = self.config
        report = DensifyReport(iteration=iteration)
        stats = self._stats_for(splats)

        if _fires(iteration, cfg.densify_every, cfg.densify_from, cfg.densify_until):
            report.events.append("densify")
            self._densify_and_prune(splats, optimizer, generator, stats, report)
            self.reset_statistics(splats.num_splats, splats.device)
            stats = self._stats_for(splats)
        if _fires(iteration, cfg.reset_every, cfg.reset_from, cfg.reset_until):
            report.events.append("reset")
            report.reset = reset_opacity(splats, optimizer, ~splats.face_mask, cfg.reset_max_opacity)
        if _fires(iteration, cfg.prune_below_face_every, 1, cfg.prune_below_face_until) and splats.num_face > 0:
            report.events.append("prune_below_face")
            up = splats.means.detach()[:, _UP_AXIS]
            lowest_face = up[splats.face_mask].min()
            report.pruned_below_face = remove(splats, optimizer, (up < lowest_face) & ~splats.face_mask, stats)
        if cfg.late is not None:
            self._late_prune(iteration, splats, optimizer, stats, report)
        report.num_splats = splats.num_splats
        return report

    def _densify_and_prune(
        self,
        splats: GaussianSplats,
        optimizer: torch.optim.Optimizer | None,
        generator: torch.Generator | None,
        stats: dict[str, Tensor],
        report: DensifyReport,
    ) -> None:
        cfg = self.config
        free = ~splats.face_mask
        mean_grad = stats["grad_sum"] / stats["visits"].clamp_min(1.0)
        max_scale = splats.scales.detach().amax(dim=-1)
        big = max_scale > cfg.percent_dense * cfg.scene_extent
        hot = free & (mean_grad >= cfg.grad_threshold)
        clone_sel, split_sel = hot & ~big, hot & big

        report.cloned = duplicate(splats, optimizer, clone_sel, stats)
        split_sel = torch.cat([split_sel, torch.zeros(report.cloned, dtype=torch.bool, device=splats.device)])
        report.split = split(
            splats, optimizer, split_sel, generator, cfg.split_children, cfg.split_scale_factor, stats
        )

        # Prune on the densified set; statistics of new rows are zero (the release's radius
        # test uses the radii seen since the last densification).
        too_faint = splats.opacities.detach() < cfg.prune_min_opacity
        too_big_screen = stats["max_radii"] > cfg.prune_max_screen_radius
        too_big_world = splats.scales.detach().amax(dim=-1) > cfg.prune_max_world_scale_fraction * cfg.scene_extent
        prune_sel = ~splats.face_mask & (too_faint | too_big_screen | too_big_world)
        report.pruned = remove(splats, optimizer, prune_sel, stats)

    def _late_prune(
        self,
        iteration: int,
        splats: GaussianSplats,
        optimizer: torch.optim.Optimizer | None,
        stats: dict[str, Tensor],
        report: DensifyReport,
    ) -> None:
        late = self.config.late
        assert late is not None
        start = math.ceil(late.start_fraction * self.max_steps)
        if _fires(iteration, late.disconnected_every, start, self.max_steps):
            report.events.append("disconnected")
            outliers = torch.from_numpy(disconnected_rows(splats, late)).to(splats.device)
            report.pruned_disconnected = remove(splats, optimizer, outliers & ~splats.face_mask, stats)
        if _fires(iteration, late.targeted_every, start, self.max_steps):
            report.events.append("late")
            faint = splats.opacities.detach() < late.min_opacity
            large = splats.scales.detach().amax(dim=-1) > late.max_scale
            report.pruned_late = remove(splats, optimizer, (faint | large) & ~splats.face_mask, stats)


def disconnected_rows(splats: GaussianSplats, late: LatePruneConfig) -> np.ndarray:
    """(N,) bool: free splats outside the largest radius-graph component, or k-NN distance
    outliers (docs/method.md §4 late pruning). Face splats are never flagged.

    The k-NN statistics are those of the FREE splats (their distances to their nearest splats of
    any kind): the face is subdivided more densely than the rest of the head, and statistics over
    all splats flagged most of the sparser hair and neck as outliers (seen in our oracle runs).
    """
    from scipy.spatial import cKDTree

    points_n3 = splats.means.detach().cpu().double().numpy()
    free_n = (~splats.face_mask).cpu().numpy()
    flagged = np.zeros(points_n3.shape[0], dtype=bool)
    num_free = int(free_n.sum())
    if num_free == 0 or points_n3.shape[0] < 2:
        return flagged
    k = min(late.knn_neighbours, points_n3.shape[0] - 1)
    distances_fk, _ = cKDTree(points_n3).query(points_n3[free_n], k=k + 1)
    distances_fk = distances_fk[:, 1:]  # drop the splat itself
    mean_knn_f = distances_fk.mean(axis=1)
    if late.connectivity_radius is not None and late.connectivity_radius > 0:
        flagged |= ~largest_component_mask(points_n3, late.connectivity_radius)
    if late.knn_std_factor is not None and num_free > k:
        outliers_f = mean_knn_f > mean_knn_f.mean() + late.knn_std_factor * mean_knn_f.std()
        flagged[np.flatnonzero(free_n)[outliers_f]] = True
    return flagged & free_n
