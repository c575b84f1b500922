"""`arc2avatar embed PHOTO... -o id.npy`: the identity embedding of the person in the photos.

Thin layer over ``arc2avatar.identity.embed_photos`` and
``arc2avatar.weights.resolver.resolve_weights``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "embed": "photo(s) -> 512-d ArcFace identity vector (.npy)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from arc2avatar.identity.detect import ScrfdConfig

    parser = subparsers.add_parser(
        "embed", help=COMMANDS["embed"],
        description="Detect the largest face in each photo, align it, embed it with ArcFace, "
                    "and write the normalised mean embedding (512 float32) as a .npy file.")
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO",
                        help="one or more photos of the same person (JPEG/PNG/WebP...)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="where to write the (512,) float32 .npy vector")
    parser.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="weights folder (default: $ARC2AVATAR_WEIGHTS or "
                             "~/.cache/arc2avatar/weights)")
    parser.add_argument("--det-size", type=int, default=ScrfdConfig.det_size,
                        help="face detector input size in pixels (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from arc2avatar._io import atomic_write_bytes
    from arc2avatar.identity import embed_photos
    from arc2avatar.identity.image import check_face_photos
    from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

    check_face_photos(args.photos)
    weights = resolve_weights(WeightsConfig(root=args.weights), {"identity", "detector"})
    identity = embed_photos(args.photos, weights, det_size=args.det_size)
    for photo in identity.per_photo:
        if photo.chosen_box is None:
            print(f"{photo.path}: no face (skipped)")
        else:
            box = ", ".join(f"{v:.0f}" for v in photo.chosen_box)
            note = f" (using the largest of {photo.faces_found})" if photo.faces_found > 1 else ""
            print(f"{photo.path}: {photo.faces_found} face(s){note}, box [{box}], "
                  f"score {photo.score:.2f}")
    buffer = io.BytesIO()
    np.save(buffer, identity.vector.astype(np.float32))
    atomic_write_bytes(args.output, buffer.getvalue())
    print(f"wrote {args.output} (512-d identity from {len(identity.photos_used)} photo(s))")
    return 0
