"""antimatter15's ``.splat`` (the WebGL splat viewer's format), written by hand.

Layout: no header; 32 bytes per splat, little-endian: position float32 × 3, scale float32 × 3
(linear standard deviations), colour uint8 × 4 (RGB = round(255 · clamp(SH_C0·f_dc + 0.5)),
A = round(255 · sigmoid(logit))), rotation uint8 × 4 (the unit quaternion w, x, y, z as
round(128 · c + 128), clamped to 0..255). Splats are sorted by decreasing
``exp(sum of log scales) · alpha`` (large, opaque splats first), as the reference converter does,
so a viewer that streams the file draws the bulk of the head first. SH degree 0 only (the
format has no higher bands). No library writes it; it is 15 lines of numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])


def encode_splat(arrays: SplatArrays) -> bytes:
    """The ``.splat`` bytes of ``arrays`` (layout in the module docstring)."""
    alpha = arrays.alpha()
    order = np.argsort(-(np.exp(arrays.log_scales_n3.astype(np.float64).sum(axis=-1)) * alpha), kind="stable")
    record = np.zeros(arrays.count, dtype=RECORD)
    record["position"] = arrays.means_n3[order]
    record["scale"] = arrays.scales()[order]
    rgba = np.concatenate([arrays.rgb(), alpha[:, None]], axis=-1)[order]
    record["rgba"] = np.clip(np.rint(rgba * 255.0), 0, 255)
    record["rotation"] = np.clip(np.rint(arrays.quats_n4[order].astype(np.float64) * 128.0 + 128.0), 0, 255)
    return record.tobytes()


def write_splat(path: Path, arrays: SplatArrays) -> Path:
    atomic_write_bytes(path, encode_splat(arrays))
    return path
