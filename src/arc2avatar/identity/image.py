"""Decode a user photo into one predictable array: (H, W, 3) uint8 RGB, upright, bounded size.

Spec §1: JPEG/PNG/WebP (and whatever Pillow opens), EXIF orientation applied. Decoding is
Pillow's; written by hand is only the normalisation Pillow leaves to the caller:
* transparency composited on white (a transparent PNG would otherwise turn black);
* 16-bit greyscale scaled 65535 -> 255 (Pillow's ``convert("L")`` clips it instead);
* huge photos downscaled while decoding (JPEG ``draft``: DCT scaling, far cheaper than a full
  decode) and a hard pixel cap checked from the header, before any pixel is decoded
  (Pillow's own decompression-bomb guard is a process-global setting we leave alone);
* every failure (missing, empty, truncated, not an image) is one ``InputError`` naming the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from arc2avatar.errors import InputError

# Background colour for transparent pixels (RGB, 0..255).
WHITE_RGB = (255, 255, 255)
# Full scale of 16-bit samples (PNG bit depth 16).
UINT16_MAX = 65535
UINT8_MAX = 255


@dataclass(frozen=True)
class ImageLimits:
    """Size limits of decoded photos.

    Attributes:
        max_side: longest side in pixels after loading; larger photos are downscaled (a face
            detector at 640 px gains nothing from more).
        max_pixels: hard cap on width*height declared by the file header (a decompression-bomb
            guard); beyond it the photo is refused with a message. 150 MP is above common
            cameras and below Pillow's own hard limit (~179 MP), so this message is the one seen.
        min_side: shortest side accepted, pixels, checked from the header (0 = any). Photos for
            an avatar use ``FACE_PHOTO_LIMITS``: below 64 px no face is detectable (SCRFD's
            smallest anchors are 16 px at a 640 px input, and a face fills only part of a photo).
    """

    max_side: int = 4096
    max_pixels: int = 150_000_000
    min_side: int = 0


#: The limits of a photo an avatar is made from (``create``, ``demo --photo``).
FACE_PHOTO_LIMITS = ImageLimits(min_side=64)


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"cannot read photo {path}: {problem}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB (transparency on white, 16-bit scaled, CMYK converted)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        samples = np.asarray(img).astype(np.float64)
        # 16-bit greyscale (PNG, TIFF): full scale 65535. A mode "I" image holding only 8-bit
        # values (some TIFFs) keeps its scale.
        full_scale = UINT16_MAX if (mode.startswith("I;16") or samples.max(initial=0) > UINT8_MAX
                                    or img.format == "PNG") else UINT8_MAX
        grey = np.clip(np.rint(samples * (UINT8_MAX / full_scale)), 0, UINT8_MAX).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        samples = np.asarray(img).astype(np.float64)
        scale = UINT8_MAX if samples.max(initial=0) <= 1.0 else 1.0
        grey = np.clip(np.rint(samples * scale), 0, UINT8_MAX).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE_RGB + (UINT8_MAX,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, LAB, HSV, 1, RGB


def load_image(path: str | Path, max_side: int = ImageLimits.max_side,
               limits: ImageLimits | None = None) -> np.ndarray:
    """Load a photo as an upright RGB array.

    Args:
        path: image file (JPEG, PNG, WebP, or any format Pillow opens).
        max_side: longest side of the result; bigger images are downscaled (aspect kept).
        limits: further limits (``max_pixels``); ``limits.max_side`` is ignored in favour of
            ``max_side``.

    Returns:
        (H, W, 3) uint8 RGB, EXIF orientation applied, transparency composited on white.

    Raises:
        InputError: missing/empty/truncated/non-image file, or beyond ``max_pixels``; the
            message names the file.
    """
    limits = limits or ImageLimits()
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels cap replaces Pillow's global bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > limits.max_pixels:
                    raise _fail(path, f"{width}x{height} pixels is over the limit of "
                                      f"{limits.max_pixels:,}; downscale the photo first")
                if min(width, height) < limits.min_side:
                    raise _fail(path, f"{width}x{height} pixels is too small to hold a detectable face "
                                      f"(at least {limits.min_side} px on the short side)")
                if img.format == "JPEG":
                    # DCT-domain downscale (1/2, 1/4, 1/8) to no less than the requested size.
                    scale = max_side / max(width, height)
                    if scale < 1:
                        img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
                img.load()
                upright = ImageOps.exif_transpose(img)
                rgb = _to_rgb(upright)
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        raise _fail(path, f"image is too large ({error})") from error
    except UnidentifiedImageError as error:
        raise _fail(path, "not an image Pillow can decode (JPEG, PNG, WebP, ...)") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise _fail(path, f"the image data is truncated or corrupt ({error})") from error
    if max(rgb.size) > max_side:
        factor = max_side / max(rgb.size)
        new_size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        rgb = rgb.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(rgb, dtype=np.uint8).copy()


@dataclass(frozen=True)
class Photo:
    """A decoded photo: its file and its pixels, (H, W, 3) uint8 RGB (``load_image``)."""

    path: Path
    pixels: np.ndarray


def load_face_photos(photos: Sequence[str | os.PathLike]) -> list[Photo]:
    """Every photo exists, decodes and is large enough to hold a face (``FACE_PHOTO_LIMITS``),
    decoded once: ``create`` embeds the pixels it checked. Raises one ``InputError`` naming the
    first bad photo."""
    if not photos:
        raise InputError("no photo given")
    return [Photo(Path(p), load_image(p, limits=FACE_PHOTO_LIMITS)) for p in photos]


def check_face_photos(photos: Sequence[str | os.PathLike]) -> list[Path]:
    """``load_face_photos``' check alone: the one check of the photos ``create``, ``demo --photo``,
    ``embed`` and the web app take, made before any model loads."""
    return [photo.path for photo in load_face_photos(photos)]


