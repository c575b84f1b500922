"""What two independent face trackers read of a made avatar's expressions (docs/expressions.md,
issue 24): the avatar folders given (``arc2avatar demo --photo P -o OUT`` or ``create``) are
rendered frontally at 512² (fovy 0.7, r = 3.0, looking at z = 0.12, as
tests/test_expression_tracker.py) neutral and at smile, jaw_open (0.5, 0.75, 1), blink_left,
blink_right and brow_raise = 1, and measured with dlib's 68 points (``evaluate.face_measures``) and
MediaPipe Face Mesh (``testing.mediapipe_mesh``; ``./setup.sh test`` installs it).

    python benchmarks/trained_expressions.py OUT [OUT ...] [--strip strip.png]

Prints, per folder: the mouth width at smile = 1 over neutral and how far both corners rose (px),
dlib's mouth aspect ratio at jaw_open 0 / 0.5 / 0.75 / 1, MediaPipe's eye aspect ratios (image-left
/ image-right) open and at each blink with the open eye's change, and the brow-to-eye distance at
brow_raise = 1 over neutral. ``--strip`` writes the renders side by side, one row per folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CASES = (("neutral", {}), ("smile", {"smile": 1.0}), ("jaw 0.5", {"jaw_open": 0.5}), ("jaw 0.75", {"jaw_open": 0.75}),
         ("jaw 1", {"jaw_open": 1.0}), ("blink_left", {"blink_left": 1.0}), ("blink_right", {"blink_right": 1.0}),
         ("brow_raise", {"brow_raise": 1.0}))


def renders(folder: Path) -> list[np.ndarray]:
    """(H, W, 3) uint8 frontal renders (``testing.photos.tracker_cameras``) of the avatar in
    ``folder`` at each of ``CASES``."""
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.testing.photos import expression_renders

    avatar = Avatar.load(folder / "avatar" if (folder / "avatar").is_dir() else folder)
    return [images[0] for images in expression_renders(avatar, [weights for _, weights in CASES])]


def report(name: str, images: list[np.ndarray]) -> str:
    """The figures of one folder's renders as text lines."""
    from arc2avatar.evaluate.face_measures import measure_face
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.mediapipe_mesh import (mediapipe_face_mesh, mesh_brow_eye_distance, mesh_eye_aspect_ratios,
                                                   mesh_mouth_corners)

    detector = DlibFaceDetector()
    dlib = dict(zip([label for label, _ in CASES], (measure_face(image, detector) for image in images)))
    mesh = dict(zip([label for label, _ in CASES], mediapipe_face_mesh(images)))
    (width, corners), (width0, corners0) = mesh_mouth_corners(mesh["smile"]), mesh_mouth_corners(mesh["neutral"])
    ears = {label: np.round(mesh_eye_aspect_ratios(mesh[label]), 3) for label in ("neutral", "blink_left", "blink_right")}
    open_eyes = ears["neutral"]
    return "\n".join([
        f"{name}",
        f"  smile = 1: width MediaPipe {width / width0 - 1:+.1%} (corners up {corners0[0] - corners[0]:.1f}, "
        f"{corners0[1] - corners[1]:.1f} px), dlib {dlib['smile'].mouth_width / dlib['neutral'].mouth_width - 1:+.1%}",
        "  dlib MAR, jaw_open 0 / 0.5 / 0.75 / 1: " + " / ".join(
            f"{dlib[label].mouth_aspect_ratio:.3f}" for label in ("neutral", "jaw 0.5", "jaw 0.75", "jaw 1")),
        f"  MediaPipe EAR open {open_eyes.tolist()}; blink_left {ears['blink_left'].tolist()} (open eye "
        f"{ears['blink_left'][0] / open_eyes[0] - 1:+.1%}); blink_right {ears['blink_right'].tolist()} (open eye "
        f"{ears['blink_right'][1] / open_eyes[1] - 1:+.1%})",
        f"  brow_raise = 1: brow-to-eye MediaPipe {mesh_brow_eye_distance(mesh['brow_raise']) / mesh_brow_eye_distance(mesh['neutral']) - 1:+.1%}, "
        f"dlib {dlib['brow_raise'].brow_eye_distance / dlib['neutral'].brow_eye_distance - 1:+.1%}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="avatar folders (OUT of demo/create, or OUT/avatar)")
    parser.add_argument("--strip", type=Path, help="write the renders here, one row per folder")
    args = parser.parse_args()
    rows = []
    for folder in args.folders:
        images = renders(folder)
        print(report(str(folder), images), flush=True)
        rows.append(np.concatenate([image[80:470, 96:416] for image in images], axis=1))
    if args.strip:
        import imageio.v3 as iio

        iio.imwrite(args.strip, np.concatenate(rows, axis=0))
        print(f"wrote {args.strip}")


if __name__ == "__main__":
    main()
