"""``arc2avatar create-batch PHOTOS_DIR -o OUT_DIR [--gpus N]``: a thin wrapper over ``arc2avatar.pipeline.batch``."""

from __future__ import annotations

import argparse

from arc2avatar.pipeline.presets import PRESETS


def _run(args: argparse.Namespace) -> int:
    from arc2avatar.pipeline.batch import create_batch

    backend = None
    if args.ray:
        from arc2avatar.cluster import RayOptions, parse_resources, require_ray
        from arc2avatar.cluster.batch import ray_batch_backend

        require_ray()
        backend = ray_batch_backend(RayOptions(args.ray, parse_resources(args.ray_resources),
                                               cpus_per_job=float(args.threads or 1)))
    result = create_batch(
        args.photos_dir, args.out, gpus=args.gpus, workers=args.workers, retries=args.retries,
        threads_per_worker=args.threads, preset=args.preset, config_path=args.config, overrides=args.overrides,
        flame=args.flame, flame_masks=args.flame_masks, lora=args.lora, weights=args.weights, oracle=args.oracle,
        backend=backend,
    )
    print(result.table())
    print(f"summary: {result.summary_path}")
    return 0 if result.ok else 1


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "create-batch": "one avatar per photo (or identity folder), spread over GPUs",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "create-batch", help=COMMANDS["create-batch"],
        description="Make one avatar per image file of PHOTOS_DIR (named after the file) and one per sub-folder "
                    "of images (one identity, several photos), one worker process per GPU. Finished avatars are "
                    "skipped, unfinished ones resumed, a failed job retried; OUT_DIR/batch_summary.json and the "
                    "table printed at the end say what happened. Exit code 1 if any job failed.",
    )
    parser.add_argument("photos_dir", help="folder of photos and/or identity folders of photos")
    parser.add_argument("-o", "--out", required=True, help="output folder: one avatar folder per job")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs to use, one worker each (default: all visible)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: one per GPU, 1 on a CPU machine)")
    parser.add_argument("--retries", type=int, default=1, help="extra attempts of a failed job (default 1)")
    parser.add_argument("--threads", type=int, metavar="T", help="CPU threads per worker (default: cores // workers)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="settings preset (default paper; cpu-smoke with --oracle)")
    parser.add_argument("--config", help="YAML config applied over the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field for every job (repeatable)")
    parser.add_argument("--flame", help="FLAME model file instead of the built-in template")
    parser.add_argument("--flame-masks", help="FLAME_masks.pkl")
    parser.add_argument("--lora", help="multi-view LoRA file (pytorch_lora_weights.safetensors)")
    parser.add_argument("--weights", help="weights folder (default $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar/weights)")
    parser.add_argument("--oracle", action="store_true",
                        help="offline oracle prior instead of Arc2Face (as `demo`; no weights needed)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the jobs on a Ray cluster instead of this machine's GPUs: auto (the cluster this "
                             "machine joined with `ray start`), HOST:PORT, or local (docs/cluster.md); needs the "
                             "cluster extra")
    parser.add_argument("--ray-resources", metavar="NAME=N[,NAME=N]",
                        help="custom Ray resources each job asks for besides its GPU (or a JSON object)")
    parser.set_defaults(func=_run)
