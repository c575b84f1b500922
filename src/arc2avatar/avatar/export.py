"""Export an avatar in the formats other tools open as they are (docs/exports.md, issue 18).

``export_avatar(avatar, "head.spz", up="y")`` writes one file, atomically (nothing is left
behind when anything fails). The format follows the file's suffix unless ``format`` names it;
the two must agree. Every check (format, suffix, up axis, expression names) runs before anything
is written and fails with one ``InputError`` line.

Formats (``FORMATS``; layouts and versions in each writer's module docstring):

=================  ==================  ===================================================
name               suffix              writer
=================  ==================  ===================================================
ply                .ply                compact 3DGS PLY, SH degree 0, 14 float32 per splat
ply-unity          .ply                62-float 3DGS PLY, SH-3 zero padded (Unity importer)
compressed-ply     .compressed.ply     PlayCanvas compressed PLY (gsply)
spz                .spz                Niantic SPZ version 2 (by hand)
sog                .sog                PlayCanvas SOG v2, bundled (by hand; y-up by default)
ksplat             .ksplat             GaussianSplats3D SplatBuffer 0.1, level 1 (by hand)
splat              .splat              antimatter15 .splat, 32 bytes per splat (by hand)
glb                .glb                glTF 2.0 + KHR_gaussian_splatting, expression morph
                                       targets (by hand)
=================  ==================  ===================================================

Up axis: ``up="z"`` keeps arc2avatar's frame (z up, face toward +y); ``up="y"`` turns the
avatar by (x, y, z) → (−x, z, y) (``formats.data.Y_UP_MATRIX``) so it stands upright facing
the default camera of y-up tools. ``up=None`` takes the format's convention: y for ``.glb`` and
``.sog`` (both formats define +Y up), z for the others (the same frame as ``avatar.ply``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from arc2avatar.avatar.formats import glb, ksplat, ply, sog, splat, spz
from arc2avatar.avatar.formats.data import UP_AXES, SplatArrays
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import FaceRig, apply_expression, setup_for_avatar
from arc2avatar.avatar.safety import check_derived_output
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.errors import InputError

log = logging.getLogger(__name__)

MAX_MORPH_TARGETS = 32  # more expressions than this (FLAME's 100 components) are not exported as morphs


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--format`` value.
        suffixes: file name endings it is written with (lower case, the first is the usual one).
        writer: ``writer(path, arrays)`` writes the file atomically.
        default_up: the frame used when the caller gives none ("z" or "y").
        summary: one line for help texts.
    """

    name: str
    suffixes: tuple[str, ...]
    writer: Callable[..., Path]
    default_up: str
    summary: str


def _writers() -> dict[str, ExportFormat]:
    formats = [
        ExportFormat("ply", (".ply",), ply.write_compact_ply, "z", "compact 3DGS PLY (SH degree 0, 14 floats)"),
        ExportFormat("ply-unity", (".ply",), ply.write_unity_ply, "z", "62-float 3DGS PLY for the Unity importer"),
        ExportFormat("compressed-ply", (".compressed.ply",), ply.write_compressed_ply, "z",
                     "PlayCanvas compressed PLY (needs gsply)"),
        ExportFormat("spz", (".spz",), spz.write_spz, "z", "Niantic SPZ v2"),
        ExportFormat("sog", (".sog",), sog.write_sog, "y", "PlayCanvas SOG v2, bundled (y-up by its definition)"),
        ExportFormat("ksplat", (".ksplat",), ksplat.write_ksplat, "z", "GaussianSplats3D .ksplat (compression level 1)"),
        ExportFormat("splat", (".splat",), splat.write_splat, "z", "antimatter15 .splat (32 bytes per splat)"),
        ExportFormat("glb", (".glb",), glb.write_glb, "y", "glTF 2.0 with KHR_gaussian_splatting"),
    ]
    return {f.name: f for f in formats}


FORMAT_NAMES: tuple[str, ...] = ("ply", "ply-unity", "compressed-ply", "spz", "sog", "ksplat", "splat", "glb")


def formats() -> dict[str, ExportFormat]:
    """The export formats by name."""
    return _writers()


def _matched_suffix(path: Path, registry: Mapping[str, ExportFormat]) -> str | None:
    name = path.name.lower()
    suffixes = sorted({s for f in registry.values() for s in f.suffixes}, key=len, reverse=True)
    return next((s for s in suffixes if name.endswith(s) and len(name) > len(s)), None)


def resolve_format(path: str | os.PathLike, format: str | None = None) -> ExportFormat:
    """The format to write ``path`` in: ``format`` if given (it must agree with the suffix),
    else the one its suffix names. ``InputError`` otherwise."""
    path = Path(path)
    registry = _writers()
    suffix = _matched_suffix(path, registry)
    if format is not None:
        chosen = registry.get(format.lower())
        if chosen is None:
            raise InputError(f"unknown export format {format!r}; use one of {', '.join(registry)}")
        if suffix not in chosen.suffixes:
            raise InputError(f"{path}: the {chosen.name} format is written to a file ending in "
                             f"{' or '.join(chosen.suffixes)}; rename the output or change --format")
        return chosen
    if suffix is None:
        endings = ", ".join(sorted({s for f in registry.values() for s in f.suffixes}))
        raise InputError(f"{path}: cannot tell the export format from the file name; end it in one of "
                         f"{endings}, or pass --format")
    return next(f for f in registry.values() if suffix in f.suffixes)  # .ply → the compact layout


def expression_morphs(avatar: Avatar, setup: HeadSetup, up: str) -> dict[str, np.ndarray]:
    """Name → (N, 3) float32 displacement of every splat at that expression's weight 1, in ``up``'s frame."""
    rig = FaceRig(avatar.splats, setup)
    neutral = SplatArrays.from_splats(avatar.splats, up).means_n3
    names = list(rig.head.expression_names)
    return {name: SplatArrays.from_splats(rig.pose({name: 1.0}), up).means_n3 - neutral for name in names}


def export_avatar(
    avatar: Avatar,
    path: str | os.PathLike,
    format: str | None = None,
    up: str | None = None,
    expression: Mapping[str, float] | None = None,
    *,
    pose: Mapping[str, Any] | None = None,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    morph_targets: bool | None = None,
    source: str | os.PathLike | None = None,
) -> Path:
    """Write ``avatar`` to ``path`` in another tool's format; returns the path written.

    Args:
        avatar: a loaded avatar (``Avatar.load``).
        path: the file to write (replaced atomically if it exists).
        format: one of ``FORMAT_NAMES``; None takes it from the suffix.
        up: "z" (arc2avatar's frame), "y" (y-up tools), None (the format's convention).
        expression: name → weight applied before writing (``arc2avatar.avatar.rig``; needs the
            avatar's template binding, and ``flame`` for FLAME avatars); ``pose``: FLAME joints.
        morph_targets: ``.glb`` only: write the template's named expressions as morph targets.
            None: when the avatar has a template binding that can be rebuilt, no expression is
            applied, and the template has at most ``MAX_MORPH_TARGETS`` expressions.
        source: the folder, bundle or ``.ply`` the avatar was loaded from: ``path`` may then not
            be one of its own files (``arc2avatar.avatar.safety``; the CLI always passes it).
    """
    path = Path(path)
    chosen = resolve_format(path, format)
    up = chosen.default_up if up is None else up
    if up not in UP_AXES:
        raise InputError(f"unknown up axis {up!r}; use one of {', '.join(UP_AXES)}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the file to write")
    if source is not None:
        check_derived_output(path, source)  # never over the avatar's own files (issue 26)
    if morph_targets and chosen.name != "glb":
        raise InputError(f"morph targets exist only in the glb format, not {chosen.name}")

    setup = None
    if expression or pose:
        setup = setup_for_avatar(avatar, flame, flame_masks)
        avatar = apply_expression(avatar, setup, dict(expression or {}), pose)
    morphs = None
    if chosen.name == "glb" and morph_targets is not False:
        morphs = _glb_morphs(avatar, up, flame, flame_masks, required=bool(morph_targets),
                             expressed=bool(expression or pose))
    arrays = SplatArrays.from_splats(avatar.splats, up)
    if morphs:
        return chosen.writer(path, arrays, morphs)
    return chosen.writer(path, arrays)


def _glb_morphs(avatar: Avatar, up: str, flame: Any, flame_masks: Any, required: bool,
                expressed: bool) -> dict[str, np.ndarray] | None:
    """Expression morph targets for a glb, or None (with the reason logged) when there are none."""
    kind = avatar.template.get("kind")
    reason = None
    if expressed:
        reason = "an expression is applied (the file holds that face)"
    elif kind not in ("builtin", "flame"):
        reason = "the avatar has no template binding (a bare .ply)"
    elif kind == "flame" and flame is None:
        reason = "the avatar was made on FLAME; pass --flame to rebuild its template"
    if reason is None:
        setup = setup_for_avatar(avatar, flame, flame_masks)
        count = len(setup.upsampled.head.expression_names)
        if count > MAX_MORPH_TARGETS:
            reason = f"the template has {count} expression components (more than {MAX_MORPH_TARGETS})"
        else:
            return expression_morphs(avatar, setup, up)
    if required:
        raise InputError(f"cannot write expression morph targets: {reason}")
    log.info("glb without morph targets: %s", reason)
    return None
