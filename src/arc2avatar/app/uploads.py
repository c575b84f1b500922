"""Uploads checked by decoding, stored under safe names; paths confined to the work folder.

A photo is accepted only when ``arc2avatar.identity.image.load_image`` decodes it with the limits
``create`` itself applies (``FACE_PHOTO_LIMITS``: at least 64 px on the short side) and it is at
most ``UploadLimits.photo_mb``; it is stored re-encoded as
PNG under a name we choose (``photo_1.png``), so nothing of the uploaded name reaches the disk.
A video must be at most ``video_mb`` and ``video_s`` long, and imageio-ffmpeg must read a frame of
it. Messages name an upload by its sanitised name only, never by a server path. Written by hand:
only these checks; decoding is Pillow's and FFmpeg's.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Sequence

from arc2avatar.app.config import MEGABYTE, UploadLimits
from arc2avatar.errors import InputError
from arc2avatar.identity.image import FACE_PHOTO_LIMITS, load_image

#: Characters kept in a displayed / stored file name; everything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 80


def sanitise_name(name: str, default: str = "file") -> str:
    """A file name safe on every file system: no folders, no leading dots, only [A-Za-z0-9._-]."""
    base = os.path.basename(str(name).replace("\\", "/"))
    clean = _UNSAFE.sub("_", base).lstrip(".")[:MAX_NAME]
    return clean or default


def inside(root: Path, *parts: str) -> Path:
    """``root/parts`` resolved, refused unless it stays inside ``root`` (no ``..``, no absolute part, no link out)."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise InputError(f"path {'/'.join(parts)!r} is outside the work folder")
    return path


def _size_check(path: Path, limit: int, what: str, shown: str) -> None:
    size = path.stat().st_size
    if size > limit:
        raise InputError(f"{what} {shown} is {size / MEGABYTE:.1f} MB; the limit is {limit / MEGABYTE:.0f} MB")


def save_photos(uploads: Sequence[str | os.PathLike], dest: Path, limits: UploadLimits) -> list[Path]:
    """Check every uploaded photo and store it as ``dest/photo_<k>.png``; returns the stored paths.

    Raises:
        InputError: no photo, too many, too large, or not decodable (the message names the
            upload by its sanitised name and says what to do).
    """
    from PIL import Image

    paths = [Path(p) for p in uploads if p]
    if not paths:
        raise InputError("no photo: upload 1 to 4 photos of the same person (or take one with the webcam)")
    if len(paths) > limits.photos:
        raise InputError(f"{len(paths)} photos uploaded; at most {limits.photos} per avatar")
    decoded = []
    for path in paths:
        shown = sanitise_name(path.name, "photo")
        _size_check(path, limits.photo_bytes, "photo", shown)
        try:
            decoded.append(load_image(path, limits=FACE_PHOTO_LIMITS))
        except InputError as error:
            problem = str(error).split(": ", 1)[-1]
            if "too small" in problem:
                raise InputError(f"{shown}: {problem}; upload a larger photo of the face") from None
            raise InputError(f"{shown} is not a photo we can read ({problem}); upload a JPEG, PNG or WebP image") from None
    dest.mkdir(parents=True, exist_ok=True)
    stored = []
    for index, pixels in enumerate(decoded, start=1):
        target = dest / f"photo_{index}.png"
        Image.fromarray(pixels).save(target)
        stored.append(target)
    return stored


def save_video(upload: str | os.PathLike | None, dest: Path, limits: UploadLimits) -> Path:
    """Check a driving video (size, a decodable first frame) and copy it to ``dest/drive<ext>``."""
    import imageio.v2 as imageio

    if not upload:
        raise InputError("no video: upload (or record) a short video of a face")
    path = Path(upload)
    shown = sanitise_name(path.name, "video")
    _size_check(path, limits.video_bytes, "video", shown)
    try:
        reader = imageio.get_reader(str(path), format="ffmpeg")
        try:
            reader.get_data(0)
            duration = float(reader.get_meta_data().get("duration") or 0.0)
        finally:
            reader.close()
    except Exception:  # noqa: BLE001 - any decoder failure means the same to the user
        raise InputError(f"{shown} is not a video we can read; upload an MP4, WebM or MOV file") from None
    if duration > limits.video_s:  # unknown (0, e.g. a browser recording): the drive job stops at the limit
        raise InputError(f"video {shown} is {duration:.0f} s long; the limit is {limits.video_s:.0f} s: "
                         "upload a shorter clip")
    dest.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() if path.suffix.lower() in (".mp4", ".webm", ".mov", ".mkv", ".avi") else ".mp4"
    target = dest / f"drive{suffix}"
    shutil.copyfile(path, target)
    return target


def save_lora(upload: str | os.PathLike | None, dest: Path, limits: UploadLimits) -> Path | None:
    """Check an optional LoRA file (size, a readable safetensors file) and copy it to ``dest/lora.safetensors``."""
    from arc2avatar.pipeline.api import check_lora  # lazy: torch; the app's web process stays torch-free

    if not upload:
        return None
    path = Path(upload)
    shown = sanitise_name(path.name, "lora")
    _size_check(path, limits.lora_bytes, "LoRA file", shown)
    try:
        check_lora(path)
    except InputError as error:
        raise InputError(f"LoRA file {shown} is unusable ({str(error).split(': ', 1)[-1]})") from None
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "lora.safetensors"
    shutil.copyfile(path, target)
    return target
