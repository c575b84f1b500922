"""The face rig: expressions move an avatar's face splats with their template (paper §3.5).

Face splats are bound to upsampled template vertices (``GaussianSplats.vertex_index``). An
expression (blendshape weights, plus joint poses for FLAME) deforms the template; every face
splat follows its vertex:

* position: ``mean' = v' + R·(mean − v)`` with ``v``/``v'`` the neutral/deformed vertex (a splat
  sitting on its vertex, the usual case, lands on ``v'`` exactly);
* orientation: ``q' = quat(R) ⊗ q`` where ``R = F'·Fᵀ`` maps the vertex's neutral local frame
  ``F`` to its deformed frame ``F'``. A frame is (tangent, bitangent, normal) as columns: the
  normal is the area-weighted sum of the incident triangle normals, the tangent the edge to a
  fixed neighbour (the next corner of the vertex's first incident triangle) made orthogonal to
  the normal, the bitangent ``n × t``.

Free (non-face) splats stay where they are, also under FLAME poses: the face follows the jaw,
the rest of the head is not skinned (a neck or global pose therefore detaches the face; use jaw
and eye poses only). Zero expression and no pose return the avatar unchanged, bit for bit.

The template is rebuilt from the avatar bundle's ``template`` info (built-in: regenerated, the
version it names; FLAME: the user's file, whose sha256 must match the one recorded at creation,
with the inside of the mouth only if the bundle records ``mouth``).

Written by hand, and why: the per-vertex frames and the rig (no library binds splats to mesh
frames). The quaternion helpers are ``arc2avatar.splats.rotations``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from arc2avatar._io import file_sha256
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.template import HeadSetup, TemplateConfig, build_head, template_levels
from arc2avatar.errors import InputError, short_list
from arc2avatar.head.model import HeadModel
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.rotations import matrix_to_quat, quat_multiply

NO_NEIGHBOUR = -1  # tangent neighbour of a vertex in no triangle (its frame is the identity)


# =============================================================================== template
def setup_for_avatar(
    avatar: Avatar, flame: str | os.PathLike | None = None, flame_masks: str | os.PathLike | None = None
) -> HeadSetup:
    """Rebuild the upsampled template an avatar is bound to, from its bundle's ``template`` info.

    Built-in templates are regenerated; FLAME needs ``flame`` (the same file as at creation: its
    sha256 is checked) and, if masks were used then, ``flame_masks``. Raises ``InputError`` when
    the avatar has no binding (a bare PLY), the file is missing or different, or the rebuilt
    template does not fit the splats' binding.
    """
    info = avatar.template
    kind = info.get("kind")
    if kind not in ("builtin", "flame"):
        raise InputError(
            "this avatar has no template binding (a bare .ply, or a bundle without template info); "
            "expressions need the avatar folder written by `arc2avatar create`"
        )
    levels = template_levels(info)
    if kind == "builtin":
        config = TemplateConfig(kind="builtin", **levels)
    else:
        if flame is None:
            raise InputError(
                f"this avatar was made on the FLAME model {info.get('file', '?')}: pass that file with --flame PATH"
            )
        path = Path(flame)
        if not path.is_file():
            raise InputError(f"FLAME file {path} does not exist")
        if info.get("sha256") and file_sha256(path) != info["sha256"]:
            raise InputError(
                f"FLAME file {path} is not the one this avatar was made on ({info.get('file', '?')}, "
                f"sha256 {str(info['sha256'])[:12]}…): pass the same FLAME file as at creation"
            )
        if info.get("masks_file") and flame_masks is None:
            raise InputError(f"this avatar was made with the FLAME masks {info['masks_file']}: pass them with --flame-masks")
        config = TemplateConfig(kind="flame", flame_path=str(path),
                                masks_path=None if flame_masks is None else str(flame_masks), **levels)
    setup = build_head(config, builtin_name=info.get("name") if kind == "builtin" else None,
                       flame_mouth=info.get("mouth") is not None)  # old FLAME bundles: the bare skin, as made
    check_binding(avatar.splats, setup)
    return setup


def check_binding(splats: GaussianSplats, setup: HeadSetup) -> None:
    """``InputError`` unless every face splat is bound to a face vertex of ``setup``'s template."""
    head = setup.upsampled.head
    rows = splats.face_mask.nonzero().squeeze(-1)
    index = splats.vertex_index[rows].cpu()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= head.num_vertices
                          or not bool(head.face_mask[index].all())):
        raise InputError(
            f"the avatar's face splats do not fit the template {head.name} ({head.num_vertices} vertices): "
            "the bundle's template info or the template file differs from the one used at creation"
        )


# =============================================================================== parameters
def parse_assignments(text: str, what: str = "--set") -> dict[str, float]:
    """``"smile=0.8,jaw_open=0.5"`` → ``{"smile": 0.8, "jaw_open": 0.5}`` (``InputError`` if malformed)."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            out[name.strip()] = number
        except ValueError:
            raise InputError(f"{what}: cannot read {item!r}; write NAME=NUMBER pairs (finite numbers) separated "
                             "by commas, e.g. smile=0.8,jaw_open=0.5") from None
    return out


def name_list(names: list[str]) -> str:
    if len(names) > 16 and all(n.startswith("exp_") for n in names):
        return f"{names[0]} … {names[-1]} (FLAME expression components)"
    return ", ".join(names)


# Largest |weight| of an expression component: blendshape weights live in about [−3, 3] (FLAME's
# PCA coefficients in standard deviations; the built-in template's in [0, 1]); far beyond, the
# face turns inside out, and NaN/inf would render nothing.
MAX_EXPRESSION_WEIGHT = 10.0
# Largest |component| of a joint's axis-angle pose, radians (a full turn).
MAX_POSE_RADIANS = 2 * math.pi


def expression_coefficients(head: HeadModel, expression: Mapping[str, float] | Tensor | None) -> Tensor:
    """(E,) float32 coefficients; unknown names raise one ``InputError`` listing the valid ones,
    and so do non-finite weights or weights beyond ±``MAX_EXPRESSION_WEIGHT``."""
    if isinstance(expression, Tensor):
        if expression.shape != (head.num_expressions,):
            raise InputError(f"template {head.name} has {head.num_expressions} expression components, "
                             f"got a vector of shape {tuple(expression.shape)}")
        if not bool((expression.float().abs() <= MAX_EXPRESSION_WEIGHT).all()):
            raise InputError(f"expression weights must be finite and within ±{MAX_EXPRESSION_WEIGHT:g}")
        return expression.float()
    bad = [f"{k}={v}" for k, v in (expression or {}).items()
           if not isinstance(v, (int, float)) or not abs(float(v)) <= MAX_EXPRESSION_WEIGHT]
    if bad:
        raise InputError(f"expression weight(s) {', '.join(bad[:5])} must be finite numbers within "
                         f"±{MAX_EXPRESSION_WEIGHT:g}")
    unknown = sorted(set(expression or {}) - set(head.expression_names))
    if unknown:
        raise InputError(f"unknown expression name(s) {short_list(unknown)} for template {head.name}; "
                         f"valid names: {name_list(head.expression_names)}")
    return head.expression_vector(dict(expression or {}))


def pose_tensors(head: HeadModel, pose: Mapping[str, Any] | None) -> dict[str, Tensor] | None:
    """Joint poses (axis-angle 3-vectors, radians) checked against the template's joints."""
    if not pose:
        return None
    if not head.pose_names:
        raise InputError(f"template {head.name} has no joints; poses {short_list(sorted(pose))} cannot be applied")
    unknown = sorted(set(pose) - set(head.pose_names))
    if unknown:
        raise InputError(f"unknown pose(s) {short_list(unknown)}; valid: {', '.join(head.pose_names)}")
    out = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1) for name, value in pose.items()}
    bad = [name for name, value in out.items()
           if value.shape != (3,) or not bool((value.abs() <= MAX_POSE_RADIANS).all())]
    if bad:
        raise InputError(f"pose(s) {short_list(bad)} must be finite axis-angle 3-vectors (radians, "
                         f"each within ±{MAX_POSE_RADIANS:.3g})")
    return out


# =============================================================================== frames
def tangent_neighbours(faces_f3: Tensor, num_vertices: int) -> Tensor:
    """(V,) int64: for each vertex, the next corner of its first incident triangle (−1 if none)."""
    faces = faces_f3.long().cpu()
    num_faces = faces.shape[0]
    vertex = faces.reshape(-1)  # (3F,) corner k of triangle f at 3f + k
    neighbour = faces[:, [1, 2, 0]].reshape(-1)
    order = torch.arange(3 * num_faces)
    first = torch.full((num_vertices,), 3 * num_faces, dtype=torch.int64)
    first = first.scatter_reduce(0, vertex, order, reduce="amin")
    out = torch.full((num_vertices,), NO_NEIGHBOUR, dtype=torch.int64)
    has = first < 3 * num_faces
    out[has] = neighbour[first[has]]
    return out


def vertex_frames(vertices_v3: Tensor, faces_f3: Tensor, neighbours_v: Tensor) -> Tensor:
    """(V, 3, 3) orthonormal frames, columns (tangent, bitangent, normal); identity where undefined.

    normal: area-weighted sum of incident triangle normals; tangent: the edge to
    ``neighbours_v`` minus its normal component; bitangent = normal × tangent.
    """
    tri = vertices_v3[faces_f3]  # (F, 3, 3)
    face_normals = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # (F, 3), |·| = 2·area
    normals = torch.zeros_like(vertices_v3).index_add(0, faces_f3.reshape(-1), face_normals.repeat_interleave(3, 0))
    normals = torch.nn.functional.normalize(normals, dim=-1)
    has = neighbours_v >= 0
    edge = vertices_v3[neighbours_v.clamp_min(0)] - vertices_v3  # (V, 3)
    tangent = torch.nn.functional.normalize(edge - (edge * normals).sum(-1, keepdim=True) * normals, dim=-1)
    bitangent = torch.cross(normals, tangent, dim=-1)
    frames = torch.stack([tangent, bitangent, normals], dim=-1)  # (V, 3, 3) columns t, b, n
    valid = has & (tangent.norm(dim=-1) > 0.5) & (normals.norm(dim=-1) > 0.5)
    eye = torch.eye(3, dtype=frames.dtype, device=frames.device).expand_as(frames)
    return torch.where(valid[:, None, None], frames, eye)


# =============================================================================== the rig
class FaceRig:
    """Binds an avatar's face splats to its template; ``pose`` gives the splats of an expression.

    Args:
        splats: the neutral avatar's splats (face splats bound by ``vertex_index``).
        setup: its template (``setup_for_avatar``).
    """

    def __init__(self, splats: GaussianSplats, setup: HeadSetup) -> None:
        head = setup.upsampled.head
        self.head = head
        self.splats = splats.detach_copy()
        device = self.splats.device
        self.rows = self.splats.face_mask.nonzero().squeeze(-1)  # (Nf,)
        self.vertex = self.splats.vertex_index[self.rows]  # (Nf,) upsampled-vertex indices
        self.faces = head.faces.to(device)
        self.neighbours = tangent_neighbours(head.faces, head.num_vertices).to(device)
        self.neutral = head.vertices.to(device)
        self.neutral_frames = vertex_frames(self.neutral, self.faces, self.neighbours)[self.vertex]  # (Nf, 3, 3)
        self.offsets = self.splats.means.detach()[self.rows] - self.neutral[self.vertex]  # (Nf, 3)

    def deformed_vertices(self, expression: Mapping[str, float] | Tensor | None, pose: Mapping[str, Any] | None) -> Tensor:
        """(V, 3) template vertices with the expression (and pose), on the splats' device."""
        coeffs = expression_coefficients(self.head, expression)
        return self.head.deform(coeffs, pose_tensors(self.head, pose), vertices=self.neutral)

    def pose(self, expression: Mapping[str, float] | Tensor | None, pose: Mapping[str, Any] | None = None) -> GaussianSplats:
        """A new ``GaussianSplats`` with the face splats moved and rotated (free splats unchanged).

        Anchors of the face splats become their new positions (the expressive avatar's rest pose).
        No change of the template returns an exact copy of the neutral splats.
        """
        deformed = self.deformed_vertices(expression, pose)
        tensors = self.splats.to_tensors()
        if torch.equal(deformed, self.neutral):
            return GaussianSplats.from_tensors(tensors)
        frames = vertex_frames(deformed, self.faces, self.neighbours)[self.vertex]  # (Nf, 3, 3)
        rotation = frames @ self.neutral_frames.transpose(1, 2)  # (Nf, 3, 3): neutral frame → deformed
        means = deformed[self.vertex] + (rotation @ self.offsets[:, :, None])[:, :, 0]
        quats = quat_multiply(matrix_to_quat(rotation), tensors["quats"][self.rows])
        tensors["means"][self.rows] = means
        tensors["quats"][self.rows] = quats
        tensors["anchors"][self.rows] = means
        return GaussianSplats.from_tensors(tensors)


def apply_expression(
    avatar: Avatar,
    head_setup: HeadSetup,
    expression: Mapping[str, float] | Tensor | None,
    pose: Mapping[str, Any] | None = None,
) -> Avatar:
    """The avatar with an expression (docs/method.md §7): see the module docstring for the rule.

    Args:
        avatar: a neutral avatar with its face binding.
        head_setup: its template (``setup_for_avatar(avatar)``).
        expression: name → weight (``HeadModel.expression_names``) or an (E,) vector.
        pose: FLAME joint poses, name → axis-angle 3-vector in radians in FLAME's own frame, as
            FLAME's ``pose_fn`` takes it (e.g. ``{"jaw": [0.2, 0, 0]}`` opens the jaw).

    Returns:
        A new ``Avatar`` (same template info; ``extra["expression"]`` records the weights).
    """
    check_binding(avatar.splats, head_setup)
    splats = FaceRig(avatar.splats, head_setup).pose(expression, pose)
    extra = dict(avatar.extra)
    if isinstance(expression, Mapping):
        extra["expression"] = {k: float(v) for k, v in expression.items()}
    elif isinstance(expression, Tensor):
        extra["expression"] = [float(v) for v in expression]
    if pose:
        extra["pose"] = {k: [float(x) for x in torch.as_tensor(v).reshape(-1)] for k, v in pose.items()}
    return Avatar(splats, dict(avatar.template), extra)
