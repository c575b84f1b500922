"""The task body that runs on a worker node (one Ray task per avatar; docs/cluster.md).

``run_remote`` makes a private scratch folder on the node, writes the job's inputs into it (they
travel with the task), asks the head's ``Inbox`` which attempt this is and for the files of the
last checkpoint that reached the head, and runs the pipeline's own ``create`` / ``demo`` there
(with ``resume`` when a checkpoint came back). A ``Shipper`` thread sends every new checkpoint
(with ``config.yaml``, ``log.jsonl`` and a preview render) to the head at once, and the progress
log every ``progress_s`` seconds between checkpoints. The finished folder is the task's return
value; the head writes it into place (``head.write_finished``). The scratch folder is removed at
the end, whatever happens; one whose worker process was killed (a job force-cancelled, a worker
lost) is removed by the next job that starts on the same machine (its name holds the host and the
process id: ``remove_orphaned_scratch``).

Written by hand: the transfer of a run's folder between machines is ours; scheduling, retries
and fault detection are Ray's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc2avatar._signals import kept_signal_handlers
from arc2avatar.avatar.layout import CONFIG_NAME, LOG_NAME, PROGRESS_NAME  # torch-free constants
from arc2avatar.cluster.spec import RemoteJob
from arc2avatar.errors import Arc2AvatarError, MissingWeightsError
from arc2avatar.pipeline.batch import Attempt, one_line, run_figures
from arc2avatar.pipeline.preparing import PREPARE_NAME

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often the shipper looks for a new checkpoint, seconds
OUT_NAME = "out"
INPUTS_NAME = "inputs"
PROGRESS_FILES = (CONFIG_NAME, LOG_NAME, PROGRESS_NAME)  # sent between checkpoints when they change
SCRATCH_PREFIX = "arc2avatar-job-"  # + HOST@PID-: a job's scratch folder


@dataclass
class RemoteResult:
    """What a task returns: the attempt, the finished folder (relative path → bytes; empty when it
    failed), the node that ran it, the attempt number (1 = first), the iterations it ran and when
    it ended on the node."""

    attempt: Attempt
    files: dict[str, bytes] = field(default_factory=dict)
    node: str = ""
    attempt_no: int = 0
    first_iteration: int | None = None
    last_iteration: int | None = None
    ended: float = field(default_factory=time.time)  # when the node finished with it (epoch seconds)


def node_label() -> str:
    """This node as people read it: host name and the first characters of Ray's node id."""
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # noqa: BLE001 - outside Ray (unit use)
        node_id = "-"
    return f"{socket.gethostname()}/{node_id}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphaned_scratch(root: Path) -> list[Path]:
    """Remove the scratch folders in ``root`` that processes of this host left when they were
    killed (their process is gone); returns them. Folders of other hosts (a shared ``scratch_dir``)
    and of live processes stay."""
    host = socket.gethostname()
    removed = []
    for path in sorted(root.glob(f"{SCRATCH_PREFIX}*@*")):
        owner, _, rest = path.name[len(SCRATCH_PREFIX):].partition("@")
        pid = rest.split("-", 1)[0]
        if owner == host and pid.isdigit() and path.is_dir() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's (mtime_ns, size), None when absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def is_shipped(path: Path) -> bool:
    """A file of a run's folder that travels (never a ``.NAME.XXXX.tmp`` being written)."""
    return path.is_file() and not (path.name.startswith(".") and ".tmp" in path.name)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` (recursively) as relative path → bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if is_shipped(p)}


def preview_png(payload: dict[str, Any], size: int) -> bytes:
    """A frontal render of a checkpoint's splats as PNG bytes (the app's preview)."""
    from arc2avatar.avatar.render import preview_png as render_preview  # lazy: torch; the Ray head process stays torch-free

    return render_preview(payload, size)


class Shipper(threading.Thread):
    """Sends a run's new checkpoints (at once) and its progress log (every ``progress_s``) to the
    head, and tells the head once the trainer's loop runs (``loop_started``): from then on a cancel
    makes the run write a checkpoint, before it the head force-cancels (``head.RayBackend.cancel``)."""

    def __init__(self, inbox: Any, job: RemoteJob, attempt_no: int, out_dir: Path, progress_s: float,
                 resume_iteration: int = 0) -> None:
        super().__init__(name="arc2avatar-shipper", daemon=True)
        self.inbox, self.job, self.attempt_no, self.out_dir, self.progress_s = inbox, job, attempt_no, out_dir, progress_s
        self.resume_iteration = resume_iteration
        self.sent: dict[str, tuple[int, int]] = {}
        self.last_progress = 0.0
        self.optimising = False  # the head knows the trainer's loop runs
        self._log_at_start = _stamp(out_dir / LOG_NAME)
        self._preparing_seen = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(POLL_S):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - a lost send is retried at the next tick
                log.warning("sending %s's progress to the head failed: %s", self.job.key, one_line(error))

    def mark_sent(self, names: Any) -> None:
        """Files of ``out_dir`` the head already holds as they are now."""
        for name in names:
            stat = (self.out_dir / name).stat()
            self.sent[name] = (stat.st_mtime_ns, stat.st_size)

    def stop(self) -> None:
        """Stop, then send what changed since the last send (a checkpoint written at a cancel)."""
        self._halt.set()
        if self.is_alive():
            self.join()
        with contextlib.suppress(Exception):
            self.tick(force=True)

    def loop_started(self) -> bool:
        """Has the trainer's loop begun? The run's preparation record (``prepare.json``) was seen and
        is gone (the pipeline removes it as the loop starts), or the log holds an iteration past
        ``resume_iteration`` written by this attempt (the log that came with a resume may hold
        later ones, which the trainer drops)."""
        preparing = (self.out_dir / PREPARE_NAME).exists()
        self._preparing_seen = self._preparing_seen or preparing
        if self._preparing_seen and not preparing:
            return True
        log_path = self.out_dir / LOG_NAME
        return _stamp(log_path) != self._log_at_start and _iterations_run(log_path, self.resume_iteration)[0] is not None

    def _changed(self, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
        files = {}
        candidates = [self.out_dir / n for n in names] if names else sorted(self.out_dir.iterdir())
        for path in candidates:
            if not (path.exists() and is_shipped(path)) or path.name.startswith("."):
                continue
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self.sent.get(path.name) != stamp:
                files[path.name] = path.read_bytes()
                self.sent[path.name] = stamp
        return files

    def tick(self, force: bool = False) -> None:
        import ray
        import torch

        from arc2avatar.pipeline.trainer import CHECKPOINT_NAME  # lazy: torch; the Ray head process stays torch-free

        if not self.optimising and self.loop_started():
            ray.get(self.inbox.optimising.remote(self.job.key, self.attempt_no))
            self.optimising = True
        checkpoint = self.out_dir / CHECKPOINT_NAME
        if checkpoint.is_file():
            stat = checkpoint.stat()
            if self.sent.get(CHECKPOINT_NAME) != (stat.st_mtime_ns, stat.st_size):
                files = self._changed()  # every top-level file: the head can resume from what it holds
                if CHECKPOINT_NAME in files:
                    payload = torch.load(io.BytesIO(files[CHECKPOINT_NAME]), map_location="cpu", weights_only=True)
                    preview = preview_png(payload, self.job.preview_size) if self.job.preview_path else None
                    ray.get(self.inbox.deliver.remote(self.job.key, self.attempt_no, files, preview,
                                                      int(payload["iteration"])))
                    self.last_progress = time.monotonic()
                    return
        if force or time.monotonic() - self.last_progress >= self.progress_s:
            files = self._changed(PROGRESS_FILES)
            if files:
                ray.get(self.inbox.deliver.remote(self.job.key, self.attempt_no, files, None, None))
            self.last_progress = time.monotonic()


def _materialise(inputs: dict[str, tuple[str, Any]], folder: Path) -> dict[str, Path]:
    """The job's input files, sent with the task, written into the scratch folder: role → path."""
    import ray

    folder.mkdir(parents=True)
    paths = {}
    for role, (name, data) in inputs.items():
        if not isinstance(data, bytes):
            data = ray.get(data)
        path = folder / f"{role}-{Path(name).name}"
        path.write_bytes(data)
        paths[role] = path
    return paths


def _run(job: RemoteJob, paths: dict[str, Path], out_dir: Path, resume: bool) -> Any:
    from arc2avatar.pipeline.api import create, demo  # lazy: torch; the Ray head process stays torch-free

    photos = [paths[f"photo_{k}"] for k in range(len(job.photos))]
    common: dict[str, Any] = dict(preset=job.preset, config_path=paths.get("config_path"),
                                  overrides=list(job.overrides), resume=resume, progress=False)
    if job.mode == "demo":
        return demo(out_dir, **common)
    if job.mode == "demo-photo":
        return demo(out_dir, photo=photos[0], **common)
    return create(photos, out_dir, flame=paths.get("flame"), flame_masks=paths.get("flame_masks"),
                  lora=paths.get("lora"), weights=job.weights, **common)


def _iterations_run(log_path: Path, after: int) -> tuple[int | None, int | None]:
    """The first and last iteration this attempt logged (those past its resume point)."""
    import json

    seen = []
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("iteration"), int) and record["iteration"] > after:
                    seen.append(record["iteration"])
    return (min(seen), max(seen)) if seen else (None, None)


def run_remote(job: RemoteJob, inputs: dict[str, tuple[str, Any]], inbox: Any, progress_s: float,
               scratch_root: str | None, threads: float) -> RemoteResult:
    """Make one avatar on this node (see the module docstring). A failure of the job's own (a bad
    photo, missing weights on this node) is returned, not raised, so Ray does not retry it; a
    cancel (KeyboardInterrupt) sends the checkpoint it writes to the head, then propagates.

    Ray's cancel is a simulated SIGINT (``_thread.interrupt_main``), which Python drops while
    SIGINT is ignored, and a node started in the background (``nohup ray start ... &``, a service,
    a script run with ``&``) gives its worker processes SIGINT ignored: the task runs with Python's
    own SIGINT handler (the caller's is given back after)."""
    with kept_signal_handlers((signal.SIGINT,)):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return _run_job(job, inputs, inbox, progress_s, scratch_root, threads)


def _run_job(job: RemoteJob, inputs: dict[str, tuple[str, Any]], inbox: Any, progress_s: float,
             scratch_root: str | None, threads: float) -> RemoteResult:
    import ray
    import torch

    from arc2avatar.pipeline.api import run_state  # lazy: torch; the Ray head process stays torch-free

    torch.set_num_threads(max(1, int(threads)))
    node = node_label()
    attempt_no, resume_files, resume_iteration = ray.get(inbox.begin.remote(job, node))
    root = Path(scratch_root or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    for path in remove_orphaned_scratch(root):
        log.info("removed %s, left by a killed job", path)
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{socket.gethostname()}@{os.getpid()}-", dir=root))
    try:
        paths = _materialise(inputs, scratch / INPUTS_NAME)
        out_dir = scratch / OUT_NAME
        out_dir.mkdir()
        for name, data in resume_files.items():
            (out_dir / name).write_bytes(data)
        resume = run_state(out_dir) == "unfinished"
        shipper = Shipper(inbox, job, attempt_no, out_dir, progress_s, resume_iteration)
        shipper.mark_sent(resume_files)  # the head holds these already
        shipper.start()
        started = time.perf_counter()
        try:
            result = _run(job, paths, out_dir, resume)
        except Exception as error:  # noqa: BLE001 - the job's own failure: reported, not retried
            shipper.stop()
            text = one_line(error)
            if isinstance(error, MissingWeightsError):  # the files missing on this node, and how to fetch them there
                lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                text = f"on node {node}: {' '.join(lines[:1] + lines[-1:])}"
            for role, path in paths.items():  # name the head's file, not the node's scratch copy
                text = text.replace(str(path), job.input_files()[role])
            detail = None if isinstance(error, Arc2AvatarError) else traceback.format_exc()
            return RemoteResult(Attempt(False, error=text, detail=detail), {}, node, attempt_no)
        except BaseException:  # cancelled: the checkpoint the trainer wrote goes to the head first
            shipper.stop()
            raise
        shipper.stop()
        first, last = _iterations_run(out_dir / LOG_NAME, resume_iteration)
        attempt = Attempt(True, output=job.head_dir, metrics={**run_figures(result.metrics),
                                                              "job_s": time.perf_counter() - started})
        return RemoteResult(attempt, folder_files(out_dir), node, attempt_no, first, last)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["RemoteResult", "folder_files", "node_label", "preview_png", "remove_orphaned_scratch", "run_remote"]
