"""``arc2avatar finetune check|build|train``: the multi-view LoRA dataset and training (docs/method.md §8).

A thin layer over ``arc2avatar.finetune`` (``check_dataset``, ``build_from_avatar``,
``build_from_folder``, ``train_lora``).
"""

from __future__ import annotations

import argparse


def _limits(args: argparse.Namespace):
    from arc2avatar.finetune.dataset import DatasetLimits

    return DatasetLimits(min_views=args.min_views, min_side=args.min_size)


def _run_check(args: argparse.Namespace) -> int:
    from arc2avatar.finetune.dataset import check_dataset

    report = check_dataset(args.data, _limits(args))
    print(report.summary())
    return 0 if report.ok else 1


def _run_build(args: argparse.Namespace) -> int:
    from arc2avatar.errors import InputError
    from arc2avatar.finetune.build import AvatarRenderConfig, build_from_avatar, build_from_folder

    if args.from_avatar:
        out = build_from_avatar(args.from_avatar, args.out, AvatarRenderConfig(size=args.size),
                                overwrite=args.overwrite, device=args.device)
    elif args.from_folder:
        out = build_from_folder(args.from_folder, args.out, args.angles, args.frontal, args.id,
                                overwrite=args.overwrite)
    else:
        raise InputError("finetune build needs --from-avatar OUT_DIR or --from-folder RENDERS")
    print(f"wrote {out}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from arc2avatar.finetune.dataset import FRONTAL_PNG, ID_NPY, identity_folders
    from arc2avatar.finetune.train import FinetuneConfig, train_lora
    from arc2avatar.confkit import apply_overrides
    from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

    from pathlib import Path

    config = apply_overrides(FinetuneConfig(), args.overrides)
    root = Path(args.data)
    need = {"prior"}
    if root.is_dir() and any(not (f / ID_NPY).exists() and (f / FRONTAL_PNG).exists() for f in identity_folders(root)):
        need |= {"identity", "detector"}
    if args.threads is not None and args.gpus is None:
        from arc2avatar.errors import InputError

        raise InputError("--threads sets the CPU threads of the processes --gpus starts; give --gpus N too")
    weights = resolve_weights(WeightsConfig(root=args.weights), need)
    if args.gpus is not None:
        result = _launch(args, weights, config)
    else:
        result = train_lora(args.data, weights, args.out, config, resume=args.resume, limits=_limits(args))
    if result.rank == 0:
        print(f"wrote {result.lora_path} (step {result.step}, {result.world_size} process(es))")
    return 0


def _launch(args: argparse.Namespace, weights, config):
    """``--gpus N``: N processes through PyTorch's elastic launcher; rank 0's result."""
    from arc2avatar.errors import InputError
    from arc2avatar.finetune.distributed import WORLD_SIZE_ENV, LaunchSettings
    from arc2avatar.finetune.launcher import launch_training

    import os

    if WORLD_SIZE_ENV in os.environ:
        raise InputError("--gpus starts its own processes; under torchrun leave it out (torchrun's --nproc-per-node sets the count)")
    settings = LaunchSettings(nproc=args.gpus, threads_per_process=args.threads)
    return launch_training(settings, args.data, weights, args.out, config, resume=args.resume, limits=_limits(args))[0]


def _add_limits(parser: argparse.ArgumentParser) -> None:
    from arc2avatar.finetune.dataset import DatasetLimits

    parser.add_argument("--min-views", type=int, default=DatasetLimits.min_views, help="fewest views per identity")
    parser.add_argument("--min-size", type=int, default=DatasetLimits.min_side, help="smallest image side, pixels")


# The command(s) this module adds, with their one-line help (main.py lists them without importing more).
COMMANDS: dict[str, str] = {
    "finetune": "multi-view LoRA fine-tuning of Arc2Face (dataset, training)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help=COMMANDS["finetune"])
    sub = parser.add_subparsers(dest="finetune_command", metavar="STEP")

    check = sub.add_parser("check", help="validate a dataset folder; lists every problem, exit 1 if any")
    check.add_argument("data", help="one identity folder or a folder of identity folders")
    _add_limits(check)
    check.set_defaults(func=_run_check)

    build = sub.add_parser("build", help="turn multi-view renders into one identity folder of the dataset")
    src = build.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-avatar", metavar="OUT_DIR", help="render a saved avatar (arc2avatar create output)")
    src.add_argument("--from-folder", metavar="RENDERS", help="a folder of renders with an angles sidecar")
    build.add_argument("-o", "--out", required=True, help="the identity folder to write, e.g. DATA/ID")
    build.add_argument("--angles", help="sidecar JSON of angles (default RENDERS/angles.json)")
    build.add_argument("--frontal", help="frontal photo (default: the render nearest azimuth 0)")
    build.add_argument("--id", help="an id.npy ArcFace vector to store with it")
    build.add_argument("--size", type=int, default=512, help="render size for --from-avatar, pixels")
    build.add_argument("--device", default="cpu", help="render device for --from-avatar")
    build.add_argument("--overwrite", action="store_true", help="replace an existing identity folder")
    build.set_defaults(func=_run_build)

    train = sub.add_parser("train", help="train the multi-view LoRA (pytorch_lora_weights.safetensors)")
    train.add_argument("data", help="dataset folder (see `arc2avatar finetune check`)")
    train.add_argument("-o", "--out", required=True, help="run folder: LoRA, log, checkpoints, validation images")
    train.add_argument("--weights", help="weights folder (default: $ARC2AVATAR_WEIGHTS or ~/.cache/arc2avatar)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a FinetuneConfig field, e.g. --set steps=3000 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in -o")
    train.add_argument("--gpus", type=int, metavar="N",
                       help="data-parallel over N processes, one per GPU (PyTorch elastic launch; on a CPU "
                            "machine N gloo processes); --set batch_size is per process")
    train.add_argument("--threads", type=int, metavar="T",
                       help="with --gpus: CPU threads per process (default: cores // N)")
    _add_limits(train)
    train.set_defaults(func=_run_train)
