"""A small vectorised triangle rasteriser for target images of the template (docs/method.md §6).

Mean-face initialisation renders the face submesh with its mean colour from the face-phase cameras
(paper §3.4 eq. 7). Written by hand because the usual libraries do not fit: nvdiffrast is not on
PyPI and has a non-commercial licence, PyTorch3D ships no Linux wheels, OpenGL needs a display
stack (docs/method.md §4.6). Plain PyTorch, same code on CPU and GPU, no gradients.

Conventions are the splat renderer's (``arc2avatar.cameras.model``): OpenCV view matrices,
pixel (i, j) has its centre at (j + 0.5, i + 0.5), so meshes and splats line up pixel for pixel.
Per camera: each face's screen bounding box is expanded into candidate pixels, edge functions give
screen-space barycentrics, depth and colours are interpolated perspective-correctly, and a z-buffer
keeps the nearest face through ``scatter_reduce("amin")`` on (depth bits, face index) keys packed
into int64. Faces with a vertex nearer than ``cameras.near`` are dropped (no near-plane clipping:
templates sit well inside the camera frustum).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from arc2avatar.cameras.model import Cameras


@dataclass(frozen=True)
class MeshRasterConfig:
    """Knobs of ``render_mesh`` that are not part of the picture."""

    pairs_per_chunk: int = 1 << 22
    """Memory bound: (face, candidate pixel) pairs handled at once (4M ≈ 100 MB of temporaries)."""
    min_area_px2: float = 1e-12
    """Faces whose projected area (px²) is below this are skipped as degenerate."""


@dataclass
class MeshRender:
    """What ``render_mesh`` returns for C cameras of H × W pixels.

    Attributes:
        rgb: (C, H, W, 3) interpolated vertex colour composited over the background.
        alpha: (C, H, W, 1) coverage: 0 or 1, fractional at edges when supersampled.
        depth: (C, H, W, 1) camera-space z of the visible surface (mean over covered subsamples),
            0 where nothing is covered.
        face_index: (C, H, W) int64 index of the visible face (at the centre subsample), −1 = none.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    face_index: Tensor


@torch.no_grad()
def render_mesh(
    vertices: Tensor,
    faces: Tensor,
    vertex_colors: Tensor,
    cameras: Cameras,
    background: Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0),
    *,
    supersample: int = 1,
    cull_backfaces: bool = False,
    config: MeshRasterConfig = MeshRasterConfig(),
) -> MeshRender:
    """Render a vertex-coloured triangle mesh into every camera (no gradient).

    Args:
        vertices: (V, 3) world positions (arc2avatar frame: z up, face toward +y).
        faces: (F, 3) int vertex indices, counter-clockwise seen from outside.
        vertex_colors: (V, 3) RGB in [0, 1], interpolated perspective-correctly.
        cameras: C pinhole cameras (OpenCV), pixel centres at +0.5.
        background: (3,) or (C, 3) colour where no face is visible (default white).
        supersample: render at ``supersample``× the resolution and box-filter down (anti-aliasing).
        cull_backfaces: drop faces seen from behind (their vertices clockwise on screen).

    Returns:
        ``MeshRender`` with rgb (C, H, W, 3), alpha and depth (C, H, W, 1), face_index (C, H, W).
    """
    if supersample < 1:
        raise ValueError(f"supersample must be ≥ 1, got {supersample}")
    if vertices.dim() != 2 or vertices.shape[-1] != 3 or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"render_mesh: vertices must be (V, 3) and faces (F, 3), got {tuple(vertices.shape)}, {tuple(faces.shape)}")
    if vertex_colors.shape != vertices.shape:
        raise ValueError(f"render_mesh: vertex_colors has shape {tuple(vertex_colors.shape)}, expected {tuple(vertices.shape)}")
    device, dtype = vertices.device, vertices.dtype
    C, H, W, s = len(cameras), cameras.height, cameras.width, supersample
    fine = cameras.with_resolution(W * s, H * s) if s > 1 else cameras
    faces = faces.to(device=device, dtype=torch.long)
    colors = vertex_colors.to(device=device, dtype=dtype)
    bg = torch.as_tensor(background, dtype=dtype, device=device).expand(C, 3)

    rgb, alpha, depth, face_index = [], [], [], []
    for c in range(C):
        fid, zbuf, bary = _rasterize_one(vertices, faces, fine.viewmats[c].to(device, dtype), fine.Ks[c].to(device, dtype),
                                         W * s, H * s, fine.near, cull_backfaces, config)  # fmt: skip
        covered = fid >= 0  # (Hs·Ws,)
        color = (colors[faces[fid.clamp_min(0)]] * bary[..., None]).sum(1)  # (Hs·Ws, 3)
        color = torch.where(covered[:, None], color, bg[c])
        planes = torch.cat([color, covered[:, None].to(dtype), torch.where(covered, zbuf, 0.0)[:, None]], dim=-1)
        planes = planes.reshape(H, s, W, s, 5).mean(dim=(1, 3))  # box filter (H, W, 5)
        cover = planes[..., 3:4]
        rgb.append(planes[..., :3])
        alpha.append(cover)
        depth.append(torch.where(cover > 0, planes[..., 4:5] / cover.clamp_min(1e-12), 0.0))
        face_index.append(fid.reshape(H, s, W, s)[:, s // 2, :, s // 2])
    return MeshRender(torch.stack(rgb), torch.stack(alpha), torch.stack(depth), torch.stack(face_index))


def _rasterize_one(
    vertices: Tensor, faces: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int, near: float,
    cull_backfaces: bool, config: MeshRasterConfig,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Z-buffer one camera: per pixel (H·W,) face index (−1 none), depth, and (H·W, 3) perspective-correct barycentrics."""
    cam = vertices @ viewmat[:3, :3].T + viewmat[:3, 3]  # (V, 3)
    z = cam[:, 2]
    pix = (cam[:, :2] / z.clamp_min(near)[:, None]) * K.diagonal()[:2] + K[:2, 2]  # (V, 2)
    tri = pix[faces]  # (F, 3, 2)
    tri_z = z[faces]  # (F, 3)
    area = _edge(tri[:, 0], tri[:, 1], tri[:, 2])  # (F,) signed, > 0 = clockwise on screen
    keep = (tri_z > near).all(-1) & (area.abs() > config.min_area_px2)
    if cull_backfaces:
        keep &= area < 0  # counter-clockwise from outside → counter-clockwise on a y-down screen
    lo = torch.ceil(tri.amin(1) - 0.5).clamp_min(0).long()  # first pixel whose centre is ≥ min
    hi = torch.floor(tri.amax(1) - 0.5).long()  # last pixel whose centre is ≤ max
    hi[:, 0].clamp_(max=width - 1), hi[:, 1].clamp_(max=height - 1)
    span = (hi - lo + 1).clamp_min(0) * keep[:, None]  # (F, 2)
    count = span[:, 0] * span[:, 1]

    keys = torch.full((height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=vertices.device)
    face_ids = torch.nonzero(count, as_tuple=True)[0]
    for chunk in _chunks(face_ids, count, config.pairs_per_chunk):
        n = count[chunk]
        owner = chunk.repeat_interleave(n)  # (P,) face of each candidate pixel
        local = torch.arange(owner.numel(), device=owner.device) - (torch.cumsum(n, 0) - n).repeat_interleave(n)
        px = lo[owner, 0] + local % span[owner, 0]
        py = lo[owner, 1] + local // span[owner, 0]
        centre = torch.stack([px, py], dim=-1).to(vertices.dtype) + 0.5
        bary, depth = _perspective_barycentrics(tri[owner], tri_z[owner], area[owner], centre)
        inside = (bary >= 0).all(-1) & (depth > near)
        depth_bits = depth[inside].float().view(torch.int32).long()  # positive floats sort like ints
        packed = (depth_bits << 32) | owner[inside]
        keys.scatter_reduce_(0, (py * width + px)[inside], packed, reduce="amin")
    covered = keys != torch.iinfo(torch.int64).max
    face_index = torch.where(covered, keys & 0xFFFFFFFF, -1)
    # Second pass on the winners only: their barycentrics and depth at full precision.
    pixel = torch.arange(height * width, device=vertices.device)
    centre = torch.stack([pixel % width, pixel // width], dim=-1).to(vertices.dtype) + 0.5
    f = face_index.clamp_min(0)
    bary, depth = _perspective_barycentrics(tri[f], tri_z[f], area[f], centre)
    return face_index, depth, bary


def _edge(a: Tensor, b: Tensor, p: Tensor) -> Tensor:
    """(…,) edge function (b − a) × (p − a): twice the signed area of (a, b, p)."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def _perspective_barycentrics(tri: Tensor, tri_z: Tensor, area: Tensor, point: Tensor) -> tuple[Tensor, Tensor]:
    """Barycentrics (…, 3) of screen ``point`` (…, 2) in screen triangles ``tri`` (…, 3, 2).

    Returns perspective-correct barycentrics (negative entries = outside) and the interpolated
    camera depth 1 / Σ(b_i / z_i), b the screen-space barycentrics.
    """
    screen = torch.stack(
        [_edge(tri[:, 1], tri[:, 2], point), _edge(tri[:, 2], tri[:, 0], point), _edge(tri[:, 0], tri[:, 1], point)],
        dim=-1,
    ) / area[:, None]  # (…, 3) screen-space barycentrics
    weighted = screen / tri_z
    inv_depth = weighted.sum(-1)
    return weighted / inv_depth[:, None], 1.0 / inv_depth


def _chunks(face_ids: Tensor, count: Tensor, budget: int) -> list[Tensor]:
    """Split ``face_ids`` into consecutive runs whose pixel counts sum to about ``budget``."""
    if face_ids.numel() == 0:
        return []
    totals = torch.cumsum(count[face_ids], 0)
    bucket = torch.div(totals - 1, budget, rounding_mode="floor")
    _, sizes = torch.unique_consecutive(bucket, return_counts=True)
    return list(torch.split(face_ids, sizes.tolist()))


__all__ = ["MeshRasterConfig", "MeshRender", "render_mesh"]
