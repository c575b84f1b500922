"""Claims about the FLAME loader, its restricted unpickler, the world frame and skinning (docs/method.md §3).

No FLAME data is used: a synthetic model with the real key layout and counts
(``synthetic_flame_arrays``) is pickled the way the official files are (protocol 2, sparse
``J_regressor``, a ``chumpy.ch.Ch`` field made by a fake module that exists only while pickling).
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from arc2avatar.errors import InputError
from arc2avatar.head.flame import (
    FlameConfig,
    convert_flame_to_npz,
    load_flame,
    read_flame_arrays,
)
from arc2avatar.head.frame import to_world_frame
from arc2avatar.testing.flame import synthetic_flame_arrays


def _fake_chumpy_class() -> tuple[type, dict[str, types.ModuleType]]:
    """A class that pickles as ``chumpy.ch.Ch`` with chumpy's state layout (dict with ``x``)."""

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__, Ch.__qualname__, Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch = Ch
    package.ch = module
    return Ch, {"chumpy": package, "chumpy.ch": module}


def _dump_with_fake_chumpy(build, path: Path, protocol: int = 2) -> None:
    """Pickle ``build(Ch)`` while the fake chumpy modules are registered, then remove them."""
    Ch, modules = _fake_chumpy_class()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        path.write_bytes(pickle.dumps(build(Ch), protocol=protocol))
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return synthetic_flame_arrays(seed=0)


@pytest.fixture(scope="module")
def flame_pkl(tmp_path_factory, arrays) -> Path:
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"

    def build(Ch):
        data = dict(arrays)
        data["shapedirs"] = Ch(arrays["shapedirs"])  # as in FLAME 2020
        data["J_regressor"] = sp.csc_matrix(arrays["J_regressor"])
        data["bs_style"] = "lbs"
        return data

    _dump_with_fake_chumpy(build, path)
    assert "chumpy" not in sys.modules
    return path


@pytest.fixture(scope="module")
def head(flame_pkl):
    return load_flame(flame_pkl)


def test_synthetic_flame_pickle_with_chumpy_and_sparse_fields_loads(head, arrays, flame_pkl):
    assert head.name == "generic_model"
    assert head.num_vertices == 5023 and head.faces.shape == (9976, 3)
    assert head.expression_names[0] == "exp_000" and head.expression_names[-1] == "exp_099"
    assert head.expression_basis.shape == (5023, 3, 100)
    assert set(head.pose_names) == {"neck", "jaw", "left_eye", "right_eye"}
    # the chumpy field's array arrived intact: expression 0 = shapedirs column 300, mapped to the world
    expected, transform = to_world_frame(torch.from_numpy(arrays["v_template"]))
    shapedir_300 = transform.apply_vectors(torch.from_numpy(arrays["shapedirs"][:, :, 300]))
    assert torch.allclose(head.expression_basis[..., 0], shapedir_300.float(), atol=1e-6)
    assert torch.allclose(head.vertices, expected.float(), atol=1e-6)
    assert torch.equal(head.faces, torch.from_numpy(arrays["f"].astype(np.int64)))


def test_world_frame_is_z_up_face_toward_plus_y_height_2_centred(head):
    lo, hi = head.vertices.min(dim=0).values, head.vertices.max(dim=0).values
    assert abs(float(hi[2] - lo[2]) - 2.0) < 1e-5
    assert torch.allclose(0.5 * (lo + hi), torch.zeros(3), atol=1e-5)
    # FLAME's +y (up) is world +z; the nose (FLAME's +z) is world +y
    top = head.vertices[head.vertices[:, 2].argmax()]
    nose = head.vertices[head.vertices[:, 1].argmax()]
    assert top[2] > 0.99 and abs(float(nose[0])) < 0.05 and nose[2].abs() < 0.3


def test_frame_transform_inverse_round_trips_points_and_vectors(arrays):
    v = torch.from_numpy(arrays["v_template"])
    world, transform = to_world_frame(v)
    back = transform.inverse().apply_points(world)
    assert torch.allclose(back, v, atol=1e-12)
    d = torch.randn(10, 3, dtype=torch.float64)
    assert torch.allclose(transform.inverse().apply_vectors(transform.apply_vectors(d)), d, atol=1e-12)


def test_npz_conversion_round_trips_to_the_same_head(head, flame_pkl, tmp_path):
    out = convert_flame_to_npz(flame_pkl, tmp_path / "flame.npz")
    with np.load(out, allow_pickle=False) as npz:
        assert set(npz.files) >= {"v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"}
    again = load_flame(out)
    assert again.name == "flame"
    for field in ("vertices", "faces", "face_mask", "expression_basis", "vertex_colors"):
        assert torch.equal(getattr(again, field), getattr(head, field)), field
    pose = {"jaw": torch.tensor([0.2, 0.0, 0.0])}
    assert torch.equal(again.deform(pose=pose), head.deform(pose=pose))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func, named", [(os.system, "system"), (eval, "builtins.eval")])
def test_pickle_naming_a_dangerous_callable_is_refused_and_nothing_runs(tmp_path, func, named):
    marker = tmp_path / "ran"
    payload = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(func, payload)}, protocol=2))
    with pytest.raises(InputError) as info:
        load_flame(path)
    assert named in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_wrong_vertex_count_is_reported_with_the_file_name(tmp_path, arrays):
    path = tmp_path / "small.pkl"
    data = dict(arrays, v_template=arrays["v_template"][:5000], shapedirs=np.zeros(1))  # small file
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(InputError, match=r"small\.pkl has 5000 vertices, expected 5023"):
        load_flame(path)


def test_missing_key_is_reported_with_the_file_name(tmp_path, arrays):
    path = tmp_path / "nokey.pkl"
    data = {k: v for k, v in arrays.items() if k != "posedirs"}
    data["shapedirs"] = np.zeros(1)  # keeps the file small; the missing key is reported first
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(InputError, match=r"nokey\.pkl lacks 'posedirs'"):
        load_flame(path)


def test_truncated_pickle_and_non_pickle_and_missing_file_are_input_errors(tmp_path, flame_pkl):
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(flame_pkl.read_bytes()[:100_000])
    text = tmp_path / "notes.pkl"
    text.write_text("this is not a pickle\n")
    for path in (truncated, text, tmp_path / "absent.pkl"):
        with pytest.raises(InputError, match=path.name):
            load_flame(path)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(InputError, match="bad.npz"):
        load_flame(bad_npz)


def test_masks_file_sets_face_and_regions_even_with_old_protocol_chumpy(tmp_path, flame_pkl, arrays):
    masks_path = tmp_path / "FLAME_masks.pkl"
    face = np.arange(100, 400)
    _dump_with_fake_chumpy(
        lambda Ch: {"face": face, "lips": np.arange(10, 20), "left_eyeball": Ch(np.arange(4441, 4732))},
        masks_path,
        protocol=0,  # copyreg._reconstructor path
    )
    head = load_flame(flame_pkl, masks_path=masks_path)
    assert torch.equal(head.face_mask.nonzero().squeeze(-1), torch.from_numpy(face))
    assert int(head.regions["lips"].sum()) == 10 and int(head.regions["left_eyeball"].sum()) == 291


def test_derived_face_mask_is_the_front_of_the_head_and_includes_the_eyes(head):
    face = head.face_mask
    assert 500 < int(face.sum()) < 2500
    assert float(head.vertices[face, 1].min()) >= 0.0  # in front
    assert bool(face[head.regions["eyes"]].all())
    back = head.vertices[:, 1] < -0.5
    assert not bool(face[back].any())


def test_zero_pose_is_identity(head):
    moved = head.deform(expression={"exp_003": 1.5})
    posed = head.deform(expression={"exp_003": 1.5}, pose={name: torch.zeros(3) for name in head.pose_names})
    assert torch.allclose(posed, moved, atol=1e-6)


def test_jaw_pose_moves_only_jaw_weighted_vertices(head, arrays):
    posed = head.deform(pose={"jaw": torch.tensor([0.3, 0.0, 0.0])})
    moved = (posed - head.vertices).norm(dim=-1) > 1e-6
    jaw_weighted = torch.from_numpy(arrays["weights"][:, 2] > 0)
    assert bool(moved.any())
    assert not bool((moved & ~jaw_weighted).any())
    # opening the jaw (positive rotation about FLAME's x) lowers the chin
    chin = torch.from_numpy(arrays["weights"][:, 2] > 0.99)
    assert float((posed[chin, 2] - head.vertices[chin, 2]).mean()) < 0.0


def test_eye_pose_turns_its_eyeball_rigidly_and_nothing_else(head):
    posed = head.deform(pose={"left_eye": torch.tensor([0.0, 0.4, 0.0])})
    moved = (posed - head.vertices).norm(dim=-1) > 1e-6
    assert int(moved.sum()) <= 291 and int(moved.sum()) > 100
    idx = moved.nonzero().squeeze(-1)
    before = torch.cdist(head.vertices[idx].double(), head.vertices[idx].double())
    after = torch.cdist(posed[idx].double(), posed[idx].double())
    assert torch.allclose(before, after, atol=1e-5)  # rigid
    assert bool((head.vertices[idx, 0] < 0).all())  # FLAME's left eye (+x) is at world −x


def test_unknown_pose_name_is_an_error(head):
    with pytest.raises(ValueError, match="unknown FLAME pose"):
        head.deform(pose={"tongue": torch.zeros(3)})


def test_expression_count_is_a_config_field(flame_pkl):
    small = load_flame(flame_pkl, config=FlameConfig(num_expressions=10))
    assert small.num_expressions == 10
    with pytest.raises(InputError, match="at least 501"):
        read_flame_arrays(flame_pkl, config=FlameConfig(num_expressions=201))
