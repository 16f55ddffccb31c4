"""What every cryoal layer shares: Å units, z/y/x axis labels, points coloured by class."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.project.layout import is_project

LayerData = tuple[Any, dict[str, Any], str]

#: napari world units of every cryoal layer: Å (pint's "angstrom").
UNITS = ("angstrom", "angstrom", "angstrom")
#: Axis labels of a (z, y, x) layer, shown on napari's sliders.
AXIS_LABELS = ("z", "y", "x")
#: Colour of candidates without a class (unlabelled, or a class the colours do not name).
UNLABELLED_COLOUR = "#b0b0b0"
#: Colours of the special labels.
SPECIAL_COLOURS = {"unsure": "#ffd700", "not-a-particle": "#000000"}
#: Class colours when no project names them: matplotlib's tab10, the order in which
#: ``cryoal project init`` assigns colours to classes.
TAB10 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
#: Folders searched upwards for ``project.yaml``.
_PROJECT_SEARCH_DEPTH = 4


def find_project_root(path: str | Path) -> Path | None:
    """The nearest folder at or above ``path``'s folder holding ``project.yaml``."""
    folder = Path(path).resolve().parent
    for _ in range(_PROJECT_SEARCH_DEPTH):
        if is_project(folder):
            return folder
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def hex_to_rgba(colour: str) -> tuple[float, float, float, float]:
    """``"#1f77b4"`` -> RGBA in 0..1."""
    c = colour.lstrip("#")
    return (int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, 1.0)


def class_colours(labels: Sequence[str], colours: Mapping[str, str]) -> np.ndarray:
    """``(n, 4)`` RGBA per point: the class's colour, a special label's, else grey."""
    table = {**SPECIAL_COLOURS, **dict(colours)}
    return np.array(
        [hex_to_rgba(table.get(str(lab), UNLABELLED_COLOUR)) for lab in labels], dtype=np.float32
    ).reshape(-1, 4)


def points_layer(
    zyx_A: np.ndarray,
    features: Mapping[str, Sequence[Any]],
    *,
    name: str,
    label_column: str | None,
    colours: Mapping[str, str],
    size_A: float,
    metadata: dict[str, Any],
    voxel_size_A: float | None = None,
) -> LayerData:
    """A Points layer at ``(n, 3)`` zyx positions in Å, rings coloured by
    ``features[label_column]``.

    With ``voxel_size_A`` the data are voxels at the scale of a tomogram layer of that
    voxel size (:mod:`cryoal_napari._tomogram`), so the points share the image's world and
    the z slider still steps one slice; without it, Å at scale 1. Points are drawn as rings
    (transparent face, coloured border) so the particle under them stays visible;
    ``size_A`` is the diameter in Å. ``metadata["cryoal"]["radius_A"]`` asks the viewer
    hook for a slice thickness of that radius.
    """
    zyx_A = np.asarray(zyx_A, dtype=np.float64).reshape(-1, 3)
    unit = float(voxel_size_A) if voxel_size_A else 1.0
    labels = list(features[label_column]) if label_column else [""] * len(zyx_A)
    kwargs: dict[str, Any] = {
        "name": name,
        "features": {k: list(v) for k, v in features.items()},
        "scale": (unit, unit, unit),
        "size": float(size_A) / unit,
        "face_color": "transparent",
        "border_color": class_colours(labels, colours) if len(zyx_A) else "white",
        "border_width": 0.08,
        "border_width_is_relative": True,
        # napari >= 0.9 draws points within the dims' thick slice; cryoal's viewer hook
        # (cryoal_napari._viewer) widens it to the point radius, so a particle's ring shows
        # on every plane through it, sized as the sphere's cross-section there.
        "projection_mode": "rescale_spherical",
        "units": UNITS,
        "axis_labels": AXIS_LABELS,
        "metadata": {"cryoal": {**metadata, "radius_A": float(size_A) / 2}},
    }
    return zyx_A / unit, kwargs, "points"


@contextlib.contextmanager
def refreshes_held(*layers: Any) -> Iterator[None]:
    """Hold back the layers' own refreshes while a block changes several of their
    properties (each of napari's setters refreshes the layer on its own); the caller
    refreshes them once after. napari's ``Layer._block_refresh`` (napari 0.5 to 0.9); a
    layer without it refreshes as usual."""
    with contextlib.ExitStack() as stack:
        for layer in layers:
            hold = getattr(layer, "_block_refresh", None)
            if hold is not None:
                stack.enter_context(hold())
        yield
