"""The configuration of ``arc2avatar create``: ``CreateConfig`` and its groups, every paper number
a field (the typed-config machinery itself is ``arc2avatar.confkit``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from arc2avatar.cameras.model import MAX_RESOLUTION
from arc2avatar.cameras.samplers import CameraRanges, FacePhaseRanges, ViewRings
from arc2avatar.confkit import nonfinite_fields
from arc2avatar.avatar.template import MAX_TEMPLATE_LEVELS, TemplateConfig
from arc2avatar.errors import InputError
from arc2avatar.prior.configs import AccelConfig, PriorConfig
from arc2avatar.splats.densify import MaskedDensifyConfig
from arc2avatar.splats.model import SplatInitConfig
from arc2avatar.splats.optim import SplatOptimConfig

# Largest seed: torch generators take 64-bit seeds and the run also seeds with seed + 1.
MAX_SEED = 2**63 - 2
# Most optimisation steps a run (or the mean-face fit) may ask for: 100,000, about 14× the paper's
# 7000 (docs/official-code.md §5.2); beyond that a typo (iterations=1e12) would run for years.
MAX_ITERATIONS = 100_000

# ─────────────────────────────── the pipeline's configuration ───────────────────────────────


@dataclass(frozen=True)
class MeanFaceConfig:
    """Subject-independent mean-face initialisation of the face splats (docs/method.md §6; paper §3.4 eq. 7, §A.1).

    Attributes:
        iterations: optimisation steps of the L1 + D-SSIM fit of the face splats to mesh renders
            of the template's mean colour (docs/method.md §6: ≈ 1–2K).
        lr_scale: multiplier on the splat learning rates (``optim``) during this fit (1 = the
            same rates as the main run).
        dssim_weight: λ of L = (1 − λ)·L1 + λ·(1 − SSIM) (docs/method.md §6: 0.2, as 3DGS).
        resolution: render size of the fit, pixels (square; docs/method.md §5: 512).
        views_per_step: face-phase cameras per step (docs/method.md §5 face-phase ranges).
        head_iterations: steps of a second fit of ALL template splats to renders of the whole
            template mesh from the training orbit (ours: the official release started from a
            precomputed full-head splat set, ``mean_face_2.pth``, docs/official-code.md §3.1; without
            it the free splats start unfitted and the guidance first makes them translucent).
        cache: reuse the fitted mean face from the per-template cache when present (docs/method.md §6: it
            is subject-independent).
    """

    iterations: int = 1500
    head_iterations: int = 1000
    lr_scale: float = 1.0
    dssim_weight: float = 0.2
    resolution: int = 512
    views_per_step: int = 4
    cache: bool = True


@dataclass(frozen=True)
class LossWeights:
    """Weights of the losses besides the guidance (docs/method.md §4; docs/official-code.md §3.5).

    Attributes:
        tv_rgb: weight of the total variation of the RGB renders (official ``lambda_tv`` = 1).
        tv_disparity: weight of the total variation of the normalised disparity maps
            (docs/official-code.md §4.3; 1).
        scale: weight of mean(activated, augmented splat scales) (official: 1, hard-coded).
        face_position: weight of the L2 pull of face splats to their template anchors
            (official: 1e8, which under Adam effectively freezes them).
        face_laplacian: weight of the uniform-Laplacian difference on face triangles (official: 1e8).
        freeze_face_xyz: exact alternative to the 1e8 weights: face-splat positions are not
            optimised at all (the two regulariser terms are then skipped). Changes behaviour
            slightly: the 1e8 terms still let positions drift by Adam's step size.
        frozen_regions: template regions whose splats keep their initial values (colour,
            opacity, scale, rotation, position). The neutral views an avatar is made from do not
            show the lid shells, but their splats' edges peek out beside the eyes, the guidance
            painted them with the eye's colours, and a trained avatar blinked a dark smear
            (issue 24). Adding ``mouth_interior`` keeps the mouth's inside too (an open mouth
            then shows the template's dark cavity and teeth instead of one painted with the lips'
            colours), at a cost in identity: the photo demo's dlib distance 0.429 → 0.448
            (docs/expressions.md). Expression correction (docs/method.md §7) trains them all: it
            sees them. Names missing from the template are ignored.
    """

    tv_rgb: float = 1.0
    tv_disparity: float = 1.0
    scale: float = 1.0
    face_position: float = 1e8
    face_laplacian: float = 1e8
    freeze_face_xyz: bool = False
    frozen_regions: tuple[str, ...] = ("eyelids",)


@dataclass(frozen=True)
class AugmentConfig:
    """Render-time augmentation of training renders (docs/method.md §4; docs/official-code.md §3.4).

    Attributes:
        scale_jitter_std_ratio: std of the multiplicative scale jitter, s ← max(s + ratio·s·N(0,1),
            0) (official √0.2/4 ≈ 0.112).
        background: base background colour, RGB in [0, 1] (official: white).
        background_replace_prob: probability that a render's background is replaced (official 0.66).
        random_color_fraction: share of replacements that use a uniformly random colour; the
            rest use black (official ½).
    """

    scale_jitter_std_ratio: float = math.sqrt(0.2) / 4
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    background_replace_prob: float = 0.66
    random_color_fraction: float = 0.5


@dataclass(frozen=True)
class OutputConfig:
    """What ``create`` writes besides the avatar (docs/architecture.md, "Outputs of `create`").

    The turntable's cameras (frames, θ) are in ``view_rings``.

    Attributes:
        size: side of the images in ``views.png`` and the frames of ``turntable.mp4``, pixels
            (square), whatever the training ``resolution`` (a 128² CPU run still shows 512²
            outputs; issue 20).
        video_fps: frame rate of ``turntable.mp4`` (official: 40).
        video_quality: imageio-ffmpeg quality, 0–10 (10 = best; 8 is visually lossless for renders).
        sheet_columns: images per row of the test-view PNG sheet (8 = one ring of test views).
        ply_layout: layout of ``avatar.ply``: "compact" (the SH degree the avatar holds, 14
            floats per splat; web viewers and most tools) or "unity" (62 floats, SH-3 zero
            padded, for the Unity importer); docs/exports.md.
    """

    size: int = 512
    video_fps: int = 30
    video_quality: int = 8
    sheet_columns: int = 8
    ply_layout: Literal["compact", "unity"] = "compact"


@dataclass(frozen=True)
class CreateConfig:
    """Configuration of ``arc2avatar create``: one photo in, a Gaussian-splat head avatar out.

    Attributes:
        preset: the named preset these values started from (paper, release, fast, cpu-smoke, photo-demo);
            informational once resolved.
        seed: seed of every random generator of the run (cameras, augmentation, noise).
        resolution: training render size in pixels, square (docs/method.md §5: 512; the prior works at 512).
        views_per_step: cameras rendered per optimisation step (docs/method.md §5: 4).
        iterations: optimisation steps of the main run (docs/official-code.md §5.2: 7000).
        face_phase_fraction: fraction of the iterations at the start that render and optimise
            only face splats with zoomed face cameras (docs/method.md §5 / paper §A.2: 0.1; 0 disables).
        checkpoint_every: iterations between resumable checkpoints (official: 1000).
        log_every: iterations between JSON-lines log records.
        test_every: iterations between renders of the eye-level test views to ``progress.png``
            (official: 1000; 0 = never).
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
        guidance: the prior ``create`` runs with when it is given none, by name
            (``arc2avatar.pipeline.priors.PRIORS``): "arc2face" (the method, paper §3.1–3.3) or
            "oracle" (the offline demo's known target head, docs/method.md §2.4).
        latent_encoder: how renders become the prior's latents: "vae" (SD-1.5 VAE, the method)
            or "rgb" (2x−1 resized to rgb_latent_resolution; CPU smoke and oracle runs only).
        rgb_latent_resolution: latent size in pixels when latent_encoder is "rgb".
        sampler: training camera sampler: "paper" (one azimuth per quadrant, paper E.5) or
            "release" (i.i.d. with γ = 1.5 concentration, docs/official-code.md §4.2).
        template: the head template and its upsampling.
        meanface: the mean-face initialisation.
        losses: weights of the non-guidance losses.
        augment: render-time augmentation.
        outputs: videos and sheets written at the end.
        splat_init: initial splat opacities and scales (``arc2avatar.splats.model.SplatInitConfig``).
        prior: the guidance prior (``arc2avatar.prior.configs.PriorConfig``, docs/method.md §2).
        optim: learning rates and Adam (``arc2avatar.splats.optim.SplatOptimConfig``, docs/method.md §4).
        densify: masked densification, pruning, resets and (``densify.late``) the paper's late
            pruning (``arc2avatar.splats.densify.MaskedDensifyConfig``, docs/method.md §4).
        cameras: training camera ranges and their relaxation
            (``arc2avatar.cameras.samplers.CameraRanges``, docs/method.md §5).
        face_cameras: zoomed cameras of the face phase
            (``arc2avatar.cameras.samplers.FacePhaseRanges``, docs/method.md §5).
        view_rings: fixed test, held-out and turntable views
            (``arc2avatar.cameras.samplers.ViewRings``, docs/method.md §5).
        accel: how the prior runs on a CUDA GPU: CUDA graphs, channels_last, fused LoRA, optional
            torch.compile (``arc2avatar.prior.accel.AccelConfig``; issue 9). Never changes the
            maths; ignored on a CPU.
    """

    preset: str = "paper"
    seed: int = 0
    resolution: int = 512
    views_per_step: int = 4
    iterations: int = 7000
    face_phase_fraction: float = 0.1
    checkpoint_every: int = 1000
    log_every: int = 100
    test_every: int = 1000
    device: str = "auto"
    guidance: str = "arc2face"
    latent_encoder: Literal["vae", "rgb"] = "vae"
    rgb_latent_resolution: int = 64
    sampler: Literal["paper", "release"] = "paper"
    template: TemplateConfig = field(default_factory=TemplateConfig)
    meanface: MeanFaceConfig = field(default_factory=MeanFaceConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    # Other packages' configs, nested so that one YAML file describes the whole run.
    splat_init: SplatInitConfig = field(default_factory=SplatInitConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    optim: SplatOptimConfig = field(default_factory=SplatOptimConfig)
    densify: MaskedDensifyConfig = field(default_factory=MaskedDensifyConfig)
    cameras: CameraRanges = field(default_factory=CameraRanges)
    face_cameras: FacePhaseRanges = field(default_factory=FacePhaseRanges)
    view_rings: ViewRings = field(default_factory=ViewRings)
    accel: AccelConfig = field(default_factory=AccelConfig)


def _may_compile(cfg: CreateConfig) -> bool:
    """Whether this run could compile the prior (the fast path on a CUDA device): only then are
    the Inductor options read, and worth importing Inductor (seconds) to check."""
    if not cfg.accel.enabled or cfg.accel.compile == "none" or cfg.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def validate(cfg: CreateConfig) -> CreateConfig:
    """Cross-field checks of a resolved config; raises ``InputError`` listing every problem.

    Run once after preset → YAML → ``--set`` (intermediate states may legitimately be invalid).
    """
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    problems += nonfinite_fields(cfg)
    need(0 <= cfg.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED} (got {cfg.seed})")
    need(1 <= cfg.iterations <= MAX_ITERATIONS, f"iterations must be in 1..{MAX_ITERATIONS} (got {cfg.iterations})")
    need(cfg.resolution >= 8 and cfg.resolution % 8 == 0,
         f"resolution must be a positive multiple of 8 (the VAE downsamples ×8), got {cfg.resolution}")
    for name, value in (("resolution", cfg.resolution), ("rgb_latent_resolution", cfg.rgb_latent_resolution),
                        ("meanface.resolution", cfg.meanface.resolution)):
        need(value <= MAX_RESOLUTION, f"{name} must be ≤ {MAX_RESOLUTION} px (the prior works at 512²), got {value}")
    need(cfg.views_per_step >= 1, f"views_per_step must be ≥ 1 (got {cfg.views_per_step})")
    need(cfg.sampler != "paper" or cfg.views_per_step % 4 == 0,
         f"sampler 'paper' draws one view per azimuth quadrant, so views_per_step must be a multiple "
         f"of 4 (got {cfg.views_per_step}); use --set sampler=release for other batch sizes")
    need(0.0 <= cfg.face_phase_fraction < 1.0,
         f"face_phase_fraction must be in [0, 1) (got {cfg.face_phase_fraction})")
    need(cfg.test_every >= 0, f"test_every must be ≥ 0 (0 = never; got {cfg.test_every})")
    for name in ("checkpoint_every", "log_every"):
        need(getattr(cfg, name) >= 1, f"{name} must be ≥ 1 (got {getattr(cfg, name)})")
    need(cfg.device == "auto" or cfg.device == "cpu" or re.fullmatch(r"cuda(:\d+)?", cfg.device) is not None,
         f"device must be auto, cpu, cuda or cuda:N (got {cfg.device!r})")
    need(cfg.rgb_latent_resolution >= 1, "rgb_latent_resolution must be ≥ 1")
    need(cfg.template.kind != "flame" or bool(cfg.template.flame_path),
         "template.kind is 'flame' but template.flame_path is not set: give the FLAME model file, "
         "e.g. --set template.flame_path=flame2023_Open.pkl")
    need(cfg.template.face_levels >= 0 and cfg.template.rest_levels >= 0, "template levels must be ≥ 0")
    for name in ("iterations", "head_iterations"):
        need(0 <= getattr(cfg.meanface, name) <= MAX_ITERATIONS,
             f"meanface.{name} must be in 0..{MAX_ITERATIONS} (got {getattr(cfg.meanface, name)})")
    need(cfg.meanface.views_per_step >= 1, f"meanface.views_per_step must be ≥ 1 (got {cfg.meanface.views_per_step})")
    need(cfg.meanface.lr_scale > 0, f"meanface.lr_scale must be > 0 (got {cfg.meanface.lr_scale})")
    need(cfg.template.face_levels <= MAX_TEMPLATE_LEVELS and cfg.template.rest_levels <= MAX_TEMPLATE_LEVELS,
         f"template levels must be ≤ {MAX_TEMPLATE_LEVELS} (each level ≈ ×4 vertices)")
    need(0.0 <= cfg.meanface.dssim_weight <= 1.0, "meanface.dssim_weight must be in [0, 1]")
    need(cfg.meanface.resolution >= 8, "meanface.resolution must be ≥ 8")
    for name in ("tv_rgb", "tv_disparity", "scale", "face_position", "face_laplacian"):
        need(getattr(cfg.losses, name) >= 0, f"losses.{name} must be ≥ 0")
    for name in ("grad_threshold", "percent_dense", "scene_extent", "split_scale_factor",
                 "prune_max_screen_radius", "prune_max_world_scale_fraction"):
        need(getattr(cfg.densify, name) > 0, f"densify.{name} must be > 0 (got {getattr(cfg.densify, name)})")
    need(cfg.densify.split_children >= 1, f"densify.split_children must be ≥ 1 (got {cfg.densify.split_children})")
    need(0.0 <= cfg.densify.prune_min_opacity <= 1.0, "densify.prune_min_opacity must be in [0, 1]")
    need(0.0 < cfg.densify.reset_max_opacity <= 1.0, "densify.reset_max_opacity must be in (0, 1]")
    need(cfg.augment.scale_jitter_std_ratio >= 0, "augment.scale_jitter_std_ratio must be ≥ 0")
    need(all(0.0 <= c <= 1.0 for c in cfg.augment.background), "augment.background must be RGB in [0, 1]")
    for name in ("background_replace_prob", "random_color_fraction"):
        need(0.0 <= getattr(cfg.augment, name) <= 1.0, f"augment.{name} must be in [0, 1]")
    need(16 <= cfg.outputs.size <= MAX_RESOLUTION, f"outputs.size must be in 16..{MAX_RESOLUTION} px, got {cfg.outputs.size}")
    need(cfg.outputs.video_fps >= 1, "outputs.video_fps must be ≥ 1")
    need(0 <= cfg.outputs.video_quality <= 10, "outputs.video_quality must be in 0..10")
    need(cfg.outputs.sheet_columns >= 1, "outputs.sheet_columns must be ≥ 1")
    if _may_compile(cfg):
        try:
            cfg.accel.check_inductor_options()
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise InputError("invalid configuration: " + "; ".join(problems))
    return cfg
