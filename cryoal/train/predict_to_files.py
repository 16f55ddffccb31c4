"""Prediction to files: ``cryoal predict RUN INPUT --out OUT`` as library calls.

:func:`predict_path` dispatches on the input: a subtomogram store gives per-sample
predictions of the run's teacher and student (:func:`predict_store`, HDF5 or CSV); a
tomogram gives a label map (:func:`cryoal.train.predict.segment_tomogram`).

Output formats of :func:`predict_store` (chosen by the suffix of ``OUT``):

``OUT.h5`` (everything, streamed batch by batch)::

    /ids (N,) str, /tomo_ids (N,) str, /centres_zyx (N, 3) voxels
    /<model>/probs      (N, C) float32 softmax; (N, C, T) with T MC-dropout passes  [classify]
    /<model>/pred       (N,) int64 arg-max class (of the mean over passes)
    /<model>/features   (N, F) float32 penultimate features                          [classify]
    /<model>/labels     (N, b, b, b) uint8 voxel arg-max                             [segment]
    /<model>/fractions  (N, C) float32 fraction of the box's voxels per class        [segment]
    /distance           (N,) float32 teacher–student distance (the KT score)
    attrs: task, class_names (JSON), run, store, mc_passes

``OUT.csv`` (one row per sample, for spreadsheets): ``id, tomo_id, z, y, x`` (voxels), then
per model ``<model>_class`` (name), ``<model>_confidence`` and ``<model>_p_<class>`` (classify)
or ``<model>_frac_<class>`` (segment), and ``distance``.

``<model>`` is ``teacher`` and, when the run has one, ``student``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from cryoal.io.atomic import atomic_path
from cryoal.io.store import SubtomogramStore
from cryoal.io.suffixes import MRC_SUFFIXES, STORE_SUFFIXES
from cryoal.progress import CountCallback
from cryoal.train.checkpoint import LoadedRun
from cryoal.train.losses import transfer_distance
from cryoal.train.predict import stream_outputs

_STR = h5py.string_dtype(encoding="utf-8")


def check_store_matches_run(store: SubtomogramStore, info: dict) -> None:
    """Box and voxel size of the store must equal the run's training data."""
    if int(store.box) != int(info["box"]):
        raise ValueError(
            f"{store.path}: box {store.box} but the model was trained on box {info['box']}; "
            f"extract with --box {info['box']}"
        )
    if not np.isclose(store.voxel_size_A, float(info["voxel_size_A"]), rtol=0.01):
        raise ValueError(
            f"{store.path}: voxel size {store.voxel_size_A:.4g} Å but the model was trained at "
            f"{float(info['voxel_size_A']):.4g} Å; rescale the tomograms and extract again"
        )


def predict_store(
    run: LoadedRun,
    store_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    mc_passes: int = 0,
    features: bool = True,
    amp: bool | str = "off",
    overwrite: bool = False,
    on_batch: CountCallback | None = None,
) -> Path:
    """Predict every sample of a store with the run's teacher and student; write OUT.

    Parameters
    ----------
    run
        From :func:`cryoal.train.checkpoint.load_run`.
    store_path
        Subtomogram store with the run's box and voxel size.
    out_path
        ``.h5``/``.hdf5`` or ``.csv`` (see the module docstring).
    indices
        Store rows to predict (default: all).
    batch_size, device, mc_passes, features, amp
        See :func:`cryoal.train.predict.stream_outputs`.
    overwrite
        Replace an existing output.
    on_batch
        Called with the number of samples after each batch (progress).

    Returns
    -------
    Path
        ``out_path``, written atomically.
    """
    out = Path(out_path)
    kind = out.suffix.lower()
    if kind not in (".h5", ".hdf5", ".csv"):
        raise ValueError(f"{out}: choose an output ending in .h5 (all arrays) or .csv (table)")
    store = SubtomogramStore(store_path)
    check_store_matches_run(store, run.info)
    idx = np.arange(len(store)) if indices is None else np.asarray(indices, np.int64)
    task = run.info["task"]
    names = list(run.info["class_names"])
    models = {"teacher": run.teacher} | ({"student": run.student} if run.student else {})
    cfg = run.config
    writer = _H5Writer if kind in (".h5", ".hdf5") else _CsvWriter
    with (
        atomic_path(out, overwrite=overwrite) as tmp,
        writer(
            tmp, store, idx, task, names, models, mc_passes, features and task == "classify"
        ) as w,
    ):
        w.attrs(run=str(run.run_dir.resolve()), store=str(store.path.resolve()))
        start = 0
        for batch in stream_outputs(
            models, store, idx, batch_size=batch_size, device=device,
            mc_passes=mc_passes, features=features and task == "classify", amp=amp,
        ):  # fmt: skip
            dist = None
            if "student" in batch.logits:
                d = transfer_distance(
                    batch.logits["teacher"], batch.logits["student"], task=task,
                    tau=cfg.tau, direction=cfg.kl_direction,
                )  # fmt: skip
                dist = (d.flatten(1).mean(1) if d.ndim > 1 else d).numpy()
            w.write(start, batch, dist)
            start += len(batch.indices)
            if on_batch is not None:
                on_batch(len(batch.indices))
    return out


def _mean_probs(logits: torch.Tensor, mc: int) -> torch.Tensor:
    p = torch.softmax(logits, dim=1)
    return p.mean(dim=-1) if mc else p


class _H5Writer:
    def __init__(self, path, store, idx, task, names, models, mc, features) -> None:  # noqa: ANN001
        self.f = h5py.File(path, "w")
        self.task, self.mc, self.features = task, mc, features
        n, c, b = idx.size, len(names), store.box
        f = self.f
        f.create_dataset("ids", data=np.asarray(store.ids[idx], dtype=object), dtype=_STR)
        f.create_dataset("tomo_ids", data=np.asarray(store.tomo_ids[idx], dtype=object), dtype=_STR)
        f.create_dataset("centres_zyx", data=store.centres_zyx[idx])
        f.attrs.update(task=task, class_names=json.dumps(names), mc_passes=int(mc))
        for name in models:
            g = f.create_group(name)
            g.create_dataset("pred", (n,), np.int64)
            if task == "classify":
                g.create_dataset("probs", (n, c, mc) if mc else (n, c), np.float32)
                if features:
                    nf = models[name].num_features
                    g.create_dataset("features", (n, nf), np.float32)
            else:
                g.create_dataset("labels", (n, b, b, b), np.uint8, chunks=(1, b, b, b), compression="gzip", compression_opts=1)  # fmt: skip
                g.create_dataset("fractions", (n, c), np.float32)
        if len(models) > 1:
            f.create_dataset("distance", (n,), np.float32)

    def attrs(self, **kw: str) -> None:
        self.f.attrs.update(kw)

    def write(self, start, batch, dist) -> None:  # noqa: ANN001
        sl = slice(start, start + len(batch.indices))
        for name, logits in batch.logits.items():
            g = self.f[name]
            p = _mean_probs(logits, self.mc)
            if self.task == "classify":
                g["pred"][sl] = p.argmax(dim=1).numpy()
            else:
                g["pred"][sl] = _majority(p)
            if self.task == "classify":
                g["probs"][sl] = torch.softmax(logits, dim=1).numpy()
                if self.features:
                    g["features"][sl] = batch.features[name].numpy()
            else:
                lab = p.argmax(dim=1)
                g["labels"][sl] = lab.to(torch.uint8).numpy()
                g["fractions"][sl] = _fractions(lab, p.shape[1])
        if dist is not None:
            self.f["distance"][sl] = dist

    def __enter__(self) -> _H5Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def _fractions(lab: torch.Tensor, c: int) -> np.ndarray:
    flat = lab.flatten(1)
    counts = torch.stack([(flat == k).sum(1) for k in range(c)], dim=1)
    return (counts.float() / flat.shape[1]).numpy()


def _majority(p: torch.Tensor) -> np.ndarray:
    """Segmentation: the most frequent foreground class of a box (0 if all background)."""
    frac = _fractions(p.argmax(dim=1), p.shape[1])
    fg = frac[:, 1:]
    return np.where(fg.max(1) > 0, fg.argmax(1) + 1, 0).astype(np.int64)


class _CsvWriter:
    def __init__(self, path, store, idx, task, names, models, mc, features) -> None:  # noqa: ANN001
        self.path = path
        self.store, self.idx, self.task, self.names, self.mc = store, idx, task, names, mc
        self.first = True

    def attrs(self, **kw: str) -> None:
        return None

    def write(self, start, batch, dist) -> None:  # noqa: ANN001
        rows = batch.indices
        z, y, x = self.store.centres_zyx[rows].T
        cols: dict[str, object] = {
            "id": self.store.ids[rows],
            "tomo_id": self.store.tomo_ids[rows],
            "z": z,
            "y": y,
            "x": x,
        }
        for name, logits in batch.logits.items():
            p = _mean_probs(logits, self.mc)
            if self.task == "classify":
                pn = p.numpy()
                cols[f"{name}_class"] = np.asarray(self.names)[pn.argmax(1)]
                cols[f"{name}_confidence"] = pn.max(1)
                for k, cname in enumerate(self.names):
                    cols[f"{name}_p_{cname}"] = pn[:, k]
            else:
                frac = _fractions(p.argmax(dim=1), p.shape[1])
                cols[f"{name}_class"] = np.asarray(self.names)[_majority(p)]
                cols[f"{name}_confidence"] = frac[:, 1:].max(1)
                for k, cname in enumerate(self.names):
                    cols[f"{name}_frac_{cname}"] = frac[:, k]
        if dist is not None:
            cols["distance"] = dist
        pd.DataFrame(cols).to_csv(self.fh, header=self.first, index=False, float_format="%.6g")
        self.first = False

    def __enter__(self) -> _CsvWriter:
        self.fh = open(self.path, "w", newline="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


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
    amp: bool | str = "off",
    overwrite: bool = False,
    on_batch: CountCallback | None = None,
) -> Path:
    """``cryoal predict RUN INPUT --out OUT``: dispatch on the input's kind.

    * ``INPUT.h5`` (a subtomogram store) -> per-sample predictions of teacher and student,
      written as HDF5 (``OUT.h5``) or CSV (``OUT.csv``); see
      :func:`predict_store` (``on_batch`` is called with the samples of each batch).
    * ``INPUT.mrc`` (a tomogram, segmentation runs only) -> a label map ``OUT.mrc`` with
      the input's voxel size (:func:`cryoal.train.predict.segment_tomogram`; ``on_batch``
      is called with the z-planes of each slab).
    """
    from cryoal.train.checkpoint import load_run
    from cryoal.train.predict import segment_tomogram

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
            progress=on_batch,
            class_names=run.info["class_names"],
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
        on_batch=on_batch,
    )
