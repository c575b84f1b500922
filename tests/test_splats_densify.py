"""Claims about masked densification and pruning (docs/method.md §4; docs/official-code.md §3.3, §7.7–7.8)."""

import torch

from arc2avatar.splats.densify import (
    LatePruneConfig,
    MaskedDensifier,
    MaskedDensifyConfig,
    duplicate,
    knn_outlier_mask,
    remove,
    reset_opacity,
    split,
)
from arc2avatar.splats.model import GaussianSplats
from arc2avatar.splats.optim import make_optimizer

MOMENTS = ("exp_avg", "exp_avg_sq")


def _splats(means, face_mask, *, opacity=0.9, log_scale=-3.0, seed=0):
    """Splats at ``means`` with random colours/rotations; face rows bound to vertex = row."""
    n = means.shape[0]
    gen = torch.Generator().manual_seed(seed)
    params = {
        "means": means.float(),
        "f_dc": torch.randn(n, 3, generator=gen),
        "log_scales": torch.full((n, 3), log_scale) + 0.1 * torch.randn(n, 3, generator=gen),
        "opacity_logits": torch.full((n,), float(torch.logit(torch.tensor(opacity)))),
        "quats": torch.randn(n, 4, generator=gen),
    }
    vertex_index = torch.where(face_mask, torch.arange(n), torch.full((n,), -1))
    anchors = torch.where(face_mask[:, None], means.float(), torch.zeros(n, 3))
    return GaussianSplats(params, face_mask.clone(), vertex_index, anchors)


def _loss(splats):
    return (
        (splats.means**2).sum()
        + splats.colors.sum()
        + splats.scales.sum()
        + splats.opacities.sum()
        + splats.rotations[:, 1:].sum()
    )


def _stepped(n=24, seed=0):
    """A set with interleaved face/free rows, one Adam step taken and a gradient pending."""
    gen = torch.Generator().manual_seed(seed)
    face_mask = torch.randperm(n, generator=gen) < n // 2
    splats = _splats(torch.randn(n, 3, generator=gen), face_mask, seed=seed)
    optimizer = make_optimizer(splats)
    _loss(splats).backward()
    optimizer.step()
    optimizer.zero_grad()
    _loss(splats).backward()
    return splats, optimizer


def _rows_of(splats, optimizer, rows):
    """Every per-row value of ``rows``: parameters, buffers, Adam moments, pending gradients."""
    out = {name: t[rows].clone() for name, t in splats.to_tensors().items()}
    for name, param in splats.params.items():
        state = optimizer.state[param]
        for key in MOMENTS:
            out[f"{name}.{key}"] = state[key][rows].clone()
        out[f"{name}.grad"] = param.grad[rows].clone()
    return out


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_face_rows_survive_clone_split_prune_and_reset_bit_identical_in_order():
    splats, optimizer = _stepped()
    face_before = _rows_of(splats, optimizer, splats.face_mask)
    free = ~splats.face_mask
    gen = torch.Generator().manual_seed(3)
    duplicate(splats, optimizer, free & (torch.arange(splats.num_splats) % 3 == 0))
    split(splats, optimizer, ~splats.face_mask & (torch.arange(splats.num_splats) % 2 == 0), gen)
    remove(splats, optimizer, ~splats.face_mask & (torch.arange(splats.num_splats) % 5 == 0))
    reset_opacity(splats, optimizer, ~splats.face_mask, max_value=0.2)
    assert splats.num_splats != 24
    _assert_identical(_rows_of(splats, optimizer, splats.face_mask), face_before)


def test_opacity_reset_caps_free_splats_and_never_writes_face_logits():
    n = 8
    face_mask = torch.arange(n) < 4
    splats = _splats(torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), face_mask, opacity=0.99)
    with torch.no_grad():
        splats.params["opacity_logits"][5] = torch.logit(torch.tensor(0.1))  # already below the cap
    optimizer = make_optimizer(splats)
    before = splats.params["opacity_logits"].detach().clone()
    config = MaskedDensifyConfig(densify_from=10_000)  # isolate the reset (400 also densifies)
    report = MaskedDensifier(config, max_steps=7000).step(400, splats, optimizer)
    after = splats.params["opacity_logits"].detach()
    assert report.events == ["reset"] and report.reset == 4
    assert torch.equal(after[face_mask], before[face_mask])  # the release wrote σ(o) here
    assert torch.allclose(splats.opacities[[4, 6, 7]], torch.tensor(0.2))
    assert torch.equal(after[5], before[5])


def test_adam_moments_and_gradients_follow_their_rows():
    splats, optimizer = _stepped()
    n = splats.num_splats
    old = _rows_of(splats, optimizer, torch.ones(n, dtype=torch.bool))
    select = ~splats.face_mask & (torch.arange(n) % 2 == 0)
    added = duplicate(splats, optimizer, select)
    new = _rows_of(splats, optimizer, torch.ones(splats.num_splats, dtype=torch.bool))
    for key in old:
        assert torch.equal(new[key][:n], old[key]), key
    for name in splats.params:
        assert torch.equal(new[name][n:], old[name][select])  # exact copies
        for key in (*MOMENTS, "grad"):
            assert (new[f"{name}.{key}"][n:] == 0).all()  # fresh moments
    assert (new["vertex_index"][n:] == -1).all() and not new["face_mask"][n:].any()
    assert added == int(select.sum())

    drop = torch.zeros(splats.num_splats, dtype=torch.bool)
    drop[[1, 2, n + 1]] = True
    drop &= ~splats.face_mask
    kept_before = _rows_of(splats, optimizer, ~drop)
    remove(splats, optimizer, drop)
    _assert_identical(_rows_of(splats, optimizer, torch.ones(splats.num_splats, dtype=torch.bool)), kept_before)


def test_reset_zeroes_moments_of_selected_rows_only():
    splats, optimizer = _stepped()
    select = ~splats.face_mask & (torch.arange(splats.num_splats) < 12)
    others = _rows_of(splats, optimizer, ~select)
    reset_opacity(splats, optimizer, select, max_value=0.2)
    state = optimizer.state[splats.params["opacity_logits"]]
    for key in MOMENTS:
        assert (state[key][select] == 0).all()
    assert (splats.params["opacity_logits"].grad[select] == 0).all()
    _assert_identical(_rows_of(splats, optimizer, ~select), others)


def test_split_children_sample_the_parent_gaussian_with_scale_divided_by_1_6():
    scales = torch.tensor([1.0, 0.01, 0.02])
    splats = _splats(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([False]))
    half = torch.tensor(0.5**0.5)
    with torch.no_grad():
        splats.params["log_scales"][:] = scales.log()
        splats.params["quats"][:] = torch.stack([half, 0 * half, 0 * half, half])  # 90° about z: x → y
    added = split(splats, None, torch.tensor([True]), torch.Generator().manual_seed(0), n=4000)
    assert added == 4000 and splats.num_splats == 4000
    offsets = splats.means.detach() - torch.tensor([0.0, 0.0, 2.0])
    std = offsets.std(dim=0)
    assert torch.allclose(std, torch.tensor([0.01, 1.0, 0.02]), rtol=0.05)
    assert torch.allclose(splats.scales, (scales / 1.6).expand(4000, 3), rtol=1e-5)


def test_densifier_clones_small_and_splits_large_hot_free_splats_only():
    config = MaskedDensifyConfig(scene_extent=1.0, prune_max_world_scale_fraction=10.0, late=None)
    # rows: hot small free, hot large free, cold free, hot small FACE
    splats = _splats(torch.zeros(4, 3), torch.tensor([False, False, False, True]), log_scale=-2.3)
    with torch.no_grad():
        splats.params["log_scales"][1] = torch.log(torch.tensor(0.8))  # > percent_dense·extent
    optimizer = make_optimizer(splats)
    densifier = MaskedDensifier(config)
    grad_px = torch.tensor([[[0.01, 0.0], [0.01, 0.0], [0.0, 0.0], [0.01, 0.0]]])  # (1, 4, 2)
    densifier.accumulate(grad_px, torch.full((1, 4), 3.0), width=64, height=64)
    before = splats.to_tensors()
    report = densifier.step(200, splats, optimizer, torch.Generator().manual_seed(0))
    assert (report.cloned, report.split, report.pruned) == (1, 2, 0)
    assert splats.num_splats == 4 + 1 + 2 - 1
    after = splats.to_tensors()
    # kept rows (0, 2, 3) in order, then the clone of row 0, then row 1's two children
    assert torch.equal(after["log_scales"][:3], before["log_scales"][[0, 2, 3]])
    assert torch.equal(after["log_scales"][3], before["log_scales"][0])
    assert torch.allclose(after["log_scales"][4:].exp(), torch.tensor(0.8 / 1.6))
    assert torch.equal(splats.face_mask, torch.tensor([False, False, True, False, False, False]))
    assert densifier.stats is not None and (densifier.stats["grad_sum"] == 0).all()  # reset after densify


def test_gradient_statistics_count_every_view_not_only_the_last():
    config = MaskedDensifyConfig(late=None)  # threshold 0.005 on the NDC gradient
    splats = _splats(torch.zeros(2, 3), torch.tensor([False, False]))
    densifier = MaskedDensifier(config)
    grad_cn2 = torch.zeros(4, 2, 2)
    grad_cn2[0, 0, 0] = 0.001  # splat 0: first view only; NDC 0.032, mean over 4 visits 0.008
    grad_cn2[3, 1, 1] = 0.0005  # splat 1: last view only; NDC 0.016, mean 0.004
    densifier.accumulate(grad_cn2, torch.full((4, 2, 2), 5), width=64, height=64)  # gsplat ≥1.5 radii
    report = densifier.step(200, splats, make_optimizer(splats))
    assert report.cloned == 1
    assert torch.equal(splats.means.detach()[2], splats.means.detach()[0])
    assert densifier.stats is not None


def test_prune_removes_faint_screen_large_and_world_large_free_splats_never_face():
    # per kind (faint, huge on screen, huge in world, healthy): one free and one face splat
    face_mask = torch.tensor([False, False, False, False, True, True, True, True])
    splats = _splats(torch.zeros(8, 3), face_mask, opacity=0.5, log_scale=-3.0)
    with torch.no_grad():
        splats.params["opacity_logits"][[0, 4]] = torch.logit(torch.tensor(0.1))
        splats.params["log_scales"][[2, 6]] = torch.log(torch.tensor(0.5))
    densifier = MaskedDensifier(MaskedDensifyConfig(late=None))
    radii = torch.tensor([[3.0, 25.0, 3.0, 3.0, 3.0, 25.0, 3.0, 3.0]])
    densifier.accumulate(torch.zeros(1, 8, 2), radii, width=512, height=512)
    report = densifier.step(200, splats, make_optimizer(splats))
    assert report.pruned == 3 and report.cloned == 0
    assert torch.equal(splats.face_mask, torch.tensor([False, True, True, True, True]))
    assert torch.equal(splats.vertex_index, torch.tensor([-1, 4, 5, 6, 7]))


def test_nothing_to_do_rebuilds_nothing():
    splats, optimizer = _stepped()
    ids = {name: id(p) for name, p in splats.params.items()}
    assert remove(splats, optimizer, torch.zeros(splats.num_splats, dtype=torch.bool)) == 0
    densifier = MaskedDensifier(MaskedDensifyConfig.release())
    with torch.no_grad():
        splats.params["means"][~splats.face_mask, 2] = 10.0  # nothing below the face
    report = densifier.step(100, splats, optimizer)  # prune-below event with nothing to prune
    assert report.events == ["prune_below_face"] and not report.topology_changed
    assert {name: id(p) for name, p in splats.params.items()} == ids
    assert all(p.grad is not None for p in splats.params.values())


def test_optimizer_step_after_densify_updates_every_kept_row():
    splats, optimizer = _stepped()
    n = splats.num_splats
    duplicate(splats, optimizer, ~splats.face_mask)
    remove(splats, optimizer, ~splats.face_mask & (torch.arange(splats.num_splats) == 1))
    before = splats.to_tensors()
    optimizer.step()
    after = splats.to_tensors()
    kept = n - 1 if not bool(splats.face_mask[1]) else n
    for name in ("means", "f_dc", "log_scales", "opacity_logits"):
        moved = (after[name][:kept] != before[name][:kept]).reshape(kept, -1).any(dim=1)
        assert moved.all(), name  # the release skipped this step (new tensors had no .grad)
        assert torch.equal(after[name][kept:], before[name][kept:])  # new rows: zero grad, zero moments


def test_far_disconnected_cluster_of_free_splats_is_removed_while_the_body_stays():
    axis = torch.arange(6, dtype=torch.float32) * 0.1
    body = torch.cartesian_prod(axis, axis, axis)  # 216 points, spacing 0.1
    cluster = torch.tensor([10.0, 10.0, 10.0]) + torch.arange(5, dtype=torch.float32)[:, None] * 0.1
    means = torch.cat([body, cluster])
    face_mask = torch.zeros(221, dtype=torch.bool)
    face_mask[:50] = True
    face_mask[220] = True  # a stray face splat is never pruned
    splats = _splats(means, face_mask, opacity=0.9, log_scale=-3.0)
    late = LatePruneConfig(connectivity_radius=0.15, knn_std_factor=None)  # the radius-graph test alone
    densifier = MaskedDensifier(MaskedDensifyConfig(late=late), max_steps=4000)
    report = densifier.step(4000, splats, make_optimizer(splats))
    assert report.events == ["disconnected", "late"]
    assert report.pruned_disconnected == 4 and report.pruned_late == 0
    assert torch.equal(splats.means.detach()[:216], body)
    assert splats.num_face == 51


def test_knn_outliers_are_flagged_and_inliers_are_not():
    axis = torch.arange(5, dtype=torch.float64) * 0.1
    points = torch.cat([torch.cartesian_prod(axis, axis, axis), torch.tensor([[1.5, 0.2, 0.2]], dtype=torch.float64)])
    flagged = knn_outlier_mask(points.numpy(), k=10, n_std=3.0)
    assert flagged[-1] and not flagged[:-1].any()


def test_late_targeted_prune_removes_faint_and_large_free_splats():
    axis = torch.arange(4, dtype=torch.float32) * 0.1
    means = torch.cartesian_prod(axis, axis, axis)
    face_mask = torch.arange(64) < 8
    splats = _splats(means, face_mask, opacity=0.9, log_scale=-3.0)
    with torch.no_grad():
        splats.params["opacity_logits"][[3, 20]] = torch.logit(torch.tensor(0.04))
        splats.params["log_scales"][[5, 30], 0] = torch.log(torch.tensor(0.3))
    densifier = MaskedDensifier(MaskedDensifyConfig(late=LatePruneConfig(connectivity_radius=0.15)), max_steps=4000)
    report = densifier.step(4000, splats, make_optimizer(splats))
    assert report.pruned_late == 2 and splats.num_splats == 62 and splats.num_face == 8


def test_release_preset_prunes_free_splats_below_the_lowest_face_splat():
    means = torch.tensor([[0.0, 0, 0.5], [0.0, 0, 1.0], [0.0, 0, 0.2], [0.0, 0, 0.6], [0.0, 0, 0.49]])
    splats = _splats(means, torch.tensor([True, True, False, False, False]))
    report = MaskedDensifier(MaskedDensifyConfig.release()).step(300, splats, make_optimizer(splats))
    assert report.pruned_below_face == 2
    assert torch.equal(splats.means.detach()[:, 2], torch.tensor([0.5, 1.0, 0.6]))


def test_schedules_fire_as_in_the_spec_over_a_7000_iteration_run():
    counts = {}
    for config in (MaskedDensifyConfig.paper(), MaskedDensifyConfig.release()):
        splats = _splats(torch.zeros(2, 3), torch.tensor([True, True]))
        densifier = MaskedDensifier(config, max_steps=7000)
        for iteration in range(1, 7001):
            for event in densifier.step(iteration, splats, None).events:
                counts[(config.late is None, event)] = counts.get((config.late is None, event), 0) + 1
    assert counts == {
        (False, "densify"): 14, (False, "reset"): 7, (False, "disconnected"): 6, (False, "late"): 3,
        (True, "densify"): 14, (True, "reset"): 7, (True, "prune_below_face"): 29,
    }  # fmt: skip
