"""`arc2avatar doctor [--weights DIR]`: weight files and compute environment, at a glance.

Exit 0 when every weight file is usable, 2 (the missing-weights code) otherwise. Thin layer over
``arc2avatar.weights.doctor``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arc2avatar.errors import MissingWeightsError


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "doctor": "check weight files, torch/CUDA, gsplat and onnxruntime",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help=COMMANDS["doctor"],
        description="List every weight file (found / missing / wrong size / nested) and the "
                    "compute environment. Exit 0 if all weights are usable, 2 otherwise.")
    parser.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="weights folder (default: $ARC2AVATAR_WEIGHTS or "
                             "~/.cache/arc2avatar/weights)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arc2avatar.weights.doctor import doctor_report, format_report
    from arc2avatar.weights.resolver import WeightsConfig

    report = doctor_report(WeightsConfig(root=args.weights))
    print(format_report(report))
    return 0 if report.ok else MissingWeightsError.exit_code
