"""``arc2avatar create`` and ``arc2avatar demo``: thin wrappers over ``arc2avatar.pipeline.api``."""

from __future__ import annotations

import argparse
import json

from arc2avatar.pipeline.presets import PRESETS


def _add_run_options(parser: argparse.ArgumentParser, default_preset: str) -> None:
    parser.add_argument("-o", "--out", required=True, help="output folder (created; never overwritten)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                        help=f"settings preset (default {default_preset})")
    parser.add_argument("--config", help="YAML config applied over the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, e.g. --set iterations=3000 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_result(result) -> None:
    print(f"avatar written to {result.out_dir}")
    for name, path in result.files.items():
        print(f"  {name:8s} {path}")
    heldout = result.metrics.get("heldout")
    if heldout:
        print(f"  held-out views: PSNR {heldout['psnr']:.2f} dB, SSIM {heldout['ssim']:.4f} ({heldout['num_views']} views)")


def _run_create(args: argparse.Namespace) -> int:
    from arc2avatar.pipeline.api import create

    result = create(
        args.photos, args.out, preset=args.preset, config_path=args.config, overrides=args.overrides,
        flame=args.flame, flame_masks=args.flame_masks, lora=args.lora, weights=args.weights,
        resume=args.resume, progress=not args.no_progress,
    )
    _print_result(result)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from arc2avatar.pipeline.api import demo

    result = demo(
        args.out, photo=args.photo, preset=args.preset, config_path=args.config, overrides=args.overrides,
        resume=args.resume, progress=not args.no_progress,
    )
    _print_result(result)
    if args.json:
        print(json.dumps(result.metrics, default=str))
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "create": "photo(s) → 3D avatar with the Arc2Face prior",
    "demo": "offline end-to-end run with the oracle prior (no weights needed)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    create = subparsers.add_parser(
        "create", help=COMMANDS["create"],
        description="Make an avatar from one or more photos of one person (real Arc2Face weights needed: "
                    "see `arc2avatar doctor`).",
    )
    create.add_argument("photos", nargs="+", help="photos of the same person")
    _add_run_options(create, "paper")
    create.add_argument("--flame", help="FLAME model file (flame2023_Open.pkl, generic_model.pkl or a converted .npz)")
    create.add_argument("--flame-masks", help="FLAME_masks.pkl (optional; regions are derived otherwise)")
    create.add_argument("--lora", help="multi-view LoRA file (pytorch_lora_weights.safetensors)")
    create.add_argument("--weights", help="weights folder (default $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar/weights)")
    create.set_defaults(func=_run_create)

    demo = subparsers.add_parser(
        "demo", help=COMMANDS["demo"],
        description="Rebuild a known target head through the whole pipeline with the oracle prior and "
                    "report held-out-view PSNR/SSIM in metrics.json. Fully offline, CPU-friendly.",
    )
    _add_run_options(demo, "cpu-smoke")
    demo.add_argument("--photo", help="a photo of a face projected onto the target's face, aligned by its five "
                                      "landmarks (dlib, the eval extra; else its centre square is used); on "
                                      "cpu-smoke it also selects a finer face (written to config.yaml)")
    demo.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    demo.set_defaults(func=_run_demo)
