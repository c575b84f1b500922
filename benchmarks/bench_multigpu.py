"""Scaling over GPUs (issue 8.3): LoRA steps/s and avatars/hour on 1, 2, 4 ... GPUs.

    python benchmarks/bench_multigpu.py --out multigpu.json [--gpus 1,2,4] [--what lora,create]
        [--lora-steps 30] [--warmup 5] [--resolution 512] [--batch 4]
        [--jobs 4] [--iterations 100] [--preset paper] [--work DIR] [--dry-run]

Full-size random weights in the real layouts (same FLOPs as the real networks), written once
and shared by every run; each measurement runs the code a user runs:

* ``lora``: for each N, ``torchrun --standalone --nproc-per-node N -m arc2avatar.cli.main finetune
  train`` on a synthetic 26-view identity (bench_finetune.py's dataset), twice: *weak* scaling
  (``--batch`` views per GPU, the global batch grows with N) and *strong* scaling (a global batch
  of ``--batch`` views split over the N GPUs, when it divides). Steps/s after ``--warmup`` steps
  from rank 0's log, images/s = steps/s × global batch, speed-up against N = 1 in images/s.
* ``create``: for each N, ``create_batch`` (what ``arc2avatar create-batch --gpus N`` runs) over
  ``--jobs`` copies of bench_create.py's synthetic face photo with ``--iterations`` per avatar,
  after one warm-up avatar that fills the mean-face cache. Avatars/hour = jobs / batch wall time
  × 3600 (model loading, embedding and outputs included), speed-up against N = 1, and the
  projected avatars/hour at the preset's full iteration count.

The JSON is rewritten after every run, so a run cut short keeps what it measured; with ``--work``
a later call reuses the weights written by an earlier one (split the GPU counts over calls). ``--dry-run``:
the same steps on the CPU with tiny weights (gloo processes, CPU workers), about 4 minutes on 2
cores; it checks the plumbing, not the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arc2avatar._io import atomic_write_text  # noqa: E402

import bench_create  # noqa: E402  (benchmarks/ is not a package)
import bench_finetune  # noqa: E402

#: Settings that make a dry run fast on a CPU (tiny weights: 16-px latents, a 5 + 5-step mean face).
DRY_LORA = {"resolution": 64, "batch": 2, "lora_steps": 3, "warmup": 1, "rank": 4}
DRY_CREATE_SETS = ("resolution=32", "meanface.resolution=32", "meanface.iterations=5", "meanface.head_iterations=5",
                   "rgb_latent_resolution=16", "view_rings.turntable_frames=2")
DRY_CREATE = {"jobs": 2, "iterations": 2, "preset": "cpu-smoke"}
#: Wall-clock limit of one torchrun measurement, seconds.
RUN_TIMEOUT_S = 1200


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def inputs(work: Path, size: str) -> tuple[Path, Path]:
    """bench_create.py's weights folder and photo in ``work``, reused when a previous call wrote them."""
    return bench_create.write_inputs(work, size)


def lora_run(n: int, per_gpu_batch: int, args: argparse.Namespace, weights: Path, data: Path, work: Path) -> dict:
    """One torchrun measurement: N processes, ``per_gpu_batch`` views each."""
    from arc2avatar.finetune.train import iter_log

    run_dir = work / f"lora-n{n}-b{per_gpu_batch}-{time.time_ns()}"
    steps = args.warmup + args.lora_steps
    sets = {"steps": steps, "batch_size": per_gpu_batch, "resolution": args.resolution, "rank": args.rank,
            "alpha": float(args.rank), "validate_every": 0, "checkpoint_every": steps,
            "device": "cpu" if args.dry_run else "auto"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
               "-m", "arc2avatar.cli.main", "finetune", "train", str(data), "-o", str(run_dir), "--weights", str(weights),
               "--min-views", "1", "--min-size", "8", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if args.dry_run else {})}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"gpus": n, "per_gpu_batch": per_gpu_batch, "error": done.stderr[-2000:]}
    timed, seconds = bench_finetune.timed_steps(list(iter_log(run_dir)), args.warmup)
    steps_per_s = timed / seconds if seconds > 0 else None
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"gpus": n, "per_gpu_batch": per_gpu_batch, "global_batch": per_gpu_batch * n, "timed_steps": timed,
            "steps_per_s": steps_per_s, "images_per_s": steps_per_s * per_gpu_batch * n if steps_per_s else None,
            "torchrun_wall_s": round(wall, 1)}


def with_speedups(rows: list[dict], key: str) -> list[dict]:
    """Add ``speedup`` = row[key] / the N = 1 row's (same scaling mode) and ``efficiency`` = speed-up / N."""
    base = next((r[key] for r in rows if r.get("gpus") == 1 and r.get(key)), None)
    for row in rows:
        if base and row.get(key):
            row["speedup"] = round(row[key] / base, 3)
            row["efficiency"] = round(row["speedup"] / row["gpus"], 3)
    return rows


def create_run(n: int, args: argparse.Namespace, weights: Path, photos: Path, work: Path) -> dict:
    """One create-batch measurement on N GPUs (``--dry-run``: N CPU workers)."""
    from arc2avatar.pipeline.batch import create_batch
    from arc2avatar.pipeline.presets import resolve_config

    out = work / f"create-n{n}-{time.time_ns()}"
    placement = {"gpus": 0, "workers": n} if args.dry_run else {"gpus": n}
    started = time.perf_counter()
    result = create_batch(photos, out, preset=args.preset, overrides=[f"iterations={args.iterations}", *args.overrides],
                          weights=str(weights), **placement)
    wall = time.perf_counter() - started
    done = [j for j in result.jobs if j.status == "done"]
    per_it = [j.metrics["seconds_per_iteration"] for j in done if "seconds_per_iteration" in j.metrics]
    full = resolve_config(args.preset).iterations
    mean_job_s = sum(j.seconds for j in done) / len(done) if done else None
    row: dict[str, Any] = {
        "gpus": n, "jobs": len(result.jobs), "done": len(done), "iterations": args.iterations, "batch_wall_s": round(wall, 1),
        "avatars_per_hour": round(len(done) / wall * 3600, 2) if done else None,
        "mean_job_s": round(mean_job_s, 1) if mean_job_s else None,
        "mean_seconds_per_iteration": round(sum(per_it) / len(per_it), 4) if per_it else None,
        "errors": [j.error for j in result.failed],
    }
    if per_it and mean_job_s:
        # the same jobs at the preset's full length: the overhead measured here + full × s/it, N in parallel
        full_job_s = mean_job_s + (full - args.iterations) * row["mean_seconds_per_iteration"]
        row["projected_full_preset_avatars_per_hour"] = round(3600 / full_job_s * n, 2)
        row["full_preset_iterations"] = full
    shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--gpus", default="1,2", help="GPU counts to measure, comma-separated (e.g. 1,2,4)")
    parser.add_argument("--what", default="lora,create", help="lora, create or both")
    parser.add_argument("--lora-steps", type=int, default=30, help="timed LoRA steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="views per GPU (weak) / in all (strong)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--views", type=int, default=26)
    parser.add_argument("--jobs", type=int, default=4, help="avatars per create-batch run")
    parser.add_argument("--iterations", type=int, default=100, help="iterations per avatar")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra create settings")
    parser.add_argument("--work", help="folder for weights, data and runs (default: a temp dir)")
    parser.add_argument("--dry-run", action="store_true", help="tiny weights on the CPU: checks the plumbing")
    args = parser.parse_args()
    if args.dry_run:
        for key, value in {**DRY_LORA, **DRY_CREATE}.items():
            setattr(args, key, value)
        args.overrides = [*DRY_CREATE_SETS, *args.overrides]
    counts = [int(n) for n in args.gpus.split(",")]
    what = set(args.what.split(","))

    import torch

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-multigpu-"))
    os.environ.setdefault("ARC2AVATAR_CACHE", str(work / "cache"))  # the workers inherit it
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": "cpu (dry run)" if args.dry_run else (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
        "visible_gpus": torch.cuda.device_count(), "torch": torch.__version__, "size": "tiny" if args.dry_run else "full",
        "command": " ".join(sys.argv), "gpu_counts": counts, "lora": {"weak": [], "strong": []}, "create": [],
    }
    started = time.perf_counter()
    weights, photo = inputs(work, "tiny" if args.dry_run else "full")
    report["weights_setup_s"] = round(time.perf_counter() - started, 1)
    _write_json(out_path, report)

    if "lora" in what:
        data = bench_finetune.write_dataset(work / "lora-data", args.views, args.resolution, seed=0)
        for n in counts:
            report["lora"]["weak"].append(lora_run(n, args.batch, args, weights, data, work))
            with_speedups(report["lora"]["weak"], "images_per_s")
            _write_json(out_path, report)
            if args.batch % n == 0:
                report["lora"]["strong"].append(lora_run(n, args.batch // n, args, weights, data, work))
                with_speedups(report["lora"]["strong"], "images_per_s")
                _write_json(out_path, report)

    if "create" in what:
        from arc2avatar.pipeline.api import create

        photos = work / "photos"
        photos.mkdir(exist_ok=True)
        for k in range(args.jobs):
            shutil.copyfile(photo, photos / f"p{k:02d}.png")
        started = time.perf_counter()  # warm-up: fills the mean-face cache every job reads
        create([photo], work / f"warmup-{time.time_ns()}", preset=args.preset, weights=weights, progress=False,
               overrides=["iterations=1", *args.overrides])
        report["create_warmup_s"] = round(time.perf_counter() - started, 1)
        for n in counts:
            report["create"].append(create_run(n, args, weights, photos, work))
            with_speedups(report["create"], "avatars_per_hour")
            _write_json(out_path, report)

    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
