"""Run the real ``arc2avatar create`` end to end on random weights of the real sizes.

    python benchmarks/bench_create.py --out RESULT.json [--iterations 200] [--size full] [--preset paper]

Writes a weights folder in the real layouts with random full-size Arc2Face/SD-1.5 networks
(same configs, same FLOPs as the real ones) and tiny stand-in SCRFD/ArcFace ONNX models, paints
a synthetic "face" photo that the stand-in detector finds, and runs ``arc2avatar.create`` through
the same code a user runs (resolver → embedding → prior loading → mean face → optimisation →
outputs). The avatar is meaningless (random UNet); the point is that every piece runs at full
size and what it costs: it/s, the projected time for the preset, peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def write_inputs(work: Path, size: str) -> tuple[Path, Path]:
    """``work/weights`` (random networks in the real layouts, stand-in ONNX face models) and
    ``work/photo.png`` (a synthetic "face" the stand-in detector finds); returns both paths.
    Reused when an earlier call wrote them into ``work`` (``pipeline.bench.write_benchmark_inputs``)."""
    from arc2avatar.bench.harness import write_benchmark_inputs

    files = write_benchmark_inputs(work, size, seed=0, lora_rank=0)
    return files["weights"], files["photo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--work", help="folder for weights and the run (default: a temp dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from arc2avatar.pipeline.api import create
    from arc2avatar.pipeline.presets import resolve_config

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_create_"))
    started = time.perf_counter()
    weights, photo = write_inputs(work, args.size)
    setup_s = time.perf_counter() - started

    overrides = [f"iterations={args.iterations}", *args.overrides]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = create([photo], work / "run", preset=args.preset, overrides=overrides, weights=weights, progress=False)
    total_s = time.perf_counter() - started
    preset_iterations = resolve_config(args.preset).iterations
    per_it = result.metrics["seconds_per_iteration"]
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "preset": args.preset,
        "size": args.size,
        "iterations": args.iterations,
        "weights_setup_s": round(setup_s, 1),
        "create_wall_s": round(total_s, 1),
        "optimisation_s": result.metrics["optimisation_s"],
        "seconds_per_iteration": per_it,
        "iterations_per_second": round(1.0 / per_it, 3) if per_it else None,
        "projected_preset_optimisation_min": round(per_it * preset_iterations / 60.0, 2),
        "num_splats": result.metrics["num_splats"],
        "skipped_steps": result.metrics["skipped_steps"],
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "files": sorted(p.name for p in (work / "run").iterdir()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
