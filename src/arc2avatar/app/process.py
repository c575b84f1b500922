"""Which process this is: the web process, or one of the app's worker processes (issue 26 item 1).

The workers are spawned (``multiprocessing``'s spawn start method, as create-batch's are), and a
spawned child re-runs the parent's main script as ``__mp_main__`` before it runs any job. A script
that builds and launches the app at module level (docs/serve.md's embedding snippet, a Hugging Face
Space's ``app.py``) would then build a second app in every worker: a second queue that requeues the
running job, a dispatcher that spawns from a child that is still starting, and a server that tries
to bind the same port. So every worker process carries a name (``WORKER_PREFIX``) and the app's
entry points check it: in a worker, ``build_app`` returns ``InertApp`` (no queue, no workers, no
server) and ``Dispatcher.start`` refuses. Written by hand: the name check; the processes are
``multiprocessing``'s.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

WORKER_PREFIX = "arc2avatar-worker"


def in_worker_process() -> bool:
    """True inside one of the app's worker processes (also while the child re-runs the main script)."""
    return multiprocessing.current_process().name.startswith(WORKER_PREFIX)


class _WorkerProcess(SpawnProcess):
    """A spawned process named ``arc2avatar-worker-…`` (the name reaches the child before its main script runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{WORKER_PREFIX}-{self.name}"


class WorkerContext(SpawnContext):
    """The spawn start method, with named worker processes (``ProcessPoolExecutor(mp_context=...)``)."""

    Process = _WorkerProcess  # type: ignore[assignment]


class InertApp:
    """What ``build_app`` returns inside a worker process: ``queue()``, ``launch()`` and ``close()`` do nothing."""

    arc2avatar_service = None

    def queue(self, *args: Any, **kwargs: Any) -> "InertApp":
        return self

    def launch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


__all__ = ["InertApp", "WorkerContext", "WORKER_PREFIX", "in_worker_process"]
