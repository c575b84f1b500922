"""Fine-tuning datasets cannot name files outside themselves, and image bombs are refused (issue 19)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from arc2avatar.cli.main import main
from arc2avatar.finetune.dataset import DatasetLimits, check_dataset
from arc2avatar.testing.finetune_data import write_synthetic_identity

LIMITS = DatasetLimits(min_views=1, min_side=8)


def _identity(tmp_path):
    folder = write_synthetic_identity(tmp_path / "data" / "a", views=2, side=16)
    return folder


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "views/../../outside.png", "", "link.png",
                                  "dirlink/x.png"])
def test_views_json_cannot_leave_the_identity_folder(tmp_path, name) -> None:
    folder = _identity(tmp_path)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (16, 16)).save(outside)
    (folder / "link.png").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "elsewhere" / "x.png")
    (folder / "dirlink").symlink_to(tmp_path / "elsewhere")
    data = json.loads((folder / "views.json").read_text())
    data["views"][1]["file"] = name
    (folder / "views.json").write_text(json.dumps(data))
    report = check_dataset(tmp_path / "data", LIMITS)
    assert not report.ok
    assert any("inside the identity folder" in p or "outside the identity folder" in p for p in report.problems), report.problems


def test_a_decompression_bomb_png_is_one_problem_line(tmp_path, capsys) -> None:
    from hostile_files import bomb_png

    folder = _identity(tmp_path)
    bomb_png(folder / "views" / "001.png", 50_000)
    code = main(["finetune", "check", str(tmp_path / "data"), "--min-views", "1", "--min-size", "8"])
    out = capsys.readouterr().out
    assert code == 1 and "too large" in out and "001.png" in out and len(out.strip().splitlines()) == 2


def test_a_symlinked_id_vector_leaving_the_folder_is_refused(tmp_path) -> None:
    folder = _identity(tmp_path)
    (folder / "id.npy").rename(tmp_path / "id.npy")
    (folder / "id.npy").symlink_to(tmp_path / "id.npy")
    report = check_dataset(tmp_path / "data", LIMITS)
    assert any("outside the identity folder" in p for p in report.problems)
