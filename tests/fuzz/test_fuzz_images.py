"""Fuzz: photos (``identity.image.load_image``, what create/demo/embed/evaluate read)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from arc2avatar.identity.image import FACE_PHOTO_LIMITS, load_image

from fuzz_support import FUZZ, cli, assert_read_or_refused, assert_refused, scratch
from hostile_files import bomb_png


def _png(size=(64, 64), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 120 if mode in ("L", "P", "I;16") else (200, 120, 90, 128)[: len(mode)]).save(buffer, "PNG", **save)
    return buffer.getvalue()


def _jpeg(size=(64, 64), mode="RGB", exif=None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new(mode, size, (200, 120, 90, 10)[: len(mode)])
    image.save(buffer, "JPEG", **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return _jpeg((96, 64), exif=exif.tobytes())


def _gif() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("P", (64, 64), k) for k in (1, 2)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


# (name, bytes or a builder, expected shape or None = refused)
DECODED = [
    ("cmyk.jpg", lambda: _jpeg(mode="CMYK"), (64, 64, 3)),
    ("grey16.png", lambda: _png(mode="I;16"), (64, 64, 3)),
    ("palette.png", lambda: _png(mode="P", transparency=0), (64, 64, 3)),
    ("alpha.png", lambda: _png(mode="RGBA"), (64, 64, 3)),
    ("rotated.jpg", _exif_rotated, (96, 64, 3)),  # EXIF orientation applied: taller than wide
    ("animated.gif", _gif, (64, 64, 3)),
    ("tiny.png", lambda: _png((8, 8)), (8, 8, 3)),
]
REFUSED = [
    ("truncated.jpg", lambda: _jpeg()[: len(_jpeg()) // 2], "truncated or corrupt"),
    ("empty.png", lambda: b"", "empty"),
    ("text.png", lambda: b"hello, I am text\n" * 10, "not an image"),
    ("garbage.jpg", lambda: b"\xff\xd8\xff" + bytes(range(256)) * 4, ""),
]


@pytest.mark.parametrize("name,build,shape", DECODED, ids=[d[0] for d in DECODED])
def test_odd_but_valid_images_decode_to_upright_rgb(tmp_path, name, build, shape) -> None:
    path = tmp_path / name
    path.write_bytes(build())
    image = load_image(path)
    assert image.shape == shape and image.dtype == np.uint8


@pytest.mark.parametrize("name,build,match", REFUSED, ids=[r[0] for r in REFUSED])
def test_broken_images_are_one_line_naming_the_file(tmp_path, name, build, match) -> None:
    path = tmp_path / name
    path.write_bytes(build())
    assert_refused(load_image, path, match=match)


def test_bombs_folders_and_links_are_refused(tmp_path) -> None:
    assert_refused(load_image, bomb_png(tmp_path / "bomb.png", 50_000), match="too large")
    (tmp_path / "folder.png").mkdir()
    assert_refused(load_image, tmp_path / "folder.png", match="not a regular file")
    link = tmp_path / "passwd.png"
    link.symlink_to("/etc/passwd")
    assert_refused(load_image, link, match="not an image")
    for side in (1, 8, 63):
        path = tmp_path / f"small{side}.png"
        path.write_bytes(_png((side, 200)))
        assert_refused(lambda p: load_image(p, limits=FACE_PHOTO_LIMITS), path, match="too small")


MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"II*\x00"]


@FUZZ
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=512))
def test_random_bytes_behind_an_image_signature(magic, body) -> None:
    with scratch() as folder:
        path = folder / "photo.img"
        path.write_bytes(magic + body)
        assert_read_or_refused(load_image, path)


@FUZZ
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       kind=st.sampled_from(["png", "jpeg"]))
def test_damaged_real_images(cut, flips, kind) -> None:
    data = bytearray(_png() if kind == "png" else _jpeg())
    for at, value in flips:
        data[at % len(data)] = value
    with scratch() as folder:
        path = folder / f"photo.{kind}"
        path.write_bytes(bytes(data[: max(1, cut % (len(data) + 1))]))
        result = assert_read_or_refused(load_image, path)
        if isinstance(result, np.ndarray):
            assert result.ndim == 3 and result.shape[2] == 3


def test_cli_refuses_a_bad_photo_before_anything_loads(tmp_path, capsys) -> None:
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(_png((8, 8)))
    code, err = cli(["create", str(tiny), "-o", str(tmp_path / "out"), "--weights", str(tmp_path / "none")], capsys)
    assert code == 1 and "tiny.png" in err and "too small" in err
    bomb = bomb_png(tmp_path / "bomb.png", 50_000)
    code, err = cli(["demo", "--photo", str(bomb), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "bomb.png" in err
    assert not (tmp_path / "out").exists()
