"""The Gaussian splat set of an avatar, with its face binding stored beside the data (docs/method.md §4).

Parameters are raw (unconstrained) tensors, one ``torch.nn.Parameter`` each, named as the
optimiser groups are (``arc2avatar.splats.optim``):

========================  =======  ==================================================
``means``                 (N, 3)   centres, world frame (z up, face toward +y)
``f_dc``                  (N, 3)   SH degree-0 (DC) colour coefficient
``log_scales``            (N, 3)   log standard deviations along the local axes
``opacity_logits``        (N,)     logit of the opacity
``quats``                 (N, 4)   rotation quaternion (w, x, y, z), stored unnormalised
========================  =======  ==================================================

The activated values the renderer reads have fixed names: ``means``, ``colors``
(clamp_min(0.28209479·f_dc + 0.5, 0), docs/official-code.md §3.1), ``scales`` (exp),
``opacities`` (sigmoid) and ``rotations`` (unit quaternions).

Per-splat buffers travel WITH the rows, so the face correspondence never depends on row order
(docs/official-code.md §7.6): ``face_mask`` (N,) bool — the splat is bound to a template vertex and is
never densified, pruned or opacity-reset; ``vertex_index`` (N,) int64 — that vertex's index in
the upsampled template, −1 for free splats; ``anchors`` (N, 3) — the rest position of a face
splat for the position regulariser, 0 for free splats. Every primitive in
``arc2avatar.splats.densify`` keeps them aligned.

Written by hand: the container and its invariants (no library has bound splats with aligned
buffers); the 3DGS initial scale rule (mean distance to the k nearest neighbours) on top of
scipy's cKDTree; a 10-line quaternion→matrix helper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

# The zeroth real spherical-harmonic constant 1/(2·sqrt(pi)): rgb = SH_C0·f_dc + 0.5.
SH_C0 = 0.28209479177387814

PARAM_NAMES: tuple[str, ...] = ("means", "f_dc", "log_scales", "opacity_logits", "quats")
BUFFER_NAMES: tuple[str, ...] = ("face_mask", "vertex_index", "anchors")
# Trailing shape of each per-splat tensor (rows are the leading dimension).
_TRAILING_SHAPES: dict[str, tuple[int, ...]] = {
    "means": (3,),
    "f_dc": (3,),
    "log_scales": (3,),
    "opacity_logits": (),
    "quats": (4,),
    "face_mask": (),
    "vertex_index": (),
    "anchors": (3,),
}
_BUFFER_DTYPES: dict[str, torch.dtype] = {
    "face_mask": torch.bool,
    "vertex_index": torch.int64,
    "anchors": torch.float32,
}
FREE_VERTEX_INDEX = -1  # ``vertex_index`` of a splat bound to no template vertex


@dataclass(frozen=True)
class SplatInitConfig:
    """How ``GaussianSplats.from_template`` initialises one splat per template vertex.

    Attributes:
        knn_neighbours: k of the 3DGS initial-scale rule: a splat's initial std (all three
            axes) is sqrt(mean squared distance to its k nearest vertices) (3DGS
            ``create_from_pcd``; docs/official-code.md §3.1 uses k = 3).
        min_scale: floor on that std, world units (guards duplicate vertices; 3DGS clamps the
            squared distance at 1e-7, i.e. std ≈ 3.2e-4).
        opacity: initial opacity of face splats and of free splats inside ``longer_mask``
            (ours: the released values come from an unreadable checkpoint, docs/official-code.md
            §3.1; the mean-face fit, docs/method.md §6, optimises it anyway).
        outside_longer_mask_opacity: initial opacity of splats outside ``longer_mask``
            (docs/official-code.md §3.1 step 4 used 0.25; ours 0.5: 0.25 sits just above the 0.2
            prune threshold of docs/method.md §4, and in our oracle runs the guidance pushed the whole
            free head below it within the first densification interval).
    """

    knn_neighbours: int = 3
    min_scale: float = 3.2e-4
    opacity: float = 0.9
    outside_longer_mask_opacity: float = 0.5

    def __post_init__(self) -> None:
        if self.knn_neighbours < 1:
            raise ValueError(f"splat_init.knn_neighbours must be ≥ 1 (got {self.knn_neighbours})")
        if not self.min_scale > 0:
            raise ValueError(f"splat_init.min_scale must be > 0 (got {self.min_scale})")
        for name in ("opacity", "outside_longer_mask_opacity"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"splat_init.{name} must be in (0, 1) (got {getattr(self, name)})")


def quat_to_rotmat(quats_n4: Tensor) -> Tensor:
    """(N, 3, 3) rotation matrices from (N, 4) quaternions (w, x, y, z); normalised here."""
    w, x, y, z = torch.nn.functional.normalize(quats_n4, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*quats_n4.shape[:-1], 3, 3)


def rgb_to_f_dc(rgb: Tensor) -> Tensor:
    """Inverse of the colour activation on [0, 1]: f_dc = (rgb − 0.5) / SH_C0."""
    return (rgb - 0.5) / SH_C0


def knn_initial_scales(points_n3: np.ndarray, k: int, min_scale: float) -> np.ndarray:
    """(N,) float32 std per point: sqrt(mean squared distance to its k nearest other points)."""
    from scipy.spatial import cKDTree

    n = points_n3.shape[0]
    if n < 2:
        return np.full((n,), min_scale, dtype=np.float32)
    k_eff = min(k, n - 1)
    distances_nk, _ = cKDTree(points_n3).query(points_n3, k=k_eff + 1)  # column 0 is the point
    mean_sq = np.mean(np.square(distances_nk[:, 1:]), axis=1)
    return np.maximum(np.sqrt(mean_sq), min_scale).astype(np.float32)


class GaussianSplats:
    """N Gaussians: raw parameters (``params``) plus aligned per-splat buffers.

    Construct with ``from_template`` (one splat per template vertex), ``from_tensors`` (a saved
    state) or directly from tensors. The parameters are ``nn.Parameter`` objects in the dict
    ``params``; ``arc2avatar.splats.densify`` replaces them (and the optimiser's references)
    when rows are added or removed, so read them through this object, never keep a stale
    reference across a densification step.

    Args:
        params: name → tensor for every name in ``PARAM_NAMES`` (shapes above; float32).
        face_mask: (N,) bool; default all False.
        vertex_index: (N,) int64; default all −1.
        anchors: (N, 3) float32; default zeros.
    """

    def __init__(
        self,
        params: Mapping[str, Tensor],
        face_mask: Tensor | None = None,
        vertex_index: Tensor | None = None,
        anchors: Tensor | None = None,
    ) -> None:
        missing = [name for name in PARAM_NAMES if name not in params]
        if missing:
            raise ValueError(f"GaussianSplats needs parameters {missing}")
        self.params: dict[str, nn.Parameter] = {
            name: value if isinstance(value, nn.Parameter) else nn.Parameter(value.detach())
            for name, value in ((name, params[name]) for name in PARAM_NAMES)
        }
        n = int(self.params["means"].shape[0])
        device = self.params["means"].device
        self.face_mask: Tensor = (
            torch.zeros(n, dtype=torch.bool, device=device) if face_mask is None else face_mask
        )
        self.vertex_index: Tensor = (
            torch.full((n,), FREE_VERTEX_INDEX, dtype=torch.int64, device=device)
            if vertex_index is None
            else vertex_index
        )
        self.anchors: Tensor = (
            torch.zeros((n, 3), dtype=torch.float32, device=device) if anchors is None else anchors
        )
        self.check_aligned()

    # ----------------------------------------------------------------------------- invariants
    def check_aligned(self) -> None:
        """Raise ``ValueError`` unless every parameter and buffer has N rows of the right shape."""
        n = self.num_splats
        for name, tensor in {**self.params, **self.buffers()}.items():
            expected = (n, *_TRAILING_SHAPES[name])
            if tuple(tensor.shape) != expected:
                raise ValueError(f"splat tensor {name!r} has shape {tuple(tensor.shape)}, expected {expected}")
        for name, dtype in _BUFFER_DTYPES.items():
            if getattr(self, name).dtype != dtype:
                raise ValueError(f"splat buffer {name!r} has dtype {getattr(self, name).dtype}, expected {dtype}")

    def buffers(self) -> dict[str, Tensor]:
        """The per-splat buffers by name: ``face_mask``, ``vertex_index``, ``anchors``."""
        return {name: getattr(self, name) for name in BUFFER_NAMES}

    # ----------------------------------------------------------------------------- sizes
    @property
    def num_splats(self) -> int:
        return int(self.params["means"].shape[0])

    @property
    def num_face(self) -> int:
        return int(self.face_mask.sum().item())

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    def __len__(self) -> int:
        return self.num_splats

    def __repr__(self) -> str:
        return f"GaussianSplats(num_splats={self.num_splats}, num_face={self.num_face}, device={self.device})"

    # ----------------------------------------------------------------------------- activations
    @property
    def means(self) -> Tensor:
        """(N, 3) centres, world frame (the parameter itself: gradients flow)."""
        return self.params["means"]

    @property
    def colors(self) -> Tensor:
        """(N, 3) RGB = clamp_min(SH_C0·f_dc + 0.5, 0) (docs/official-code.md §3.1; no upper clamp)."""
        return torch.clamp_min(SH_C0 * self.params["f_dc"] + 0.5, 0.0)

    @property
    def scales(self) -> Tensor:
        """(N, 3) standard deviations along the local axes, world units (exp of log_scales)."""
        return torch.exp(self.params["log_scales"])

    @property
    def opacities(self) -> Tensor:
        """(N,) opacities in (0, 1) (sigmoid of the logits)."""
        return torch.sigmoid(self.params["opacity_logits"])

    @property
    def rotations(self) -> Tensor:
        """(N, 4) unit quaternions (w, x, y, z)."""
        return torch.nn.functional.normalize(self.params["quats"], dim=-1)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_template(
        cls,
        vertices: Tensor,
        colors: Tensor,
        face_mask: Tensor,
        *,
        config: SplatInitConfig = SplatInitConfig(),
        longer_mask: Tensor | None = None,
    ) -> "GaussianSplats":
        """One splat per upsampled template vertex (docs/method.md §4; docs/official-code.md §3.1).

        Face vertices become face splats bound by index (``vertex_index`` = the vertex,
        ``anchors`` = its position); the other vertices become free splats (index −1, anchor 0).
        Row i is vertex i. Scales follow the 3DGS k-nearest-neighbour rule over all vertices;
        rotations are the identity.

        Args:
            vertices: (V, 3) float neutral vertices, world frame.
            colors: (V, 3) float RGB in [0, 1].
            face_mask: (V,) bool, the face region.
            config: initial scale and opacity rules.
            longer_mask: optional (V,) bool larger region; splats outside it (and outside the
                face) start at ``config.outside_longer_mask_opacity``. ``None`` = the face mask.
        """
        vertices = torch.as_tensor(vertices, dtype=torch.float32)
        v = int(vertices.shape[0])
        colors = torch.as_tensor(colors, dtype=torch.float32)
        face_mask = torch.as_tensor(face_mask, dtype=torch.bool, device=vertices.device)
        if vertices.shape != (v, 3) or colors.shape != (v, 3) or face_mask.shape != (v,):
            raise ValueError(
                f"template shapes disagree: vertices {tuple(vertices.shape)}, colors {tuple(colors.shape)}, "
                f"face_mask {tuple(face_mask.shape)}; expected (V,3), (V,3), (V,)"
            )
        inside = face_mask if longer_mask is None else (torch.as_tensor(longer_mask, dtype=torch.bool) | face_mask)
        scales_v = torch.from_numpy(
            knn_initial_scales(vertices.detach().cpu().double().numpy(), config.knn_neighbours, config.min_scale)
        ).to(vertices.device)
        opacity_v = torch.where(
            inside,
            torch.tensor(config.opacity, device=vertices.device),
            torch.tensor(config.outside_longer_mask_opacity, device=vertices.device),
        )
        quats = torch.zeros((v, 4), dtype=torch.float32, device=vertices.device)
        quats[:, 0] = 1.0
        params = {
            "means": vertices.detach().clone(),
            "f_dc": rgb_to_f_dc(colors.to(vertices.device)),
            "log_scales": torch.log(scales_v)[:, None].expand(v, 3).clone(),
            "opacity_logits": torch.logit(opacity_v.float()),
            "quats": quats,
        }
        vertex_index = torch.where(
            face_mask, torch.arange(v, device=vertices.device), torch.full_like(face_mask, FREE_VERTEX_INDEX, dtype=torch.int64)
        )
        anchors = torch.where(face_mask[:, None], vertices, torch.zeros_like(vertices)).detach().clone()
        return cls(params, face_mask=face_mask.clone(), vertex_index=vertex_index, anchors=anchors)

    def to_tensors(self) -> dict[str, Tensor]:
        """Detached copies of every parameter and buffer by name (``PARAM_NAMES + BUFFER_NAMES``)."""
        out = {name: p.detach().clone() for name, p in self.params.items()}
        out.update({name: b.detach().clone() for name, b in self.buffers().items()})
        return out

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor]) -> "GaussianSplats":
        """Inverse of ``to_tensors``; buffers may be absent (then: all free splats).

        Raises ``ValueError`` naming the missing or misshapen entries.
        """
        missing = [name for name in PARAM_NAMES if name not in tensors]
        if missing:
            raise ValueError(f"missing splat tensors: {', '.join(missing)}")
        params = {name: tensors[name].detach().clone().float() for name in PARAM_NAMES}
        buffers = {name: tensors[name].detach().clone() for name in BUFFER_NAMES if name in tensors}
        return cls(params, **buffers)

    # ----------------------------------------------------------------------------- copies
    def detach_copy(self) -> "GaussianSplats":
        """An independent copy (new leaf parameters, cloned buffers)."""
        return GaussianSplats.from_tensors(self.to_tensors())

    def to(self, device: torch.device | str) -> "GaussianSplats":
        """A copy on ``device`` (new parameters: build the optimiser after moving)."""
        return GaussianSplats.from_tensors({k: v.to(device) for k, v in self.to_tensors().items()})

    def select(self, rows: Tensor) -> "GaussianSplats":
        """A copy holding only ``rows`` ((N,) bool mask or int64 indices), buffers included."""
        return GaussianSplats.from_tensors({k: v[rows] for k, v in self.to_tensors().items()})

    def rebase_anchors(self) -> None:
        """Set the face splats' anchors to their current means (e.g. after the mean-face fit,
        whose positions are the release's anchors, docs/official-code.md §3.1 step 3)."""
        with torch.no_grad():
            self.anchors = torch.where(self.face_mask[:, None], self.means.detach(), self.anchors).clone()
