"""Render a contact sheet of the built-in head template for a person to look at.

    python benchmarks/show_builtin_head.py --out DIR

writes ``DIR/builtin_head_sheet.png``: neutral at azimuths 0/45/90/180, a view from above,
then ``jaw_open``, ``smile``, ``blink_left`` and the other expressions at 1.0 (frontal or 3/4).
Cameras come from ``arc2avatar.cameras.orbit_cameras`` (so the sheet also shows the world
convention: azimuth 0 sees the face). The renderer is a few lines of painter's-algorithm
flat shading with Pillow (no GPU, no extra dependency): triangles sorted far to near,
back faces culled, Lambert light from the camera plus ambient, drawn at 2× and downsampled.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from arc2avatar._io import atomic_path
from arc2avatar.cameras import orbit_cameras, project_points
from arc2avatar.head.builtin import builtin_head
from arc2avatar.head.model import HeadModel


@dataclass(frozen=True)
class SheetConfig:
    """Sheet layout and camera (world units, pixels)."""

    tile_px: int = 320
    supersample: int = 2
    radius: float = 5.5
    fovy: float = 0.42
    ambient: float = 0.35
    background: tuple[int, int, int] = (255, 255, 255)


# (label, expression, weight, azimuth_deg, polar_deg)
VIEWS: list[tuple[str, str | None, float, float, float]] = [
    ("az 0", None, 0.0, 0.0, 90.0),
    ("az 45", None, 0.0, 45.0, 90.0),
    ("az 90", None, 0.0, 90.0, 90.0),
    ("az 180", None, 0.0, 180.0, 90.0),
    ("az -60 from above", None, 0.0, -60.0, 45.0),
    ("az 30 from below", None, 0.0, 30.0, 120.0),
    ("jaw_open", "jaw_open", 1.0, 0.0, 90.0),
    ("jaw_open az 60", "jaw_open", 1.0, 60.0, 90.0),
    ("smile", "smile", 1.0, 0.0, 90.0),
    ("blink_left", "blink_left", 1.0, 0.0, 90.0),
    ("brow_raise", "brow_raise", 1.0, 0.0, 90.0),
    ("frown", "frown", 1.0, 0.0, 90.0),
    ("pucker az 70", "pucker", 1.0, 70.0, 90.0),
    ("cheek_puff", "cheek_puff", 1.0, 0.0, 90.0),
    ("mouth_left", "mouth_left", 1.0, 0.0, 90.0),
]


def render_tile(head: HeadModel, vertices: torch.Tensor, azimuth: float, polar: float, cfg: SheetConfig) -> Image.Image:
    """One flat-shaded view of ``vertices`` (V, 3) with the head's faces and colours."""
    size = cfg.tile_px * cfg.supersample
    cams = orbit_cameras(cfg.radius, polar, azimuth, cfg.fovy, size, size)
    pix, depth = project_points(cams, vertices)
    pix_v2, depth_v = pix[0].numpy(), depth[0].numpy()
    faces = head.faces.numpy()
    verts = vertices.numpy().astype(np.float64)
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    to_camera = cams.centres[0].numpy()[None, :] - tri.mean(axis=1)
    to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
    facing = np.einsum("fc,fc->f", normals, to_camera)
    colours = head.vertex_colors.numpy()[faces].mean(axis=1)
    shade = cfg.ambient + (1.0 - cfg.ambient) * np.clip(facing, 0.0, 1.0)
    rgb = np.clip(colours * shade[:, None] * 255.0, 0, 255).astype(np.uint8)
    order = np.argsort(-depth_v[faces].mean(axis=1))
    image = Image.new("RGB", (size, size), cfg.background)
    draw = ImageDraw.Draw(image)
    for f in order:
        if facing[f] <= 0.0:
            continue
        draw.polygon([tuple(p) for p in pix_v2[faces[f]].tolist()], fill=tuple(rgb[f].tolist()))
    return image.resize((cfg.tile_px, cfg.tile_px), Image.LANCZOS)


def render_sheet(head: HeadModel, cfg: SheetConfig = SheetConfig(), columns: int = 5) -> Image.Image:
    """All :data:`VIEWS` tiled into one image, labelled."""
    tiles = []
    for label, expression, weight, azimuth, polar in VIEWS:
        verts = head.deform({expression: weight} if expression else None)
        tile = render_tile(head, verts, azimuth, polar, cfg)
        ImageDraw.Draw(tile).text((6, 4), label, fill=(0, 0, 0))
        tiles.append(tile)
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cfg.tile_px, rows * cfg.tile_px), cfg.background)
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * cfg.tile_px, (i // columns) * cfg.tile_px))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for builtin_head_sheet.png")
    args = parser.parse_args(argv)
    sheet = render_sheet(builtin_head())
    target = args.out / "builtin_head_sheet.png"
    with atomic_path(target) as tmp:
        sheet.save(tmp, format="PNG")
    print(target)


if __name__ == "__main__":
    main()
