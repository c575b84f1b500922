"""`arc2avatar doctor [--weights DIR] [--deep [--lora FILE]]`: weight files and compute environment,
at a glance; with ``--deep``, each network run once on a bundled face photo (docs/first-run.md).

Exit 0 when every weight file is usable (and, with ``--deep``, no check failed), 2 (the
missing-weights code) when files are missing, 1 when a deep check failed. Thin layer over
``arc2avatar.weights.doctor`` and ``arc2avatar.pipeline.doctor``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arc2avatar.errors import MissingWeightsError


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "doctor": "check weight files, torch/CUDA, gsplat and onnxruntime (--deep: run each model once)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help=COMMANDS["doctor"],
        description="List every weight file (found / missing / wrong size / nested) and the "
                    "compute environment; with --deep, also run each network once on a bundled face "
                    "photo and check that it behaves like the real model. Exit 0 if all weights are "
                    "usable (and no deep check failed), 2 if files are missing, 1 if a deep check failed.")
    parser.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="weights folder (default: $ARC2AVATAR_WEIGHTS or "
                             "~/.cache/arc2avatar/weights)")
    parser.add_argument("--deep", action="store_true",
                        help="also run each network once on a bundled face photo and check it behaves like "
                             "the real model (docs/first-run.md)")
    parser.add_argument("--lora", type=Path, default=None, metavar="FILE",
                        help="with --deep: also check this multi-view LoRA (pytorch_lora_weights.safetensors)")
    parser.add_argument("--device", default=None, help="with --deep: torch device (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="with --deep: UNet/VAE precision (auto: fp16 on CUDA, fp32 elsewhere)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arc2avatar.weights.doctor import doctor_report, format_report
    from arc2avatar.weights.resolver import WeightsConfig

    config = WeightsConfig(root=args.weights, lora=args.lora)
    report = doctor_report(config)
    print(format_report(report))
    code = 0 if report.ok else MissingWeightsError.exit_code
    if args.deep:
        deep_ok = _run_deep(config, args)
        if code == 0 and not deep_ok:
            code = DEEP_FAILURE_EXIT
    return code


#: Exit code of ``doctor --deep`` when a check failed (files present but not behaving like the real ones).
DEEP_FAILURE_EXIT = 1


def _run_deep(config, args: argparse.Namespace) -> bool:
    """Resolve each weight group that is complete, run the deep checks, print them; True if none failed."""
    import dataclasses

    import torch

    from arc2avatar.pipeline.doctor import deep_check, format_deep_report
    from arc2avatar.weights.layout import WeightsPaths
    from arc2avatar.weights.resolver import resolve_weights

    paths = WeightsPaths()
    for group in ("detector", "identity", "prior"):
        try:
            found = resolve_weights(dataclasses.replace(config, lora=None), {group})
        except MissingWeightsError:
            continue                      # listed in the table above; its checks are reported as not run
        paths = WeightsPaths(**{k: v if v is not None else getattr(found, k)
                                for k, v in dataclasses.asdict(paths).items()})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print()
    report = deep_check(paths, lora=args.lora, device=device, dtype=args.dtype)
    print(format_deep_report(report))
    return report.ok
