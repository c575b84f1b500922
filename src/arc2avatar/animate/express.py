"""``arc2avatar express``: an avatar folder with an expression applied, written as a new folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from arc2avatar._io import default_mode
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.outputs import write_avatar_outputs
from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.errors import InputError
from arc2avatar.head.names import check_expression_names
from arc2avatar.viewer import VIEWER_NAME, write_avatar_viewer


def check_new_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"output {out_dir} already exists and is not an empty folder; choose a new folder")


def save_avatar_folder(out_dir: str | os.PathLike, avatar: Avatar, size: int = 256, setup: HeadSetup | None = None) -> Path:
    """Write PLY + bundle + 16-view sheet + ``viewer.html`` into a NEW folder, atomically (built
    beside it, then renamed). ``setup`` (the avatar's template) gives the viewer its expression
    sliders; None writes a viewer without them."""
    out_dir = Path(out_dir)
    check_new_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(work, default_mode(directory=True))  # mkdtemp's 0700 → what mkdir gives (issue 18)
        write_avatar_outputs(work, avatar, size=size, video=False)
        write_avatar_viewer(work / VIEWER_NAME, avatar, setup, final_path=out_dir / VIEWER_NAME)
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
    """``arc2avatar express``: load an avatar folder, apply the expression, write a new folder.
    Expression names are checked against the template kind's before the template is built."""
    check_new_out_dir(Path(out_dir))
    avatar = Avatar.load(avatar_dir)
    if avatar.template.get("kind") in ("builtin", "flame"):
        check_expression_names(avatar.template["kind"], expression)
    setup = setup_for_avatar(avatar, flame, flame_masks)
    expressive = apply_expression(avatar, setup, expression, pose)
    save_avatar_folder(out_dir, expressive, size, setup)
    return expressive
