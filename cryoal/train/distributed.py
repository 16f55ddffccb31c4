"""Devices, mixed precision and data-parallel training under ``torchrun`` (DDP).

``torchrun --nproc_per_node=N -m cryoal train DATA.h5 --out RUN ...`` starts N processes
with ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set; :func:`setup` then joins the process group
(NCCL on GPUs, gloo on CPUs). ``batch_size`` stays the *global* batch: each step, rank
``r`` takes positions ``r, r + N, ...`` of the batch the single-process run would use, and
DDP averages the gradients — with batch-independent normalisation (``norm: group`` or
``instance``) N processes give the single-process result up to float rounding. Rank 0
writes checkpoints, metrics and the final models while the others wait at a barrier; every
rank can resume from them.

Failure: every collective (barrier, all-reduce, DDP's gradient reduction) times out after
``CRYOAL_DIST_TIMEOUT_S`` seconds (default 600), so no rank waits forever for a dead peer;
in practice torchrun's agent ends the whole group within seconds when one rank exits with
an error.

Pre-emption: :class:`StopRequest` turns ``SIGUSR1`` (SLURM's warning before the time
limit, forwarded to the ranks by ``torchrun --signals-to-handle ...,SIGUSR1``) into a flag
that all ranks agree on at the next step boundary (:func:`any_rank`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import threading
from dataclasses import dataclass
from types import FrameType

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

#: Environment variable: seconds before a collective gives up (default 600).
TIMEOUT_ENV = "CRYOAL_DIST_TIMEOUT_S"

#: Mixed-precision modes of ``TrainConfig.amp`` / ``--amp``.
AMP_MODES: tuple[str, ...] = ("auto", "bf16", "fp16", "off")


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


# -- devices and precision --------------------------------------------------------------
def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; checks that a CUDA device exists."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but this torch build sees no CUDA GPU; use --device cpu"
        )
    return dev


def to_device(
    model: torch.nn.Module, device: torch.device, memory_format: torch.memory_format
) -> torch.nn.Module:
    """``model`` moved to ``device`` with its parameters in ``memory_format`` (in place).

    ``memory_format=torch.channels_last_3d`` makes cuDNN pick channels-last 3-D kernels.
    """
    # torch documents Module.to(..., memory_format=...) and accepts it at runtime, but the
    # overloads in its type annotations (torch 2.13) omit the argument
    return model.to(device, memory_format=memory_format)  # type: ignore[call-overload]


def amp_dtype(device: torch.device, amp: str | bool) -> torch.dtype | None:
    """The autocast dtype for a mixed-precision mode on ``device`` (None: float32).

    ``auto`` is bf16 on GPUs that support it, fp16 on older GPUs and off on CPUs (CPU
    autocast is slower than float32 on most CPUs without AMX). ``bf16`` works on CPU and
    CUDA; ``fp16`` needs CUDA. ``True`` / ``False`` mean ``auto`` / ``off``.
    """
    mode = ("auto" if amp else "off") if isinstance(amp, bool) else str(amp)
    if mode not in AMP_MODES:
        raise ValueError(f"amp {amp!r} is not a mode; use one of {list(AMP_MODES)}")
    if mode == "off":
        return None
    cuda = device.type == "cuda"
    if mode == "auto":
        if not cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and not cuda:
        raise ValueError("amp fp16 needs a CUDA device; use --amp bf16 (or off) on CPU")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast_context(device: torch.device, amp: str | bool) -> contextlib.AbstractContextManager:
    """Autocast for :func:`amp_dtype` of ``amp`` on ``device``; a no-op when that is None."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str | bool) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 and float32 need none)."""
    enabled = amp_dtype(device, amp) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


# -- process group -----------------------------------------------------------------------
def timeout_s() -> float:
    """Seconds a collective waits for the other ranks (``CRYOAL_DIST_TIMEOUT_S``)."""
    raw = os.environ.get(TIMEOUT_ENV, "600")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; e.g. 600") from None
    if value <= 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} must be > 0 seconds")
    return value


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
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s()))
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
    """Wait for every rank (bounded by :func:`timeout_s`); no-op in a single process."""
    if ctx.active:
        dist.barrier()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few floats over all ranks (identity in a single process)."""
    if not ctx.active:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_ints(values: np.ndarray, ctx: DistContext, device: torch.device) -> np.ndarray:
    """Concatenate every rank's ``(n,)`` int64 array, in rank order (each rank passes the
    same ``n``); the array itself in a single process. ``device``: the training device
    (CUDA tensors for NCCL)."""
    if not ctx.active:
        return values
    t = torch.as_tensor(np.ascontiguousarray(values), dtype=torch.int64, device=device)
    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t)
    return torch.cat(parts).cpu().numpy()


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not ctx.active:
        return flag
    return all_reduce_sum([1.0 if flag else 0.0], ctx)[0] > 0


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


# -- pre-emption -------------------------------------------------------------------------
class StopRequest:
    """Sets :attr:`requested` when ``SIGUSR1`` arrives while installed (a context manager).

    The previous handler is restored on exit. Outside the main thread (where Python cannot
    install signal handlers) it does nothing.
    """

    def __init__(self, signum: int = signal.SIGUSR1) -> None:
        self.signum = signum
        self.requested = False
        self._previous: object = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        log.warning("received %s: checkpointing at the next step", signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(self.signum, self._previous)  # type: ignore[arg-type]
            self._installed = False


def requeue_slurm_job() -> str | None:
    """``scontrol requeue $SLURM_JOB_ID`` when running inside a SLURM job; the job id or None.

    A failure to requeue is logged, not raised: the checkpoint is already written, and a
    manual ``sbatch`` of the same script resumes from it.
    """
    import subprocess

    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("scontrol requeue %s failed (%s); resubmit the job to resume", job, exc)
        return None
    return job
