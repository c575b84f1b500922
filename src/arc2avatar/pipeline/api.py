"""The Python API behind ``arc2avatar create``, ``demo`` and ``template`` (``render``: ``avatar.render``).

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
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch

from arc2avatar._device import pick_device
from arc2avatar._guard import folder_lock, remove_stale_temporaries
from arc2avatar._io import write_json
from arc2avatar.avatar.layout import BUNDLE_NAME, CONFIG_NAME, LOG_NAME, METRICS_NAME
from arc2avatar.avatar.media import write_sheet
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.outputs import write_avatar_outputs
from arc2avatar.avatar.safety import check_template_out
from arc2avatar.avatar.template import HeadSetup, build_head
from arc2avatar.cameras.model import orbit_cameras
from arc2avatar.cameras.samplers import heldout_cameras
from arc2avatar.confkit import from_dict, load_yaml, save_yaml
from arc2avatar.errors import InputError
from arc2avatar.head.flame import load_flame
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.meanface import fit_mean_face_for_run, initial_splats
from arc2avatar.pipeline.preparing import PrepareReport
from arc2avatar.pipeline.metrics import image_metrics
from arc2avatar.pipeline.presets import CPU_SMOKE, PHOTO_DEMO, resolve_config
from arc2avatar.pipeline.trainer import CHECKPOINT_NAME, Trainer, truncate_log
from arc2avatar.identity.embed import embed_photos
from arc2avatar.identity.image import check_face_photos, load_face_photos
from arc2avatar.pipeline.oracle import OraclePrior
from arc2avatar.pipeline.priors import PriorFactory, PriorInputs, resolve_prior
from arc2avatar.prior.guidance import GuidancePrior
from arc2avatar.viewer import VIEWER_NAME, write_avatar_viewer
from arc2avatar.weights.integrity import check_file
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

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
    return check_face_photos(photos)


def check_lora(path: str | Path | None) -> Path | None:
    if path is None:
        return None
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
    report: PrepareReport,
) -> tuple[Avatar, dict[str, Any]]:
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    if resume:
        report.step("loading the checkpoint")
        splats = initial_splats(setup, config.splat_init)  # the layout the checkpoint's tensors load into
        trainer = Trainer(config, prior, setup, splats.to(device), out_dir, device, progress=progress)
        trainer.load_checkpoint()
    else:
        truncate_log(out_dir / LOG_NAME, 0)  # a run started over drops the records of the stopped one
        splats, meanface = fit_mean_face_for_run(setup, config, device, progress, report)  # builds the initial splats once
        metrics["meanface"] = meanface
        trainer = Trainer(config, prior, setup, splats.to(device), out_dir, device, progress=progress)
    report.finish()
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
    prior: GuidancePrior | PriorFactory | str | None = None,
    priors: Mapping[str, PriorFactory] | None = None,
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
    """Photo(s) of one person → an avatar in ``out_dir``, guided by the Arc2Face prior or another.

    Args:
        photos: one or more photos of the same person (JPEG/PNG/WebP...); each is decoded once.
        out_dir: output folder (created; never overwritten).
        prior: the guidance (``arc2avatar.pipeline.priors``): a ``GuidancePrior`` object, a
            ``PriorFactory``, or a name ("arc2face", "oracle", or one of ``priors``); None = the
            config's ``guidance`` ("arc2face" unless a config or ``--set guidance=...`` says otherwise).
        priors: more named priors a name or the config may select.
        preset: "paper" (default), "release", "fast" or "cpu-smoke".
        config_path: a YAML config (applied over the preset); ``overrides``: "key=value" strings.
        flame, flame_masks: a FLAME model file (and its masks) instead of the built-in template.
        lora: the multi-view LoRA file (diffusers format).
        weights: the weights folder (default: ``$ARC2AVATAR_WEIGHTS`` or ``~/.cache/arc2avatar``).
        resume: continue the unfinished run in ``out_dir``.
    """
    out_dir = Path(out_dir)
    loaded = tuple(load_face_photos(photos)) if photos else ()
    lora_path = check_lora(lora)
    flame_settings = flame_overrides(flame, flame_masks)
    asked_resume, resume = resume, check_out_dir(out_dir, resume)
    named = [f"guidance={prior}"] if isinstance(prior, str) and not asked_resume else []
    config = load_run_config(out_dir, asked_resume, preset, config_path, [*flame_settings, *overrides, *named])
    factory = resolve_prior(prior, config, priors)
    if factory.needs_identity and not loaded:
        raise InputError("no photo given")
    if config.template.kind == "flame":
        _check_flame(config)
    paths = None
    if factory.needs_identity:
        paths = resolve_weights(WeightsConfig(root=weights, lora=lora_path), need={"prior", "identity", "detector"})
    prepared = factory.prepare(loaded) if factory.prepare is not None else None
    device = pick_device(config.device)
    with run_lock(out_dir, resume):
        if not resume:
            save_yaml(config, out_dir / CONFIG_NAME, header=f"arc2avatar create — resolved config (preset {config.preset})")
        report = PrepareReport(out_dir)
        metrics: dict[str, Any] = {}
        identity = None
        if factory.needs_identity:
            report.step("identity embedding")
            embedding = embed_photos(loaded, paths)
            np.save(out_dir / "identity.npy", embedding.vector)  # for refine-expression
            identity = torch.from_numpy(embedding.vector).to(device)
            metrics["photos"] = [str(p) for p in embedding.photos_used]
        report.step("building the template")
        setup = build_head(config.template)
        report.step("loading the prior")
        guidance = factory.build(PriorInputs(config, setup, device, loaded, identity, paths, lora_path, prepared))
        avatar, run_metrics = _optimise(config, guidance, setup, out_dir, device, resume, progress, report)
        metrics = {**run_metrics, **metrics}
        if isinstance(guidance, OraclePrior):
            metrics["heldout"] = heldout_metrics(avatar, guidance.target, config)
        if factory.info is not None:
            metrics.update(factory.info(prepared))
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
    """Fully offline: rebuild a known target head through the whole pipeline: ``create`` with the
    oracle prior (``prior="oracle"``), no weights needed.

    The target is the built-in head with a painted hair cap (and ``photo`` projected onto its
    face, aligned by its five landmarks when dlib is installed: ``oracle.photo_keypoints``; on the
    cpu-smoke preset a photo switches to the ``photo-demo`` preset, whose face a recogniser can
    judge). ``metrics.json`` gets the PSNR / SSIM of the avatar against the target on 16 held-out
    views (angles never used in training) and the face correspondence.
    """
    if photo is not None and preset == CPU_SMOKE.name and not resume:
        log.info("photo demo: preset %s (cpu-smoke with a recognisable face; --set overrides it)", PHOTO_DEMO.name)
        preset = PHOTO_DEMO.name
    return create([photo] if photo is not None else [], out_dir, prior="oracle", preset=preset,
                  config_path=config_path, overrides=overrides, resume=resume, progress=progress)


def heldout_metrics(avatar: Avatar, target: Any, config: CreateConfig) -> dict[str, Any]:
    """PSNR / SSIM of the avatar against the oracle target on the held-out ring (white background)."""
    size = config.resolution
    cameras = heldout_cameras(size, size, config.view_rings).to(avatar.splats.device)
    rendered = avatar.render_cameras(cameras)
    reference = target.render(cameras).cpu()
    return {"views": len(cameras), "resolution": size, **image_metrics(rendered, reference, channels_last=True)}


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
    report = PrepareReport(None)  # the log only: this command's output is the fitted template itself
    report.step("building the template")
    setup = build_head(config.template)
    splats, stats = fit_mean_face_for_run(setup, config, device, progress, report)
    avatar = Avatar(splats.detach_copy(), template=dict(setup.info), extra={"stage": "mean-face"})
    avatar.save(out_dir, ply_layout=config.outputs.ply_layout)
    size = config.meanface.resolution
    cameras = orbit_cameras(4.5, 90.0, torch.arange(8, dtype=torch.float32) * 45.0, 0.7, size, size)
    sheet = write_sheet(avatar.render_cameras(cameras), out_dir / "views.png", columns=8)
    metrics = {"meanface": stats, "num_splats": splats.num_splats, "num_face_splats": splats.num_face}
    return CreateResult(out_dir, avatar, {"sheet": sheet, "metrics": write_json(metrics, out_dir / METRICS_NAME)}, metrics)
