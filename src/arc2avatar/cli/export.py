"""``arc2avatar export``: write a saved avatar in another tool's format (docs/exports.md).

Argument parsing only; the work is ``arc2avatar.avatar.export.export_avatar``.
"""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.avatar.export import export_avatar, resolve_format
    from arc2avatar.avatar.formats.data import UP_AXES
    from arc2avatar.errors import InputError
    from arc2avatar.avatar.rig import parse_assignments
    from arc2avatar.avatar.model import Avatar

    from arc2avatar.avatar.safety import check_derived_output

    chosen = resolve_format(args.out, args.format)  # a bad format or suffix fails before the avatar is read
    check_derived_output(args.out, args.avatar)  # nor over the avatar's own files
    if args.up not in (None, *UP_AXES):
        raise InputError(f"--up: unknown axis {args.up!r}; use one of {', '.join(UP_AXES)}")
    weights: dict[str, float] = {}
    for text in args.expression or []:
        weights.update(parse_assignments(text, "--expression"))
    avatar = Avatar.load(args.avatar)
    morphs = None if args.morphs == "auto" else args.morphs == "on"
    path = export_avatar(avatar, args.out, format=chosen.name, up=args.up, expression=weights or None,
                         flame=args.flame, flame_masks=args.flame_masks, morph_targets=morphs, source=args.avatar)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "export": "write an avatar as .ply / .compressed.ply / .spz / .sog / .ksplat / .splat / .glb for other tools",
}


def register(subparsers: Any) -> None:
    from arc2avatar.avatar.export import FORMAT_NAMES

    parser = subparsers.add_parser(
        "export", help=COMMANDS["export"],
        description="Write a saved avatar in another tool's format; the format follows the file's suffix "
                    "unless --format names it (docs/exports.md).")
    parser.add_argument("avatar", help="an avatar folder (or its bundle folder, or a .ply)")
    parser.add_argument("-o", "--out", required=True, help="the file to write, e.g. head.spz")
    parser.add_argument("--format", metavar="FORMAT",
                        help=f"one of {', '.join(FORMAT_NAMES)} (default: from the suffix; .ply → the compact layout)")
    parser.add_argument("--up", metavar="{z,y}",
                        help="z: arc2avatar's frame (z up, face +y); y: upright and facing the default camera "
                             "of y-up viewers. Default: y for .glb, z otherwise")
    parser.add_argument("--expression", action="append", metavar="NAME=W,...",
                        help="expression weights applied before writing, e.g. smile=0.8 (repeatable)")
    parser.add_argument("--flame", help="the FLAME file the avatar was made on (FLAME avatars, with --expression)")
    parser.add_argument("--flame-masks", help="the FLAME masks file used at creation, if any")
    parser.add_argument("--morphs", choices=("auto", "on", "off"), default="auto",
                        help="glb: the template's expressions as morph targets (auto: when the avatar has them)")
    parser.set_defaults(func=_run)

