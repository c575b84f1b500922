"""Claims about the splat container and its optimiser (docs/method.md §4, §7; docs/official-code.md §3.1–3.2)."""

import pytest
import torch

from arc2avatar.splats.model import SH_C0, GaussianSplats, SplatInitConfig, quat_to_rotmat
from arc2avatar.splats.optim import (
    SplatOptimConfig,
    drop_frozen_grads,
    log_linear_lr,
    make_optimizer,
    update_learning_rates,
    zero_rows,
)


def _grid_template(n_side: int = 4, spacing: float = 0.1):
    axis = torch.arange(n_side, dtype=torch.float32) * spacing
    vertices = torch.cartesian_prod(axis, axis, axis)  # (n³, 3)
    colors = torch.rand(vertices.shape[0], 3, generator=torch.Generator().manual_seed(0))
    face_mask = vertices[:, 1] > 0.15  # front half is "face"
    return vertices, colors, face_mask


def test_activations_follow_the_official_formulas():
    gen = torch.Generator().manual_seed(1)
    params = {
        "means": torch.randn(7, 3, generator=gen),
        "f_dc": torch.randn(7, 3, generator=gen) * 3,
        "log_scales": torch.randn(7, 3, generator=gen),
        "opacity_logits": torch.randn(7, generator=gen),
        "quats": torch.randn(7, 4, generator=gen),
    }
    splats = GaussianSplats(params)
    assert torch.equal(splats.colors, torch.clamp_min(SH_C0 * params["f_dc"] + 0.5, 0))
    assert (splats.colors == 0).any() and (splats.colors > 1).any()  # clamped at 0 only
    assert torch.allclose(splats.scales, params["log_scales"].exp())
    assert torch.allclose(splats.opacities, params["opacity_logits"].sigmoid())
    assert torch.allclose(splats.rotations.norm(dim=-1), torch.ones(7))
    rot = quat_to_rotmat(params["quats"])
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(7, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(7), atol=1e-5)


def test_from_template_binds_face_vertices_by_index_with_anchors_at_the_vertices():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    assert splats.num_splats == 64 and splats.num_face == int(face_mask.sum())
    assert torch.equal(splats.face_mask, face_mask)
    assert torch.equal(splats.vertex_index[face_mask], torch.nonzero(face_mask).squeeze(1))
    assert (splats.vertex_index[~face_mask] == -1).all()
    assert torch.equal(splats.anchors[face_mask], vertices[face_mask])
    assert (splats.anchors[~face_mask] == 0).all()
    assert torch.equal(splats.means.detach(), vertices)
    assert torch.allclose(splats.colors, colors, atol=1e-6)  # f_dc inverts the colour activation
    assert torch.equal(splats.rotations, torch.tensor([1.0, 0, 0, 0]).expand(64, 4))


def test_initial_scale_is_rms_distance_to_three_nearest_neighbours():
    vertices, colors, face_mask = _grid_template(spacing=0.1)
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    # every grid point has ≥ 3 neighbours at exactly one spacing
    assert torch.allclose(splats.scales, torch.full((64, 3), 0.1), atol=1e-6)


def test_splats_outside_longer_mask_start_at_quarter_opacity():
    vertices, colors, face_mask = _grid_template()
    longer = vertices[:, 1] > 0.05
    config = SplatInitConfig(opacity=0.9, outside_longer_mask_opacity=0.25)  # the release value
    splats = GaussianSplats.from_template(vertices, colors, face_mask, config=config, longer_mask=longer)
    assert torch.allclose(splats.opacities[longer], torch.tensor(0.9))
    assert torch.allclose(splats.opacities[~longer], torch.tensor(0.25))
    assert (~longer).any() and (longer & ~face_mask).any()


def test_select_and_tensor_round_trip_keep_buffers_with_their_rows():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    rows = torch.arange(64) % 3 == 0
    subset = splats.select(rows)
    assert torch.equal(subset.vertex_index, splats.vertex_index[rows])
    assert torch.equal(subset.means.detach(), splats.means.detach()[rows])
    back = GaussianSplats.from_tensors(subset.to_tensors())
    for name, tensor in subset.to_tensors().items():
        assert torch.equal(back.to_tensors()[name], tensor), name


def test_detach_copy_does_not_share_storage():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    copy = splats.detach_copy()
    with torch.no_grad():
        copy.params["means"] += 1.0
    copy.face_mask[:] = False
    assert torch.equal(splats.means.detach(), vertices)
    assert splats.num_face == int(face_mask.sum())


def test_misaligned_buffers_are_refused():
    params = {"means": torch.zeros(3, 3), "f_dc": torch.zeros(3, 3), "log_scales": torch.zeros(3, 3),
              "opacity_logits": torch.zeros(3), "quats": torch.zeros(3, 4)}  # fmt: skip
    with pytest.raises(ValueError, match="face_mask"):
        GaussianSplats(params, face_mask=torch.zeros(4, dtype=torch.bool))


def test_log_linear_lr_hits_endpoints_and_geometric_midpoint():
    assert log_linear_lr(0, 1e-2, 1e-4, 100) == pytest.approx(1e-2)
    assert log_linear_lr(50, 1e-2, 1e-4, 100) == pytest.approx(1e-3)
    assert log_linear_lr(100, 1e-2, 1e-4, 100) == pytest.approx(1e-4)
    assert log_linear_lr(500, 1e-2, 1e-4, 100) == pytest.approx(1e-4)  # clipped
    assert log_linear_lr(37, 0.0175, 0.0175, 100) == 0.0175


def test_optimizer_has_one_named_group_per_attribute_with_the_spec_rates():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    config = SplatOptimConfig()
    optimizer = make_optimizer(splats, config)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"means", "f_dc", "log_scales", "opacity_logits", "quats"}
    assert groups["means"]["params"][0] is splats.params["means"]
    assert groups["means"]["eps"] == 1e-15 and groups["means"]["betas"] == (0.9, 0.999)
    start = update_learning_rates(optimizer, 0, config)
    end = update_learning_rates(optimizer, 7000, config)
    assert start["means"] == pytest.approx(1.4e-4 * 4.5) and end["means"] == pytest.approx(1.4e-6 * 4.5)
    assert start["f_dc"] == pytest.approx(5e-3) and end["f_dc"] == pytest.approx(3e-3)
    assert start["opacity_logits"] == end["opacity_logits"] == pytest.approx(1.75e-2)
    assert start["log_scales"] == pytest.approx(2.5e-3) and end["log_scales"] == pytest.approx(5e-4)
    assert start["quats"] == pytest.approx(1e-3) and end["quats"] == pytest.approx(2e-4)
    assert groups["f_dc"]["lr"] == pytest.approx(3e-3)


def test_expression_preset_uses_the_spec_section7_rates():
    config = SplatOptimConfig.expression()
    assert config.lr_range("opacity_logits") == (5e-2, 5e-2)
    assert config.lr_range("log_scales") == (5e-3, 5e-4)
    assert config.lr_range("f_dc") == (5e-3, 3e-3)
    assert config.lr_range("quats") == (1e-3, 2e-4)
    assert config.max_steps == 500


def test_frozen_group_stays_bit_identical_while_others_move():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    config = SplatOptimConfig(frozen=("means",))
    optimizer = make_optimizer(splats, config)
    before = splats.to_tensors()
    for step in range(3):
        update_learning_rates(optimizer, step, config)
        loss = (splats.means**2).sum() + splats.colors.sum() + splats.opacities.sum()
        loss.backward()
        drop_frozen_grads(optimizer)
        optimizer.step()
        optimizer.zero_grad()
    after = splats.to_tensors()
    assert torch.equal(after["means"], before["means"])
    assert not torch.equal(after["f_dc"], before["f_dc"])
    assert not torch.equal(after["opacity_logits"], before["opacity_logits"])


def test_zero_rows_freezes_face_positions_exactly():
    vertices, colors, face_mask = _grid_template()
    splats = GaussianSplats.from_template(vertices, colors, face_mask)
    optimizer = make_optimizer(splats)
    for _ in range(3):
        (splats.means**2).sum().backward()
        zero_rows(splats, optimizer, splats.face_mask, ("means",))
        optimizer.step()
        optimizer.zero_grad()
    moved = (splats.means.detach() != vertices).any(dim=-1)
    assert not moved[face_mask].any()
    assert moved[~face_mask & (vertices.abs().sum(-1) > 0)].all()
