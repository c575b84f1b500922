"""The head template an avatar is bound to: load it (FLAME or built-in) and upsample it (paper §3.4).

``build_head`` loads FLAME or builds the built-in template and upsamples it with parents; the
result (``HeadSetup``) is what splats bind to and what the face rig deforms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from arc2avatar._io import file_sha256
from arc2avatar.errors import InputError

if TYPE_CHECKING:  # the head modules load torch: imported where a template is built
    from arc2avatar.head.model import HeadModel  # typing only (torch)
    from arc2avatar.head.upsample import UpsampledHead  # typing only (torch)

log = logging.getLogger(__name__)

# The inside of FLAME's mouth (``head.flame_mouth``), as a FLAME avatar's bundle records it
# (``template.mouth``); a bundle without it was made before, on FLAME's bare skin.
FLAME_MOUTH_VERSION = 1

# Most subdivision levels of a template part (each ≈ ×4 vertices; 4 levels of the face already
# exceed docs/method.md §3's 40–60K face vertices, and 12 would never finish).
MAX_TEMPLATE_LEVELS = 5


@dataclass(frozen=True)
class TemplateConfig:
    """The head template the avatar is built on (docs/method.md §3; paper §3.4, E.2).

    Attributes:
        kind: "builtin" (our generated head, no licence strings) or "flame" (user-supplied FLAME
            model, docs/method.md §3).
        flame_path: path of the FLAME model (``flame2023_Open.pkl``, ``generic_model.pkl`` or a
            converted ``.npz``); required when kind is "flame".
        masks_path: optional ``FLAME_masks.pkl`` with region masks; derived from geometry if absent.
        face_levels: midpoint-subdivision levels of the face submesh (each ≈ ×4 vertices; docs/method.md §3
            targets ≈ 40–60K face vertices for real runs).
        rest_levels: midpoint-subdivision levels of the rest of the head (docs/method.md §3 targets
            ≈ 20–30K vertices).
    """

    kind: Literal["builtin", "flame"] = "builtin"
    flame_path: str | None = None
    masks_path: str | None = None
    face_levels: int = 2
    rest_levels: int = 1


@dataclass(frozen=True)
class HeadSetup:
    """A template ready for splats.

    Attributes:
        base: the template as loaded (FLAME or built-in).
        upsampled: its upsampled version with parents (the splats bind to these vertices).
        info: JSON-able description stored in avatar bundles (kind, name, levels, file hash).
    """

    base: HeadModel
    upsampled: UpsampledHead
    info: dict[str, Any]


TEMPLATE_KINDS: tuple[str, ...] = ("builtin", "flame")


def template_levels(info: Mapping[str, Any]) -> dict[str, int]:
    """A bundle's ``template`` info, checked (one check for every reader: ``Avatar.load`` runs it,
    so ``export`` refuses what ``animate`` refuses); returns its subdivision levels.

    Refused: a ``kind`` other than ``TEMPLATE_KINDS``; levels that are not integers in
    0..``MAX_TEMPLATE_LEVELS`` (a crafted ``avatar.json`` with 12 levels would otherwise build a
    template that never finishes); a ``mouth`` other than ``FLAME_MOUTH_VERSION``. An empty info
    (an avatar read from a bare PLY) has no levels.
    """
    if not info:
        return {}
    kind = info.get("kind")
    if kind not in TEMPLATE_KINDS:
        raise InputError(f"the avatar's avatar.json has template.kind={repr(kind)[:40]}; expected one of "
                         f"{', '.join(TEMPLATE_KINDS)}: the bundle is corrupt")
    levels: dict[str, int] = {}
    for key, default in (("face_levels", TemplateConfig.face_levels), ("rest_levels", TemplateConfig.rest_levels)):
        value = info.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TEMPLATE_LEVELS:
            raise InputError(f"the avatar's avatar.json has template.{key}={repr(value)[:40]}; expected an integer "
                             f"in 0..{MAX_TEMPLATE_LEVELS}: the bundle is corrupt")
        levels[key] = value
    mouth = info.get("mouth")
    if mouth is not None and (isinstance(mouth, bool) or mouth != FLAME_MOUTH_VERSION):
        raise InputError(f"the avatar's avatar.json has template.mouth={repr(mouth)[:40]}; this arc2avatar knows "
                         f"{FLAME_MOUTH_VERSION}: the avatar was made by a newer arc2avatar, or the bundle is corrupt")
    return levels


def load_base_head(config: TemplateConfig, builtin_name: str | None = None,
                   flame_mouth: bool = True) -> tuple[HeadModel, dict[str, Any]]:
    """The template named by ``config`` and its bundle description. ``builtin_name``: which
    version of the built-in head (an avatar bundle's ``template.name``; default: the newest).
    ``flame_mouth``: FLAME gets the inside of its mouth (``head.flame_mouth``; False for bundles
    that record no ``mouth``); the description records ``mouth`` when it got one."""
    if config.kind == "flame":
        from arc2avatar.head.flame import FlameConfig, load_flame  # lazy: torch (template is torch-free)

        if not config.flame_path:
            raise InputError("template.kind is 'flame' but no FLAME file was given (--flame PATH)")
        path = Path(config.flame_path)
        if not path.is_file():
            raise InputError(f"FLAME file {path} does not exist")
        flame_config = FlameConfig() if flame_mouth else FlameConfig(mouth=None)
        head = load_flame(path, masks_path=config.masks_path, config=flame_config)
        info = {"kind": "flame", "name": head.name, "file": path.name, "sha256": file_sha256(path)}
        if config.masks_path:
            info["masks_file"] = Path(config.masks_path).name
        if "mouth_interior" in head.regions:
            info["mouth"] = FLAME_MOUTH_VERSION
        elif flame_mouth:
            log.warning("FLAME file %s: no mouth opening that opens with the jaw; the template has no mouth inside",
                        path.name)
        return head, info
    from arc2avatar.head.builtin import BUILTIN_NAME, BUILTIN_VERSIONS, builtin_head  # lazy: torch (template is torch-free)

    name = builtin_name or BUILTIN_NAME
    if name not in BUILTIN_VERSIONS:
        raise InputError(f"unknown built-in template {name!r} (known: {', '.join(sorted(BUILTIN_VERSIONS))}); "
                         "the avatar was made by a newer arc2avatar, or its avatar.json is corrupt")
    head = builtin_head(BUILTIN_VERSIONS[name])
    return head, {"kind": "builtin", "name": head.name}


def build_head(config: TemplateConfig, builtin_name: str | None = None, flame_mouth: bool = True) -> HeadSetup:
    """Load the template and upsample it (face and rest separately, docs/method.md §3);
    ``builtin_name`` and ``flame_mouth`` as in ``load_base_head``."""
    from arc2avatar.head.upsample import upsample_head  # lazy: torch (template is torch-free)

    base, info = load_base_head(config, builtin_name, flame_mouth)
    upsampled = upsample_head(base, config.face_levels, config.rest_levels)
    info = {**info, "face_levels": config.face_levels, "rest_levels": config.rest_levels}
    log.info(
        "template %s: %d vertices → %d upsampled (%d face)",
        base.name, base.num_vertices, upsampled.head.num_vertices, int(upsampled.head.face_mask.sum()),
    )
    return HeadSetup(base=base, upsampled=upsampled, info=info)
