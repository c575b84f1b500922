"""Fuzz: expression sequences (``load_sequence``: JSON / NPZ, never pickle) and fine-tuning datasets
(``check_dataset``: views.json; it reports problems instead of raising)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from arc2avatar.finetune.dataset import DatasetLimits, check_dataset
from arc2avatar.testing.finetune_data import write_synthetic_identity
from arc2avatar.avatar.rig import MAX_EXPRESSION_WEIGHT
from arc2avatar.animate.sequence import load_sequence

from fuzz_support import FUZZ, cli, assert_read_or_refused, assert_refused, scratch
from hostile_files import npz_bomb

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=15)


def _accepted_sequence(result) -> None:
    if not isinstance(result, Exception):
        assert 0 < result.fps <= 240 and result.num_frames >= 1
        assert bool((result.weights.abs() <= MAX_EXPRESSION_WEIGHT).all())


@FUZZ
@given(data=JSON)
def test_any_json_sequence(data) -> None:
    with scratch() as folder:
        path = folder / "seq.json"
        path.write_text(json.dumps(data))
        _accepted_sequence(assert_read_or_refused(load_sequence, path))


@FUZZ
@given(fps=st.one_of(st.floats(), st.integers(-5, 10**9)),
       frames=st.lists(st.dictionaries(st.sampled_from(["smile", "jaw_open"]), st.floats() | st.integers(-10**400 // 10**399, 10**30)),
                       max_size=5))
def test_json_sequence_values(fps, frames) -> None:
    with scratch() as folder:
        path = folder / "seq.json"
        path.write_text(json.dumps({"fps": fps, "frames": frames}))
        _accepted_sequence(assert_read_or_refused(load_sequence, path))


@FUZZ
@given(joints=st.lists(st.dictionaries(st.sampled_from(["jaw", "neck"]),
                                       st.lists(st.floats() | st.integers(-10**30, 10**30), max_size=4)
                                       | st.text(max_size=4) | st.floats()), max_size=3))
def test_json_sequence_joint_poses(joints) -> None:
    with scratch() as folder:
        path = folder / "seq.json"
        path.write_text(json.dumps({"fps": 30, "frames": [{"smile": 0.1}] * len(joints or [{}]), "joints": joints}))
        result = assert_read_or_refused(load_sequence, path)
        _accepted_sequence(result)
        if not isinstance(result, Exception) and result.joints:
            assert all(v.shape == (result.num_frames, 3) and bool(v.abs().le(2 * np.pi).all())
                       for v in result.joints.values())


SEQUENCE_CASES = {
    "objects.npz": lambda p: np.savez(p, weights=np.array([[0.1]]), names=np.array([{"x": 1}], dtype=object)),
    "bomb.npz": lambda p: npz_bomb(p),
    "fps_vector.npz": lambda p: np.savez(p, weights=np.zeros((2, 1)), names=np.array(["smile"]), fps=np.array([1.0, 2.0])),
    "nan.npz": lambda p: np.savez(p, weights=np.full((2, 1), np.nan), names=np.array(["smile"])),
    "huge_int.json": lambda p: p.write_text('{"fps": 30, "frames": [{"smile": 1' + "0" * 5000 + "}]}"),
    "deep.json": lambda p: p.write_text("[" * 100_000),
    "fps_inf.json": lambda p: p.write_text('{"fps": 1e999, "frames": [{"smile": 0.1}]}'),
    "random.npz": lambda p: p.write_bytes(b"PK\x03\x04" + bytes(range(200))),
}


@pytest.mark.parametrize("name", list(SEQUENCE_CASES))
def test_hostile_sequences_are_one_line(tmp_path, name) -> None:
    path = tmp_path / name
    SEQUENCE_CASES[name](path)
    assert_refused(load_sequence, path)


LIMITS = DatasetLimits(min_views=1, min_side=8)


@FUZZ
@given(views=JSON, entry=st.dictionaries(st.sampled_from(["file", "azimuth_deg", "elevation_deg"]), JSON, max_size=3))
def test_any_views_json(views, entry) -> None:
    with scratch() as folder:
        identity = write_synthetic_identity(folder / "data" / "a", views=1, side=8)
        (identity / "views.json").write_text(json.dumps({"views": [entry, views]} if entry else views))
        report = check_dataset(folder / "data", LIMITS)  # reports, never raises
        for problem in report.problems:
            assert "\n" not in problem and str(folder) in problem
        for record in report.identities:
            for view in record.views:
                assert view.path.resolve().is_relative_to(identity.resolve())


def test_cli_animate_with_a_pickled_sequence_runs_nothing(tmp_path, capsys) -> None:
    path = tmp_path / "seq.npz"
    SEQUENCE_CASES["objects.npz"](path)
    code, err = cli(["animate", str(tmp_path / "no-avatar"), "--sequence", str(path), "-o", str(tmp_path / "a.mp4")], capsys)
    assert code == 1 and "seq.npz" in err and "pickle" in err and not (tmp_path / "a.mp4").exists()
