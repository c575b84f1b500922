"""The avatar's starting point: template → upsampled head → bound splats → mean-face fit (spec §3, §6).

``build_head`` loads FLAME or builds the built-in template and upsamples it with parents;
``initial_splats`` puts one splat on every upsampled vertex (face splats bound by index);
``fit_mean_face`` optimises the face splats so that their render matches a mesh render of the
face submesh in its mean colours (paper §3.4 eq. 7, §A.1) and caches the result per template.
Written by hand: the mean-face fit is the method's own (the official release shipped only its
result, official-release §3.1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from arc2avatar._io import atomic_path
from arc2avatar.cameras.samplers import FacePhaseRanges, sample_face_phase
from arc2avatar.errors import InputError
from arc2avatar.head.model import HeadModel
from arc2avatar.head.raster import render_mesh
from arc2avatar.head.upsample import UpsampledHead, upsample_head
from arc2avatar.pipeline.config import MeanFaceConfig, TemplateConfig
from arc2avatar.pipeline.losses import l1_dssim
from arc2avatar.splats.model import GaussianSplats, SplatInitConfig
from arc2avatar.splats.optim import SplatOptimConfig, make_optimizer, update_learning_rates
from arc2avatar.splats.render import rasterize

log = logging.getLogger(__name__)

CACHE_ENV = "ARC2AVATAR_CACHE"


@dataclass(frozen=True)
class HeadSetup:
    """A template ready for splats.

    Attributes:
        base: the template as loaded (FLAME or built-in).
        upsampled: its upsampled version with parents (the splats bind to these vertices).
        info: JSON-able description stored in avatar bundles (kind, name, levels, file hash).
    """

    base: HeadModel
    upsampled: UpsampledHead
    info: dict[str, Any]


def cache_dir() -> Path:
    """Where cached mean faces live: ``$ARC2AVATAR_CACHE`` or ``~/.cache/arc2avatar``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "arc2avatar"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_base_head(config: TemplateConfig) -> tuple[HeadModel, dict[str, Any]]:
    """The template named by ``config`` and its bundle description."""
    if config.kind == "flame":
        from arc2avatar.head.flame import load_flame

        if not config.flame_path:
            raise InputError("template.kind is 'flame' but no FLAME file was given (--flame PATH)")
        path = Path(config.flame_path)
        if not path.is_file():
            raise InputError(f"FLAME file {path} does not exist")
        head = load_flame(path, masks_path=config.masks_path)
        info = {"kind": "flame", "name": head.name, "file": path.name, "sha256": _sha256(path)}
        if config.masks_path:
            info["masks_file"] = Path(config.masks_path).name
        return head, info
    from arc2avatar.head.builtin import builtin_head

    head = builtin_head()
    return head, {"kind": "builtin", "name": head.name}


def build_head(config: TemplateConfig) -> HeadSetup:
    """Load the template and upsample it (face and rest separately, spec §3)."""
    base, info = load_base_head(config)
    upsampled = upsample_head(base, config.face_levels, config.rest_levels)
    info = {**info, "face_levels": config.face_levels, "rest_levels": config.rest_levels}
    log.info(
        "template %s: %d vertices → %d upsampled (%d face)",
        base.name, base.num_vertices, upsampled.head.num_vertices, int(upsampled.head.face_mask.sum()),
    )
    return HeadSetup(base=base, upsampled=upsampled, info=info)


def initial_splats(setup: HeadSetup, init: SplatInitConfig = SplatInitConfig()) -> GaussianSplats:
    """One splat per upsampled vertex, face splats bound to their vertex (spec §4)."""
    head = setup.upsampled.head
    return GaussianSplats.from_template(head.vertices, head.vertex_colors, head.face_mask, config=init)


def face_mesh(setup: HeadSetup) -> tuple[Tensor, Tensor, Tensor]:
    """(vertices (V,3), face triangles (Ff,3) into them, colours (V,3)) of the face submesh."""
    up = setup.upsampled
    return up.head.vertices, up.head.faces[: up.num_face_triangles], up.head.vertex_colors


def _cache_key(setup: HeadSetup, config: MeanFaceConfig, cameras: FacePhaseRanges, init: SplatInitConfig) -> str:
    head = setup.upsampled.head
    digest = hashlib.sha256()
    for tensor in (head.vertices, head.faces, head.vertex_colors, head.face_mask):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    fit = {k: v for k, v in asdict(config).items() if k != "cache"}
    digest.update(json.dumps([fit, asdict(cameras), asdict(init)], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def fit_mean_face(
    setup: HeadSetup,
    splats: GaussianSplats,
    config: MeanFaceConfig,
    cameras: FacePhaseRanges = FacePhaseRanges(),
    *,
    init: SplatInitConfig = SplatInitConfig(),
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> tuple[GaussianSplats, dict[str, float]]:
    """Fit the face splats to the mean-coloured face mesh (paper §3.4 eq. 7; spec §6).

    All face-splat parameters are optimised with L1 + 0.2·D-SSIM against mesh renders from the
    zoomed face-phase cameras on white; positions keep the template correspondence (their rate is
    that of the main run, and they start on their vertices). Free splats are untouched. The fitted
    face rows are cached per (template, config) under ``cache_dir()/meanface``; anchors are rebased
    to the fitted positions (the official x0 = the checkpoint's positions, official-release §3.1).

    Returns:
        the splats (a new object) and ``{"psnr": ..., "iterations": ..., "cached": 0/1}``.
    """
    key = _cache_key(setup, config, cameras, init)
    cache_file = cache_dir() / "meanface" / f"{setup.info['name']}-{key}.safetensors"
    face_rows = splats.face_mask.nonzero().squeeze(-1)
    face = splats.select(face_rows).to(device)
    stats: dict[str, float] = {"iterations": float(config.iterations), "cached": 0.0}
    if config.cache and cache_file.is_file():
        cached = load_file(str(cache_file))
        stats = {k[len("stat."):]: float(v) for k, v in cached.items() if k.startswith("stat.")}
        stats["cached"] = 1.0
        face = GaussianSplats.from_tensors({k: v for k, v in cached.items() if not k.startswith("stat.")}).to(device)
    elif config.iterations > 0:
        face, psnr = _optimise_face(setup, face, config, cameras, device, seed, progress)
        stats["psnr"] = psnr
        if config.cache:
            tensors = {k: v.detach().cpu().contiguous() for k, v in face.to_tensors().items()}
            tensors.update({f"stat.{k}": torch.tensor(v) for k, v in stats.items() if k != "cached"})
            with atomic_path(cache_file) as tmp:
                save_file(tensors, str(tmp))
    face.rebase_anchors()
    return _replace_rows(splats, face_rows, face.to(splats.device)), stats


def _replace_rows(splats: GaussianSplats, rows: Tensor, part: GaussianSplats) -> GaussianSplats:
    """A copy of ``splats`` whose ``rows`` carry ``part``'s tensors (parameters and buffers)."""
    tensors = {k: v.detach().clone() for k, v in splats.to_tensors().items()}
    for name, value in part.to_tensors().items():
        tensors[name][rows.to(tensors[name].device)] = value.detach().to(tensors[name])
    return GaussianSplats.from_tensors(tensors)


def _optimise_face(
    setup: HeadSetup,
    face: GaussianSplats,
    config: MeanFaceConfig,
    cameras: FacePhaseRanges,
    device: torch.device | str,
    seed: int,
    progress: bool,
) -> tuple[GaussianSplats, float]:
    from tqdm.auto import tqdm

    vertices, triangles, colors = (t.to(device) for t in face_mesh(setup))
    optim_config = SplatOptimConfig(max_steps=config.iterations)
    optimizer = make_optimizer(face, optim_config)
    for group in optimizer.param_groups:
        group["lr"] *= config.lr_scale
    generator = torch.Generator().manual_seed(seed)
    white = torch.ones(3, device=device)
    size = config.resolution
    bar = tqdm(range(1, config.iterations + 1), desc="mean face", disable=not progress, leave=False)
    for iteration in bar:
        update_learning_rates(optimizer, iteration, optim_config)
        if config.lr_scale != 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= config.lr_scale
        cams = sample_face_phase(cameras, generator, size, size, config.views_per_step).to(device)
        with torch.no_grad():
            target = render_mesh(vertices, triangles, colors, cams, white).rgb
        render = rasterize(face.means, face.rotations, face.scales, face.opacities, face.colors, cams, white)
        loss = l1_dssim(render.rgb, target, config.dssim_weight, channels_last=True)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return face, _face_psnr(face, vertices, triangles, colors, cameras, size, device)


@torch.no_grad()
def _face_psnr(face, vertices, triangles, colors, cameras: FacePhaseRanges, size: int, device) -> float:
    from arc2avatar.pipeline.metrics import psnr

    generator = torch.Generator().manual_seed(12345)
    cams = sample_face_phase(cameras, generator, size, size, 8).to(device)
    white = torch.ones(3, device=device)
    target = render_mesh(vertices, triangles, colors, cams, white).rgb
    render = rasterize(face.means, face.rotations, face.scales, face.opacities, face.colors, cams, white).rgb
    return float(psnr(render.clamp(0, 1), target, channels_last=True))
