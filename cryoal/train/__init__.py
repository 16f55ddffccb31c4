"""Training and prediction of teacher–student models (methods.md §1).

Public API (imported lazily, so ``import cryoal.train.config`` does not pull in torch):

* :class:`TrainConfig` (:mod:`.config`) — every hyper-parameter, YAML-loadable.
* :func:`fit`, :class:`FitResult`, :class:`TrainingPreempted` (:mod:`.fit`) — train,
  checkpoint, resume, DDP under ``torchrun``.
* :func:`train_store`, :func:`load_config`, :func:`split_store` (:mod:`.run`) — what
  ``cryoal train STORE.h5`` does.
* :func:`load_run`, :class:`LoadedRun`, :func:`load_latest_checkpoint` (:mod:`.checkpoint`).
* :func:`stream_outputs`, :func:`predict`, :func:`segment_tomogram` (:mod:`.predict`) —
  fixed-size-batch inference.
* :func:`predict_path`, :func:`predict_store` (:mod:`.predict_to_files`) — ``cryoal
  predict`` to HDF5 / CSV / MRC files.
* :func:`evaluate` (:mod:`.evaluate`).
* :func:`resolve_device`, :func:`amp_dtype`, :func:`autocast_context`,
  :class:`DistContext` (:mod:`.distributed`) — devices, mixed precision, process groups.
* :class:`TrainEvent`, ``TrainCallback``, ``CountCallback`` (:mod:`.events`) — progress.
"""

from __future__ import annotations

import importlib
from typing import Any

_API: dict[str, str] = {
    "TrainConfig": "config",
    "fit": "fit",
    "FitResult": "fit",
    "TrainingPreempted": "fit",
    "train_store": "run",
    "load_config": "run",
    "split_store": "run",
    "load_run": "checkpoint",
    "LoadedRun": "checkpoint",
    "load_latest_checkpoint": "checkpoint",
    "stream_outputs": "predict",
    "predict": "predict",
    "segment_tomogram": "predict",
    "predict_path": "predict_to_files",
    "predict_store": "predict_to_files",
    "evaluate": "evaluate",
    "resolve_device": "distributed",
    "amp_dtype": "distributed",
    "autocast_context": "distributed",
    "DistContext": "distributed",
    "TrainEvent": "events",
    "TrainCallback": "events",
    "CountCallback": "events",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'cryoal.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cryoal.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
