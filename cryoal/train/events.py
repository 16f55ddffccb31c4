"""Progress events of training and prediction, reported to callbacks.

The library never draws progress bars: :func:`cryoal.train.fit.fit` calls a
:data:`TrainCallback` after every step and every epoch, prediction and scoring call a
:data:`cryoal.progress.CountCallback` with the number of samples done. The CLI turns them into rich bars on
a terminal and into plain, flushed lines in a log file (:mod:`cryoal.cli.progress`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class TrainEvent:
    """One training progress report.

    Attributes
    ----------
    kind
        ``"step"`` after every optimisation step, ``"epoch"`` after every epoch (with the
        epoch's metrics), ``"stopped"`` when a stop request (SIGUSR1) ended the run early
        after a checkpoint.
    epoch
        Epochs completed (``kind="epoch"``) or the current epoch, 0-based.
    epochs
        Epochs in the run.
    step, total_steps
        Optimisation steps done and planned (global: the same on every rank).
    samples_per_s
        Labeled training samples per second over all ranks since the run (or its resume)
        started.
    eta_s
        Estimated seconds to the end of training.
    loss
        Mean teacher task loss of the epoch so far.
    accuracy
        ``kind="epoch"``: the teacher's validation accuracy (None without validation or
        for segmentation, which reports ``dice``).
    record
        ``kind="epoch"``: the epoch's full record (as in ``metrics.json``).
    """

    kind: Literal["step", "epoch", "stopped"]
    epoch: int
    epochs: int
    step: int
    total_steps: int
    samples_per_s: float
    eta_s: float
    loss: float | None = None
    accuracy: float | None = None
    dice: float | None = None
    record: dict[str, Any] | None = None


#: Called with every :class:`TrainEvent`.
TrainCallback = Callable[[TrainEvent], None]
