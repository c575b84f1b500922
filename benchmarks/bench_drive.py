"""Speed of ``arc2avatar drive`` (issue 16): tracking + fitting frames/s at 640×480 and rendering
frames/s of the driven avatar at 512², as JSON.

    python benchmarks/bench_drive.py --out drive.json                  # CPU; CUDA render if available
    python benchmarks/bench_drive.py --out drive.json --frames 96 --device cuda

The driver is the closed loop's performance (``testing.drive``: the astronaut photo-textured head,
expressions, a ±20° turn and a nod) rendered at 480² and padded to 640×480, encoded as MP4. Timed:
decoding, tracking (dlib) and fitting exactly as ``drive`` runs them (``drive.run.track_video`` +
``FrameFitter``), then posing (``FaceRig`` + ``avatar.pose``) and rasterising the photo-textured
splat avatar (``--face-levels``; the demo's template) from the frontal camera at ``--size``.
Rendering uses gsplat on CUDA when it is installed, else our PyTorch rasteriser.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--frames", type=int, default=64, help="frames of the driver video")
    parser.add_argument("--render-frames", type=int, default=32, help="frames rendered for the render figure")
    parser.add_argument("--size", type=int, default=512, help="render size, pixels")
    parser.add_argument("--face-levels", type=int, default=1, help="template face subdivision of the avatar")
    parser.add_argument("--device", default="auto", help="render device: auto, cpu or cuda")
    parser.add_argument("--render-only", action="store_true",
                        help="skip the video, tracking and fitting (no dlib or ffmpeg needed, e.g. on a GPU "
                             "machine): render the known sequence's own weights and head turns")
    args = parser.parse_args()

    from arc2avatar.avatar.pose import HeadPose, pose_splats
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.drive.fit import DriveCamera, FitConfig, FrameFitter, landmark_model, merge_halves
    from arc2avatar.drive.landmarks import landmark_residuals, template_landmarks
    from arc2avatar.drive.run import track_video
    from arc2avatar.testing.drive import (
        KnownPerformance,
        known_sequence,
        render_textured_driver,
    )
    from arc2avatar.drive.track import TrackConfig
    from arc2avatar.drive.video import probe_video
    from arc2avatar.testing.photos import astronaut_photo, photo_avatar
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.avatar.rig import FaceRig, setup_for_avatar
    from arc2avatar.avatar.media import write_video
    from arc2avatar.avatar.model import Avatar

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    photo = astronaut_photo()
    sequence = known_sequence(KnownPerformance(frames=args.frames))
    if args.render_only:
        render_known(args, device, photo, sequence)
        return
    keypoints = DlibFaceDetector().largest_face(photo).keypoints
    square = render_textured_driver(photo, keypoints, sequence, 480, radius=3.2)
    frames = np.pad(square, ((0, 0), (0, 0), (80, 80), (0, 0)), constant_values=255)  # (T, 480, 640, 3)
    result: dict = {"device_render": str(device), "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "driver.mp4"
        write_video(frames, video, fps=int(sequence.fps), quality=8)
        info = probe_video(video)
        cpu_start = time.process_time()
        tracked, decode_s, track_s = track_video(info, 1.0, TrackConfig())
        track_cpu_s = time.process_time() - cpu_start
    avatar = photo_avatar(photo, keypoints, face_levels=args.face_levels)
    setup = setup_for_avatar(avatar)
    head = setup.upsampled.head
    points, vertex_index = template_landmarks(head)
    config = FitConfig()
    fitter = FrameFitter(landmark_model(head, points, vertex_index, config.expressions, landmark_residuals(),
                                        config.agreeing_halves, config.half_blend),
                         DriveCamera(info.size[0], info.size[1], config), config)
    start, cpu_start = time.perf_counter(), time.process_time()
    fitter.set_neutral(tracked[0].landmarks)
    fitted = [fitter.fit(t.landmarks) for t in tracked if t.landmarks is not None]
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    names, fitted_weights = merge_halves(fitter.model.names, np.stack([f.weights for f in fitted]))
    result["fit_fps_flame"] = flame_fit_fps(tracked, info.size)
    count = len(tracked)
    result.update({
        "video_size": list(info.size), "frames": count, "frames_without_face": count - len(fitted),
        "decode_fps": count / decode_s, "track_fps": count / track_s, "fit_fps": count / fit_s,
        "track_fit_fps": count / (track_s + fit_s), "decode_track_fit_fps": count / (decode_s + track_s + fit_s),
        # CPU time of this process (ffmpeg's decoding runs in its own process): the figure an idle core gives
        "track_fit_fps_per_cpu_second": count / (track_cpu_s + fit_cpu_s),
    })

    rig = FaceRig(avatar.splats.to(device), setup)
    camera = orbit_cameras(4.5, 90.0, 0.0, 0.7, args.size, args.size).to(device)
    pose_s = raster_s = 0.0
    render_cpu_start = time.process_time()
    n = min(args.render_frames, len(fitted))
    for index in range(-2, n):  # two warm-up frames
        expression = dict(zip(names, fitted_weights[max(index, 0)].tolist()))  # as ``drive`` poses the rig
        head_pose = HeadPose(yaw_deg=float(sequence.head_pose[max(index, 0), 0]))
        image, dt_pose, dt_raster = timed_frame(lambda: pose_splats(rig.pose(expression), head_pose),
                                                lambda splats: Avatar(splats, avatar.template).render_cameras(camera), device)
        if index >= 0:
            pose_s, raster_s = pose_s + dt_pose, raster_s + dt_raster
    result.update({
        "render_size": args.size, "splats": int(avatar.splats.means.shape[0]), "render_frames": n,
        "pose_fps": n / pose_s, "raster_fps": n / raster_s, "render_fps": n / (pose_s + raster_s),
        "render_fps_per_cpu_second": (n + 2) / (time.process_time() - render_cpu_start) if device.type == "cpu" else None,
        "image_mean": float(image.mean()), "load_average_after": list(os.getloadavg()),
    })
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def flame_fit_fps(tracked, size: tuple[int, int]) -> float:
    """Frames/s of fitting the same landmarks on a FLAME head (the synthetic one, ``testing.flame``:
    FLAME's counts; 10 coefficients + the jaw, the built-in table carried onto it)."""
    from arc2avatar.drive.fit import DriveCamera, FitConfig, FrameFitter
    from arc2avatar.drive.flame import flame_landmark_model
    from arc2avatar.drive.landmarks import landmark_residuals
    from arc2avatar.testing.flame import synthetic_flame_head

    config = FitConfig()
    model = flame_landmark_model(synthetic_flame_head(seed=0), None, residual_px=landmark_residuals())
    fitter = FrameFitter(model, DriveCamera(size[0], size[1], config), config)
    landmarks = [t.landmarks for t in tracked if t.landmarks is not None]
    start = time.perf_counter()
    fitter.set_neutral(landmarks[0])
    for frame in landmarks:
        fitter.fit(frame)
    return len(landmarks) / (time.perf_counter() - start)


def timed_frame(pose, render, device: torch.device) -> tuple[torch.Tensor, float, float]:
    """One driven frame: (image, seconds posing, seconds rasterising), the GPU synchronised between."""
    t0 = time.perf_counter()
    splats = pose()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    image = render(splats)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return image, t1 - t0, time.perf_counter() - t1


def render_known(args: argparse.Namespace, device: torch.device, photo: np.ndarray, sequence) -> None:
    """Frames/s of posing (face rig + head pose) and rasterising the known performance at ``--size``."""
    from arc2avatar.avatar.model import Avatar
    from arc2avatar.avatar.pose import HeadPose, pose_splats
    from arc2avatar.avatar.rig import FaceRig, setup_for_avatar
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.testing.photos import photo_avatar

    avatar = photo_avatar(photo, None, face_levels=args.face_levels)
    setup = setup_for_avatar(avatar)
    rig = FaceRig(avatar.splats.to(device), setup)
    camera = orbit_cameras(4.5, 90.0, 0.0, 0.7, args.size, args.size).to(device)
    pose_s = raster_s = 0.0
    n = min(args.render_frames, sequence.num_frames)
    for index in range(-2, n):  # two warm-up frames
        frame = max(index, 0)
        image, dt_pose, dt_raster = timed_frame(
            lambda: pose_splats(rig.pose(sequence.frame(frame)), HeadPose.from_vector(sequence.head_pose[frame])),
            lambda splats: Avatar(splats, avatar.template).render_cameras(camera), device)
        if index >= 0:
            pose_s, raster_s = pose_s + dt_pose, raster_s + dt_raster
    result = {"device_render": str(device), "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "render_size": args.size, "splats": int(avatar.splats.means.shape[0]), "render_frames": n,
              "pose_fps": n / pose_s, "raster_fps": n / raster_s, "render_fps": n / (pose_s + raster_s),
              "image_mean": float(image.mean())}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
