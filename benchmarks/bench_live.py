"""Speed of the live webcam page (docs/live.md, docs/benchmarks.md): tracking + fitting frames/s in
headless Chromium, camera-frame → applied-weights latency, and the avatar's redraw rate.

A fake camera (Chromium's ``--use-file-for-fake-video-capture``) plays the closed loop's known
performance at ``--camera-fps`` (640×480, the 320² render padded); the page tracks and fits as
fast as it can, dropping camera frames it has no time for. Reported: the page's own figures
(``arc2avatarLive.stats()``: frames fitted per second, median latency from the frame's arrival in
the page (its capture time where the browser gives one on the page's clock) to the weights applied
to the avatar, median tracking and fitting times) and the viewer's
frames drawn per second while it follows. Headless Chromium renders WebGL in software
(SwiftShader) on the CPU, so the redraw rate measures the CPU, not a GPU, and it competes with the
tracker for the same cores.

    python benchmarks/bench_live.py --tarball vladmandic-face-api-1.7.15.tgz \\
        tensorflow-tfjs-backend-wasm-4.22.0.tgz --seconds 30 --out live.json
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tarball", required=True, nargs="+",
                        help="npm pack @vladmandic/face-api@1.7.15 @tensorflow/tfjs-backend-wasm@4.22.0")
    parser.add_argument("--backend", default="wasm", choices=("wasm", "webgl"), help="TensorFlow.js backend")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure after the neutral")
    parser.add_argument("--camera-fps", type=int, default=30)
    parser.add_argument("--face-levels", type=int, default=1, help="the avatar's face subdivision (its splat count)")
    parser.add_argument("--no-redraw", action="store_true",
                        help="the avatar is not redrawn (its weights and pose are still set): tracking + fitting "
                             "alone, without software WebGL's redraws competing for the cores")
    parser.add_argument("--register-tolerance", type=float, default=None,
                        help="LiveConfig.register_tolerance for this run (default: the page's; 1e9: never register)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from headless_chromium import headless_chromium

    from arc2avatar.drive.live import LiveConfig, write_live_folder
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.testing.drive import KnownPerformance, known_sequence, render_textured_driver
    from arc2avatar.testing.live import write_y4m
    from arc2avatar.testing.photos import astronaut_photo, photo_avatar
    from arc2avatar.weights.webcam import webcam_assets_from_tarball

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    photo = astronaut_photo()
    keypoints = DlibFaceDetector().largest_face(photo).keypoints
    avatar = photo_avatar(photo, keypoints, face_levels=args.face_levels)
    avatar.save(work / "avatar")
    for tarball in args.tarball:
        assets = webcam_assets_from_tarball(tarball, work / "weights")
    page = write_live_folder(work / "avatar", work / "site", assets=assets, config=LiveConfig(backend=args.backend))
    sequence = known_sequence(KnownPerformance())
    frames = render_textured_driver(photo, keypoints, sequence, 320, 3.2)
    padded = np.full((len(frames), 480, 640, 3), 255, dtype=np.uint8)
    padded[:, 80:400, 160:480] = frames
    camera = write_y4m(np.concatenate([np.repeat(padded[:1], args.camera_fps, axis=0), padded]), work / "camera.y4m",
                       args.camera_fps)
    handler = functools.partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                                     {"log_message": lambda *a: None}), directory=str(page.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flags = ("--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}",
             "--use-fake-ui-for-media-stream")
    try:
        with headless_chromium("bench_live", window=(960, 640), flags=flags) as driver:
            driver.get(f"http://localhost:{server.server_address[1]}/{page.name}")
            while not driver.execute_script("return window.viewerReady && window.arc2avatarLive.ready"):
                time.sleep(0.2)
            if args.no_redraw:
                driver.execute_script("const v = window.arc2avatarViewer; v.setWeights = () => {}; v.setHeadPose = () => { queueMicrotask(() => { v.frame += 1; }); };"
                                  " window.arc2avatarLive.tables.track.slow_redraw_ms = Infinity;")  # no redraw to wait for
            if args.register_tolerance is not None:
                driver.execute_script("window.arc2avatarLive.tables.track.register_tolerance = arguments[0];",
                                      args.register_tolerance)
            driver.find_element("id", "live-camera").click()
            while driver.execute_script("return window.arc2avatarLive.state") != "live":
                time.sleep(0.2)
            backend = driver.execute_script("return window.arc2avatarLive.backend")
            frame0, t0 = driver.execute_script("return window.arc2avatarViewer.frame"), time.monotonic()
            time.sleep(args.seconds)
            frame1, t1 = driver.execute_script("return window.arc2avatarViewer.frame"), time.monotonic()
            stats = driver.execute_script("return window.arc2avatarLive.stats()")
            driver_tolerance = driver.execute_script("return window.arc2avatarLive.tables.track.register_tolerance")
            fitted = driver.execute_script("return window.arc2avatarLive.history.length")
    finally:
        server.shutdown()
    result = {
        "tracking_fitting_fps": stats["fps"], "latency_ms_median": stats["latency_ms"],
        "tracking_ms_median": stats["track_ms"], "fitting_ms_median": stats["fit_ms"],
        "frames_fitted": fitted, "viewer_frames_per_s": (frame1 - frame0) / (t1 - t0),
        "splats": int(avatar.splats.num_splats), "camera_fps": args.camera_fps, "seconds": args.seconds,
        "frame_source": stats.get("source"), "wait_ms_median": stats.get("wait_ms"), "read_ms_median": stats.get("read_ms"),
        "net_ms_median": stats.get("net_ms"), "overlay_ms_median": stats.get("overlay_ms"),
        "frames_tracked_from_box": stats.get("tracked"), "crops_registered": stats.get("registered"),
        "register_tolerance": driver_tolerance,
        "backend": backend, "avatar_redrawn": not args.no_redraw, "load_average_before": load_before, "load_average": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
