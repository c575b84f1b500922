"""Guards around what arc2avatar deletes, replaces and shares: owned folders, folder locks, outputs.

Light on purpose (standard library only): every package and the CLI may import it.

* ``mark_owned`` / ``check_replaceable``: a folder is only ever deleted or replaced when this tool
  created it (a marker file inside it) and it neither is nor holds the working folder, an input,
  an avatar, the home folder or a filesystem root.
* ``folder_lock``: an exclusive lock (``fcntl.flock``) on a lock file inside an output folder,
  held for a whole run, so two runs on one folder cannot interleave; the second stops at once.
* ``check_output_file``: an output file given with ``-o`` may not be one of the inputs nor lie
  inside an avatar's bundle folder, whose files describe the avatar.
* ``check_stays_inside``: a file read from an avatar folder may not be a symbolic link (or lie
  under one) that leads out of that folder.

Written by hand: the rules are this project's (which folders are ours, what must never be
replaced); the locking is the operating system's ``flock``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from arc2avatar.errors import InputError

LOCK_NAME = ".arc2avatar.lock"
OWNED_MARKER = ".arc2avatar-owned"


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _contains(outer: Path, inner: Path) -> bool:
    """True when ``inner`` is ``outer`` or lies inside it (both resolved)."""
    return inner == outer or outer in inner.parents


def mark_owned(folder: str | os.PathLike, kind: str) -> None:
    """Write the marker saying this tool created ``folder`` (``kind``: what it holds)."""
    (Path(folder) / OWNED_MARKER).write_text(f"{kind}\n", encoding="utf-8")


def is_owned(folder: str | os.PathLike, kind: str) -> bool:
    marker = Path(folder) / OWNED_MARKER
    try:
        return marker.is_file() and not marker.is_symlink() and marker.read_text(encoding="utf-8").strip() == kind
    except (OSError, UnicodeDecodeError):
        return False


def check_replaceable(target: str | os.PathLike, kind: str, protected: Iterable[str | os.PathLike] = ()) -> None:
    """Raise ``InputError`` unless ``target`` may be deleted and replaced by a new ``kind`` folder.

    Refused: a symlink or a non-folder; a folder without this tool's ``kind`` marker; the working
    folder or a folder holding it; the home folder, a filesystem root or a folder holding home; any
    ``protected`` path (an input, an avatar) or a folder holding one.
    """
    given = Path(target)
    if given.is_symlink():
        raise InputError(f"{given} is a symbolic link; refusing to replace it (remove it yourself or pick another -o)")
    if not given.is_dir():
        raise InputError(f"{given} exists and is not a folder; refusing to replace it (pick another -o)")
    path = _resolved(given)
    if path.parent == path:
        raise InputError(f"{given} is a filesystem root; refusing to replace it")
    guarded = [("the working folder", _resolved(Path.cwd())), ("your home folder", _resolved(Path.home()))]
    guarded += [(f"input {p}", _resolved(p)) for p in protected if p is not None]
    for what, other in guarded:
        if _contains(path, other):
            where = "is" if path == other else "holds"
            raise InputError(f"{given} {where} {what}; refusing to replace it (pick another -o)")
    if not is_owned(path, kind):
        raise InputError(f"{given} was not written by arc2avatar as a {kind} (no {OWNED_MARKER} marker); "
                         "refusing to replace it: remove it yourself or pick another -o")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the block.

    A second holder (another process, or the same one) gets ``InputError`` at once, naming the
    folder. The holder removes the lock file when the block ends, still holding the lock, so a
    finished folder keeps no empty ``.arc2avatar.lock`` (issue 26); a run that took the lock on a
    file removed meanwhile (it opened the file just before the previous holder removed it) sees
    that the path no longer names its file and stops as "in use". The lock itself ends with the
    process, so a killed run never leaves a stale lock (only its empty file).
    """
    import fcntl

    folder = Path(folder)
    lock_path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle: IO[bytes] = open(lock_path, "a+b")  # noqa: SIM115 — closed below
    except OSError as error:
        raise InputError(f"cannot write into {folder}: {error.strerror}") from error
    held = False
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = _same_file(lock_path, handle)
        except OSError:
            pass
        if not held:
            raise InputError(f"{folder} is in use by another arc2avatar run (its lock {LOCK_NAME} is held); "
                             "wait for it to finish or pick another -o")
        yield folder
    finally:
        if held and _same_file(lock_path, handle):
            with contextlib.suppress(OSError):
                lock_path.unlink()
        handle.close()  # closing releases the flock


def _same_file(path: Path, handle: IO[bytes]) -> bool:
    """True when ``path`` still names the open file ``handle`` (same device and inode)."""
    try:
        named, opened = path.stat(), os.fstat(handle.fileno())
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def remove_stale_temporaries(folder: str | os.PathLike, subfolders: Iterable[str] = ()) -> list[Path]:
    """Delete the temp files a killed writer left (``_io.atomic_path``'s ``.NAME.*.tmp``, and
    ``.NAME.*.tmp.mp4`` for videos).

    Call only while holding ``folder_lock(folder)``: then no live writer owns them.
    """
    removed: list[Path] = []
    for where in (Path(folder), *(Path(folder) / s for s in subfolders)):
        if not where.is_dir():
            continue
        for path in (*where.glob(".*.tmp"), *where.glob(".*.tmp.*")):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed


def check_output_file(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                      bundles: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output file that is an input, a folder, or lies inside an avatar's bundle folder."""
    given = Path(out)
    if given.is_dir():
        raise InputError(f"output {given} is a folder; give a file name (e.g. {given / 'turntable.mp4'})")
    path = _resolved(given)
    for item in inputs:
        if item is not None and Path(item).exists() and _resolved(item) == path:
            raise InputError(f"output {given} is the input {item}; refusing to overwrite it (pick another -o)")
    for bundle in bundles:
        if bundle is not None and Path(bundle).is_dir() and _contains(_resolved(bundle), path):
            raise InputError(f"output {given} lies inside the avatar bundle {bundle}; refusing to overwrite "
                             "the avatar's files (pick another -o)")
    return given


def check_stays_inside(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``path`` unless it leads out of ``folder`` through a symbolic link (``InputError``).

    A link inside the folder to another file of the folder is fine; one to anywhere else is
    refused, so an avatar folder handed over (or unpacked) cannot make a reader open files
    outside it.
    """
    given = Path(path)
    target, outer = _resolved(given), _resolved(folder)
    if not _contains(outer, target):
        raise InputError(f"{given} is a symbolic link to {target}, outside {folder}; refusing to follow it "
                         "(copy the file into the avatar folder instead)")
    return given
