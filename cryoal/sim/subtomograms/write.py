"""Simulate a labelled subtomogram dataset and write it to the HDF5 store.

:func:`simulate_subtomograms` checks the settings, loads the templates, generates the
samples of the dataset (or of one shard) in order with
:func:`cryoal.sim.subtomograms.batches.iter_batches`, and writes them atomically with
their labels, per-sample ground truth and (if asked) masks; the store's ``sim_*``
attributes record the simulation settings, the seed and the sample index range. What each sample is: see
:mod:`cryoal.sim.subtomograms.simulator`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryoal.io.atomic import check_can_write
from cryoal.io.store import StoreWriter
from cryoal.progress import CountCallback
from cryoal.sim.imaging import ImagingParams, float_pair
from cryoal.sim.streams import check_seed
from cryoal.sim.subtomograms.batches import iter_batches
from cryoal.sim.subtomograms.shards import parse_shard, shard_range
from cryoal.sim.subtomograms.simulator import (
    MASK_CONVENTION,
    SIM_VERSION,
    Simulator,
    SubtomogramParams,
)
from cryoal.sim.templates import Template, check_fits_box, load_templates

log = logging.getLogger(__name__)


def simulate_subtomograms(
    out_h5: str | os.PathLike,
    *,
    templates: str | os.PathLike | Sequence[Template] | None = None,
    n_classes: int | None = None,
    per_class: int = 100,
    box: int = 32,
    voxel_size_A: float = 10.0,
    snr: float | None = 0.05,
    tilt_range: tuple[float, float] = (-60.0, 60.0),
    seed: int = 0,
    ctf: bool = True,
    defocus_range_um: tuple[float, float] = (2.0, 5.0),
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_flip: bool = False,
    wedge: bool = True,
    path: str = "fourier",
    tilt_step_deg: float = 3.0,
    max_shift_voxels: float = 0.5,
    crowding: int = 0,
    normalise: bool = True,
    masks: bool = False,
    halves: bool = False,
    start_index: int = 0,
    shard: str | tuple[int, int] | None = None,
    workers: int = 1,
    batch_size: int = 64,
    dtype: str = "float32",
    compression_level: int = 0,
    preview: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: CountCallback | None = None,
) -> Path:
    """Simulate a labelled subtomogram dataset and write it as an HDF5 store.

    The dataset holds samples ``start_index .. start_index + n_classes * per_class - 1``
    (or the ``shard``'s contiguous part of them); see the module docstring for what each
    sample is. Arguments not listed below are :class:`SubtomogramParams` /
    :class:`cryoal.sim.imaging.ImagingParams` fields.

    Parameters
    ----------
    out_h5
        Output store (written atomically).
    templates
        None (generated phantoms), a folder of maps/models, or Template objects.
    n_classes
        Number of classes (phantoms: default 10; folder: the first N files).
    per_class
        Samples per class.
    halves
        Also store each sample's two half reconstructions (``/halves``, see
        :class:`~cryoal.sim.subtomograms.simulator.Simulator`), the noise pairs of
        self-supervised pretraining.
    start_index
        First sample index (a test set from the same seed: a disjoint index range).
    shard
        ``"K/N"``: write only the K-th of N contiguous parts; :func:`merge_shards`
        joins them into the same store the unsharded run writes.
    workers
        Generator processes (the calling process writes).
    batch_size
        Samples per generated batch (results do not depend on it).
    dtype, compression_level
        Storage of the subtomograms (``float32``/``float16``; gzip level 0-9). Noisy
        float32 compresses by only ~14 % at more CPU cost than simulating, hence 0.
    preview
        Also write a PNG montage of one sample per class (see :mod:`cryoal.sim.preview`).
    progress
        Called with the number of samples written after every batch.

    Returns
    -------
    Path
        ``out_h5``.
    """
    out_h5 = Path(out_h5)
    check_can_write(out_h5, overwrite)
    if preview is not None:
        check_can_write(preview, True)
    seed = check_seed(seed)
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per-class count {per_class} must be a positive integer")
    if int(start_index) != start_index or start_index < 0:
        raise ValueError(f"start index {start_index} must be a non-negative integer")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers {workers} must be a positive integer")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be a positive integer")
    shard_kn = parse_shard(shard)
    imaging = ImagingParams(
        ctf=ctf,
        defocus_range_um=float_pair(defocus_range_um),
        voltage_kV=voltage_kV,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_flip=phase_flip,
        wedge=wedge,
        tilt_range_deg=float_pair(tilt_range),
        tilt_step_deg=tilt_step_deg,
        path=path,
    )
    params = SubtomogramParams(
        box=int(box),
        voxel_size_A=float(voxel_size_A),
        snr=snr,
        imaging=imaging,
        max_shift_voxels=max_shift_voxels,
        crowding=int(crowding),
        normalise=normalise,
    )
    params.check()
    tmpl = load_templates(templates, params.voxel_size_A, n_classes=n_classes, seed=seed)
    check_fits_box(tmpl, params.box)
    sim = Simulator(tmpl, params, seed)
    total = sim.n_classes * int(per_class)
    lo, hi = shard_range(int(start_index), total, shard_kn)
    source = (
        "phantoms"
        if templates is None
        else (str(templates) if isinstance(templates, (str, os.PathLike)) else "objects")
    )
    attrs: dict[str, str | int | float | bool] = {
        "sim_version": SIM_VERSION,
        "sim_seed": seed,
        "sim_snr": float("inf") if snr is None else float(snr),
        "sim_path": imaging.path,
        "sim_ctf": bool(ctf),
        "sim_defocus_min_um": float(imaging.defocus_range_um[0]),
        "sim_defocus_max_um": float(imaging.defocus_range_um[1]),
        "sim_voltage_kV": float(voltage_kV),
        "sim_cs_mm": float(cs_mm),
        "sim_amplitude_contrast": float(amplitude_contrast),
        "sim_phase_flip": bool(phase_flip),
        "sim_wedge": bool(wedge),
        "sim_tilt_min_deg": float(imaging.tilt_range_deg[0]),
        "sim_tilt_max_deg": float(imaging.tilt_range_deg[1]),
        "sim_tilt_step_deg": float(tilt_step_deg),
        "sim_max_shift_voxels": float(max_shift_voxels),
        "sim_crowding": int(crowding),
        "sim_normalise": bool(normalise),
        "sim_templates": source,
        "sim_index_start": int(lo),
        "sim_index_stop": int(hi),
        "sim_dataset_start": int(start_index),
        "sim_dataset_stop": int(start_index) + total,
    }
    if masks:
        attrs["sim_mask_convention"] = MASK_CONVENTION
    if halves:
        attrs["sim_halves"] = "signal + noise +/- a second noise draw of the same scale"
    with StoreWriter(
        out_h5,
        params.box,
        params.voxel_size_A,
        sim.class_names,
        dtype=dtype,
        with_masks=masks,
        with_halves=halves,
        extra_attrs=attrs,
        compression_level=compression_level,
        overwrite=overwrite,
    ) as writer:
        batches = iter_batches(
            sim, lo, hi, batch_size=int(batch_size), masks=masks, halves=halves,
            workers=int(workers),
        )  # fmt: skip
        # closing(): on Ctrl-C or an error the worker pool stops now, not at garbage
        # collection (which may come after the interpreter waits for the workers).
        with contextlib.closing(batches):
            for batch in batches:
                writer.append(
                    batch.data,
                    batch.ids,
                    labels=batch.labels,
                    masks=batch.masks,
                    meta=batch.meta,
                    halves=batch.halves,
                )
                if progress is not None:
                    progress(len(batch.ids))
    log.info(
        "wrote %d simulated subtomograms (%s) to %s", hi - lo, ", ".join(sim.class_names), out_h5
    )
    if preview is not None:
        from cryoal.sim.preview import write_preview

        first = np.arange(lo, min(lo + sim.n_classes, hi))
        write_preview(preview, sim, first)
    return out_h5
