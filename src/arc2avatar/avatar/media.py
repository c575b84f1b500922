"""Output files of a run: PNG sheets, MP4 videos, JSON and a JSON-lines log; all written atomically.

Pillow writes the PNGs, imageio + imageio-ffmpeg (H.264, yuv420p) the videos. Written by hand:
the atomic-write discipline (a temporary name beside the target, renamed only on success, removed
on failure — the official release deleted and half-wrote outputs), the grid layout of the sheet,
conversion of float/uint8, numpy/torch images, and a resumable JSON-lines logger.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from arc2avatar._io import atomic_path
from arc2avatar.errors import MissingDependencyError

SHEET_PADDING_PX = 2  # gap between sheet tiles, pixels
SHEET_BACKGROUND = (255, 255, 255)  # colour of the gaps and of empty tiles
LABEL_BOX = (0, 0, 0)  # label background
LABEL_TEXT = (255, 255, 255)


def to_uint8(image: Any) -> np.ndarray:
    """(…, H, W, 3) uint8 from uint8 or float in [0, 1] (clipped, rounded), numpy or torch."""
    if hasattr(image, "detach"):  # torch tensor
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got {array.dtype}")
    return (np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_sheet(
    images: Any,
    path: str | os.PathLike,
    columns: int = 8,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write images as one PNG grid, row by row, atomically.

    Args:
        images: (N, H, W, 3) float in [0, 1] or uint8, numpy or torch; or a sequence of (H, W, 3).
        path: the PNG to write.
        columns: tiles per row (fewer if N is smaller).
        labels: optional N strings drawn in each tile's top-left corner.

    Returns:
        The path written.
    """
    from PIL import Image, ImageDraw

    tiles = to_uint8(np.stack([to_uint8(im) for im in images]) if not hasattr(images, "shape") else images)
    if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.shape[0] == 0:
        raise ValueError(f"write_sheet needs (N, H, W, 3) images with N ≥ 1, got {tiles.shape}")
    if labels is not None and len(labels) != tiles.shape[0]:
        raise ValueError(f"{len(labels)} labels for {tiles.shape[0]} images")
    n, h, w, _ = tiles.shape
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    pad = SHEET_PADDING_PX
    sheet = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        x = pad + (i % cols) * (w + pad)
        y = pad + (i // cols) * (h + pad)
        sheet.paste(Image.fromarray(tiles[i]), (x, y))
        if labels is not None and labels[i]:
            left, top, right, bottom = draw.textbbox((x + 2, y + 2), labels[i])
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=LABEL_BOX)
            draw.text((x + 2, y + 2), labels[i], fill=LABEL_TEXT)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)


def _imageio_ffmpeg() -> Any:
    try:
        import imageio.v2 as iio
        import imageio_ffmpeg  # noqa: F401 — the FFMPEG plugin's backend
    except ImportError as error:
        raise MissingDependencyError(
            "writing MP4 videos needs imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg "
            f"({error})"
        ) from error
    return iio


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a (H, W, 3) frame by repeating its last row/column to even H and W (yuv420p needs it)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(frames: Iterable[Any], path: str | os.PathLike, fps: int = 30, quality: int = 8) -> int:
    """Encode frames as an H.264 MP4 (yuv420p, plays everywhere), atomically.

    Args:
        frames: iterable of (H, W, 3) float in [0, 1] or uint8 frames (numpy or torch), all of
            one size; odd sizes are padded to even by repeating the last row/column.
        path: the ``.mp4`` to write; it appears only when every frame was encoded.
        fps: frames per second.
        quality: imageio-ffmpeg quality 0–10 (10 best).

    Returns:
        The number of frames written.

    Raises:
        MissingDependencyError: imageio-ffmpeg is not installed.
        ValueError: no frames, or frames of different sizes. Whatever the iterator raises is
            re-raised after the temporary file is removed.
    """
    iio = _imageio_ffmpeg()
    count = 0
    with atomic_path(path, suffix=".mp4") as tmp:  # ffmpeg picks the container by the suffix
        writer = None
        try:
            size: tuple[int, ...] | None = None
            for frame in frames:
                image = to_uint8(frame)
                if image.ndim != 3 or image.shape[-1] != 3:
                    raise ValueError(f"video frames must be (H, W, 3), got {image.shape}")
                if size is None:
                    size = image.shape
                    writer = iio.get_writer(
                        tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=quality,
                        pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
                    )
                elif image.shape != size:
                    raise ValueError(f"frame {count} is {image.shape}, the first frame was {size}")
                writer.append_data(_even(image))
                count += 1
            if count == 0:
                raise ValueError(f"no frames to write to {path}")
            writer.close()
            writer = None
        finally:
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 — already failing; keep the original error
                    pass
    return count


