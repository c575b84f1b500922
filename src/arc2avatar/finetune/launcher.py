"""Launching N training processes from Python: what ``finetune train --gpus N`` does.

The processes are started by PyTorch's elastic launcher (the machinery behind ``torchrun``);
each one runs ``train_lora``, which reads its rank from the environment (``finetune/distributed.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import torch

from .._signals import kept_signal_handlers
from ..errors import InputError
from .dataset import DatasetLimits, check_dataset
from .distributed import LaunchSettings
from .train import check_run_folder, train_lora

logger = logging.getLogger(__name__)


def default_threads(nproc: int) -> int:
    """CPU threads per process when ``nproc`` share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // nproc)


def check_gpu_count(nproc: int, device_name: str) -> None:
    """A CUDA run needs one visible GPU per process; a CPU run any count (gloo)."""
    wants_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if wants_cuda and nproc > torch.cuda.device_count():
        raise InputError(f"--gpus {nproc} asked for, but {torch.cuda.device_count()} GPU(s) are visible")


def _train_worker(threads: int, data_root: str, weights: Any, out_dir: str, config: Any, resume: bool,
                  limits: Any, progress: bool) -> Any:
    """Entry point of each launched process: set its CPU threads, then ``train_lora`` (which reads the rank)."""
    torch.set_num_threads(threads)
    return train_lora(data_root, weights, out_dir, config, resume=resume, limits=limits, progress=progress)


def launch_training(
    settings: LaunchSettings,
    data_root: str | os.PathLike,
    weights: Any,
    out_dir: str | os.PathLike,
    config: Any,
    resume: bool = False,
    limits: Any = None,
    progress: bool = True,
) -> list[Any]:
    """Run ``train_lora`` in ``settings.nproc`` processes on this machine with PyTorch's elastic launcher.

    The inputs are checked here first (dataset, run folder, GPU count), so a mistake is one
    message, not one traceback per process.

    Returns:
        the ``TrainResult`` of every rank, in rank order.
    Raises:
        InputError: broken dataset, used run folder, more processes than GPUs.
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a process failed.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    limits = DatasetLimits() if limits is None else limits
    check_dataset(data_root, limits).raise_if_invalid()
    check_run_folder(Path(out_dir), resume)
    check_gpu_count(settings.nproc, config.device)
    launch = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=settings.nproc, run_id=str(uuid.uuid4()),
        rdzv_backend="c10d", rdzv_endpoint="localhost:0",  # torchrun --standalone: a free local port
        rdzv_timeout=settings.rendezvous_timeout_s, max_restarts=0, start_method="spawn",
    )
    threads = settings.threads_per_process or default_threads(settings.nproc)
    logger.info("launching %d training processes (%d CPU threads each)", settings.nproc, threads)
    # the elastic launcher installs its own handlers (a Ctrl-C raises its SignalException, an
    # Exception) and leaves them: the caller gets its own back
    with kept_signal_handlers(_LAUNCHER_SIGNALS):
        results = elastic_launch(launch, _train_worker)(threads, str(data_root), weights, str(out_dir), config, resume,
                                                        limits, progress)
    return [results[rank] for rank in sorted(results)]


_LAUNCHER_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))
