"""`arc2avatar weights download|path`: fetch the weights, or show where they are looked for.

Thin layer over ``arc2avatar.weights.resolver``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

GROUP_CHOICES = ("prior", "identity", "detector")


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "weights": "download the weights or show their folder",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights", help=COMMANDS["weights"])
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION")
    download = actions.add_parser(
        "download", help="fetch every missing weight file from the Hugging Face Hub",
        description="Download Arc2Face, SD-1.5 parts and the antelopev2 detector at pinned "
                    "revisions into the local layout arc2avatar reads. Files present and whole "
                    "are kept.")
    download.add_argument("--to", type=Path, default=None, metavar="DIR",
                          help="destination folder (default: $ARC2AVATAR_WEIGHTS or "
                               "~/.cache/arc2avatar/weights)")
    download.add_argument("--only", nargs="+", choices=GROUP_CHOICES, default=None,
                          help="fetch only these groups (default: all)")
    download.add_argument("--webcam", action="store_true",
                          help="fetch only the live page's face tracker (@vladmandic/face-api and "
                               "@tensorflow/tfjs-backend-wasm, pinned, sha256 checked) from the npm registry")
    download.add_argument("--webcam-assets", type=Path, nargs="+", default=None, metavar="TGZ",
                          help="take the face tracker from these tarballs (`npm pack @vladmandic/face-api@VERSION "
                               "@tensorflow/tfjs-backend-wasm@VERSION`) instead of the network")
    download.set_defaults(func=run_download)
    path = actions.add_parser("path", help="print the weights folder arc2avatar uses")
    path.add_argument("--weights", type=Path, default=None, metavar="DIR")
    path.set_defaults(func=run_path)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def run_download(args: argparse.Namespace) -> int:
    from arc2avatar.weights.resolver import WeightsConfig, download_weights
    from arc2avatar.weights.resolver import ALL_GROUPS

    if getattr(args, "webcam", False) or getattr(args, "webcam_assets", None) is not None:
        return run_webcam_download(args)
    _log_hub_messages_once()
    config = WeightsConfig(root=args.to)
    root = config.local_root()
    download_weights(config, root, set(args.only) if args.only else ALL_GROUPS)
    print(f"weights ready in {root}")
    return 0


def run_webcam_download(args: argparse.Namespace) -> int:
    """``--webcam`` / ``--webcam-assets``: the live page's tracker files (``arc2avatar.weights.webcam``)."""
    from arc2avatar.weights.resolver import WeightsConfig
    from arc2avatar.weights.webcam import WEBCAM_PACKAGES, fetch_webcam_assets, webcam_assets_from_tarball

    root = WeightsConfig(root=args.to).local_root()
    if args.webcam_assets is not None:
        for tarball in args.webcam_assets:
            folder = webcam_assets_from_tarball(tarball, root)
    else:
        folder = fetch_webcam_assets(root)
    given = "the given tarballs" if args.webcam_assets is not None else " and ".join(p.spec for p in WEBCAM_PACKAGES)
    print(f"the live page's tracker files from {given} checked and stored in {folder}")
    return 0


def run_path(args: argparse.Namespace) -> int:
    from arc2avatar.weights.resolver import WeightsConfig

    print(WeightsConfig(root=args.weights).local_root())
    return 0


def _log_hub_messages_once() -> None:
    """huggingface_hub logs through its own stderr handler; letting its records also reach the
    CLI's root handler printed every retry twice (issue 20)."""
    import logging

    hub = logging.getLogger("huggingface_hub")
    if hub.handlers:
        hub.propagate = False
