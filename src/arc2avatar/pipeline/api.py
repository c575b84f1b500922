"""The Python API behind ``arc2avatar create``, ``demo``, ``template`` and ``render``.

>>> import arc2avatar
>>> result = arc2avatar.create(["me.jpg"], "out/", preset="paper")      # real Arc2Face prior
>>> result = arc2avatar.demo("demo/")                                  # offline, oracle prior
>>> arc2avatar.Avatar.load("out/").render([0, 45, 90])

Every input (photos, FLAME file, LoRA file, output folder) is checked before any weight is
loaded, so a bad path fails in a second with a message naming it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from arc2avatar._device import pick_device
from arc2avatar._guard import folder_lock, remove_stale_temporaries
from arc2avatar.avatar.layout import BUNDLE_NAME, CONFIG_NAME, LOG_NAME, METRICS_NAME
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.outputs import write_avatar_outputs
from arc2avatar.avatar.template import HeadSetup, build_head
from arc2avatar.confkit import from_dict, load_yaml, save_yaml
from arc2avatar.errors import InputError
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.meanface import fit_mean_face_for_run, initial_splats
from arc2avatar.pipeline.presets import CPU_SMOKE, PHOTO_DEMO, resolve_config
from arc2avatar.pipeline.trainer import CHECKPOINT_NAME, Trainer, truncate_log
from arc2avatar.prior.guidance import GuidancePrior

log = logging.getLogger(__name__)


@dataclass
class CreateResult:
    """What a run produced.

    Attributes:
        out_dir: the output folder.
        avatar: the finished avatar.
        files: name → path of every output written.
        metrics: figures of the run (timings; oracle runs: held-out PSNR/SSIM, correspondence).
    """

    out_dir: Path
    avatar: Avatar
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- input checks
def run_state(out_dir: Path) -> Literal["new", "unfinished", "finished"]:
    """What an output folder holds: a finished avatar, an unfinished run (a checkpoint to resume) or neither."""
    out_dir = Path(out_dir)
    if (out_dir / CHECKPOINT_NAME).is_file():
        return "unfinished"
    return "finished" if (out_dir / BUNDLE_NAME / "avatar.json").is_file() else "new"


def check_out_dir(out_dir: Path, resume: bool) -> bool:
    """Check the output folder without touching it; returns True when a checkpoint will be resumed.

    A folder with an unfinished run needs ``resume``; a folder with a finished avatar is never
    overwritten. ``resume`` on a run stopped before its first checkpoint starts it over (with the
    saved settings: ``load_run_config``).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder")
    state = run_state(out_dir)
    has_checkpoint = state == "unfinished"
    if state == "finished":
        raise InputError(f"{out_dir} already holds a finished avatar; choose another output folder")
    if has_checkpoint and not resume:
        raise InputError(f"{out_dir} holds an unfinished run: pass --resume to continue it, or choose another folder")
    if resume and not has_checkpoint:
        if (out_dir / CONFIG_NAME).is_file():  # stopped before its first checkpoint: start over, same settings
            log.warning("%s has no %s yet (the run stopped before writing one): starting over with its saved "
                        "settings", out_dir, CHECKPOINT_NAME)
            return False
        raise InputError(f"--resume given but {out_dir} has no {CHECKPOINT_NAME} to continue from")
    return has_checkpoint


def make_out_dir(out_dir: Path) -> None:
    """Create the output folder (after every input was checked) and make sure it is writable."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(f"cannot write into {out_dir}: {error.strerror}") from error


@contextlib.contextmanager
def run_lock(out_dir: Path, resume: bool) -> Iterator[None]:
    """Create the output folder and hold its exclusive lock (``_guard.folder_lock``) for the run.

    A second run on the same folder stops at once with one line; the folder's state is checked
    again under the lock (another run may have finished or left a checkpoint meanwhile).
    """
    make_out_dir(out_dir)
    with folder_lock(out_dir):
        check_out_dir(out_dir, resume)
        removed = remove_stale_temporaries(out_dir, [BUNDLE_NAME])  # left by a killed run
        if removed:
            log.info("removed %d temporary file(s) a stopped run left in %s", len(removed), out_dir)
        yield


def load_run_config(
    out_dir: Path, resume: bool, preset: str | None, config_path: str | Path | None, overrides: Sequence[str]
) -> CreateConfig:
    """The resolved config: the saved one when resuming, else preset → YAML → --set."""
    if resume:
        saved = Path(out_dir) / CONFIG_NAME
        if not saved.is_file():
            raise InputError(f"cannot resume: {saved} is missing")
        config = from_dict(CreateConfig, load_yaml(saved), source=str(saved))
        if overrides or config_path:
            log.warning("resuming with the saved %s; new options are ignored", saved)
        return config
    return resolve_config(preset, config_path, list(overrides))


def check_photos(photos: Sequence[str | Path]) -> list[Path]:
    """Every photo exists, decodes and is large enough to hold a face (before any model loads;
    ``identity.image.check_face_photos``)."""
    from arc2avatar.identity.image import check_face_photos

    return check_face_photos(photos)


def check_lora(path: str | Path | None) -> Path | None:
    if path is None:
        return None
    from arc2avatar.weights.integrity import check_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"LoRA file {path} does not exist")
    problem = check_file(path)
    if problem:
        raise InputError(f"LoRA file {path} is unusable: {problem}")
    return path


# --------------------------------------------------------------------------- shared core
def _optimise(
    config: CreateConfig,
    prior: GuidancePrior,
    setup: HeadSetup,
    out_dir: Path,
    device: torch.device,
    resume: bool,
    progress: bool,
) -> tuple[Avatar, dict[str, Any]]:
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    splats = initial_splats(setup, config.splat_init)
    if resume:
        trainer = Trainer(config, prior, setup, splats.to(device), out_dir, device, progress=progress)
        trainer.load_checkpoint()
    else:
        truncate_log(out_dir / LOG_NAME, 0)  # a run started over drops the records of the stopped one
        splats, meanface = fit_mean_face_for_run(setup, config, device, progress)
        metrics["meanface"] = meanface
        trainer = Trainer(config, prior, setup, splats.to(device), out_dir, device, progress=progress)
    final = trainer.run()
    trainer.save_checkpoint()  # the finished state: a run stopped while writing the outputs resumes here
    metrics["iterations"] = config.iterations
    metrics["skipped_steps"] = trainer.state.skipped_steps
    metrics["optimisation_s"] = round(trainer.state.elapsed_s, 2)
    metrics["seconds_per_iteration"] = round(trainer.state.elapsed_s / max(config.iterations, 1), 4)
    metrics["num_splats"] = final.num_splats
    metrics["correspondence"] = face_correspondence(final, setup)
    metrics["wall_s"] = round(time.perf_counter() - started, 2)
    avatar = Avatar(final.detach_copy(), template=dict(setup.info), extra={"preset": config.preset})
    return avatar, metrics


def face_correspondence(splats: Any, setup: HeadSetup) -> dict[str, float]:
    """Mean / max distance of face splats to their template vertices, as a fraction of head height."""
    rows = splats.face_mask.nonzero().squeeze(-1)
    vertices = setup.upsampled.head.vertices.to(splats.means.device)[splats.vertex_index[rows]]
    distance = (splats.means.detach()[rows] - vertices).norm(dim=-1)
    height = setup.upsampled.head.height
    return {"mean_fraction_of_height": float(distance.mean() / height), "max_fraction_of_height": float(distance.max() / height)}


def _finish(out_dir: Path, avatar: Avatar, config: CreateConfig, metrics: dict[str, Any], setup: HeadSetup) -> dict[str, Path]:
    from arc2avatar.avatar.media import write_json
    from arc2avatar.viewer import VIEWER_NAME, write_avatar_viewer

    files = write_avatar_outputs(
        out_dir,
        avatar,
        size=config.outputs.size,
        rings=config.view_rings,
        fps=config.outputs.video_fps,
        quality=config.outputs.video_quality,
        columns=config.outputs.sheet_columns,
        ply_layout=config.outputs.ply_layout,
    )
    files["viewer"] = write_avatar_viewer(out_dir / VIEWER_NAME, avatar, setup)
    files["metrics"] = write_json(metrics, out_dir / METRICS_NAME)
    checkpoint = out_dir / CHECKPOINT_NAME
    if checkpoint.is_file():
        checkpoint.unlink()  # the run is complete: the avatar files replace it
    return files


# --------------------------------------------------------------------------- public API
def create(
    photos: Sequence[str | Path],
    out_dir: str | Path,
    *,
    preset: str | None = None,
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    flame: str | Path | None = None,
    flame_masks: str | Path | None = None,
    lora: str | Path | None = None,
    weights: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> CreateResult:
    """Photo(s) of one person → an avatar in ``out_dir`` with the real Arc2Face prior.

    Args:
        photos: one or more photos of the same person (JPEG/PNG/WebP...).
        out_dir: output folder (created; never overwritten).
        preset: "paper" (default), "release", "fast" or "cpu-smoke".
        config_path: a YAML config (applied over the preset); ``overrides``: "key=value" strings.
        flame, flame_masks: a FLAME model file (and its masks) instead of the built-in template.
        lora: the multi-view LoRA file (diffusers format).
        weights: the weights folder (default: ``$ARC2AVATAR_WEIGHTS`` or ``~/.cache/arc2avatar``).
        resume: continue the unfinished run in ``out_dir``.
    """
    from arc2avatar.identity.embed import embed_photos
    from arc2avatar.prior.guidance import Arc2FaceGuidance
    from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

    out_dir = Path(out_dir)
    photo_paths = check_photos(photos)
    lora_path = check_lora(lora)
    flame_settings = flame_overrides(flame, flame_masks)
    asked_resume, resume = resume, check_out_dir(out_dir, resume)
    config = load_run_config(out_dir, asked_resume, preset, config_path, [*flame_settings, *overrides])
    if config.template.kind == "flame":
        _check_flame(config)
    paths = resolve_weights(WeightsConfig(root=weights, lora=lora_path), need={"prior", "identity", "detector"})
    device = pick_device(config.device)
    with run_lock(out_dir, resume):
        if not resume:
            save_yaml(config, out_dir / CONFIG_NAME, header=f"arc2avatar create — resolved config (preset {config.preset})")
        identity = embed_photos(photo_paths, paths)
        np.save(out_dir / "identity.npy", identity.vector)
        prior = Arc2FaceGuidance.from_pretrained(
            paths, torch.from_numpy(identity.vector), device=device, lora=lora_path, config=config.prior,
            accel=config.accel,
        )
        setup = build_head(config.template)
        avatar, metrics = _optimise(config, prior, setup, out_dir, device, resume, progress)
        metrics["photos"] = [str(p) for p in identity.photos_used]
        files = _finish(out_dir, avatar, config, metrics, setup)
        return CreateResult(out_dir, avatar, files, metrics)


def demo(
    out_dir: str | Path,
    *,
    photo: str | Path | None = None,
    preset: str | None = "cpu-smoke",
    config_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    progress: bool = True,
) -> CreateResult:
    """Fully offline: rebuild a known target head through the whole pipeline (oracle prior).

    The target is the built-in head with a painted hair cap (and ``photo`` projected onto its
    face, aligned by its five landmarks when dlib is installed: ``demo_photo``; on the cpu-smoke
    preset a photo switches to the ``photo-demo`` preset, whose face a recogniser can judge). ``metrics.json`` gets the PSNR / SSIM of the
    avatar against the target on 16 held-out views (angles never used in training) and the face
    correspondence.
    """
    from arc2avatar.pipeline.oracle import OraclePrior, default_target, oracle_latent_encoder

    out_dir = Path(out_dir)
    image = keypoints = None
    photo_info: dict[str, Any] = {}
    if photo is not None:
        image, keypoints, photo_info = demo_photo(check_photos([photo])[0])
    asked_resume, resume = resume, check_out_dir(out_dir, resume)
    if photo is not None and preset == CPU_SMOKE.name and not asked_resume:
        log.info("photo demo: preset %s (cpu-smoke with a recognisable face; --set overrides it)", PHOTO_DEMO.name)
        preset = PHOTO_DEMO.name
    config = load_run_config(out_dir, asked_resume, preset, config_path, overrides)
    device = pick_device(config.device)
    with run_lock(out_dir, resume):
        if not resume:
            save_yaml(config, out_dir / CONFIG_NAME, header=f"arc2avatar demo — resolved config (preset {config.preset})")
        setup = build_head(config.template)
        target = default_target(setup.upsampled.head, photo=image, face_triangles=setup.upsampled.num_face_triangles,
                                photo_keypoints=keypoints).to(device)
        prior = OraclePrior(target, config.prior, oracle_latent_encoder(config))
        avatar, metrics = _optimise(config, prior, setup, out_dir, device, resume, progress)
        metrics["heldout"] = heldout_metrics(avatar, target, config)
        if photo_info:
            metrics["photo"] = photo_info
        files = _finish(out_dir, avatar, config, metrics, setup)
        return CreateResult(out_dir, avatar, files, metrics)


def heldout_metrics(avatar: Avatar, target: Any, config: CreateConfig) -> dict[str, Any]:
    """PSNR / SSIM of the avatar against the oracle target on the held-out ring (white background)."""
    from arc2avatar.cameras.samplers import heldout_cameras
    from arc2avatar.pipeline.metrics import image_metrics

    size = config.resolution
    cameras = heldout_cameras(size, size, config.view_rings).to(avatar.splats.device)
    rendered = avatar.render_cameras(cameras)
    reference = target.render(cameras).cpu()
    return {"views": len(cameras), "resolution": size, **image_metrics(rendered, reference, channels_last=True)}


def demo_photo(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """The demo's photo, its five ArcFace keypoints and how it is placed on the target's face.

    With dlib installed (the ``eval`` extra) the largest face's landmarks align the photo to the
    template's (``oracle.photo_placement``); no face found is an ``InputError``. Without dlib the
    centre square of the photo is used (a roughly frontal, face-centred picture is expected).
    """
    from arc2avatar.errors import MissingDependencyError
    from arc2avatar.identity.dlib_faces import DlibFaceDetector
    from arc2avatar.identity.image import load_image

    image = load_image(path)
    try:
        detector = DlibFaceDetector()
    except MissingDependencyError as error:
        log.warning("%s; placing the centre square of %s on the face instead of aligning its landmarks", error, path)
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return image[top:top + side, left:left + side], None, {"path": str(path), "placement": "centre square"}
    face = detector.largest_face(image)
    if face is None:
        raise InputError(f"no face found in {path} by dlib's {detector.name} detector: use a frontal photo "
                         "with the face clearly visible (at least ~80 pixels wide)")
    info = {"path": str(path), "placement": "5 landmarks (dlib 68-point)",
            "keypoints": np.round(face.keypoints, 2).tolist()}
    return image, face.keypoints, info


def flame_overrides(flame: str | Path | None, masks: str | Path | None) -> list[str]:
    if flame is None:
        if masks is not None:
            raise InputError("--flame-masks needs --flame")
        return []
    if not Path(flame).is_file():
        raise InputError(f"FLAME file {flame} does not exist")
    if masks is not None and not Path(masks).is_file():
        raise InputError(f"FLAME masks file {masks} does not exist")
    out = ["template.kind=flame", f"template.flame_path={Path(flame)}"]
    if masks is not None:
        out.append(f"template.masks_path={Path(masks)}")
    return out


def _check_flame(config: CreateConfig) -> None:
    from arc2avatar.head.flame import load_flame

    load_flame(config.template.flame_path, masks_path=config.template.masks_path)


def make_template(
    out_dir: str | Path,
    *,
    flame: str | Path | None = None,
    flame_masks: str | Path | None = None,
    preset: str | None = "cpu-smoke",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> CreateResult:
    """The mean-face-initialised avatar of a template (no prior): PLY, bundle, 8-view sheet.

    ``out_dir`` may not hold an avatar already (finished or not); it is locked while written.
    """
    from arc2avatar.avatar.safety import check_template_out

    out_dir = Path(out_dir)
    check_template_out(out_dir)
    flame_settings = flame_overrides(flame, flame_masks)
    config = resolve_config(preset, None, [*flame_settings, *overrides])
    if config.template.kind == "flame":
        _check_flame(config)
    device = pick_device(config.device)
    make_out_dir(out_dir)
    with folder_lock(out_dir):
        check_template_out(out_dir)  # again under the lock
        return _write_template(out_dir, config, device, progress)


def _write_template(out_dir: Path, config: CreateConfig, device: torch.device, progress: bool) -> CreateResult:
    from arc2avatar.cameras.model import orbit_cameras
    from arc2avatar.avatar.media import write_json, write_sheet

    setup = build_head(config.template)
    splats, stats = fit_mean_face_for_run(setup, config, device, progress)
    avatar = Avatar(splats.detach_copy(), template=dict(setup.info), extra={"stage": "mean-face"})
    avatar.save(out_dir, ply_layout=config.outputs.ply_layout)
    size = config.meanface.resolution
    cameras = orbit_cameras(4.5, 90.0, torch.arange(8, dtype=torch.float32) * 45.0, 0.7, size, size)
    sheet = write_sheet(avatar.render_cameras(cameras), out_dir / "views.png", columns=8)
    metrics = {"meanface": stats, "num_splats": splats.num_splats, "num_face_splats": splats.num_face}
    return CreateResult(out_dir, avatar, {"sheet": sheet, "metrics": write_json(metrics, out_dir / METRICS_NAME)}, metrics)


def render_avatar(
    avatar_dir: str | Path,
    out: str | Path | None = None,
    *,
    turntable: bool = True,
    size: int = 512,
    frames: int = 120,
    polar_deg: float = 90.0,
    fps: int = 30,
    progress: bool | None = None,
) -> Path:
    """Re-render a saved avatar: a turntable video (or, with ``turntable=False``, the 16-view sheet).

    ``progress``: a bar per frame / view on stderr (None = only on a terminal; ``arc2avatar._progress``).

    ``out`` may not be the avatar's input, one of its folder's own files or lie in its bundle.
    """
    from arc2avatar._progress import track
    from arc2avatar.avatar.media import write_sheet, write_video
    from arc2avatar.avatar.safety import check_derived_output
    from arc2avatar.cameras.samplers import ViewRings, sheet_cameras
    from arc2avatar.pipeline.config import MAX_RESOLUTION

    problems = [m for ok, m in (
        (8 <= size <= MAX_RESOLUTION, f"--size must be in 8..{MAX_RESOLUTION} px (got {size})"),
        (1 <= frames <= 100_000, f"--frames must be in 1..100000 (got {frames})"),
        (1 <= fps <= 240, f"--fps must be in 1..240 (got {fps})"),
        (np.isfinite(polar_deg) and 0.0 < polar_deg < 180.0, f"--polar must be in (0, 180) degrees (got {polar_deg})"),
    ) if not ok]
    if problems:
        raise InputError("render: " + "; ".join(problems))
    if out is not None:
        check_derived_output(out, avatar_dir)
    avatar = Avatar.load(avatar_dir, device=pick_device("auto"))
    base = Path(avatar_dir) if Path(avatar_dir).is_dir() else Path(avatar_dir).parent
    if turntable:
        path = Path(out) if out is not None else base / "turntable.mp4"
        stream = avatar.turntable_frames(size, ViewRings(), frames, polar_deg)
        write_video(track(stream, frames, "turntable", progress, unit="frame"), path, fps=fps)
        return path
    path = Path(out) if out is not None else base / "views.png"
    cameras = sheet_cameras(size, size)  # the 16 test views, framed on the head
    views = [avatar.render_cameras(cameras[i:i + 1]) for i in track(range(len(cameras)), len(cameras), "views",
                                                                    progress, unit="view")]
    return write_sheet(torch.cat(views), path)
