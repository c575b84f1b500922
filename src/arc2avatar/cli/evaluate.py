"""``arc2avatar evaluate OUT --refs PHOTO...``: thin wrapper over ``arc2avatar.evaluate.evaluate``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from arc2avatar.errors import InputError


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "evaluate": "identity similarity, FID/KID and expression consistency of an avatar, with plots",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from arc2avatar.evaluate.views import EvalViews

    parser = subparsers.add_parser(
        "evaluate", help=COMMANDS["evaluate"],
        description="Render the avatar at fixed views (azimuth -90..90 step 15 at polar 90 and 75 degrees, white "
                    "background), detect and align faces like the input photos, and report the similarity to "
                    "every reference photo per view and as distributions, the detection-failure rate, FID/KID "
                    "and expression consistency. Recognisers: dlib's ResNet (independent judge, offline) and the "
                    "ArcFace ONNX guidance network when its weights are present.")
    parser.add_argument("avatar", type=Path, metavar="OUT", help="an avatar folder written by create or demo")
    parser.add_argument("--refs", nargs="+", type=Path, default=[], metavar="PHOTO", required=True,
                        help="reference photos of the person")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="report folder (default OUT/evaluation; an earlier report there is replaced)")
    parser.add_argument("--recognizers", default="auto", metavar="NAMES",
                        help="comma-separated: dlib, arcface, or auto = every one available (default auto)")
    parser.add_argument("--detector", choices=("hog", "cnn"), default="hog",
                        help="dlib face detector (default hog; cnn is slower and finds more turned faces)")
    parser.add_argument("--size", type=int, default=EvalViews.size, help="render size in pixels (default %(default)s)")
    parser.add_argument("--azimuth-max", type=float, default=EvalViews.azimuth_max_deg, metavar="DEG",
                        help="views from -DEG to +DEG azimuth (default %(default)g)")
    parser.add_argument("--azimuth-step", type=float, default=EvalViews.azimuth_step_deg, metavar="DEG",
                        help="azimuth step (default %(default)g)")
    parser.add_argument("--polar", default=",".join(f"{p:g}" for p in EvalViews.polar_deg), metavar="DEG[,DEG]",
                        help="polar angles of the view rings, 90 = eye level (default %(default)s)")
    parser.add_argument("--fid", choices=("auto", "on", "off"), default="auto",
                        help="FID/KID: auto = when the Inception file and >= 2 references are there (default)")
    parser.add_argument("--inception", type=Path, default=None, metavar="PATH",
                        help="inception-2015-12-05.pt (default: in the weights folder)")
    parser.add_argument("--expression", dest="expressions", action="append", default=[], metavar="NAME=W[,NAME=W]",
                        help="an expression to test, e.g. smile=0.8 (repeatable; default: smile, jaw_open, "
                             "brow_raise, blink)")
    parser.add_argument("--no-expressions", action="store_true", help="skip expression consistency")
    parser.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="weights folder (default $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar/weights)")
    parser.add_argument("--flame", type=Path, default=None, help="the FLAME file of a FLAME avatar (for expressions)")
    parser.add_argument("--flame-masks", type=Path, default=None, help="its FLAME_masks.pkl, if used at creation")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal)")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from arc2avatar.evaluate.expression import ExpressionEvalConfig
    from arc2avatar.evaluate.run import EvaluateConfig
    from arc2avatar.evaluate.views import EvalViews
    from arc2avatar.identity.dlib_faces import DlibDetectorConfig
    from arc2avatar.avatar.rig import parse_assignments

    if args.size < 64:
        raise InputError(f"--size {args.size} is too small for face detection (use at least 64, 512 is the default)")
    try:
        polar = tuple(float(p) for p in args.polar.split(",") if p.strip())
    except ValueError:
        raise InputError(f"--polar {args.polar!r}: give degrees separated by commas, e.g. 90,75") from None
    if not polar:
        raise InputError("--polar needs at least one angle")
    views = EvalViews(azimuth_min_deg=-args.azimuth_max, azimuth_max_deg=args.azimuth_max,
                      azimuth_step_deg=args.azimuth_step, polar_deg=polar, size=args.size)
    views.azimuths()  # a bad grid fails here, before anything loads
    base = EvaluateConfig()
    expressions: ExpressionEvalConfig | None = ExpressionEvalConfig()
    if args.no_expressions:
        expressions = None
    elif args.expressions:
        chosen = tuple((text, parse_assignments(text, "--expression")) for text in args.expressions)
        expressions = ExpressionEvalConfig(expressions=chosen, explicit=True)
    if expressions is not None and expressions.polar_deg not in polar:
        expressions = replace(expressions, polar_deg=polar[0])
    return replace(
        base,
        views=views,
        recognizers=tuple(n.strip() for n in args.recognizers.split(",") if n.strip()),
        dlib=replace(base.dlib, detector=DlibDetectorConfig(detector=args.detector)),
        fid_mode=args.fid,
        fid=replace(base.fid, inception_path=args.inception),
        expressions=expressions,
        weights=args.weights,
        flame=args.flame,
        flame_masks=args.flame_masks,
    )


def run(args: argparse.Namespace) -> int:
    from arc2avatar.evaluate.run import evaluate
    from arc2avatar.evaluate.similarity import match_summary, view_entry

    result = evaluate(args.avatar, args.refs, args.report, _config(args), progress=False if args.no_progress else None)
    report = result.report
    for section in report["identity"]:
        rec = section["recognizer"]
        frontal = view_entry(section, 0.0, 90.0)
        front = "no face" if frontal is None or not frontal["detected"] else f"{frontal['mean_score']:.3f}"
        mean = section["distribution"]["mean"]
        print(f"{rec['name']}: frontal {front}, mean over views "
              f"{'—' if mean is None else f'{mean:.3f}'} ({rec['same_person_rule']}); {match_summary(section)}")
    fid = report["fid"]
    if "skipped" in fid:
        print("FID/KID skipped: " + fid["skipped"])
    else:
        print(f"FID {_number(fid['fid'], 2)}, KID {_number(fid['kid_mean'], 4)} ± {_number(fid['kid_std'], 4)}")
    print(f"report written to {result.report_dir}")
    if args.json:
        print(json.dumps(report, default=str))
    return 0


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
