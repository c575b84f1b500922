"""``arc2avatar template``: the mean-face-initialised avatar of a template (how the 3D core looks)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.pipeline.api import make_template

    result = make_template(args.out, flame=args.flame, flame_masks=args.flame_masks, preset=args.preset,
                           overrides=args.overrides, progress=not args.no_progress)
    stats = result.metrics["meanface"]
    psnr = f", face fit PSNR {stats['psnr']:.2f} dB" if "psnr" in stats else ""
    print(f"template avatar written to {result.out_dir}: {result.metrics['num_splats']} splats "
          f"({result.metrics['num_face_splats']} bound to face vertices){psnr}")
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "template": "write the mean-face-initialised template avatar (PLY, bundle, 8 views)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "template", help=COMMANDS["template"],
        description="Build the head template (FLAME with --flame, else the built-in head), fit the face "
                    "splats to its mean colours and write avatar.ply, the bundle and views.png.",
    )
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--flame", help="FLAME model file (else the built-in template)")
    parser.add_argument("--flame-masks", help="FLAME_masks.pkl (optional)")
    parser.add_argument("--preset", default="cpu-smoke", help="settings preset for the template and the fit")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=_run)
