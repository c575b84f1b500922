"""``create-batch --ray ADDRESS``: the batch's jobs as Ray tasks (``pipeline.batch.JobBackend``).

>>> from arc2avatar.cluster import RayOptions
>>> from arc2avatar.cluster.batch import ray_batch_backend
>>> from arc2avatar.pipeline.batch import create_batch
>>> create_batch("photos/", "avatars/", preset="paper", backend=ray_batch_backend(RayOptions("auto")))

Every job is submitted at once (Ray queues them and runs as many as the cluster has GPUs, or CPUs
on a CPU-only cluster); the events of every job's attempts go to ``OUT_DIR/cluster_log.jsonl``.
A job that fails for a reason of its own is not retried (``--retries`` is for the local pool); a
lost node is (``RayOptions.node_retries``), from the last checkpoint that reached the head.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from arc2avatar.cluster.head import RayBackend
from arc2avatar.cluster.spec import EVENTS_NAME, RayOptions, RemoteJob
from arc2avatar.pipeline.batch import Attempt, BatchJob, BatchOptions


class RayBatch:
    """A ``JobBackend`` over ``RayBackend``: jobs of ``OUT_DIR`` become ``RemoteJob``s."""

    retry_failures = False

    def __init__(self, backend: RayBackend, out_dir: Path) -> None:
        self.backend = backend
        self.events_path = Path(out_dir) / EVENTS_NAME
        self.capacity = sys.maxsize  # Ray queues what the cluster cannot run yet

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def submit(self, job: BatchJob, options: BatchOptions) -> Future:
        remote = RemoteJob(
            key=job.name, head_dir=str(job.out_dir), mode="demo-photo" if options.oracle else "create",
            photos=tuple(str(p) for p in job.photos), preset=options.resolved_preset, overrides=options.overrides,
            config_path=options.config_path, lora=None if options.oracle else options.lora,
            flame=None if options.oracle else options.flame, flame_masks=None if options.oracle else options.flame_masks,
            weights=options.weights, events_path=str(self.events_path))
        return self.backend.submit(remote)

    def where(self, future: Future) -> str | None:
        return None  # known when it ends (Attempt.node)

    def outcome(self, future: Future) -> Attempt:
        return future.result()

    def close(self) -> None:
        self.backend.close()


def ray_batch_backend(options: RayOptions) -> Callable[[Path], RayBatch]:
    """What ``create_batch(backend=...)`` takes: connects to the cluster once the inputs are checked."""
    return lambda out_dir: RayBatch(RayBackend(options), out_dir)
