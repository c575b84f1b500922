"""``arc2avatar express``, ``animate`` and ``refine-expression``: expressions on a saved avatar.

Argument parsing only; the work is in ``arc2avatar.avatar.rig`` and ``arc2avatar.animate`` (docs/expressions.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from arc2avatar.errors import InputError


def _poses(items: list[str] | None) -> dict[str, list[float]] | None:
    """``["jaw=0.2:0:0"]`` → ``{"jaw": [0.2, 0.0, 0.0]}`` (axis-angle, radians)."""
    if not items:
        return None
    out: dict[str, list[float]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            vector = [float(x) for x in value.split(":")]
            if not sep or not name or len(vector) != 3:
                raise ValueError
        except ValueError:
            raise InputError(f"--pose: cannot read {item!r}; write NAME=X:Y:Z (axis-angle, radians), "
                             "e.g. --pose jaw=0.25:0:0") from None
        out[name] = vector
    return out


def _expression(args: argparse.Namespace) -> dict[str, float]:
    from arc2avatar.avatar.rig import parse_assignments

    weights: dict[str, float] = {}
    for text in args.set or []:
        weights.update(parse_assignments(text))
    return weights


def _run_express(args: argparse.Namespace) -> int:
    from arc2avatar.animate.express import express

    express(args.avatar, args.out, _expression(args), _poses(args.pose), flame=args.flame,
            flame_masks=args.flame_masks, size=args.size)
    print(f"wrote {args.out}")
    return 0


def _run_animate(args: argparse.Namespace) -> int:
    from arc2avatar.animate.render import AnimationConfig, animate

    frames = animate(args.avatar, args.out, sequence=args.sequence, preset=args.preset, orbit=args.orbit,
                     flame=args.flame, flame_masks=args.flame_masks, config=AnimationConfig(size=args.size),
                     progress=False if args.no_progress else None)
    print(f"wrote {args.out} ({frames} frames)")
    return 0


def _run_refine(args: argparse.Namespace) -> int:
    from arc2avatar.animate.refine import refine_expression_folder

    refine_expression_folder(
        args.avatar, args.out, _expression(args), _poses(args.pose), oracle=args.oracle, iterations=args.iterations,
        preset=args.preset, overrides=tuple(args.config_set or ()), flame=args.flame, flame_masks=args.flame_masks,
        weights=args.weights, lora=args.lora, size=args.size, progress=not args.quiet,
    )
    print(f"wrote {args.out}")
    return 0


def _common(parser: argparse.ArgumentParser, out_help: str, size: int) -> None:
    parser.add_argument("avatar", help="an avatar folder written by `arc2avatar create` (or its bundle folder)")
    parser.add_argument("-o", "--out", required=True, help=out_help)
    parser.add_argument("--flame", help="the FLAME file the avatar was made on (FLAME avatars only)")
    parser.add_argument("--flame-masks", help="the FLAME masks file used at creation, if any")
    parser.add_argument("--size", type=int, default=size, help="image size in pixels")


def _expression_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="NAME=W,...",
                        help="expression weights, e.g. smile=0.8,jaw_open=0.5 (repeatable)")
    parser.add_argument("--pose", action="append", metavar="JOINT=X:Y:Z",
                        help="FLAME joint pose, axis-angle radians, e.g. jaw=0.25:0:0 (repeatable)")


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "express": "apply an expression to a saved avatar (new avatar folder)",
    "animate": "render an expression sequence or preset to an MP4",
    "refine-expression": "apply an expression, then correct it with the prior (docs/method.md §7)",
}


def expression_names_help() -> str:
    """The ``--help`` epilog of express / refine-expression: the names ``--set`` accepts."""
    from arc2avatar.head.names import BUILTIN_EXPRESSION_NAMES, flame_expression_names

    flame = flame_expression_names()
    return (f"expression names (built-in template): {', '.join(BUILTIN_EXPRESSION_NAMES)}. "
            f"A FLAME avatar's names come from its FLAME file: {flame[0]} … {flame[-1]} (its expression "
            "PCA coefficients). See docs/expressions.md.")


def register(subparsers: Any) -> None:
    express = subparsers.add_parser(
        "express", help=COMMANDS["express"],
        description="Move the face splats of a saved avatar with the template's expression blendshapes "
                    "(and FLAME joint poses) and write the result as a new avatar folder.",
        epilog=expression_names_help())
    _common(express, "the new avatar folder (must not exist yet)", 256)
    _expression_args(express)
    express.set_defaults(func=_run_express)

    animate = subparsers.add_parser(
        "animate", help=COMMANDS["animate"],
        description="Render a saved avatar through an expression sequence (a JSON/NPZ file of per-frame "
                    "weights, or a built-in preset) to an MP4 video, frontal or on a slow orbit.")
    _common(animate, "the video to write (.mp4)", 512)
    source = animate.add_mutually_exclusive_group(required=True)
    source.add_argument("--sequence", help="a JSON or NPZ sequence of per-frame expression weights")
    source.add_argument("--preset", choices=("smile", "surprise", "talk", "blink"), help="a built-in sequence")
    animate.add_argument("--orbit", action="store_true", help="a slow orbit (±30°) instead of a fixed frontal camera")
    animate.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal)")
    animate.set_defaults(func=_run_animate)

    refine = subparsers.add_parser(
        "refine-expression", help=COMMANDS["refine-expression"],
        epilog=expression_names_help())
    _common(refine, "the new avatar folder (must not exist yet)", 256)
    _expression_args(refine)
    refine.add_argument("--oracle", action="store_true",
                        help="offline check: guide toward the template deformed with the same expression")
    refine.add_argument("--iterations", type=int, default=500, help="ISM iterations (docs/method.md §7: 500)")
    refine.add_argument("--preset", help="config preset when the avatar folder has no config.yaml")
    refine.add_argument("--config-set", action="append", metavar="KEY=VALUE",
                        help="run-config override, e.g. device=cpu (repeatable)")
    refine.add_argument("--weights", help="weights folder (default: $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar)")
    refine.add_argument("--lora", help="multi-view LoRA file (diffusers format)")
    refine.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    refine.set_defaults(func=_run_refine)
