"""napari readers (npe2 ``get_reader`` contract): which cryoal reader opens a path.

A reader returns napari "layer data" tuples ``(data, kwargs, layer_type)``; nothing here
imports napari, so the readers work (and are tested) without a display.

* ``.mrc`` / ``.rec`` / ``.map``: a tomogram (or a label volume) in Å,
  :mod:`cryoal_napari._tomogram`;
* ``.h5`` / ``.hdf5``: a subtomogram store, :mod:`cryoal_napari._store`;
* ``.star``, and ``.csv`` whose header names ``x_A, y_A, z_A``, ``x_px, y_px, z_px`` or ``x, y, z``: picks or
  candidates as points in Å, :mod:`cryoal_napari._points`;
* a folder holding ``project.yaml``: the project, :mod:`cryoal_napari._project`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cryoal.io.suffixes import STORE_SUFFIXES
from cryoal.project.layout import is_project
from cryoal_napari._layers import LayerData
from cryoal_napari._viewer import install_on_current_viewer

ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]

#: Tomogram suffixes the reader claims (napari.yaml's filename_patterns list the same).
TOMOGRAM_SUFFIXES = (".mrc", ".rec", ".map")


def _kind(path: str | os.PathLike) -> str | None:
    p = Path(path)
    if is_project(p):
        return "project"
    suffix = p.suffix.lower()
    if suffix in TOMOGRAM_SUFFIXES:
        return "tomogram"
    if suffix in STORE_SUFFIXES:
        return "store"
    if suffix == ".star":
        return "picks"
    if suffix == ".csv" and _csv_has_coordinates(p):
        return "picks"
    return None


def _csv_has_coordinates(path: Path) -> bool:
    """Whether a CSV's header names x, y, z (project voxels), x_A, y_A, z_A or x_px, y_px, z_px.

    A CSV that cannot be read is left to the reader, whose error names the problem.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = {c.strip() for c in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError):
        return True
    return any({f"x{u}", f"y{u}", f"z{u}"} <= header for u in ("", "_A", "_px"))


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for ``path`` if cryoal can open it, else ``None`` (napari's contract)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or any(_kind(p) is None for p in paths):
        return None
    return read_paths


def read_paths(path: str | Sequence[str]) -> list[LayerData]:
    """Read every path into layer data tuples.

    Each kind's module is imported when first needed, so opening a tomogram does not
    load pandas, starfile or h5py into the viewer's process.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    install_on_current_viewer()
    layers: list[LayerData] = []
    for p in paths:
        kind = _kind(p)
        if kind == "project":
            from cryoal_napari._project import read_project

            layers.extend(read_project(p))
        elif kind == "store":
            from cryoal_napari._store import read_store

            layers.append(read_store(p))
        elif kind == "picks":
            from cryoal_napari._points import read_picks

            layers.extend(read_picks(p))
        elif kind == "tomogram":
            from cryoal_napari._tomogram import read_tomogram

            layers.append(read_tomogram(p))
        else:
            raise ValueError(
                f"{p}: cryoal opens .mrc/.rec/.map tomograms, .h5 stores, .star/.csv picks "
                "and project folders"
            )
    return layers
