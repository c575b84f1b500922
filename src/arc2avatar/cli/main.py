"""The ``arc2avatar`` command: argument parsing only, every command calls the Python API.

Each subcommand lives in its own module of this package exposing
``register(subparsers) -> None``; the parser it adds sets ``func=<callable(args) -> int>``.
A user-caused failure (``Arc2AvatarError``) prints one line and exits with its code; so does
running out of memory (exit code 1), with what to lower.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from arc2avatar._cache import persist_compile_cache
from arc2avatar._threads import THREADS_ENV, apply_threads
from arc2avatar.errors import Arc2AvatarError, error_line

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
    "export",
    "drive",
    "finetune",
    "evaluate",
    "viewer",
    "bench",
    "serve",
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser. Only the module of the command named in ``argv`` registers its options
    (and imports what its defaults need); every other command is listed with its one-line help, so
    ``arc2avatar --help`` and each command start without loading torch. ``argv=None`` registers all."""
    from arc2avatar import __version__

    parser = argparse.ArgumentParser(
        prog="arc2avatar",
        description="One photo in, an expressive 3D Gaussian-splat head avatar out.",
    )
    parser.add_argument("--version", action="version", version=f"arc2avatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"CPU threads for PyTorch (default ${THREADS_ENV}, else $OMP_NUM_THREADS, else half "
                             "the usable cores: a full team slows down many times when other programs use the CPU)")
    command = None if argv is None else _command_word(parser, argv)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"arc2avatar.cli.{name}")
        if argv is None or command in module.COMMANDS:
            module.register(subparsers)
        else:
            for word, summary in module.COMMANDS.items():
                subparsers.add_parser(word, help=summary, add_help=False)
    return parser


def _command_word(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is neither an option of ``parser``
    (the top-level options) nor the value of one (``--threads 2``)."""
    takes_value = {flag for action in parser._actions if action.nargs != 0 for flag in action.option_strings}
    words = iter(argv)
    for word in words:
        if word in takes_value:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    persist_compile_cache()  # compiled GPU kernels survive a reboot (arc2avatar/_cache.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        apply_threads(args.threads)  # once, before any work (arc2avatar/_threads.py)
        return int(args.func(args) or 0)
    except Arc2AvatarError as error:
        print(f"arc2avatar: error: {error}", file=sys.stderr)
        return error.exit_code
    except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
        if not _is_out_of_memory(error):
            raise
        print(f"arc2avatar: error: out of memory ({error_line(error)}); lower the resolution or the batch "
              "(create/demo: --set resolution, --set views_per_step), or close what else holds the memory",
              file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"arc2avatar: error: cannot write{where}: {error.strerror}; free disk space or pick a writable -o "
              "(an unfinished run continues with --resume)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        from arc2avatar.cli._interrupt import interrupted_message

        print(f"arc2avatar: {interrupted_message(interrupt, args, argv)}", file=sys.stderr)
        return 130


# Errors of the machine, not of arc2avatar: no space, quota, read-only or not permitted.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _is_out_of_memory(error: BaseException) -> bool:
    """True for a CPU or GPU allocation failure (PyTorch's messages for either)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return "out of memory" in text.lower() or "can't allocate memory" in text


if __name__ == "__main__":
    sys.exit(main())
