"""A cryoal subtomogram store (HDF5) as a 4-D image: (sample, z, y, x), read lazily."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.io.store import SubtomogramStore
from cryoal_napari._layers import LayerData
from cryoal_napari._tomogram import contrast_from_sample

#: Samples read to estimate the contrast limits.
_CONTRAST_SAMPLES = 16


def sample_caption(sample_id: str, label: int, class_names: list[str]) -> str:
    """``"TS_01:000012 · ribosome"`` (``unlabelled`` for -1)."""
    name = class_names[label] if 0 <= label < len(class_names) else "unlabelled"
    return f"{sample_id} · {name}"


def read_store(path: str | os.PathLike) -> LayerData:
    """A subtomogram store as an image layer ``(sample, z, y, x)``, scaled in Å.

    The HDF5 dataset is handed to napari as is (one sample per chunk, so moving the
    sample slider reads one sample). ``metadata["cryoal"]`` holds ``ids``, ``labels``
    (class index, -1 = unlabelled), ``class_names`` and ``captions`` (``"id · class"``
    per sample), which the plugin shows as the viewer's text overlay for the current
    sample (:mod:`cryoal_napari._viewer`).
    """
    store = SubtomogramStore(path)
    vs = store.voxel_size_A
    first = store.subtomograms(slice(0, min(len(store), _CONTRAST_SAMPLES)))
    limits, slider = contrast_from_sample(first.ravel()) if first.size else ((0.0, 1.0),) * 2
    labels = [int(v) for v in store.labels]
    ids = [str(i) for i in store.ids]
    meta: dict[str, Any] = {
        "kind": "subtomogram_store",
        "path": str(Path(path).resolve()),
        "voxel_size_A": vs,
        "class_names": store.class_names,
        "ids": ids,
        "labels": labels,
        "tomo_ids": [str(t) for t in store.tomo_ids],
        "captions": [
            sample_caption(i, lab, store.class_names) for i, lab in zip(ids, labels, strict=True)
        ],
        "contrast_limits_range": list(slider),
    }
    counts = np.bincount(
        np.asarray(labels)[np.asarray(labels) >= 0], minlength=len(store.class_names)
    )
    kwargs = {
        "name": f"{Path(path).stem} ({len(store)} samples)",
        "scale": (1.0, vs, vs, vs),
        "units": ("pixel", "angstrom", "angstrom", "angstrom"),
        "axis_labels": ("sample", "z", "y", "x"),
        "contrast_limits": limits,
        "metadata": {
            "cryoal": meta,
            "class_counts": dict(zip(store.class_names, counts.tolist(), strict=True)),
        },
    }
    return store.lazy_subtomograms, kwargs, "image"
