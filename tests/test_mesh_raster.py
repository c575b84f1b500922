"""Claims about the mesh rasteriser used for mean-face target images (docs/method.md §6)."""

from __future__ import annotations

import math

import torch
import trimesh

from arc2avatar.cameras import orbit_cameras, project_points
from arc2avatar.head.raster import MeshRasterConfig, render_mesh

FRONT = orbit_cameras(4.0, 90.0, 0.0, 0.7, 64, 64)  # at y = 4 looking toward −y; world +x is image left


def _square(half: float = 0.5, y: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A square in the plane y = const facing +y (toward FRONT), two triangles."""
    v = torch.tensor([[-half, y, -half], [half, y, -half], [half, y, half], [-half, y, half]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_square_facing_the_camera_covers_its_projected_rectangle_within_one_pixel():
    v, f = _square()
    out = render_mesh(v, f, torch.full_like(v, 0.5), FRONT)
    corners, _ = project_points(FRONT, v)
    lo, hi = corners[0].amin(0), corners[0].amax(0)  # (2,) pixel coordinates
    centres = torch.arange(64) + 0.5
    inside_x = (centres >= lo[0]) & (centres <= hi[0])
    inside_y = (centres >= lo[1]) & (centres <= hi[1])
    expected = inside_y[:, None] & inside_x[None, :]
    covered = out.alpha[0, ..., 0] > 0
    grown = torch.nn.functional.max_pool2d(expected[None].float(), 3, 1, 1)[0] > 0
    shrunk = -torch.nn.functional.max_pool2d(-expected[None].float(), 3, 1, 1)[0] > 0
    assert (covered <= grown).all() and (shrunk <= covered).all()
    assert torch.allclose(out.depth[0][covered], torch.tensor(4.0), atol=1e-5)
    assert torch.equal(out.rgb[0][~covered], torch.ones(int((~covered).sum()), 3))  # white background


def test_nearer_triangle_occludes_the_farther_one_whatever_the_face_order():
    far_v, _ = _square(0.6, y=-0.5)
    near_v, _ = _square(0.3, y=0.5)
    vertices = torch.cat([far_v, near_v])
    colors = torch.cat([torch.tensor([[1.0, 0, 0]]).expand(4, 3), torch.tensor([[0, 0, 1.0]]).expand(4, 3)])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    for order in (torch.arange(4), torch.tensor([3, 2, 1, 0])):
        out = render_mesh(vertices, faces[order], colors, FRONT)
        centre = out.rgb[0, 32, 32]
        assert torch.allclose(centre, torch.tensor([0.0, 0.0, 1.0]))
        assert int(faces[order][out.face_index[0, 32, 32]].min()) >= 4  # a face of the near square
        assert math.isclose(out.depth[0, 32, 32, 0].item(), 3.5, abs_tol=1e-5)
        assert torch.allclose(out.rgb[0, 32, 22], torch.tensor([1.0, 0.0, 0.0]))  # only the far one there


def _ray_triangle_barycentrics(origin, direction, tri):
    """Möller–Trumbore: barycentrics (w0, w1, w2) of the ray's hit on the 3D triangle."""
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    p = torch.linalg.cross(direction, e2)
    det = e1 @ p
    s = origin - tri[0]
    u = (s @ p) / det
    q = torch.linalg.cross(s, e1)
    v = (direction @ q) / det
    return torch.stack([1 - u - v, u, v])


def test_colours_are_interpolated_perspective_correctly_at_vertices_and_inside():
    cams = orbit_cameras(3.0, 90.0, 0.0, 0.9, 48, 48)
    tri = torch.tensor([[-0.8, 0.6, -0.6], [0.7, -0.9, -0.5], [0.1, 0.2, 0.8]], dtype=torch.float64)  # tilted in depth
    colors = torch.eye(3, dtype=torch.float64)
    cams64 = type(cams)(**{**cams.__dict__, "viewmats": cams.viewmats.double(), "Ks": cams.Ks.double()})
    out = render_mesh(tri, torch.tensor([[0, 1, 2]]), colors, cams64)
    R, t, K = cams64.viewmats[0, :3, :3], cams64.viewmats[0, :3, 3], cams64.Ks[0]
    origin = -(R.T @ t)
    covered = torch.nonzero(out.alpha[0, ..., 0] > 0)
    assert len(covered) > 100
    pix, _ = project_points(cams64, tri)  # (1, 3, 2) screen vertices
    worst_affine_gap = 0.0
    for i, j in covered[:: max(1, len(covered) // 60)].tolist():
        ray_cam = torch.stack([(j + 0.5 - K[0, 2]) / K[0, 0], (i + 0.5 - K[1, 2]) / K[1, 1], torch.tensor(1.0, dtype=torch.float64)])
        expected = _ray_triangle_barycentrics(origin, R.T @ ray_cam, tri)
        assert torch.allclose(out.rgb[0, i, j], expected, atol=1e-9), (i, j)
        affine = torch.linalg.solve(
            torch.cat([pix[0].T, torch.ones(1, 3, dtype=torch.float64)]),
            torch.tensor([j + 0.5, i + 0.5, 1.0], dtype=torch.float64),
        )  # screen-space barycentrics: what a non-perspective interpolation would give
        worst_affine_gap = max(worst_affine_gap, (affine - expected).abs().max().item())
    assert worst_affine_gap > 0.02  # the triangle is tilted enough for the test to mean something
    vertex_pixel = pix[0, 2].floor().long()  # the pixel holding vertex 2 is (nearly) pure blue
    assert out.rgb[0, vertex_pixel[1], vertex_pixel[0], 2] > 0.9


def test_icosphere_renders_solid_with_the_projected_sphere_radius():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    v = torch.tensor(sphere.vertices, dtype=torch.float32)
    f = torch.tensor(sphere.faces)
    cams = orbit_cameras(4.0, torch.tensor([90.0, 60.0]), torch.tensor([0.0, 135.0]), 0.7, 96, 96)
    out = render_mesh(v, f, torch.full_like(v, 0.2), cams, config=MeshRasterConfig(pairs_per_chunk=4096))
    focal = cams.Ks[0, 0, 0].item()
    radius_px = focal * math.tan(math.asin(1.0 / 4.0))  # silhouette cone of a sphere seen from 4 units
    centres = torch.arange(96) + 0.5
    dist = ((centres[:, None] - 48) ** 2 + (centres[None, :] - 48) ** 2).sqrt()
    for c in range(2):
        alpha = out.alpha[c, ..., 0]
        assert (alpha[dist < radius_px - 1] == 1).all()  # no holes between triangles
        assert (alpha[dist > radius_px + 1] == 0).all()
        assert abs(math.sqrt(alpha.sum().item() / math.pi) - radius_px) < 1.0
        assert (out.face_index[c][alpha[...] == 1] >= 0).all()
    culled = render_mesh(v, f, torch.full_like(v, 0.2), cams, cull_backfaces=True)
    assert torch.equal(culled.face_index, out.face_index)  # a closed convex mesh: only front faces show
    inside_out = render_mesh(v, f.flip(-1), torch.full_like(v, 0.2), cams, cull_backfaces=True)
    assert abs(inside_out.depth[0, 48, 48, 0].item() - 5.0) < 0.01  # only the far hemisphere faces us now
    assert abs(out.depth[0, 48, 48, 0].item() - 3.0) < 0.01


def test_supersampling_antialiases_edges_and_keeps_the_area():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    v = torch.tensor(sphere.vertices, dtype=torch.float32)
    f = torch.tensor(sphere.faces)
    cams = orbit_cameras(4.0, 90.0, 0.0, 0.7, 48, 48)
    sharp = render_mesh(v, f, torch.zeros_like(v), cams)
    smooth = render_mesh(v, f, torch.zeros_like(v), cams, supersample=4)
    partial = (smooth.alpha > 0) & (smooth.alpha < 1)
    assert partial.sum() > 20 and ((sharp.alpha == 0) | (sharp.alpha == 1)).all()
    assert abs(smooth.alpha.sum() - sharp.alpha.sum()) < 0.02 * sharp.alpha.sum()
    assert torch.allclose(smooth.rgb, 1.0 - smooth.alpha.expand(-1, -1, -1, 3), atol=1e-6)  # black over white
