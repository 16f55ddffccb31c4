"""What ``cryoal train STORE.h5`` does, as library calls.

The CLI command is a thin shell over :func:`train_store` (prediction to files:
:mod:`cryoal.train.predict_to_files`); a project (``cryoal train PROJECT_DIR``) goes through :mod:`cryoal.project` instead, which
calls :func:`cryoal.train.fit.fit` the same way.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.data.datasets import stratified_split
from cryoal.io.atomic import atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.train.config import TrainConfig
from cryoal.train.events import TrainCallback
from cryoal.train.fit import FitResult, fit

log = logging.getLogger(__name__)


def load_config(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The training configuration: YAML file (or defaults) with ``overrides`` applied.

    ``None`` values in ``overrides`` mean "not given" and keep the file's value.
    """
    config = TrainConfig.from_yaml(path) if path is not None else TrainConfig()
    return config.updated(**(overrides or {}))


def split_store(store: SubtomogramStore, config: TrainConfig) -> dict[str, np.ndarray]:
    """Train / validation / unlabeled rows of a store for ``config``.

    Labeled rows (label >= 0) are split by :func:`~cryoal.data.datasets.stratified_split`
    with ``config.val_fraction`` and ``config.seed``; rows with label -1 are unlabeled. For
    segmentation of a store whose rows are all unlabeled (masks only), every row counts as
    labeled (its mask is the target).
    """
    labels = store.labels
    labeled = np.flatnonzero(labels >= 0)
    unlabeled = np.flatnonzero(labels < 0)
    strat = labels[labeled]
    if config.task == "segment" and labeled.size == 0:
        labeled, unlabeled = np.arange(len(store)), np.empty(0, np.int64)
        strat = np.zeros(labeled.size, np.int64)
    if labeled.size < 2:
        raise ValueError(
            f"{store.path}: {labeled.size} labeled sample(s); training needs at least 2 "
            "(labels >= 0 in the store's /labels)"
        )
    train_pos, val_pos = stratified_split(strat, config.val_fraction, config.seed)
    return {
        "train": labeled[train_pos],
        "val": labeled[val_pos],
        "unlabeled": unlabeled.astype(np.int64),
    }


def train_store(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    resume: bool = False,
    callback: TrainCallback | None = None,
    stop_on_sigusr1: bool = False,
) -> FitResult:
    """Train teacher and student on an HDF5 subtomogram store (``cryoal train DATA.h5``).

    Splits the labeled rows into train and validation (:func:`split_store`), writes the
    split as ``RUN/split.csv`` (sample id, role) and calls :func:`~cryoal.train.fit.fit`
    with ``RUN`` as its run folder (``callback`` and ``stop_on_sigusr1`` are passed on).
    """
    store = SubtomogramStore(store_path)
    parts = split_store(store, config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder; choose another --out")
    result = fit(
        config,
        store,
        parts["train"],
        val_indices=parts["val"],
        unlabeled_indices=parts["unlabeled"],
        out_dir=out,
        resume=resume,
        callback=callback,
        stop_on_sigusr1=stop_on_sigusr1,
    )
    if result.metrics.get("processes", 1) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return result  # rank 0 writes the split
    rows = [
        pd.DataFrame({"id": store.ids[idx], "role": role})
        for role, idx in parts.items()
        if idx.size
    ]
    buf = io.StringIO()
    pd.concat(rows, ignore_index=True).to_csv(buf, index=False)
    atomic_write_text(out / "split.csv", buf.getvalue())
    return result
