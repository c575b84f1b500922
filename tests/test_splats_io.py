"""Claims about PLY export/import and the avatar bundle (docs/method.md §4, §4.6, §7)."""

import json

import numpy as np
import pytest
import torch

from arc2avatar.errors import InputError
from arc2avatar.splats.bundle import load_bundle, save_bundle
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.ply import COMPACT_FIELDS, PLY_FIELDS, read_ply, write_ply

TEMPLATE = {"kind": "builtin", "name": "builtin-v1", "face_levels": 2, "rest_levels": 1}


def _splats(n=33, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = {
        "means": torch.randn(n, 3, generator=gen),
        "f_dc": torch.randn(n, 3, generator=gen),
        "log_scales": torch.randn(n, 3, generator=gen) - 3,
        "opacity_logits": torch.randn(n, generator=gen),
        "quats": torch.randn(n, 4, generator=gen),
    }
    face_mask = torch.rand(n, generator=gen) < 0.5
    vertex_index = torch.where(face_mask, torch.randperm(n, generator=gen) * 7, torch.full((n,), -1))
    anchors = torch.where(face_mask[:, None], torch.randn(n, 3, generator=gen), torch.zeros(n, 3))
    return GaussianSplats(params, face_mask, vertex_index, anchors)


def _write_custom_ply(path, columns, after_header="", after_bytes=b""):
    """A PLY whose vertex element has ``columns`` (name → (numpy dtype str, values)), then
    optionally another element (``after_header`` lines, ``after_bytes`` data)."""
    names = list(columns)
    n = len(next(iter(columns.values()))[1])
    types = {"<f4": "float", "<f8": "double", "<u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment made by a test", f"element vertex {n}"]
    header += [f"property {types[columns[k][0]]} {k}" for k in names] + [after_header, "end_header"]
    record = np.zeros(n, dtype=[(k, columns[k][0]) for k in names])
    for k in names:
        record[k] = columns[k][1]
    path.write_bytes("\n".join(line for line in header if line).encode() + b"\n" + record.tobytes() + after_bytes)
    return path


def test_ply_round_trip_is_bit_exact(tmp_path):
    splats = _splats()
    back = read_ply(write_ply(tmp_path / "avatar.ply", splats))
    for name, tensor in splats.params.items():
        assert np.array_equal(back.params[name].detach().numpy(), tensor.detach().numpy()), name
    assert back.num_face == 0 and (back.vertex_index == -1).all()


def test_compact_ply_is_the_default_with_14_floats_and_reads_back_exactly(tmp_path):
    splats = _splats(n=5)
    path = write_ply(tmp_path / "a.ply", splats)
    header, body = path.read_bytes().split(b"end_header\n")
    props = [line.split()[2] for line in header.decode().splitlines() if line.startswith("property")]
    assert props == list(COMPACT_FIELDS) and len(props) == 14 and len(body) == 5 * 14 * 4
    back = read_ply(path)
    for name, tensor in splats.params.items():
        assert np.array_equal(back.params[name].detach().numpy(), tensor.detach().numpy()), name


def test_unity_ply_has_the_62_float_standard_layout_with_zero_normals_and_padding(tmp_path):
    splats = _splats(n=5)
    blob = write_ply(tmp_path / "a.ply", splats, layout="unity").read_bytes()
    header, body = blob.split(b"end_header\n")
    lines = header.decode().splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"] and "element vertex 5" in lines
    props = [line.split()[2] for line in lines if line.startswith("property")]
    assert props == list(PLY_FIELDS) and len(props) == 62
    assert all(line.split()[1] == "float" for line in lines if line.startswith("property"))
    record = np.frombuffer(body, dtype=[(p, "<f4") for p in props])
    assert len(record) == 5
    assert all((record[p] == 0).all() for p in ("nx", "ny", "nz", *(f"f_rest_{i}" for i in range(45))))
    assert np.array_equal(record["rot_0"], splats.params["quats"].detach().numpy()[:, 0])  # w first
    assert np.array_equal(record["opacity"], splats.params["opacity_logits"].detach().numpy())  # logit


def test_read_ply_accepts_sh0_layout_in_any_order_with_extra_fields_and_elements(tmp_path):
    rng = np.random.default_rng(0)
    names = ["rot_3", "opacity", "x", "f_dc_2", "scale_1", "y", "rot_0", "f_dc_0", "z", "scale_0",
             "rot_2", "f_dc_1", "scale_2", "rot_1"]  # fmt: skip
    columns = {k: ("<f4", rng.normal(size=6).astype(np.float32)) for k in names}
    columns["x"] = ("<f8", rng.normal(size=6))  # a double column
    columns["red"] = ("<u1", np.arange(6))
    triangle = b"\x03" + np.array([0, 1, 2], "<i4").tobytes()  # a mesh element after the splats
    path = _write_custom_ply(
        tmp_path / "sh0.ply", columns, "element face 1\nproperty list uchar int vertex_indices", triangle
    )
    splats = read_ply(path)
    assert np.array_equal(splats.means.detach().numpy()[:, 0], columns["x"][1].astype(np.float32))
    assert np.array_equal(splats.params["quats"].detach().numpy()[:, 3], columns["rot_3"][1])
    assert np.array_equal(splats.params["opacity_logits"].detach().numpy(), columns["opacity"][1])


def test_read_ply_names_the_missing_fields(tmp_path):
    columns = {k: ("<f4", np.zeros(3, np.float32)) for k in ("x", "y", "z", "opacity", "rot_0")}
    path = _write_custom_ply(tmp_path / "points.ply", columns)
    with pytest.raises(InputError, match=r"points\.ply.*f_dc_0, f_dc_1, f_dc_2, scale_0"):
        read_ply(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such PLY"),
        ("not_ply", "not a PLY"),
        ("ascii", "'ascii' PLY"),
        ("truncated", "truncated"),
        ("nan", "NaN"),
        ("no_header_end", "end_header"),
    ],
)
def test_bad_ply_files_raise_one_input_error_naming_the_file(tmp_path, case, message):
    path = tmp_path / f"{case}.ply"
    good = write_ply(tmp_path / "good.ply", _splats(n=4)).read_bytes()
    if case == "not_ply":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + good)
    elif case == "ascii":
        path.write_bytes(good.replace(b"binary_little_endian", b"ascii", 1))
    elif case == "truncated":
        path.write_bytes(good[:-7])
    elif case == "nan":
        splats = _splats(n=4)
        with torch.no_grad():
            splats.params["means"][2, 1] = float("nan")
        write_ply(path, splats)
    elif case == "no_header_end":
        path.write_bytes(good.split(b"end_header")[0])
    with pytest.raises(InputError, match=message) as info:
        read_ply(path)
    assert str(path) in str(info.value)


def test_failed_ply_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_ply(tmp_path / "avatar.ply", _splats(n=3))
    old = path.read_bytes()

    real_open = open

    class FullDisk:  # writes the header, then fails on the splat data
        def __init__(self, name, mode):
            self.handle, self.writes = real_open(name, mode), 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                raise OSError(28, "No space left on device")
            self.handle.write(data)

    monkeypatch.setattr("arc2avatar.splats.ply.open", FullDisk, raising=False)
    with pytest.raises(OSError):
        write_ply(path, _splats(n=9))
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["avatar.ply"]


def test_bundle_round_trip_is_bit_exact(tmp_path):
    splats = _splats()
    extra = {"seed": 5252323, "preset": "paper"}
    bundle = load_bundle(save_bundle(tmp_path / "bundle", splats, TEMPLATE, extra))
    for name, tensor in splats.to_tensors().items():
        loaded = bundle.splats.to_tensors()[name]
        assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor), name
    assert bundle.template_info == TEMPLATE and bundle.extra == extra
    assert bundle.format_version == 1 and bundle.version == "0.1.0"
    manifest = json.loads((tmp_path / "bundle" / "avatar.json").read_text())
    assert manifest["counts"] == {"splats": 33, "face": splats.num_face, "free": 33 - splats.num_face}


def test_bundle_from_a_newer_format_asks_for_an_upgrade(tmp_path):
    directory = save_bundle(tmp_path / "b", _splats(n=4), TEMPLATE)
    manifest = json.loads((directory / "avatar.json").read_text())
    manifest.update(format_version=2, arc2avatar_version="0.3.0")
    (directory / "avatar.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"made by arc2avatar 0\.3\.0, format 2; this is 0\.1\.0 .* upgrade"):
        load_bundle(directory)


@pytest.mark.parametrize("case", ["no_folder", "no_json", "bad_json", "no_tensors", "other_tensors", "no_version"])
def test_broken_bundles_raise_one_input_error(tmp_path, case):
    directory = save_bundle(tmp_path / "b", _splats(n=6), TEMPLATE)
    if case == "no_folder":
        directory = tmp_path / "absent"
    elif case == "no_json":
        (directory / "avatar.json").unlink()
    elif case == "bad_json":
        (directory / "avatar.json").write_text("{not json")
    elif case == "no_tensors":
        (directory / "splats.safetensors").unlink()
    elif case == "other_tensors":  # an interrupted overwrite: new tensors beside an old manifest
        other = save_bundle(tmp_path / "other", _splats(n=6, seed=1), TEMPLATE)
        (directory / "splats.safetensors").write_bytes((other / "splats.safetensors").read_bytes())
    elif case == "no_version":
        manifest = json.loads((directory / "avatar.json").read_text())
        del manifest["format_version"]
        (directory / "avatar.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as info:
        load_bundle(directory)
    assert str(directory) in str(info.value)


def test_save_bundle_refuses_unserialisable_info_before_writing(tmp_path):
    with pytest.raises(TypeError, match="extra"):
        save_bundle(tmp_path / "b", _splats(n=3), TEMPLATE, extra={"tensor": torch.zeros(2)})
    assert not (tmp_path / "b").exists()
