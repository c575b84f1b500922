"""The picture strip of docs/expressions.md: one row per avatar, one column per expression.

    python benchmarks/expressions_strip.py --out docs/expressions-strip.png

Rows: the demo head (the built-in template's colours), the astronaut's and Grace Hopper's
untrained photo-textured avatars (``testing.photos.photo_avatar``, dlib's five points,
``face_levels=1``); columns: neutral, smile 1, jaw_open 1, blink_left 1 (the subject's left eye:
the image's right), brow_raise 1, jaw_open 1 + smile 1. Each panel is a 512² frontal render
(fovy 0.7, r = ``--radius``), cropped to the face.
"""

from __future__ import annotations

import argparse

import numpy as np

COLUMNS = (("neutral", {}), ("smile 1", {"smile": 1.0}), ("jaw_open 1", {"jaw_open": 1.0}),
           ("blink_left 1", {"blink_left": 1.0}), ("brow_raise 1", {"brow_raise": 1.0}),
           ("jaw_open 1 + smile 1", {"jaw_open": 1.0, "smile": 1.0}))


def render_rows(radius: float, size: int, crop: tuple[int, int, int, int]) -> dict[str, list[np.ndarray]]:
    """{row name: [panel (H, W, 3) uint8 per column]}."""
    import torch

    from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.photos import astronaut_photo, grace_hopper_photo, photo_avatar

    detector = DlibFaceDetector()
    cameras = orbit_cameras(radius, 90.0, torch.tensor([0.0]), 0.7, size, size, target=torch.tensor([[0.0, 0.0, 0.12]]))
    avatars = {"demo head": photo_avatar(None, None, face_levels=1)}
    for name, photo in (("astronaut", astronaut_photo()), ("Grace Hopper", grace_hopper_photo())):
        face = detector.largest_face(photo)  # placed as the photo demo places it (oracle.eye_shifts)
        avatars[name] = photo_avatar(photo, face.keypoints, face_levels=1, landmarks=detector.landmarks_68(photo, face.box))
    left, top, right, bottom = crop
    rows = {}
    for name, avatar in avatars.items():
        setup = setup_for_avatar(avatar)
        rows[name] = [(apply_expression(avatar, setup, weights).render_cameras(cameras)[0].numpy() * 255)
                      .round().astype(np.uint8)[top:bottom, left:right] for _, weights in COLUMNS]
    return rows


def compose(rows: dict[str, list[np.ndarray]], labels: list[str]):
    """One image: the panels in a grid, the column names on the first row, the row names on the first column."""
    from PIL import Image, ImageDraw

    height, width = next(iter(rows.values()))[0].shape[:2]
    sheet = Image.new("RGB", (width * len(labels), height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, panels) in enumerate(rows.items()):
        for c, panel in enumerate(panels):
            sheet.paste(Image.fromarray(panel), (c * width, r * height))
        draw.text((4, r * height + 4), name, fill=(0, 0, 0))
    for c, label in enumerate(labels):
        draw.text((c * width + width - 7 * len(label) - 4, 4), label, fill=(0, 0, 0))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/expressions-strip.png")
    parser.add_argument("--radius", type=float, default=3.8, help="camera distance, world units")
    parser.add_argument("--panels-out", default=None, help="also save the panels (.npz), e.g. for a before/after strip")
    args = parser.parse_args()
    rows = render_rows(args.radius, 512, (146, 128, 366, 446))
    compose(rows, [label for label, _ in COLUMNS]).save(args.out)
    if args.panels_out:
        np.savez_compressed(args.panels_out, **{name: np.stack(panels) for name, panels in rows.items()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
