"""What :func:`cryoal.train.fit.fit` returns, and the error of a pre-empted run.

* :class:`FitResult`: the trained teacher and student (eval mode), final and per-epoch
  metrics, the model description and the run folder.
* :class:`TrainingPreempted`: raised on every rank when a stop request (SIGUSR1) ended
  training after a checkpoint was written; ``fit(..., resume=True)`` continues the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cryoal.train.config import TrainConfig


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    teacher
        The trained task model (eval mode, on the training device).
    student
        The trained or EMA student, or None (``student: none``).
    metrics
        Final metrics (``metrics.json["final"]``): validation metrics of the last epoch
        (when a validation set was given), train losses, sizes, wall time.
    out_dir
        The run folder, or None when training in memory only.
    config
        The configuration used.
    history
        Per-epoch metrics (``metrics.json["epochs"]``).
    info
        Model description (``model.json`` without file hashes).
    """

    teacher: nn.Module
    student: nn.Module | None
    metrics: dict[str, Any]
    out_dir: Path | None
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class TrainingPreempted(RuntimeError):
    """Training stopped early on a stop request (SIGUSR1) after writing a checkpoint.

    Attributes
    ----------
    step
        The global step of the checkpoint; ``fit(..., resume=True)`` continues from it.
    requeued
        The SLURM job id that was requeued (``scontrol requeue``), or None.
    """

    def __init__(self, out_dir: Path, step: int, requeued: str | None) -> None:
        self.out_dir, self.step, self.requeued = out_dir, step, requeued
        then = f"; SLURM job {requeued} requeued" if requeued else "; rerun with --resume"
        super().__init__(f"{out_dir}: stopped on SIGUSR1 after checkpointing step {step}{then}")
