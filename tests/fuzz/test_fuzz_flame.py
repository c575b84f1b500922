"""Fuzz: FLAME files (``head.flame.read_flame_arrays`` / ``read_flame_masks``): pickles go through the
allow-list unpickler (a payload runs nothing), ``.npz`` files are size-checked before decompressing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

from arc2avatar.head.flame import read_flame_arrays, read_flame_masks
from arc2avatar.testing.flame import synthetic_flame_arrays

from fuzz_support import FUZZ, FUZZ_FEW, cli, assert_read_or_refused, assert_refused, scratch
from hostile_files import npz_bomb, pickle_payload, zip_bomb_npz


class _Forbidden:
    """A class no FLAME file names (module ``tests``): refused by the allow-list."""


def _pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


@pytest.mark.parametrize("wrap", [True, False])
def test_a_pickle_payload_runs_nothing(tmp_path, wrap) -> None:
    marker = tmp_path / "pwned"
    path = pickle_payload(tmp_path / "generic_model.pkl", marker, wrap=wrap)
    assert_refused(read_flame_arrays, path, match="refusing")
    assert_refused(lambda p: read_flame_masks(p, 5023), path, match="refusing")
    assert not marker.exists()


CLASSES = [("builtins", "eval"), ("os", "system"), ("subprocess", "Popen"), ("builtins", "getattr"),
           ("numpy", "load"), ("torch", "load"), ("posix", "system"), ("__main__", "anything")]


@pytest.mark.parametrize("module,name", CLASSES, ids=[f"{m}.{n}" for m, n in CLASSES])
def test_unknown_classes_are_refused_by_name(tmp_path, module, name) -> None:
    # protocol-2 GLOBAL opcode naming module.name, then an empty tuple and REDUCE
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
    message = assert_refused(read_flame_arrays, path, match="refusing")
    assert f"{module}.{name}" in message or name in message


def test_wrong_shapes_are_named(tmp_path) -> None:
    arrays = synthetic_flame_arrays()
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :10]
    path = tmp_path / "model.pkl"
    path.write_bytes(_pickled(arrays))
    assert_refused(read_flame_arrays, path, match="shapedirs")
    arrays = synthetic_flame_arrays()
    arrays["v_template"] = np.full_like(arrays["v_template"], np.nan)
    np.savez(tmp_path / "nan.npz", **arrays)
    assert_read_or_refused(read_flame_arrays, tmp_path / "nan.npz")


def test_npz_bombs_are_refused_before_decompressing(tmp_path) -> None:
    assert_refused(read_flame_arrays, npz_bomb(tmp_path / "declared.npz"), match="declares more data")
    assert_refused(read_flame_arrays, zip_bomb_npz(tmp_path / "zeros.npz"), match="decompress to")
    objects = tmp_path / "objects.npz"
    np.savez(objects, v_template=np.array([{"a": 1}], dtype=object))
    assert_refused(read_flame_arrays, objects, match="pickle")


@FUZZ
@given(body=st.binary(max_size=600), prefix=st.sampled_from([b"", b"\x80\x02", b"\x80\x04\x95", b"PK\x03\x04", b"(dp0\n"]))
def test_random_bytes(body, prefix) -> None:
    with scratch() as folder:
        path = folder / "generic_model.pkl"
        path.write_bytes(prefix + body)
        assert_refused(read_flame_arrays, path)


ARRAYS = synthetic_flame_arrays()


@FUZZ_FEW
@given(key=st.sampled_from(["v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"]),
       value=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.floats(), max_size=4),
                       st.builds(np.zeros, st.tuples(st.integers(0, 3), st.integers(0, 3)))))
def test_any_value_for_a_flame_key(key, value) -> None:
    arrays = {**ARRAYS, key: value}
    with scratch() as folder:
        path = folder / "model.pkl"
        path.write_bytes(_pickled(arrays))
        assert_refused(read_flame_arrays, path)


def test_cli_template_with_a_payload_flame_runs_nothing(tmp_path, capsys) -> None:
    marker = tmp_path / "pwned"
    path = pickle_payload(tmp_path / "flame2023.pkl", marker)
    code, err = cli(["template", "-o", str(tmp_path / "tpl"), "--flame", str(path)], capsys)
    assert code == 1 and "flame2023.pkl" in err
    assert not marker.exists() and not (tmp_path / "tpl").exists()
