"""Named presets of ``arc2avatar create`` and the resolution order preset → YAML file → ``--set``.

Presets are DATA: each is a flat mapping of dotted keys to values applied over the defaults of
``CreateConfig`` (which are the ``paper`` numbers). Iteration-based schedules (densify from/until/
every, opacity resets, camera relaxation, late pruning, checkpoints, ...) are written for the
reference run of 7000 iterations and scaled proportionally to ``iterations`` by
``rescale_schedules``, so a 400-iteration smoke run still densifies, relaxes its cameras and
prunes at the same *fractions* of the run. Values that the user sets explicitly (YAML file or
``--set``) are never rescaled.

Written by hand: it is this project's policy (which numbers each preset changes and why), not
something a library provides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from arc2avatar._io import atomic_write_text
from arc2avatar.confkit import dump_yaml, flatten, get_value, has_schema, load_yaml, merge, parse_override, unflatten
from arc2avatar.errors import InputError

if TYPE_CHECKING:
    from arc2avatar.pipeline.config import CreateConfig  # typing only: pipeline.config loads torch (CLI start)

# The run length every default schedule is written for (docs/official-code.md §5.2: 7000 iterations).
REFERENCE_ITERATIONS = 7000

# Dotted paths of every config value counted in iterations that should follow the run length.
# Paths through a loose ``dict`` slot (a package whose config is not wired in yet) or through a
# ``None`` group (e.g. ``densify.late`` in ``release``) are skipped; a path naming a field that a
# dataclass does not have is a programming error (raised, and caught by the tests).
SCHEDULE_PATHS: tuple[str, ...] = (
    "checkpoint_every",
    "test_every",
    "optim.max_steps",  # log-linear LR decay spans the whole run (docs/official-code.md §3.2)
    "densify.densify_every",
    "densify.densify_from",
    "densify.densify_until",
    "densify.reset_every",
    "densify.reset_from",
    "densify.reset_until",
    "densify.prune_below_face_every",
    "densify.prune_below_face_until",
    "densify.late.disconnected_every",
    "densify.late.targeted_every",
    "cameras.relax_every",  # camera-range relaxation every 1500 it (docs/official-code.md §4.2)
)


@dataclass(frozen=True)
class Preset:
    """A named set of overrides over the ``CreateConfig`` defaults.

    Attributes:
        name: the name given to ``--preset``.
        summary: one line for ``--help`` and the resolved config's header.
        overrides: dotted key → value, applied over the defaults; iteration schedules in it are
            written for a 7000-iteration run and rescaled like the defaults.
    """

    name: str
    summary: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


PAPER = Preset(
    name="paper",
    summary="The paper's method with every number of docs/method.md (default).",
    overrides=MappingProxyType({}),  # the CreateConfig defaults ARE the paper numbers
)

RELEASE = Preset(
    name="release",
    summary="The official release's behaviour, without its bugs (docs/official-code.md §6–§7).",
    overrides=MappingProxyType({
        # i.i.d. views with γ = 1.5 concentration instead of one per quadrant (§4.2, §6 row E.5)
        "sampler": "release",
        # a single full-head phase, no zoomed face phase (§6 row §3.4/A.2)
        "face_phase_fraction": 0.0,
        # the release's extra rule: prune free splats below the face every 100 it (§3.3)
        "densify.prune_below_face_every": 100,
        # nothing changes topology after densification ends: no late pruning (§6 row E.4)
        "densify.late": None,
        # Kept fixed on purpose (the release's bugs, docs/official-code.md §7): densification
        # statistics over all 4 views, face opacities untouched by resets, no optimiser steps
        # skipped after prune-below, VAE input clamped.
    }),
)

FAST = Preset(
    name="fast",
    summary="About 9× cheaper than paper (≤ 3 min on one H200), with visibly less detail; for previews.",
    overrides=MappingProxyType({
        # 1000 instead of 7000 ISM steps (the prior is > 95% of the cost, docs/benchmarks.md).
        # Schedules follow proportionally, so densification still ends at 40% of the run and the
        # cameras still relax 4 times. Trades: less detail and identity sharpness.
        "iterations": 1000,
        # DDIM-inversion stride δS 200 instead of 50 (LucidDreamer's own default): ≤ 3 inversion
        # calls instead of ≤ 9, 2.6 instead of 5.7 on average over t ~ U{21..500}, so ≈ 32% fewer
        # UNet FLOPs per step (26 instead of 39 samples).
        # Trades: a coarser inversion x0 → x_s, so a noisier ISM target ε(x_s, s, ∅).
        "prior.delta_s": 200,
        # No torch.compile: on a machine's first run compiling (≈ 3–4 min) costs more than it saves
        # over 1000 steps (≈ 50 s); the CUDA graphs stay.
        "accel.compile": "none",
        # The mean face is cached per template; this only shortens a first run on a new template.
        "meanface.iterations": 500,
        "meanface.head_iterations": 300,
        # Half the turntable frames: the video is a preview (4 s → 2 s at 30 fps).
        "view_rings.turntable_frames": 60,
        # Kept on purpose: resolution 512 (the prior runs at 512 regardless; rendering smaller
        # saves nothing measurable and blurs the guidance) and 4 views per step (the paper
        # sampler needs one per quadrant).
    }),
)

CPU_SMOKE = Preset(
    name="cpu-smoke",
    summary="A few minutes on a CPU: tiny renders, RGB-space prior, unsubdivided template. "
            "Tests the plumbing, not the quality.",
    overrides=MappingProxyType({
        "device": "cpu",
        "iterations": 400,
        "resolution": 128,  # 16× fewer pixels than 512² for the CPU rasteriser
        # No VAE on a CPU: the prior works on 2x−1 RGB resized to 64² (an oracle or tiny prior).
        "latent_encoder": "rgb",
        "rgb_latent_resolution": 64,
        # No subdivision: a few thousand splats instead of ~80K.
        "template.face_levels": 0,
        "template.rest_levels": 0,
        # No opacity resets: rescaled to 400 iterations a reset would be followed by a prune
        # only ~10 iterations later (200 in the paper's schedule), too soon for free splats to
        # regain opacity 0.2, and the whole non-face head would be pruned.
        "densify.reset_until": 0,
        # The RGB-space prior's screen-space gradients are far larger than through SD-1.5's VAE
        # (measured on the oracle demo: median free-splat NDC gradient 0.12 against the 0.005
        # threshold calibrated for VAE latents), so at 0.005 every free splat would clone.
        "densify.grad_threshold": 0.2,
        # Prune only nearly invisible free splats: after the mean-head fit many free splats are
        # semi-transparent (0.05–0.2) and cover the head together; the paper's 0.2 removed ~1500
        # of them at the first event and a 400-iteration run never refilled the holes
        # (held-out PSNR 17.5 → 20.4 dB at 120 iterations with the lower threshold).
        "densify.prune_min_opacity": 0.05,
        "meanface.iterations": 100,
        "meanface.head_iterations": 150,
        "meanface.resolution": 128,
        "log_every": 10,
        # A smooth full turn: 72 frames (5° apart) at 24 fps, 3 s (24 frames at 12 fps, 15° apart,
        # looked choppy; issue 26). Rendering them adds seconds to a CPU run, not minutes.
        "view_rings.turntable_frames": 72,
        "outputs.video_fps": 24,
    }),
)

PHOTO_DEMO = Preset(
    name="photo-demo",
    summary="cpu-smoke with a face fine enough for a recogniser: what `demo --photo` runs on a CPU "
            "(about 5 minutes on 2 cores).",
    overrides=MappingProxyType({
        **CPU_SMOKE.overrides,
        # The smoke test's face (1,888 splats, zoomed views 10% of 400 iterations, guidance at 64²)
        # rebuilds the plumbing but not a face a recogniser knows (dlib distance to the photo 0.62
        # frontal); four times the face splats, half of 600 iterations on zoomed face views and
        # guidance at the render resolution give 0.45 frontal, 0.52 / 0.53 at ∓30°
        # (docs/benchmarks.md, issue 7).
        "template.face_levels": 1,
        "face_phase_fraction": 0.5,
        "rgb_latent_resolution": 128,
        "iterations": 600,
    }),
)

PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (PAPER, RELEASE, FAST, CPU_SMOKE, PHOTO_DEMO)})
DEFAULT_PRESET = PAPER.name


def preset_config(name: str) -> CreateConfig:
    """The defaults with preset ``name`` applied (schedules not yet rescaled)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    from arc2avatar.pipeline.config import CreateConfig  # torch: not needed for --help's preset list

    cfg = merge(CreateConfig(), unflatten(dict(preset.overrides)), source=f"preset {name!r}")
    return merge(cfg, {"preset": name}, source=f"preset {name!r}")


def rescale_schedules(
    cfg: CreateConfig,
    iterations: int | None = None,
    *,
    reference_iterations: int = REFERENCE_ITERATIONS,
    keep: Iterable[str] = (),
    paths: Sequence[str] = SCHEDULE_PATHS,
) -> CreateConfig:
    """Scale every iteration-based schedule of ``cfg`` by ``iterations / reference_iterations``.

    Args:
        cfg: a config whose schedules are written for ``reference_iterations``.
        iterations: the run length to scale to (default ``cfg.iterations``).
        reference_iterations: the run length the schedules in ``cfg`` are written for (7000).
        keep: dotted paths left untouched (the user set them explicitly).
        paths: the schedule paths (default ``SCHEDULE_PATHS``).

    Returns:
        A new config; each scaled value is ``max(1, round(value · ratio))``; ``None`` values
        (a rule switched off) stay ``None``.
    """
    target = cfg.iterations if iterations is None else iterations
    if target < 1 or reference_iterations < 1:
        raise InputError(f"iterations must be ≥ 1 to rescale schedules (got {target})")
    ratio = target / reference_iterations
    kept = set(keep)
    updates: dict[str, Any] = {}
    for path in paths:
        if path in kept:
            continue
        try:
            value = get_value(cfg, path)
        except KeyError:
            if has_schema(cfg, path):
                raise ValueError(f"SCHEDULE_PATHS names {path!r}, which the config does not have") from None
            continue  # a loose dict slot or a switched-off (None) group
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"schedule {path!r} must be an iteration count (int), got {value!r}")
        updates[path] = max(1, round(value * ratio))
    if not updates:
        return cfg
    return merge(cfg, unflatten(updates), source="schedule rescaling")


def resolve_config(
    preset: str | None = None,
    yaml_path: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
) -> CreateConfig:
    """The configuration of one run: preset → YAML file → ``--set`` overrides, then schedules
    rescaled to the final ``iterations`` (except values set explicitly in the YAML or ``--set``),
    then cross-field validation.

    Args:
        preset: a name of ``PRESETS``; ``None`` = the YAML file's ``preset`` key, else ``paper``.
        yaml_path: a (partial or complete) YAML config, e.g. a resolved ``config.yaml`` of an
            earlier run (which then reproduces that run exactly).
        overrides: ``KEY=VALUE`` strings with dotted keys (``--set``).

    Raises:
        InputError: unknown preset/key, wrong type, unreadable YAML, conflicting preset names,
            or an invalid combination (``validate``).
    """
    yaml_data: dict[str, Any] = load_yaml(yaml_path) if yaml_path is not None else {}
    yaml_preset = yaml_data.pop("preset", None)
    if yaml_preset is not None and not isinstance(yaml_preset, str):
        raise InputError(f"config file {yaml_path}: preset must be a name, got {yaml_preset!r}")
    if preset is not None and yaml_preset is not None and preset != yaml_preset:
        raise InputError(
            f"config file {yaml_path} says preset {yaml_preset!r} but preset {preset!r} was "
            "requested; drop one of them"
        )
    name = preset or yaml_preset or DEFAULT_PRESET
    cfg = preset_config(name)

    explicit: set[str] = set()
    if yaml_data:
        cfg = merge(cfg, yaml_data, source=f"config file {yaml_path}")
        explicit.update(flatten(yaml_data))
    flat_overrides: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if key == "preset":
            raise InputError("--set preset=... is not allowed: use --preset NAME")
        flat_overrides[key] = value
    if flat_overrides:
        cfg = merge(cfg, unflatten(flat_overrides), source="--set")
        explicit.update(flatten(unflatten(flat_overrides)))

    cfg = rescale_schedules(cfg, cfg.iterations, keep=_covered(explicit))
    from arc2avatar.pipeline.config import validate  # torch: not needed for --help's preset list

    return validate(cfg)


def _covered(explicit: set[str]) -> set[str]:
    """Schedule paths set explicitly, directly or through a parent group."""
    covered: set[str] = set()
    for path in SCHEDULE_PATHS:
        parts = path.split(".")
        if any(".".join(parts[:i]) in explicit for i in range(1, len(parts) + 1)):
            covered.add(path)
    return covered


def preset_yaml(name: str) -> str:
    """Preset ``name`` resolved, as the documented YAML that ``configs/<name>.yaml`` holds."""
    summary = PRESETS[name].summary if name in PRESETS else ""
    return dump_yaml(resolve_config(name), header=f"arc2avatar preset {name!r}: {summary}\n"
                     f"Generated by `python -m arc2avatar.pipeline.presets configs/`; use with --config or --preset {name}.")


def write_preset_files(folder: str | os.PathLike) -> list[Path]:
    """Write ``<folder>/<preset>.yaml`` for every preset (the files committed under configs/)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PRESETS:
        atomic_write_text(out / f"{name}.yaml", preset_yaml(name))
        written.append(out / f"{name}.yaml")
    return written


if __name__ == "__main__":
    import sys

    for path in write_preset_files(sys.argv[1] if len(sys.argv) > 1 else "configs"):
        print(path)
