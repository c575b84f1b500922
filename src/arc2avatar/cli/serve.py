"""``arc2avatar serve``: the web app (a thin wrapper over ``arc2avatar.app``; docs/serve.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from arc2avatar._signals import kept_signal_handlers
from arc2avatar.errors import InputError, MissingDependencyError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` → (user, password)."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise InputError("--auth takes USER:PASS (both non-empty), e.g. --auth alice:correct-horse")
    return user, password


def exposure_warning(host: str, share: bool, auth: tuple[str, str] | None) -> str | None:
    """The warning printed when the app is reachable from other machines (None on loopback)."""
    if host in LOOPBACK and not share:
        return None
    where = "through a public gradio.live link" if share else f"from other machines on {host}"
    advice = ("" if auth else " Anyone who can reach it can upload photos and use this machine's GPUs: "
              "add --auth USER:PASS.")
    return f"warning: the app is reachable {where}.{advice} See docs/serve.md."


def _run(args: argparse.Namespace) -> int:
    ray = None
    if args.ray:  # before anything is imported or started: a missing Ray is one line at once
        from arc2avatar.cluster import RayOptions, parse_resources, require_ray

        require_ray()
        ray = RayOptions(args.ray, parse_resources(args.ray_resources))
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise MissingDependencyError("`serve` needs Gradio: pip install -e '.[app]'") from None
    from arc2avatar.app import AppConfig, UploadLimits
    from arc2avatar.app.service import Service
    from arc2avatar.app.ui import build_app

    auth = parse_auth(args.auth)
    config = AppConfig(ray=ray, work_dir=args.work, gpus=args.gpus, cpu_workers=args.cpu_workers, weights=args.weights,
                       overrides=tuple(args.overrides), preview_every=args.preview_every, private_jobs=auth is not None,
                       limits=UploadLimits(photo_mb=args.max_photo_mb, video_mb=args.max_video_mb,
                                           video_s=args.max_video_s))
    warning = exposure_warning(args.host, args.share, auth)
    if warning:
        print(warning, file=sys.stderr)
    service = Service(config)
    stop = threading.Event()
    try:
        app = build_app(config, service=service)
        app.queue(default_concurrency_limit=args.concurrency)
        # quiet: Gradio's banner would advise launch(share=True); our flag is --share (printed below)
        app.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                   prevent_thread_lock=True, quiet=True, footer_links=["api"])
        print(f"arc2avatar: serving on http://{args.host}:{app.server_port} (work folder {config.work_dir}); "
              "Ctrl-C stops (running jobs checkpoint and continue at the next start)", flush=True)
        if args.share:
            print(f"arc2avatar: public link {app.share_url or '(could not be made)'}", flush=True)
        else:
            print("arc2avatar: --share also publishes a temporary public gradio.live link", flush=True)
        with kept_signal_handlers((signal.SIGINT, signal.SIGTERM)):  # main(["serve", ...]) in a notebook
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
        app.close()
    finally:
        service.close()
    print("arc2avatar: stopped", flush=True)
    return 0


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "serve": "the web app: make, look at, animate and drive avatars in a browser",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help=COMMANDS["serve"],
        description="A Gradio app with a persistent job queue in WORK/jobs.sqlite, one worker process per GPU, "
                    "live progress, a gallery, downloads and a named API for gradio_client. Without the weights "
                    "it offers the offline oracle demo. Binds 127.0.0.1 unless told otherwise (docs/serve.md).",
    )
    parser.add_argument("--work", default="arc2avatar-work", help="work folder: jobs, queue (default ./arc2avatar-work)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs for avatar jobs, one worker each (default: all)")
    parser.add_argument("--cpu-workers", type=int, default=1, help="worker processes without a GPU (default 1)")
    parser.add_argument("--auth", metavar="USER:PASS", help="require this login; jobs are then private to their user")
    parser.add_argument("--share", action="store_true", help="also publish through a temporary gradio.live link")
    parser.add_argument("--weights", help="weights folder (default $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar/weights)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config field for every avatar job, after its preset (repeatable)")
    parser.add_argument("--preview-every", type=int, default=50,
                        help="iterations between preview renders and checkpoints (default 50)")
    parser.add_argument("--max-photo-mb", type=float, default=20.0, help="largest photo upload (default 20 MB)")
    parser.add_argument("--max-video-mb", type=float, default=200.0, help="largest video upload (default 200 MB)")
    parser.add_argument("--max-video-s", type=float, default=60.0,
                        help="longest driving video, seconds; a drive job reads no more (default 60)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="page events handled at once (status polls are not limited; default 8)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run avatar jobs on a Ray cluster instead of this machine's GPUs: auto, HOST:PORT or "
                             "local (docs/cluster.md); needs the cluster extra")
    parser.add_argument("--ray-resources", metavar="NAME=N[,NAME=N]",
                        help="custom Ray resources each avatar job asks for besides its GPU (or a JSON object)")
    parser.set_defaults(func=_run)
