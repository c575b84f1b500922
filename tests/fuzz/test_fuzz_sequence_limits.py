"""Sequence files that cost far more than their size, and values that were read without complaint
(issue 26, items 5 and 10): each is refused once, fast, in one short line naming the file.

On the code before issue 26, 3000 frames each naming a different joint took about a minute and
1.26 GB before being refused, 3000 distinct expression names 23 s, and each error line was about
20 KB; the budgets below (seconds, characters) are far from both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from arc2avatar.animate.sequence import (MAX_SEQUENCE_JOINTS, MAX_SEQUENCE_NAMES, ExpressionSequence, load_sequence)
from arc2avatar.errors import InputError

from fuzz_support import FUZZ, assert_read_or_refused, assert_refused, scratch

SECONDS = 2.0  # a refusal's budget on a loaded 2-core machine (the reads below take ~0.1 s)
LINE = 400  # the longest error line accepted, characters


def assert_refused_fast(path, match: str = "") -> str:
    start = time.perf_counter()
    message = assert_refused(load_sequence, path, match=match)
    assert time.perf_counter() - start < SECONDS
    assert len(message) < LINE, len(message)
    return message


def _frames(n: int, row=lambda i: {"smile": 0.1}) -> list[dict]:
    return [row(i) for i in range(n)]


def test_3000_frames_each_posing_a_different_joint_are_refused_at_once(tmp_path) -> None:
    path = tmp_path / "joints.json"
    path.write_text(json.dumps({"fps": 30, "frames": _frames(3000),
                                "joints": [{f"joint_{i}": [0.1, 0, 0]} for i in range(3000)]}))
    assert_refused_fast(path, f"more than {MAX_SEQUENCE_JOINTS} distinct joint names")


def test_3000_distinct_expression_names_are_refused_at_once(tmp_path) -> None:
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"fps": 30, "frames": _frames(3000, lambda i: {f"expression_{i}": 0.5})}))
    assert_refused_fast(path, f"more than {MAX_SEQUENCE_NAMES} distinct expression names")


def test_a_sequence_json_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    import arc2avatar.animate.sequence as sequence

    path = tmp_path / "big.json"
    path.write_text(json.dumps({"fps": 30, "frames": _frames(2000)}))
    monkeypatch.setattr(sequence, "MAX_SEQUENCE_JSON_BYTES", 1 << 14)
    monkeypatch.setattr("pathlib.Path.read_text", lambda *a, **k: pytest.fail("the file was read"))
    assert_refused_fast(path, "MiB accepted")


def test_an_unknown_name_is_one_short_line_however_many_there_are() -> None:
    from arc2avatar.animate.render import animation_frames
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.rig import setup_for_avatar

    avatar = Avatar.load(Path(__file__).parent.parent / "fixtures" / "avatar-v0.1.0")
    names = tuple(f"not_a_blendshape_{i:03d}" for i in range(MAX_SEQUENCE_NAMES))
    sequence = ExpressionSequence(30.0, names, torch.zeros(2, len(names)))
    with pytest.raises(InputError, match="and 248 more") as refused:
        next(animation_frames(avatar, setup_for_avatar(avatar), sequence))
    assert len(str(refused.value)) < LINE and "\n" not in str(refused.value)


# ---------------------------------------------------------------- item 10: values read without complaint
CASES = {
    "string_weight.json": ({"fps": 30, "frames": [{"smile": "0.5"}]}, "must be a number"),
    "bool_weight.json": ({"fps": 30, "frames": [{"smile": True}]}, "must be a number"),
    "string_fps.json": ({"fps": "30", "frames": [{"smile": 0.5}]}, "'fps'"),
    "string_joint.json": ({"fps": 30, "frames": [{}], "joints": [{"jaw": ["0.1", 0, 0]}]}, "3 numbers"),
    "huge_scale.json": ({"fps": 30, "frames": [{}], "head_pose": [{"scale": 1e30}]}, "scale in [0.1, 10]"),
    "tiny_scale.json": ({"fps": 30, "frames": [{}], "head_pose": [{"scale": 1e-9}]}, "scale in [0.1, 10]"),
    "far_away.json": ({"fps": 30, "frames": [{}], "head_pose": [{"tx": 1e6}]}, "±10 world units"),
    "spun.json": ({"fps": 30, "frames": [{}], "head_pose": [{"yaw_deg": 1e20}]}, "±360°"),
    "string_pose.json": ({"fps": 30, "frames": [{}], "head_pose": [{"yaw_deg": "10"}]}, "must be a number"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_outside_their_stated_range_are_refused(tmp_path, name) -> None:
    data, match = CASES[name]
    path = tmp_path / name
    path.write_text(json.dumps(data))
    assert_refused_fast(path, match)


def test_a_name_given_twice_in_one_frame_is_refused(tmp_path) -> None:
    path = tmp_path / "twice.json"
    path.write_text('{"fps": 30, "frames": [{"smile": 0.2, "smile": 0.9}]}')
    assert_refused_fast(path, "'smile' appears twice")


@pytest.mark.parametrize("case", ["complex_weights", "complex_pose", "complex_joints", "duplicate_names",
                                  "duplicate_joints"])
def test_npz_sequences_of_complex_numbers_or_repeated_names_are_refused(tmp_path, case) -> None:
    path = tmp_path / f"{case}.npz"
    arrays = {"weights": np.full((2, 2), 0.1), "names": np.array(["smile", "jaw_open"])}
    if case == "complex_weights":
        arrays["weights"] = arrays["weights"] + 0.5j
    elif case == "complex_pose":
        arrays["head_pose"] = np.tile(np.array([0, 0, 0, 0, 0, 0, 1.0]), (2, 1)) + 1j
    elif case == "complex_joints":
        arrays.update(joint_names=np.array(["jaw"]), joint_poses=np.zeros((2, 1, 3)) + 1j)
    elif case == "duplicate_names":
        arrays["names"] = np.array(["smile", "smile"])
    else:
        arrays.update(joint_names=np.array(["jaw", "jaw"]), joint_poses=np.zeros((2, 2, 3)))
    np.savez(path, **arrays)
    assert_refused_fast(path, "more than once" if case.startswith("duplicate") else "real")


def test_values_inside_the_ranges_still_read(tmp_path) -> None:
    path = tmp_path / "fine.json"
    path.write_text(json.dumps({"fps": 30, "frames": [{"smile": 0.5}, {"jaw_open": 1}],
                                "head_pose": [{"yaw_deg": -30, "scale": 1.2, "tx": 0.1}, {"roll_deg": 359.0}],
                                "joints": [{"jaw": [0.1, 0, 0]}, {}]}))
    sequence = load_sequence(path)
    assert sequence.names == ("jaw_open", "smile") and sequence.weights.tolist() == [[0.0, 0.5], [1.0, 0.0]]
    assert sequence.head_pose[0, 6] == pytest.approx(1.2) and sequence.joints["jaw"][1].tolist() == [0, 0, 0]


@FUZZ
@given(rows=st.lists(st.dictionaries(st.text(max_size=3), st.floats(-20, 20) | st.integers(-20, 20) | st.text(max_size=3),
                                     max_size=6), min_size=1, max_size=40))
def test_any_frames_read_in_time_linear_in_their_size(rows) -> None:
    with scratch() as folder:
        path = folder / "seq.json"
        path.write_text(json.dumps({"fps": 30, "frames": rows}))
        result = assert_read_or_refused(load_sequence, path)
        if not isinstance(result, Exception):
            assert result.weights.shape == (len(rows), len({k for r in rows for k in r}))
            for t, row in enumerate(rows):
                assert result.frame(t) == pytest.approx({n: float(row.get(n, 0.0)) for n in result.names})
