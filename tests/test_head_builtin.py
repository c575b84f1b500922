"""Claims about the built-in head template ``builtin-v3`` (docs/method.md §3, built-in template; its
human-range blendshapes and mouth inside: docs/expressions.md) and the ``builtin-v1`` kept for old bundles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from arc2avatar.head.builtin import BuiltinHeadConfig, builtin_head
from arc2avatar.head.model import HeadModel

REQUIRED_EXPRESSIONS = ["jaw_open", "smile", "blink_left", "blink_right", "brow_raise", "frown", "pucker", "cheek_puff"]
REQUIRED_REGIONS = ["face", "eyes", "left_eye", "right_eye", "lips", "nose", "brows", "neck", "scalp", "ears"]


@pytest.fixture(scope="module")
def head() -> HeadModel:
    return builtin_head()


def _mesh(head: HeadModel, vertices: torch.Tensor | None = None) -> trimesh.Trimesh:
    verts = head.vertices if vertices is None else vertices
    return trimesh.Trimesh(verts.double().numpy(), head.faces.numpy(), process=False)


def _skin(head: HeadModel) -> trimesh.Trimesh:
    """The closed skin alone (the mouth's inside is separate open components)."""
    keep = head.regions["skin"]
    index = -torch.ones(head.num_vertices, dtype=torch.int64)
    index[keep] = torch.arange(int(keep.sum()))
    faces = head.faces[keep[head.faces].all(dim=1)]
    return trimesh.Trimesh(head.vertices[keep].double().numpy(), index[faces].numpy(), process=False)


def _inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """(N,) bool: an odd number of crossings of the ray from each point along +x (Möller–Trumbore)."""
    tri = mesh.triangles  # (F, 3, 3)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    direction = np.array([1.0, 1e-4, 2e-4])
    p = np.cross(direction, e2)
    det = np.einsum("fc,fc->f", e1, p)
    crossings = np.zeros(len(points), dtype=np.int64)
    for i, point in enumerate(points):
        t_vec = point - tri[:, 0]
        u = np.einsum("fc,fc->f", t_vec, p) / det
        q = np.cross(t_vec, e1)
        v = (q @ direction) / det
        t = np.einsum("fc,fc->f", e2, q) / det
        crossings[i] = int(((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)).sum())
    return crossings % 2 == 1


def _face_normals(head: HeadModel, vertices: torch.Tensor) -> torch.Tensor:
    tri = vertices.double()[head.faces]  # (F, 3, 3)
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    return n / n.norm(dim=1, keepdim=True)


def _displacement(head: HeadModel, name: str) -> torch.Tensor:
    return head.expression_basis[:, :, head.expression_names.index(name)]  # (V, 3)


def test_mesh_is_closed_manifold_with_consistent_outward_winding(head):
    mesh = _skin(head)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0.5  # positive: triangles are counter-clockwise seen from outside
    assert mesh.euler_number == 2  # one closed genus-0 surface
    assert float(mesh.face_angles.min()) > np.radians(3.0)  # no slivers


def test_vertex_count_is_between_3k_and_6k_and_dtypes_match_interface(head):
    assert 3000 <= head.num_vertices <= 6000  # skin 5000, mouth inside 562, lid shells 408
    assert head.vertices.dtype == torch.float32 and head.faces.dtype == torch.int64
    assert head.expression_basis.shape == (head.num_vertices, 3, len(head.expression_names))
    assert head.name == "builtin-v3" and head.pose_fn is None


def test_height_is_config_height_and_bounding_box_is_centred(head):
    lo, hi = head.vertices.min(dim=0).values, head.vertices.max(dim=0).values
    assert abs(head.height - 2.0) < 1e-5
    assert torch.allclose(0.5 * (lo + hi), torch.zeros(3), atol=1e-5)
    assert abs(float(hi[0] + lo[0])) < 1e-5  # symmetric extent in x
    assert float(hi[1] - lo[1]) < head.height and float(hi[0] - lo[0]) < float(hi[1] - lo[1])  # taller than deep than wide


def test_custom_height_scales_mesh_and_blendshapes_together(head):
    small = builtin_head(BuiltinHeadConfig(height=1.0))
    default = head
    assert abs(small.height - 1.0) < 1e-5
    assert torch.allclose(small.vertices * 2.0, default.vertices, atol=1e-5)
    assert torch.allclose(small.expression_basis * 2.0, default.expression_basis, atol=1e-5)


def test_face_looks_toward_plus_y_and_crown_is_up(head):
    mesh = _mesh(head)
    face_tris = head.face_mask[head.faces].all(dim=1).numpy()
    mean_normal = (mesh.face_normals[face_tris] * mesh.area_faces[face_tris, None]).sum(axis=0)
    mean_normal /= np.linalg.norm(mean_normal)
    assert mean_normal[1] > 0.8
    nose_tip = head.vertices[head.regions["nose"]][:, 1].max()
    assert float(nose_tip) == float(head.vertices[:, 1].max())  # the nose is the front-most point
    crown = int(head.vertices[:, 2].argmax())
    assert head.regions["scalp"][crown]
    assert float(head.vertices[head.regions["neck"], 2].mean()) < -0.7 * head.height / 2


def test_face_mask_is_one_connected_region_of_25_to_40_percent(head):
    skin = head.regions["skin"]
    share = float(head.face_mask[skin].float().mean())
    assert 0.25 <= share <= 0.40
    idx = torch.nonzero(head.face_mask & head.regions["skin"]).squeeze(1).numpy()
    local = -np.ones(head.num_vertices, dtype=np.int64)
    local[idx] = np.arange(idx.size)
    faces = head.faces.numpy()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = edges[(local[edges] >= 0).all(axis=1)]
    graph = coo_matrix((np.ones(len(edges)), (local[edges[:, 0]], local[edges[:, 1]])), shape=(idx.size, idx.size))
    count, _ = connected_components(graph, directed=False)
    assert count == 1


def test_regions_are_named_placed_and_sided_by_the_subject(head):
    for name in REQUIRED_REGIONS:
        assert int(head.regions[name].sum()) > 10, name
    x = head.vertices[:, 0]
    assert bool((x[head.regions["left_eye"]] < 0).all()) and bool((x[head.regions["right_eye"]] > 0).all())
    for inner in ["eyes", "lips", "nose", "brows"]:
        assert bool(head.face_mask[head.regions[inner]].all()), inner
    z = head.vertices[:, 2]
    assert z[head.regions["brows"]].mean() > z[head.regions["eyes"]].mean() > z[head.regions["nose"]].mean()
    assert z[head.regions["nose"]].mean() > z[head.regions["lips"]].mean() > z[head.regions["neck"]].mean()
    assert not bool((head.regions["scalp"] & head.face_mask).any())
    assert not bool((head.regions["neck"] & head.face_mask).any())


def test_colours_are_skin_with_redder_lips_and_darker_brows(head):
    colours = head.vertex_colors
    assert float(colours.min()) >= 0.0 and float(colours.max()) <= 1.0
    skin = colours[head.face_mask].median(dim=0).values
    lips = colours[head.regions["lips"]].mean(dim=0)
    brows = colours[head.regions["brows"]].mean(dim=0)
    assert skin[0] > skin[1] > skin[2]  # warm skin tone
    assert lips[0] / lips[1] > 1.2 * skin[0] / skin[1]  # redder
    assert brows.sum() < 0.6 * skin.sum()  # darker


def test_expression_names_are_exact_and_blendshapes_move_only_the_face(head):
    assert head.expression_names[: len(REQUIRED_EXPRESSIONS)] == REQUIRED_EXPRESSIONS
    assert head.num_expressions >= 8
    off_face = head.expression_basis[~head.face_mask]
    assert float(off_face.abs().max()) == 0.0
    for name in head.expression_names:
        moved = _displacement(head, name).norm(dim=1)
        assert float(moved.max()) > 0.01 * head.height, name  # each one does something


def test_every_blendshape_at_full_weight_is_smooth_and_flips_no_triangle(head):
    neutral_normals = _face_normals(head, head.vertices)
    faces = head.faces
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    face_skin = (head.face_mask & head.regions["skin"])[faces].all(dim=1)
    # The seam between the lips rolls into the mouth when it opens (it lines the mouth there: a fold by design).
    seam = ~head.regions["off_lip_seam"][faces].all(dim=1)
    cases = [{name: 1.0} for name in head.expression_names] + [{"jaw_open": 1.0, "smile": 1.0}]
    for weights in cases:
        cos = (_face_normals(head, head.deform(weights)) * neutral_normals).sum(dim=1)
        assert int(((cos <= 0.0) & face_skin & ~seam).sum()) == 0, weights  # no skin triangle of the face turns over
    for name in head.expression_names:
        disp = _displacement(head, name).double()
        lengths = (head.vertices[edges[:, 0]] - head.vertices[edges[:, 1]]).double().norm(dim=1)
        jump = (disp[edges[:, 0]] - disp[edges[:, 1]]).norm(dim=1) / lengths
        if name == "jaw_open":  # the seam's roll into the mouth is a fold by design
            on_seam = head.regions["lips"] | head.regions["mouth_interior"]
            jump = jump[~(on_seam[edges[:, 0]] | on_seam[edges[:, 1]])]
        assert float(jump.max()) < 6.0, name  # displacement gradient bounded: no tearing


def _mean_norm(head: HeadModel, name: str, region: str) -> float:
    return float(_displacement(head, name)[head.regions[region]].norm(dim=1).mean())


def test_jaw_open_turns_the_jaw_0_45_rad_dropping_lower_lip_and_chin_10_to_15_percent_with_upper_lip_fixed(head):
    jaw = _displacement(head, "jaw_open")
    lower_dz = float(jaw[head.regions["lower_lip"], 2].mean())
    assert -0.15 * head.height <= lower_dz <= -0.10 * head.height  # ≈ 3 cm at 1 unit ≈ 14 cm
    lips_z = head.vertices[head.regions["lips"], 2]
    chin = head.face_mask & head.regions["skin"] & (head.vertices[:, 2] < lips_z.min()) & (head.vertices[:, 1] > 0.3)
    chin_dz = float(jaw[chin, 2].min())
    assert -0.16 * head.height <= chin_dz <= -0.10 * head.height
    assert float(jaw[head.regions["upper_lip"], 2].mean()) > -0.02 * head.height  # the upper lip stays up
    for region in ["eyes", "brows", "nose", "upper_teeth"]:
        assert _mean_norm(head, "jaw_open", region) < 1e-3 * head.height, region
    # The lower teeth move rigidly with the jaw: the turn between their neutral and open edges.
    teeth = head.regions["lower_teeth"]
    before, after = head.vertices[teeth].double(), head.deform({"jaw_open": 1.0})[teeth].double()
    a, b = before - before.mean(0), after - after.mean(0)
    u, _, vt = torch.linalg.svd(a.T @ b)
    rotation = (u @ vt).T
    angle = float(torch.arccos(((torch.trace(rotation) - 1) / 2).clamp(-1, 1)))
    assert 0.40 <= angle <= 0.50  # a human jaw opens ≈ 0.4–0.5 rad, as FLAME's jaw pose


def test_the_mouth_inside_sits_inside_the_closed_skin_at_neutral(head):
    skin = _skin(head)
    inside = head.regions["mouth_interior"]
    assert int(inside.sum()) > 300 and bool(head.face_mask[inside].all())
    for part in ("oral_cavity", "upper_teeth", "lower_teeth", "tongue"):
        assert bool(head.regions[part].any()), part
    assert bool(_inside(skin, head.vertices[inside].double().numpy()).all())
    colours = head.vertex_colors
    assert float(colours[head.regions["oral_cavity"]].mean()) < 0.15  # dark
    assert float(colours[head.regions["upper_teeth"]].mean()) > 0.6  # light


def test_builtin_v1_is_still_built_for_old_bundles():
    from arc2avatar.head.builtin import BUILTIN_V1

    old = builtin_head(BUILTIN_V1)
    assert old.name == "builtin-v1" and old.num_vertices == 5000 and "mouth_interior" not in old.regions
    jaw = old.expression_basis[:, :, old.expression_names.index("jaw_open")]
    assert -0.08 * old.height <= float(jaw[old.regions["lower_lip"], 2].mean()) <= -0.05 * old.height


def test_builtin_v2_is_still_built_as_it_was_for_its_bundles():
    """``builtin-v2`` (main before the lid shells and the jaw's new centre): 5562 vertices, no lid
    shells, the jaw about the hinge in front of the ears (the lower lip drops as it did)."""
    from arc2avatar.head.builtin import BUILTIN_V2

    old = builtin_head(BUILTIN_V2)
    assert old.name == "builtin-v2" and old.num_vertices == 5562 and "mouth_interior" in old.regions
    assert "eyelids" not in old.regions
    jaw = old.expression_basis[:, :, old.expression_names.index("jaw_open")]
    new = builtin_head()
    new_jaw = new.expression_basis[:, :, new.expression_names.index("jaw_open")]
    lip, new_lip = old.regions["lower_lip"], new.regions["lower_lip"]
    assert float(jaw[lip, 1].mean()) < float(new_jaw[new_lip, 1].mean())  # v3's chin goes back less


def test_blinks_close_one_eye_each(head):
    for name, closing, other in [("blink_left", "left_eye", "right_eye"), ("blink_right", "right_eye", "left_eye")]:
        assert _mean_norm(head, name, closing) > 0.005 * head.height
        assert _mean_norm(head, name, other) == 0.0
        posed = head.deform({name: 1.0})
        eye = head.regions[closing]
        spread_before = float(head.vertices[eye, 2].std())
        spread_after = float(posed[eye, 2].std())
        assert spread_after < 0.75 * spread_before, name  # the eye region closes vertically


def test_the_lid_shells_hide_inside_the_eyes_and_a_blink_brings_its_own_out_over_the_eye(head):
    from arc2avatar.head._builtin_shape import ShapeConfig, head_field

    skin = _skin(head)
    for name, lid, other in [("blink_left", "left_eyelid", "right_eyelid"), ("blink_right", "right_eyelid", "left_eyelid")]:
        shell = head.regions[lid]
        assert int(shell.sum()) > 100 and bool(head.face_mask[shell].all()) and not bool(head.regions["skin"][shell].any())
        assert bool(_inside(skin, head.vertices[shell].double().numpy()).all())  # hidden at neutral
        assert _mean_norm(head, name, other) == 0.0
        # Closed: the shell covers the eye from the front (the skin's eye region lies behind it).
        posed = head.deform({name: 1.0})
        eye = head.regions[lid.replace("lid", "")]
        front = posed[shell][:, 1].max()
        assert float(front) > float(posed[eye][:, 1].max())
        lash = shell & head.regions["eyelid_lash"]
        assert float(head.vertex_colors[lash].mean()) < 0.15 < float(head.vertex_colors[shell & ~lash].mean()) - 0.4
    assert ShapeConfig().sculpt is not None and callable(head_field)


def test_other_expressions_move_their_regions_the_right_way(head):
    lips, brows = head.regions["lips"], head.regions["brows"]
    x = head.vertices[:, 0]
    smile = _displacement(head, "smile")
    corners = lips & (x.abs() > 0.6 * x[lips].abs().max())
    assert float(smile[corners, 2].mean()) > 0.01 * head.height  # corners up
    assert float((smile[corners, 0] * x[corners].sign()).mean()) > 0  # and outward
    assert float(_displacement(head, "brow_raise")[brows, 2].mean()) > 0.015 * head.height
    assert float(_displacement(head, "frown")[brows, 2].mean()) < 0
    assert float(_displacement(head, "pucker")[lips, 1].mean()) > 0.01 * head.height
    assert _mean_norm(head, "pucker", "lips") > 5 * _mean_norm(head, "pucker", "eyes")
    puff = _displacement(head, "cheek_puff")
    mesh_normals = torch.from_numpy(_mesh(head).vertex_normals.copy())
    moved = puff.norm(dim=1) > 0.5 * float(puff.norm(dim=1).max())
    assert float((puff[moved].double() * mesh_normals[moved]).sum(dim=1).min()) > 0  # outward
    assert _mean_norm(head, "cheek_puff", "lips") < 0.5 * float(puff[moved].norm(dim=1).mean())
    if "mouth_left" in head.expression_names:
        assert float(_displacement(head, "mouth_left")[lips, 0].mean()) < 0  # subject's left = −x


def test_two_builds_are_bit_identical(head):
    again = builtin_head()
    for field_name in ["vertices", "faces", "face_mask", "expression_basis", "vertex_colors"]:
        assert torch.equal(getattr(head, field_name), getattr(again, field_name)), field_name
    assert head.regions.keys() == again.regions.keys()
    assert all(torch.equal(head.regions[k], again.regions[k]) for k in head.regions)
    assert head.expression_names == again.expression_names
