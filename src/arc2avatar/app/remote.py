"""``serve --ray ADDRESS``: the app's ``create`` jobs run as Ray tasks (issue 29; docs/cluster.md).

The app keeps the job record (its SQLite queue stays the single source of truth for jobs and
owners); a job's Ray task lives only as long as this web process. ``RayJobs`` turns an app
``Task`` into a cluster ``RemoteJob`` whose head folder is the job's ``out/`` folder: the node
sends every checkpoint, the progress log and a preview there, so status, ETA and the preview
read the same files as with local workers, and a restarted app resumes the job from the last
checkpoint that reached it. Express / animate / drive jobs stay on the app's own render worker.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from arc2avatar.app.workers import INPUTS_NAME, OUT_NAME, PREVIEW_NAME, Task
from arc2avatar.cluster import RayOptions, RemoteJob
from arc2avatar.cluster.head import RayBackend
from arc2avatar.cluster.spec import EVENTS_NAME

MODES = {"arc2face": "create", "demo": "demo", "demo-photo": "demo-photo"}  # the app's mode → RemoteJob.mode


def remote_job(task: Task) -> RemoteJob:
    """The cluster job of an app ``create`` task (paths on the head; the node gets the files)."""
    p, job_dir = task.params, Path(task.job_dir)
    photos = tuple(str(job_dir / INPUTS_NAME / name) for name in p.get("photos", []))
    lora = str(job_dir / INPUTS_NAME / p["lora"]) if p.get("lora") else None
    overrides = (*task.overrides, f"seed={int(p.get('seed', 0))}", f"checkpoint_every={task.preview_every}")
    return RemoteJob(key=task.job_id, head_dir=str(job_dir / OUT_NAME), mode=MODES[p["mode"]],
                     photos=photos if p["mode"] != "demo" else (), preset=p["preset"], overrides=overrides,
                     lora=lora, weights=task.weights, preview_path=str(job_dir / PREVIEW_NAME),
                     preview_size=task.preview_size, events_path=str(job_dir / EVENTS_NAME))


class RayJobs:
    """The ``Dispatcher``'s backend for ``create`` jobs on a Ray cluster: ``slots`` jobs at once."""

    def __init__(self, options: RayOptions) -> None:
        self.backend = RayBackend(options)
        self.slots = self.backend.capacity

    def submit(self, task: Task) -> Future:
        return self.backend.submit(remote_job(task))

    def cancel(self, job_id: str) -> bool:
        return self.backend.cancel(job_id)

    def close(self, wait_s: float) -> None:
        self.backend.close(wait_s)
