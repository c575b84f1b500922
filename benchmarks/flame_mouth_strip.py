"""The picture strip of docs/expressions.md ("The inside of the mouth", FLAME): the synthetic
FLAME's untrained avatar at neutral and with its jaw opened 0.45 rad (front, −30°, +30°), made
on FLAME's bare skin (as before issue 24) and with the mouth's inside; the last two rows show the
face splats alone, where the bare skin's open lips are a hole through the face.

    python benchmarks/flame_mouth_strip.py --out docs/flame-mouth-strip.png

No FLAME data: the head is ``testing.flame.synthetic_flame_arrays(mouth=True)`` (FLAME's counts
and layout, lips parted by a slit as FLAME's are), rendered as ``tests/test_flame_mouth.py`` does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/flame-mouth-strip.png")
    parser.add_argument("--panel", type=int, default=224, help="panel side, pixels")
    args = parser.parse_args()

    import torch
    from PIL import Image, ImageDraw

    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.testing.flame import synthetic_flame_arrays
    from arc2avatar.testing.photos import photo_avatar

    columns = [("neutral", None, 0.0), ("jaw 0.45, -30°", 0.45, -30.0), ("jaw 0.45, front", 0.45, 0.0),
               ("jaw 0.45, +30°", 0.45, 30.0)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flame = Path(tmp) / "flame.npz"
        np.savez(flame, **synthetic_flame_arrays(seed=0, mouth=True))
        for face_only in (False, True):
            for label, mouth in (("bare skin (before)", False), ("with the inside", True)):
                avatar = photo_avatar(None, None, face_levels=1, flame=flame, flame_mouth=mouth)
                setup = setup_for_avatar(avatar, flame=flame)
                panels = []
                for _, jaw, azimuth in columns:
                    posed = apply_expression(avatar, setup, None, None if jaw is None else {"jaw": [jaw, 0.0, 0.0]})
                    if face_only:
                        posed = Avatar(posed.splats.select(posed.splats.face_mask.nonzero().squeeze(-1)), posed.template)
                    camera = orbit_cameras(3.0, 90.0, torch.tensor([azimuth]), 0.7, args.panel, args.panel,
                                           target=torch.tensor([[0.0, 0.0, -0.1]]))
                    panels.append((posed.render_cameras(camera, (0.0, 1.0, 0.0))[0].numpy() * 255).round().astype(np.uint8))
                rows.append((label + (", face splats only" if face_only else ""), np.concatenate(panels, axis=1)))
    sheet = Image.fromarray(np.concatenate([row for _, row in rows]))
    draw = ImageDraw.Draw(sheet)
    for i, (label, _) in enumerate(rows):
        draw.text((4, i * args.panel + 4), label, fill=(0, 0, 0))
    for j, (label, _, _) in enumerate(columns):
        draw.text((j * args.panel + 4, args.panel - 14), label, fill=(0, 0, 0))
    sheet.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
