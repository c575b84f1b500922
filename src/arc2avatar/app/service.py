"""What the page and the API do, without Gradio: submit, status, cancel, results, gallery.

``Service`` owns the queue (``jobs.JobStore``) and the workers (``workers.Dispatcher``); the UI
(``ui.py``) only turns its answers into components. Owners: with ``AppConfig.private_jobs`` a
job belongs to the logged-in user and another user's id reads as unknown (ids are unguessable
anyway); without it every visitor sees every job of the work folder.

Progress is read from the run's own ``log.jsonl`` (iteration, splat count, optimisation seconds;
``pipeline.trainer``) and ``config.yaml`` (the iteration total): the ETA is the seconds per
iteration so far times the iterations left. Before the first iteration it is the preparation's
record (``prepare.json``, ``pipeline.preparing``): the step, its iterations and ETA, or that the
mean-face cache made it instant.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from arc2avatar.app.config import AppConfig
from arc2avatar.app.jobs import Job, JobStore, new_job_id
from arc2avatar.app.process import in_worker_process
from arc2avatar.app.uploads import save_lora, save_photos, save_video
from arc2avatar.app.workers import (EXPRESS_IMAGE, INPUTS_NAME, OUT_NAME, PREVIEW_NAME, VIEW_NAME, Dispatcher,
                                    Task)
from arc2avatar._io import atomic_path
from arc2avatar.pipeline.preparing import describe_prepare, read_prepare
from arc2avatar.errors import InputError
from arc2avatar.app.remote import RayJobs
from arc2avatar.pipeline.presets import resolve_config
from arc2avatar.weights.resolver import WeightsConfig, check_weights, missing_weights_message

log = logging.getLogger(__name__)

MODES: dict[str, str] = {
    "arc2face": "Arc2Face (the paper's prior; needs the weights)",
    "demo-photo": "Offline demo with your photo (oracle prior: your face on a known head)",
    "demo": "Offline demo (oracle prior: a known head, the photo is not used)",
}
PRESETS: tuple[str, ...] = ("paper", "release", "fast", "cpu-smoke")
ZIP_NAME = "avatar.zip"
LOG_TAIL_BYTES = 8192
WAIT_POLL_S = 0.25
NEED_WEIGHTS = frozenset({"prior", "identity", "detector"})


@dataclass(frozen=True)
class WeightsState:
    """Whether the real prior can run, and if not the message naming the missing files and the fetch command."""

    ok: bool
    message: str = ""
    fetch_command: str = ""


def weights_state(weights: str | None) -> WeightsState:
    config = WeightsConfig(root=weights)
    statuses = check_weights(config, need=NEED_WEIGHTS)
    if all(s.usable for s in statuses):
        return WeightsState(True)
    root = config.local_root()
    return WeightsState(False, missing_weights_message(statuses, root), f"arc2avatar weights download --to {root}")


class Service:
    """The app's state: config, queue, workers. ``close()`` stops the workers (running jobs checkpoint).
    Inside an app worker process (``app.process``) it starts no workers."""

    def __init__(self, config: AppConfig, start_workers: bool = True) -> None:
        self.config = config
        self.store = JobStore(config.work_dir)
        self.weights = weights_state(config.weights)
        self._iterations: dict[str, int] = {}
        self.dispatcher: Dispatcher | None = None
        if start_workers and not in_worker_process():  # a worker re-running the app's script starts nothing
            backend = None
            if config.ray is not None:  # create jobs on a Ray cluster (docs/cluster.md)

                backend = RayJobs(config.ray)
            self.dispatcher = Dispatcher(self.store, self.task_of, config.gpus, config.cpu_workers, self._finished,
                                         backend=backend).start()

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher = None

    # ------------------------------------------------------------------ jobs
    def task_of(self, job: Job) -> Task:
        c = self.config
        return Task(job.id, job.kind, str(self.store.job_dir(job.id)), job.params, c.overrides, c.weights,
                    c.preview_every, c.preview_size, os.getpid(), c.limits.video_s)

    def default_mode(self) -> str:
        return "arc2face" if self.weights.ok else "demo-photo"

    def default_preset(self) -> str:
        return "paper" if self.weights.ok else "cpu-smoke"

    def submit_create(self, photos: Sequence[str | None], owner: str, *, mode: str | None = None,
                      preset: str | None = None, seed: Any = 0, lora: str | None = None) -> Job:
        """Check the inputs, store them in a new job folder and queue the job (InputError: nothing is queued).

        Every argument is checked as the CLI checks it (``seed`` as ``--set seed=...`` is: a whole
        number in the config's range; text, NaN, infinities and fractions are refused)."""
        mode = mode or self.default_mode()
        preset = preset or self.default_preset()
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "arc2face" and not self.weights.ok:
            raise InputError("the Arc2Face weights are missing on this server; choose an offline demo mode. "
                             + self.weights.message.splitlines()[-1])
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        seed = self.parse_seed(preset, seed)
        job_id = new_job_id()
        job_dir = self.store.job_dir(job_id)
        inputs = job_dir / INPUTS_NAME
        job_dir.mkdir(parents=True)
        try:
            stored = [] if mode == "demo" and not any(photos) else save_photos(photos, inputs, self.config.limits)
            lora_path = save_lora(lora, inputs, self.config.limits) if mode == "arc2face" else None
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        params = {"mode": mode, "preset": preset, "seed": seed, "photos": [p.name for p in stored],
                  "lora": lora_path.name if lora_path else None}
        job = self.store.add("create", owner, params, job_id)
        log.info("job %s: queued (%s, preset %s, %d photo(s))", job.id, mode, preset, len(stored))
        return job

    def parse_seed(self, preset: str, value: Any) -> int:
        """A seed from a page or API client: None or "" = 0; otherwise what ``--set seed=VALUE`` accepts."""
        if value is None or isinstance(value, str) and not value.strip():
            value = 0
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InputError(f"seed must be a whole number, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        try:
            config = resolve_config(preset, None, [*self.config.overrides, f"seed={text}"])
        except InputError as error:
            problem = str(error).removeprefix("--set: ").removeprefix("invalid configuration: ")
            raise InputError(problem if problem.startswith("seed") else f"seed: {problem}") from None
        return int(config.seed)

    def job(self, job_id: str | None, owner: str) -> Job:
        """The job, if this owner may see it (InputError otherwise; an unknown and a foreign id read the same)."""
        job = self.store.get((job_id or "").strip())
        if job is None or (self.config.private_jobs and job.owner != owner):
            raise InputError("no such job (check the job id)")
        return job

    def cancel(self, job_id: str, owner: str) -> dict[str, Any]:
        job = self.job(job_id, owner)
        before = self.store.cancel(job.id)
        if before is not None and before.state == "running" and self.dispatcher is not None:
            self.dispatcher.cancel(job.id)
        return self.status(job.id, owner)

    def _finished(self, job: Job) -> None:
        """A create job finished: its folder is zipped once, for downloads."""
        if job.kind == "create":
            make_zip(self.store.job_dir(job.id))

    # ------------------------------------------------------------------ reading
    def status(self, job_id: str | Job, owner: str) -> dict[str, Any]:
        """A job's state and progress as plain JSON (the ``job_status`` endpoint's first output)."""
        job = job_id if isinstance(job_id, Job) else self.job(job_id, owner)
        out = {"job_id": job.id, "kind": job.kind, "state": job.state, "mode": job.params.get("mode"),
               "preset": job.params.get("preset"), "created": round(job.created, 3), "error": job.error}
        if job.state == "queued":
            out["queue_position"] = self.store.position(job)
        if job.kind == "create" and job.state in ("running", "done", "cancelled"):
            out.update(self.progress(job))
        out["message"] = describe(out)
        return out

    def progress(self, job: Job) -> dict[str, Any]:
        """Iteration, total, splat count, ETA (seconds) from the run's log and config."""
        out_dir = self.store.job_dir(job.id) / OUT_NAME
        total = self._total_iterations(job.id, out_dir)
        record = last_log_record(out_dir / "log.jsonl")
        info: dict[str, Any] = {"iterations": total}
        if record is None:
            prepare = read_prepare(out_dir) if job.state == "running" else None
            if prepare is not None:
                info["phase"] = f"preparing: {describe_prepare(prepare)}"
                info["prepare"] = prepare
            else:
                info["phase"] = "starting" if job.state == "running" else None
            return info
        iteration = int(record.get("iteration", 0))
        info.update(iteration=iteration, splats=record.get("splats"), phase=record.get("phase"))
        elapsed = float(record.get("elapsed_s") or 0.0)
        if total and 0 < iteration < total and job.state == "running":
            info["eta_s"] = round(elapsed / iteration * (total - iteration), 1)
        return info

    def _total_iterations(self, job_id: str, out_dir: Path) -> int | None:
        if job_id not in self._iterations:
            try:
                import yaml

                with open(out_dir / "config.yaml", encoding="utf-8") as handle:
                    self._iterations[job_id] = int(yaml.safe_load(handle)["iterations"])
            except (OSError, KeyError, TypeError, ValueError):
                return None
        return self._iterations[job_id]

    def files(self, job_id: str | Job, owner: str) -> dict[str, Path]:
        """A job's result files that exist (all inside its folder): ply, view (Model3D's), zip, turntable, viewer, views, preview."""
        job = job_id if isinstance(job_id, Job) else self.job(job_id, owner)
        job_dir = self.store.job_dir(job.id)
        out_dir = job_dir / OUT_NAME
        candidates = {"preview": job_dir / PREVIEW_NAME}
        if job.state == "done":
            candidates.update(ply=out_dir / "avatar.ply", view=job_dir / VIEW_NAME, zip=job_dir / ZIP_NAME, turntable=out_dir / "turntable.mp4",
                              viewer=out_dir / "viewer.html", views=out_dir / "views.png",
                              express=job_dir / EXPRESS_IMAGE, animate=job_dir / "animate.mp4", drive=job_dir / "drive.mp4")
        return {name: path for name, path in candidates.items() if path.is_file()}

    def gallery(self, owner: str) -> list[tuple[str, str, Path | None]]:
        """Every finished avatar this owner may see: (job id, label, thumbnail), newest first."""
        items = []
        for job in self.store.list(kind="create", state="done", owner=owner if self.config.private_jobs else None):
            out_dir = self.store.job_dir(job.id) / OUT_NAME
            thumb = out_dir / "views.png"
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.finished or job.created))
            label = f"{stamp} · {job.params.get('mode')} · {job.params.get('preset')} · {job.id[:8]}"
            items.append((job.id, label, thumb if thumb.is_file() else None))
        return items

    # ------------------------------------------------------------------ expressions, drive
    def avatar_dir(self, job_id: str, owner: str) -> Path:
        job = self.job(job_id, owner)
        if job.kind != "create" or job.state != "done":
            raise InputError("that job has no finished avatar yet; pick one from the Gallery")
        return self.store.job_dir(job.id) / OUT_NAME

    def submit_render(self, kind: str, avatar_job: str, owner: str, params: dict[str, Any],
                      video: str | None = None) -> Job:
        """Queue an express / animate / drive job on a finished avatar."""
        if kind == "animate":
            from arc2avatar.animate.sequence import PRESET_NAMES  # lazy: torch; the app's web process stays torch-free

            if params.get("preset") not in PRESET_NAMES:
                raise InputError(f"unknown animation {params.get('preset')!r}; choose one of {', '.join(PRESET_NAMES)}")
        params = {**params, "avatar_dir": str(self.avatar_dir(avatar_job, owner)), "avatar_job": avatar_job}
        job_id = new_job_id()
        job_dir = self.store.job_dir(job_id)
        if kind == "drive":
            try:
                params["video"] = save_video(video, job_dir / INPUTS_NAME, self.config.limits).name
            except BaseException:
                shutil.rmtree(job_dir, ignore_errors=True)
                raise
        job_dir.mkdir(parents=True, exist_ok=True)
        return self.store.add(kind, owner, params, job_id)  # type: ignore[arg-type]

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Block until the job is final (or the timeout passes); InputError when it failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.store.get(job_id)
            assert job is not None
            if job.final or time.monotonic() > deadline:
                break
            time.sleep(WAIT_POLL_S)
        if job.state == "failed":
            raise InputError(f"{job.kind} failed: {job.error}")
        if job.state != "done":
            raise InputError(f"{job.kind} did not finish ({job.state}) in {timeout_s:.0f} s; its job id is {job.id}")
        return job


def last_log_record(path: Path) -> dict[str, Any] | None:
    """The last complete JSON line of a JSON-lines log (reads only its tail)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "iteration" in record:
            return record
    return None


def describe(status: dict[str, Any]) -> str:
    """A status as one line for people."""
    state = status["state"]
    if state == "queued":
        ahead = status.get("queue_position", 0)
        return "queued: next to start" if not ahead else f"queued: {ahead} job(s) ahead"
    if state == "failed":
        return f"failed: {status.get('error')}"
    if state in ("done", "cancelled") and status.get("kind") != "create":
        return state
    iteration, total = status.get("iteration"), status.get("iterations")
    if iteration is None:
        return f"{state}: {status.get('phase') or 'starting'}"
    parts = [f"{state}: iteration {iteration}/{total or '?'}"]
    if status.get("splats") is not None:
        parts.append(f"{int(status['splats']):,} splats")
    if status.get("eta_s") is not None:
        parts.append(f"ETA {format_seconds(status['eta_s'])}")
    return " · ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def make_zip(job_dir: Path) -> Path:
    """``job_dir/avatar.zip``: the avatar folder (without a checkpoint), built beside and renamed."""
    import zipfile

    out_dir = job_dir / OUT_NAME
    target = job_dir / ZIP_NAME
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(out_dir.rglob("*")):
            if path.is_file() and path.name != "checkpoint.pt":
                archive.write(path, Path("avatar") / path.relative_to(out_dir))
    return target
