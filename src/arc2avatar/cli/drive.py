"""``arc2avatar drive``: an avatar driven by a face video (docs/driving.md).

Argument parsing only; the work is in ``arc2avatar.drive.run.drive``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace


def _run(args: argparse.Namespace) -> int:
    root = logging.getLogger()
    level = root.level
    if args.quiet:  # warnings and errors only: no INFO lines (main() set the level before this runs)
        root.setLevel(max(logging.WARNING, level))
    try:
        return _drive(args)
    finally:
        root.setLevel(level)


def _drive(args: argparse.Namespace) -> int:
    from arc2avatar.drive.run import DriveConfig, drive
    from arc2avatar.errors import InputError

    config = replace(DriveConfig(), size=args.size)
    if args.expressions and args.flame:
        raise InputError("--expressions names built-in blendshapes; on FLAME the first --flame-coefficients "
                         "expression coefficients and the jaw are fitted")
    if args.flame_coefficients is not None:
        if args.flame_coefficients < 0:
            raise InputError(f"--flame-coefficients must be ≥ 0, got {args.flame_coefficients}")
        config = replace(config, flame=replace(config.flame, num_expressions=args.flame_coefficients))
    if args.expressions:
        names = tuple(n.strip() for n in args.expressions.split(",") if n.strip())
        config = replace(config, fit=replace(config.fit, expressions=names))
    result = drive(args.avatar, args.video, args.out, sequence_out=args.sequence_out, side_by_side=args.side_by_side,
                   pose=not args.no_pose, neutral_frame=args.neutral_frame, smooth=args.smooth, start=args.start,
                   end=args.end, flame=args.flame, flame_masks=args.flame_masks, flame_landmarks=args.flame_landmarks,
                   config=config, progress=not args.quiet)
    report = result.report
    if not args.quiet:
        print(json.dumps({k: report[k] for k in ("frames", "frames_without_face", "mean_confidence", "stage_fps")},
                         indent=1))
    print(f"wrote {args.out}" + (f" and {args.sequence_out}" if args.sequence_out else "")
          + f" (report: {result.paths['report']})")
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "drive": "drive an avatar with a face video (tracking → expressions, head pose)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("drive", help=COMMANDS["drive"],
                                   description="Track the face in VIDEO (dlib's 68 landmarks), fit head pose and "
                                               "expression weights per frame and render the driven avatar.")
    parser.add_argument("avatar", help="an avatar folder written by `arc2avatar create`")
    parser.add_argument("video", help="the driving video (MP4, MOV, AVI, MKV, WebM…)")
    parser.add_argument("-o", "--out", required=True, help="the driven video (.mp4); a .report.json goes beside it")
    parser.add_argument("--sequence-out", help="also write the fitted sequence (JSON) for `animate --sequence`")
    parser.add_argument("--side-by-side", action="store_true", help="show the input frame and its landmarks too")
    parser.add_argument("--no-pose", action="store_true", help="expressions only: the avatar keeps facing the camera")
    parser.add_argument("--neutral-frame", type=int, help="frame with the actor's resting face (default: the first "
                                                          "frame with a face)")
    parser.add_argument("--smooth", type=float, default=1.0, help="landmark smoothing strength (0 = off; default 1)")
    parser.add_argument("--start", type=float, help="start time in the video, seconds")
    parser.add_argument("--end", type=float, help="end time in the video, seconds")
    parser.add_argument("--size", type=int, default=512, help="size of the rendered avatar frames, pixels")
    parser.add_argument("--expressions", help="comma-separated blendshapes to fit on the built-in template (default: "
                                              "jaw_open, smile, blink_left, blink_right, brow_raise)")
    parser.add_argument("--flame", help="a FLAME avatar's FLAME file (the same as at creation)")
    parser.add_argument("--flame-coefficients", type=int, help="FLAME expression coefficients fitted (the first N; "
                                                               "default 10)")
    parser.add_argument("--flame-masks", help="FLAME_masks.pkl, if the avatar was made with it")
    parser.add_argument("--flame-landmarks", help="FLAME's landmark embedding (flame_static_embedding.pkl); without "
                                                  "it the built-in landmark table is carried onto FLAME (less exact)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars, log lines or report summary: only the line naming what was written")
    parser.set_defaults(func=_run)
