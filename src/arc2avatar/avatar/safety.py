"""Which files of an avatar folder a derived output (``render -o``, ``viewer -o``, ``animate -o``,
``export -o``, ``template -o``) must never replace (issues 19, 26). The rules themselves are in
``arc2avatar._guard``.

An avatar folder's own files are the bundle (every file under ``avatar/``), the files that
describe the run and the media the run itself wrote (``views.png``, ``turntable.mp4``,
``progress.png``; ``layout`` module docstring): ``render`` without ``-o`` writes
``RENDERED_VIDEO`` / ``RENDERED_SHEET`` beside them instead. Only ``viewer.html`` is rewritten in
place (``arc2avatar viewer`` exists to write it again).
"""

from __future__ import annotations

import os
from pathlib import Path

from arc2avatar._guard import check_output_file
from arc2avatar.errors import InputError

#: Files of an output folder that describe the avatar or its run, or that the run rendered
#: (never replaced by a derived output).
OWN_FILES: tuple[str, ...] = ("avatar.ply", "config.yaml", "log.jsonl", "metrics.json", "identity.npy", "checkpoint.pt",
                              "views.png", "turntable.mp4", "progress.png")
#: ``render``'s outputs when no ``-o`` is given (beside the run's own ``turntable.mp4`` / ``views.png``).
RENDERED_VIDEO = "rendered_turntable.mp4"
RENDERED_SHEET = "rendered_views.png"
BUNDLE_FILES: tuple[str, ...] = ("avatar.json", "splats.safetensors")


def avatar_folder_of(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """(output folder, bundle folder or None) of an avatar given as a folder, a bundle folder or a .ply."""
    source = Path(source)
    if source.is_file():
        return source.parent, None
    if (source / "avatar.json").is_file():
        return source.parent, source
    return source, (source / "avatar") if (source / "avatar").is_dir() else None


def check_derived_output(out: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Refuse ``out`` when it is the avatar's input file, one of its folder's own files or inside its bundle."""
    folder, bundle = avatar_folder_of(source)
    own = [Path(source)] + [folder / name for name in OWN_FILES]
    if bundle is not None:
        own += [bundle / name for name in BUNDLE_FILES]
    path = check_output_file(out, inputs=own, bundles=[bundle] if bundle is not None else [])
    if Path(os.path.abspath(path)).resolve().parent == folder.resolve() and path.name in OWN_FILES:
        raise InputError(f"output {path} would replace the avatar's own {path.name}; pick another -o")
    return path


def check_template_out(out_dir: str | os.PathLike) -> None:
    """``template -o``: never over a folder holding an avatar (finished or not): README's promise."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder")
    for name in ("avatar/avatar.json", "avatar.ply", "checkpoint.pt"):
        if (out_dir / name).exists():
            raise InputError(f"{out_dir} already holds an avatar ({name}); a finished avatar is never "
                             "overwritten: choose another output folder")
