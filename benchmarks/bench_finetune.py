"""Multi-view LoRA training speed and memory on random weights of the real sizes (issue 6.4).

    python benchmarks/bench_finetune.py --out RESULT.json [--size full] [--resolution 512] [--batch 4]
        [--steps 30] [--warmup 5] [--mixed-precision auto] [--gradient-checkpointing] [--device auto]

Writes a prior weights folder in the real layouts with random networks (``--size full``: the real
SD-1.5 / Arc2Face configs, same FLOPs), a synthetic one-identity dataset of 26 views (random
images, a random unit ``id.npy``), and runs ``arc2avatar.finetune.train_lora`` through the same code
``arc2avatar finetune train`` runs. Reports steps/s after ``--warmup`` steps (from the JSON-lines
log), the setup time, and the peak GPU memory. CPU smoke check: ``--size tiny --resolution 64``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def write_dataset(root: Path, views: int, size: int, seed: int) -> Path:
    """One identity folder with ``views`` random square PNGs over 360° and a random unit id.npy."""
    from arc2avatar.testing.finetune_data import write_synthetic_identity

    write_synthetic_identity(root / "id0", views=views, side=size, seed=seed)
    return root


def timed_steps(log: list[dict], warmup: int) -> tuple[int, float]:
    """(steps, seconds) of a ``train_log.jsonl`` after its first ``warmup`` steps."""
    timed = log[warmup - 1:] if warmup >= 1 else [{"seconds": 0.0}, *log]
    return len(timed) - 1, timed[-1]["seconds"] - timed[0]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--views", type=int, default=26)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"))
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", help="folder for weights, data and the run (default: a temp dir)")
    args = parser.parse_args()

    from arc2avatar.finetune.dataset import DatasetLimits
    from arc2avatar.finetune.train import FinetuneConfig, autocast_dtype, iter_log, pick_device, train_lora
    from arc2avatar.testing.prior_weights import write_random_weights

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    t0 = time.perf_counter()
    weights = write_random_weights(work / "weights", args.size, seed=0)
    data = write_dataset(work / f"data-{time.time_ns()}", args.views, args.resolution, seed=0)
    setup_s = time.perf_counter() - t0
    device = pick_device(args.device)
    config = FinetuneConfig(rank=args.rank, alpha=float(args.rank), steps=args.warmup + args.steps,
                            batch_size=args.batch, resolution=args.resolution, mixed_precision=args.mixed_precision,
                            gradient_checkpointing=args.gradient_checkpointing, validate_every=0,
                            checkpoint_every=args.warmup + args.steps, device=str(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run_dir = work / f"run-{time.time_ns()}"
    t1 = time.perf_counter()
    result = train_lora(data, weights, run_dir, config, limits=DatasetLimits(min_views=1, min_side=8), progress=False)
    total_s = time.perf_counter() - t1
    _, seconds = timed_steps(list(iter_log(run_dir)), args.warmup)
    amp = autocast_dtype(device, args.mixed_precision)
    out = {
        "size": args.size, "resolution": args.resolution, "batch": args.batch, "rank": args.rank,
        "views": args.views, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "mixed_precision": str(amp).replace("torch.", "") if amp else "fp32",
        "gradient_checkpointing": args.gradient_checkpointing,
        "timed_steps": args.steps, "steps_per_s": args.steps / seconds if seconds > 0 else None,
        "images_per_s": args.steps * args.batch / seconds if seconds > 0 else None,
        "train_lora_total_s": total_s, "weights_and_data_setup_s": setup_s,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "first_loss": result.losses[0], "last_loss": result.losses[-1],
        "lora_file_mb": result.lora_path.stat().st_size / 2**20,
        "torch": torch.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
