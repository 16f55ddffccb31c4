"""The segmentation benchmark's data: crops around the particles of simulated tomograms.

:func:`simulate_crops` simulates ``data.tomograms.count`` tomograms
(:func:`simulate_one`, the one call of the simulator), cuts a ``data.box`` crop around
every particle and the matching crop of the tomogram's ``labels.mrc`` as its mask, and
writes them into one store with ``/masks`` (0 background, class index + 1, 255 outside
the tomogram). A crop's label is the class of the particle at its centre; neighbours that
reach into the box are in its mask, so masks hold several objects.
:func:`tomogram_split` holds the crops of the last ``data.tomograms.test`` tomograms out
as the test set, so no test voxel was ever seen through a pool crop, and records the split
in ``split.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.benchmark.config import DataConfig
from cryoal.io.atomic import atomic_write_text
from cryoal.io.store import MASK_IGNORE, SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.sim.membranes import MembraneParams

#: The split's record beside the store.
SPLIT_FILE = "split.json"


def tomo_id(index: int) -> str:
    """Id of simulated tomogram ``index`` (its crops are ``<tomo id>:<particle, 6 digits>``)."""
    return f"tomo_{index:02d}"


def tomogram_seed(seed: int, index: int) -> int:
    """Simulation seed of tomogram ``index`` of a dataset with seed ``seed`` (independent
    streams: ``SeedSequence(seed, spawn_key=(index,))``)."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1)[0])


def membrane_params(settings: dict[str, Any]) -> MembraneParams:
    """``MembraneParams(**settings)`` (:mod:`cryoal.sim.membranes`), checked.

    Raises
    ------
    ValueError
        A field ``MembraneParams`` does not take, or a value out of range.
    """
    try:
        params = MembraneParams(**settings)
        params.check()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"data.tomograms.membranes {settings!r}: {exc}") from None
    return params


def simulate_one(d: DataConfig, folder: Path, index: int) -> Path:
    """Simulate tomogram ``index`` of ``d.tomograms`` into ``folder`` (replacing what is
    there), with membranes when the configuration sets them. Returns ``folder``."""
    from cryoal.sim.tomograms import simulate_tomogram

    t = d.tomograms
    if t is None:
        raise ValueError("data.tomograms is not set; nothing to simulate")
    simulate_tomogram(
        folder,
        shape_zyx=t.shape_zyx,
        n_particles=t.particles,
        templates=d.templates,
        n_classes=d.n_classes,
        voxel_size_A=d.voxel_size_A,
        snr=d.snr,
        seed=tomogram_seed(d.seed, index),
        tilt_range=d.tilt_range,
        min_gap_voxels=t.min_gap_voxels,
        tomo_id=tomo_id(index),
        membranes=None if t.membranes is None else membrane_params(t.membranes),
        overwrite=True,
    )
    return folder


def crop_masks(labels_mrc: Path, centres_zyx: np.ndarray, box: int) -> np.ndarray:
    """Crops of a label volume around ``centres_zyx`` ``(n, 3)`` (voxels), as
    ``(n, box, box, box)`` uint8 masks; voxels outside the volume are 255 (not annotated).

    Raises
    ------
    ValueError
        The label volume holds a value that is not a class + 1 (0..254).
    """
    from cryoal.data.extract import extract_subtomograms
    from cryoal.io.mrc import open_tomogram

    with open_tomogram(labels_mrc) as t:
        cut, _ = extract_subtomograms(t.data, centres_zyx, box, edge="pad", pad_value=MASK_IGNORE)
    if cut.size and (cut.min() < 0 or cut.max() > MASK_IGNORE):
        raise ValueError(f"{labels_mrc}: label values must be 0..{MASK_IGNORE - 1}")
    return np.rint(cut).astype(np.uint8)


def simulate_crops(d: DataConfig, path: Path, progress: CountCallback | None = None) -> Path:
    """Simulate the tomograms of ``d.tomograms`` into ``path.parent / "tomograms"`` and
    extract a ``d.box`` crop with its mask around every particle into the store ``path``.

    Crops are normalised to zero mean and unit standard deviation, padded with the
    tomogram's mean where they cross its edge (their masks 255 there).

    Raises
    ------
    ValueError
        A label value beyond the simulation's classes.
    """
    from cryoal.data.extract import extract_to_store

    t = d.tomograms
    if t is None:
        raise ValueError("data.tomograms is not set; nothing to simulate")
    tables, masks, tomograms = [], [], {}
    names: list[str] | None = None
    for k in range(t.count):
        folder = simulate_one(d, path.parent / "tomograms" / tomo_id(k), k)
        settings = json.loads((folder / "simulation.json").read_text())
        # every value of labels.mrc, membranes included when simulated (value - 1 = class)
        names = settings.get("label_names", settings["class_names"])
        picks = pd.read_csv(folder / "ground_truth.csv")
        picks.insert(1, "tomo_id", tomo_id(k))
        centres = picks[["z", "y", "x"]].to_numpy(np.float64)
        mask = crop_masks(folder / "labels.mrc", centres, d.box)
        top = int(mask[mask != MASK_IGNORE].max(initial=0))
        if top > len(names):
            raise ValueError(
                f"{folder / 'labels.mrc'}: label {top} but the simulation names {len(names)} "
                "classes (simulation.json label_names or class_names); labels are class + 1"
            )
        tables.append(picks)
        masks.append(mask)
        tomograms[tomo_id(k)] = folder / "tomogram.mrc"
        if progress is not None:
            progress(len(picks))
    coords = pd.concat(tables, ignore_index=True)
    return extract_to_store(
        tomograms,
        coords,
        path,
        d.box,
        edge="pad",
        normalise=True,
        class_names=names or [],
        masks=np.concatenate(masks),
        overwrite=True,
        voxel_size_A=d.voxel_size_A,
    )


def tomogram_split(
    store: SubtomogramStore, n_test: int, record: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, test)`` store rows: the crops of the last ``n_test`` tomograms (by id) are
    the test set, the others the pool; written to ``record`` (JSON: the tomograms and crop
    counts of each side) when given.

    Raises
    ------
    ValueError
        Fewer than ``n_test + 1`` tomograms in the store.
    """
    tomos = np.asarray(store.tomo_ids).astype(str)
    names = sorted(set(tomos.tolist()))
    if len(names) <= n_test:
        raise ValueError(
            f"{store.path}: {len(names)} tomograms, so holding out {n_test} leaves no pool; "
            "lower data.tomograms.test or raise data.tomograms.count"
        )
    test_tomos = names[len(names) - n_test :]
    is_test = np.isin(tomos, test_tomos)
    pool, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if record is not None:
        split = {
            "by": "tomogram",
            "pool_tomograms": names[: len(names) - n_test],
            "test_tomograms": test_tomos,
            "pool_crops": int(pool.size),
            "test_crops": int(test.size),
        }
        atomic_write_text(record, json.dumps(split, indent=1) + "\n", overwrite=True)
    return pool, test
