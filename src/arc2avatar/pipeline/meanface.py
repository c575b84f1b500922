"""The avatar's starting point: template → upsampled head → bound splats → mean-face fit (docs/method.md §3, §6).

``build_head`` loads FLAME or builds the built-in template and upsamples it with parents;
``initial_splats`` puts one splat on every upsampled vertex (face splats bound by index);
``fit_mean_face`` optimises the face splats so that their render matches a mesh render of the
face submesh in its mean colours (paper §3.4 eq. 7, §A.1) and caches the result per template.
Written by hand: the mean-face fit is the method's own (the official release shipped only its
result, docs/official-code.md §3.1).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from arc2avatar._cache import cache_root, entry_lock
from arc2avatar.pipeline.preparing import PrepareReport
from arc2avatar._io import atomic_path
from arc2avatar.cameras.samplers import CameraRanges, FacePhaseRanges, sample_face_phase, sample_paper
from arc2avatar.head.raster import render_mesh
from arc2avatar.avatar.template import HeadSetup
from arc2avatar.pipeline.config import MeanFaceConfig
from arc2avatar.pipeline.losses import face_position_loss, l1_dssim
from arc2avatar.splats.checks import check_splat_values
from arc2avatar.splats.model import GaussianSplats, SplatInitConfig
from arc2avatar.splats.optim import SplatOptimConfig, make_optimizer, update_learning_rates
from arc2avatar.splats.render import rasterize
from arc2avatar.pipeline.metrics import psnr

if TYPE_CHECKING:
    from arc2avatar.pipeline.config import CreateConfig  # typing only

log = logging.getLogger(__name__)


MEAN_FACE_STEP = "mean-face fit"


def initial_splats(setup: HeadSetup, init: SplatInitConfig = SplatInitConfig()) -> GaussianSplats:
    """One splat per upsampled vertex, face splats bound to their vertex (docs/method.md §4)."""
    head = setup.upsampled.head
    return GaussianSplats.from_template(head.vertices, head.vertex_colors, head.face_mask, config=init)


def _cache_key(
    setup: HeadSetup, config: MeanFaceConfig, cameras: FacePhaseRanges, init: SplatInitConfig, head_cameras: CameraRanges
) -> str:
    head = setup.upsampled.head
    digest = hashlib.sha256()
    for tensor in (head.vertices, head.faces, head.vertex_colors, head.face_mask):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    fit = {k: v for k, v in asdict(config).items() if k != "cache"}
    digest.update(json.dumps([fit, asdict(cameras), asdict(init), asdict(head_cameras)], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def fit_mean_face(
    setup: HeadSetup,
    splats: GaussianSplats,
    config: MeanFaceConfig,
    cameras: FacePhaseRanges = FacePhaseRanges(),
    *,
    head_cameras: CameraRanges = CameraRanges(),
    init: SplatInitConfig = SplatInitConfig(),
    position_weight: float = 1e8,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = False,
    report: PrepareReport | None = None,
) -> tuple[GaussianSplats, dict[str, float]]:
    """Fit the template splats to mesh renders of the template's mean colours (paper §3.4 eq. 7; docs/method.md §6).

    Stage 1 (docs/method.md §6): the face splats alone against the face submesh, from the zoomed
    face-phase cameras. Stage 2 (ours, ``head_iterations``): every splat against the whole mesh
    from the training orbit, so free splats start as a fitted surface too (the official release
    loaded such a full-head set, docs/official-code.md §3.1). Both use L1 + 0.2·D-SSIM on white and
    the face-position regulariser toward the template vertices (``position_weight``, docs/method.md §4),
    so the correspondence survives. The result is cached per (template, config) under
    ``cache_root()/meanface`` (``$ARC2AVATAR_CACHE`` or ``~/.cache/arc2avatar``); anchors are the
    fitted face positions. ``report`` hears each fit's iterations, or that the cache answered.

    Returns:
        the splats (a new object) and ``{"psnr": face PSNR, "head_psnr": ..., "cached": 0/1}``.
    """
    key = _cache_key(setup, config, cameras, init, head_cameras)
    cache_file = cache_root() / "meanface" / f"{setup.info['name']}-{key}.safetensors"
    report = report or PrepareReport(None)
    if not config.cache:
        return _fit_mean_face(setup, splats, config, cameras, head_cameras, position_weight, device, seed,
                              progress, None, report)
    with entry_lock(cache_file) as locked:  # another process computing this entry: wait, then read it
        cached = _read_cached_mean_face(cache_file, splats)
        if cached is not None:
            report.step(MEAN_FACE_STEP, 1, 1, cached=True)
            return cached
        return _fit_mean_face(setup, splats, config, cameras, head_cameras, position_weight, device, seed,
                              progress, cache_file if locked else None, report)


def _read_cached_mean_face(cache_file: Path, splats: GaussianSplats) -> tuple[GaussianSplats, dict[str, float]] | None:
    """The cached fit, or None when absent or unreadable (a damaged entry is recomputed, with a warning)."""
    if not cache_file.is_file():
        return None
    try:
        cached = load_file(str(cache_file))
        stats = {k[len("stat."):]: float(v) for k, v in cached.items() if k.startswith("stat.")}
        fitted = GaussianSplats.from_tensors({k: v for k, v in cached.items() if not k.startswith("stat.")})
        check_splat_values(fitted.to_tensors(), str(cache_file))
    except Exception as error:  # noqa: BLE001 — any damaged cache entry is recomputed
        log.warning("mean-face cache entry %s is unreadable (%s); fitting again", cache_file, error)
        return None
    stats["cached"] = 1.0
    return fitted.to(splats.device), stats


def _fit_mean_face(setup: HeadSetup, splats: GaussianSplats, config: MeanFaceConfig, cameras: Any,
                   head_cameras: Any, position_weight: float, device: Any, seed: int, progress: bool,
                   cache_file: Path | None, report: PrepareReport) -> tuple[GaussianSplats, dict[str, float]]:
    stats: dict[str, float] = {"iterations": float(config.iterations), "head_iterations": float(config.head_iterations)}
    vertices, faces, colors = (t.to(device) for t in (setup.upsampled.head.vertices, setup.upsampled.head.faces,
                                                      setup.upsampled.head.vertex_colors))
    num_face_triangles = setup.upsampled.num_face_triangles
    work = splats.detach_copy().to(device)
    face_rows = work.face_mask.nonzero().squeeze(-1)
    generator = torch.Generator().manual_seed(seed)
    size = config.resolution
    if config.iterations > 0:
        face = work.select(face_rows)
        sample_face = lambda: sample_face_phase(cameras, generator, size, size, config.views_per_step)  # noqa: E731
        _fit(face, vertices, faces[:num_face_triangles], colors, sample_face, config, config.iterations,
             position_weight, "mean face", progress, report)
        work = _replace_rows(work, face_rows, face)
        stats["psnr"] = _psnr(face, vertices, faces[:num_face_triangles], colors,
                              sample_face_phase(cameras, torch.Generator().manual_seed(12345), size, size, 8).to(device))
    if config.head_iterations > 0:
        sample_head = lambda: sample_paper(head_cameras, 0, generator, size, size, 4)  # noqa: E731
        _fit(work, vertices, faces, colors, sample_head, config, config.head_iterations, position_weight,
             "mean head", progress, report)
        stats["head_psnr"] = _psnr(work, vertices, faces, colors,
                                   sample_paper(head_cameras, 0, torch.Generator().manual_seed(12345), size, size, 8).to(device))
    work.rebase_anchors()
    if cache_file is not None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in work.to_tensors().items()}
        tensors.update({f"stat.{k}": torch.tensor(v) for k, v in stats.items()})
        try:
            with atomic_path(cache_file) as tmp:  # readers only ever see a complete entry
                save_file(tensors, str(tmp))
        except OSError as error:
            log.warning("cannot write the mean-face cache %s (%s); continuing without it", cache_file, error.strerror)
    stats["cached"] = 0.0
    return work.to(splats.device), stats


def _replace_rows(splats: GaussianSplats, rows: Tensor, part: GaussianSplats) -> GaussianSplats:
    """A copy of ``splats`` whose ``rows`` carry ``part``'s tensors (parameters and buffers)."""
    tensors = {k: v.detach().clone() for k, v in splats.to_tensors().items()}
    for name, value in part.to_tensors().items():
        tensors[name][rows.to(tensors[name].device)] = value.detach().to(tensors[name])
    return GaussianSplats.from_tensors(tensors)


def _fit(
    splats: GaussianSplats,
    vertices: Tensor,
    faces: Tensor,
    colors: Tensor,
    sample: Any,
    config: MeanFaceConfig,
    iterations: int,
    position_weight: float,
    desc: str,
    progress: bool,
    report: PrepareReport,
) -> None:
    """Optimise ``splats`` in place against mesh renders (L1 + D-SSIM, face positions held)."""
    from tqdm.auto import tqdm

    device = splats.means.device
    optim_config = SplatOptimConfig(max_steps=iterations)
    optimizer = make_optimizer(splats, optim_config)
    white = torch.ones(3, device=device)
    face = splats.face_mask
    step = f"{desc.replace(' ', '-')} fit"
    report.step(step, 0, iterations)
    for iteration in tqdm(range(1, iterations + 1), desc=desc, disable=not progress, leave=False):
        update_learning_rates(optimizer, iteration, optim_config)
        if config.lr_scale != 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= config.lr_scale
        cams = sample().to(device)
        target = render_mesh(vertices, faces, colors, cams, white).rgb
        render = rasterize(splats.means, splats.rotations, splats.scales, splats.opacities, splats.colors, cams, white)
        loss = l1_dssim(render.rgb, target, config.dssim_weight, channels_last=True)
        if position_weight and bool(face.any()):
            loss = loss + position_weight * face_position_loss(splats.means[face], splats.anchors[face])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        report.step(step, iteration, iterations)


@torch.no_grad()
def _psnr(splats: GaussianSplats, vertices: Tensor, faces: Tensor, colors: Tensor, cams: Any) -> float:
    white = torch.ones(3, device=vertices.device)
    target = render_mesh(vertices, faces, colors, cams, white).rgb
    render = rasterize(splats.means, splats.rotations, splats.scales, splats.opacities, splats.colors, cams, white).rgb
    return float(psnr(render.clamp(0, 1), target, channels_last=True))


def fit_mean_face_for_run(
    setup: HeadSetup, config: CreateConfig, device: torch.device | str = "cpu", progress: bool = False,
    report: PrepareReport | None = None,
) -> tuple[GaussianSplats, dict[str, float]]:
    """``fit_mean_face`` of one run's settings: its template splats (``splat_init``), fitted with
    its ``meanface`` group, face and head cameras, face-position weight and seed."""
    return fit_mean_face(
        setup, initial_splats(setup, config.splat_init), config.meanface, config.face_cameras,
        head_cameras=config.cameras, init=config.splat_init, position_weight=config.losses.face_position,
        device=device, seed=config.seed, progress=progress, report=report,
    )
