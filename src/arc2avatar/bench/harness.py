"""The benchmark harness behind ``arc2avatar bench`` (issue 9): what one avatar costs, measured.

It runs the real pipeline on random weights of the real sizes (same configs, same FLOPs): a
weights folder in the real layouts (UNet, VAE, both CLIP encoders, tokenizer, scheduler, a
random rank-16 multi-view LoRA, stand-in face ONNX models), the real loaders, the identity
embedding, the mean-face fit, the ``Trainer`` loop with the real renderer and densifier, and the
real output writers. In ONE process it times

1. the plain eager baseline (``AccelConfig.eager()``: no CUDA graphs, no channels_last, LoRA
   unfused) for ``baseline_iterations``;
2. the fast path (the run config's ``accel``, default on) for ``iterations`` ≥ 300,
   a window of the preset's schedule that starts before the end of the face phase, so that it
   spans the face → head switch and the first densification / opacity-reset events;
3. optionally other presets (``fast``) on the same loaded models and graphs;

and reports per-stage GPU time (render, VAE encode, inversion, main prediction, VAE backward,
losses, render backward, densify, optimizer, I/O), it/s, the capture time, peak memory, the
projected total for each preset and the speed-up over the baseline. Before the fast path it
checks the maths: the guidance gradient on the renders of the fast step against the eager
step (and both against an fp32 eager reference on CUDA), same inputs, same random draws.

Written by hand: our own harness around our own loop.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from arc2avatar._io import atomic_write_text
from arc2avatar._timing import StageTimer
from arc2avatar.errors import InputError
from arc2avatar.avatar.template import HeadSetup, build_head
from arc2avatar.cameras.model import Cameras
from arc2avatar.prior.guidance import Arc2FaceGuidance, GuidanceContext, GuidancePrior, IsmGuidance
from arc2avatar.pipeline.config import CreateConfig
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.splats.model import GaussianSplats
from arc2avatar._device import pick_device
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.outputs import write_avatar_outputs
from arc2avatar.cameras.samplers import sample_paper
from arc2avatar.identity.embed import embed_photos
from arc2avatar.pipeline.meanface import fit_mean_face_for_run
from arc2avatar.pipeline.trainer import Trainer
from arc2avatar.prior.configs import AccelConfig
from arc2avatar.prior.loading import load_lora, load_prior_models
from arc2avatar.splats.render import rasterize
from arc2avatar.testing.identity_weights import plant_face, write_tiny_identity_weights
from arc2avatar.testing.prior_weights import write_random_lora, write_random_weights
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

log = logging.getLogger(__name__)

#: Stages the trainer and the guidance time, in the order of one iteration.
STAGES: tuple[str, ...] = (
    "render", "vae_encode", "inversion", "main_prediction", "vae_backward", "losses", "render_backward",
    "densify", "optimizer", "io",
)


@dataclass(frozen=True)
class BenchConfig:
    """What ``arc2avatar bench`` measures.

    Attributes:
        preset: the preset whose settings are timed and projected ("paper").
        extra_presets: further presets timed on the same models ("fast"); empty = none.
        iterations: fast-path iterations timed for ``preset`` (issue 9 asks ≥ 300).
        extra_iterations: iterations timed for each extra preset.
        baseline_iterations: eager-baseline iterations (same window start).
        warmup_iterations: untimed iterations before each timed window (capture, autotuning).
        window_before_head: the window starts this many iterations before the end of the face
            phase, so it covers both phases and the first densification events.
        size: random weights of the real sizes ("full") or tiny ones (a CPU smoke run).
        lora_rank: rank of the random multi-view LoRA (0 = none; docs/method.md §8: 16).
        gradient_seeds: how many (t, noise) draws the gradient check compares.
        fp32_reference: also compare with an fp32 eager prior (CUDA only; 3.4 GB more).
        outputs: also time writing the outputs (PLY, bundle, sheet, turntable video).
        overrides: ``--set`` strings applied to every preset (e.g. ``device=cuda``).
        meanface_iterations: face / head iterations of the mean-face fit. The fit is
            subject-independent and cached per template (docs/method.md §6), so its cost is not part of an
            avatar; it is shortened here and timed separately.
        seed: seed of the random weights and of the run.
    """

    preset: str = "paper"
    extra_presets: tuple[str, ...] = ("fast",)
    iterations: int = 300
    extra_iterations: int = 150
    baseline_iterations: int = 60
    warmup_iterations: int = 5
    window_before_head: int = 50
    size: str = "full"
    lora_rank: int = 16
    gradient_seeds: int = 3
    fp32_reference: bool = True
    outputs: bool = True
    overrides: tuple[str, ...] = ()
    meanface_iterations: tuple[int, int] = (50, 50)
    seed: int = 0


@dataclass
class _Models:
    paths: Any
    models: Any
    identity: Tensor
    setup_s: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs
def write_benchmark_inputs(work: Path, size: str = "full", seed: int = 0, lora_rank: int = 16) -> dict[str, Path]:
    """A weights folder in the real layouts with random networks of ``size``, stand-in face
    ONNX models, a random multi-view LoRA and a photo those models "detect" a face in."""
    from PIL import Image


    work.mkdir(parents=True, exist_ok=True)
    weights = work / "weights"
    marker = work / f"inputs-{size}-{seed}-{lora_rank}.done"  # a second run in the same --work reuses them
    files = {"weights": weights, "photo": work / "photo.png"}
    if lora_rank > 0:
        files["lora"] = work / "pytorch_lora_weights.safetensors"
    if marker.is_file():
        return files
    paths = write_random_weights(weights, size=size, seed=seed)
    write_tiny_identity_weights(weights)
    photo = np.full((640, 640, 3), 200, dtype=np.uint8)  # letterbox scale 1 for the stand-in detector
    plant_face(photo, (320.0, 288.0), 128.0)  # a square of 4·stride on the stride-32 anchors
    Image.fromarray(photo).save(work / "photo.png")
    if lora_rank > 0:
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(paths.arc2face_unet)
        write_random_lora(files["lora"], unet, rank=lora_rank, seed=seed)
        del unet
    marker.write_text("random benchmark inputs complete\n")
    return files


def _load(files: dict[str, Path], config: CreateConfig, device: torch.device, dtype: str = "auto") -> _Models:
    started = time.perf_counter()
    paths = resolve_weights(WeightsConfig(root=files["weights"], lora=files.get("lora")),
                            need={"prior", "identity", "detector"})
    identity = torch.from_numpy(embed_photos([files["photo"]], paths).vector)
    models = load_prior_models(paths, device, dtype)
    if "lora" in files:
        load_lora(models.unet, files["lora"], scale=config.prior.lora_scale)
    return _Models(paths, models, identity, {"load_models_s": round(time.perf_counter() - started, 2)})


# --------------------------------------------------------------------------- timing one window
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _window(config: CreateConfig, before_head: int, iterations: int) -> tuple[int, int]:
    """(first, last) iteration numbers of a timed window of ``config``'s schedule."""
    face_end = int(round(config.face_phase_fraction * config.iterations))
    first = max(face_end - before_head, 0)
    return first, min(first + iterations, config.iterations)


def time_window(
    config: CreateConfig,
    prior: GuidancePrior,
    setup: HeadSetup,
    splats: GaussianSplats,
    device: torch.device,
    start: int,
    iterations: int,
    warmup: int,
    work: Path,
) -> dict[str, Any]:
    """Run ``warmup`` untimed, then ``iterations`` timed iterations of ``config`` from ``start``
    through ``Trainer.run`` (logging and checkpoints included); face and head phases are timed
    apart (the host waits for the GPU at each phase boundary only)."""
    class RecordingTrainer(Trainer):
        def step(self, iteration: int) -> dict[str, Any]:
            record = super().step(iteration)
            if "densify" in record:
                events.append({"iteration": iteration, **record["densify"]})
            return record

    events: list[dict[str, Any]] = []
    timer = StageTimer(device)
    out_dir = Path(tempfile.mkdtemp(prefix="window_", dir=work))
    trainer = RecordingTrainer(config, prior, setup, splats.detach_copy().to(device), out_dir, device,
                               progress=False, timer=timer)
    trainer.state.iteration = start
    trainer.run(stop_after=start + warmup, checkpoint_at_stop=False)
    _sync(device)
    timer.reset()
    events.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first = trainer.state.iteration
    last = min(first + iterations, config.iterations)
    face_end = trainer.face_phase_iterations
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for phase, stop in (("face", min(face_end, last)), ("head", last)):
        begin = trainer.state.iteration
        if stop <= begin:
            continue
        t0 = time.perf_counter()
        trainer.run(stop_after=stop, checkpoint_at_stop=False)
        _sync(device)
        seconds[phase] = time.perf_counter() - t0
        counts[phase] = stop - begin
    trainer.wait_for_writes()
    stages = timer.collect()
    done = sum(counts.values())
    total = sum(seconds.values())
    return {
        "window": [first + 1, last],
        "iterations": done,
        "seconds_per_iteration": total / done,
        "iterations_per_second": done / total,
        "seconds_per_iteration_by_phase": {k: seconds[k] / counts[k] for k in seconds},
        "iterations_by_phase": counts,
        "stage_ms_per_iteration": {k: stages.get(k, 0.0) / done for k in STAGES},
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "splats": [splats.num_splats, trainer.state.splats.num_splats],
        "densify_events": events,
        "skipped_steps": trainer.state.skipped_steps,
        "final_splats": trainer.state.splats,
    }


# --------------------------------------------------------------------------- the maths check
def guidance_gradient(prior: GuidancePrior, renders: Tensor, cameras: Cameras, seed: int) -> Tensor:
    """∂loss/∂renders of one guidance call with seeded draws (flip/t on a CPU generator)."""
    device = renders.device
    x = renders.detach().clone().requires_grad_(True)
    context = GuidanceContext(torch.Generator(device=device).manual_seed(seed), torch.Generator().manual_seed(seed))
    out = prior(x, cameras, context)
    out.loss.backward()
    assert x.grad is not None
    return x.grad.detach().float()


def _compare(a: Tensor, b: Tensor) -> dict[str, float]:
    """Relative L2 error of a against b and their cosine."""
    a, b = a.flatten().double(), b.flatten().double()
    return {
        "relative_error": float((a - b).norm() / b.norm().clamp_min(1e-30)),
        "cosine": float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30)),
    }


def _check_renders(config: CreateConfig, setup: HeadSetup, splats: GaussianSplats, device: torch.device) -> tuple[Tensor, Any]:
    size = config.resolution
    cameras = sample_paper(config.cameras, 1000, torch.Generator().manual_seed(123), size, size, config.views_per_step).to(device)
    s = splats.to(device)
    with torch.no_grad():
        out = rasterize(s.means, s.rotations, s.scales, s.opacities, s.colors, cameras,
                        torch.ones(len(cameras), 3, device=device))
    return out.rgb.permute(0, 3, 1, 2).contiguous(), cameras


# --------------------------------------------------------------------------- the harness
def run_benchmark(bench: BenchConfig, work: str | Path | None = None, out: str | Path | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Measure, write ``out`` (JSON) when given, and return the report (see module doc)."""
    started_all = time.perf_counter()

    def save(stage: str) -> None:  # partial reports survive a run cut short
        log.info("bench: %s done after %.0f s", stage, time.perf_counter() - started_all)
        if out is not None:
            atomic_write_text(out, json.dumps(report, indent=2, default=_json_default))

    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="a2a_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = list(bench.overrides)
    face_its, head_its = bench.meanface_iterations
    base_overrides = [f"meanface.iterations={face_its}", f"meanface.head_iterations={head_its}", *overrides]
    config = resolve_config(bench.preset, None, base_overrides)
    device = pick_device(config.device)
    if device.type != "cuda" and bench.size == "full":
        raise InputError(
            "arc2avatar bench times the CUDA fast path on full-size weights, and there is no CUDA device here "
            "(on a CPU one full-size iteration at 512² takes minutes); for a plumbing check on a CPU use "
            "--size tiny --set resolution=64 --set meanface.resolution=64 --iterations 20 --baseline-iterations 5 --also "
            "(≈ 5 min on 2 cores)")
    if device.type != "cuda":
        log.warning("bench on %s: tiny weights check the harness's plumbing; the timings say nothing about a GPU", device)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": _versions(),
        "bench": {k: (list(v) if isinstance(v, tuple) else v) for k, v in bench.__dict__.items()},
        "preset": bench.preset,
        "resolution": config.resolution,
        "views_per_step": config.views_per_step,
        "accel": dict(config.accel.__dict__),
    }

    t0 = time.perf_counter()
    files = write_benchmark_inputs(work, bench.size, bench.seed, bench.lora_rank)
    report["setup_s"] = {"write_weights_s": round(time.perf_counter() - t0, 2)}
    loaded = _load(files, config, device)
    report["setup_s"].update(loaded.setup_s)
    setup = build_head(config.template)
    t0 = time.perf_counter()
    splats, _ = fit_mean_face_for_run(setup, config, device, progress)
    report["setup_s"]["meanface_s"] = round(time.perf_counter() - t0, 2)
    save("setup")
    start, _ = _window(config, bench.window_before_head, bench.iterations)

    # 1. the eager baseline and the maths reference
    eager = Arc2FaceGuidance(loaded.models, config.prior, loaded.identity, accel=AccelConfig.eager())
    check_renders, check_cameras = _check_renders(config, setup, splats, device)
    seeds = list(range(bench.seed + 1, bench.seed + 1 + bench.gradient_seeds))
    grads_eager = [guidance_gradient(eager, check_renders, check_cameras, s) for s in seeds]
    grads_fp32 = None
    if bench.fp32_reference and device.type == "cuda":
        reference = _load(files, config, device, dtype="fp32")
        ref_prior = Arc2FaceGuidance(reference.models, config.prior, loaded.identity, accel=AccelConfig.eager())
        grads_fp32 = [guidance_gradient(ref_prior, check_renders, check_cameras, s) for s in seeds]
        del ref_prior, reference
        torch.cuda.empty_cache()
    baseline = time_window(config, eager, setup, splats, device, start,
                           bench.baseline_iterations, bench.warmup_iterations, work)
    baseline.pop("final_splats")
    report["baseline"] = baseline
    save("eager baseline")
    del eager

    # 2. the fast path: prepare (fuse LoRA, channels_last), capture, check, time
    t0 = time.perf_counter()
    fast = Arc2FaceGuidance(loaded.models, config.prior, loaded.identity, accel=config.accel)
    grads_fast = [guidance_gradient(fast, check_renders, check_cameras, s) for s in seeds]
    prepare_s = time.perf_counter() - t0
    report["gradient_check"] = _gradient_report(grads_fast, grads_eager, grads_fp32, seeds)
    window = time_window(config, fast, setup, splats, device, start, bench.iterations, bench.warmup_iterations, work)
    final_splats = window.pop("final_splats")
    capture_s = float(getattr(fast.denoiser, "capture_s", 0.0) + getattr(fast.latent_encoder, "capture_s", 0.0))
    window["prepare_and_capture_s"] = round(max(prepare_s, capture_s), 2)
    window["accel_report"] = fast.accel_report
    report["fast"] = window
    report["speedup_vs_eager"] = baseline["seconds_per_iteration"] / window["seconds_per_iteration"]
    save("fast path")

    # 3. outputs (I/O at the end of a run)
    outputs_s = 0.0
    if bench.outputs:
        t0 = time.perf_counter()
        out_dir = work / "outputs"
        out_dir.mkdir(exist_ok=True)
        avatar = Avatar(final_splats.detach_copy(), template=dict(setup.info))
        write_avatar_outputs(out_dir, avatar, size=min(config.resolution, 512), rings=config.view_rings,
                             fps=config.outputs.video_fps, quality=config.outputs.video_quality)
        outputs_s = time.perf_counter() - t0
        report["outputs_s"] = round(outputs_s, 2)

    report["projection"] = {bench.preset: _project(config, window, window["prepare_and_capture_s"], outputs_s)}
    report["projection_eager"] = {bench.preset: _project(config, baseline, 0.0, outputs_s)}

    # 4. other presets on the same models and graphs
    report["extra"] = {}
    for name in bench.extra_presets:
        extra_config = resolve_config(name, None, base_overrides)
        prior = IsmGuidance(fast.denoiser, fast.latent_encoder, fast.embeddings, loaded.models.alphas_cumprod,
                            extra_config.prior)
        extra_start, _ = _window(extra_config, bench.window_before_head, bench.extra_iterations)
        result = time_window(extra_config, prior, setup, splats, device, extra_start,
                             bench.extra_iterations, bench.warmup_iterations, work)
        result.pop("final_splats")
        report["extra"][name] = result
        report["projection"][name] = _project(extra_config, result, window["prepare_and_capture_s"], outputs_s)
        save(f"preset {name}")
    report["wall_s"] = round(time.perf_counter() - started_all, 1)
    save("all")
    return report


def _project(config: CreateConfig, window: dict[str, Any], capture_s: float, outputs_s: float) -> dict[str, Any]:
    """Projected wall time of one avatar with ``config``: per-phase s/it × the phase's
    iterations + capture/compile + outputs (the mean face is cached per template)."""
    face_its = int(round(config.face_phase_fraction * config.iterations))
    head_its = config.iterations - face_its
    per_phase = window["seconds_per_iteration_by_phase"]
    overall = window["seconds_per_iteration"]
    optimisation = face_its * per_phase.get("face", overall) + head_its * per_phase.get("head", overall)
    total = optimisation + capture_s + outputs_s
    return {
        "iterations": config.iterations,
        "face_iterations": face_its,
        "head_iterations": head_its,
        "optimisation_min": optimisation / 60.0,
        "capture_s": capture_s,
        "outputs_s": outputs_s,
        "total_min": total / 60.0,
    }


def _gradient_report(fast: list[Tensor], eager: list[Tensor], fp32: list[Tensor] | None, seeds: Sequence[int]) -> dict[str, Any]:
    """Per seed: fast vs eager, and (on CUDA) fast and eager vs the fp32 reference."""
    rows = []
    for i, seed in enumerate(seeds):
        row: dict[str, Any] = {"seed": seed, "fast_vs_eager": _compare(fast[i], eager[i])}
        if fp32 is not None:
            row["eager_vs_fp32"] = _compare(eager[i], fp32[i])
            row["fast_vs_fp32"] = _compare(fast[i], fp32[i])
        rows.append(row)
    worst_cos = min(r["fast_vs_eager"]["cosine"] for r in rows)
    summary: dict[str, Any] = {"per_seed": rows, "min_cosine_fast_vs_eager": worst_cos}
    if fp32 is not None:
        # "within fp16 tolerance": the fast step is as close to fp32 as the eager fp16 step is
        ratio = max(r["fast_vs_fp32"]["relative_error"] / max(r["eager_vs_fp32"]["relative_error"], 1e-12) for r in rows)
        summary["max_error_ratio_fast_over_eager_vs_fp32"] = ratio
    return summary


def _versions() -> dict[str, str]:
    import importlib.metadata as metadata

    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for name in ("diffusers", "peft", "gsplat"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
    return versions


def _json_default(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human-readable table of a report (what the CLI prints)."""
    fast, base = report["fast"], report["baseline"]
    lines = [
        f"device: {report['device']}  ({report['versions']})",
        f"eager baseline: {base['seconds_per_iteration'] * 1000:.1f} ms/it over {base['iterations']} it",
        f"fast path:      {fast['seconds_per_iteration'] * 1000:.1f} ms/it over {fast['iterations']} it "
        f"(window {fast['window'][0]}–{fast['window'][1]}), capture {fast['prepare_and_capture_s']:.1f} s, "
        f"peak {fast['peak_memory_gb'] or 0:.2f} GB",
        f"speed-up vs eager: {report['speedup_vs_eager']:.2f}×",
        "stage ms/it (fast): " + ", ".join(f"{k} {v:.1f}" for k, v in fast["stage_ms_per_iteration"].items()),
    ]
    check = report["gradient_check"]
    text = f"gradient check: min cosine fast vs eager {check['min_cosine_fast_vs_eager']:.5f}"
    if "max_error_ratio_fast_over_eager_vs_fp32" in check:
        text += f", error vs fp32 fast/eager ≤ {check['max_error_ratio_fast_over_eager_vs_fp32']:.2f}"
    lines.append(text)
    for name, proj in report["projection"].items():
        lines.append(f"projected {name}: {proj['total_min']:.2f} min ({proj['iterations']} it, "
                     f"optimisation {proj['optimisation_min']:.2f} min + capture {proj['capture_s']:.0f} s "
                     f"+ outputs {proj['outputs_s']:.0f} s)")
    return lines


__all__ = ["BenchConfig", "STAGES", "guidance_gradient", "run_benchmark", "summary_lines", "time_window",
           "write_benchmark_inputs"]
