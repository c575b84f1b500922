"""Claims about upsampling with parents and the face Laplacian (docs/method.md §3, §4; paper E.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from arc2avatar.head.flame import flame_head
from arc2avatar.testing.flame import synthetic_flame_arrays
from arc2avatar.head.laplacian import laplacian_loss, uniform_laplacian
from arc2avatar.head.model import HeadModel
from arc2avatar.head.upsample import choose_levels, subdivision_counts, upsample_head


def _octahedron_head() -> HeadModel:
    """A closed octahedron; the face = the 4 upper front triangles' vertices (+y half, z ≥ 0)."""
    vertices = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    faces = torch.tensor(
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    )
    face_mask = torch.tensor([True, True, True, False, True, False])  # triangles (0,2,4), (2,1,4)
    basis = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(0))
    return HeadModel(
        name="octa",
        vertices=vertices,
        faces=faces,
        face_mask=face_mask,
        regions={"top": torch.tensor([True, True, True, True, True, False])},
        expression_names=["a", "b"],
        expression_basis=basis,
        vertex_colors=torch.rand(6, 3, generator=torch.Generator().manual_seed(1)),
    )


@pytest.fixture(scope="module")
def flame() -> HeadModel:
    arrays = synthetic_flame_arrays(seed=1)
    arrays["f"] = arrays["f"].astype(np.int64)
    arrays["kintree_table"] = np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]])
    return flame_head(arrays, name="synthetic")


@pytest.fixture(scope="module")
def flame_up(flame):
    return upsample_head(flame, face_levels=1, rest_levels=1)


@pytest.mark.parametrize("face_levels, rest_levels", [(0, 0), (1, 1), (2, 2), (2, 1), (1, 3)])
def test_every_upsampled_vertex_is_the_weighted_sum_of_its_parents(face_levels, rest_levels):
    head = _octahedron_head()
    up = upsample_head(head, face_levels, rest_levels)
    assert torch.allclose(up.parent_weight.sum(dim=1), torch.ones(up.head.num_vertices))
    rebuilt = (up.parent_weight[..., None] * head.vertices[up.parent_index]).sum(dim=1)
    assert torch.allclose(rebuilt, up.head.vertices, atol=1e-6)
    assert torch.equal(up.head.vertices[: head.num_vertices], head.vertices)  # originals first
    assert up.parent_index.shape[1] <= 3
    counts = subdivision_counts(head, face_levels, rest_levels)
    assert counts == (int(up.head.face_mask.sum()), int((~up.head.face_mask).sum()))


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_equal_levels_keep_a_closed_mesh_closed_with_welded_boundary(levels):
    head = _octahedron_head()
    up = upsample_head(head, levels, levels)
    mesh = trimesh.Trimesh(up.head.vertices.numpy(), up.head.faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert up.head.num_vertices == 6 + 12 * (2**levels - 1) + 8 * (2**levels - 1) * (2**levels - 2) // 2
    assert len(np.unique(up.head.vertices.numpy().round(6), axis=0)) == up.head.num_vertices  # no duplicates


def test_different_levels_give_t_junctions_but_no_duplicate_vertices():
    up = upsample_head(_octahedron_head(), 2, 1)
    mesh = trimesh.Trimesh(up.head.vertices.numpy(), up.head.faces.numpy(), process=False)
    assert not mesh.is_watertight  # documented: T-junctions on the face/rest boundary
    assert len(np.unique(up.head.vertices.numpy().round(6), axis=0)) == up.head.num_vertices


def test_face_triangles_index_the_face_vertices_and_cover_the_face_area():
    head = _octahedron_head()
    up = upsample_head(head, 2, 1)
    tris = up.face_triangles()
    face_vertices = up.head.vertices[up.face_vertex_index()]
    assert int(tris.max()) == face_vertices.shape[0] - 1 and int(tris.min()) == 0
    area = trimesh.Trimesh(face_vertices.numpy(), tris.numpy(), process=False).area
    original = trimesh.Trimesh(head.vertices.numpy(), head.faces[:2].numpy(), process=False).area
    assert area == pytest.approx(original, rel=1e-6)
    assert tris.shape[0] == 2 * 16


def test_regions_hold_new_vertices_only_if_all_parents_do():
    head = _octahedron_head()
    up = upsample_head(head, 1, 1)
    top = up.head.regions["top"]
    expected = head.regions["top"][up.parent_index].all(dim=1)
    assert torch.equal(top, expected)
    assert not bool(top[up.head.vertices[:, 2] < -1e-6].any())


def test_expressions_commute_with_upsampling_exactly(flame, flame_up):
    weights = {"exp_000": 1.0, "exp_007": -2.0, "exp_050": 0.5}
    deform_then_up = flame_up.upsample(flame.deform(expression=weights))
    up_then_deform = flame_up.head.deform(expression=weights)
    assert torch.allclose(deform_then_up, up_then_deform, atol=1e-6)
    assert torch.allclose(flame_up.upsample(flame.vertex_colors), flame_up.head.vertex_colors)


def test_jaw_pose_commutes_with_upsampling_approximately_and_exactly_on_originals(flame, flame_up):
    pose = {"jaw": torch.tensor([0.25, 0.0, 0.0])}
    deform_then_up = flame_up.upsample(flame.deform(pose=pose))
    up_then_deform = flame_up.head.deform(pose=pose)
    V = flame.num_vertices
    assert torch.allclose(up_then_deform[:V], deform_then_up[:V], atol=1e-5)
    error = (up_then_deform - deform_then_up).norm(dim=-1)
    motion = (deform_then_up - flame_up.head.vertices).norm(dim=-1)
    assert float(motion.max()) > 0.05  # the jaw really moved
    assert float(error.max()) < 0.02 * flame.height  # second-order blending difference only


def test_face_and_rest_counts_grow_fourfold_per_level(flame):
    face1, rest1 = subdivision_counts(flame, 1, 1)
    face2, rest2 = subdivision_counts(flame, 2, 2)
    assert 3.0 < face2 / face1 < 4.5 and 3.0 < rest2 / rest1 < 4.5
    levels = choose_levels(flame)
    assert all(0 <= level <= 5 for level in levels)


def test_laplacian_commutes_with_rigid_motion_and_loss_is_zero_when_unchanged(flame_up):
    tris = flame_up.face_triangles()
    x = flame_up.head.vertices[flame_up.face_vertex_index()].double()
    lap = uniform_laplacian(tris, x.shape[0])
    angle = 0.7
    R = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    t = torch.tensor([0.3, -2.0, 5.0], dtype=torch.float64)
    moved = x @ R.T + t
    assert torch.allclose(lap(moved), lap(x) @ R.T, atol=1e-9)  # L(Rx + t) = R·L(x)
    assert float(laplacian_loss(x, x, lap)) == 0.0


def test_laplacian_loss_is_positive_for_a_bump_and_rows_use_all_neighbours():
    grid = trimesh.creation.box().subdivide().subdivide()
    vertices = torch.tensor(grid.vertices)
    faces = torch.tensor(grid.faces)
    lap = uniform_laplacian(faces, vertices.shape[0])
    bumped = vertices.clone()
    bumped[0] += torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64)
    assert float(laplacian_loss(bumped, vertices, lap)) > 0.0
    # L(x)_i = x_i − mean of every neighbour, even for vertices with more than 10 neighbours
    neighbours = [set() for _ in range(vertices.shape[0])]
    for a, b, c in grid.faces.tolist():
        neighbours[a] |= {b, c}
        neighbours[b] |= {a, c}
        neighbours[c] |= {a, b}
    i = max(range(len(neighbours)), key=lambda k: len(neighbours[k]))
    expected = vertices[i] - vertices[sorted(neighbours[i])].mean(dim=0)
    assert torch.allclose(lap(vertices)[i], expected, atol=1e-12)
    assert int(lap.num_neighbours[i]) == len(neighbours[i])


def test_isolated_vertex_laplacian_is_its_position():
    faces = torch.tensor([[0, 1, 2]])
    x = torch.randn(4, 3, dtype=torch.float64)
    lap = uniform_laplacian(faces, 4)
    assert torch.equal(lap(x)[3], x[3])
