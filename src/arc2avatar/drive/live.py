"""Live webcam puppeteering in the browser: the viewer page plus in-page tracking and fitting (docs/live.md).

``arc2avatar viewer OUT --webcam`` (and the app's Live tab) write a folder: ``viewer.html`` (the
viewer of ``arc2avatar.viewer`` with a Camera panel) and ``face-api/`` (the tracker's files,
``arc2avatar.weights.webcam``). In the page, the camera's frames never leave the browser:

1. **Tracking** (``live.js``): face-api's tiny face detector finds the face, its 68-point net
   (iBUG 300-W layout, as dlib's) places the landmarks; afterwards each frame's box is predicted
   from the previous frame's nose and eye points, as ``drive.track`` does, and the detector runs
   again every ``TrackConfig.redetect_every`` frames or when the landmarks disagree with the
   predicted box; where the frame's own points put the box further than
   ``LiveConfig.register_tolerance`` from the crop used, the net runs again on the registered crop
   (page-only: ``drive``'s tracker has no such step); the landmarks are smoothed by the One-Euro filter with ``TrackConfig``'s
   settings (in face widths, with the frames' own time stamps).
2. **Fitting**: the per-frame fit of ``drive.fit`` ported to JavaScript: the same model, the same
   residuals (landmark reprojection errors in inter-ocular distances, weighted per landmark, a
   ridge toward neutral), the same neutral calibration (pose at zero expression, the actor's
   offsets, the landmarks following the surface under them), the same halves of smile read as
   the smaller, the same pose relative to the neutral frame. The solver is a bounded
   Levenberg–Marquardt (scipy's trust-region reflective solver is not in the browser); the
   parity test holds the two to 0.05 per weight.
3. **Driving**: the weights go to the viewer's expression sliders, the head pose to its
   ``setHeadPose``; **Record** keeps every fitted frame and saves it, resampled to
   ``LiveConfig.record_fps``, as a sequence file of ``animate --sequence``.

Everything the page fits with comes from Python, once (``live_tables``): the landmark table and
its per-landmark weights exactly as ``FrameFitter`` computes them, the blendshape rows of the
avatar's own template (so stronger blendshapes reach the page without touching it), the template
surface the landmarks follow, the camera, and every setting of ``FitConfig`` and ``TrackConfig``.

Written by hand: the export (this module) and ``live.js`` (the tracker loop, the One-Euro filter,
the fit's port, the page's messages); face-api and TensorFlow.js do the neural networks.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from arc2avatar._io import atomic_write_text
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.rig import setup_for_avatar
from arc2avatar.avatar.safety import check_derived_output
from arc2avatar.drive.fit import DriveCamera, FitConfig, FrameFitter, LandmarkModel, landmark_model, merge_halves
from arc2avatar.drive.landmarks import (
    EYE_IMAGE_LEFT,
    EYE_IMAGE_RIGHT,
    JAW_CONTOUR,
    LIP_SEAM,
    landmark_residuals,
    template_landmarks,
)
from arc2avatar.drive.track import STABLE_LANDMARKS as BOX_LANDMARKS
from arc2avatar.drive.track import TrackConfig
from arc2avatar.errors import InputError
from arc2avatar.viewer import ViewerConfig, avatar_scene, beside_avatar, render_page
from arc2avatar.viewer.page import fill_placeholders, inline_script, read_embedded_json
from arc2avatar.weights.resolver import WeightsConfig
from arc2avatar.weights.webcam import FACE_API, HOW_TO_GET, TFJS_WASM, WEBCAM_ASSETS, webcam_assets

LIVE_FORMAT = "arc2avatar-live"
LIVE_FORMAT_VERSION = 1
LIVE_ELEMENT_ID = "arc2avatar-live"
LIVE_SCRIPT_FILE = "live.js"
LIVE_PANEL_FILE = "live.html.in"
ASSET_DIR = "face-api"
LIVE_PAGE_NAME = "viewer.html"
LIVE_FOLDER_NAME = "live"  # ``viewer OUT --webcam`` writes OUT/live/ by default
# iBUG 300-W: the landmark each one becomes in the mirror image (jaw, brows, nose base, eyes, lips reversed)
MIRROR_PARTNER: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 21, -1), *range(21, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65)
LIVE_HEAD = '\n<link rel="icon" href="data:,">'  # served pages ask for /favicon.ico otherwise (a 404 in the console)
_CAMERA_REFERENCE = (640, 480)  # the size at which the page's camera constants are read off DriveCamera


@dataclass(frozen=True)
class LiveConfig:
    """The live page's settings (docs/live.md).

    Attributes:
        detector_input_px: face-api's tiny face detector input size, pixels (a multiple of 32;
            smaller is faster, finds smaller faces less well).
        detector_score: the detector's score threshold.
        landmark_crop_px: the face box is cut out at this size for the 68-point net (it works at
            112² internally).
        crop_scale, crop_shift: the square cut out for the landmark net is ``crop_scale`` times
            the face box's longer side, its centre moved down by ``crop_shift`` of that side (the
            detector's box ends at the chin: with the box alone, an opening jaw left the crop and
            the net's chin stopped at its edge).
        neutral_seconds: the first this many seconds with a face after the camera starts are the
            actor's rest face (their mean landmarks; the "Set neutral" button takes the next ones).
        no_face_frames: after this many frames without a face the page says "no face in view".
        max_iterations: Levenberg–Marquardt iterations per frame (each evaluates the residuals
            1 + 6 + K times).
        record_fps: a recording is resampled to this frame rate for ``animate --sequence``.
        max_record_s: a recording stops itself after this long, seconds.
        mirror_average: run the landmark net on the face and on its mirror image and average the two
            (the mirror's points renumbered, ``MIRROR_PARTNER``): less noise and less of the net's
            left–right bias (on a turned face the net closed the far eye), at twice the net's time
            (the two images in one batch: 24 → 54 ms at load 9). Closed loop's paced pass
            (docs/live.md): blinks 14, 30 and a false one at 35 → 15, 31 and none; smile r
            0.957 → 0.864, brow_raise 0.987 → 0.979, jaw_open 0.946 → 0.950 (smile moves by as
            much with the crop moved by 0.05 of the face box, either way).
        register_tolerance: page-only tracking (``drive`` has no such step): after the net's pass
            on the crop predicted from the last tracked frame, the box this frame's own points give
            (the rule that predicts the next frame's box) is compared with the crop's box; where
            their centres or sides differ by more than this share of the box's side, the net runs
            again (with the mirror) on a crop registered to this frame's face and those points are
            used. The net's points move with where the face is cut out, and the predicted box sits
            further off the more frames were dropped. Closed loop's camera frames tracked in order
            and with a third dropped at random (five seeds; docs/live.md): it fires on 1 of 44
            frames in order, 4–7 of 28–32 with drops; brow_raise r ≥ 0.905 and no false blink in
            all six (without it: down to 0.52, four false blinks in four); 0 and 0.02 register
            nearly every frame and read smile 0.71–0.76; 0.07 let brow_raise fall to 0.75.
        backend: TensorFlow.js backend: ``wasm`` (WebAssembly kernels, SIMD where the browser has it,
            threads where the page is cross-origin isolated; on the 2-core CPU machine the 68-point
            net takes ≈ 22 ms a call, against ≈ 160 ms in ``webgl``, which headless or GPU-less
            browsers run in software) or ``webgl`` (faster where the browser has a GPU). The page
            falls back to ``webgl`` where WebAssembly cannot start.
        frame_source: ``processor``: the camera's frames are read as they arrive (Chrome's
            ``MediaStreamTrackProcessor``, the freshest frame, older ones dropped), so tracking
            does not wait for the avatar's redraws; ``video``, or a browser without it: a video
            frame callback per frame shown (tied to the page's redraws).
        slow_redraw_ms, redraw_share: a frame's weights go to the avatar once its previous redraw
            is shown; a redraw slower than ``slow_redraw_ms`` (software WebGL: hundreds of ms,
            which hold up the page's main thread) is followed by a pause so that redraws take at
            most ``redraw_share`` of the time and tracking keeps the rest. A GPU's redraws are
            never held back.
        fit, track: the settings of ``drive``'s fit and tracker, exported as they are.
    """

    detector_input_px: int = 224
    detector_score: float = 0.4
    landmark_crop_px: int = 160
    crop_scale: float = 1.3
    crop_shift: float = 0.08
    neutral_seconds: float = 1.0
    no_face_frames: int = 5
    max_iterations: int = 20
    record_fps: float = 30.0
    max_record_s: float = 600.0
    mirror_average: bool = True
    register_tolerance: float = 0.05
    backend: str = "wasm"
    frame_source: str = "processor"
    slow_redraw_ms: float = 100.0
    redraw_share: float = 0.5
    fit: FitConfig = field(default_factory=FitConfig)
    track: TrackConfig = field(default_factory=TrackConfig)


def _array(values: np.ndarray) -> dict[str, Any]:
    """A float32 array as ``{"shape", "b64"}`` (little-endian bytes, base64)."""
    array = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    return {"shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode("ascii")}


def live_model(setup: Any, config: LiveConfig = LiveConfig()) -> LandmarkModel:
    """The fit's template side for an avatar's ``TemplateSetup``: what ``drive`` fits with
    (built-in template only: the page renders no FLAME joint poses)."""
    if setup.info.get("kind") == "flame":
        raise InputError("the live webcam page drives avatars made on the built-in template; a FLAME avatar's jaw is "
                         "a joint pose the page cannot render: use `arc2avatar drive` with a recorded video")
    head = setup.upsampled.head
    points, vertex_index = template_landmarks(head)
    fit = config.fit
    return landmark_model(head, points, vertex_index, fit.expressions, landmark_residuals(), fit.agreeing_halves,
                          fit.half_blend)


def live_tables(model: LandmarkModel, config: LiveConfig = LiveConfig()) -> dict[str, Any]:
    """The JSON the page fits with (format ``arc2avatar-live`` 1): one definition, here.

    ``landmark_weights`` are ``FrameFitter``'s own (measured consistency × stable × corner
    weights), the camera's constants are read off ``DriveCamera``, the surface is the model's.
    """
    fit, track = config.fit, config.track
    width, height = _CAMERA_REFERENCE
    camera = DriveCamera(width, height, fit)
    fitter = FrameFitter(model, camera, fit)
    names = tuple(model.names)
    halves = []
    for name in names:
        if name.endswith("@right") and name[:-6] + "@left" in names:
            halves.append([name[:-6], names.index(name), names.index(name[:-6] + "@left")])
    lower = np.full(len(names), fit.lower) if model.lower is None else np.asarray(model.lower)
    upper = np.full(len(names), fit.upper) if model.upper is None else np.asarray(model.upper)
    return {
        "format": LIVE_FORMAT,
        "format_version": LIVE_FORMAT_VERSION,
        "names": list(names),
        "outputs": _merged_order(names),
        "halves": halves,
        "points": _array(model.points),
        "basis": _array(model.basis),
        "surface": _array(model.surface if model.surface is not None else np.zeros((0, 3))),
        "surface_basis": _array(model.surface_basis if model.surface_basis is not None else np.zeros((0, 3, len(names)))),
        "landmark_weights": [float(w) for w in fitter.weights_l],
        "used": [bool(u) for u in fitter._used],
        "keep_vertex": sorted(set(JAW_CONTOUR) | set(LIP_SEAM)),
        "eye_left": list(EYE_IMAGE_LEFT),
        "eye_right": list(EYE_IMAGE_RIGHT),
        "box_landmarks": list(BOX_LANDMARKS),
        "mirror_partner": list(MIRROR_PARTNER),
        "camera": {
            "radius": fit.radius,
            "fovy": fit.fovy,
            "focal_per_height": float(camera.K[1, 1] / height),
            "centre_per_size": [float(camera.K[0, 2] / width), float(camera.K[1, 2] / height)],
            "pixel_offset": -0.5,  # DriveCamera.project: pixel (i, j) centred at (j, i)
            "view_rotation": camera.viewmat[:3, :3].tolist(),
            "view_translation": camera.viewmat[:3, 3].tolist(),
        },
        "fit": {
            "lower": [float(v) for v in lower],
            "upper": [float(v) for v in upper],
            "expression_prior": fit.expression_prior,
            "smoothness": fit.smoothness,
            "vertical_shift_prior": fit.vertical_shift_prior,
            "neutral_iterations": fit.neutral_iterations,
            "surface_neighbours": fit.surface_neighbours,
            "surface_depth_band": fit.surface_depth_band,
            "max_iterations": config.max_iterations,
        },
        "track": {
            "min_cutoff_hz": track.min_cutoff_hz,
            "beta": track.beta,
            "d_cutoff_hz": track.d_cutoff_hz,
            "redetect_every": track.redetect_every,
            "min_track_iou": track.min_track_iou,
            "detector_input_px": config.detector_input_px,
            "detector_score": config.detector_score,
            "landmark_crop_px": config.landmark_crop_px,
            "crop_scale": config.crop_scale,
            "crop_shift": config.crop_shift,
            "neutral_seconds": config.neutral_seconds,
            "no_face_frames": config.no_face_frames,
            "backend": config.backend,
            "frame_source": config.frame_source,
            "slow_redraw_ms": config.slow_redraw_ms,
            "redraw_share": config.redraw_share,
            "mirror_average": config.mirror_average,
            "register_tolerance": config.register_tolerance,
        },
        "record": {"fps": config.record_fps, "max_seconds": config.max_record_s},
    }


def _merged_order(names: tuple[str, ...]) -> list[str]:
    """The page's output names: ``merge_halves``' order (a pair of halves becomes its name)."""
    return list(merge_halves(names, np.zeros((1, len(names))))[0])


def live_payload(model: LandmarkModel, config: LiveConfig = LiveConfig()) -> dict[str, Any]:
    """``live_tables`` plus the assets the page loads and checks (names, pinned sha256)."""
    tables = live_tables(model, config)
    tables["assets"] = {"folder": ASSET_DIR, "package": FACE_API.spec, "wasm_package": TFJS_WASM.spec,
                        "files": {a.name: a.sha256 for a in WEBCAM_ASSETS if a.name != "LICENSE"},
                        "how_to_get": HOW_TO_GET}
    return tables


def _package_text(name: str) -> str:
    return resources.files("arc2avatar.drive").joinpath(name).read_text(encoding="utf-8")


def live_panel(payload: dict[str, Any]) -> str:
    """The HTML appended to the viewer page: the Camera panel, the tables (gzipped JSON) and ``live.js``."""
    script = inline_script(_package_text(LIVE_SCRIPT_FILE), LIVE_SCRIPT_FILE)
    raw = json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
    blob = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")
    return fill_placeholders(_package_text(LIVE_PANEL_FILE), LIVE_PANEL_FILE, {
        "{{LIVE_DATA}}": json.dumps({"gzip_b64": blob}), "{{LIVE_SCRIPT}}": script,
        "{{PACKAGE}}": html.escape(payload["assets"]["package"])})


def read_live_payload(path: str | os.PathLike) -> dict[str, Any]:
    """The live tables embedded in a written page (for tests and tools)."""
    wrapped = read_embedded_json(path, LIVE_ELEMENT_ID, "holds no live webcam data (written without --webcam?)")
    return json.loads(gzip.decompress(base64.b64decode(wrapped["gzip_b64"])))


def decode_array(entry: dict[str, Any]) -> np.ndarray:
    """A ``_array`` entry back as float32."""
    return np.frombuffer(base64.b64decode(entry["b64"]), dtype="<f4").reshape(entry["shape"])


def write_live_folder(
    avatar_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    weights_root: str | os.PathLike | None = None,
    assets: str | os.PathLike | None = None,
    viewer_config: Any = None,
    config: LiveConfig = LiveConfig(),
) -> Path:
    """``arc2avatar viewer AVATAR --webcam``: write ``OUT/viewer.html`` and ``OUT/face-api/``; returns the page.

    ``out`` defaults to ``live/`` in the avatar folder; ``assets`` is a folder of checked tracker
    files (default: the stored ones under the weights root, ``weights.webcam.webcam_assets``).
    The tracker's files are checked and the page is built in memory before anything is written;
    a missing tracker is one line saying how to get it.
    """
    source = Path(avatar_dir)
    if not source.exists():
        raise InputError(f"{source} does not exist; give an avatar folder written by `arc2avatar create`")
    asset_folder = Path(assets) if assets is not None else webcam_assets(WeightsConfig(root=weights_root).local_root())
    out = Path(out) if out is not None else beside_avatar(source, LIVE_FOLDER_NAME)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; --webcam writes a folder (viewer.html and {ASSET_DIR}/)")
    check_derived_output(out / LIVE_PAGE_NAME, source)
    avatar = Avatar.load(source)
    kind = avatar.template.get("kind")
    if kind == "flame":
        raise InputError("the live webcam page drives avatars made on the built-in template; a FLAME avatar's jaw is "
                         "a joint pose the page cannot render: use `arc2avatar drive` with a recorded video")
    if kind != "builtin":
        raise InputError(f"{source} has no face binding (a bare PLY?): the live page needs an avatar with expressions")
    setup = setup_for_avatar(avatar)
    viewer_config = viewer_config or ViewerConfig()
    payload = live_payload(live_model(setup, config), config)
    page = render_page(avatar_scene(avatar, setup, viewer_config), viewer_config, live_panel(payload),
                       LIVE_HEAD)
    out.mkdir(parents=True, exist_ok=True)
    (out / ASSET_DIR).mkdir(exist_ok=True)
    for asset in WEBCAM_ASSETS:
        target = out / ASSET_DIR / asset.name
        if Path(asset_folder / asset.name).resolve() != target.resolve():
            shutil.copyfile(asset_folder / asset.name, target.with_name(f".{asset.name}.tmp"))
            os.replace(target.with_name(f".{asset.name}.tmp"), target)
    atomic_write_text(out / LIVE_PAGE_NAME, page)
    return out / LIVE_PAGE_NAME


__all__ = [
    "ASSET_DIR",
    "LIVE_FOLDER_NAME",
    "LIVE_FORMAT",
    "LIVE_PAGE_NAME",
    "LiveConfig",
    "decode_array",
    "live_model",
    "live_panel",
    "live_payload",
    "live_tables",
    "read_live_payload",
    "write_live_folder",
]

