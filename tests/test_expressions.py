"""Claims about expressions on avatars (issue 5): bound splats follow the template exactly, rotate
with their local frames, zero expression is the identity, folders are written whole, sequences and
presets animate the face, and expression correction moves toward the oracle target."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from arc2avatar.cli.main import main
from arc2avatar.errors import InputError
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
from arc2avatar.animate.sequence import load_sequence, preset_sequence
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import initial_splats
from arc2avatar.splats.model import quat_to_rotmat

EXPRESSION = {"smile": 0.8, "jaw_open": 0.5}


@pytest.fixture(scope="module")
def setup():
    return build_head(TemplateConfig(face_levels=0, rest_levels=0))


@pytest.fixture()
def avatar(setup):
    return Avatar(initial_splats(setup), template=dict(setup.info))


@pytest.fixture()
def avatar_dir(avatar, tmp_path):
    avatar.save(tmp_path / "neutral")
    return tmp_path / "neutral"


def _random_quats(avatar: Avatar, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        avatar.splats.params["quats"].copy_(torch.randn(avatar.splats.num_splats, 4, generator=generator))


def test_bound_splats_land_exactly_on_the_deformed_template_vertices(setup, avatar):
    expressive = apply_expression(avatar, setup, EXPRESSION)
    deformed = setup.upsampled.head.deform(EXPRESSION)
    splats = expressive.splats
    rows = splats.face_mask.nonzero().squeeze(-1)
    assert torch.equal(splats.means[rows].detach(), deformed[splats.vertex_index[rows]])
    moved = (splats.means[rows] - avatar.splats.means[rows]).norm(dim=-1)
    assert float(moved.detach().max()) > 0.01 * setup.upsampled.head.height  # the expression did move the mouth
    free = ~splats.face_mask
    assert torch.equal(splats.means[free], avatar.splats.means[free])
    assert torch.equal(splats.params["quats"][free], avatar.splats.params["quats"][free])


def test_zero_expression_returns_the_neutral_avatar_bit_exact(setup, avatar):
    _random_quats(avatar)
    with torch.no_grad():  # splats off their vertices, as after the mean-face fit
        avatar.splats.params["means"].add_(1e-3 * torch.randn(avatar.splats.num_splats, 3))
    same = apply_expression(avatar, setup, {"smile": 0.0, "jaw_open": 0.0})
    for name, value in avatar.splats.to_tensors().items():
        assert torch.equal(value, same.splats.to_tensors()[name]), name


def test_a_rigid_turn_of_the_template_turns_splat_orientations_and_offsets_by_the_same_rotation(setup, avatar):
    angle = math.radians(25.0)
    axis = torch.nn.functional.normalize(torch.tensor([0.3, -0.5, 0.8]), dim=0)
    skew = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = torch.linalg.matrix_exp(angle * skew)  # (3, 3)
    head = setup.upsampled.head
    basis = (head.vertices @ turn.T - head.vertices)[:, :, None]  # (V, 3, 1): weight 1 = the rigid turn
    fake = replace(setup, upsampled=replace(setup.upsampled, head=replace(head, expression_names=["turn"], expression_basis=basis)))
    _random_quats(avatar, seed=1)
    offsets = 1e-2 * torch.randn(avatar.splats.num_splats, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        avatar.splats.params["means"].add_(offsets)
    turned = apply_expression(avatar, fake, {"turn": 1.0}).splats
    rows = avatar.splats.face_mask.nonzero().squeeze(-1)
    before = quat_to_rotmat(avatar.splats.params["quats"][rows].detach())
    after = quat_to_rotmat(turned.params["quats"][rows])
    assert torch.allclose(after, turn @ before, atol=2e-4)
    expected_means = avatar.splats.means[rows].detach() @ turn.T  # the whole splat turns, offset included
    assert torch.allclose(turned.means[rows], expected_means, atol=1e-5)


def test_unknown_expression_names_give_one_error_listing_the_valid_ones(setup, avatar):
    with pytest.raises(InputError, match="valid names: jaw_open, smile, blink_left"):
        apply_expression(avatar, setup, {"grin": 1.0})


def test_a_bare_ply_has_no_binding_and_is_refused(setup, avatar, tmp_path):
    from arc2avatar.splats.ply import write_ply

    write_ply(tmp_path / "a.ply", avatar.splats)
    with pytest.raises(InputError, match="no template binding"):
        setup_for_avatar(Avatar.load(tmp_path / "a.ply"))


def test_flame_avatar_needs_the_same_flame_file(avatar, tmp_path):
    flame_avatar = Avatar(avatar.splats, template={"kind": "flame", "name": "flame2023_Open", "file": "f.pkl",
                                                   "sha256": "0" * 64, "face_levels": 0, "rest_levels": 0})
    with pytest.raises(InputError, match="--flame PATH"):
        setup_for_avatar(flame_avatar)
    other = tmp_path / "other.pkl"
    other.write_bytes(b"not the same model")
    with pytest.raises(InputError, match="not the one this avatar was made on"):
        setup_for_avatar(flame_avatar, flame=other)


def test_express_command_writes_a_new_avatar_folder_equal_to_the_api_result(setup, avatar, avatar_dir, tmp_path, capsys):
    out = tmp_path / "smiling"
    assert main(["express", str(avatar_dir), "--set", "smile=0.8,jaw_open=0.5", "-o", str(out), "--size", "32"]) == 0
    for name in ("avatar.ply", "avatar/avatar.json", "avatar/splats.safetensors", "views.png"):
        assert (out / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".smiling")]  # no temporary left behind
    loaded = Avatar.load(out)
    assert torch.equal(loaded.splats.means, apply_expression(avatar, setup, EXPRESSION).splats.means)
    assert loaded.extra["expression"] == EXPRESSION
    # an existing avatar folder is never overwritten; unknown names are one message
    assert main(["express", str(avatar_dir), "--set", "smile=0.1", "-o", str(out)]) != 0
    assert main(["express", str(avatar_dir), "--set", "grin=1", "-o", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "not an empty folder" in err and "valid names: jaw_open, smile" in err
    assert not (tmp_path / "x").exists()


def test_sequence_files_json_and_npz_read_the_same_weights_and_bad_files_are_named(tmp_path):
    frames = [{"smile": 0.3}, {"smile": 0.5, "jaw_open": 0.1}]
    (tmp_path / "s.json").write_text(json.dumps({"fps": 24, "frames": frames}))
    np.savez(tmp_path / "s.npz", weights=np.array([[0.0, 0.3], [0.1, 0.5]], dtype=np.float32),
             names=np.array(["jaw_open", "smile"]), fps=24)
    from_json, from_npz = load_sequence(tmp_path / "s.json"), load_sequence(tmp_path / "s.npz")
    assert from_json.names == from_npz.names == ("jaw_open", "smile")
    assert from_json.fps == from_npz.fps == 24.0
    assert torch.equal(from_json.weights, from_npz.weights)
    assert from_json.frame(0) == {"jaw_open": 0.0, "smile": pytest.approx(0.3)}
    (tmp_path / "bad.json").write_text('{"fps": 30, "frames": []}')
    with pytest.raises(InputError, match="bad.json"):
        load_sequence(tmp_path / "bad.json")


def test_joint_poses_read_the_same_from_json_and_npz_and_a_template_without_joints_refuses_them(avatar, setup, tmp_path):
    """FLAME's jaw in a sequence (written by ``drive`` on FLAME avatars): JSON ``joints`` and NPZ
    ``joint_names``/``joint_poses`` read alike; a joint missing from a frame is at rest."""
    from arc2avatar.animate.render import AnimationConfig, animation_frames

    (tmp_path / "j.json").write_text(json.dumps({"fps": 24, "frames": [{"smile": 0.1}, {"smile": 0.2}],
                                                 "joints": [{"jaw": [0.2, 0, 0]}, {}]}))
    np.savez(tmp_path / "j.npz", weights=np.array([[0.1], [0.2]], dtype=np.float32), names=np.array(["smile"]),
             fps=24, joint_names=np.array(["jaw"]), joint_poses=np.array([[[0.2, 0, 0]], [[0, 0, 0]]], np.float32))
    from_json, from_npz = load_sequence(tmp_path / "j.json"), load_sequence(tmp_path / "j.npz")
    assert set(from_json.joints) == set(from_npz.joints) == {"jaw"}
    assert torch.allclose(from_json.joints["jaw"], from_npz.joints["jaw"])
    assert from_json.joint_frame(0) == {"jaw": [pytest.approx(0.2), 0.0, 0.0]}
    assert from_json.joint_frame(1) == {"jaw": [0.0, 0.0, 0.0]}
    for joints, match in (([{"jaw": [0.2, 0]}, {}], "3 numbers"), ([{"jaw": "open"}, {}], "3 numbers"), ([{"jaw": "123"}, {}], "3 numbers"),
                          ([{"jaw": [0.2, 0, 0]}], "list of 2 objects"), ([{"jaw": [99.0, 0, 0]}, {}], "within")):
        (tmp_path / "bad.json").write_text(json.dumps({"fps": 24, "frames": [{}, {}], "joints": joints}))
        with pytest.raises(InputError, match=match):
            load_sequence(tmp_path / "bad.json")
    np.savez(tmp_path / "bad.npz", weights=np.zeros((2, 1), np.float32), names=np.array(["smile"]),
             joint_poses=np.zeros((2, 1, 3), np.float32))
    with pytest.raises(InputError, match="joint_names"):
        load_sequence(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="has joints: none"):
        next(animation_frames(avatar, setup, from_json, AnimationConfig(size=32)))


def test_presets_are_smooth_sequences_that_start_neutral_and_reach_their_peak():
    for name in ("smile", "surprise", "talk", "blink"):
        sequence = preset_sequence(name)
        assert sequence.num_frames == 90 and sequence.fps == 30.0
        assert float(sequence.weights[0].abs().max()) < 0.05, name  # starts (almost) neutral
        assert float(sequence.weights.max()) > 0.5, name
        assert float((sequence.weights[1:] - sequence.weights[:-1]).abs().max()) < 0.5, name  # no jumps
    with pytest.raises(InputError, match="valid presets"):
        preset_sequence("dance")


def test_animation_has_one_frame_per_row_and_only_the_face_region_changes(avatar_dir, tmp_path):
    import imageio

    sequence = tmp_path / "open.json"
    frames = [{"jaw_open": 0.0}, {"jaw_open": 1.0}, {"jaw_open": 1.0, "smile": 1.0}]
    sequence.write_text(json.dumps({"fps": 10, "frames": frames}))
    video = tmp_path / "anim.mp4"
    assert main(["animate", str(avatar_dir), "--sequence", str(sequence), "-o", str(video), "--size", "64"]) == 0
    reader = imageio.get_reader(video, format="FFMPEG")
    try:
        decoded = np.stack([frame for frame in reader]).astype(np.float32)  # (T, H, W, 3)
    finally:
        reader.close()
    assert decoded.shape[0] == 3
    change = np.abs(decoded[1] - decoded[0]).max(axis=-1)  # (H, W)
    assert change.max() > 40  # the mouth opened
    changed_rows = np.nonzero(change.max(axis=1) > 40)[0]
    assert changed_rows.min() > 64 * 0.35  # below the eyes: the jaw, not the whole head
    assert np.abs(decoded[1] - decoded[0])[:8].max() < 10  # the top of the frame stays put


def test_expression_correction_with_the_oracle_raises_held_out_psnr_toward_the_deformed_target(setup, avatar):
    from arc2avatar.pipeline.api import heldout_metrics
    from arc2avatar.pipeline.oracle import oracle_latent_encoder
    from arc2avatar.animate.refine import correction_config, deformed_oracle_target, refine_expression
    from arc2avatar.pipeline.oracle import OraclePrior
    from arc2avatar.pipeline.presets import resolve_config

    # tiny and quick: 32² renders, one view per step (the paper sampler needs four)
    base = resolve_config("cpu-smoke", None, ["resolution=32", "rgb_latent_resolution=16", "log_every=5",
                                              "sampler=release", "views_per_step=1"])
    config = correction_config(base, iterations=30)
    assert config.losses.face_position == 0 and config.losses.face_laplacian == 0
    assert config.optim.opacity_lr_init == 5e-2 and config.face_phase_fraction == 0
    open_mouth = {"jaw_open": 0.8}
    expressive = apply_expression(avatar, setup, open_mouth)
    target = deformed_oracle_target(setup, open_mouth)
    prior = OraclePrior(target, config.prior, oracle_latent_encoder(config))
    refined = refine_expression(expressive, setup, prior, config)
    before = heldout_metrics(expressive, target, config)["psnr"]
    after = heldout_metrics(refined, target, config)["psnr"]
    assert after >= before + 0.2, (before, after)  # measured: +0.6 dB after 40 iterations
    assert refined.splats.num_splats == expressive.splats.num_splats  # the binding is kept
    assert torch.equal(refined.splats.vertex_index, expressive.splats.vertex_index)


def test_refine_expression_with_the_real_prior_names_the_missing_identity_file_and_writes_nothing(avatar_dir, tmp_path, capsys):
    out = tmp_path / "refined"
    code = main(["refine-expression", str(avatar_dir), "--set", "jaw_open=0.8", "-o", str(out),
                 "--preset", "cpu-smoke", "--iterations", "2", "-q"])
    assert code != 0
    assert "identity.npy is missing" in capsys.readouterr().err
    assert not out.exists()


def test_matrix_to_quat_matches_scipy_signs_included_on_every_branch() -> None:
    """The torch conversion (it runs where the splats are) gives scipy's quaternions, sign included,
    for rotations that pick each of its four branches (trace, and each diagonal entry largest)."""
    from scipy.spatial.transform import Rotation

    from arc2avatar.splats.rotations import matrix_to_quat

    rotations = Rotation.random(2000, random_state=0)
    extra = Rotation.from_rotvec([[3.1, 0, 0], [0, 3.1, 0], [0, 0, 3.1], [0, 0, 0], [1e-9, 0, 0]])
    matrices = torch.from_numpy(np.concatenate([rotations.as_matrix(), extra.as_matrix()])).float()
    expected = Rotation.from_matrix(matrices.double().numpy()).as_quat()  # (N, 4) x, y, z, w
    got = matrix_to_quat(matrices).double().numpy()
    assert np.abs(got[:, [1, 2, 3, 0]] - expected).max() < 1e-6
    assert matrix_to_quat(torch.zeros(0, 3, 3)).shape == (0, 4)
