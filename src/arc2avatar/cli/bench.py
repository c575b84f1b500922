"""``arc2avatar bench``: a thin wrapper over ``arc2avatar.bench.harness.run_benchmark``."""

from __future__ import annotations

import argparse
import json

from arc2avatar.pipeline.presets import PRESETS


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.errors import InputError
    from arc2avatar.bench.harness import BenchConfig, run_benchmark, summary_lines

    if args.iterations < 1 or args.baseline_iterations < 1:
        raise InputError("--iterations and --baseline-iterations must be ≥ 1")
    bench = BenchConfig(
        preset=args.preset,
        extra_presets=tuple(p for p in args.also if p != args.preset),
        iterations=args.iterations,
        extra_iterations=args.extra_iterations,
        baseline_iterations=args.baseline_iterations,
        size=args.size,
        lora_rank=args.lora_rank,
        fp32_reference=not args.no_fp32_reference,
        outputs=not args.no_outputs,
        overrides=tuple(args.overrides),
    )
    report = run_benchmark(bench, work=args.work, out=args.out, progress=not args.no_progress)
    print("\n".join(summary_lines(report)))
    if args.json:
        print(json.dumps({k: report[k] for k in ("speedup_vs_eager", "projection")}, indent=2))
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "bench": "time one avatar on random full-size weights (eager vs fast path)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help=COMMANDS["bench"],
        description="Run the real pipeline on random weights of the real sizes (no downloads): an eager "
                    "baseline and the fast path in one process, per-stage GPU time, it/s, peak memory, the "
                    "projected time per preset and a check that the fast guidance gradient matches the eager one.",
    )
    parser.add_argument("--out", help="JSON report path")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="preset timed and projected")
    parser.add_argument("--also", nargs="*", default=["fast"], metavar="PRESET",
                        help="further presets timed on the same models (default: fast)")
    parser.add_argument("--iterations", type=int, default=300, help="fast-path iterations (default 300)")
    parser.add_argument("--extra-iterations", type=int, default=150, help="iterations per --also preset")
    parser.add_argument("--baseline-iterations", type=int, default=60, help="eager-baseline iterations")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="random weights of the real sizes (full) or tiny ones (CPU smoke run)")
    parser.add_argument("--lora-rank", type=int, default=16, help="random multi-view LoRA rank (0 = none)")
    parser.add_argument("--work", help="folder for the random weights and runs (default: a temp folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every preset (repeatable)")
    parser.add_argument("--no-fp32-reference", action="store_true", help="skip the fp32 gradient reference")
    parser.add_argument("--no-outputs", action="store_true", help="do not time writing the outputs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="also print the speed-up and projections as JSON")
    parser.set_defaults(func=_run)
