"""Many avatars at once (issue 8.2): ``arc2avatar create-batch PHOTOS_DIR -o OUT_DIR [--gpus N]``.

>>> from arc2avatar.pipeline.batch import create_batch
>>> result = create_batch("photos/", "avatars/", gpus=4, preset="paper")
>>> print(result.table())

Jobs: every image file directly in ``PHOTOS_DIR`` is one avatar named after its stem
(``alice.jpg`` → ``OUT_DIR/alice/``); every sub-folder holding images is one identity with
several photos (``bob/*.jpg`` → ``OUT_DIR/bob/``, all photos passed to ``create``).

Engine: a ``JobBackend`` (issue 29). The default, ``LocalPool``, is described here; with
``--ray`` the jobs run as Ray tasks on a cluster instead (``arc2avatar.cluster.batch``,
docs/cluster.md). ``LocalPool``: ``concurrent.futures.ProcessPoolExecutor`` with the spawn start method, one single-process
pool per worker, each worker pinned to its GPU by ``CUDA_VISIBLE_DEVICES`` (set in the worker's
initializer, before torch touches CUDA). One pool per worker rather than one shared pool: a worker
that dies (out of memory, a crash in a CUDA kernel) breaks only its own pool, so only its own job
fails; the pool is made again and the other jobs carry on.

Per job: a finished avatar is skipped (``api.run_state``, the check ``create`` itself uses), an
unfinished one resumed from its checkpoint, a failure retried ``retries`` times; a failure never
stops the others. ``OUT_DIR/batch_summary.json`` (rewritten atomically after every job) and
``BatchResult.table()`` report job, status (done / skipped / failed), attempts, seconds, output or
the error's one line.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

from arc2avatar._io import atomic_write_text
from arc2avatar.errors import Arc2AvatarError, InputError
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.weights.resolver import WeightsConfig, resolve_weights

log = logging.getLogger(__name__)

#: Photo file types a batch picks up (what Pillow decodes; arc2avatar.identity.image reads them).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SUMMARY_NAME = "batch_summary.json"
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
JobStatus = Literal["done", "skipped", "failed"]


# --------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class BatchJob:
    """One avatar to make: its name, its photo(s) (one identity) and its output folder."""

    name: str
    photos: tuple[Path, ...]
    out_dir: Path


def _is_photo(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def discover_jobs(photos_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[BatchJob]:
    """The jobs of ``photos_dir``, sorted by name: one per image file, one per sub-folder of images.

    Hidden entries, files of other types and sub-folders without images are ignored (logged);
    ``out_dir`` is never taken for an identity folder, even inside ``photos_dir``.

    Raises:
        InputError: ``photos_dir`` missing or not a folder, no photos at all, or two jobs with the
            same name (``a.jpg`` and ``a.png``, or ``a.jpg`` and a folder ``a/``).
    """
    photos_dir, out_dir = Path(photos_dir), Path(out_dir)
    if not photos_dir.is_dir():
        raise InputError(f"photos folder {photos_dir} does not exist or is not a folder")
    found: dict[str, list[tuple[Path, tuple[Path, ...]]]] = collections.defaultdict(list)
    for entry in sorted(photos_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if out_dir.exists() and entry.resolve() == out_dir.resolve():
                continue
            photos = tuple(p for p in sorted(entry.iterdir()) if _is_photo(p))
            if photos:
                found[entry.name].append((entry, photos))
            else:
                log.info("ignoring %s: no photos (%s) in it", entry, ", ".join(IMAGE_SUFFIXES))
        elif _is_photo(entry):
            found[entry.stem].append((entry, (entry,)))
        else:
            log.info("ignoring %s: not a photo (%s)", entry, ", ".join(IMAGE_SUFFIXES))
    if not found:
        raise InputError(f"{photos_dir} holds no photos ({', '.join(IMAGE_SUFFIXES)}) and no folders of photos")
    clashes = {name: [str(source) for source, _ in items] for name, items in found.items() if len(items) > 1}
    if clashes:
        listed = "; ".join(f"{name}: {', '.join(sources)}" for name, sources in sorted(clashes.items()))
        raise InputError(f"several photos or folders would make the same avatar folder ({listed}); rename one of each")
    return [BatchJob(name, items[0][1], out_dir / name) for name, items in sorted(found.items())]


@dataclass(frozen=True)
class BatchOptions:
    """How every job of a batch runs (the arguments ``create`` / ``demo`` take).

    Attributes:
        preset: settings preset; None = "paper" with the real prior, "cpu-smoke" with the oracle.
        config_path: a YAML config applied over the preset.
        overrides: "key=value" settings applied last.
        flame, flame_masks, lora, weights: as for ``create`` (ignored by the oracle).
        oracle: run the offline oracle prior (``demo``, the job's first photo on the target's
            face) instead of Arc2Face: for tests and offline demos, no weights needed.
    """

    preset: str | None = None
    config_path: str | None = None
    overrides: tuple[str, ...] = ()
    flame: str | None = None
    flame_masks: str | None = None
    lora: str | None = None
    weights: str | None = None
    oracle: bool = False

    @property
    def resolved_preset(self) -> str:
        return self.preset or ("cpu-smoke" if self.oracle else "paper")


@dataclass(frozen=True)
class WorkerPlan:
    """Where the batch runs.

    Attributes:
        gpus: GPUs to use; None = every visible GPU (0 on a machine without CUDA).
        workers: worker processes; None = one per GPU (1 without GPUs). More workers than GPUs
            share them round-robin.
        retries: extra attempts of a failed job (the issue: once).
        threads_per_worker: CPU threads of each worker; None = CPU cores // workers (≥ 1).
    """

    gpus: int | None = None
    workers: int | None = None
    retries: int = 1
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        for name in ("gpus", "workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "gpus" else 1):
                raise InputError(f"create-batch: {name} must be ≥ {0 if name == 'gpus' else 1}, got {value}")
        if self.retries < 0:
            raise InputError(f"create-batch: retries must be ≥ 0, got {self.retries}")


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand to workers: its ``CUDA_VISIBLE_DEVICES`` entries, else 0..count−1."""
    import torch

    count = torch.cuda.device_count()
    listed = [g.strip() for g in os.environ.get(CUDA_VISIBLE_DEVICES, "").split(",") if g.strip()]
    return listed[:count] if listed else [str(k) for k in range(count)]


def worker_gpus(plan: WorkerPlan, available: Sequence[str]) -> list[str | None]:
    """The GPU id of each worker (None = a CPU worker)."""
    gpus = len(available) if plan.gpus is None else plan.gpus
    if gpus > len(available):
        raise InputError(f"--gpus {gpus} asked for, but {len(available)} GPU(s) are visible"
                         + ("" if available else " (on a CPU machine use --workers N)"))
    workers = plan.workers or max(gpus, 1)
    return [available[k % gpus] if gpus else None for k in range(workers)]


# --------------------------------------------------------------------------- inside a worker
def init_worker(gpu: str | None, threads: int) -> None:
    """Pin this worker to its GPU (an empty list for a CPU worker) before torch initialises CUDA;
    its warnings go to stderr marked with the worker's GPU."""
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("CUDA was initialised before the worker could pin its GPU")
    os.environ[CUDA_VISIBLE_DEVICES] = gpu if gpu is not None else ""
    label = f"gpu {gpu}" if gpu is not None else "cpu"
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s [worker {label}] %(name)s: %(message)s")
    import torch

    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt at a job, as the worker returns it."""

    ok: bool
    output: str | None = None
    error: str | None = None
    detail: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    node: str | None = None


def one_line(error: BaseException) -> str:
    """An error as one line: its message's first line, with the type for anything not ours."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, Arc2AvatarError) and text else f"{type(error).__name__}: {text}"


def run_figures(metrics: dict[str, Any]) -> dict[str, float]:
    """A few scalar figures of a finished run for the summary (``job_s``, added by the worker: the
    seconds of the ``create`` / ``demo`` call itself, so a job's ``seconds`` minus it is what handing
    it over and bringing the result back cost)."""
    out = {k: float(metrics[k]) for k in ("num_splats", "optimisation_s", "seconds_per_iteration", "wall_s") if k in metrics}
    heldout = metrics.get("heldout") or {}
    out.update({f"heldout_{k}": float(heldout[k]) for k in ("psnr", "ssim") if k in heldout})
    return out


def run_job(job: BatchJob, options: BatchOptions) -> Attempt:
    """Make one avatar (resuming its unfinished run); any failure is returned, not raised."""
    from arc2avatar.pipeline.api import create, demo, run_state  # torch loads in the worker, after its CUDA_VISIBLE_DEVICES

    started = time.perf_counter()
    try:
        resume = run_state(job.out_dir) == "unfinished"
        common = dict(preset=options.resolved_preset, config_path=options.config_path,
                      overrides=list(options.overrides), resume=resume, progress=False)
        if options.oracle:
            result = demo(job.out_dir, photo=job.photos[0], **common)
        else:
            result = create(list(job.photos), job.out_dir, flame=options.flame, flame_masks=options.flame_masks,
                            lora=options.lora, weights=options.weights, **common)
    except Exception as error:  # reported in the summary; the batch goes on
        detail = None if isinstance(error, Arc2AvatarError) else traceback.format_exc()
        return Attempt(False, error=one_line(error), detail=detail)
    return Attempt(True, output=str(result.out_dir), metrics={**run_figures(result.metrics), "job_s": time.perf_counter() - started})


# --------------------------------------------------------------------------- the parent
@dataclass
class JobReport:
    """One row of the summary.

    Attributes:
        name, photos: the job.
        status: "done", "skipped" (a finished avatar was there) or "failed".
        attempts: attempts made in this call (0 when skipped).
        seconds: wall-clock seconds of all attempts, from hand-over to the worker to its answer.
        output: the avatar folder; error: the last error's one line (failed jobs);
        detail: its traceback (failures that are not input errors).
        gpu: the GPU id of the last attempt's worker (None: CPU); on a cluster, the node that ran it.
        metrics: figures of the finished run (splats, seconds per iteration, oracle PSNR/SSIM).
    """

    name: str
    photos: list[str]
    status: JobStatus | Literal["pending"] = "pending"
    attempts: int = 0
    seconds: float = 0.0
    output: str | None = None
    error: str | None = None
    detail: str | None = None
    gpu: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class BatchResult:
    """Every job's report, in name order, and where the summary JSON is."""

    out_dir: Path
    jobs: list[JobReport]
    summary_path: Path
    wall_s: float = 0.0

    @property
    def failed(self) -> list[JobReport]:
        return [j for j in self.jobs if j.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(j.status for j in self.jobs))

    def table(self) -> str:
        """The summary as a plain-text table: job, status, attempts, seconds, output or error."""
        header = ("job", "status", "attempts", "seconds", "output / error")
        rows = [(j.name, j.status, str(j.attempts), f"{j.seconds:.1f}", (j.error if j.status == "failed" else j.output) or "")
                for j in self.jobs]
        widths = [max(len(r[k]) for r in [header, *rows]) for k in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4] for r in [header, *rows]]
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items()))
        return "\n".join([lines[0], "  ".join("-" * w for w in widths) + "  " + "-" * len(header[4]), *lines[1:],
                          f"{len(self.jobs)} job(s): {counts} in {self.wall_s:.1f} s"])


def write_summary(result: BatchResult, photos_dir: Path, options: BatchOptions, engine: dict[str, Any]) -> Path:
    """``OUT_DIR/batch_summary.json``, atomically; ``engine``: the backend's ``describe()``."""
    data = {"photos_dir": str(photos_dir), "out_dir": str(result.out_dir), "wall_s": round(result.wall_s, 2),
            **engine, "options": dataclasses.asdict(options),
            "counts": result.counts(), "jobs": [dataclasses.asdict(j) for j in result.jobs]}
    atomic_write_text(result.summary_path, json.dumps(data, indent=2) + "\n")
    return result.summary_path


class Worker:
    """One worker process (a single-process spawn pool), pinned to one GPU or the CPU."""

    def __init__(self, gpu: str | None, threads: int) -> None:
        self.gpu = gpu
        self.threads = threads
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(self.gpu, self.threads))

    def restart(self) -> None:
        """A fresh process after this one died."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def check_batch_inputs(options: BatchOptions, weights: bool = True) -> None:
    """Everything the jobs share is checked once, before any worker starts: config, LoRA, FLAME, weights
    (``weights=False``: not here; a cluster's nodes check their own)."""
    from arc2avatar.pipeline.api import flame_overrides, check_lora  # the parent stays torch-free (see module doc)

    flame = [] if options.oracle else flame_overrides(options.flame, options.flame_masks)
    resolve_config(options.resolved_preset, options.config_path, [*flame, *options.overrides])
    if options.oracle:
        return

    lora = check_lora(options.lora)
    if weights:
        resolve_weights(WeightsConfig(root=options.weights, lora=lora), need={"prior", "identity", "detector"})


class JobBackend(Protocol):
    """Where a batch's jobs run (issue 29): the local worker pool (``LocalPool``, the default) or a
    cluster (``arc2avatar.cluster``). ``submit`` hands one job over and returns a Future;
    ``outcome`` reads its ``Attempt``; ``where`` names the GPU it went to, when known at hand-over;
    ``describe`` says what the engine is (for the summary); ``close`` stops what still runs (each
    job keeps a checkpoint).

    Attributes:
        capacity: jobs handed over at once (a cluster queues more itself).
        retry_failures: whether ``--retries`` applies to a job's own failures (a cluster retries
            lost nodes itself and never a job that failed for a reason of its own).
    """

    capacity: int
    retry_failures: bool

    def describe(self) -> dict[str, Any]: ...

    def submit(self, job: BatchJob, options: BatchOptions) -> Future: ...

    def outcome(self, future: Future) -> Attempt: ...

    def where(self, future: Future) -> str | None: ...

    def close(self) -> None: ...


class LocalPool:
    """The local engine: one ``Worker`` process per GPU (or CPU worker) of this machine."""

    retry_failures = True

    def __init__(self, slots: Sequence[str | None], threads: int, jobs: int | None = None) -> None:
        self.slots = list(slots)
        self.workers = [Worker(gpu, threads) for gpu in self.slots[:jobs]]  # no more processes than jobs
        self.capacity = len(self.workers)
        self._busy: dict[Future, Worker] = {}

    def describe(self) -> dict[str, Any]:
        return {"backend": "local", "workers": len(self.slots), "gpus": [g for g in self.slots if g is not None]}

    def submit(self, job: BatchJob, options: BatchOptions) -> Future:
        worker = next(w for w in self.workers if w not in self._busy.values())
        future = worker.pool.submit(run_job, job, options)
        self._busy[future] = worker
        return future

    def where(self, future: Future) -> str | None:
        worker = self._busy.get(future)
        return None if worker is None else worker.gpu

    def outcome(self, future: Future) -> Attempt:
        return attempt_of(future, self._busy.pop(future))

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def create_batch(
    photos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    gpus: int | None = None,
    workers: int | None = None,
    retries: int = 1,
    threads_per_worker: int | None = None,
    preset: str | None = None,
    config_path: str | None = None,
    overrides: Sequence[str] = (),
    flame: str | None = None,
    flame_masks: str | None = None,
    lora: str | None = None,
    weights: str | None = None,
    oracle: bool = False,
    backend: Callable[[Path], JobBackend] | None = None,
) -> BatchResult:
    """One avatar per photo (or identity folder) of ``photos_dir`` into ``out_dir/<name>/``, over N workers.

    Args:
        photos_dir: image files (one avatar each, named after the stem) and/or sub-folders of
            images (one identity each, named after the folder).
        out_dir: receives one folder per job and ``batch_summary.json``.
        gpus, workers, retries, threads_per_worker: see ``WorkerPlan`` (the local pool).
        preset, config_path, overrides, flame, flame_masks, lora, weights, oracle: see ``BatchOptions``.
        backend: makes the ``JobBackend`` from the output folder, after the inputs are checked
            (None: the local pool; ``arc2avatar.cluster.batch.ray_batch_backend``: a Ray cluster).
    Returns:
        ``BatchResult``; a failed job does not raise (``result.ok`` is False).
    Raises:
        InputError: no photos, clashing names, a bad setting or more GPUs than visible (before any
            work). MissingWeightsError: the real prior's weights are missing (before any work).
    """
    options = BatchOptions(preset, None if config_path is None else str(config_path), tuple(overrides),
                           *(None if p is None else str(p) for p in (flame, flame_masks, lora, weights)), oracle=oracle)
    plan = WorkerPlan(gpus, workers, retries, threads_per_worker)
    photos_dir, out_dir = Path(photos_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder")
    jobs = discover_jobs(photos_dir, out_dir)
    if backend is None:
        check_batch_inputs(options)
        slots = worker_gpus(plan, visible_gpus() if plan.gpus != 0 else [])
        engine = None
    else:  # the weights are checked on each node, where they are read
        check_batch_inputs(options, weights=False)
        slots, engine = [], backend(out_dir)  # connects (or fails) before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    return _run_batch(jobs, options, plan, slots, photos_dir, out_dir, engine)


def _run_batch(jobs: list[BatchJob], options: BatchOptions, plan: WorkerPlan, slots: list[str | None],
               photos_dir: Path, out_dir: Path, engine: JobBackend | None = None) -> BatchResult:
    from arc2avatar.pipeline.api import run_state  # the parent stays torch-free (see module doc)

    started = time.perf_counter()
    reports = {j.name: JobReport(j.name, [str(p) for p in j.photos]) for j in jobs}
    result = BatchResult(out_dir, list(reports.values()), out_dir / SUMMARY_NAME)
    pending: collections.deque[BatchJob] = collections.deque()
    for job in jobs:
        if run_state(job.out_dir) == "finished":
            reports[job.name].status, reports[job.name].output = "skipped", str(job.out_dir)
            log.info("%s: skipped, %s already holds a finished avatar", job.name, job.out_dir)
        else:
            pending.append(job)
    if engine is None:
        threads = plan.threads_per_worker or max(1, (os.cpu_count() or 1) // len(slots))
        engine = LocalPool(slots, threads, jobs=len(pending))
    backend: JobBackend = engine
    described = backend.describe()
    running: dict[Future, tuple[BatchJob, float]] = {}
    retries = plan.retries if backend.retry_failures else 0
    log.info("create-batch: %d job(s) to run, %d skipped, on %s", len(pending), len(jobs) - len(pending),
             ", ".join(f"{k} {v}" for k, v in described.items()))
    try:
        while pending or running:
            while pending and len(running) < backend.capacity:
                job = pending.popleft()
                reports[job.name].attempts += 1
                future = backend.submit(job, options)
                reports[job.name].gpu = backend.where(future)
                running[future] = (job, time.perf_counter())
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job, handed_over = running.pop(future)
                reports[job.name].seconds = round(reports[job.name].seconds + time.perf_counter() - handed_over, 3)
                attempt = backend.outcome(future)
                if attempt.node is not None:
                    reports[job.name].gpu = attempt.node
                if _record(reports[job.name], attempt, retries):
                    pending.append(job)
                result.wall_s = time.perf_counter() - started
                write_summary(result, photos_dir, options, described)
    finally:  # also on Ctrl-C: the workers stop on their own SIGINT (a checkpoint to resume), a cluster's
        backend.close()  # tasks are cancelled (each sends its checkpoint to the head); the summary says where
        result.wall_s = time.perf_counter() - started
        write_summary(result, photos_dir, options, described)
    return result


def attempt_of(future: Future, worker: Worker) -> Attempt:
    """The worker's ``Attempt``, or a failed one when the worker process itself died."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        worker.restart()
        return Attempt(False, error=f"the worker process died ({error}); see its output above")


def _record(report: JobReport, attempt: Attempt, retries: int) -> bool:
    """Fold one attempt into the job's report; True when the job should be tried again."""
    if attempt.ok:
        report.status, report.output, report.error, report.detail = "done", attempt.output, None, None
        report.metrics = attempt.metrics
        log.info("%s: done after %.1f s (attempt %d) -> %s", report.name, report.seconds, report.attempts, attempt.output)
        return False
    report.error, report.detail = attempt.error, attempt.detail
    again = report.attempts <= retries
    report.status = "pending" if again else "failed"
    log.warning("%s: attempt %d failed: %s%s", report.name, report.attempts, attempt.error,
                "; trying again" if again else "")
    return again
