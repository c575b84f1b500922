"""Settings of the web app (``arc2avatar serve``, ``arc2avatar.app.build_app``; docs/serve.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc2avatar.errors import InputError

MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be (checked on the server, by decoding, not by file name).

    Attributes:
        photo_mb: largest photo file, MiB (a 24-MP JPEG is ~12 MiB).
        photos: most photos per avatar (the paper averages up to 4 identity embeddings, Sec. 3.1).
        video_mb: largest driving video, MiB.
        lora_mb: largest LoRA file, MiB (the multi-view LoRA of docs/finetune.md is ~3 MiB at rank 4).
        video_s: longest driving video, seconds: a longer one is refused at upload, and a drive job
            reads no more than this much of its video (a video whose length FFmpeg cannot tell).
        cache_mb: most MiB Gradio's upload folder may hold; an upload that would pass it is refused
            (HTTP 507) until old uploads expire (``cache_age_s``).
        cache_age_s: uploads older than this are deleted, seconds (checked every ``cache_age_s / 4``).

    One request to Gradio's upload route cannot say which field it is for, so the route takes
    at most the largest limit of a field the page shows (``largest_upload``); each field's own
    limit is checked when the job is submitted, and a refused upload is deleted then.
    """

    photo_mb: float = 20.0
    photos: int = 4
    video_mb: float = 200.0
    lora_mb: float = 512.0
    video_s: float = 60.0
    cache_mb: float = 2048.0
    cache_age_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("photo_mb", "video_mb", "lora_mb", "video_s", "cache_mb", "cache_age_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise InputError(f"serve: the upload limit {name} must be a positive number, got {value!r}")
        if self.photos < 1:
            raise InputError(f"serve: the upload limit photos must be ≥ 1, got {self.photos}")

    def largest_upload(self, lora: bool) -> int:
        """Bytes one upload may have: the largest field limit (the LoRA's only when its field is shown)."""
        return max(self.photo_bytes, self.video_bytes, *([self.lora_bytes] if lora else []))

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_mb * MEGABYTE)

    @property
    def photo_bytes(self) -> int:
        return int(self.photo_mb * MEGABYTE)

    @property
    def video_bytes(self) -> int:
        return int(self.video_mb * MEGABYTE)

    @property
    def lora_bytes(self) -> int:
        return int(self.lora_mb * MEGABYTE)


@dataclass(frozen=True)
class AppConfig:
    """How the app runs.

    Attributes:
        work_dir: every job's folder, the job queue (``jobs.sqlite``) and nothing else the app reads.
        gpus: GPUs to run avatar jobs on, one worker process each; None = every visible GPU.
            Without GPUs ``cpu_workers`` processes run them on the CPU.
        cpu_workers: worker processes when there is no GPU.
        weights: the weights folder (None: ``$ARC2AVATAR_WEIGHTS`` or ``~/.cache/arc2avatar/weights``).
        overrides: "key=value" settings applied to every avatar job after its preset (e.g. a tiny
            schedule for a demo server or tests).
        preview_every: iterations between preview renders; this is also the checkpoint interval
            (the preview is rendered from the checkpoint, and a restart resumes from it).
        preview_size: preview render side, pixels.
        refresh_s: how often an open page refreshes a running job's progress, seconds.
        private_jobs: a job (and the gallery) is visible only to the user who made it; set by
            ``serve --auth`` (without login everyone on the page is the same user).
        limits: upload limits.
        ray: run ``create`` jobs on this Ray cluster (``arc2avatar.cluster.RayOptions``; ``serve
            --ray``, docs/cluster.md) instead of this machine's worker processes; None = here.
    """

    work_dir: Path = Path("arc2avatar-work")
    gpus: int | None = None
    cpu_workers: int = 1
    weights: str | None = None
    overrides: tuple[str, ...] = ()
    preview_every: int = 50
    preview_size: int = 256
    refresh_s: float = 1.0
    private_jobs: bool = False
    limits: UploadLimits = UploadLimits()
    ray: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "work_dir", Path(self.work_dir).expanduser().resolve())
        if self.gpus is not None and self.gpus < 0:
            raise InputError(f"serve: --gpus must be ≥ 0, got {self.gpus}")
        if self.cpu_workers < 1:
            raise InputError(f"serve: cpu_workers must be ≥ 1, got {self.cpu_workers}")
        if self.preview_every < 1 or self.preview_size < 16 or self.refresh_s <= 0:
            raise InputError("serve: preview_every ≥ 1, preview_size ≥ 16 and refresh_s > 0 are required")
