"""Niantic's ``.spz`` (version 2), written by hand.

Layout (all little-endian), the whole file one gzip stream:

* header, 16 bytes: magic ``0x5053474E`` ("NGSP") u32, version u32 = 2, splat count u32, SH
  degree u8 = 0, fractional bits u8 = ``FRACTIONAL_BITS``, flags u8 = 0, reserved u8 = 0;
* positions, 9 bytes per splat: x, y, z as 24-bit signed fixed point (value · 2^bits);
* alphas, 1 byte: round(sigmoid(logit) · 255);
* colours, 3 bytes: round(f_dc · 0.15 · 255 + 127.5) (SH-0 coefficients, "wide" range);
* scales, 3 bytes: round((log std + 10) · 16);
* rotations, 3 bytes: x, y, z of the unit quaternion with w ≥ 0, round((c + 1) · 127.5);
* no SH block (degree 0).

Why version 2 and by hand: SPZ v3 only changes the rotation block (4-byte "smallest three")
and GaussianSplats3D reads only v2; Spark, gsply and Niantic's library read v2 as well. gsply,
the Python library that writes SPZ, writes v3 and v4 only, so the ~30 lines are ours (gsply
reads our files back in the tests).

Frame: coordinates are written as given, no hidden axis flip. Niantic's reference library
names its internal frame RUB (x right, y up, z back, three.js' convention), which is exactly
what ``--up y`` writes; Spark reads the file as written.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays
from arc2avatar.errors import InputError

MAGIC = 0x5053474E  # "NGSP"
VERSION = 2
FRACTIONAL_BITS = 12  # position step 2^-12 ≈ 0.00024 world units (a head is ≈ 2 units tall)
COLOR_SCALE = 0.15  # SPZ's colour quantisation range factor
SCALE_OFFSET, SCALE_STEP = 10.0, 16.0  # byte = (log std + 10) · 16
GZIP_LEVEL = 9


def _u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def encode_spz(arrays: SplatArrays) -> bytes:
    """The gzip-compressed SPZ v2 bytes of ``arrays`` (layout in the module docstring)."""
    n = arrays.count
    fixed = np.rint(arrays.means_n3.astype(np.float64) * (1 << FRACTIONAL_BITS))
    limit = (1 << 23) - 1
    if n and float(np.abs(fixed).max()) > limit:
        raise InputError(f"splat positions reach {np.abs(arrays.means_n3).max():.1f} units; SPZ with "
                         f"{FRACTIONAL_BITS} fractional bits holds ±{limit / (1 << FRACTIONAL_BITS):.0f}")
    positions = np.ascontiguousarray(fixed.astype("<i4").view(np.uint8).reshape(n, 3, 4)[:, :, :3])  # low 3 bytes
    alphas = _u8(arrays.alpha() * 255.0)
    colors = _u8(arrays.f_dc_n3.astype(np.float64) * (COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((arrays.log_scales_n3.astype(np.float64) + SCALE_OFFSET) * SCALE_STEP)
    quats = arrays.quats_n4.astype(np.float64)
    quats = np.where(quats[:, :1] < 0, -quats, quats)  # w ≥ 0, so w = sqrt(1 − |xyz|²) on reading
    rotations = _u8((quats[:, 1:] + 1.0) * 127.5)
    header = struct.pack("<IIIBBBB", MAGIC, VERSION, n, 0, FRACTIONAL_BITS, 0, 0)
    body = b"".join(a.tobytes() for a in (positions, alphas, colors, scales, rotations))
    return gzip.compress(header + body, compresslevel=GZIP_LEVEL, mtime=0)


def write_spz(path: Path, arrays: SplatArrays) -> Path:
    atomic_write_bytes(path, encode_spz(arrays))
    return path
