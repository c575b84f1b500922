"""The one interface every head template offers (docs/method.md §3; paper §3.4, E.2).

A ``HeadModel`` is plain data in the arc2avatar world frame (z up, face toward +y, the head's
bounding-box centre at the origin, world units; see ``arc2avatar.cameras.model``):
neutral vertices, triangles, a face-region mask, named region masks, a linear expression basis
(blendshapes) with names and optional linear-blend skinning for joint poses (FLAME's jaw, neck,
eyes), and per-vertex mean colours. FLAME and the built-in template both produce one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import Tensor

# A pose applier maps (neutral-plus-expression vertices (V,3), pose dict) -> posed vertices (V,3).
# FLAME provides one (linear blend skinning); templates without joints leave it None.
PoseFn = Callable[[Tensor, Mapping[str, Tensor]], Tensor]


@dataclass(frozen=True)
class HeadModel:
    """A head template.

    Attributes:
        name: identifies the template, e.g. ``"builtin-v1"`` or ``"flame2023_Open"``; stored in
            avatar bundles so expressions are applied with the template they were made on.
        vertices: (V, 3) float32 neutral vertices, world frame.
        faces: (F, 3) int64 triangles, counter-clockwise seen from outside.
        face_mask: (V,) bool, the face region whose vertices each own one bound splat.
        regions: name -> (V,) bool masks (``eyes``, ``lips``, ``neck``, ...).
        expression_names: E names, one per blendshape column.
        expression_basis: (V, 3, E) float32 displacement per unit weight, world units.
        vertex_colors: (V, 3) float32 mean colour in [0, 1].
        pose_fn: optional skinning for joint poses (FLAME: ``jaw``, ``neck``, ``eyes``).
        pose_names: names of the pose parameters ``pose_fn`` accepts, each a 3-vector
            (axis-angle, radians).
    """

    name: str
    vertices: Tensor
    faces: Tensor
    face_mask: Tensor
    regions: dict[str, Tensor]
    expression_names: list[str]
    expression_basis: Tensor
    vertex_colors: Tensor
    pose_fn: PoseFn | None = field(default=None, compare=False)
    pose_names: tuple[str, ...] = ()

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.expression_basis.shape[-1])

    def expression_vector(self, weights: Mapping[str, float] | Tensor | None) -> Tensor:
        """(E,) expression coefficients from a name→weight mapping (unknown names are an error)."""
        if weights is None:
            return torch.zeros(self.num_expressions)
        if isinstance(weights, Tensor):
            if weights.shape != (self.num_expressions,):
                raise ValueError(
                    f"{self.name} has {self.num_expressions} expression components, got shape {tuple(weights.shape)}"
                )
            return weights.float()
        vector = torch.zeros(self.num_expressions)
        for key, value in weights.items():
            if key not in self.expression_names:
                known = ", ".join(self.expression_names[:12])
                raise ValueError(f"unknown expression {key!r} for template {self.name}; known: {known}...")
            vector[self.expression_names.index(key)] = float(value)
        return vector

    def deform(
        self,
        expression: Mapping[str, float] | Tensor | None = None,
        pose: Mapping[str, Tensor] | None = None,
        vertices: Tensor | None = None,
    ) -> Tensor:
        """(V, 3) vertices with an expression (and joint pose, if the template has skinning).

        ``vertices`` overrides the neutral vertices (e.g. an identity-shaped FLAME mesh).
        Zero expression and no pose return the neutral vertices exactly.
        """
        base = self.vertices if vertices is None else vertices
        coeffs = self.expression_vector(expression).to(base)
        out = base + torch.einsum("vce,e->vc", self.expression_basis.to(base), coeffs)
        if pose:
            if self.pose_fn is None:
                raise ValueError(f"template {self.name} has no joints; pose {sorted(pose)} cannot be applied")
            out = self.pose_fn(out, pose)
        return out

    @property
    def height(self) -> float:
        """Extent of the template along z (world units); used for relative tolerances."""
        return float(self.vertices[:, 2].max() - self.vertices[:, 2].min())


def vertex_normals(vertices_v3: Tensor, faces_f3: Tensor) -> Tensor:
    """(V, 3) unit vertex normals: the area-weighted sum of the incident triangles' normals."""
    tri = vertices_v3[faces_f3]  # (F, 3, 3)
    face_normals = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # |·| = 2·area
    normals = torch.zeros_like(vertices_v3).index_add(0, faces_f3.reshape(-1), face_normals.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(normals, dim=-1)
