"""Small file helpers shared by every package: atomic writes so nothing is ever half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    >>> with atomic_path("out/avatar.ply") as tmp:
    ...     write_ply(tmp, splats)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


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
