"""Fuzz: splat PLY files (``splats.ply.read_ply``, what render/viewer/Avatar.load read)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from arc2avatar.splats.ply import read_ply

from fuzz_support import FUZZ, cli, assert_read_or_refused, assert_refused, scratch, tree
from hostile_files import SPLAT_PROPERTIES, good_rows, ply, splat_ply

PROPS = [f"property float {p}" for p in SPLAT_PROPERTIES]


def _with(rows_fn):
    rows = good_rows()
    rows_fn(rows)
    return rows


# (name, builder(path), text the message must hold)
CRAFTED = [
    ("count_larger", lambda p: splat_ply(p, good_rows(4), count=5), "truncated"),
    ("count_huge", lambda p: splat_ply(p, good_rows(4), count=10**12), "more than"),
    ("count_negative", lambda p: ply(p, ["format binary_little_endian 1.0", "element vertex -3", *PROPS]), "header line"),
    ("count_zero", lambda p: splat_ply(p, good_rows(0)), "no splats"),
    ("no_end_header", lambda p: ply(p, ["format binary_little_endian 1.0", "element vertex 1", *PROPS], end=False), "end_header"),
    ("ascii", lambda p: ply(p, ["format ascii 1.0", "element vertex 1", *PROPS], b"0 " * 14), "binary"),
    ("duplicate_property", lambda p: ply(p, ["format binary_little_endian 1.0", "element vertex 1", *PROPS, PROPS[0]],
                                          b"\0" * 60), "more than once"),
    ("list_property", lambda p: ply(p, ["format binary_little_endian 1.0", "element vertex 1",
                                        "property list uchar int vertex_indices", *PROPS], b"\0" * 60), "list"),
    ("missing_fields", lambda p: ply(p, ["format binary_little_endian 1.0", "element vertex 1", *PROPS[:5]], b"\0" * 20), "lacks"),
    ("nan", lambda p: splat_ply(p, _with(lambda r: r.__setitem__((1, 0), np.nan))), "NaN"),
    ("inf", lambda p: splat_ply(p, _with(lambda r: r.__setitem__((2, 3), np.inf))), "infinite"),
    ("zero_quaternion", lambda p: splat_ply(p, _with(lambda r: r.__setitem__((slice(None), slice(10, 14)), 0.0))), "quaternion"),
    ("log_scale_overflow", lambda p: splat_ply(p, _with(lambda r: r.__setitem__((0, 7), 100.0))), "log-scales"),
    ("not_a_ply", lambda p: p.write_bytes(b"solid cube\n"), "not a PLY"),
    ("non_ascii_header", lambda p: p.write_bytes(b"ply\nformat binary_little_endian 1.0\n\xff\xfe\nend_header\n"), "ASCII"),
    ("no_format", lambda p: ply(p, ["element vertex 1", *PROPS], b"\0" * 56), "format"),
    ("no_vertex", lambda p: ply(p, ["format binary_little_endian 1.0", "element face 0", "property float x"]), "vertex"),
]


@pytest.mark.parametrize("name,build,match", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_ply_is_one_line_naming_the_file(tmp_path, name, build, match) -> None:
    path = tmp_path / f"{name}.ply"
    build(path)
    assert_refused(read_ply, path, match=match)


def test_big_endian_and_extra_properties_are_read_exactly(tmp_path) -> None:
    rows = good_rows(5)
    little = read_ply(splat_ply(tmp_path / "le.ply", rows))
    big = read_ply(splat_ply(tmp_path / "be.ply", rows, order=">", fmt="binary_big_endian"))
    assert torch.equal(little.means, big.means) and torch.equal(little.params["quats"], big.params["quats"])
    assert torch.allclose(little.means, torch.from_numpy(rows[:, :3]))


HEADER_EDITS = st.lists(st.tuples(st.integers(0, 20), st.sampled_from([
    "", "element vertex 2", "element vertex 99999999999", "element face 3", "property float x", "property list uchar int i",
    "property double rot_0", "property char opacity", "format binary_big_endian 1.0", "format ascii 1.0",
    "comment hi", "property float", "element", "end_header", "obj_info x"])), max_size=4)


@FUZZ
@given(edits=HEADER_EDITS, cut=st.integers(0, 400),
       values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=28))
def test_mutated_headers_and_values(edits, cut, values) -> None:
    header = ["format binary_little_endian 1.0", "element vertex 2", *PROPS]
    for at, line in edits:
        header.insert(at % (len(header) + 1), line)
    rows = good_rows(2).reshape(-1)
    rows[: len(values)] = values
    data = rows.astype("<f4").tobytes()
    with scratch() as folder:
        path = ply(folder / "splats.ply", header, data[: cut % (len(data) + 1)])
        result = assert_read_or_refused(read_ply, path)
        if not isinstance(result, Exception):
            assert bool(torch.isfinite(result.means).all()) and result.num_splats >= 1


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bytes_after_a_ply_magic(body) -> None:
    with scratch() as folder:
        path = folder / "r.ply"
        path.write_bytes(b"ply\n" + body)
        assert_read_or_refused(read_ply, path)


def test_cli_render_of_a_crafted_ply_writes_nothing(tmp_path, capsys) -> None:
    bad = splat_ply(tmp_path / "nan.ply", _with(lambda r: r.__setitem__((1, 0), np.nan)))
    before = tree(tmp_path)
    code, err = cli(["render", str(bad), "--sheet", "--size", "16", "-o", str(tmp_path / "sheet.png")], capsys)
    assert code == 1 and "nan.ply" in err
    code, err = cli(["viewer", str(bad), "-o", str(tmp_path / "page.html")], capsys)
    assert code == 1 and "nan.ply" in err
    assert tree(tmp_path) == before
