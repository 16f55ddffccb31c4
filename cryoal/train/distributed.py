"""Data-parallel training under ``torchrun`` (DDP), the same command on 1 or N processes.

``torchrun --nproc_per_node=N -m cryoal train DATA.h5 --out RUN ...`` starts N processes
with ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set; :func:`setup` then joins the process group
(NCCL on GPUs, gloo on CPUs). ``batch_size`` stays the *global* batch: each step, rank
``r`` takes positions ``r, r + N, ...`` of the batch the single-process run would use, and
DDP averages the gradients — with batch-independent normalisation (``norm: group`` or
``instance``) N processes give the single-process result up to float rounding. Rank 0
writes checkpoints, metrics and the final models; every rank can resume from them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Returns a single-process context otherwise. A process group created by the caller is
    reused (and left for the caller to destroy).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), _local_rank(), False)
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), _local_rank(), True)
    log.info("rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for(device: torch.device, ctx: DistContext) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` when training on CUDA under DDP."""
    if ctx.active and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def shard(batches: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's share ``(steps, batch / N)`` of the global batches ``(steps, batch)``."""
    return batches[:, ctx.rank :: ctx.world_size]


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few floats over all ranks (identity in a single process)."""
    if not ctx.active:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
