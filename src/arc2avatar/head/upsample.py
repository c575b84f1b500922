"""Template upsampling with parents (docs/method.md §3; paper E.2; docs/official-code.md §3.1).

The face submesh (triangles whose three vertices are all in ``face_mask``) and the rest of the
head are subdivided separately by midpoint subdivision (each triangle → 4, a new vertex at
every edge midpoint), then merged. Every upsampled vertex records its **parents**: original
vertices and weights with ``upsampled = Σ_k weight_k · original[index_k]``. Because all vertices
made inside one original triangle are convex combinations of its corners, K ≤ 3.

Conventions of the result (``UpsampledHead``):
- Rows 0..V−1 are the original vertices in their original order (each its own parent, weight 1);
  new face vertices follow, then new rest vertices.
- Welding: a vertex is identified by its exact parent combination (dyadic weights, exact in
  float64), so a midpoint on an edge shared by face and rest is one vertex. With equal levels the
  mesh stays closed wherever it was closed. With different levels the finer side has vertices on
  the shared boundary edges that the coarser side lacks: T-junctions. That is acceptable (splats
  do not need a watertight mesh) and documented here.
- Masks: ``face_mask`` is by origin: an original vertex keeps its flag; a new vertex is a face
  vertex iff the face submesh made it (a welded boundary midpoint counts as face). Every other
  region holds a new vertex iff **all** its parents are in the region.
- Colours, expression blendshapes and (for FLAME) skinning weights and pose correctives are
  upsampled through the parents, so expressions commute with upsampling exactly
  (``upsample(deform(v, e)) == deform(upsample(v), e)``). Poses commute only approximately
  (LBS is bilinear in weights and positions); the original rows pose exactly as before.

Written by hand, and why: ``trimesh.remesh.subdivide`` subdivides positions (and can return each
new face's source face) but does not give every vertex its weights over the original vertices,
nor weld two separately subdivided submeshes; the bookkeeping here is a sparse parent matrix
(scipy) carried through each midpoint step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from arc2avatar.head.model import HeadModel


@dataclass(frozen=True)
class UpsampleConfig:
    """Subdivision levels and the vertex counts they aim at (docs/method.md §3, paper E.2).

    Attributes:
        face_levels: midpoint-subdivision rounds of the face submesh (2: ×~16 vertices; what
            ``choose_levels`` picks for the ~5K-vertex FLAME and built-in templates).
        rest_levels: rounds of the rest of the head (1: ×~4).
        face_target_vertices: (low, high) face vertex count for real runs (docs/method.md §3: 40–60K).
        rest_target_vertices: (low, high) non-face vertex count (docs/method.md §3: 20–30K).
        max_levels: the largest level ``choose_levels`` considers.
    """

    face_levels: int = 2
    rest_levels: int = 1
    face_target_vertices: tuple[int, int] = (40_000, 60_000)
    rest_target_vertices: tuple[int, int] = (20_000, 30_000)
    max_levels: int = 5


def blend_rows(values: Tensor, parent_index: Tensor, parent_weight: Tensor) -> Tensor:
    """(V, ...) per-original-vertex values → (V', ...) ``Σ_k weight[:, k]·values[index[:, k]]``.

    ``parent_index`` (V', K) int64 and ``parent_weight`` (V', K) weights; differentiable in
    ``values``; float values only.
    """
    if not values.is_floating_point():
        raise TypeError(f"blend_rows needs floating-point values, got {values.dtype}")
    index = parent_index.to(values.device)
    weight = parent_weight.to(device=values.device, dtype=values.dtype)
    trailing = (1,) * (values.ndim - 1)
    out = weight[:, 0].reshape(-1, *trailing) * values[index[:, 0]]
    for k in range(1, index.shape[1]):
        out = out + weight[:, k].reshape(-1, *trailing) * values[index[:, k]]
    return out


@dataclass(frozen=True)
class UpsampledHead:
    """A template upsampled with parents (see the module docstring for every convention).

    Attributes:
        head: the upsampled ``HeadModel`` (V' vertices; faces ordered face submesh first).
        parent_index: (V', K) int64 original-vertex indices.
        parent_weight: (V', K) float32 weights, rows summing to 1.
        base_name: ``name`` of the original template.
        face_levels, rest_levels: the subdivision rounds used.
        num_face_triangles: the first ``num_face_triangles`` rows of ``head.faces`` are the
            upsampled face submesh.
        num_original_vertices: V, the vertex count of the original template.
    """

    head: HeadModel
    parent_index: Tensor
    parent_weight: Tensor
    base_name: str
    face_levels: int
    rest_levels: int
    num_face_triangles: int
    num_original_vertices: int

    def upsample(self, values: Tensor) -> Tensor:
        """(V, ...) values on the original vertices → (V', ...) on the upsampled ones."""
        if values.shape[0] != self.num_original_vertices:
            raise ValueError(f"expected {self.num_original_vertices} rows (original vertices), got {values.shape[0]}")
        return blend_rows(values, self.parent_index, self.parent_weight)

    def face_vertex_index(self) -> Tensor:
        """(Vf,) int64 indices of the face vertices in the upsampled mesh, ascending."""
        return self.head.face_mask.nonzero().squeeze(-1)

    def face_triangles(self) -> Tensor:
        """(Ff, 3) int64 face-submesh triangles indexing into ``face_vertex_index()`` order."""
        lookup = torch.full((self.head.num_vertices,), -1, dtype=torch.int64)
        face_index = self.face_vertex_index()
        lookup[face_index] = torch.arange(face_index.shape[0])
        triangles = lookup[self.head.faces[: self.num_face_triangles]]
        if bool((triangles < 0).any()):
            raise AssertionError("a face triangle uses a non-face vertex")  # construction guarantees this
        return triangles


def _subdivide(faces: np.ndarray, parents: sp.csr_matrix, levels: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """Midpoint-subdivide ``faces`` (F,3) ``levels`` times; ``parents`` (N, V0) grows with new rows."""
    for _ in range(levels):
        if faces.shape[0] == 0:
            break
        num_existing = parents.shape[0]
        edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)  # (3F, 2)
        unique_edges, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = num_existing + inverse.reshape(-1, 3)  # (F, 3): midpoints of edges ab, bc, ca
        a, b, c = faces.T
        ab, bc, ca = mid.T
        faces = np.concatenate(
            [np.stack(corners, axis=1) for corners in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
        )
        midpoints = 0.5 * (parents[unique_edges[:, 0]] + parents[unique_edges[:, 1]])
        parents = sp.vstack([parents, midpoints], format="csr")
    parents.sum_duplicates()
    parents.sort_indices()
    return faces, parents


def _padded_parents(parents: sp.csr_matrix, width: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows → (N, width) index (padded with the row's first parent) and weight (padded 0)."""
    counts = np.diff(parents.indptr)
    rows = np.repeat(np.arange(parents.shape[0]), counts)
    slot = np.arange(parents.nnz) - np.repeat(parents.indptr[:-1], counts)
    index = np.repeat(parents.indices[parents.indptr[:-1]].astype(np.int64)[:, None], width, axis=1)
    weight = np.zeros((parents.shape[0], width), dtype=np.float64)
    index[rows, slot] = parents.indices
    weight[rows, slot] = parents.data
    return index, weight


def _weld(face_new: sp.csr_matrix, rest_new: sp.csr_matrix, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Final indices of the rest submesh's new vertices, and which of them are kept (not welded).

    Face new vertices take indices offset..offset+Nf−1; a rest vertex with the same parent
    combination as a face vertex maps onto it; the others follow in order.
    """
    width = 3
    keys = []
    for block in (face_new, rest_new):
        index, weight = _padded_parents(block, width)
        keys.append(np.concatenate([index, weight.view(np.int64)], axis=1))
    all_keys = np.concatenate(keys)
    num_face = face_new.shape[0]
    if rest_new.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    _, first, inverse = np.unique(all_keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rest_positions = np.arange(num_face, all_keys.shape[0])
    rest_first = first[inverse[rest_positions]]
    keep = rest_first == rest_positions
    final = np.where(keep, offset + num_face + np.cumsum(keep) - 1, offset + rest_first)
    return final.astype(np.int64), keep


def _edge_keys(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """Sorted unique undirected edges of (F,3) triangles, each encoded as ``a·V + b`` (a < b)."""
    edges = np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(edges[:, 0] * num_vertices + edges[:, 1])


def _added_per_level(num_edges: int, num_faces: int, max_levels: int) -> list[int]:
    """Vertices added by 0..max_levels rounds: each round adds one per edge; E' = 2E + 3F, F' = 4F."""
    added, total = [0], 0
    for _ in range(max_levels):
        total += num_edges
        added.append(total)
        num_edges, num_faces = 2 * num_edges + 3 * num_faces, 4 * num_faces
    return added


def _count_table(head: HeadModel, max_levels: int) -> tuple[int, int, list[int], list[int], int]:
    """(face originals, rest originals, face added per level, rest added per level, shared edges)."""
    faces = head.faces.cpu().numpy().astype(np.int64)
    face_mask = head.face_mask.cpu().numpy().astype(bool)
    is_face = face_mask[faces].all(axis=1)
    face_edges = _edge_keys(faces[is_face], head.num_vertices)
    rest_edges = _edge_keys(faces[~is_face], head.num_vertices)
    shared = int(np.intersect1d(face_edges, rest_edges, assume_unique=True).size)
    face_added = _added_per_level(face_edges.size, int(is_face.sum()), max_levels)
    rest_added = _added_per_level(rest_edges.size, int((~is_face).sum()), max_levels)
    return int(face_mask.sum()), int((~face_mask).sum()), face_added, rest_added, shared


def _counts(table: tuple[int, int, list[int], list[int], int], face_levels: int, rest_levels: int) -> tuple[int, int]:
    face_original, rest_original, face_added, rest_added, shared = table
    # an edge shared by both submeshes carries 2^min(levels) − 1 vertices made by both (welded)
    welded = shared * (2 ** min(face_levels, rest_levels) - 1)
    return face_original + face_added[face_levels], rest_original + rest_added[rest_levels] - welded


def subdivision_counts(head: HeadModel, face_levels: int, rest_levels: int) -> tuple[int, int]:
    """(face vertices, non-face vertices) that ``upsample_head`` would produce, without building it."""
    return _counts(_count_table(head, max(face_levels, rest_levels)), face_levels, rest_levels)


def choose_levels(head: HeadModel, config: UpsampleConfig = UpsampleConfig()) -> tuple[int, int]:
    """The (face, rest) levels whose vertex counts come closest to the config's target ranges."""

    def miss(count: int, target: tuple[int, int]) -> float:
        low, high = target
        return 0.0 if low <= count <= high else min(abs(count - low), abs(count - high)) / high

    table = _count_table(head, config.max_levels)
    scored = []
    for face_levels in range(config.max_levels + 1):
        for rest_levels in range(config.max_levels + 1):
            face_count, rest_count = _counts(table, face_levels, rest_levels)
            score = miss(face_count, config.face_target_vertices) + miss(rest_count, config.rest_target_vertices)
            scored.append((score, face_levels, rest_levels))
    _, face_levels, rest_levels = min(scored)
    return face_levels, rest_levels


def upsample_head(
    head: HeadModel,
    face_levels: int | None = None,
    rest_levels: int | None = None,
    config: UpsampleConfig = UpsampleConfig(),
) -> UpsampledHead:
    """Subdivide the face submesh ``face_levels`` times and the rest ``rest_levels`` times.

    Args:
        head: the template (any ``HeadModel``).
        face_levels, rest_levels: subdivision rounds (default: ``config``'s).

    Returns:
        An ``UpsampledHead`` (conventions in the module docstring). ``head.pose_fn`` is carried
        over when it offers ``upsampled(parent_index, parent_weight)`` (FLAME's skinning does).
    """
    face_levels = config.face_levels if face_levels is None else face_levels
    rest_levels = config.rest_levels if rest_levels is None else rest_levels
    if face_levels < 0 or rest_levels < 0:
        raise ValueError(f"subdivision levels must be ≥ 0, got face {face_levels}, rest {rest_levels}")
    num_original = head.num_vertices
    faces = head.faces.cpu().numpy().astype(np.int64)
    face_mask = head.face_mask.cpu().numpy().astype(bool)
    is_face_triangle = face_mask[faces].all(axis=1)
    identity = sp.identity(num_original, dtype=np.float64, format="csr")
    face_tris, face_parents = _subdivide(faces[is_face_triangle], identity, face_levels)
    rest_tris, rest_parents = _subdivide(faces[~is_face_triangle], identity, rest_levels)
    rest_final, rest_keep = _weld(face_parents[num_original:], rest_parents[num_original:], num_original)
    remap_rest = np.concatenate([np.arange(num_original, dtype=np.int64), rest_final])
    all_parents = sp.vstack([face_parents, rest_parents[num_original:][rest_keep]], format="csr")
    all_parents.sort_indices()
    width = max(1, int(np.diff(all_parents.indptr).max(initial=1)))
    index_np, weight_np = _padded_parents(all_parents, width)
    parent_index = torch.from_numpy(index_np)
    parent_weight = torch.from_numpy(weight_np.astype(np.float32))
    num_face_new = face_parents.shape[0] - num_original
    new_face_flags = np.concatenate([np.ones(num_face_new, dtype=bool), np.zeros(int(rest_keep.sum()), dtype=bool)])
    new_face_mask = torch.from_numpy(np.concatenate([face_mask, new_face_flags]))
    all_faces = torch.from_numpy(np.concatenate([face_tris, remap_rest[rest_tris]]).astype(np.int64))
    regions = {name: mask.cpu()[parent_index].all(dim=1) for name, mask in head.regions.items()}
    pose_fn = head.pose_fn
    if pose_fn is not None:
        if hasattr(pose_fn, "upsampled"):
            pose_fn = pose_fn.upsampled(parent_index, parent_weight)
        else:
            warnings.warn(f"template {head.name}: its pose_fn cannot be upsampled; the upsampled head has no poses", stacklevel=2)
            pose_fn = None

    def up(values: Tensor) -> Tensor:
        return blend_rows(values.cpu(), parent_index, parent_weight).to(values.dtype)

    upsampled = replace(
        head,
        name=f"{head.name}-face{face_levels}-rest{rest_levels}",
        vertices=up(head.vertices),
        faces=all_faces,
        face_mask=new_face_mask,
        regions=regions,
        expression_basis=up(head.expression_basis).contiguous(),
        vertex_colors=up(head.vertex_colors),
        pose_fn=pose_fn,
        pose_names=head.pose_names if pose_fn is not None else (),
    )
    return UpsampledHead(
        head=upsampled,
        parent_index=parent_index,
        parent_weight=parent_weight,
        base_name=head.name,
        face_levels=face_levels,
        rest_levels=rest_levels,
        num_face_triangles=int(face_tris.shape[0]),
        num_original_vertices=num_original,
    )


__all__ = [
    "UpsampleConfig",
    "UpsampledHead",
    "blend_rows",
    "choose_levels",
    "subdivision_counts",
    "upsample_head",
]
