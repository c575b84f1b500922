"""Data-parallel LoRA training over several processes (issue 8.1): torch.distributed + DDP.

PyTorch's own launcher starts the processes, one per GPU:

* ``torchrun --standalone --nproc-per-node N -m arc2avatar.cli.main finetune train DATA -o RUN ...``, or
* ``arc2avatar finetune train DATA -o RUN --gpus N``, which calls the same elastic launcher
  (``torch.distributed.launcher.api.elastic_launch``, standalone c10d rendezvous on a free
  port) from Python: ``launch_training`` in ``finetune/launcher.py``.

Each process reads its place from the launcher's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: NCCL on CUDA (rank
r on ``cuda:LOCAL_RANK``), gloo on the CPU. ``DistributedDataParallel`` averages the LoRA
gradients, so every rank applies the same update and holds the same LoRA.

Conventions (docs/finetune.md, "Several GPUs"):

* ``FinetuneConfig.batch_size`` is the batch of ONE process; the global batch of a step is
  ``batch_size × world size``. The learning rate is not rescaled: DDP averages the gradients,
  so a step follows the mean loss over the global batch.
* Randomness. World size 1 is the single-process path unchanged: one generator seeded with
  ``seed``, its state saved in every checkpoint. With N > 1 processes, rank r draws the batch of
  step s from a generator seeded with ``step_seed(seed, r, s)``: nothing per rank has to be
  saved, a checkpoint written by any world size resumes on any other (the LoRA, the optimizer,
  the grad scaler and the step do not depend on it), and an interrupted N-process run continues
  exactly as an uninterrupted one would. A single process resuming a multi-process checkpoint
  continues rank 0's stream from the saved state.
* Only rank 0 writes (log, validation images, checkpoints, the LoRA file); every rank returns
  the same ``TrainResult``, the logged loss being the mean over ranks.

Written by hand: only the glue above (environment parsing, the per-rank seed, rank-0-only
writing). Process start, rendezvous, collectives and gradient averaging are PyTorch's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError

logger = logging.getLogger(__name__)

#: Environment variables the PyTorch launchers (torchrun, elastic_launch) set in each process.
RANK_ENV, WORLD_SIZE_ENV, LOCAL_RANK_ENV = "RANK", "WORLD_SIZE", "LOCAL_RANK"


@dataclass(frozen=True)
class LaunchSettings:
    """How ``launch_training`` starts its processes.

    Attributes:
        nproc: processes on this machine, one per GPU (on a CPU machine: CPU processes, gloo).
        threads_per_process: intra-op CPU threads of each process; None = CPU cores // nproc
            (at least 1), so N processes do not oversubscribe the cores.
        collective_timeout_s: seconds a rank waits in a collective (e.g. while rank 0 writes
            validation images) before the run fails; PyTorch's default is 10 minutes.
        rendezvous_timeout_s: seconds the processes have to find each other at start.
    """

    nproc: int = 1
    threads_per_process: int | None = None
    collective_timeout_s: float = 1800.0
    rendezvous_timeout_s: int = 300

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise InputError(f"the number of processes must be ≥ 1, got {self.nproc}")
        if self.threads_per_process is not None and self.threads_per_process < 1:
            raise InputError(f"threads per process must be ≥ 1, got {self.threads_per_process}")


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the run: global rank, number of processes, rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0


def rank_from_env(environ: dict[str, str] | None = None) -> RankInfo:
    """The ``RankInfo`` the launcher put in the environment (world size 1 when not launched)."""
    env = os.environ if environ is None else environ
    try:
        info = RankInfo(int(env.get(RANK_ENV, "0")), int(env.get(WORLD_SIZE_ENV, "1")),
                        int(env.get(LOCAL_RANK_ENV, "0")))
    except ValueError as err:
        raise InputError(f"{RANK_ENV}/{WORLD_SIZE_ENV}/{LOCAL_RANK_ENV} must be integers ({err}); "
                         "start several processes with torchrun or `finetune train --gpus N`") from err
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise InputError(f"inconsistent launcher environment: {RANK_ENV}={info.rank}, {WORLD_SIZE_ENV}={info.world_size}")
    return info


def rank_device(info: RankInfo, name: str) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when ``name`` is "auto" (with CUDA) or "cuda…", else the CPU.

    Only called with world size > 1; a single process keeps ``train.pick_device``.
    """
    kind = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name).type
    if kind == "cpu":
        return torch.device("cpu")
    if kind != "cuda":
        raise InputError(f"multi-process training runs on CUDA or the CPU, not {name!r}")
    if not torch.cuda.is_available() or info.local_rank >= torch.cuda.device_count():
        raise InputError(f"rank {info.rank} needs GPU {info.local_rank}, but {torch.cuda.device_count()} "
                         "GPU(s) are visible; start at most one process per GPU")
    device = torch.device("cuda", info.local_rank)
    torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(info: RankInfo, device: torch.device, timeout_s: float = LaunchSettings.collective_timeout_s) -> Iterator[None]:
    """Join the default process group for the block (NCCL on CUDA, gloo on the CPU); no-op for one process.

    A group that already exists (the caller made it) is used and left alone.
    """
    import torch.distributed as dist

    if not info.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                            **({"device_id": device} if device.type == "cuda" else {}))
    logger.info("rank %d/%d joined the %s process group on %s", info.rank, info.world_size, backend, device)
    try:
        yield
    finally:
        dist.destroy_process_group()


def wrap_data_parallel(unet: Any, info: RankInfo, device: torch.device) -> Any:
    """``DistributedDataParallel(unet)`` for several processes (averages the LoRA gradients), else ``unet``."""
    if not info.distributed:
        return unet
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(unet, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(value: Tensor, info: RankInfo) -> Tensor:
    """The mean of a detached scalar over all ranks (``value`` itself for one process)."""
    if not info.distributed:
        return value
    import torch.distributed as dist

    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / info.world_size


def barrier(info: RankInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of rank ``rank``'s generator at step ``step`` (1-based): a SeedSequence of the three, 63 bits."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]) & (2**63 - 1)
