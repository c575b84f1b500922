"""The app's workers: the web process never optimises; worker processes do (issue 17).

One worker process per GPU (none: ``AppConfig.cpu_workers`` CPU workers) takes ``create`` jobs,
one more takes the short ``express`` / ``animate`` jobs, so these are not held behind a 15-minute
optimisation, and one more takes ``drive`` jobs, so a long video never holds an expression render
behind it either (a drive job reads at most ``UploadLimits.video_s`` seconds of its video). Each worker is create-batch's (``pipeline.batch``): a
single-process spawn pool pinned to its GPU by ``CUDA_VISIBLE_DEVICES`` before torch starts;
a worker that dies is made again and only its job fails. A CPU worker lowers its priority
(``nice``), so the page stays responsive on a small machine. Worker processes are named
(``app.process``): a script that builds the app at module level builds nothing in them.

Inside a worker a job (``run_task``):
* locks its folder (``fcntl.flock``), so a job re-queued after a server restart waits until the
  old process has written its checkpoint and exited;
* writes its pid (``worker.pid``: cancel and shutdown send it SIGTERM; the trainer then writes
  a checkpoint and stops, ``pipeline.trainer``);
* stops by itself when the server process is gone (it is re-queued at the next start);
* renders ``preview.png`` from each new checkpoint (``AppConfig.preview_every`` iterations).

The ``Dispatcher`` thread of the web process hands queued jobs (``JobStore.claim``) to free
workers and records how each ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from arc2avatar.app.jobs import Job, JobStore
from arc2avatar.app.process import WorkerContext, in_worker_process
from arc2avatar.pipeline.batch import (Attempt, WorkerPlan, attempt_of, init_worker, Worker, one_line, visible_gpus,
                                       worker_gpus)
from arc2avatar._io import atomic_path
from arc2avatar.errors import Arc2AvatarError, InputError

log = logging.getLogger(__name__)

PID_NAME = "worker.pid"
CANCEL_NAME = "cancel"  # a job whose folder holds this file stops (or never starts)
LOCK_NAME = ".lock"
PREVIEW_NAME = "preview.png"
VIEW_NAME = "view.ply"  # avatar.ply turned and framed for Gradio's Model3D (write_model3d_view)
#: Model3D's splat viewer (gsplat.js) looks at the origin from 5 units away, with +y down on the
#: screen and the camera on the −z side: arc2avatar's frame (z up, face toward +y) maps to it by
#: (x, y, z) → (−x, −z, −y), a half turn about (0, 1, −1)/√2, and the head is scaled to this height.
MODEL3D_MATRIX = ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, -1.0, 0.0))
MODEL3D_QUAT = (0.0, 0.0, 0.7071067811865476, -0.7071067811865476)  # (w, x, y, z) of MODEL3D_MATRIX
MODEL3D_HEIGHT = 1.6
EXPRESS_IMAGE = "express.png"
OUT_NAME = "out"
INPUTS_NAME = "inputs"
CREATE_KINDS = ("create",)
RENDER_KINDS = ("express", "animate")  # short jobs: their own worker
DRIVE_KINDS = ("drive",)  # a driving video may take minutes: a worker of its own
POLL_S = 0.25  # dispatcher and watcher loop period, seconds
CPU_NICENESS = 10  # added to a CPU worker's nice value
STOP_WAIT_S = 60.0  # how long shutdown waits for workers to checkpoint


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one job (picklable).

    Attributes:
        job_id, kind: the job.
        job_dir: ``WORK/jobs/<id>``.
        params: the job's parameters (``Service`` writes them; see ``run_task``).
        overrides: server-wide "key=value" settings (``AppConfig.overrides``).
        weights: weights folder or None.
        preview_every, preview_size: see ``AppConfig``.
        parent_pid: the web process; the job stops when it is gone.
        video_s: a drive job reads at most this many seconds of its video (``UploadLimits.video_s``).
    """

    job_id: str
    kind: str
    job_dir: str
    params: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    weights: str | None = None
    preview_every: int = 50
    preview_size: int = 256
    parent_pid: int = 0
    video_s: float = 60.0


# =========================================================================== inside a worker
@contextlib.contextmanager
def _folder_lock(job_dir: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one server per work folder is assumed there)
        yield
        return
    with open(job_dir / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    """SIGTERM to this process once the server is gone (the trainer checkpoints and stops)."""
    while not stop.wait(1.0):
        if parent_pid and os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _preview_loop(out_dir: Path, target: Path, size: int, stop: threading.Event) -> None:
    """Render ``target`` from each new ``checkpoint.pt`` until ``stop``."""
    from arc2avatar.pipeline.trainer import CHECKPOINT_NAME  # lazy: torch, worker processes only

    checkpoint, seen = out_dir / CHECKPOINT_NAME, 0.0
    while not stop.wait(POLL_S):
        try:
            stamp = checkpoint.stat().st_mtime
        except FileNotFoundError:
            continue
        if stamp != seen:
            seen = stamp
            try:
                write_preview(checkpoint, target, size)
            except Exception as error:  # noqa: BLE001 - a preview is never worth failing the job
                log.debug("preview from %s failed: %s", checkpoint, error)


def write_preview(checkpoint: Path, target: Path, size: int) -> Path:
    """A frontal render of the splats in ``checkpoint`` as a PNG (atomically)."""
    import torch

    from arc2avatar.avatar.render import preview_png  # lazy: torch, worker processes only

    png = preview_png(torch.load(checkpoint, map_location="cpu", weights_only=True), size)
    with atomic_path(target) as tmp:
        tmp.write_bytes(png)
    return target


def write_model3d_view(avatar_dir: Path, target: Path, height: float = MODEL3D_HEIGHT) -> Path:
    """``target``: the avatar's splats turned into Model3D's frame, centred at the origin and
    scaled to ``height`` (``MODEL3D_*``), as a 3DGS PLY (atomically). ``avatar.ply`` stays as it is."""
    import math

    import torch

    from arc2avatar.avatar.model import Avatar  # lazy: torch, worker processes only
    from arc2avatar.splats.rotations import quat_multiply  # lazy: torch, worker processes only
    from arc2avatar.splats.model import GaussianSplats  # lazy: torch, worker processes only
    from arc2avatar.splats.ply import write_ply  # lazy: torch, worker processes only

    tensors = Avatar.load(avatar_dir).splats.to_tensors()
    means = tensors["means"].double()
    low, high = means.min(dim=0).values, means.max(dim=0).values
    scale = height / max(float(high[2] - low[2]), 1e-9)
    turn = torch.tensor(MODEL3D_MATRIX, dtype=torch.float64)
    tensors["means"] = (((means - (low + high) / 2) @ turn.T) * scale).to(tensors["means"].dtype)
    quats = torch.tensor(MODEL3D_QUAT, dtype=tensors["quats"].dtype).expand_as(tensors["quats"])
    tensors["quats"] = quat_multiply(quats, tensors["quats"])
    tensors["log_scales"] = tensors["log_scales"] + math.log(scale)
    return write_ply(target, GaussianSplats.from_tensors(tensors), frame="Model3D view: y down, face toward -z, centred")


def _init_app_worker(gpu: str | None, threads: int) -> None:
    """create-batch's worker set-up; a CPU worker also lowers its priority (the page stays responsive)."""
    init_worker(gpu, threads)
    if gpu is None and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(CPU_NICENESS)


class AppWorker(Worker):
    """create-batch's worker process (``pipeline.batch.Worker``) with ``_init_app_worker``, named
    as the app's worker (``app.process.WorkerContext``)."""

    def _new_pool(self):  # noqa: ANN202 - a ProcessPoolExecutor, as in the base class
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=1, mp_context=WorkerContext(),
                                   initializer=_init_app_worker, initargs=(self.gpu, self.threads))


def run_task(task: Task) -> Attempt:
    """Run one job in this worker process; failures are returned (``Attempt``), an interruption
    (cancel, shutdown) is raised as the trainer's ``TrainingInterrupted``."""
    job_dir = Path(task.job_dir)
    stop = threading.Event()
    with _folder_lock(job_dir):
        (job_dir / PID_NAME).write_text(str(os.getpid()))
        if (job_dir / CANCEL_NAME).exists():  # cancelled between the claim and this start
            (job_dir / PID_NAME).unlink()
            return Attempt(False, error="cancelled")
        watchers = [threading.Thread(target=_watch_parent, args=(task.parent_pid, stop), daemon=True)]
        if task.kind == "create":
            watchers.append(threading.Thread(target=_preview_loop, daemon=True, args=(
                job_dir / OUT_NAME, job_dir / PREVIEW_NAME, task.preview_size, stop)))
        for thread in watchers:
            thread.start()
        try:
            output = _RUNNERS[task.kind](task, job_dir)
        except Exception as error:  # noqa: BLE001 - reported to the user as one line
            import traceback

            detail = None if isinstance(error, Arc2AvatarError) else traceback.format_exc()
            return Attempt(False, error=one_line(error), detail=detail)
        finally:
            stop.set()
            with contextlib.suppress(FileNotFoundError):
                (job_dir / PID_NAME).unlink()
    return Attempt(True, output=str(output))


def _run_create(task: Task, job_dir: Path) -> Path:
    from arc2avatar.pipeline.api import create, demo, run_state  # lazy: torch, worker processes only

    p = task.params
    out_dir = job_dir / OUT_NAME
    resume = run_state(out_dir) == "unfinished"
    overrides = [*task.overrides, f"seed={int(p.get('seed', 0))}", f"checkpoint_every={task.preview_every}"]
    common: dict[str, Any] = dict(preset=p["preset"], overrides=overrides, resume=resume, progress=False)
    photos = [job_dir / INPUTS_NAME / name for name in p.get("photos", [])]
    if p["mode"] == "demo":
        demo(out_dir, **common)
    elif p["mode"] == "demo-photo":
        demo(out_dir, photo=photos[0], **common)
    else:
        lora = job_dir / INPUTS_NAME / p["lora"] if p.get("lora") else None
        create(photos, out_dir, lora=lora, weights=task.weights, **common)
    write_model3d_view(out_dir, job_dir / VIEW_NAME)
    return out_dir


def _run_express(task: Task, job_dir: Path) -> Path:
    import numpy as np
    from PIL import Image

    from arc2avatar.animate.express import express  # lazy: torch, worker processes only

    p = task.params
    out_dir = job_dir / OUT_NAME
    avatar = express(p["avatar_dir"], out_dir, {k: float(v) for k, v in p["expression"].items()}, size=p["size"])
    image = avatar.render([0.0], size=p["size"])[0]
    Image.fromarray((image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(job_dir / EXPRESS_IMAGE)
    return out_dir


def _run_animate(task: Task, job_dir: Path) -> Path:
    from arc2avatar.animate.render import AnimationConfig, animate  # lazy: torch, worker processes only

    p = task.params
    target = job_dir / "animate.mp4"
    animate(p["avatar_dir"], target, preset=p["preset"], orbit=bool(p.get("orbit")), config=AnimationConfig(size=p["size"]))
    return target


def _run_drive(task: Task, job_dir: Path) -> Path:
    import importlib

    drive = importlib.import_module("arc2avatar.drive").drive
    target = job_dir / "drive.mp4"
    drive(task.params["avatar_dir"], job_dir / INPUTS_NAME / task.params["video"], target, end=task.video_s,
          progress=False)
    return target


_RUNNERS = {"create": _run_create, "express": _run_express, "animate": _run_animate, "drive": _run_drive}


# =========================================================================== the web process
@dataclass
class _Slot:
    name: str
    kinds: tuple[str, ...]
    worker: AppWorker
    job: Job | None = None
    future: Future | None = None


class Dispatcher:
    """Hands queued jobs to free workers (a daemon thread) and records their end.

    Args:
        store: the queue.
        task_of: builds a job's ``Task``.
        gpus: GPUs for ``create`` jobs (None: all visible); cpu_workers: without GPUs.
        on_done: called (in the dispatcher thread) with each job that finished well.
        backend: runs the ``create`` jobs elsewhere (``app.remote.RayJobs``: ``slots``, ``submit(task)``
            → Future, ``cancel(job_id)``, ``close(wait_s)``); None = this machine's worker processes.
    """

    def __init__(self, store: JobStore, task_of: Any, gpus: int | None, cpu_workers: int, on_done: Any = None,
                 backend: Any = None) -> None:
        self.store, self.task_of, self.on_done, self.backend = store, task_of, on_done, backend
        available = visible_gpus() if gpus != 0 else []
        if gpus and gpus > len(available):
            raise InputError(f"serve: --gpus {gpus} asked for, but {len(available)} GPU(s) are visible"
                             + ("" if available else "; without GPUs leave --gpus out (--cpu-workers N sets the workers)"))
        slots = worker_gpus(WorkerPlan(gpus=gpus, workers=None if available and gpus != 0 else cpu_workers), available)
        threads = max(1, (os.cpu_count() or 1) // max(len(slots), 1))
        self.slots = [_Slot(f"gpu {g}" if g is not None else f"cpu {k}", CREATE_KINDS, AppWorker(g, threads))
                      for k, g in enumerate(slots)]
        if backend is not None:  # create jobs on the cluster: its slots replace this machine's workers
            for slot in self.slots:
                slot.worker.close()
            self.slots = [_Slot(f"cluster {k}", CREATE_KINDS, None) for k in range(backend.slots)]  # type: ignore[arg-type]
        self.slots.append(_Slot("render", RENDER_KINDS, AppWorker(slots[0] if slots else None, threads)))
        self.slots.append(_Slot("drive", DRIVE_KINDS, AppWorker(slots[0] if slots else None, threads)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="arc2avatar-dispatcher", daemon=True)

    def start(self) -> "Dispatcher":
        if in_worker_process():
            raise RuntimeError("an app worker process never starts a dispatcher (see arc2avatar.app.process)")
        for job_id in self.store.requeue_unfinished():
            log.info("job %s: continues (left unfinished by the previous server)", job_id)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            for slot in self.slots:
                try:
                    self._tend(slot)
                except Exception:  # noqa: BLE001 - the dispatcher must outlive any one job
                    log.exception("dispatcher: slot %s", slot.name)
            self._stop.wait(POLL_S)

    def _tend(self, slot: _Slot) -> None:
        if slot.future is not None and slot.future.done():
            self._record(slot)
        if slot.future is None and not self._stop.is_set():
            job = self.store.claim(slot.kinds, slot.name)
            if job is not None:
                log.info("job %s (%s): started on worker %s", job.id, job.kind, slot.name)
                slot.job, slot.future = job, (self.backend.submit(self.task_of(job)) if slot.worker is None
                                              else slot.worker.pool.submit(run_task, self.task_of(job)))

    def _record(self, slot: _Slot) -> None:
        job, future = slot.job, slot.future
        slot.job = slot.future = None
        assert job is not None and future is not None
        try:
            attempt = attempt_of(future, slot.worker)
        except BaseException as error:  # noqa: BLE001 - TrainingInterrupted: cancelled or stopping
            attempt = Attempt(False, error=f"interrupted ({one_line(error)})")
        if self._stop.is_set():
            self.store.requeue(job.id)  # the server is stopping: continue at the next start
            return
        if attempt.ok:
            if self.on_done is not None:
                try:
                    self.on_done(job)
                except Exception as error:  # noqa: BLE001
                    attempt = Attempt(False, error=one_line(error))
        public = None if attempt.error is None else public_message(attempt.error, self.store.job_dir(job.id))
        self.store.finish(job.id, "done" if attempt.ok else "failed", public)
        if attempt.detail:
            log.warning("job %s failed:\n%s", job.id, attempt.detail)
        after = self.store.get(job.id)
        if after is not None and after.state == "cancelled":
            log.info("job %s: cancelled", job.id)
        else:
            log.info("job %s: %s%s", job.id, "done" if attempt.ok else "failed", "" if attempt.ok else f": {attempt.error}")

    def cancel(self, job_id: str) -> bool:
        """Stop a running job: a marker for a job not started yet, SIGTERM to its worker otherwise (it
        checkpoints and stops); False if it is not running here."""
        for slot in self.slots:
            if slot.job is not None and slot.job.id == job_id:
                if slot.worker is None:
                    return self.backend.cancel(job_id)
                (self.store.job_dir(job_id) / CANCEL_NAME).touch()
                return _signal_job(self.store.job_dir(job_id))
        return False

    def close(self, wait_s: float = STOP_WAIT_S) -> None:
        """Stop handing out jobs; running jobs checkpoint and go back to the queue."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        for slot in self.slots:
            if slot.job is not None and slot.worker is not None:
                _signal_job(self.store.job_dir(slot.job.id))
        if self.backend is not None:  # cancels the cluster's tasks; each sends its checkpoint first
            self.backend.close(wait_s)
        deadline = time.monotonic() + wait_s
        for slot in self.slots:
            if slot.future is not None:
                with contextlib.suppress(Exception):
                    slot.future.exception(timeout=max(0.1, deadline - time.monotonic()))
                self._record(slot)
            if slot.worker is not None:
                slot.worker.pool.shutdown(wait=False, cancel_futures=True)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def public_message(text: str, job_dir: Path) -> str:
    """A worker's error as a web client may see it: paths inside the job's folder relative to it,
    any other absolute path reduced to its file name (the server's folders are not shown)."""
    for root in {str(job_dir), str(Path(job_dir).resolve())}:
        text = text.replace(root + os.sep, "").replace(root, "the job folder")
    return _ABSOLUTE_PATH.sub(r"\1", text)


def _signal_job(job_dir: Path) -> bool:
    try:
        pid = int((job_dir / PID_NAME).read_text().strip())
        os.kill(pid, signal.SIGTERM)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return False
