"""PLY exports: the compact and Unity layouts, and PlayCanvas' compressed PLY.

* ``ply`` / ``ply-unity``: the standard 3DGS PLY, written by ``arc2avatar.splats.ply`` (layouts
  in its docstring: compact = SH degree 0, 14 float32 per splat; unity = 62 float32, SH-3 zero
  padded).
* ``compressed-ply``: PlayCanvas' compressed PLY (``.compressed.ply``, read by PlayCanvas /
  SuperSplat, Spark, splat-transform and gsply): a ``chunk`` element of 18 float32 per 256
  splats (min/max of position, scale and colour), a ``vertex`` element of four uint32 per
  splat (position 11-10-11 bits, rotation 2+10-10-10 "smallest three", scale 11-10-11, colour
  and opacity 8-8-8-8, each normalised to its chunk's range), and no ``sh`` element for SH
  degree 0: about 16.1 bytes per splat. Written with gsply (``gsply.compress_to_bytes``, MIT,
  maintained, reads and writes 3DGS PLY, compressed PLY and SPZ), an optional dependency
  (``pip install 'arc2avatar[export]'``) since it pulls numba; we do not hand-write a codec a
  well-kept library already has.
"""

from __future__ import annotations

from pathlib import Path

from arc2avatar._io import atomic_write_bytes
from arc2avatar.avatar.formats.data import SplatArrays
from arc2avatar.errors import MissingDependencyError
from arc2avatar.splats.ply import write_ply

GSPLY_HINT = "pip install 'arc2avatar[export]' (or: pip install gsply)"


def write_compact_ply(path: Path, arrays: SplatArrays) -> Path:
    """The compact 3DGS PLY (SH degree 0, 14 floats per splat)."""
    return write_ply(path, arrays.to_splats(), layout="compact", frame=arrays.frame)


def write_unity_ply(path: Path, arrays: SplatArrays) -> Path:
    """The 62-float 3DGS PLY (SH-3 zero padded) the Unity importer expects."""
    return write_ply(path, arrays.to_splats(), layout="unity", frame=arrays.frame)


def write_compressed_ply(path: Path, arrays: SplatArrays) -> Path:
    """PlayCanvas' compressed PLY through gsply (layout in the module docstring)."""
    try:
        import gsply
    except ImportError:
        raise MissingDependencyError(
            f"the compressed-ply format is written with gsply, which is not installed: {GSPLY_HINT}") from None
    blob = gsply.compress_to_bytes(arrays.means_n3, arrays.log_scales_n3, arrays.quats_n4, arrays.opacity_logits_n,
                                   arrays.f_dc_n3)
    atomic_write_bytes(path, blob)
    return path
