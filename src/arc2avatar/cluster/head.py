"""The head's side of cluster jobs: the ``Inbox`` actor and ``RayBackend`` (docs/cluster.md).

``Inbox`` is a Ray actor pinned to the head's own node (the node of the process that submits the
jobs: ``create-batch`` or ``serve``). It is the only writer of the head's avatar folders while
jobs run: it numbers each job's attempts, hands a starting attempt the files of the last
checkpoint that reached the head, writes what a node sends (atomically, the checkpoint last, so a
checkpoint on the head always comes with its config) and ignores anything from an attempt that
is no longer the current one. Each job's events (start, resume point, checkpoints, end, bytes) go
to its JSON-lines log on the head (``RemoteJob.events_path``).

``RayBackend`` submits one task per job (``node.run_remote``) with ``num_gpus=1`` (``num_cpus``
on a CPU-only cluster, plus custom resources), ``max_retries`` for lost nodes and worker
processes and ``retry_exceptions=False`` (a job's own failure comes back as a failed ``Attempt``,
never as an exception, so it is not retried), and ``max_calls=1``: every job gets a fresh worker
process, so a process that a cancel interrupted anywhere (inside an import, say) never runs
another job. A finished job's folder is written into the head's folder by ``write_finished``.

``cancel`` (and ``close``) depend on where the job is, which the Inbox knows: a task that
optimises (its node has reported the trainer's loop running) is cancelled with ``ray.cancel``
(the task sees a KeyboardInterrupt: the trainer writes a checkpoint, the node sends it to the head);
a job still queued or preparing has nothing to save, so its task is cancelled with ``force=True``
at once (a KeyboardInterrupt lands late in a blocking call, such as a wait on a cache lock). A task
still running after the cancel's grace has its worker process killed, the force-cancel repeated
until the task has ended: Ray drops a cancel of a task while an earlier cancel's request to the
same task is still on its way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from arc2avatar._io import atomic_write_bytes
from arc2avatar.cluster.node import run_remote
from arc2avatar.cluster.spec import RayOptions, RemoteJob, require_ray
from arc2avatar.errors import InputError
from arc2avatar.pipeline.batch import Attempt, one_line

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"  # pipeline.trainer.CHECKPOINT_NAME (the trainer imports torch; the Inbox need not)
FINISHED_MARKER = "avatar/avatar.json"  # api.run_state's mark of a finished avatar: written last
STOP_WAIT_S = 60.0  # how long close() waits for cancelled tasks to send their last checkpoint
KILL_RETRY_S = 1.0  # how often a force-cancel is sent again while the task still runs, seconds
PHASE_WAIT_S = 10.0  # how long cancel() waits for the Inbox to say where a job is (then: as if optimising)
QUEUED, PREPARING, OPTIMISING = "queued", "preparing", "optimising"  # Inbox.phase
COLLECTORS = 4  # head threads writing finished folders


def _append_event(path: str | None, record: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"t": round(time.time(), 3), **record}) + "\n")


def _read_events(path: str | None) -> list[dict[str, Any]]:
    if not path or not Path(path).is_file():
        return []
    events = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _checkpoint_iteration(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["iteration"])
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: the node's resume reports it
        return 0


class Inbox:
    """The head's receiver (a Ray actor on the head node; see the module docstring)."""

    def __init__(self) -> None:
        self.jobs: dict[str, RemoteJob] = {}
        self.attempts: dict[str, int] = {}
        self.iterations: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.phases: dict[str, str] = {}  # where the current attempt of each job is (QUEUED when absent)

    def begin(self, job: RemoteJob, node: str) -> tuple[int, dict[str, bytes], int]:
        """A new attempt of ``job`` on ``node``: its number, the head's resume files, their iteration."""
        self.jobs[job.key] = job
        if job.key not in self.attempts:  # a head restarted (the app): number on from its log
            self.attempts[job.key] = sum(1 for e in _read_events(job.events_path)
                                         if e.get("event") == "start" and e.get("job") == job.key)
        attempt = self.attempts[job.key] + 1
        self.attempts[job.key] = attempt
        self.phases[job.key] = PREPARING
        head = Path(job.head_dir)
        files: dict[str, bytes] = {}
        iteration = 0
        if (head / CHECKPOINT_FILE).is_file():
            files = {p.name: p.read_bytes() for p in sorted(head.iterdir()) if p.is_file() and not p.name.startswith(".")}
            iteration = self.iterations.get(job.key) or _checkpoint_iteration(head / CHECKPOINT_FILE)
        size = sum(len(b) for b in files.values())
        self.sent[job.key] = self.sent.get(job.key, 0) + size
        _append_event(job.events_path, {"job": job.key, "event": "start", "attempt": attempt, "node": node,
                                        "resume_iteration": iteration, "bytes_to_node": size})
        log.info("%s: attempt %d on %s%s", job.key, attempt, node,
                 f", resuming from the checkpoint of iteration {iteration}" if iteration else "")
        return attempt, files, iteration

    def deliver(self, key: str, attempt: int, files: dict[str, bytes], preview: bytes | None,
                iteration: int | None) -> bool:
        """Write what attempt ``attempt`` of ``key`` sent (False: a stale attempt, ignored)."""
        job = self.jobs.get(key)
        if job is None or attempt != self.attempts.get(key):
            return False
        head = Path(job.head_dir)
        for name in sorted(files, key=lambda n: n == CHECKPOINT_FILE):  # the checkpoint last
            atomic_write_bytes(head / Path(name).name, files[name])
        if preview is not None and job.preview_path:
            atomic_write_bytes(job.preview_path, preview)
        size = sum(len(b) for b in files.values()) + len(preview or b"")
        self.received[key] = self.received.get(key, 0) + size
        if iteration is not None:  # a checkpoint: the attempt optimises (or has optimised)
            self.iterations[key] = iteration
            self.phases[key] = OPTIMISING
            _append_event(job.events_path, {"job": key, "event": "checkpoint", "attempt": attempt,
                                            "iteration": iteration, "bytes": size})
        return True

    def optimising(self, key: str, attempt: int) -> bool:
        """Attempt ``attempt`` of ``key`` runs the trainer's loop (a cancel now makes it write a
        checkpoint); False: a stale attempt, ignored."""
        if attempt != self.attempts.get(key):
            return False
        self.phases[key] = OPTIMISING
        return True

    def phase(self, key: str) -> str:
        """Where ``key``'s current attempt is: QUEUED (not started), PREPARING or OPTIMISING."""
        return self.phases.get(key, QUEUED)

    def note(self, job: RemoteJob, record: dict[str, Any]) -> dict[str, int]:
        """Log the end of a job (also one that never started); returns its bytes moved (to its
        nodes, to the head during runs)."""
        key = job.key
        self.phases.pop(key, None)
        moved = {"to_node_resume": self.sent.get(key, 0), "to_head_progress": self.received.get(key, 0)}
        _append_event(job.events_path, {"job": key, **record, **moved})
        return moved

    def ping(self) -> bool:
        return True


def write_finished(head_dir: Path, files: dict[str, bytes]) -> None:
    """Put a finished avatar folder into ``head_dir``: every file atomically, the finished mark
    (``avatar/avatar.json``) last, then the checkpoint removed, so the folder reads as unfinished
    (resumable) until it reads as finished, never as anything in between."""
    outside = [n for n in files if Path(n).is_absolute() or ".." in Path(n).parts]
    if outside:
        raise InputError(f"a node sent files outside the avatar folder ({', '.join(outside[:3])}); nothing was written")
    head_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == FINISHED_MARKER):
        atomic_write_bytes(head_dir / name, files[name])
    if CHECKPOINT_FILE not in files:
        (head_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    for path in head_dir.iterdir():  # what the run's progress left that the finished folder lacks
        if path.is_file() and path.name not in files:
            path.unlink()


def kill_until_ended(ray: Any, ref: Any, running: Callable[[], bool], stop: threading.Event,
                     retry_s: float = KILL_RETRY_S) -> None:
    """Force-cancel ``ref``'s task (Ray kills its worker process), again every ``retry_s`` seconds
    while ``running()`` and until ``stop`` is set: Ray drops a cancel that arrives while an earlier
    cancel's request to the same task is still on its way, so a force-cancel sent right after
    ``ray.cancel(ref)`` alone can be lost (and the task runs on)."""
    while running() and not stop.is_set():
        try:
            ray.cancel(ref, force=True)
        except Exception as error:  # noqa: BLE001 - it ended meanwhile, or the cluster is gone
            log.debug("force-cancel: %s", error)
            return
        stop.wait(retry_s)


def _read_input(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None


class RayBackend:
    """Avatar jobs as Ray tasks (see the module docstring).

    Args:
        options: the cluster and the placement (``RayOptions``).
    Raises:
        MissingDependencyError: Ray is not installed. InputError: the cluster cannot be reached, or
        no node offers a resource asked for.
    """

    def __init__(self, options: RayOptions) -> None:
        ray = require_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.options = options
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                if options.address == "local":
                    ray.init(object_store_memory=None if options.object_store_mb is None else options.object_store_mb << 20,
                             include_dashboard=False)
                else:
                    ray.init(address=options.address)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise InputError(f"cannot reach the Ray cluster at {options.address!r} ({one_line(error)}); start one "
                                 "with `ray start --head` (docs/cluster.md)") from None
        resources = ray.cluster_resources()
        missing = [name for name in options.resources if resources.get(name, 0) < options.resources[name]]
        if missing:
            self._shutdown()
            raise InputError(f"no node of the Ray cluster offers {', '.join(missing)} (--ray-resources); "
                             "start nodes with `ray start --resources '{\"NAME\": N}'`")
        gpus = options.gpus_per_job if options.gpus_per_job is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
        self.gpus_per_job = gpus
        self.capacity = max(1, int(resources.get("GPU", 0) // gpus) if gpus else
                            int(resources.get("CPU", 1) // options.cpus_per_job))
        here = ray.get_runtime_context().get_node_id()
        self._inbox = ray.remote(Inbox).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()
        ray.get(self._inbox.ping.remote())
        self._task = ray.remote(  # max_calls: a fresh worker process per job (module docstring)
            num_gpus=gpus, num_cpus=options.cpus_per_job, resources=dict(options.resources) or None,
            max_retries=options.node_retries, retry_exceptions=False, max_calls=1)(run_remote)
        self._refs: dict[str, Any] = {}
        self._cancelled: set[str] = set()  # keys whose task was cancelled (a killed worker then means "cancelled")
        self._closing = threading.Event()  # stops the force-cancel loops (``_kill_if_running``)
        self._inputs: dict[str, tuple[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._collector = ThreadPoolExecutor(max_workers=COLLECTORS, thread_name_prefix="arc2avatar-collect")
        self._pending: set[Future] = set()
        log.info("Ray cluster %s: %s; each job asks for %s GPU, %s CPU%s (%d at once)", options.address,
                 {k: v for k, v in resources.items() if k in ("CPU", "GPU")}, gpus, options.cpus_per_job,
                 f", {options.resources}" if options.resources else "", self.capacity)

    def describe(self) -> dict[str, Any]:
        return {"backend": "ray", "address": self.options.address, "gpus_per_job": self.gpus_per_job,
                "cpus_per_job": self.options.cpus_per_job, "resources": dict(self.options.resources),
                "capacity": self.capacity}

    def _input(self, path: str) -> tuple[str, Any]:
        """A head file in the object store, once however many jobs use it."""
        if path not in self._inputs:
            data = _read_input(path)
            self._inputs[path] = (Path(path).name, self._ray.put(data))
            self._sizes[path] = len(data)
        return self._inputs[path]

    def submit(self, job: RemoteJob) -> Future:
        """Start ``job`` on the cluster; the Future resolves to its ``Attempt`` once the head holds the result."""
        out: Future = Future()
        out.set_running_or_notify_cancel()
        try:
            inputs = {role: self._input(path) for role, path in job.input_files().items()}
        except InputError as error:
            out.set_result(Attempt(False, error=str(error)))
            return out
        sent = sum(self._sizes[path] for path in job.input_files().values())
        ref = self._task.remote(job, inputs, self._inbox, self.options.progress_s, self.options.scratch_dir,
                                self.options.cpus_per_job)
        with self._lock:
            self._refs[job.key] = ref
            self._pending.add(out)
        ref.future().add_done_callback(lambda raw: self._collector.submit(self._collect, job, raw, out, sent))
        return out

    def _collect(self, job: RemoteJob, raw: Future, out: Future, sent_inputs: int) -> None:
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        record: dict[str, Any] = {"bytes_inputs": sent_inputs}
        try:
            try:
                result = raw.result()
            except TaskCancelledError:
                attempt = Attempt(False, error="cancelled")
            except RayTaskError as error:  # a bug in the task (its own failures are returned, not raised)
                attempt = Attempt(False, error=one_line(error.cause), detail=str(error))
            except RayError as error:  # the node or its worker process was lost more often than retried
                lost = (f"lost its node or worker process {self.options.node_retries + 1} time(s) "
                        f"({one_line(error)[:200]})")
                # a cancelled task's worker killed after the cancel's grace (``cancel``) ended it: cancelled
                attempt = Attempt(False, error="cancelled" if job.key in self._cancelled else lost)
            else:
                attempt = dataclasses.replace(result.attempt, node=result.node)
                record.update(node=result.node, attempt=result.attempt_no, first_iteration=result.first_iteration,
                              last_iteration=result.last_iteration, node_end_t=round(result.ended, 3))
                if attempt.ok:
                    write_finished(Path(job.head_dir), result.files)
                    record["bytes_result"] = sum(len(b) for b in result.files.values())
            record.update(event="finished" if attempt.ok else ("cancelled" if attempt.error == "cancelled" else "failed"),
                          error=attempt.error)
            try:
                moved = self._ray.get(self._inbox.note.remote(job, record))
            except Exception:  # noqa: BLE001 - the inbox is gone (shutting down): the figures are lost, not the job
                moved = {}
            attempt.metrics.update({f"bytes_{k}": float(v) for k, v in moved.items()})
            attempt.metrics.update({k: float(v) for k, v in record.items() if k.startswith("bytes_")})
            out.set_result(attempt)
        except BaseException as error:  # noqa: BLE001 - writing the result failed: the job fails with its reason
            out.set_result(Attempt(False, error=f"the head could not store the result: {one_line(error)}"))
        finally:
            with self._lock:
                self._refs.pop(job.key, None)
                self._cancelled.discard(job.key)
                self._pending.discard(out)

    def cancel(self, key: str) -> bool:
        """Cancel a job's task; False if none runs (see the module docstring).

        A task that optimises writes a checkpoint and sends it to the head, and is killed if it
        still runs ``RayOptions.cancel_grace_s`` later; a job still queued or preparing is
        force-cancelled at once (it has nothing to save). A second cancel of the same job sends
        nothing (a second KeyboardInterrupt would stop the trainer before its checkpoint).
        """
        with self._lock:
            ref = self._refs.get(key)
            if ref is None:
                return False
            if key in self._cancelled:
                return True
            self._cancelled.add(key)
        gentle = self._phase(key) == OPTIMISING
        try:
            self._ray.cancel(ref, force=not gentle)
        except Exception as error:  # noqa: BLE001 - already finished
            log.debug("cancel %s: %s", key, error)
            with self._lock:
                self._cancelled.discard(key)
            return False
        timer = threading.Timer(self.options.cancel_grace_s if gentle else KILL_RETRY_S, self._kill_if_running,
                                args=(key, ref))
        timer.daemon = True
        timer.start()
        return True

    def _phase(self, key: str) -> str:
        """The Inbox's word on where ``key`` is; OPTIMISING (the gentle cancel) when it does not answer in time."""
        try:
            return str(self._ray.get(self._inbox.phase.remote(key), timeout=PHASE_WAIT_S))
        except Exception as error:  # noqa: BLE001 - a busy or lost inbox: cancel gently, kill after the grace
            log.debug("phase of %s: %s", key, error)
            return OPTIMISING

    def _kill_if_running(self, key: str, ref: Any) -> None:
        """Kill a cancelled task's worker process if the task still runs (``kill_until_ended``)."""
        def running() -> bool:
            with self._lock:
                return self._refs.get(key) is ref

        if running():
            log.info("job %s is still running after its cancel: killing its worker process", key)
            kill_until_ended(self._ray, ref, running, self._closing)

    def close(self, wait_s: float = STOP_WAIT_S) -> None:
        """Cancel every task still running (each sends its last checkpoint) and leave the cluster."""
        with self._lock:
            keys, pending = list(self._refs), list(self._pending)
        for key in keys:
            self.cancel(key)
        deadline = time.monotonic() + wait_s
        for future in pending:
            try:
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a timeout: the job resumes from what reached the head
                pass
        self._closing.set()
        self._collector.shutdown(wait=True)
        try:
            self._ray.kill(self._inbox)
        except Exception as error:  # noqa: BLE001 - the cluster is gone already
            log.debug("inbox: %s", error)
        self._shutdown()

    def _shutdown(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
