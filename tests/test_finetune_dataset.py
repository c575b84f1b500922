"""Claims about the fine-tuning dataset format and its validator (docs/method.md §8; docs/finetune.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.finetune.dataset import DatasetLimits, check_dataset, wrap_azimuth
from arc2avatar.testing.finetune_data import write_synthetic_identity

LIMITS = DatasetLimits(min_views=4, min_side=16)


def make_identity(folder: Path, views: int = 6, side: int = 16, seed: int = 0, id_npy: bool = True) -> Path:
    """A valid identity folder: id.npy (or frontal.png), ``views`` square PNGs over 360°, views.json."""
    return write_synthetic_identity(folder, views=views, side=side, seed=seed, id_npy=id_npy)


def _edit_views(folder: Path, index: int, **changes) -> None:
    data = json.loads((folder / "views.json").read_text())
    data["views"][index].update(changes)
    (folder / "views.json").write_text(json.dumps(data))


def test_valid_dataset_of_two_identities_passes_with_every_view(tmp_path) -> None:
    make_identity(tmp_path / "a", seed=0)
    make_identity(tmp_path / "b", seed=1, id_npy=False)
    report = check_dataset(tmp_path, LIMITS)
    assert report.ok, report.summary()
    assert [i.root.name for i in report.identities] == ["a", "b"] and report.view_count == 12
    assert report.identities[1].frontal is not None and report.identities[1].id_vector is None
    assert check_dataset(tmp_path / "a", LIMITS).view_count == 6  # one identity folder is a dataset too


def _break_missing_json(f: Path) -> None:
    (f / "views.json").unlink()


def _break_missing_file(f: Path) -> None:
    (f / "views" / "002.png").unlink()


def _break_unreadable(f: Path) -> None:
    (f / "views" / "001.png").write_bytes(b"not a png")


def _break_embedding_shape(f: Path) -> None:
    np.save(f / "id.npy", np.ones(128, np.float32) / np.sqrt(128))


def _break_embedding_norm(f: Path) -> None:
    np.save(f / "id.npy", np.ones(512, np.float32))


def _break_azimuth(f: Path) -> None:
    _edit_views(f, 3, azimuth_deg=270.0)


def _break_elevation(f: Path) -> None:
    _edit_views(f, 3, elevation_deg="up")


def _break_few_views(f: Path) -> None:
    data = json.loads((f / "views.json").read_text())
    (f / "views.json").write_text(json.dumps({"views": data["views"][:3]}))


def _break_non_square(f: Path) -> None:
    Image.new("RGB", (16, 20)).save(f / "views" / "004.png")


def _break_too_small(f: Path) -> None:
    Image.new("RGB", (8, 8)).save(f / "views" / "004.png")


def _break_no_identity(f: Path) -> None:
    (f / "id.npy").unlink()


def _break_bad_json(f: Path) -> None:
    (f / "views.json").write_text("{views: oops")


@pytest.mark.parametrize(("breaker", "message"), [
    (_break_missing_json, "missing views.json"),
    (_break_missing_file, "views/002.png: file listed in views.json does not exist"),
    (_break_unreadable, "views/001.png: unreadable image"),
    (_break_embedding_shape, "id.npy: wrong embedding shape (128,)"),
    (_break_embedding_norm, "id.npy: embedding is not unit length"),
    (_break_azimuth, "azimuth_deg 270.0 is out of range (-180, 180]"),
    (_break_elevation, "elevation_deg must be a finite number, got 'up'"),
    (_break_few_views, "only 3 views, need at least 4"),
    (_break_non_square, "views/004.png: image is not square (16×20)"),
    (_break_too_small, "views/004.png: image is too small (8×8, need at least 16×16)"),
    (_break_no_identity, "neither frontal.png nor id.npy"),
    (_break_bad_json, "views.json: not valid JSON"),
])
def test_validator_rejects_each_broken_case_with_its_own_message(tmp_path, breaker, message) -> None:
    make_identity(tmp_path / "good", seed=0)
    broken = make_identity(tmp_path / "bad", seed=1)
    breaker(broken)
    report = check_dataset(tmp_path, LIMITS)
    assert not report.ok
    assert [i.root.name for i in report.identities] == ["good"]
    assert len(report.problems) == 1 and message in report.problems[0], report.problems
    assert str(broken) in report.problems[0]
    with pytest.raises(InputError, match="not usable"):
        report.raise_if_invalid()


def test_check_command_lists_all_problems_and_exits_1(tmp_path, capsys) -> None:
    bad = make_identity(tmp_path / "bad", seed=1)
    _break_azimuth(bad)
    _break_unreadable(bad)
    assert main(["finetune", "check", str(tmp_path), "--min-views", "4", "--min-size", "16"]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out and "azimuth_deg 270.0" in out and "001.png: unreadable image" in out
    make_identity(tmp_path / "bad", seed=1)
    assert main(["finetune", "check", str(tmp_path), "--min-views", "4", "--min-size", "16"]) == 0


def test_missing_dataset_folder_is_one_problem(tmp_path) -> None:
    report = check_dataset(tmp_path / "nowhere", LIMITS)
    assert not report.ok and report.problems == [f"{tmp_path / 'nowhere'}: dataset folder does not exist"]


def test_azimuth_wraps_into_the_half_open_interval() -> None:
    assert [wrap_azimuth(a) for a in (0.0, 180.0, -180.0, 190.0, 360.0, -90.0)] == [0.0, 180.0, 180.0, -170.0, 0.0, -90.0]
