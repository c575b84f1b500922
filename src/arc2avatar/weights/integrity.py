"""Cheap integrity checks for weight files: is this file whole, judged without reading it all?

Written by hand because no library offers a *cheap* "is this download complete" check:
``safetensors`` and ``onnx`` only tell by loading gigabytes. Each check here reads a few bytes
(a header, a zip central directory, the top-level protobuf field lengths) and compares what the
file declares with its size on disk.

Every check returns ``None`` when the file looks whole, or a short human reason otherwise
(``"header declares 3.4 GB of tensors, file has 1.2 GB"``).
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Callable

# A safetensors JSON header above this size is not a header but garbage (the format caps it
# at 100 MB).
SAFETENSORS_MAX_HEADER_BYTES = 100_000_000


def human_size(n_bytes: int) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as the Hub shows them)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def check_safetensors(path: Path) -> str | None:
    """A safetensors file is 8 bytes (u64 LE header length n), n bytes of JSON, then the data.

    Whole iff the JSON parses and every tensor's ``data_offsets`` end lies inside the file.
    """
    size = path.stat().st_size
    if size < 8:
        return f"only {size} bytes, shorter than a safetensors header"
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(SAFETENSORS_MAX_HEADER_BYTES, size - 8):
            return f"header length {header_len} does not fit in a {human_size(size)} file"
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError, too-long integers, nesting
            return "safetensors header is not valid JSON"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(v) for v in entry["data_offsets"])
        except (TypeError, KeyError, ValueError, OverflowError):
            return f"tensor {name!r} has no valid data_offsets"
        if not 0 <= begin <= end:
            return f"tensor {name!r} has invalid data_offsets {begin}..{end}"
        data_end = max(data_end, end)
    needed = 8 + header_len + data_end
    if needed > size:
        return f"header declares {human_size(needed)} of data, file has {human_size(size)}"
    return None


def check_torch_zip(path: Path) -> str | None:
    """A ``torch.save`` file (torch >= 1.6) is a zip: whole iff its central directory reads."""
    if not zipfile.is_zipfile(path):
        return "not a zip archive (torch's format); the end of the file is missing or damaged"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            data_end = max((info.header_offset + info.compress_size for info in archive.infolist()),
                           default=0)
    except (zipfile.BadZipFile, OSError) as error:
        return f"zip central directory unreadable ({error})"
    if not any(name.endswith("data.pkl") for name in names):
        return "zip archive holds no data.pkl: not a torch checkpoint"
    if data_end > path.stat().st_size:
        return "zip entries extend past the end of the file"
    return None


def _read_varint(f) -> int | None:
    """Read one protobuf varint; ``None`` at end of file or on an over-long varint."""
    value = 0
    for shift in range(0, 64, 7):
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
    return None


# ONNX ModelProto field number of `graph` (onnx.proto: `GraphProto graph = 7;`).
ONNX_GRAPH_FIELD = 7


def check_onnx(path: Path) -> str | None:
    """Walk the top-level fields of the ONNX ``ModelProto`` without decoding them.

    Each length-delimited field declares its byte length; a truncated download declares more
    bytes than the file holds (the graph field is almost the whole file). Whole iff the walk
    ends exactly at the end of the file and a graph field was seen.
    """
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    seen_graph = False
    with path.open("rb") as f:
        while f.tell() < size:
            tag = _read_varint(f)
            if tag is None or tag >> 3 == 0:
                return "not an ONNX protobuf (bad field tag)"
            field, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                if _read_varint(f) is None:
                    return "ends inside a protobuf varint"
            elif wire_type in (1, 5):
                f.seek(8 if wire_type == 1 else 4, 1)
            elif wire_type == 2:
                length = _read_varint(f)
                if length is None:
                    return "ends inside a protobuf length"
                if f.tell() + length > size:
                    return (f"protobuf field {field} declares {human_size(length)}, "
                            f"only {human_size(size - f.tell())} left in the file")
                seen_graph |= field == ONNX_GRAPH_FIELD
                f.seek(length, 1)
            else:
                return f"not an ONNX protobuf (wire type {wire_type})"
        if f.tell() != size:
            return "protobuf walk overran the end of the file"
    if not seen_graph:
        return "ONNX model has no graph"
    return None


def check_json(path: Path) -> str | None:
    """Config files: must parse as JSON."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not valid JSON ({error.__class__.__name__})"
    return None


def check_nonempty(path: Path) -> str | None:
    """Plain text (e.g. ``merges.txt``): must not be empty."""
    return "empty file" if path.stat().st_size == 0 else None


CHECKS: dict[str, Callable[[Path], str | None]] = {
    ".safetensors": check_safetensors,
    ".bin": check_torch_zip,
    ".onnx": check_onnx,
    ".json": check_json,
}


def check_file(path: Path) -> str | None:
    """Dispatch on the suffix; ``None`` = looks whole. ``path`` must exist."""
    try:
        return CHECKS.get(path.suffix, check_nonempty)(path)
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
