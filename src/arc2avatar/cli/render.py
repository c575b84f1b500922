"""``arc2avatar render``: re-render a saved avatar (turntable video or view sheet)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.avatar.render import render_avatar

    path = render_avatar(args.avatar, args.out, turntable=not args.sheet, size=args.size,
                         frames=args.frames, polar_deg=args.polar, fps=args.fps,
                         progress=False if args.no_progress else None)
    print(f"wrote {path}")
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "render": "re-render a saved avatar (turntable video or view sheet)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help=COMMANDS["render"],
        description="Render a saved avatar again, at any size: a turntable MP4 (default) or a PNG sheet of "
                    "the 16 test views.")
    parser.add_argument("avatar", help="an output folder, a bundle folder or a .ply")
    parser.add_argument("-o", "--out", help="output file (default: rendered_turntable.mp4 / rendered_views.png beside the avatar; "
                             "the run's own turntable.mp4 and views.png are never replaced)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--turntable", action="store_true", help="a turntable video (default)")
    mode.add_argument("--sheet", action="store_true", help="a PNG sheet of the 16 test views instead")
    parser.add_argument("--size", type=int, default=512, help="image size in pixels")
    parser.add_argument("--frames", type=int, default=120, help="turntable frames")
    parser.add_argument("--polar", type=float, default=90.0, help="turntable polar angle θ, degrees")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal)")
    parser.set_defaults(func=_run)
