"""The avatar bundle: splats plus their face binding, for expressions and resuming (docs/method.md §7).

A bundle is a FOLDER holding two files:

* ``splats.safetensors`` — every splat parameter (``means``, ``f_dc``, ``log_scales``,
  ``opacity_logits``, ``quats``; float32) and buffer (``face_mask`` bool, ``vertex_index``
  int64, ``anchors`` float32), one row per splat, by name (``GaussianSplats.to_tensors``).
* ``avatar.json`` — ``format_version`` (int, this code writes 1 and reads ≤ 1),
  ``arc2avatar_version``, ``template`` (a JSON dict from the caller naming the template the
  binding refers to, e.g. ``{"kind": "builtin", "name": "builtin-v1", "face_levels": 2,
  "rest_levels": 1}`` or a FLAME file name + sha256), ``counts`` (splats, face, free),
  ``files`` (the sha256 of ``splats.safetensors``) and ``extra`` (a JSON dict from the caller).

A folder, not one file, so people can open ``avatar.json`` and tools can read the tensors with
any safetensors reader. Atomicity: each file is written atomically (temp file + rename) and
``avatar.json`` LAST; it records the sha256 of the tensor file, so a bundle interrupted between
the two renames (new tensors, old json) is detected on load instead of silently mixing avatars.

Written by hand: the manifest and its checks (~100 lines); tensors go through safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from arc2avatar import __version__
from arc2avatar._guard import check_stays_inside
from arc2avatar._io import atomic_write_bytes, atomic_write_text, read_json
from arc2avatar.errors import InputError
from arc2avatar.splats.checks import check_splat_values
from arc2avatar.splats.model import BUFFER_NAMES, PARAM_NAMES, GaussianSplats

FORMAT_VERSION = 1
SPLATS_FILE = "splats.safetensors"
MANIFEST_FILE = "avatar.json"


@dataclass
class Bundle:
    """A loaded avatar bundle.

    Attributes:
        splats: the splats, face binding included.
        template_info: the ``template`` dict saved with it.
        extra: the ``extra`` dict saved with it.
        version: the arc2avatar version that wrote it.
        format_version: the bundle format it was written in.
    """

    splats: GaussianSplats
    template_info: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    format_version: int = FORMAT_VERSION


def _json_text(value: Mapping[str, Any], what: str) -> Any:
    """Round-trip ``value`` through JSON now, so a bad value fails before anything is written."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from None


def save_bundle(
    directory: str | os.PathLike,
    splats: GaussianSplats,
    template_info: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``splats`` and the manifest into ``directory`` (created if needed); returns it.

    Overwrites an existing bundle there file by file (atomic renames, manifest last).
    ``template_info`` and ``extra`` must be JSON-serialisable dicts (checked before writing).
    """
    from safetensors.torch import save

    template = _json_text(template_info, "template_info")
    extra_json = _json_text(extra or {}, "extra")
    tensors = {name: tensor.cpu().contiguous() for name, tensor in splats.to_tensors().items()}
    blob = save(tensors, metadata={"format": "arc2avatar-splats", "format_version": str(FORMAT_VERSION)})
    manifest = {
        "format_version": FORMAT_VERSION,
        "arc2avatar_version": __version__,
        "template": template,
        "counts": {"splats": splats.num_splats, "face": splats.num_face, "free": splats.num_splats - splats.num_face},
        "files": {SPLATS_FILE: {"sha256": hashlib.sha256(blob).hexdigest()}},
        "extra": extra_json,
    }
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a folder; an avatar bundle is a folder")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / SPLATS_FILE, blob)
    atomic_write_text(directory / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise InputError(f"{directory}: no such avatar bundle folder")
    if not path.is_file():
        raise InputError(f"{path} is missing: {directory} is not an avatar bundle (or was not fully written)")
    manifest = read_json(path, "avatar bundle manifest")
    if not isinstance(manifest, dict):
        raise InputError(f"{path} must hold a JSON object; the bundle is corrupt")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{path} has no valid integer 'format_version'; the bundle is corrupt")
    if version > FORMAT_VERSION:
        made_by = manifest.get("arc2avatar_version", "a newer version")
        raise InputError(
            f"{directory} was made by arc2avatar {made_by}, format {version}; this is {__version__} which reads "
            f"format ≤ {FORMAT_VERSION}: upgrade arc2avatar"
        )
    for key, kind in (("template", dict), ("counts", dict), ("extra", dict), ("files", dict)):
        if not isinstance(manifest.get(key), kind):
            raise InputError(f"{path} lacks a valid {key!r} entry; the bundle is corrupt")
    return manifest


def load_bundle(directory: str | os.PathLike) -> Bundle:
    """Read a bundle written by ``save_bundle``.

    Raises ``InputError`` naming the file when: the folder or a file is missing, JSON or
    safetensors data is corrupt, the tensor file does not match the manifest's checksum or
    counts, a tensor is missing or misshapen, the bundle's format is newer than this code, or one
    of its files is a symbolic link leading out of the bundle folder.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    directory = Path(directory)
    check_stays_inside(directory / MANIFEST_FILE, directory)  # no symbolic link out of the bundle
    check_stays_inside(directory / SPLATS_FILE, directory)
    manifest = _read_manifest(directory)
    splats_path = directory / SPLATS_FILE
    try:
        blob = splats_path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{splats_path} is missing; the bundle is incomplete") from None
    except OSError as exc:
        raise InputError(f"{splats_path}: cannot read ({exc.strerror})") from None
    file_entry = manifest["files"].get(SPLATS_FILE)
    expected_sha = file_entry.get("sha256") if isinstance(file_entry, dict) else None
    if expected_sha != hashlib.sha256(blob).hexdigest():
        raise InputError(
            f"{splats_path} does not match {directory / MANIFEST_FILE} (checksum differs): the bundle was "
            "modified or only partly copied or written; copy or save it again"
        )
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"{splats_path} is not a readable safetensors file ({exc})") from None
    missing = [name for name in (*PARAM_NAMES, *BUFFER_NAMES) if name not in tensors]
    if missing:
        raise InputError(f"{splats_path} lacks the tensors {', '.join(missing)}; the bundle is corrupt")
    try:
        splats = GaussianSplats.from_tensors(tensors)
    except ValueError as exc:
        raise InputError(f"{splats_path}: {exc}; the bundle is corrupt") from None
    check_splat_values(splats.to_tensors(), str(splats_path))
    counts = manifest["counts"]
    if counts.get("splats") != splats.num_splats or counts.get("face") != splats.num_face:
        raise InputError(
            f"{splats_path} holds {splats.num_splats} splats ({splats.num_face} face) but the manifest says "
            f"{counts.get('splats')} ({counts.get('face')} face); the bundle is corrupt"
        )
    return Bundle(
        splats=splats,
        template_info=manifest["template"],
        extra=manifest["extra"],
        version=str(manifest.get("arc2avatar_version", "unknown")),
        format_version=manifest["format_version"],
    )
