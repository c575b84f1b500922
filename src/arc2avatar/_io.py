"""Small file helpers shared by every package: atomic writes so nothing is ever half-written.

Files written here get the permissions an ordinary ``open(path, "w")`` would give them
(``0o666 & ~umask``: 0644 under the usual umask 022), not ``tempfile.mkstemp``'s private 0600,
so a web server running as another user can serve an output folder (issue 18).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from arc2avatar.errors import InputError, OutputError


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status`` (kernel ≥ 4.7); elsewhere it is read with
    ``os.umask`` set-and-restore (a brief window in which another thread creating a file would
    see umask 022; arc2avatar writes files from one thread).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """Permission bits a new file (0o666) or folder (0o777) gets under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.
    The temporary file is ``.NAME.XXXX.tmp`` plus ``suffix`` (a writer that picks its format by the
    file's suffix, as ffmpeg does, wants the real one: ``".mp4"``).

    A failure to create the folder or the temporary file, to write the temporary file (an
    ``OSError`` naming it) or to rename it raises ``OutputError``: one line naming ``path`` and
    the system's reason (``/proc/x.ply``: no such file or directory), never a traceback.

    >>> with atomic_path("out/avatar.ply") as tmp:
    ...     write_ply(tmp, splats)
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
        os.close(fd)
    except OSError as error:
        raise _write_error(final, error) from None
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as error:
            if error.filename is None or Path(os.fsdecode(error.filename)) != tmp:
                raise  # not about our file (an input the writer reads): keep it as it is
            raise _write_error(final, error) from None
        try:
            if tmp.exists():
                os.chmod(tmp, default_mode())  # mkstemp made it 0600; give it what open() would
            os.replace(tmp, final)
        except OSError as error:
            raise _write_error(final, error) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_error(final: Path, error: OSError) -> OutputError:
    """One line: the output ``final`` and why it cannot be written."""
    reason = error.strerror or type(error).__name__
    if error.errno in (errno.EEXIST, errno.ENOTDIR):  # mkdir/mkstemp under a path that is a file
        reason = f"{error.filename} is not a folder" if error.filename else "a folder on its path is a file"
    hint = "; free disk space or pick another -o" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputError(f"cannot write {final}: {reason}{hint}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> Any:
    """The JSON value in ``path``; ``InputError`` naming ``what`` and the file when it is missing,
    unreadable, larger than ``max_bytes`` (checked before reading), not JSON, or holds an object
    with a duplicate key (``{"smile": 0.2, "smile": 0.9}``: JSON parsers silently keep one of
    them). One reader for every JSON file a user hands us."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{what} {file} does not exist")
    if max_bytes is not None and file.stat().st_size > max_bytes:
        raise InputError(f"{what} {file} is {file.stat().st_size >> 20} MiB, more than the {max_bytes >> 20} MiB "
                         "accepted")
    try:
        return json.loads(file.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, integers too long
        raise InputError(f"{what} {file} is not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except RecursionError:
        raise InputError(f"{what} {file} is nested too deeply to be read") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook: a dict, or ``ValueError`` naming a key given twice."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {duplicate[:40]!r} appears twice in one object")
    return out


def jsonable(obj: Any) -> Any:
    """Plain JSON data: dataclasses → dicts, numpy/torch → lists/numbers, paths → strings,
    non-finite floats → ``None`` (JSON has no NaN/Infinity)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "detach"):  # torch tensor
        return jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy array or scalar (no numpy import here)
        return jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented UTF-8 JSON atomically (see ``jsonable`` for conversions)."""
    text = json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return Path(path)


class JsonlLogger:
    """Append one JSON object per line to a log file, flushed after each record.

    Reopening an existing log (resume) appends; if the previous run died mid-line, a newline is
    written first so the new records stay parseable. Use as a context manager or call ``close``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as existing:
                existing.seek(-1, os.SEEK_END)
                needs_newline = existing.read(1) != b"\n"
        self._file = self.path.open("a", encoding="utf-8")
        if needs_newline:
            self._file.write("\n")
            self._file.flush()

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one line and flush it to the OS."""
        if self._file.closed:
            raise ValueError(f"log {self.path} is closed")
        self._file.write(json.dumps(jsonable(record), ensure_ascii=False, allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; lines that do not parse (a run killed mid-write) are skipped."""
    records: list[dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def npz_size_problem(path: str | os.PathLike, limit: int) -> str | None:
    """Why the ``.npz`` at ``path`` may not be loaded, found WITHOUT decompressing its arrays; else None.

    Refused: not a zip; arrays that would decompress beyond ``limit`` bytes in all (a
    decompression bomb); a member whose ``.npy`` header declares more data than the member holds
    (numpy allocates the declared size before reading); arrays of Python objects (need pickle).
    Only the zip directory and each member's ``.npy`` header are read.
    """
    import zipfile

    import numpy as np

    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(member.file_size for member in members)
            if declared > limit:
                return f"its arrays would decompress to {declared >> 20} MiB, more than the {limit >> 20} MiB accepted"
            for member in members:
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version not in readers:
                        return f"{member.filename} is in .npy format {version}, which is not accepted"
                    shape, _, dtype = readers[version](handle)
                if dtype.hasobject:
                    return f"{member.filename} holds Python objects (they need pickle); refused"
                if int(np.prod(shape, dtype=object)) * dtype.itemsize > member.file_size:
                    return f"{member.filename} declares more data than it holds; the file is corrupt"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, RuntimeError, KeyError) as error:
        return f"not a readable .npz ({type(error).__name__}: {error})"
    return None
