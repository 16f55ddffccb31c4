"""MRC tomograms and label volumes as napari layers, scaled in Å, in bounded memory.

Positions: cryoal places voxel ``i`` at ``i * voxel_size_A`` Å (corner origin, see
:mod:`cryoal.io.coords`) and does not apply the MRC header origin. The layers here do the
same (``translate`` is 0), so picks converted by cryoal land on the voxels they name; the
header origin is kept in the layer metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.io.mrc import open_tomogram
from cryoal.io.volume import PlaneWindow
from cryoal.project.layout import CONFIG_NAME
from cryoal_napari._layers import (
    AXIS_LABELS,
    TAB10,
    UNITS,
    UNLABELLED_COLOUR,
    LayerData,
    find_project_root,
)
from cryoal_napari._multiscale import pyramid

#: Tomograms larger than this open as a multiscale (binned) image.
MULTISCALE_BYTES = 256 * 2**20
#: Integer volumes with at most this many distinct values (in a sample) open as labels.
MAX_LABEL_VALUES = 64
#: z-planes read to estimate contrast limits.
CONTRAST_PLANES = 16
#: Voxels kept from those planes (a seeded random subset).
CONTRAST_VOXELS = 2**20
#: Percentiles of the sample used as contrast limits.
CONTRAST_PERCENTILES = (0.5, 99.5)


def sample_voxels(data: np.ndarray, seed: int = 0) -> np.ndarray:
    """A bounded, seeded random sample of a ``(z, y, x)`` volume's voxels, ``(n,)``.

    Reads at most :data:`CONTRAST_PLANES` evenly spaced z-planes and keeps up to
    :data:`CONTRAST_VOXELS` random voxels of them; the planes are unmapped afterwards, so a
    memory-mapped tomogram of any size costs a few planes of memory.
    """
    rng = np.random.default_rng(seed)
    nz = data.shape[0]
    planes = np.unique(np.linspace(0, nz - 1, min(nz, CONTRAST_PLANES)).round().astype(int))
    per_plane = max(1, CONTRAST_VOXELS // len(planes))
    window = PlaneWindow(data)
    parts = []
    for z in planes:
        plane = np.asarray(data[z]).ravel()
        if plane.size > per_plane:
            plane = plane[rng.choice(plane.size, per_plane, replace=False)]
        parts.append(np.array(plane))
    window.release_all()
    return np.concatenate(parts)


def contrast_from_sample(sample: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Contrast limits (robust percentiles) and a wider slider range from a voxel sample.

    Returns
    -------
    limits
        :data:`CONTRAST_PERCENTILES` of the finite sample values.
    slider_range
        The sample's min and max, widened by half their span on each side (the sample
        misses the rarest voxels), so the limits can be moved well past the defaults.
    """
    values = np.asarray(sample, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0), (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(values, CONTRAST_PERCENTILES))
    vmin, vmax = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = vmin, vmax if vmax > vmin else vmin + 1.0
    span = max(vmax - vmin, hi - lo)
    return (lo, hi), (min(lo, vmin - span / 2), max(hi, vmax + span / 2))


def looks_like_labels(data: np.ndarray, sample: np.ndarray) -> bool:
    """An integer volume whose sample has few distinct values (e.g. ``labels.mrc``)."""
    if data.dtype.kind not in "iu":
        return False
    values = np.unique(sample)
    return len(values) <= MAX_LABEL_VALUES and values.min() >= 0


def label_classes(path: str | os.PathLike) -> tuple[list[str], dict[str, str]]:
    """Class names and colours for a label volume (value ``k`` = class ``k - 1``).

    From the file's header (``cryoal predict`` and ``cryoal simulate tomogram`` name the
    values there: :func:`cryoal.io.mrc.read_class_names`), else ``simulation.json`` beside
    the file (its ``label_names``, membranes included, or ``class_names``), else the
    ``project.yaml`` of a project the file lies in; colours from that project, else tab10 in
    class order. Empty when none is found.
    """
    from cryoal.io.mrc import read_class_names

    path = Path(path)
    names: list[str] = read_class_names(path)[1:]
    colours: dict[str, str] = {}
    settings = path.parent / "simulation.json"
    if not names and settings.is_file():
        try:
            found = json.loads(settings.read_text())
            names = [str(n) for n in found.get("label_names", found.get("class_names", []))]
        except (OSError, ValueError, AttributeError):
            names = []
    root = find_project_root(path)
    if root is not None:
        from cryoal.project.config import load_config

        config = load_config(root / CONFIG_NAME)
        names = names or config.class_names
        colours = {c.name: c.colour for c in config.classes}
    return names, {n: colours.get(n, TAB10[i % len(TAB10)]) for i, n in enumerate(names)}


def _labels_kwargs(path: str | os.PathLike, values: np.ndarray) -> dict[str, Any]:
    """Labels colours (value ``k`` in the colour of class ``k - 1``) and class features."""
    names, colours = label_classes(path)
    top = max(int(values.max()) if values.size else 0, len(names))
    colormap: dict[int | None, str] = {0: "transparent", None: UNLABELLED_COLOUR}
    for k in range(1, top + 1):
        name = names[k - 1] if k - 1 < len(names) else None
        colormap[k] = colours[name] if name is not None else TAB10[(k - 1) % len(TAB10)]
    kwargs: dict[str, Any] = {"colormap": colormap}
    if names:
        kwargs["features"] = {
            "index": list(range(len(names) + 1)),
            "class_name": ["background", *names],
        }
    return kwargs


def read_tomogram(path: str | os.PathLike, multiscale_bytes: int | None = None) -> LayerData:
    """An MRC tomogram (or label volume) as a layer in Å, memory-mapped.

    Parameters
    ----------
    path
        ``.mrc`` / ``.rec`` / ``.map`` file.
    multiscale_bytes
        Files whose data are larger than this open as a multiscale image (the memory map
        plus lazily binned levels, see :mod:`cryoal_napari._multiscale`); default
        :data:`MULTISCALE_BYTES`.

    Returns
    -------
    (data, kwargs, layer_type)
        ``"image"``, or ``"labels"`` for an integer volume with few distinct values,
        coloured and named by class (see :func:`label_classes`).
        ``kwargs`` carry ``scale`` (voxel size, Å), ``units`` (Å), ``axis_labels``
        (z, y, x), ``translate`` 0 (the header origin is in ``metadata``), contrast limits
        and ``metadata["cryoal"]``.
    """
    tomo = open_tomogram(path)
    data = tomo.data
    vs = tomo.voxel_size_A
    sample = sample_voxels(data)
    is_labels = looks_like_labels(data, sample)
    threshold = MULTISCALE_BYTES if multiscale_bytes is None else multiscale_bytes
    large = data.nbytes > threshold
    layer_data: Any = pyramid(data, reduce="nearest" if is_labels else "mean") if large else data
    if isinstance(layer_data, list) and len(layer_data) == 1:
        layer_data = data
    multiscale = isinstance(layer_data, list)
    cryoal_meta: dict[str, Any] = {
        "kind": "labels" if is_labels else "tomogram",
        "path": str(Path(path).resolve()),
        "voxel_size_A": vs,
        "shape_zyx": list(tomo.shape),
        "header_origin_zyx_A": list(tomo.origin_zyx_A),
    }
    kwargs: dict[str, Any] = {
        "name": Path(path).stem,
        "scale": (vs, vs, vs),
        "translate": (0.0, 0.0, 0.0),
        "units": UNITS,
        "axis_labels": AXIS_LABELS,
        "metadata": {"cryoal": cryoal_meta},
    }
    if multiscale:
        kwargs["multiscale"] = True
        cryoal_meta["bin_factors"] = [1] + [level.factor for level in layer_data[1:]]
    if is_labels:
        kwargs.update(_labels_kwargs(path, np.unique(sample)))
        cryoal_meta["label_convention"] = "0 = background, class index + 1"
        return layer_data, kwargs, "labels"
    limits, slider = contrast_from_sample(sample)
    kwargs["contrast_limits"] = limits
    cryoal_meta["contrast_limits_range"] = list(slider)
    return layer_data, kwargs, "image"
