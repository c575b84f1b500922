"""Claims about photo decoding (docs/method.md §1): every odd photo becomes upright 8-bit RGB, or one
InputError naming the file."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from arc2avatar.errors import InputError
from arc2avatar.identity.image import ImageLimits, load_image

EXIF_ORIENTATION_TAG = 0x0112


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """A real photo, made non-square so orientation mistakes change the shape."""
    return data.astronaut()[:, 64:448]  # (512, 384, 3)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_exif_rotated_jpeg_is_returned_upright(tmp_path: Path, astronaut: np.ndarray):
    # Stored rotated by 90° CCW with orientation 6 ("rotate 90 CW to display").
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    stored = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    stored.save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.shape == astronaut.shape
    assert _mean_abs(loaded, astronaut) < 4.0


def test_rgba_png_is_composited_on_white(tmp_path: Path, astronaut: np.ndarray):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0          # fully transparent band
    rgba[100:200, :, 3] = 128     # half transparent band
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    loaded = load_image(tmp_path / "alpha.png")
    assert (loaded[:100] == 255).all()
    half = (astronaut[100:200].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(loaded[100:200] - half).max() <= 1.0
    assert np.array_equal(loaded[200:], astronaut[200:])


def test_greyscale_jpeg_becomes_three_equal_channels(tmp_path: Path):
    camera = data.camera()
    Image.fromarray(camera).save(tmp_path / "grey.jpg", quality=95)
    assert Image.open(tmp_path / "grey.jpg").mode == "L"
    loaded = load_image(tmp_path / "grey.jpg")
    assert loaded.shape == camera.shape + (3,)
    assert np.array_equal(loaded[..., 0], loaded[..., 1])
    assert np.array_equal(loaded[..., 0], loaded[..., 2])
    assert _mean_abs(loaded[..., 0], camera) < 3.0


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path):
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    loaded = load_image(tmp_path / "grey16.png")
    assert np.abs(loaded[..., 0].astype(int) - np.rint(ramp / 257)).max() <= 0
    assert loaded.max() == 255 and loaded.min() == 0 and len(np.unique(loaded)) > 200


def _write_rgb16_png(path: Path, rgb16: np.ndarray) -> None:
    """Minimal PNG writer for 48-bit RGB (Pillow cannot write it)."""
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_rgb_png_keeps_its_full_range(tmp_path: Path):
    rgb16 = np.linspace(0, 65535, 40 * 30 * 3).reshape(30, 40, 3).astype(np.uint16)
    _write_rgb16_png(tmp_path / "rgb16.png", rgb16)
    loaded = load_image(tmp_path / "rgb16.png")
    assert np.abs(loaded.astype(int) - rgb16 / 257).max() <= 1.0


def test_cmyk_jpeg_is_converted_to_matching_rgb(tmp_path: Path, astronaut: np.ndarray):
    Image.fromarray(astronaut).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    loaded = load_image(tmp_path / "cmyk.jpg")
    assert loaded.shape == astronaut.shape
    assert _mean_abs(loaded, astronaut) < 6.0


def test_webp_photo_loads(tmp_path: Path, astronaut: np.ndarray):
    Image.fromarray(astronaut).save(tmp_path / "photo.webp", quality=95)
    loaded = load_image(tmp_path / "photo.webp")
    assert loaded.shape == astronaut.shape and loaded.dtype == np.uint8
    assert _mean_abs(loaded, astronaut) < 6.0


def test_huge_jpeg_is_downscaled_to_max_side_keeping_aspect(tmp_path: Path, astronaut):
    big = Image.fromarray(astronaut).resize((384 * 4, 512 * 4))
    big.save(tmp_path / "big.jpg", quality=90)
    loaded = load_image(tmp_path / "big.jpg", max_side=600)
    assert loaded.shape == (600, 450, 3)
    reference = np.asarray(Image.fromarray(astronaut).resize((450, 600), Image.LANCZOS))
    assert _mean_abs(loaded, reference) < 8.0


def test_pixel_cap_refuses_before_decoding(tmp_path: Path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "photo.png")
    with pytest.raises(InputError, match=r"photo\.png.*over the limit"):
        load_image(tmp_path / "photo.png", limits=ImageLimits(max_pixels=1000))


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"hello, this is not a picture\n" * 10, "not an image"),
])
def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path, content, problem):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_truncated_jpeg_raises_input_error_naming_the_file(tmp_path: Path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "full.jpg", quality=90)
    data_bytes = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data_bytes[: len(data_bytes) // 2])
    with pytest.raises(InputError, match="truncated") as info:
        load_image(tmp_path / "cut.jpg")
    assert "cut.jpg" in str(info.value)


def test_missing_file_raises_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_embed_refuses_a_photo_too_small_for_a_face_before_loading_weights(tmp_path, capsys) -> None:
    """``embed`` takes the same photo check as ``create`` (64 px on the short side), naming the
    photo instead of the missing weights."""
    from PIL import Image

    from arc2avatar.cli.main import main

    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8), (200, 150, 120)).save(tiny)
    assert main(["embed", str(tiny), "-o", str(tmp_path / "id.npy"), "--weights", str(tmp_path / "none")]) != 0
    err = capsys.readouterr().err
    assert "tiny.png" in err and "64 px" in err and "weight" not in err.lower()
    assert not (tmp_path / "id.npy").exists()
