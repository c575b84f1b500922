"""Standard 3DGS PLY files: what splat viewers load (docs/exports.md; docs/method.md §4.6;
docs/official-code.md §5.5).

Written: binary little-endian, one ``vertex`` element of float32 properties, in one of two
layouts (``layout``):

* ``"compact"`` (the default, 14 floats = 56 bytes per splat): ``x y z f_dc_0..2 opacity
  scale_0..2 rot_0..3``, the spherical-harmonic degree the avatar really holds (ours hold colour
  only: degree 0, no ``f_rest``). The layout gsply, PlayCanvas' splat-transform and the web
  viewers write and read for SH-0 scenes.
* ``"unity"`` (62 floats = 248 bytes): ``x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity
  scale_0..2 rot_0..3``, normals zero and the SH-3 ``f_rest`` block zero padding, for the Unity
  importer (and other plugins) that accept only the 62-float layout.

In both, ``opacity`` is the logit, ``scale_*`` the log std, ``rot_*`` the raw quaternion
(w, x, y, z). The frame is arc2avatar's (z up, face toward +y) unless the caller rotated the
splats first (``arc2avatar.avatar.export``, ``--up y``); ``frame`` names it in a header comment.

Read: any binary PLY whose ``vertex`` element has at least x y z f_dc_0..2 opacity scale_0..2
rot_0..3 as scalar properties, in any order and any numeric type (SH-0 17-float files, SH-3
62-float files, files with extra properties or extra elements after ``vertex``). Higher SH bands
are dropped. A PLY holds no face binding, so a read set is all free splats; the binding lives
in the avatar bundle (``arc2avatar.splats.bundle``).

Written by hand: the header writer/parser (~60 lines). ``plyfile``/``trimesh`` could parse
headers, but trimesh drops unknown vertex properties and plyfile is one more dependency for a
fixed layout that numpy structured arrays read and write without a Python loop over splats.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from arc2avatar._io import atomic_path
from arc2avatar.errors import InputError
from arc2avatar.splats.checks import SplatLimits, check_splat_values
from arc2avatar.splats.model import GaussianSplats

SH3_REST_COEFFICIENTS = 45  # (16 − 1) SH-3 bands × 3 channels, zero padded
PLY_LAYOUTS: tuple[str, ...] = ("compact", "unity")
Z_UP_FRAME = "world z up, face toward +y"  # arc2avatar's own frame (header comment)
PLY_FIELDS: tuple[str, ...] = (
    "x", "y", "z", "nx", "ny", "nz",
    "f_dc_0", "f_dc_1", "f_dc_2",
    *(f"f_rest_{i}" for i in range(SH3_REST_COEFFICIENTS)),
    "opacity", "scale_0", "scale_1", "scale_2",
    "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip  the 62-float "unity" layout
COMPACT_FIELDS: tuple[str, ...] = tuple(
    name for name in PLY_FIELDS if not name.startswith(("f_rest_", "nx", "ny", "nz"))
)  # the 14-float "compact" layout (SH degree 0)
REQUIRED_FIELDS: tuple[str, ...] = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip

# PLY scalar type names (both spellings of the spec) → numpy kinds.
_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 16  # a sane header is a few kB; anything longer is not a splat PLY


def write_ply(
    path: str | os.PathLike, splats: GaussianSplats, layout: str = "compact", frame: str = Z_UP_FRAME
) -> Path:
    """Write ``splats`` as a standard 3DGS PLY, atomically (layouts in the module docstring).

    Args:
        layout: ``"compact"`` (SH degree 0, 14 floats) or ``"unity"`` (62 floats, SH-3 padded).
        frame: the coordinate frame, written as a header comment.

    Returns the path written.
    """
    if layout not in PLY_LAYOUTS:
        raise InputError(f"unknown PLY layout {layout!r}; use one of {', '.join(PLY_LAYOUTS)}")
    fields = COMPACT_FIELDS if layout == "compact" else PLY_FIELDS
    tensors = {name: p.detach().cpu().float().numpy() for name, p in splats.params.items()}
    n = splats.num_splats
    record = np.zeros(n, dtype=np.dtype([(name, "<f4") for name in fields]))
    for axis, name in enumerate(("x", "y", "z")):
        record[name] = tensors["means"][:, axis]
    for i in range(3):
        record[f"f_dc_{i}"] = tensors["f_dc"][:, i]
        record[f"scale_{i}"] = tensors["log_scales"][:, i]
    record["opacity"] = tensors["opacity_logits"]
    for i in range(4):
        record[f"rot_{i}"] = tensors["quats"][:, i]
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            f"comment arc2avatar Gaussian splats: {frame}",
            f"element vertex {n}",
            *(f"property float {name}" for name in fields),
            "end_header",
        ]
    )
    final = Path(path)
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(header.encode("ascii") + b"\n")
            handle.write(record.tobytes())
    return final


def _parse_header(path: Path, blob: bytes) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    """(byte order '<' or '>', [(element, count, [(property, numpy kind)])], data offset)."""
    if not blob.startswith(b"ply"):
        raise InputError(f"{path} is not a PLY file (it does not start with 'ply')")
    end = blob.find(b"end_header", 0, _MAX_HEADER_BYTES)
    if end < 0:
        raise InputError(f"{path}: PLY header has no 'end_header' line (truncated or not a PLY file)")
    newline = blob.find(b"\n", end)
    if newline < 0:
        raise InputError(f"{path}: PLY file ends right after its header; the splat data is missing")
    try:
        lines = blob[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: PLY header is not ASCII text ({exc})") from None
    order = ""
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for number, raw in enumerate(lines[1:], start=2):
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            formats = {"binary_little_endian": "<", "binary_big_endian": ">"}
            if words[1] not in formats:
                raise InputError(
                    f"{path} is an {words[1]!r} PLY; splat PLYs must be binary (re-export it as binary_little_endian)"
                )
            order = formats[words[1]]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
        elif words[0] == "property" and elements and len(words) >= 2 and words[1] == "list":
            elements[-1][2].append((words[-1], "list"))
        else:
            raise InputError(f"{path}: cannot read PLY header line {number}: {raw.strip()!r}")
    if not order:
        raise InputError(f"{path}: PLY header has no 'format' line")
    return order, elements, newline + 1


def read_ply(path: str | os.PathLike) -> GaussianSplats:
    """Read a 3DGS PLY (layouts in the module docstring) as free splats (no face binding).

    Raises ``InputError`` naming the file for: no such file, not a PLY, ASCII format, missing
    ``vertex`` element or fields (listed), list properties before/in the vertex data,
    truncated data, or non-finite values.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such PLY file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read PLY file ({exc.strerror})") from None
    order, elements, offset = _parse_header(path, blob)

    for name, count, properties in elements:
        if any(kind == "list" for _, kind in properties):
            raise InputError(
                f"{path}: element {name!r} has list properties before/in the splat data; "
                "a splat PLY has one 'vertex' element of scalar properties"
            )
        names = [prop for prop, _ in properties]
        if len(set(names)) != len(names):
            twice = sorted({prop for prop in names if names.count(prop) > 1})
            raise InputError(f"{path}: element {name!r} names the properties {', '.join(twice)} more than once")
        if name == "vertex" and count > SplatLimits.max_splats:
            raise InputError(f"{path}: PLY declares {count} splats, more than the {SplatLimits.max_splats} accepted")
        dtype = np.dtype([(prop, order + kind) for prop, kind in properties])
        if name == "vertex":
            break
        offset += dtype.itemsize * count
    else:
        raise InputError(f"{path}: PLY has no 'vertex' element, so it holds no splats")

    names = [prop for prop, _ in properties]
    missing = [field for field in REQUIRED_FIELDS if field not in names]
    if missing:
        raise InputError(f"{path}: PLY vertex element lacks the 3DGS fields {', '.join(missing)}; is it a splat PLY?")
    needed = dtype.itemsize * count
    if len(blob) - offset < needed:
        raise InputError(
            f"{path}: PLY is truncated: header promises {count} splats ({needed} bytes) but "
            f"{max(len(blob) - offset, 0)} bytes follow"
        )
    record = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)

    def columns(*fields: str) -> torch.Tensor:
        stacked = np.stack([record[field].astype(np.float32) for field in fields], axis=-1)
        return torch.from_numpy(np.ascontiguousarray(stacked))

    params = {
        "means": columns("x", "y", "z"),
        "f_dc": columns("f_dc_0", "f_dc_1", "f_dc_2"),
        "log_scales": columns("scale_0", "scale_1", "scale_2"),
        "opacity_logits": columns("opacity")[:, 0].contiguous(),
        "quats": columns("rot_0", "rot_1", "rot_2", "rot_3"),
    }
    check_splat_values(params, f"PLY {path}")
    return GaussianSplats(params)
