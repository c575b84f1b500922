"""Builders of hostile input files for the reliability tests (issue 19): decompression bombs,
pickle payloads, crafted PLY headers. Each writes a small file; none runs what it builds."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int) -> Path:
    """A PNG whose header declares ``side``×``side`` RGB pixels (a few hundred bytes on disk)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


class _Payload:
    """Unpickling this would call ``os.system`` (never done: the readers must refuse it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_payload(path: Path, marker: Path, wrap: bool = True) -> Path:
    """A pickle that would create ``marker`` if loaded unsafely (inside a dict, like a FLAME file)."""
    obj = {"v_template": _Payload(marker)} if wrap else _Payload(marker)
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def npz_bomb(path: Path, declared_shape: tuple[int, ...] = (1 << 20, 1 << 20)) -> Path:
    """A .npz whose member's .npy header declares a huge float64 array over a few bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": declared_shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("v_template.npy", header.getvalue() + b"\x00" * 64)
    return path


def zip_bomb_npz(path: Path, declared_bytes: int = 2 << 30) -> Path:
    """A .npz whose zip directory declares ``declared_bytes`` decompressed (as a real bomb's does:
    zip readers trust it, and Python's stops there), over a few bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (declared_bytes // 8,)})
    info = zipfile.ZipInfo("v_template.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, header.getvalue() + b"\x00" * 64)
        info.file_size = declared_bytes  # the central directory, written at close, declares the bomb's size
    return path


def ply(path: Path, header: list[str], data: bytes = b"", end: bool = True) -> Path:
    """A PLY with the given header lines (``ply`` and ``end_header`` added) and raw data."""
    text = "\n".join(["ply", *header, *(["end_header"] if end else [])]) + "\n"
    path.write_bytes(text.encode("ascii") + data)
    return path


SPLAT_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                    "rot_0", "rot_1", "rot_2", "rot_3")


def splat_ply(path: Path, rows: np.ndarray, count: int | None = None, order: str = "<",
              fmt: str = "binary_little_endian") -> Path:
    """A 14-property splat PLY of ``rows`` (N, 14) float32, declaring ``count`` rows (default N)."""
    n = len(rows) if count is None else count
    header = [f"format {fmt} 1.0", f"element vertex {n}", *(f"property float {p}" for p in SPLAT_PROPERTIES)]
    return ply(path, header, np.asarray(rows, dtype=order + "f4").tobytes())


def good_rows(n: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 14)).astype(np.float32) * 0.1
    rows[:, 7:10] = -3.0
    rows[:, 10] = 1.0
    return rows
