"""Self-supervised pretraining of the teacher's encoder on unlabelled subtomograms.

A project holds thousands of candidates and only a few labels. :func:`pretrain` learns an
encoder (the teacher network without its classification head) from the unlabelled
subtomograms alone, by making two views of each sample that keep the missing wedge where
it is and teaching the encoder to map both views to nearby points (methods.md §8). Training
then fine-tunes from that encoder (``TrainConfig.encoder``) instead of random weights, and
the embedding it gives is what the cold start and the diversity stage of selection compare.

The package's modules, one job each:

* :mod:`cryoal.pretrain.config`: :class:`PretrainConfig`, every hyper-parameter;
* :mod:`cryoal.pretrain.views`: the two views of a batch (wedge-safe flips, shifts, noise);
* :mod:`cryoal.pretrain.objectives`: NT-Xent (MONAI's ``ContrastiveLoss``) and VICReg;
* :mod:`cryoal.pretrain.encoder`: the encoder folder on disk, the pool's content hash, and
  loading an encoder into a teacher;
* :mod:`cryoal.pretrain.run`: :func:`pretrain` and :func:`pretrain_cached`, with
  checkpoints, exact resume and progress;
* :mod:`cryoal.pretrain.embed`: the frozen embedding of store rows.

The public names are imported lazily, so ``import cryoal.pretrain.config`` (the CLI's
start-up) does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_API: dict[str, str] = {
    "PretrainConfig": "config",
    "embed_rows": "embed",
    "Encoder": "encoder",
    "load_encoder": "encoder",
    "load_encoder_into": "encoder",
    "pool_hash": "encoder",
    "PretrainEvent": "run",
    "pretrain": "run",
    "pretrain_cached": "run",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'cryoal.pretrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cryoal.pretrain.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
