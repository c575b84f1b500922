"""Claims about the output writers: sheets, videos, JSON and the JSON-lines log."""

from __future__ import annotations

import builtins
import json

import imageio.v2 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from arc2avatar.errors import MissingDependencyError
from arc2avatar._io import JsonlLogger, read_jsonl, write_json
from arc2avatar.avatar.media import write_sheet, write_video


def test_sheet_is_a_png_grid_holding_the_images(tmp_path):
    images = np.zeros((5, 40, 48, 3), dtype=np.float32)
    for i in range(5):
        images[i, ..., i % 3] = 1.0  # pure red / green / blue tiles
    path = write_sheet(images, tmp_path / "views.png", columns=3, labels=["a", "", "c", "d", "e"])
    sheet = np.asarray(Image.open(path))
    pad = 2
    assert sheet.shape == (2 * 40 + 3 * pad, 3 * 48 + 4 * pad, 3)
    # Tile 4 (row 1, column 1) is green (4 % 3 == 1) at its centre and labelled in its corner;
    # tile 1 (row 0, column 1, empty label) is plain green.
    y, x = pad + 1 * (40 + pad), pad + 1 * (48 + pad)
    assert sheet[y + 30, x + 30].tolist() == [0, 255, 0]
    assert (sheet[y:y + 16, x:x + 16, 1] < 128).any()  # the dark label box
    assert (sheet[pad:pad + 40, x:x + 48] == [0, 255, 0]).all()
    assert [p.name for p in tmp_path.iterdir()] == ["views.png"]


def test_sheet_accepts_uint8_torch_images(tmp_path):
    images = torch.full((2, 8, 8, 3), 128, dtype=torch.uint8)
    path = write_sheet(images, tmp_path / "s.png")
    assert np.asarray(Image.open(path))[4, 4].tolist() == [128, 128, 128]


def test_video_decodes_with_all_frames_and_even_size(tmp_path):
    frames = [np.full((21, 30, 3), i / 9.0, dtype=np.float32) for i in range(10)]  # odd height
    count = write_video(iter(frames), tmp_path / "turntable.mp4", fps=10)
    reader = iio.get_reader(tmp_path / "turntable.mp4", format="FFMPEG")
    try:
        assert count == 10 and reader.count_frames() == 10
        first = reader.get_data(0)
        last = reader.get_data(9)
    finally:
        reader.close()
    assert first.shape == (22, 30, 3)
    assert abs(int(first.mean()) - 0) <= 3 and abs(int(last.mean()) - 255) <= 3
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.mp4"]


def test_failure_midway_leaves_neither_video_nor_temporary_file(tmp_path):
    def frames():
        for _ in range(3):
            yield np.zeros((16, 16, 3), dtype=np.uint8)
        raise RuntimeError("renderer died")

    target = tmp_path / "turntable.mp4"
    target.write_bytes(b"old")  # an earlier complete output stays intact
    with pytest.raises(RuntimeError, match="renderer died"):
        write_video(frames(), target)
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.mp4"] and target.read_bytes() == b"old"
    with pytest.raises(ValueError, match="no frames"):
        write_video(iter([]), tmp_path / "empty.mp4")
    assert not (tmp_path / "empty.mp4").exists() and len(list(tmp_path.iterdir())) == 1


def test_missing_imageio_ffmpeg_gives_a_missing_dependency_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "imageio_ffmpeg":
            raise ImportError("No module named 'imageio_ffmpeg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match="pip install .*imageio-ffmpeg"):
        write_video([np.zeros((4, 4, 3), np.uint8)], tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_json_is_atomic_and_plain(tmp_path):
    path = write_json({"psnr": np.float32(31.5), "views": torch.tensor([1.0, 2.0]), "inf": float("inf"),
                       "path": tmp_path}, tmp_path / "metrics.json")
    assert json.loads(path.read_text()) == {"psnr": 31.5, "views": [1.0, 2.0], "inf": None, "path": str(tmp_path)}
    with pytest.raises(TypeError):
        write_json({"bad": object()}, tmp_path / "bad.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_jsonl_logger_appends_on_resume_even_after_a_torn_line(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlLogger(path) as log:
        log.log({"it": 1, "loss": 0.5})
        assert read_jsonl(path) == [{"it": 1, "loss": 0.5}]  # flushed immediately
    with path.open("a") as f:
        f.write('{"it": 2, "lo')  # a run killed mid-write
    log = JsonlLogger(path)
    log.log({"it": 3})
    log.close()
    log.close()  # idempotent
    assert read_jsonl(path) == [{"it": 1, "loss": 0.5}, {"it": 3}]
    with pytest.raises(ValueError, match="closed"):
        log.log({"it": 4})
