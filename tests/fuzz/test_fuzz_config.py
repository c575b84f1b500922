"""Fuzz: YAML config files (``confkit.load_yaml``) and ``--set`` values (``resolve_config``):
every accepted config is valid and finite, every refusal one line."""

from __future__ import annotations


import pytest
from hypothesis import given, strategies as st

from arc2avatar.errors import InputError
from arc2avatar.confkit import flatten, load_yaml, nonfinite_fields, to_dict
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.presets import resolve_config

from fuzz_support import FUZZ, cli, assert_read_or_refused, assert_refused, scratch

YAML_CASES = [
    ("python_tag.yaml", "seed: !!python/object/apply:os.system ['touch pwned']\n", "constructor"),
    ("alias_bomb.yaml", "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", "alias"),
    ("duplicate.yaml", "seed: 1\niterations: 5\nseed: 2\n", "duplicate key"),
    ("deep.yaml", "a: " + "[" * 50_000 + "\n", ""),
    ("binary.yaml", None, "cannot be read"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
    ("tabs.yaml", "seed:\t\t1\n  iterations: [\n", "not valid YAML"),
]


@pytest.mark.parametrize("name,text,match", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_hostile_yaml_is_one_line(tmp_path, name, text, match) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00\x01\x80" * 50 if text is None else text.encode())
    assert_refused(load_yaml, path, match=match)
    assert not (tmp_path / "pwned").exists()


def test_a_binary_value_is_refused_by_type(tmp_path, capsys) -> None:
    path = tmp_path / "binary_value.yaml"
    path.write_text("seed: !!binary aGVsbG8=\n")
    code, err = cli(["demo", "--config", str(path), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "seed" in err and not (tmp_path / "out").exists()


KEYS = sorted(flatten(to_dict(CreateConfig())))
VALUES = st.one_of(
    st.sampled_from(["nan", ".nan", "inf", "-.inf", "1e400", "-1", "0", "99999999999999999999999", "true", "null",
                     "[]", "[1, 2]", "{a: 1}", "'text'", "cuda:99", "-0.0", "1e-400"]),
    st.integers(-10**25, 10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="abc{}[]:,.-0123456789 ", max_size=10),
)


def _check_accepted(config: CreateConfig) -> None:
    assert nonfinite_fields(config) == []
    assert config.iterations >= 1 and config.view_rings.turntable_frames >= 1 and config.meanface.views_per_step >= 1
    assert 0 <= config.seed < 2**63 and config.splat_init.knn_neighbours >= 1 and 0 < config.optim.eps < 1
    assert 0 <= config.template.face_levels <= 5


@FUZZ
@given(settings=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_any_set_values_on_real_keys(settings) -> None:
    try:
        config = resolve_config("cpu-smoke", None, [f"{k}={v}" for k, v in settings])
    except InputError as error:
        assert "\n" not in str(error)
    else:
        _check_accepted(config)


@FUZZ
@given(key=st.text(alphabet="abcdefgh._=", min_size=0, max_size=12), value=VALUES)
def test_unknown_and_nested_keys(key, value) -> None:
    try:
        config = resolve_config("cpu-smoke", None, [f"{key}={value}"])
    except InputError as error:
        assert "\n" not in str(error)
    else:
        _check_accepted(config)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_yaml_text(text) -> None:
    with scratch() as folder:
        path = folder / "config.yaml"
        path.write_text(text, encoding="utf-8")
        result = assert_read_or_refused(load_yaml, path)
        if isinstance(result, dict):
            try:
                _check_accepted(resolve_config("cpu-smoke", path, []))
            except InputError as error:
                assert "\n" not in str(error)
