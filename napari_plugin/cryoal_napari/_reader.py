"""napari readers: MRC tomograms (memory-mapped, scaled in Å) and cryoal HDF5 stores.

A reader returns napari "layer data" tuples ``(data, kwargs, layer_type)``; nothing here
imports napari, so the readers work (and are tested) without a display.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.io.mrc import open_tomogram
from cryoal.io.store import SubtomogramStore

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]

MRC_SUFFIXES = (".mrc", ".rec", ".map")
STORE_SUFFIXES = (".h5", ".hdf5")

#: z-slices around the centre used to estimate display contrast (cheap on huge memmaps).
_CONTRAST_SLAB = 8


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for ``path`` if cryoal can open it, else ``None`` (napari's contract)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    suffixes = {Path(p).suffix.lower() for p in paths}
    if suffixes <= set(MRC_SUFFIXES) or suffixes <= set(STORE_SUFFIXES):
        return read_paths
    return None


def read_paths(path: str | Sequence[str]) -> list[LayerData]:
    """Read every path into layer data tuples."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        if Path(p).suffix.lower() in STORE_SUFFIXES:
            layers.append(read_store(p))
        else:
            layers.append(read_tomogram(p))
    return layers


def display_contrast(data: np.ndarray) -> tuple[float, float]:
    """1st–99th percentile of a central z-slab: robust limits for noisy tomograms."""
    z0 = max(0, data.shape[0] // 2 - _CONTRAST_SLAB // 2)
    sample = np.asarray(data[z0 : z0 + _CONTRAST_SLAB], dtype=np.float32)
    lo, hi = np.percentile(sample, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def read_tomogram(path: str | os.PathLike) -> LayerData:
    """An MRC tomogram as an image layer, memory-mapped, scaled in Å (zyx)."""
    tomo = open_tomogram(path)
    vs = tomo.voxel_size_A
    kwargs = {
        "name": Path(path).stem,
        "scale": (vs, vs, vs),
        "translate": tomo.origin_zyx_A,
        "contrast_limits": display_contrast(tomo.data),
        "metadata": {"path": str(path), "voxel_size_A": vs, "cryoal_kind": "tomogram"},
    }
    return tomo.data, kwargs, "image"


def read_store(path: str | os.PathLike) -> LayerData:
    """A subtomogram store as a 4-D image (sample, z, y, x), read lazily from HDF5."""
    store = SubtomogramStore(path)
    data = store.lazy_subtomograms
    vs = store.voxel_size_A
    first = store.subtomograms(slice(0, min(len(store), 16)))
    lo, hi = np.percentile(first, [1.0, 99.0]) if first.size else (0.0, 1.0)
    kwargs = {
        "name": Path(path).stem,
        "scale": (1.0, vs, vs, vs),
        "contrast_limits": (float(lo), float(hi) if hi > lo else float(lo) + 1.0),
        "metadata": {
            "path": str(path),
            "voxel_size_A": vs,
            "class_names": store.class_names,
            "ids": list(store.ids),
            "labels": store.labels.tolist(),
            "cryoal_kind": "subtomogram_store",
        },
    }
    return data, kwargs, "image"
