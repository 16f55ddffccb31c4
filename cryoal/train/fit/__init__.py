"""Joint teacher–student training (methods.md §1), with checkpoints and exact resume.

The package's modules, one job each:

* :mod:`cryoal.train.fit.loop`: :func:`fit`, the entry point, and its loop over epochs and
  steps (progress events, ``metrics.json``, checkpoint cadence, SIGUSR1 pre-emption);
* :mod:`cryoal.train.fit.trainer`: the state and steps of one run (networks, datasets,
  optimisers, EMA averages, the teacher–student step, checkpoint write and restore);
* :mod:`cryoal.train.fit.result`: :class:`FitResult` and :class:`TrainingPreempted`;
* :mod:`cryoal.train.fit.optim`: optimisers, learning-rate schedules, :func:`ema_update`;
* :mod:`cryoal.train.fit.warm_start`: networks initialised from a previous run;
* :mod:`cryoal.train.fit.inputs`: row-index checks, class names, the data fingerprint;
* :mod:`cryoal.train.fit.seeds`: :func:`derive_seed`, one seed per purpose.

Every public name is importable from ``cryoal.train.fit``.

The teacher–student step and its losses are described in :mod:`cryoal.train.fit.trainer`.

Reproducibility: initialisation, batch order, augmentation and dropout derive from
``config.seed``; the global torch RNG of the caller is saved and restored. A run killed at
any point and resumed from its newest checkpoint replays exactly the same batches.
"""

from __future__ import annotations

from cryoal.train.fit.loop import fit
from cryoal.train.fit.optim import ema_update
from cryoal.train.fit.result import FitResult, TrainingPreempted
from cryoal.train.fit.seeds import derive_seed

__all__ = ["FitResult", "TrainingPreempted", "derive_seed", "ema_update", "fit"]
