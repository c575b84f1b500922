"""``arc2avatar evaluate``: identity similarity, FID/KID and expression consistency of an avatar
against reference photos, with a report folder (paper §4; docs/method.md §9).

Order of work: every input is checked first (reference photos decode, the avatar folder
loads, the report folder is usable, the recognisers load), then the views are rendered once
and every recogniser looks at the same renders.

>>> from arc2avatar.evaluate import evaluate
>>> result = evaluate("out/", ["me.jpg"])          # report in out/evaluation/
>>> result.report["identity"][0]["distribution"]["mean"]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from arc2avatar._progress import progress_bar
from arc2avatar.errors import Arc2AvatarError, InputError
from arc2avatar.evaluate.expression import ExpressionEvalConfig, expression_consistency, expression_grid
from arc2avatar.evaluate.fid import FidConfig, fid_kid, inception_file, require_inception, torchmetrics_metrics
from arc2avatar.evaluate.recognizers import (
    ArcFaceRecognizerConfig,
    DlibRecognizerConfig,
    FaceRecognizer,
    load_recognizers,
)
from arc2avatar.evaluate.report import check_report_dir, write_atomically, write_report_files
from arc2avatar.evaluate.similarity import Observations, observe, observe_references, score_matrix, summarise_views
from arc2avatar.evaluate.views import EvalViews, render_views
from arc2avatar.avatar.model import Avatar
from arc2avatar import __version__
from arc2avatar.avatar.rig import setup_for_avatar
from arc2avatar.identity.image import load_image

log = logging.getLogger(__name__)

REPORT_DIR_NAME = "evaluation"
FidMode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``evaluate`` does.

    Attributes:
        views: the evaluation cameras (docs/method.md §9).
        recognizers: ``"dlib"``, ``"arcface"`` or ``"auto"`` (every one available).
        dlib, arcface: recogniser settings.
        fid_mode: ``"auto"`` (computed when the Inception file and ≥ 2 references are there,
            otherwise skipped with the reason in the report), ``"on"`` (missing → error), ``"off"``.
        fid: FID/KID settings (``fid.inception_path``).
        expressions: expression consistency settings; ``None`` = skipped.
        weights: weights folder (ArcFace, SCRFD, the default Inception location).
        flame, flame_masks: the FLAME files of a FLAME avatar (for its expressions).
        device: where the avatar is rendered: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
    """

    views: EvalViews = field(default_factory=EvalViews)
    recognizers: tuple[str, ...] = ("auto",)
    dlib: DlibRecognizerConfig = field(default_factory=DlibRecognizerConfig)
    arcface: ArcFaceRecognizerConfig = field(default_factory=ArcFaceRecognizerConfig)
    fid_mode: FidMode = "auto"
    fid: FidConfig = field(default_factory=FidConfig)
    expressions: ExpressionEvalConfig | None = field(default_factory=ExpressionEvalConfig)
    weights: Path | None = None
    flame: Path | None = None
    flame_masks: Path | None = None
    device: str = "auto"


@dataclass
class EvaluationResult:
    """What ``evaluate`` produced: the report (as written to ``report.json``) and its files."""

    report_dir: Path
    report: dict[str, Any]
    files: dict[str, Path]


def load_references(paths: Sequence[str | Path]) -> tuple[list[Path], list[np.ndarray]]:
    """Decode every reference photo (``InputError`` naming a bad one; none given is an error)."""
    if not paths:
        raise InputError("no reference photo given: pass --refs PHOTO [PHOTO ...]")
    resolved = [Path(p) for p in paths]
    return resolved, [load_image(p) for p in resolved]


def evaluate(
    avatar_dir: str | Path,
    references: Sequence[str | Path],
    report_dir: str | Path | None = None,
    config: EvaluateConfig = EvaluateConfig(),
    progress: bool | None = None,
) -> EvaluationResult:
    """Evaluate the avatar in ``avatar_dir`` against ``references`` and write the report.

    Args:
        avatar_dir: an output folder of ``create``/``demo`` (or a bundle folder, or a ``.ply``;
            expressions need the bundle's face binding).
        references: photos of the person (JPEG/PNG/WebP...); each must show a face.
        report_dir: where the report goes (default ``avatar_dir/evaluation``); replaced only if
            it holds an earlier report.
        progress: a bar over the stages (render, each recogniser, FID/KID, expressions) on
            stderr; None = only on a terminal.

    Raises:
        InputError: no or unreadable references, no face in a reference, no avatar, a report
            folder with other files, no recogniser available.
        MissingWeightsError / MissingDependencyError: a recogniser or FID asked for explicitly
            cannot run (the message says what to install or where to put which file).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    avatar_dir = Path(avatar_dir)
    ref_paths, ref_images = load_references(references)
    report_dir = Path(report_dir) if report_dir is not None else _default_report_dir(avatar_dir)
    check_report_dir(report_dir)
    avatar = Avatar.load(avatar_dir, device=_device(config.device))
    fid_plan = _plan_fid(config, len(ref_images))
    recognizers = load_recognizers(config.recognizers, config.weights, config.dlib, config.arcface)
    references_seen = [observe_references(r, ref_paths, ref_images) for r in recognizers]
    timings["load_s"] = time.perf_counter() - started

    grid = config.views.grid()
    bar = progress_bar(len(recognizers) + 3, "evaluate", progress, unit="stage")
    with bar:
        bar.set_postfix_str(f"rendering {len(grid)} views")
        mark = time.perf_counter()
        renders = render_views(avatar, config.views, grid)
        timings["render_s"] = time.perf_counter() - mark
        bar.update(1)

        mark = time.perf_counter()
        identity, neutral_seen = [], []
        for recognizer, refs_seen in zip(recognizers, references_seen):
            bar.set_postfix_str(f"faces by {recognizer.name}")
            seen = observe(recognizer, renders)
            neutral_seen.append(seen)
            identity.append(summarise_views(recognizer, grid, seen, score_matrix(recognizer, seen, refs_seen)))
            bar.update(1)
        timings["identity_s"] = time.perf_counter() - mark

        bar.set_postfix_str("FID/KID")
        mark = time.perf_counter()
        fid = _run_fid(fid_plan, renders, ref_images, config)
        timings["fid_s"] = time.perf_counter() - mark
        bar.update(1)

        bar.set_postfix_str("expressions")
        mark = time.perf_counter()
        expressions = _run_expressions(avatar, recognizers, grid, neutral_seen, references_seen, config)
        timings["expressions_s"] = time.perf_counter() - mark
        bar.update(1)

    report = {
        "tool": "arc2avatar evaluate",
        "version": _version(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "avatar": str(avatar_dir),
        "references": [str(p) for p in ref_paths],
        "views": {
            "azimuths_deg": config.views.azimuths(), "polar_deg": list(config.views.polar_deg),
            "size": config.views.size, "radius": config.views.radius, "fovy_rad": config.views.fovy,
            "background": list(config.views.background),
        },
        "identity": identity,
        "fid": fid,
        "expressions": expressions,
    }
    timings["total_s"] = time.perf_counter() - started
    report["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    files = write_atomically(report_dir, lambda folder: write_report_files(folder, report, renders, grid))
    return EvaluationResult(report_dir, report, files)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available here")
    return name


def _default_report_dir(avatar_dir: Path) -> Path:
    base = avatar_dir.parent if avatar_dir.is_file() else avatar_dir
    return base / REPORT_DIR_NAME


def _version() -> str:
    return __version__


def _plan_fid(config: EvaluateConfig, num_references: int) -> str | None:
    """``None`` = compute FID; otherwise the reason it is skipped. ``on`` fails early instead."""
    if config.fid_mode == "off":
        return "turned off (--fid off)"
    if config.fid_mode == "on":
        torchmetrics_metrics()
        require_inception(config.fid, config.weights)
        if num_references < 2:
            raise InputError(f"FID/KID need at least 2 reference images, got {num_references}: pass more --refs")
        return None
    try:
        torchmetrics_metrics()
    except Arc2AvatarError as error:
        return str(error)
    path = inception_file(config.fid, config.weights)
    if not path.is_file():
        return f"Inception weights {path} not found (pass --inception PATH)"
    if num_references < 2:
        return f"needs at least 2 reference images (got {num_references})"
    return None


def _run_fid(plan: str | None, renders: np.ndarray, references: list[np.ndarray], config: EvaluateConfig) -> dict[str, Any]:
    if plan is not None:
        log.info("FID/KID skipped: %s", plan)
        return {"skipped": plan}
    return fid_kid(list(renders), references, config.fid, config.weights)


def _run_expressions(
    avatar: Avatar, recognizers: list[FaceRecognizer], grid: list[tuple[float, float]],
    neutral_seen: list[Any], references_seen: list[Any], config: EvaluateConfig,
) -> dict[str, Any]:
    if config.expressions is None:
        return {"skipped": "turned off"}
    if avatar.template.get("kind") not in ("builtin", "flame"):
        return {"skipped": "the avatar has no template binding (a bare .ply)"}
    if avatar.template.get("kind") == "flame" and config.flame is None:
        return {"skipped": "a FLAME avatar: pass --flame PATH to evaluate its expressions"}
    setup = setup_for_avatar(avatar, config.flame, config.flame_masks)
    wanted = expression_grid(config.views, config.expressions)
    index = {view: i for i, view in enumerate(grid)}
    if not all(view in index for view in wanted):
        raise InputError(f"expression views at θ {config.expressions.polar_deg:g}° are not among the evaluation views")
    rows = [index[view] for view in wanted]
    neutral = [Observations([seen.faces[i] for i in rows], seen.embeddings[rows]) for seen in neutral_seen]
    return expression_consistency(avatar, setup, recognizers, config.views, neutral, references_seen,
                                  config.expressions)


__all__ = ["EvaluateConfig", "EvaluationResult", "REPORT_DIR_NAME", "evaluate", "load_references"]
