"""What ``cryoal train STORE.h5`` and ``cryoal predict RUN INPUT`` do, as library calls.

The CLI commands are thin shells over :func:`train_store` and :func:`predict_path`; a
project (``cryoal train PROJECT_DIR``) goes through :mod:`cryoal.project` instead, which
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
from cryoal.train.fit import FitResult, fit

log = logging.getLogger(__name__)

#: Input suffixes that ``cryoal predict`` treats as MRC tomograms.
MRC_SUFFIXES = (".mrc", ".rec", ".map", ".st")
#: Input suffixes that ``cryoal predict`` treats as subtomogram stores.
STORE_SUFFIXES = (".h5", ".hdf5")


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
    progress: bool = True,
) -> FitResult:
    """Train teacher and student on an HDF5 subtomogram store (``cryoal train DATA.h5``).

    Splits the labeled rows into train and validation (:func:`split_store`), writes the
    split as ``RUN/split.csv`` (sample id, role) and calls :func:`~cryoal.train.fit.fit`
    with ``RUN`` as its run folder.
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
        progress=progress,
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


def predict_path(
    run_dir: str | os.PathLike,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    mc_passes: int = 0,
    features: bool = True,
    overlap: float = 0.25,
    amp: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """``cryoal predict RUN INPUT --out OUT``: dispatch on the input's kind.

    * ``INPUT.h5`` (a subtomogram store) -> per-sample predictions of teacher and student,
      written as HDF5 (``OUT.h5``) or CSV (``OUT.csv``); see
      :func:`cryoal.train.predict_io.predict_store`.
    * ``INPUT.mrc`` (a tomogram, segmentation runs only) -> a label map ``OUT.mrc`` with
      the input's voxel size (:func:`cryoal.train.predict.segment_tomogram`).
    """
    from cryoal.train.checkpoint import load_run
    from cryoal.train.predict import segment_tomogram
    from cryoal.train.predict_io import predict_store

    src = Path(input_path)
    suffix = src.suffix.lower()
    if not src.exists():
        raise FileNotFoundError(f"{src}: input not found; pass a store (.h5) or tomogram (.mrc)")
    if suffix not in MRC_SUFFIXES + STORE_SUFFIXES:
        raise ValueError(
            f"{src}: unknown input type {suffix!r}; pass a subtomogram store "
            f"({', '.join(STORE_SUFFIXES)}) or a tomogram ({', '.join(MRC_SUFFIXES)})"
        )
    run = load_run(run_dir, device=device)
    if suffix in MRC_SUFFIXES:
        if run.info["task"] != "segment":
            raise ValueError(
                f"{run_dir}: a classification run labels subtomograms, not tomograms; cut "
                "subtomograms first ('cryoal extract TOMO COORDS OUT.h5') and predict on OUT.h5"
            )
        if Path(out_path).suffix.lower() not in (".mrc",):
            raise ValueError(f"{out_path}: a segmented tomogram is written as .mrc; use OUT.mrc")
        return segment_tomogram(
            run.teacher,
            src,
            out_path,
            roi_size=int(run.info["box"]),
            expected_voxel_size_A=float(run.info["voxel_size_A"]),
            overlap=overlap,
            sw_batch_size=max(1, batch_size // 8),
            device=device,
            amp=amp,
            overwrite=overwrite,
            progress=progress,
        )
    return predict_store(
        run,
        src,
        out_path,
        batch_size=batch_size,
        device=device,
        mc_passes=mc_passes,
        features=features,
        amp=amp,
        overwrite=overwrite,
        progress=progress,
    )
