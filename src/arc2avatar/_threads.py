"""How many CPU threads PyTorch's operators use in a CLI run (issue 20).

PyTorch's default is one OpenMP thread per core. Its threads meet at a barrier after every
parallel operator, so when any other process takes a core, the whole team waits for the
descheduled thread: on a 2-core machine with one busy process next to it, a short ``demo`` ran
at 24.4 s/it with PyTorch's 2 threads and at 1.84 s/it with 1 (docs/benchmarks.md, "CPU threads
under load"). Half the usable cores keeps
free room for the rest of the machine and loses little when it is idle (the CPU renderer and
the small models scale poorly past a few threads anyway).

Precedence: ``--threads N`` → ``$ARC2AVATAR_THREADS`` → ``$OMP_NUM_THREADS`` (PyTorch read it
at import; it is left alone) → ``ThreadPolicy``'s default. Only the CLI calls ``apply_threads``
(it owns its process); API users call ``torch.set_num_threads`` themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from arc2avatar.errors import InputError

THREADS_ENV = "ARC2AVATAR_THREADS"
OMP_ENV = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class ThreadPolicy:
    """The default thread count when nobody chose one.

    Attributes:
        core_fraction: the share of the usable cores (``os.sched_getaffinity``) PyTorch gets;
            rounded down, at least 1.
        max_threads: an upper bound (past ~8 threads the CPU paths gain nothing measurable).
    """

    core_fraction: float = 0.5
    max_threads: int = 8


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and where it came from ("--threads", an environment variable, "default").
    ``threads`` None = keep PyTorch's own (it already read ``OMP_NUM_THREADS``)."""

    threads: int | None
    source: str


def usable_cores() -> int:
    """The cores this process may run on (CPU affinity, cgroup-pinned containers included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS / Windows have no affinity call
        return os.cpu_count() or 1


def choose_threads(
    requested: int | None = None,
    environ: Mapping[str, str] = os.environ,
    cores: int | None = None,
    policy: ThreadPolicy = ThreadPolicy(),
) -> ThreadChoice:
    """The thread count for this run; ``requested`` is ``--threads`` (None = not given)."""
    if requested is not None:
        return ThreadChoice(_positive(str(requested), "--threads"), "--threads")
    if environ.get(THREADS_ENV, "").strip():
        return ThreadChoice(_positive(environ[THREADS_ENV], f"${THREADS_ENV}"), f"${THREADS_ENV}")
    if environ.get(OMP_ENV, "").strip():
        return ThreadChoice(None, f"${OMP_ENV}")
    cores = usable_cores() if cores is None else cores
    return ThreadChoice(max(1, min(int(cores * policy.core_fraction), policy.max_threads)), "default")


def apply_threads(requested: int | None = None, environ: Mapping[str, str] = os.environ) -> ThreadChoice:
    """Choose (``choose_threads``) and set PyTorch's intra-op thread count; returns the choice."""
    choice = choose_threads(requested, environ)
    if choice.threads is not None:
        import torch

        torch.set_num_threads(choice.threads)
    return choice


def _positive(text: str, source: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{source}: {text!r} is not a thread count; give a whole number ≥ 1, e.g. 1")
    return value


__all__ = ["THREADS_ENV", "ThreadChoice", "ThreadPolicy", "apply_threads", "choose_threads", "usable_cores"]
