"""What the CLI says on Ctrl-C (issue 20): where the run stopped and the command that continues it.

``create`` and ``demo`` checkpoint on SIGINT/SIGTERM (``Trainer``, ``TrainingInterrupted``
carries the file); the same command line with ``--resume`` continues it (the saved
``config.yaml`` is used then). A second Ctrl-C stops at once: the last periodic checkpoint, if
any, is named. Before the optimisation's first checkpoint there is none, and the same command
starts over.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from collections.abc import Sequence

RESUME_FLAG = "--resume"
#: Commands whose runs checkpoint on Ctrl-C through ``Trainer`` and continue with ``--resume``.
TRAINER_COMMANDS: frozenset[str] = frozenset({"create", "demo"})


def resume_command(argv: Sequence[str], program: str = "arc2avatar") -> str:
    """The command line ``argv`` with ``--resume`` (once), quoted for a POSIX shell."""
    return shlex.join([program, *(a for a in argv if a != RESUME_FLAG), RESUME_FLAG])


def interrupted_message(error: KeyboardInterrupt, args: argparse.Namespace | None, argv: Sequence[str]) -> str:
    """One line: what was interrupted and how to go on."""
    checkpoint = getattr(error, "checkpoint", None)
    resumable = args is not None and hasattr(args, "resume")
    if checkpoint is None:
        if not (resumable and getattr(args, "command", None) in TRAINER_COMMANDS):
            return "interrupted"
        from arc2avatar.pipeline.trainer import CHECKPOINT_NAME

        earlier = Path(args.out) / CHECKPOINT_NAME
        if not earlier.is_file():  # stopped before the optimisation's first checkpoint
            return "interrupted before the first checkpoint: nothing to resume; the same command starts over"
        return f"interrupted; the last checkpoint is {earlier}; continue with: {resume_command(argv)}"
    iteration = getattr(error, "iteration", None)
    where = f" at iteration {iteration}" if iteration is not None else ""
    if not resumable:
        return f"interrupted{where}; checkpoint {checkpoint}"
    return f"interrupted{where}; checkpoint {checkpoint} written; continue with: {resume_command(argv)}"


__all__ = ["interrupted_message", "resume_command"]
