"""The picture strip of docs/driving.md: driver frame | tracked landmarks | driven avatar.

    python benchmarks/drive_strip.py --out docs/driving-strip.png

The driver is the closed loop's performance (``testing.drive``) on the astronaut's photo-textured
head; the driven avatar is a different person's (Grace Hopper's untrained photo-textured splat
avatar), driven by ``arc2avatar.drive`` with the input shown side by side.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/driving-strip.png")
    parser.add_argument("--frames", default="0,14,21,30,48", help="frames shown, one row each")
    parser.add_argument("--panel", type=int, default=224, help="panel side, pixels")
    args = parser.parse_args()

    from PIL import Image

    from arc2avatar.drive.run import DriveConfig, drive
    from arc2avatar.testing.drive import known_sequence, render_textured_driver
    from arc2avatar.drive.video import probe_video, read_frames
    from arc2avatar.testing.photos import (
        astronaut_photo,
        grace_hopper_photo,
        photo_avatar,
    )
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.avatar.media import write_video

    detector = DlibFaceDetector()
    astronaut, hopper = astronaut_photo(), grace_hopper_photo()
    sequence = known_sequence()
    frames = render_textured_driver(astronaut, detector.largest_face(astronaut).keypoints, sequence, 320, 3.2)
    rows = [int(i) for i in args.frames.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write_video(frames, folder / "driver.mp4", fps=int(sequence.fps), quality=9)
        photo_avatar(hopper, detector.largest_face(hopper).keypoints, face_levels=1).save(folder / "hopper")
        drive(folder / "hopper", folder / "driver.mp4", folder / "driven.mp4", side_by_side=True,
              config=DriveConfig(size=args.panel), progress=False)
        driven = list(read_frames(probe_video(folder / "driven.mp4")))
    p = args.panel
    strip = []
    for index in rows:
        raw = np.asarray(Image.fromarray(frames[index]).resize((p, p), Image.BILINEAR))
        strip.append(np.concatenate([raw, driven[index][:, :p], driven[index][:, p:2 * p]], axis=1))
    Image.fromarray(np.concatenate(strip, axis=0)).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
