"""GaussianSplats3D's ``.ksplat`` (SplatBuffer version 0.1, compression level 1), written by hand.

Layout (little-endian):

* main header, 4096 bytes: u8[0] = 0, u8[1] = 1 (version major, minor); u32[1] max section count
  = 1; u32[2] section count = 1; u32[3] max splat count = N; u32[4] splat count = N; u16[10]
  compression level = 1; f32[6..8] scene centre; f32[9], f32[10] the SH 8-bit range (0: the
  reader's default; unused at SH degree 0); the rest zero.
* section header, 1024 bytes: u32[0] splat count, u32[1] max splat count, u32[2] bucket size
  (256), u32[3] bucket count, f32[4] bucket block size (the edge of the cube a bucket's offsets
  span), u16[10] bucket storage bytes (12), u32[6] position quantisation range (32767), u32[7]
  section data bytes, u32[8] full bucket count, u32[9] partially filled bucket count, u16[20]
  SH degree (0).
* section data: u32 length of each partially filled bucket; f32 × 3 centre of each bucket;
  then 24 bytes per splat, bucket after bucket: position u16 × 3 = round(offset from the bucket
  centre · 32767 / (block size / 2)) + 32767; scale float16 × 3 (linear std); rotation
  float16 × 4 (w, x, y, z); colour u8 × 4 (RGB = 255 · clamp(SH_C0·f_dc + 0.5), A = 255 · alpha).

Buckets here are runs of 256 splats in Morton (z-order) order of their positions, centred on
their bounding boxes; the block size is set so the largest offset fits. Level 1 halves level 0's
44 bytes per splat and loses < 2·10⁻⁴ of the block size in position. No library writes the
format outside GaussianSplats3D's own JavaScript, hence ~50 lines here; Spark reads our files in
the browser test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays
from arc2avatar.avatar.formats.sog import morton_order

HEADER_BYTES, SECTION_HEADER_BYTES = 4096, 1024
VERSION = (0, 1)
COMPRESSION_LEVEL = 1
BUCKET_SIZE = 256
BUCKET_STORAGE_BYTES = 12  # a bucket centre: f32 × 3
SCALE_RANGE = 32767  # u16 positions: offset · RANGE / (block / 2) + RANGE
RECORD = np.dtype([("position", "<u2", 3), ("scale", "<f2", 3), ("rotation", "<f2", 4), ("rgba", "u1", 4)])


def encode_ksplat(arrays: SplatArrays) -> bytes:
    """The ``.ksplat`` bytes of ``arrays`` (layout in the module docstring)."""
    n = arrays.count
    order = morton_order(arrays.means_n3.astype(np.float64)) if n else np.zeros(0, dtype=np.int64)
    means = arrays.means_n3.astype(np.float64)[order]
    full, rest = divmod(n, BUCKET_SIZE)
    starts = list(range(0, n, BUCKET_SIZE))
    centres = np.array([(means[s:s + BUCKET_SIZE].min(0) + means[s:s + BUCKET_SIZE].max(0)) / 2 for s in starts]
                       ).reshape(-1, 3)
    bucket_of = np.arange(n) // BUCKET_SIZE
    offsets = means - centres[bucket_of] if n else means
    half_block = max(float(np.abs(offsets).max()) if n else 0.0, 1e-6) * (1 + 1e-6)
    record = np.zeros(n, dtype=RECORD)
    record["position"] = np.clip(np.rint(offsets * (SCALE_RANGE / half_block)) + SCALE_RANGE, 0, 2 * SCALE_RANGE + 1)
    record["scale"] = arrays.scales()[order]
    record["rotation"] = arrays.quats_n4[order]
    rgba = np.concatenate([arrays.rgb(), arrays.alpha()[:, None]], axis=-1)[order]
    record["rgba"] = np.clip(np.rint(rgba * 255.0), 0, 255)
    partial = [rest] if rest else []
    data = (np.array(partial, dtype="<u4").tobytes() + centres.astype("<f4").tobytes() + record.tobytes())

    header = np.zeros(HEADER_BYTES, dtype=np.uint8)
    header[0], header[1] = VERSION
    header.view("<u4")[1:5] = [1, 1, n, n]
    header.view("<u2")[10] = COMPRESSION_LEVEL
    header.view("<f4")[6:9] = (means.min(0) + means.max(0)) / 2 if n else 0.0
    section = np.zeros(SECTION_HEADER_BYTES, dtype=np.uint8)
    section.view("<u4")[[0, 1, 2, 3]] = [n, n, BUCKET_SIZE, len(starts)]
    section.view("<f4")[4] = 2 * half_block
    section.view("<u2")[10] = BUCKET_STORAGE_BYTES
    section.view("<u4")[[6, 7, 8, 9]] = [SCALE_RANGE, len(data), full, len(partial)]
    section.view("<u2")[20] = 0  # SH degree
    return header.tobytes() + section.tobytes() + data


def write_ksplat(path: Path, arrays: SplatArrays) -> Path:
    atomic_write_bytes(path, encode_ksplat(arrays))
    return path
