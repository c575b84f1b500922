"""Fuzz: avatar bundles (``splats.bundle.load_bundle``: avatar.json + splats.safetensors) and the
template info that express/viewer rebuild from them (``setup_for_avatar``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st
from safetensors.torch import save

from arc2avatar.avatar.model import Avatar
from arc2avatar.splats.bundle import load_bundle, save_bundle
from arc2avatar.splats.model import GaussianSplats

from fuzz_support import FUZZ, cli, assert_read_or_refused, assert_refused, scratch, tree

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)


def _splats(n: int = 6) -> GaussianSplats:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * 0.3
    face = torch.arange(n) < n // 2
    return GaussianSplats(
        {"means": means, "f_dc": torch.randn(n, 3, generator=g), "log_scales": torch.full((n, 3), -3.0),
         "opacity_logits": torch.full((n,), 2.0), "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)},
        face_mask=face, vertex_index=torch.where(face, torch.arange(n), torch.full((n,), -1)), anchors=means.clone())


def _bundle(folder: Path, template: dict | None = None) -> Path:
    return save_bundle(folder / "bundle", _splats(), template or {"kind": "builtin", "face_levels": 0, "rest_levels": 0})


def _rewrite_tensors(bundle: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the tensor file and make the manifest agree with it (checksum, counts): only the
    values are hostile, so the value checks (not the checksum) must catch them."""
    blob = save(tensors)
    (bundle / "splats.safetensors").write_bytes(blob)
    manifest = json.loads((bundle / "avatar.json").read_text())
    manifest["files"]["splats.safetensors"]["sha256"] = hashlib.sha256(blob).hexdigest()
    n = int(tensors["means"].shape[0]) if "means" in tensors and tensors["means"].ndim else 0
    manifest["counts"] = {"splats": n, "face": int(tensors["face_mask"].sum()) if "face_mask" in tensors else 0}
    (bundle / "avatar.json").write_text(json.dumps(manifest))


def _tensors() -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in _splats().to_tensors().items()}


def _edit(fn):
    tensors = _tensors()
    fn(tensors)
    return tensors


TENSOR_CASES = [
    ("nan_means", _edit(lambda t: t["means"].__setitem__((0, 0), float("nan"))), "NaN"),
    ("inf_colour", _edit(lambda t: t["f_dc"].__setitem__((1, 1), float("inf"))), "infinite"),
    ("zero_quaternion", _edit(lambda t: t["quats"].__setitem__(2, 0.0)), "quaternion"),
    ("scale_overflow", _edit(lambda t: t["log_scales"].__setitem__(0, 200.0)), "log-scales"),
    ("far_means", _edit(lambda t: t["means"].__setitem__(0, 1e30)), "world units"),
    ("negative_face_vertex", _edit(lambda t: t["vertex_index"].__setitem__(0, -7)), "negative"),
    ("wrong_shape", _edit(lambda t: t.__setitem__("quats", t["quats"][:, :3].contiguous())), "shape"),
    ("wrong_dtype", _edit(lambda t: t.__setitem__("face_mask", t["face_mask"].to(torch.uint8))), "dtype"),
    ("missing", _edit(lambda t: t.pop("anchors")), "lacks"),
    ("no_splats", {k: v[:0].contiguous() for k, v in _tensors().items()}, "no splats"),
]


@pytest.mark.parametrize("name,tensors,match", TENSOR_CASES, ids=[c[0] for c in TENSOR_CASES])
def test_hostile_tensor_values_are_refused(tmp_path, name, tensors, match) -> None:
    bundle = _bundle(tmp_path)
    _rewrite_tensors(bundle, tensors)
    assert_refused(load_bundle, bundle, names="bundle", match=match)


MANIFEST_CASES = [
    ("deep_json", "[" * 100_000, "nested too deeply"),
    ("huge_int", '{"format_version": 1' + "0" * 5000 + "}", "not valid JSON"),
    ("not_json", "{format_version: 1", "not valid JSON"),
    ("not_object", "[1, 2]", "JSON object"),
    ("newer_format", None, "upgrade"),
]


@pytest.mark.parametrize("name,text,match", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_hostile_manifests_are_refused(tmp_path, name, text, match) -> None:
    bundle = _bundle(tmp_path)
    if text is None:
        manifest = json.loads((bundle / "avatar.json").read_text())
        manifest["format_version"] = 99
        text = json.dumps(manifest)
    (bundle / "avatar.json").write_text(text)
    assert_refused(load_bundle, bundle, names="bundle", match=match)


def test_checksum_mismatch_is_refused(tmp_path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "splats.safetensors").write_bytes((bundle / "splats.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    assert_refused(load_bundle, bundle, names="bundle", match="checksum")


@FUZZ
@given(key=st.sampled_from(["format_version", "counts", "template", "files", "extra", "arc2avatar_version"]), value=JSON)
def test_any_manifest_value(key, value) -> None:
    with scratch() as folder:
        bundle = _bundle(folder)
        manifest = json.loads((bundle / "avatar.json").read_text())
        manifest[key] = value
        (bundle / "avatar.json").write_text(json.dumps(manifest))
        assert_read_or_refused(load_bundle, bundle, names="bundle")


@FUZZ
@given(body=st.binary(max_size=400), prefix=st.sampled_from([b"", b"\x10\x00\x00\x00\x00\x00\x00\x00",
                                                            b"\xff\xff\xff\xff\xff\xff\xff\x7f"]))
def test_any_tensor_file_bytes(body, prefix) -> None:
    with scratch() as folder:
        bundle = _bundle(folder)
        blob = prefix + body
        (bundle / "splats.safetensors").write_bytes(blob)
        manifest = json.loads((bundle / "avatar.json").read_text())
        manifest["files"]["splats.safetensors"]["sha256"] = hashlib.sha256(blob).hexdigest()
        (bundle / "avatar.json").write_text(json.dumps(manifest))
        assert_refused(load_bundle, bundle, names="bundle")


@FUZZ
@given(levels=st.one_of(st.integers(-5, 10**6), st.floats(), st.text(max_size=4), st.none(), st.booleans()),
       key=st.sampled_from(["face_levels", "rest_levels"]))
def test_template_levels_from_a_bundle_are_bounded(levels, key) -> None:
    from arc2avatar.errors import InputError
    from arc2avatar.avatar.template import template_levels

    try:
        checked = template_levels({"kind": "builtin", key: levels})
    except InputError as error:
        assert "\n" not in str(error) and key in str(error)
    else:
        assert 0 <= checked[key] <= 5


def test_cli_viewer_and_express_refuse_a_bundle_with_12_face_levels(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    Avatar(_splats(), template={"kind": "builtin", "face_levels": 12, "rest_levels": 0}).save(out)
    before = tree(tmp_path)
    code, err = cli(["viewer", str(out)], capsys)
    assert code == 1 and "face_levels=12" in err
    code, err = cli(["express", str(out), "--set", "smile=0.5", "-o", str(tmp_path / "smile")], capsys)
    assert code == 1 and "face_levels=12" in err
    assert tree(tmp_path) == before
