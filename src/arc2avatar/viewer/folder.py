"""``viewer.html`` for avatars and avatar folders (what ``create``, ``express`` and
``arc2avatar viewer`` call)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from arc2avatar.errors import InputError
from arc2avatar.splats.bundle import MANIFEST_FILE as BUNDLE_MANIFEST
from arc2avatar.viewer.page import VIEWER_NAME, write_viewer
from arc2avatar.viewer.scene import ViewerConfig, avatar_scene
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import setup_for_avatar
from arc2avatar.avatar.safety import check_derived_output
from arc2avatar.avatar.template import HeadSetup

log = logging.getLogger(__name__)


def write_avatar_viewer(path: str | os.PathLike, avatar: Avatar, setup: HeadSetup | None,
                        config: ViewerConfig = ViewerConfig(), *, final_path: str | os.PathLike | None = None) -> Path:
    """Write the page of ``avatar`` to ``path`` (atomically); ``setup`` None = no expression sliders.
    ``final_path``: where the page will be once its folder is moved into place (``express`` builds
    the folder under a temporary name); the log names it instead of ``path``."""
    scene = avatar_scene(avatar, setup, config)
    written = write_viewer(path, scene, config)
    log.info("viewer %s: %d splats, %d expression sliders, %.1f MB", final_path or written, scene.num_splats,
             len(scene.expression_names), written.stat().st_size / 1e6)
    return written


def viewer_for_folder(
    avatar_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    flame: str | os.PathLike | None = None,
    flame_masks: str | os.PathLike | None = None,
    expressions: bool = True,
    config: ViewerConfig = ViewerConfig(),
) -> Path:
    """``arc2avatar viewer``: the page of an existing avatar folder (default ``<output folder>/viewer.html``).

    A folder with a bundle gets its template rebuilt (``setup_for_avatar``: FLAME avatars need
    ``flame``) and expression sliders; a bare ``.ply`` or ``expressions=False`` gives a page
    without sliders. An existing page at ``out`` is replaced (it is derived from the avatar).
    """
    source = Path(avatar_dir)
    if not source.exists():
        raise InputError(f"{source} does not exist; give an avatar folder written by `arc2avatar create`")
    if out is not None:
        check_derived_output(out, source)
    avatar = Avatar.load(source)
    has_binding = avatar.template.get("kind") in ("builtin", "flame")
    setup = setup_for_avatar(avatar, flame, flame_masks) if expressions and has_binding else None
    if expressions and not has_binding:
        log.warning("%s has no face binding (a bare PLY?): the viewer gets no expression sliders", source)
    return write_avatar_viewer(out if out is not None else beside_avatar(source, VIEWER_NAME), avatar, setup, config)


def beside_avatar(source: Path, name: str) -> Path:
    """Where a page derived from the avatar at ``source`` goes by default: ``name`` in its output
    folder (not inside a bundle folder, not next to a bare ``.ply``)."""
    inside = source.is_file() or (source / BUNDLE_MANIFEST).is_file()
    return (source.parent if inside else source) / name


__all__ = ["beside_avatar", "viewer_for_folder", "write_avatar_viewer"]
