"""Claims about exports (issue 18, docs/exports.md): files other tools open as they are.

Round trips go through third-party readers (gsply, plyfile, pygltflib), not our own (``.ksplat``
is read by Spark in test_export_browser.py); an
orientation fixture catches axis, quaternion-order and opacity mistakes in the ``--up y`` turn;
files get the umask's permissions; bad input is one line and writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from arc2avatar._io import atomic_write_bytes, current_umask
from arc2avatar.avatar.export import FORMAT_NAMES, export_avatar, resolve_format
from arc2avatar.avatar.formats.data import Y_UP_MATRIX
from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.avatar.rig import apply_expression
from arc2avatar.avatar.layout import PLY_NAME
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.outputs import write_avatar_outputs
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import initial_splats
from arc2avatar.splats.model import SH_C0, GaussianSplats, rgb_to_f_dc

# Quantisation steps of the compressed formats (their docstrings): positions, log scales, quaternion.
SPZ_POSITION_TOL = 2.0**-12  # 24-bit fixed point with 12 fractional bits (half a step, doubled for safety)
SPZ_LOG_SCALE_TOL = 1.0 / 16  # (log std + 10) · 16 in one byte
SPZ_COLOR_TOL = 1.0 / (0.15 * 255)  # f_dc · 0.15 · 255 in one byte
ALPHA_TOL = 1.0 / 255 + 1e-6
QUAT_DOT = 0.999  # |⟨q, q'⟩| of 8-bit quaternion components
# SPZ v2 stores x, y, z in 8 bits and rebuilds w = sqrt(1 − |xyz|²): near w = 0 that loses up to
# ≈ 12° (|⟨q, q'⟩| ≥ 0.993 in the worst case; v3's "smallest three" fixes it, but GaussianSplats3D reads v2 only).
SPZ_V2_QUAT_DOT_WORST, SPZ_V2_QUAT_DOT_MEAN = 0.99, 0.9995


@pytest.fixture(scope="module")
def setup():
    return build_head(TemplateConfig(face_levels=0, rest_levels=0))  # 5000 splats, 1888 on the face


@pytest.fixture(scope="module")
def avatar(setup):
    """Template splats with turned, flattened splats and varied opacity (as a fitted avatar has)."""
    splats = initial_splats(setup)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        splats.params["quats"].copy_(torch.randn(splats.num_splats, 4, generator=generator))
        splats.params["log_scales"].add_(torch.log(torch.tensor([1.8, 1.2, 0.25])))
        splats.params["opacity_logits"].copy_(torch.randn(splats.num_splats, generator=generator) * 2)
    return Avatar(splats, template=dict(setup.info))


def _quat_matrix(q_n4: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices of unit quaternions (w, x, y, z) (textbook formula)."""
    w, x, y, z = (q_n4 / np.linalg.norm(q_n4, axis=-1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)  # fmt: skip


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _params(avatar: Avatar) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy() for name, p in avatar.splats.params.items()}


# ======================================================================= permissions
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_get_the_umasks_permissions_not_mkstemps_0600(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temp file left


def test_every_export_and_the_output_folder_files_are_0644_under_umask_022(avatar, tmp_path):
    old = os.umask(0o022)
    try:
        write_avatar_outputs(tmp_path / "out", avatar, size=16, video=False)
        for name in ("a.ply", "a.spz", "a.splat", "a.glb", "a.ksplat", "a.sog"):
            export_avatar(avatar, tmp_path / name, morph_targets=False)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 9
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}


# ======================================================================= compact PLY
def test_output_folder_ply_is_compact_by_default_and_unity_on_request_and_both_load(avatar, tmp_path):
    from plyfile import PlyData

    write_avatar_outputs(tmp_path / "compact", avatar, size=16, video=False)
    write_avatar_outputs(tmp_path / "unity", avatar, size=16, video=False, ply_layout="unity")
    compact, unity = (PlyData.read(str(tmp_path / name / PLY_NAME))["vertex"] for name in ("compact", "unity"))
    assert len(compact.properties) == 14 and not any(p.name.startswith("f_rest") for p in compact.properties)
    assert len(unity.properties) == 62
    size = (tmp_path / "compact" / PLY_NAME).stat().st_size / (tmp_path / "unity" / PLY_NAME).stat().st_size
    assert size < 0.23  # 56 vs 248 bytes per splat
    for folder in ("compact", "unity"):  # old 62-float folders still load (without their bundle too)
        (tmp_path / folder / "avatar" / "avatar.json").unlink()
        back = Avatar.load(tmp_path / folder)
        assert np.array_equal(back.splats.params["means"].detach().numpy(), _params(avatar)["means"])


def test_compact_and_unity_ply_round_trip_exactly_through_gsply_and_plyfile(avatar, tmp_path):
    import gsply
    from plyfile import PlyData

    want = _params(avatar)
    quats = want["quats"] / np.linalg.norm(want["quats"], axis=-1, keepdims=True)
    for fmt in ("ply", "ply-unity"):
        path = export_avatar(avatar, tmp_path / f"{fmt}.ply", format=fmt)
        data = gsply.plyread(str(path))
        assert data.shN.size == 0 or not data.shN.any()
        assert np.array_equal(data.means, want["means"]) and np.array_equal(data.scales, want["log_scales"])
        assert np.array_equal(data.opacities, want["opacity_logits"]) and np.array_equal(data.sh0, want["f_dc"])
        assert np.allclose(data.quats, quats, atol=1e-6)  # (w, x, y, z), normalised on export
        vertex = PlyData.read(str(path))["vertex"]
        assert np.array_equal(np.stack([vertex["x"], vertex["y"], vertex["z"]], -1), want["means"])


def test_spz_and_compressed_ply_read_back_through_gsply_within_their_quantisation(avatar, tmp_path):
    import gsply

    want = _params(avatar)
    quats = want["quats"] / np.linalg.norm(want["quats"], axis=-1, keepdims=True)
    spz = gsply.read_spz(str(export_avatar(avatar, tmp_path / "a.spz")))
    blob = (tmp_path / "a.spz").read_bytes()
    import gzip

    assert gzip.decompress(blob)[4:8] == (2).to_bytes(4, "little")  # SPZ version 2 (GaussianSplats3D reads only v2)
    assert np.abs(spz.means - want["means"]).max() <= SPZ_POSITION_TOL
    assert np.abs(spz.scales - want["log_scales"]).max() <= SPZ_LOG_SCALE_TOL
    assert np.abs(spz.sh0 - want["f_dc"]).max() <= SPZ_COLOR_TOL
    assert np.abs(_sigmoid(spz.opacities) - _sigmoid(want["opacity_logits"])).max() <= ALPHA_TOL
    dots = np.abs((spz.quats / np.linalg.norm(spz.quats, axis=-1, keepdims=True) * quats).sum(-1))
    assert dots.min() > SPZ_V2_QUAT_DOT_WORST and dots.mean() > SPZ_V2_QUAT_DOT_MEAN

    pytest.importorskip("numba")
    compressed = gsply.plyread(str(export_avatar(avatar, tmp_path / "a.compressed.ply")))
    extent = want["means"].max(0) - want["means"].min(0)
    assert (np.abs(compressed.means - want["means"]) <= extent / 1023 + 1e-6).all()  # ≥ 10 bits per axis
    assert np.abs(_sigmoid(compressed.opacities) - _sigmoid(want["opacity_logits"])).max() <= ALPHA_TOL
    assert np.abs((compressed.quats * quats).sum(-1)).min() > QUAT_DOT


# ======================================================================= orientation
def _orientation_fixture() -> Avatar:
    """Red/green/blue blobs on +x/+y/+z, a faint and an opaque grey blob below and behind, and one
    splat stretched along its local x and turned 45° about z (long axis (1, 1, 0)/√2)."""
    means = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1], [0, -1, 0], [0, 0, 0]])
    rgb = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [1.0, 1, 0]])
    alpha = torch.tensor([0.9, 0.9, 0.9, 0.05, 0.99, 0.9])
    half = math.radians(45.0) / 2
    quats = torch.tensor([[1.0, 0, 0, 0]] * 5 + [[math.cos(half), 0, 0, math.sin(half)]])
    scales = torch.tensor([[0.1, 0.1, 0.1]] * 5 + [[0.4, 0.05, 0.05]])
    splats = GaussianSplats({"means": means, "quats": quats, "log_scales": scales.log(),
                             "opacity_logits": torch.logit(alpha), "f_dc": rgb_to_f_dc(rgb)})
    return Avatar(splats)


UP_Y_EXPECTED = {  # where each fixture splat lands in a y-up viewer: x → −x, y (face) → +z (viewer), z → +y (up)
    "red (+x)": (0, (-1.0, 0.0, 0.0)),
    "green (+y, the face side)": (1, (0.0, 0.0, 1.0)),
    "blue (+z, up)": (2, (0.0, 1.0, 0.0)),
}


def _check_up_y(means, quats_wxyz, alpha, scales, rgb, what: str) -> None:
    for name, (row, where) in UP_Y_EXPECTED.items():
        assert np.allclose(means[row], where, atol=2e-3), f"{what}: {name} at {means[row]}"
    assert abs(alpha[3] - 0.05) < 0.01 and abs(alpha[4] - 0.99) < 0.01, f"{what}: opacities {alpha[3:5]}"
    assert np.allclose(rgb[0], [1, 0, 0], atol=0.02) and np.allclose(rgb[2], [0, 0, 1], atol=0.02), what
    long_axis = _quat_matrix(quats_wxyz[5:6])[0] @ np.array([1.0, 0.0, 0.0])  # local x, scaled 0.4
    want = Y_UP_MATRIX @ (np.array([1.0, 1.0, 0.0]) / math.sqrt(2))  # (−1, 0, 1)/√2
    assert abs(abs(float(long_axis @ want)) - 1) < 0.01, f"{what}: long axis {long_axis}, want ±{want}"
    assert np.allclose(np.sort(scales[5]), [0.05, 0.05, 0.4], rtol=0.07), f"{what}: scales {scales[5]}"
    assert np.linalg.det(Y_UP_MATRIX) == pytest.approx(1.0)  # a rotation, not a mirror


def test_up_y_turns_axes_quaternions_and_keeps_opacity_in_ply_spz_splat_sog_and_glb(tmp_path):
    import gsply
    import pygltflib

    fixture = _orientation_fixture()
    ply = gsply.plyread(str(export_avatar(fixture, tmp_path / "o.ply", up="y")))
    _check_up_y(ply.means, ply.quats, _sigmoid(ply.opacities), np.exp(ply.scales), SH_C0 * ply.sh0 + 0.5, "ply")
    spz = gsply.read_spz(str(export_avatar(fixture, tmp_path / "o.spz", up="y")))
    _check_up_y(spz.means, spz.quats, _sigmoid(spz.opacities), np.exp(spz.scales), SH_C0 * spz.sh0 + 0.5, "spz")

    raw = np.frombuffer(export_avatar(fixture, tmp_path / "o.splat", up="y").read_bytes(), dtype=np.dtype(
        [("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("q", "u1", 4)]))  # antimatter15's 32-byte record
    expected = np.asarray(fixture.splats.means.detach()) @ Y_UP_MATRIX.T
    order = [int(np.argmin(np.abs(raw["p"] - where).sum(-1))) for where in expected]
    raw = raw[order]  # the file is sorted by size·opacity
    _check_up_y(raw["p"], (raw["q"] - 128.0) / 128.0, raw["c"][:, 3] / 255.0, raw["s"], raw["c"][:, :3] / 255.0, "splat")

    from gsply.sog_reader import sogread  # decodes SOG's WebP images with imagecodecs

    sog = sogread(str(export_avatar(fixture, tmp_path / "o.sog")))  # sog: y-up by default
    order = [int(np.argmin(np.abs(sog.means - where).sum(-1))) for where in expected]  # the file is in Morton order
    _check_up_y(sog.means[order], sog.quats[order], _sigmoid(sog.opacities[order]), np.exp(sog.scales[order]),
                SH_C0 * sog.sh0[order] + 0.5, "sog")

    glb = pygltflib.GLTF2().load(str(export_avatar(fixture, tmp_path / "o.glb")))  # glb: y-up by default
    primitive = glb.meshes[0].primitives[0]
    assert primitive.mode == pygltflib.POINTS and "KHR_gaussian_splatting" in glb.extensionsUsed
    attributes = json.loads(primitive.attributes.to_json())

    def read(name: str) -> np.ndarray:
        accessor = glb.accessors[attributes[name]]
        view = glb.bufferViews[accessor.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
        data = glb.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength]
        return np.frombuffer(data, dtype="<f4").reshape(accessor.count, width).squeeze()

    xyzw = read("KHR_gaussian_splatting:ROTATION")
    _check_up_y(read("POSITION"), np.concatenate([xyzw[:, 3:], xyzw[:, :3]], -1), read("KHR_gaussian_splatting:OPACITY"),
                np.exp(read("KHR_gaussian_splatting:SCALE")), SH_C0 * read("KHR_gaussian_splatting:SH_DEGREE_0_COEF_0") + 0.5,
                "glb")


def test_up_z_keeps_our_frame_and_a_conjugated_quaternion_would_be_caught(tmp_path):
    import gsply

    data = gsply.plyread(str(export_avatar(_orientation_fixture(), tmp_path / "o.ply")))
    assert np.allclose(data.means[:3], np.eye(3))
    long_axis = _quat_matrix(data.quats[5:6])[0] @ np.array([1.0, 0, 0])
    assert np.allclose(long_axis, np.array([1, 1, 0]) / math.sqrt(2), atol=1e-5)
    conjugate = data.quats[5:6] * np.array([1, -1, -1, -1])
    assert not np.allclose(_quat_matrix(conjugate)[0] @ np.array([1.0, 0, 0]), long_axis, atol=0.1)


# ======================================================================= glb morph targets
def test_glb_holds_the_templates_expressions_as_position_morph_targets(avatar, setup, tmp_path):
    import pygltflib

    glb = pygltflib.GLTF2().load(str(export_avatar(avatar, tmp_path / "m.glb", up="z")))
    mesh = glb.meshes[0]
    names = mesh.extras["targetNames"]
    assert names == list(setup.upsampled.head.expression_names) and mesh.weights == [0.0] * len(names)
    target = mesh.primitives[0].targets[names.index("jaw_open")]
    accessor = glb.accessors[target["POSITION"]]
    view = glb.bufferViews[accessor.bufferView]
    delta = np.frombuffer(glb.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength], "<f4").reshape(-1, 3)
    opened = apply_expression(avatar, setup, {"jaw_open": 1.0}).splats.means.detach().numpy()
    assert np.allclose(delta, opened - _params(avatar)["means"], atol=1e-5)
    assert np.abs(delta).max() > 0.01 and not delta[~avatar.splats.face_mask.numpy()].any()  # the face moves, only it


# ======================================================================= format choice and bad input
def test_the_format_follows_the_suffix_and_must_agree_with_format(tmp_path):
    assert resolve_format(tmp_path / "a.PLY").name == "ply"
    assert resolve_format(tmp_path / "a.compressed.ply").name == "compressed-ply"
    assert resolve_format(tmp_path / "a.ply", "ply-unity").name == "ply-unity"
    suffixes = (".spz", ".splat", ".glb", ".ksplat", ".sog")
    assert [resolve_format(tmp_path / f"a{s}").name for s in suffixes] == ["spz", "splat", "glb", "ksplat", "sog"]
    for path, fmt, words in [("a.ply", "spz", "ending in .spz"), ("a.compressed.ply", "ply", "ending in .ply"),
                             ("a.obj", None, "cannot tell"), ("a.ply", "usdz", "unknown export format")]:
        with pytest.raises(InputError, match=words):
            resolve_format(tmp_path / path, fmt)
    assert set(FORMAT_NAMES) == {"ply", "ply-unity", "compressed-ply", "spz", "sog", "ksplat", "splat", "glb"}


def test_cli_bad_input_is_one_line_a_nonzero_exit_and_nothing_written(avatar, tmp_path, capsys):
    avatar.save(tmp_path / "av")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "exports"
    out.mkdir()
    cases = [
        ([str(tmp_path / "av"), "-o", str(out / "a.ply"), "--format", "usdz"], "unknown export format"),
        ([str(tmp_path / "av"), "-o", str(out / "a.ply"), "--format", "spz"], "ending in .spz"),
        ([str(tmp_path / "empty"), "-o", str(out / "a.spz")], "holds no avatar"),
        ([str(tmp_path / "nowhere"), "-o", str(out / "a.spz")], "holds no avatar"),
        ([str(tmp_path / "av"), "-o", str(out / "a.spz"), "--up", "x"], "unknown axis"),
        ([str(tmp_path / "av"), "-o", str(out / "a.spz"), "--expression", "grin=1"], "unknown expression"),
    ]
    for argv, words in cases:
        assert main(["export", *argv]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
    assert list(out.iterdir()) == []


def test_cli_export_writes_the_expression_and_the_y_up_frame(avatar, setup, tmp_path, capsys):
    import gsply

    avatar.save(tmp_path / "av")
    assert main(["export", str(tmp_path / "av"), "-o", str(tmp_path / "smile.ply"), "--expression", "smile=0.8",
                 "--up", "y"]) == 0
    assert "wrote" in capsys.readouterr().out
    smiling = apply_expression(avatar, setup, {"smile": 0.8}).splats.means.detach().numpy()
    assert np.allclose(gsply.plyread(str(tmp_path / "smile.ply")).means, smiling @ Y_UP_MATRIX.T.astype(np.float32),
                       atol=1e-5)


def test_express_writes_a_compact_ply_in_a_folder_others_can_enter_under_umask_022(avatar, tmp_path):
    from plyfile import PlyData

    from arc2avatar.animate.express import express

    avatar.save(tmp_path / "av", ply_layout="unity")  # an old-style source folder
    old = os.umask(0o022)
    try:
        express(tmp_path / "av", tmp_path / "smile", {"smile": 0.5}, size=16)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "smile").stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert stat.S_IMODE((tmp_path / "smile" / PLY_NAME).stat().st_mode) == 0o644
    assert len(PlyData.read(str(tmp_path / "smile" / PLY_NAME))["vertex"].properties) == 14


def test_a_finished_run_writes_the_ply_layout_its_config_names_and_every_file_0644(avatar, setup, tmp_path):
    from plyfile import PlyData

    from arc2avatar.pipeline.api import _finish
    from arc2avatar.pipeline.presets import resolve_config

    small = ["resolution=16", "view_rings.turntable_frames=2", "view_rings.azimuths_per_ring=1"]
    assert resolve_config("cpu-smoke", None, small).outputs.ply_layout == "compact"  # the default
    config = resolve_config("cpu-smoke", None, [*small, "outputs.ply_layout=unity"])
    old = os.umask(0o022)
    try:
        _finish(tmp_path, avatar, config, {}, setup)  # what create and demo run at the end
    finally:
        os.umask(old)
    assert len(PlyData.read(str(tmp_path / PLY_NAME))["vertex"].properties) == 62
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in tmp_path.rglob("*") if p.is_file()}
    assert "turntable.mp4" in modes and "viewer.html" in modes and set(modes.values()) == {"0o644"}, modes


def test_evaluation_report_folders_are_0755_not_mkdtemps_0700(tmp_path):
    from arc2avatar._io import atomic_write_text
    from arc2avatar.evaluate.report import write_atomically

    def writer(folder):
        atomic_write_text(folder / "summary.md", "ok\n")
        return {"summary": folder / "summary.md"}

    old = os.umask(0o022)
    try:
        written = write_atomically(tmp_path / "evaluation", writer)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "evaluation").stat().st_mode) == 0o755
    assert stat.S_IMODE(written["summary"].stat().st_mode) == 0o644
