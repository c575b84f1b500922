"""The ``arc2avatar`` command: argument parsing only, every command calls the Python API.

Each subcommand lives in its own module of this package exposing
``register(subparsers) -> None``; the parser it adds sets ``func=<callable(args) -> int>``.
A user-caused failure (``Arc2AvatarError``) prints one line and exits with its code; so does
running out of memory (exit code 1), with what to lower.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from arc2avatar._cache import persist_compile_cache
from arc2avatar.errors import Arc2AvatarError

# Modules in arc2avatar.cli that each register one or more subcommands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "create",
    "create_batch",
    "render",
    "template",
    "embed",
    "weights",
    "doctor",
    "express",
    "finetune",
    "evaluate",
    "viewer",
    "bench",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    from arc2avatar import __version__

    parser = argparse.ArgumentParser(
        prog="arc2avatar",
        description="One photo in, an expressive 3D Gaussian-splat head avatar out.",
    )
    parser.add_argument("--version", action="version", version=f"arc2avatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"arc2avatar.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    persist_compile_cache()  # compiled GPU kernels survive a reboot (arc2avatar/_cache.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except Arc2AvatarError as error:
        print(f"arc2avatar: error: {error}", file=sys.stderr)
        return error.exit_code
    except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
        if not _is_out_of_memory(error):
            raise
        print(f"arc2avatar: error: out of memory ({_first_line(error)}); lower the resolution or the batch "
              "(create/demo: --set resolution, --set views_per_step), or close what else holds the memory",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("arc2avatar: interrupted", file=sys.stderr)
        return 130


def _is_out_of_memory(error: BaseException) -> bool:
    """True for a CPU or GPU allocation failure (PyTorch's messages for either)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return "out of memory" in text.lower() or "can't allocate memory" in text


def _first_line(error: BaseException, limit: int = 160) -> str:
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
