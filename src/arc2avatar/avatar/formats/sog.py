"""PlayCanvas' SOG ("Spatially Ordered Gaussians", version 2, bundled ``.sog``), written by hand.

Layout: a ZIP archive (stored, no compression: the images are already compressed) holding
``meta.json`` and five lossless WebP images of W × H pixels (W = ceil(√N), row-major from the
top-left, pixel i = splat i, splats in Morton order of their positions):

* ``means_l.webp`` / ``means_u.webp`` (RGB): x, y, z after the symmetric log transform
  n = sign(v)·ln(1 + |v|), quantised to 16 bits between ``meta.means.mins`` / ``maxs``; low
  and high bytes in the two images.
* ``quats.webp`` (RGBA): "smallest three": the quaternion (w, x, y, z) with its largest-magnitude
  component made positive and dropped; the other three, in order, as
  byte = round((c·√2 + 1) / 2 · 255) for c ∈ [−√2/2, √2/2]; A = 252 + the index of the dropped
  component.
* ``scales.webp`` (RGB): per axis, the index into ``meta.scales.codebook`` (256 log standard
  deviations, as the PLY's ``scale_*``).
* ``sh0.webp`` (RGBA): RGB = indices into ``meta.sh0.codebook`` (256 SH-0 coefficients);
  A = round(255 · alpha).

``meta.json``: ``{"version": 2, "count": N, "antialias": false, "means": {"mins", "maxs", "files"},
"scales": {"codebook", "files"}, "quats": {"files"}, "sh0": {"codebook", "files"}}``; no
``shN`` (SH degree 0). The format's frame is y up, z back, so ``.sog`` is written y-up unless
asked otherwise. Codebooks are 1-D k-means (Lloyd's iterations from quantiles) over every
value of the attribute.

Why by hand: PlayCanvas' writer is splat-transform (Node.js; its SOG writer wants a GPU for
k-means on large scenes); no Python library writes SOG. Pillow encodes the lossless WebP
images (``exact=True`` keeps colour under zero alpha); Spark reads our files in the browser test.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays

VERSION = 2
CODEBOOK_SIZE = 256
KMEANS_ITERATIONS = 16
# Lossless WebP effort (Pillow's "quality" for lossless): 75 writes a 110K-splat image set in
# ≈ 1.5 s instead of ≈ 17 s at 100, within 1 % of its size.
WEBP_EFFORT = 75
QUAT_RANGE = math.sqrt(0.5)  # the three kept components lie in [−√2/2, √2/2]
FILES = {"means": ["means_l.webp", "means_u.webp"], "scales": ["scales.webp"], "quats": ["quats.webp"],
         "sh0": ["sh0.webp"]}


def morton_order(means_n3: np.ndarray, bits: int = 10) -> np.ndarray:
    """Indices sorting points along a z-order curve (neighbours stay together)."""
    low, high = means_n3.min(axis=0), means_n3.max(axis=0)
    cells = ((means_n3 - low) / np.maximum(high - low, 1e-12) * ((1 << bits) - 1)).astype(np.uint64)
    code = np.zeros(len(means_n3), dtype=np.uint64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def codebook_1d(values: np.ndarray, size: int = CODEBOOK_SIZE, iterations: int = KMEANS_ITERATIONS
                ) -> tuple[np.ndarray, np.ndarray]:
    """(sorted codebook (size,), uint8 index of every value): 1-D k-means from quantiles."""
    flat = values.astype(np.float64).reshape(-1)
    centres = np.quantile(flat, (np.arange(size) + 0.5) / size)
    for _ in range(iterations):
        centres = np.unique(centres)
        edges = (centres[1:] + centres[:-1]) / 2
        label = np.searchsorted(edges, flat)
        sums = np.bincount(label, weights=flat, minlength=len(centres))
        counts = np.bincount(label, minlength=len(centres))
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    centres = np.sort(np.pad(centres, (0, size - len(centres)), mode="edge"))
    label = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
    return centres, label.astype(np.uint8).reshape(values.shape)


def _image(pixels_n_c: np.ndarray, width: int) -> bytes:
    from PIL import Image

    n, channels = pixels_n_c.shape
    height = max(1, math.ceil(n / width))
    grid = np.zeros((height * width, channels), dtype=np.uint8)
    grid[:n] = pixels_n_c
    buffer = io.BytesIO()
    Image.fromarray(grid.reshape(height, width, channels), "RGBA" if channels == 4 else "RGB").save(
        buffer, "WEBP", lossless=True, quality=WEBP_EFFORT, exact=True)
    return buffer.getvalue()


def _smallest_three(quats_n4: np.ndarray) -> np.ndarray:
    """(N, 4) uint8: three kept components and 252 + the dropped one's index (w, x, y, z order)."""
    largest = np.abs(quats_n4).argmax(axis=-1)
    sign = np.where(np.take_along_axis(quats_n4, largest[:, None], axis=-1) < 0, -1.0, 1.0)
    q = quats_n4 * sign
    keep = np.array([[j for j in range(4) if j != k] for k in range(4)])[largest]  # (N, 3)
    kept = np.take_along_axis(q, keep, axis=-1)
    out = np.empty((len(q), 4), dtype=np.uint8)
    out[:, :3] = np.clip(np.rint((kept / QUAT_RANGE * 0.5 + 0.5) * 255.0), 0, 255)
    out[:, 3] = 252 + largest
    return out


def encode_sog(arrays: SplatArrays) -> bytes:
    """The bundled ``.sog`` bytes of ``arrays`` (layout in the module docstring)."""
    n = arrays.count
    order = morton_order(arrays.means_n3.astype(np.float64)) if n else np.zeros(0, dtype=np.int64)
    width = max(1, math.ceil(math.sqrt(n)))
    means = arrays.means_n3.astype(np.float64)[order]
    logged = np.sign(means) * np.log1p(np.abs(means))
    mins, maxs = (logged.min(0), logged.max(0)) if n else (np.zeros(3), np.zeros(3))
    q16 = np.rint((logged - mins) / np.where(maxs > mins, maxs - mins, 1.0) * 65535).astype(np.uint16)
    scale_book, scale_index = codebook_1d(arrays.log_scales_n3[order]) if n else (np.zeros(CODEBOOK_SIZE), None)
    color_book, color_index = codebook_1d(arrays.f_dc_n3[order]) if n else (np.zeros(CODEBOOK_SIZE), None)
    alpha = np.clip(np.rint(arrays.alpha()[order] * 255.0), 0, 255).astype(np.uint8)
    images = {
        "means_l.webp": _image((q16 & 0xFF).astype(np.uint8), width),
        "means_u.webp": _image((q16 >> 8).astype(np.uint8), width),
        "quats.webp": _image(_smallest_three(arrays.quats_n4.astype(np.float64)[order]), width),
        "scales.webp": _image(scale_index if n else np.zeros((0, 3), np.uint8), width),
        "sh0.webp": _image(np.concatenate([color_index, alpha[:, None]], axis=-1) if n else np.zeros((0, 4), np.uint8),
                           width),
    }
    meta = {
        "version": VERSION, "count": n, "antialias": False,
        "means": {"mins": [float(v) for v in mins], "maxs": [float(v) for v in maxs], "files": FILES["means"]},
        "scales": {"codebook": [float(v) for v in scale_book], "files": FILES["scales"]},
        "quats": {"files": FILES["quats"]},
        "sh0": {"codebook": [float(v) for v in color_book], "files": FILES["sh0"]},
    }  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("meta.json", json.dumps(meta))
        for name, blob in images.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def write_sog(path: Path, arrays: SplatArrays) -> Path:
    atomic_write_bytes(path, encode_sog(arrays))
    return path
