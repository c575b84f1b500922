"""Expressions on a finished avatar: deform, animate, correct (spec §7; paper §3.5, §4.3).

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

The template is rebuilt from the avatar bundle's ``template`` info (built-in: regenerated;
FLAME: the user's file, whose sha256 must match the one recorded at creation).

Animation renders one deformed avatar per frame of an ``ExpressionSequence`` (JSON or NPZ file,
or a procedural preset) from a fixed frontal camera or a slow orbit, and writes an MP4.

Expression correction (spec §7) runs the avatar optimisation loop (``Trainer``) from the
deformed avatar with the expression learning rates, no template regularisers, no face phase and
no densification, for 500 iterations by default.

Written by hand, and why: the per-vertex frames and the rig (no library binds splats to mesh
frames), the sequence formats and presets (ours). Rotation matrix → quaternion is scipy's.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras, orbit_cameras
from arc2avatar._io import file_sha256, npz_size_problem
from arc2avatar.errors import InputError
from arc2avatar.head.model import HeadModel
from arc2avatar.pipeline.config import CreateConfig, TemplateConfig
from arc2avatar.pipeline.outputs import Avatar, write_avatar_outputs
from arc2avatar.pipeline.template import HeadSetup, build_head
from arc2avatar.splats.model import GaussianSplats

log = logging.getLogger(__name__)

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
    levels = _template_levels(info)
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
    setup = build_head(config)
    check_binding(avatar.splats, setup)
    return setup


def _template_levels(info: Mapping[str, Any]) -> dict[str, int]:
    """The bundle's subdivision levels, checked: integers in 0..``MAX_TEMPLATE_LEVELS`` (a crafted
    ``avatar.json`` with 12 levels would otherwise build a template that never finishes)."""
    from arc2avatar.pipeline.config import MAX_TEMPLATE_LEVELS

    levels: dict[str, int] = {}
    for key, default in (("face_levels", TemplateConfig.face_levels), ("rest_levels", TemplateConfig.rest_levels)):
        value = info.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TEMPLATE_LEVELS:
            raise InputError(f"the avatar's avatar.json has template.{key}={value!r}; expected an integer in "
                             f"0..{MAX_TEMPLATE_LEVELS}: the bundle is corrupt")
        levels[key] = value
    return levels


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


def _name_list(names: list[str]) -> str:
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
        raise InputError(f"unknown expression name(s) {', '.join(unknown)} for template {head.name}; "
                         f"valid names: {_name_list(head.expression_names)}")
    return head.expression_vector(dict(expression or {}))


def pose_tensors(head: HeadModel, pose: Mapping[str, Any] | None) -> dict[str, Tensor] | None:
    """Joint poses (axis-angle 3-vectors, radians) checked against the template's joints."""
    if not pose:
        return None
    if not head.pose_names:
        raise InputError(f"template {head.name} has no joints; poses {sorted(pose)} cannot be applied")
    unknown = sorted(set(pose) - set(head.pose_names))
    if unknown:
        raise InputError(f"unknown pose(s) {', '.join(unknown)}; valid: {', '.join(head.pose_names)}")
    out = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1) for name, value in pose.items()}
    bad = [name for name, value in out.items()
           if value.shape != (3,) or not bool((value.abs() <= MAX_POSE_RADIANS).all())]
    if bad:
        raise InputError(f"pose(s) {', '.join(bad)} must be finite axis-angle 3-vectors (radians, "
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


def matrix_to_quat(rotations_n33: Tensor) -> Tensor:
    """(N, 4) unit quaternions (w, x, y, z) of (N, 3, 3) rotations (scipy, float64 inside)."""
    from scipy.spatial.transform import Rotation

    if rotations_n33.shape[0] == 0:
        return rotations_n33.new_zeros((0, 4))
    xyzw = Rotation.from_matrix(rotations_n33.detach().cpu().double().numpy()).as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    return torch.from_numpy(wxyz).to(rotations_n33)


def quat_multiply(a_n4: Tensor, b_n4: Tensor) -> Tensor:
    """(N, 4) Hamilton product a ⊗ b of (w, x, y, z) quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a_n4.unbind(-1)
    bw, bx, by, bz = b_n4.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


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
    """The avatar with an expression (spec §7): see the module docstring for the rule.

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


# =============================================================================== saving
def _check_new_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"output {out_dir} already exists and is not an empty folder; choose a new folder")


def save_avatar_folder(out_dir: str | os.PathLike, avatar: Avatar, size: int = 256, setup: HeadSetup | None = None) -> Path:
    """Write PLY + bundle + 16-view sheet + ``viewer.html`` into a NEW folder, atomically (built
    beside it, then renamed). ``setup`` (the avatar's template) gives the viewer its expression
    sliders; None writes a viewer without them."""
    from arc2avatar.viewer import VIEWER_NAME, write_avatar_viewer

    out_dir = Path(out_dir)
    _check_new_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_avatar_outputs(work, avatar, size=size, video=False)
        write_avatar_viewer(work / VIEWER_NAME, avatar, setup)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.rename(work, out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return out_dir


def express(
    avatar_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    expression: Mapping[str, float],
    pose: Mapping[str, Any] | None = None,
    *,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    size: int = 256,
) -> Avatar:
    """``arc2avatar express``: load an avatar folder, apply the expression, write a new folder."""
    _check_new_out_dir(Path(out_dir))
    avatar = Avatar.load(avatar_dir)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    expressive = apply_expression(avatar, setup, expression, pose)
    save_avatar_folder(out_dir, expressive, size, setup)
    return expressive


# =============================================================================== sequences
@dataclass(frozen=True)
class ExpressionSequence:
    """Per-frame expression weights.

    Attributes:
        fps: frames per second of the video.
        names: the K expression names the columns refer to (a subset of the template's).
        weights: (T, K) float32 weights, one row per frame.
    """

    fps: float
    names: tuple[str, ...]
    weights: Tensor

    @property
    def num_frames(self) -> int:
        return int(self.weights.shape[0])

    def frame(self, index: int) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.names, self.weights[index])}


def _sequence_from_rows(fps: Any, frames: Any, source: str) -> ExpressionSequence:
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise InputError(f"{source}: 'fps' must be a positive number, got {fps!r}")
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise InputError(f"{source}: 'frames' must be a non-empty list of {{name: weight}} objects")
    names = tuple(sorted({name for frame in frames for name in frame}))
    try:
        weights = torch.tensor([[float(frame.get(n, 0.0)) for n in names] for frame in frames], dtype=torch.float32)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{source}: every weight must be a number") from None
    return ExpressionSequence(float(fps), names, weights.reshape(len(frames), len(names)))


# Limits of a sequence file: frames (an hour at 30 fps), frame rate and decompressed NPZ size.
MAX_SEQUENCE_FRAMES = 108_000
MAX_SEQUENCE_FPS = 240.0
MAX_SEQUENCE_BYTES = 256 << 20


def _checked_sequence(sequence: ExpressionSequence, path: Path) -> ExpressionSequence:
    """The one value check of a loaded sequence (JSON or NPZ): frame count, fps, finite bounded weights."""
    if not 0 < sequence.fps <= MAX_SEQUENCE_FPS:
        raise InputError(f"sequence file {path}: 'fps' must be in (0, {MAX_SEQUENCE_FPS:g}], got {sequence.fps}")
    if sequence.num_frames > MAX_SEQUENCE_FRAMES:
        raise InputError(f"sequence file {path}: {sequence.num_frames} frames, more than the {MAX_SEQUENCE_FRAMES} accepted")
    if not bool((sequence.weights.abs() <= MAX_EXPRESSION_WEIGHT).all()):
        raise InputError(f"sequence file {path}: weights must be finite numbers within ±{MAX_EXPRESSION_WEIGHT:g}")
    return sequence


def load_sequence(path: str | os.PathLike, default_fps: float = 30.0) -> ExpressionSequence:
    """Read a sequence file (format in docs/expressions.md).

    JSON: ``{"fps": 30, "frames": [{"smile": 0.3}, {"smile": 0.5, "jaw_open": 0.1}, ...]}``
    (a name missing from a frame weighs 0). NPZ: ``weights`` (T, K) float, ``names`` (K,) str,
    optional scalar ``fps``. Raises ``InputError`` naming the file on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sequence file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, too-long integers
            raise InputError(f"sequence file {path} is not valid JSON ({exc})") from None
        except RecursionError:
            raise InputError(f"sequence file {path} is nested too deeply to be a sequence") from None
        if not isinstance(data, dict):
            raise InputError(f"sequence file {path} must hold a JSON object with 'fps' and 'frames'")
        return _checked_sequence(_sequence_from_rows(data.get("fps", default_fps), data.get("frames"), str(path)), path)
    if suffix == ".npz":
        problem = npz_size_problem(path, MAX_SEQUENCE_BYTES)
        if problem:
            raise InputError(f"sequence file {path}: {problem}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"sequence file {path} is not a readable NPZ ({exc})") from None
        if "weights" not in arrays or "names" not in arrays:
            raise InputError(f"sequence file {path} needs arrays 'weights' (T, K) and 'names' (K,)")
        weights, names = arrays["weights"], arrays["names"]
        if weights.ndim != 2 or names.ndim != 1 or weights.shape[1] != names.shape[0] or weights.shape[0] == 0:
            raise InputError(f"sequence file {path}: 'weights' must be (T, K) with T ≥ 1 and 'names' (K,); "
                             f"got {weights.shape} and {names.shape}")
        if not np.issubdtype(weights.dtype, np.number) or names.dtype.kind not in "US":
            raise InputError(f"sequence file {path}: 'weights' must be numbers and 'names' strings")
        fps_array = arrays.get("fps", np.asarray(default_fps))
        if fps_array.shape not in ((), (1,)) or not np.issubdtype(fps_array.dtype, np.number):
            raise InputError(f"sequence file {path}: 'fps' must be one number")
        fps = float(fps_array.reshape(()))
        sequence = ExpressionSequence(fps, tuple(str(n) for n in names), torch.from_numpy(weights.astype(np.float32)))
        return _checked_sequence(sequence, path)
    raise InputError(f"sequence file {path}: expected a .json or .npz file")


@dataclass(frozen=True)
class PresetSequenceConfig:
    """Procedural sequences ``--preset`` (ours; the built-in template's expression names).

    Attributes:
        fps: frame rate, frames/s.
        duration_s: length of every preset, seconds.
        smile_peak: smile weight held in the middle of ``smile``.
        surprise_jaw, surprise_brow: jaw_open and brow_raise peaks of ``surprise``.
        talk_jaw: largest jaw_open of ``talk``; talk_syllable_hz: mouth openings per second.
        blink_times: blink centres as fractions of the duration; blink_half_width_s: half the
            length of one blink, seconds.
        ramp_fraction: share of the duration spent ramping in (and out) for smile/surprise.
    """

    fps: float = 30.0
    duration_s: float = 3.0
    smile_peak: float = 0.9
    surprise_jaw: float = 0.6
    surprise_brow: float = 1.0
    talk_jaw: float = 0.55
    talk_syllable_hz: float = 4.0
    blink_times: tuple[float, ...] = (0.3, 0.75)
    blink_half_width_s: float = 0.08
    ramp_fraction: float = 0.3


PRESET_NAMES: tuple[str, ...] = ("smile", "surprise", "talk", "blink")


def preset_sequence(name: str, config: PresetSequenceConfig = PresetSequenceConfig()) -> ExpressionSequence:
    """A named procedural sequence: ``smile``, ``surprise``, ``talk`` or ``blink``."""
    frames = max(1, int(round(config.fps * config.duration_s)))
    t = torch.arange(frames, dtype=torch.float32) / max(frames - 1, 1)  # (T,) in [0, 1]
    ramp = (torch.minimum(t, 1.0 - t) / config.ramp_fraction).clamp(0.0, 1.0)
    envelope = 0.5 - 0.5 * torch.cos(math.pi * ramp)  # smooth in, hold, smooth out
    if name == "smile":
        return ExpressionSequence(config.fps, ("smile",), (config.smile_peak * envelope)[:, None])
    if name == "surprise":
        weights = torch.stack([config.surprise_jaw * envelope, config.surprise_brow * envelope], dim=1)
        return ExpressionSequence(config.fps, ("jaw_open", "brow_raise"), weights)
    if name == "talk":
        seconds = t * config.duration_s
        syllables = 0.5 - 0.5 * torch.cos(2 * math.pi * config.talk_syllable_hz * seconds)
        accent = 0.6 + 0.4 * torch.sin(2 * math.pi * 0.7 * seconds).abs()  # uneven syllables
        return ExpressionSequence(config.fps, ("jaw_open",), (config.talk_jaw * syllables * accent)[:, None])
    if name == "blink":
        seconds = t * config.duration_s
        closed = torch.zeros(frames)
        for centre in config.blink_times:
            distance = (seconds - centre * config.duration_s).abs() / config.blink_half_width_s
            closed = torch.maximum(closed, (1.0 - distance).clamp(0.0, 1.0))
        return ExpressionSequence(config.fps, ("blink_left", "blink_right"), torch.stack([closed, closed], dim=1))
    raise InputError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")


# =============================================================================== animation
@dataclass(frozen=True)
class AnimationConfig:
    """Camera path and video settings of ``animate``.

    Attributes:
        size: frame size, pixels (square).
        radius: camera distance, world units (4.5: the test views of spec §5).
        fovy: vertical field of view, radians (0.7, spec §5 test views).
        polar_deg: camera polar angle θ, degrees (90: eye level).
        orbit_amplitude_deg: ``--orbit`` swings the azimuth by ± this many degrees.
        orbit_cycles: full swings over the whole sequence with ``--orbit``.
        quality: imageio-ffmpeg quality 0–10.
    """

    size: int = 512
    radius: float = 4.5
    fovy: float = 0.7
    polar_deg: float = 90.0
    orbit_amplitude_deg: float = 30.0
    orbit_cycles: float = 1.0
    quality: int = 8


def animation_cameras(num_frames: int, config: AnimationConfig = AnimationConfig(), orbit: bool = False) -> Cameras:
    """(T,) cameras: frontal (φ = 0) on every frame, or a slow sinusoidal orbit around it."""
    t = torch.arange(num_frames, dtype=torch.float32) / max(num_frames, 1)
    azimuth = config.orbit_amplitude_deg * torch.sin(2 * math.pi * config.orbit_cycles * t) if orbit else torch.zeros(num_frames)
    return orbit_cameras(config.radius, config.polar_deg, azimuth, config.fovy, config.size, config.size)


def animation_frames(
    avatar: Avatar, setup: HeadSetup, sequence: ExpressionSequence, config: AnimationConfig = AnimationConfig(),
    orbit: bool = False,
) -> Iterator[Tensor]:
    """(H, W, 3) frames in [0, 1], one per row of ``sequence`` (rendered one by one)."""
    head = setup.upsampled.head
    unknown = sorted(set(sequence.names) - set(head.expression_names))
    if unknown:
        raise InputError(f"the sequence uses expression name(s) {', '.join(unknown)} unknown to template {head.name}; "
                         f"valid names: {_name_list(head.expression_names)}")
    rig = FaceRig(avatar.splats, setup)
    cameras = animation_cameras(sequence.num_frames, config, orbit)
    for index in range(sequence.num_frames):
        posed = Avatar(rig.pose(sequence.frame(index)), avatar.template)
        yield posed.render_cameras(cameras[index:index + 1])[0]


def animate(
    avatar_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    sequence: str | os.PathLike | None = None,
    preset: str | None = None,
    orbit: bool = False,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    config: AnimationConfig = AnimationConfig(),
) -> int:
    """``arc2avatar animate``: render a sequence file or a preset to an MP4; returns the frame count."""
    from arc2avatar.pipeline.media import write_video

    if (sequence is None) == (preset is None):
        raise InputError("give exactly one of --sequence FILE or --preset NAME")
    from arc2avatar.pipeline.safety import check_derived_output

    seq = load_sequence(sequence) if sequence is not None else preset_sequence(str(preset))
    check_derived_output(out_path, avatar_dir)  # never over the avatar's own files
    avatar = Avatar.load(avatar_dir)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    fps = seq.fps if float(seq.fps).is_integer() else round(seq.fps)
    return write_video(animation_frames(avatar, setup, seq, config, orbit), out_path, fps=int(fps), quality=config.quality)


# =============================================================================== correction
def correction_config(base: CreateConfig, iterations: int = 500) -> CreateConfig:
    """The run config of expression correction (spec §7), derived from the avatar's own config.

    ``iterations`` ISM steps (500); expression learning rates (``SplatOptimConfig.expression``);
    no template regularisers (``losses.face_position = losses.face_laplacian = 0``); no face
    phase; no densification, pruning, opacity reset or late pruning (the splat set is kept, so
    the binding stays valid); checkpoints only at the end.
    """
    from arc2avatar.splats.optim import SplatOptimConfig

    densify = base.densify
    if hasattr(densify, "densify_until"):
        densify = replace(densify, densify_until=0, reset_until=0, prune_below_face_every=None, late=None)
    return replace(
        base,
        iterations=iterations,
        face_phase_fraction=0.0,
        checkpoint_every=max(iterations, 1),
        losses=replace(base.losses, face_position=0.0, face_laplacian=0.0, freeze_face_xyz=False),
        optim=SplatOptimConfig.expression(max_steps=max(iterations, 1)),
        densify=densify,
    )


def refine_expression(
    avatar: Avatar,
    setup: HeadSetup,
    prior: Any,
    config: CreateConfig,
    *,
    work_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Avatar:
    """Expression correction (spec §7; paper §3.5): optimise the (already deformed) avatar.

    Args:
        avatar: the expressive avatar (``apply_expression``'s result).
        setup: its template.
        prior: any ``GuidancePrior`` (Arc2Face ISM, or ``OraclePrior`` in tests).
        config: a config from ``correction_config`` (used as given).
        work_dir: where the Trainer's log goes (default: a temporary folder, removed after).
        device: torch device.

    Returns:
        A new ``Avatar``; ``extra["expression_correction"]`` = the iteration count.
    """
    from arc2avatar.pipeline.trainer import Trainer

    device = torch.device(device)
    temporary = work_dir is None
    folder = Path(tempfile.mkdtemp(prefix="arc2avatar-refine-")) if temporary else Path(work_dir)
    try:
        trainer = Trainer(config, prior, setup, avatar.splats.detach_copy().to(device), folder, device, progress=progress)
        splats = trainer.run()
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    extra = {**avatar.extra, "expression_correction": config.iterations}
    return Avatar(splats.detach_copy().to("cpu"), dict(avatar.template), extra)


def deformed_oracle_target(setup: HeadSetup, expression: Mapping[str, float] | Tensor | None,
                           pose: Mapping[str, Any] | None = None) -> Any:
    """The oracle target of expression tests: the default target (hair cap) deformed with the expression."""
    from arc2avatar.pipeline.oracle import default_target

    up = setup.upsampled
    head = up.head
    deformed = head.deform(expression_coefficients(head, expression), pose_tensors(head, pose))
    return default_target(replace(head, vertices=deformed), face_triangles=up.num_face_triangles)


def refine_expression_folder(
    avatar_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    expression: Mapping[str, float],
    pose: Mapping[str, Any] | None = None,
    *,
    oracle: bool = False,
    iterations: int = 500,
    preset: str | None = None,
    overrides: tuple[str, ...] = (),
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    lora: str | os.PathLike | None = None,
    size: int = 256,
    progress: bool = True,
) -> Avatar:
    """``arc2avatar refine-expression``: express, correct with the prior, write a new folder.

    The run config is the avatar folder's ``config.yaml`` when present (else ``preset``), with
    ``overrides`` and the correction settings on top. The real prior needs the folder's
    ``identity.npy`` (written by ``create``) and the weights; ``oracle`` uses the deformed
    template as a known target instead (offline diagnostics).
    """
    from arc2avatar.pipeline.api import pick_device
    from arc2avatar.pipeline.presets import resolve_config

    avatar_dir, out_dir = Path(avatar_dir), Path(out_dir)
    _check_new_out_dir(out_dir)
    saved = avatar_dir / "config.yaml"
    base = resolve_config(preset, saved if saved.is_file() and preset is None else None, list(overrides))
    if iterations < 1:
        raise InputError(f"--iterations must be ≥ 1, got {iterations}")
    config = correction_config(base, iterations)
    avatar = Avatar.load(avatar_dir)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    expressive = apply_expression(avatar, setup, expression, pose)
    device = pick_device(config.device)
    prior = _oracle_prior(setup, expression, pose, config, device) if oracle else _real_prior(
        avatar_dir, config, device, weights, lora)
    refined = refine_expression(expressive, setup, prior, config, device=device, progress=progress)
    save_avatar_folder(out_dir, refined, size, setup)
    return refined


def _oracle_prior(setup: HeadSetup, expression: Any, pose: Any, config: CreateConfig, device: torch.device) -> Any:
    from arc2avatar.pipeline.api import _latent_encoder
    from arc2avatar.pipeline.oracle import OraclePrior

    target = deformed_oracle_target(setup, expression, pose).to(device)
    return OraclePrior(target, config.prior, _latent_encoder(config))


def _real_prior(avatar_dir: Path, config: CreateConfig, device: torch.device, weights: Any, lora: Any) -> Any:
    from arc2avatar.pipeline.api import check_lora
    from arc2avatar.prior.guidance import Arc2FaceGuidance
    from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

    identity_file = avatar_dir / "identity.npy"
    if not identity_file.is_file():
        raise InputError(f"{identity_file} is missing: the Arc2Face prior needs the identity embedding that "
                         "`arc2avatar create` saves there (or use --oracle for an offline check)")
    try:
        identity = np.load(identity_file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{identity_file} is not a readable .npy file ({exc})") from None
    if identity.shape != (512,):
        raise InputError(f"{identity_file} holds shape {identity.shape}, expected a 512-d ArcFace embedding")
    lora_path = check_lora(lora)
    paths = resolve_weights(WeightsConfig(root=weights, lora=lora_path), need={"prior"})
    return Arc2FaceGuidance.from_pretrained(paths, torch.from_numpy(identity.astype(np.float32)), device=device,
                                            lora=lora_path, config=config.prior, accel=config.accel)


__all__ = [
    "AnimationConfig",
    "ExpressionSequence",
    "FaceRig",
    "PRESET_NAMES",
    "PresetSequenceConfig",
    "animate",
    "animation_cameras",
    "animation_frames",
    "apply_expression",
    "check_binding",
    "correction_config",
    "deformed_oracle_target",
    "express",
    "expression_coefficients",
    "load_sequence",
    "matrix_to_quat",
    "parse_assignments",
    "preset_sequence",
    "quat_multiply",
    "refine_expression",
    "refine_expression_folder",
    "save_avatar_folder",
    "setup_for_avatar",
    "tangent_neighbours",
    "vertex_frames",
]
