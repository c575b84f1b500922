"""``arc2avatar viewer``: write ``viewer.html`` (the self-contained WebGL2 page) for an avatar folder.

Argument parsing only; the work is in ``arc2avatar.viewer`` (docs/viewer.md).
"""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.viewer import ViewerConfig, viewer_for_folder

    names = tuple(n.strip() for n in (args.expressions or "").split(",") if n.strip())
    config = ViewerConfig(max_expressions=args.max_expressions, expression_names=names,
                          bake_rotations=not args.no_rotations)
    if args.webcam:  # a folder: viewer.html with the Camera panel and the tracker's files (docs/live.md)
        from arc2avatar.drive.live import write_live_folder

        page = write_live_folder(args.avatar, args.out, weights_root=args.weights, viewer_config=config)
        print(f"wrote {page} and {page.parent / 'face-api'}/; serve the folder (e.g. `python -m http.server` in it) "
              f"and open http://localhost:8000/{page.name}")
        return 0
    path = viewer_for_folder(args.avatar, args.out, flame=args.flame, flame_masks=args.flame_masks,
                             expressions=not args.no_expressions, config=config)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "viewer": "write viewer.html, a self-contained 3D page with expression sliders",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "viewer", help=COMMANDS["viewer"])
    parser.add_argument("avatar", help="an avatar folder written by `arc2avatar create` (or its bundle folder, or a .ply)")
    parser.add_argument("-o", "--out", help="the page to write (default: viewer.html in the avatar folder; replaced)")
    parser.add_argument("--flame", help="the FLAME file the avatar was made on (FLAME avatars only)")
    parser.add_argument("--flame-masks", help="the FLAME masks file used at creation, if any")
    parser.add_argument("--max-expressions", type=int, default=10,
                        help="at most this many sliders, the template's first expressions (FLAME: exp_000…)")
    parser.add_argument("--expressions", metavar="NAME,...", help="exactly these sliders instead, e.g. jaw_open,smile")
    parser.add_argument("--no-expressions", action="store_true", help="no sliders (the template is not rebuilt)")
    parser.add_argument("--no-rotations", action="store_true",
                        help="face splats keep their orientation under expressions (about half the expression data)")
    parser.add_argument("--webcam", action="store_true",
                        help="write a folder (default: live/ in the avatar folder; -o names it) whose page follows "
                             "your face through the camera, in the browser (docs/live.md)")
    parser.add_argument("--weights", metavar="DIR", help="weights folder holding the tracker's files (--webcam)")
    parser.set_defaults(func=_run)
