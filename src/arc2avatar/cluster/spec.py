"""What a cluster job is and how the cluster is used (docs/cluster.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from arc2avatar.errors import InputError, MissingDependencyError

INSTALL_HINT = "pip install 'arc2avatar[cluster]'  (or: pip install 'ray>=2.40')"
EVENTS_NAME = "cluster_log.jsonl"


def require_ray():  # noqa: ANN201 - the ray module
    """The ``ray`` module, or one line saying what to install."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def parse_resources(text: str | None) -> dict[str, float]:
    """``--ray-resources``: ``'{"A100": 1}'`` (JSON) or ``A100=1,fast_disk=0.5`` → custom resources per job."""
    if not text:
        return {}
    text = text.strip()
    try:
        if text.startswith("{"):
            raw = json.loads(text)
        else:
            raw = {}
            for item in text.split(","):
                name, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(item)
                raw[name.strip()] = value.strip()
        resources = {str(k): float(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError):
        raise InputError(f"--ray-resources takes NAME=AMOUNT[,NAME=AMOUNT] or a JSON object, got {text!r}") from None
    bad = [k for k, v in resources.items() if not k or v <= 0 or k in ("CPU", "GPU", "memory")]
    if bad:
        raise InputError(f"--ray-resources: {', '.join(bad) or 'an empty name'} is not a custom resource with an "
                         "amount > 0 (CPU and GPU are set by arc2avatar)")
    return resources


@dataclass(frozen=True)
class RayOptions:
    """How avatar jobs use a Ray cluster.

    Attributes:
        address: the cluster, as ``ray.init`` takes it: ``auto`` (the cluster this machine belongs
            to, started with ``ray start``), ``HOST:6379``; ``local`` starts a private one-machine
            cluster (tests, trying it out).
        resources: custom resources each job asks for (``--ray-resources``), besides its GPU.
        gpus_per_job: GPUs per job; None = 1 when the cluster has GPUs, else 0 (CPU-only cluster).
        cpus_per_job: CPUs per job (also its torch threads); the whole job runs on them on a
            CPU-only cluster.
        node_retries: how many times a job whose node (or worker process) was lost is started
            again on another node; a job that fails for a reason of its own is never retried.
        progress_s: seconds between sends of the progress log (``log.jsonl``) to the head between
            checkpoints; every new checkpoint is sent at once. The checkpoint interval itself is the
            run's ``checkpoint_every`` (iterations).
        scratch_dir: where a node makes each job's private folder (None: the node's temp folder).
        cancel_grace_s: seconds a cancelled job that optimises has to stop by itself (Ray raises
            ``KeyboardInterrupt`` in it: it sends its last checkpoint and ends) before its worker
            process is killed (a task inside a long native call, or waiting on Ray, may not see the
            interrupt). A job still queued or preparing is cancelled at once, whatever the grace.
        object_store_mb: object store of a ``local`` cluster, MiB (None: Ray's default).
    """

    address: str = "auto"
    resources: dict[str, float] = field(default_factory=dict)
    gpus_per_job: float | None = None
    cpus_per_job: float = 1.0
    node_retries: int = 3
    progress_s: float = 2.0
    scratch_dir: str | None = None
    cancel_grace_s: float = 60.0
    object_store_mb: int | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise InputError("--ray needs an address: auto, HOST:PORT or local")
        if self.cpus_per_job <= 0 or (self.gpus_per_job is not None and self.gpus_per_job < 0):
            raise InputError("cluster: cpus per job must be > 0 and gpus per job ≥ 0")
        if self.node_retries < 0 or self.progress_s <= 0 or self.cancel_grace_s < 0:
            raise InputError("cluster: node_retries ≥ 0, progress_s > 0 and cancel_grace_s ≥ 0 are required")


@dataclass(frozen=True)
class RemoteJob:
    """One avatar to make on some node; every path is a path on the head.

    Attributes:
        key: unique among the jobs of one backend (create-batch: the job name; the app: the job id).
        head_dir: the avatar folder on the head (only the head writes it).
        mode: ``create`` (Arc2Face), ``demo`` (oracle prior, no photo) or ``demo-photo`` (oracle,
            the first photo on the target's face).
        photos: the photos (read on the head, sent with the task).
        preset, overrides: as for ``create``; config_path, lora, flame, flame_masks: files on the
            head, sent with the task (each file once per backend, however many jobs use it).
        weights: the weights folder on the node (None: the node's ``$ARC2AVATAR_WEIGHTS`` or
            ``~/.cache/arc2avatar/weights``).
        preview_path, preview_size: where on the head a preview PNG of each checkpoint goes (None: none).
        events_path: the head's JSON-lines log of this job's attempts (node, resume point, bytes).
    """

    key: str
    head_dir: str
    mode: str = "create"
    photos: tuple[str, ...] = ()
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    config_path: str | None = None
    lora: str | None = None
    flame: str | None = None
    flame_masks: str | None = None
    weights: str | None = None
    preview_path: str | None = None
    preview_size: int = 256
    events_path: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("create", "demo", "demo-photo"):
            raise InputError(f"unknown job mode {self.mode!r}")
        if self.mode == "demo-photo" and not self.photos:
            raise InputError("demo-photo needs a photo")

    def input_files(self) -> dict[str, str]:
        """Role → head path of every file the node needs (photos as ``photo_K``)."""
        files = {f"photo_{k}": p for k, p in enumerate(self.photos)}
        for role in ("config_path", "lora", "flame", "flame_masks"):
            if getattr(self, role):
                files[role] = getattr(self, role)
        return files
