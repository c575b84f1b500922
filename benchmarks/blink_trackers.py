"""What three independent face trackers read of a blink (docs/expressions.md, issue 24): the eye
aspect ratio (``evaluate.face_measures``) of each eye, from dlib's 68 points, from face-api's
(``testing.faceapi``, headless Chromium) and from MediaPipe Face Mesh's six points per eye
(``testing.mediapipe_mesh``, a subprocess from .deps/mediapipe or ``ARC2AVATAR_MEDIAPIPE_PATH``,
which ``./setup.sh test`` fills), on 512² frontal renders (fovy 0.7, r = 3.0, as
tests/test_expression_tracker.py) of the demo head and the astronaut's and Grace Hopper's
untrained photo avatars: open, blink_left = 1, blink_right = 1, both; and on the astronaut's own
photo, open and with one eye or both painted shut (``paint_eye_shut``), for each tracker's scale.

    python benchmarks/blink_trackers.py --tarball vladmandic-face-api-1.7.15.tgz \\
        tensorflow-tfjs-backend-wasm-4.22.0.tgz [--out-dir /tmp/blinks]

Prints a Markdown table (image-left / image-right EAR; the subject's left eye is the image's
right). ``--out-dir`` keeps the images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

STATES = (("open", {}), ("blink_left 1", {"blink_left": 1.0}), ("blink_right 1", {"blink_right": 1.0}),
          ("both 1", {"blink_left": 1.0, "blink_right": 1.0}))
LASH_RGB = (40, 25, 20)  # the painted lash line


def paint_eye_shut(image: np.ndarray, eye_points: np.ndarray) -> np.ndarray:
    """``image`` with the eye of the six dlib points ``eye_points`` painted shut: its opening
    (dilated a little) replaced by the skin 1.6 eye-heights above it, feathered, and a 2-pixel
    dark lash line from corner to corner through a quarter of the way up from the lower lid."""
    import cv2

    out = image.copy()
    points = eye_points.astype(np.float32)
    height = float(points[:, 1].max() - points[:, 1].min())
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [points.round().astype(np.int32)], 255)
    mask = cv2.dilate(mask, np.ones((7, 7), np.uint8))
    above = np.roll(image, int(round(1.6 * height)), axis=0)
    weight = cv2.GaussianBlur(mask, (7, 7), 0)[..., None] / 255.0
    out = (out * (1.0 - weight) + above * weight).astype(np.uint8)
    p1, p2, p3, p4, p5, p6 = points
    lift = np.array([0.0, 0.25 * height], dtype=np.float32)
    line = np.array([p1, 0.5 * (p6 + p2) + lift, 0.5 * (p5 + p3) + lift, p4])
    cv2.polylines(out, [line.round().astype(np.int32)], False, LASH_RGB, 2, cv2.LINE_AA)
    return out


def images_to_measure() -> dict[str, np.ndarray]:
    """{name: (H, W, 3) uint8}: the renders and the photos."""
    import torch

    from arc2avatar.avatar.rig import apply_expression, setup_for_avatar
    from arc2avatar.evaluate.face_measures import EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.photos import astronaut_photo, grace_hopper_photo, photo_avatar, tracker_cameras

    detector = DlibFaceDetector()
    cameras = tracker_cameras()
    photo = np.ascontiguousarray(astronaut_photo())
    avatars = {"demo head": photo_avatar(None, None, face_levels=1)}
    for name, image in (("astronaut", photo), ("Grace Hopper", grace_hopper_photo())):
        face = detector.largest_face(image)  # placed as the photo demo places it (oracle.eye_shifts)
        avatars[name] = photo_avatar(image, face.keypoints, face_levels=1, landmarks=detector.landmarks_68(image, face.box))
    images = {}
    for name, avatar in avatars.items():
        setup = setup_for_avatar(avatar)
        for state, weights in STATES:
            render = apply_expression(avatar, setup, weights).render_cameras(cameras, (1.0, 1.0, 1.0))
            images[f"{name}, {state}"] = (render[0] * 255).round().to(torch.uint8).numpy()
    points = detector.landmarks_68(photo, detector.largest_face(photo).box)
    left_shut = paint_eye_shut(photo, points[list(EYE_IMAGE_RIGHT)])
    images["astronaut's photo"] = photo
    images["photo, left eye painted shut"] = left_shut
    images["photo, right eye painted shut"] = paint_eye_shut(photo, points[list(EYE_IMAGE_LEFT)])
    images["photo, both painted shut"] = paint_eye_shut(left_shut, points[list(EYE_IMAGE_LEFT)])
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tarball", required=True, nargs="+",
                        help="npm pack @vladmandic/face-api@1.7.15 @tensorflow/tfjs-backend-wasm@4.22.0")
    parser.add_argument("--out-dir", type=Path, default=None, help="keep the measured images here (PNG)")
    args = parser.parse_args(argv)

    from headless_chromium import headless_chromium
    from PIL import Image

    from arc2avatar.evaluate.face_measures import measure_face, measures_from_landmarks
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.faceapi import faceapi_landmarks
    from arc2avatar.testing.mediapipe_mesh import mediapipe_face_mesh, mesh_eye_aspect_ratios
    from arc2avatar.weights.webcam import webcam_assets_from_tarball

    root = Path(tempfile.mkdtemp(prefix="blink-trackers-"))
    for tarball in args.tarball:
        webcam_assets_from_tarball(tarball, root)
    images = images_to_measure()
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images.values()):
            Image.fromarray(image).save(args.out_dir / f"{index:02d}.png")
    with headless_chromium("benchmarks/blink_trackers.py") as driver:
        face_api = faceapi_landmarks(driver, list(images.values()), root)
    mesh = mediapipe_face_mesh(list(images.values()))
    detector = DlibFaceDetector()
    print("| image | dlib EAR (image-left / right) | face-api EAR (image-left / right) | MediaPipe EAR (image-left / right) |")
    print("|---|---|---|---|")
    for (name, image), points, mesh_points in zip(images.items(), face_api, mesh):
        dlib = measure_face(image, detector)
        api = "no face" if points is None else "{:.3f} / {:.3f}".format(
            measures_from_landmarks(points).eye_aspect_ratio_image_left,
            measures_from_landmarks(points).eye_aspect_ratio_image_right)
        mediapipe = "no face" if mesh_points is None else "{:.3f} / {:.3f}".format(*mesh_eye_aspect_ratios(mesh_points))
        print(f"| {name} | {dlib.eye_aspect_ratio_image_left:.3f} / {dlib.eye_aspect_ratio_image_right:.3f} | {api} "
              f"| {mediapipe} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
