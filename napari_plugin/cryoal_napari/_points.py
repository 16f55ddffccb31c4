"""Picks and candidate tables (STAR, CSV) as napari Points layers in Å.

Positions go through :func:`cryoal.io.coords.read_coords` (every RELION convention, origin
shifts, RELION 5 centring) into zyx voxels of a known voxel size, then to Å
(``index * voxel_size_A``, corner origin): the same world as the tomogram layers of
:mod:`cryoal_napari._tomogram`. The voxel size comes from the project the file lies in
(``project.yaml`` in the file's folder or up to three folders above), else from a
tomogram named like the file's ``rlnTomoName`` beside a STAR file (``TS_01.mrc``; its
size also places RELION 5 centred coordinates), else from the file (RELION's
``rlnTomoTiltSeriesPixelSize``).

CSV files: ``x_A, y_A, z_A`` columns are Å and ``x_px, y_px, z_px`` voxels of the project
the file lies in (the unit-bearing names cryoal writes); a project's ``candidates.csv`` /
``suggestions.csv`` hold ``z, y, x`` voxels of the project's voxel size. Any other CSV
with bare ``x, y, z`` columns is refused with a message: its unit is unknown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.io.coords import TomogramGeometry, read_coords, scan_coords
from cryoal.project.layout import CANDIDATES_NAME, CONFIG_NAME, SUGGESTIONS_NAME
from cryoal_napari._layers import TAB10, LayerData, find_project_root, points_layer

#: Diameter (Å) of points when no project gives a box size.
DEFAULT_POINT_SIZE_A = 150.0
#: Project tables whose ``z, y, x`` are voxels of the project.
PROJECT_TABLES = (CANDIDATES_NAME, SUGGESTIONS_NAME)


class _Context:
    """What a picks file's positions and colours depend on: voxel size, tomograms, classes."""

    def __init__(self, path: Path) -> None:
        self.root = find_project_root(path)
        self.voxel_size_A: float | None = None
        self.tomograms: dict[str, TomogramGeometry] = {}
        self.colours: dict[str, str] = {}
        self.box: int | None = None
        self.class_names: list[str] = []
        if self.root is not None:
            from cryoal.project.config import load_config

            config = load_config(self.root / CONFIG_NAME)
            self.voxel_size_A = config.voxel_size_A
            self.tomograms = {
                t.id: TomogramGeometry(t.shape_zyx, t.voxel_size_A) for t in config.tomograms
            }
            self.colours = {c.name: c.colour for c in config.classes}
            self.class_names = config.class_names
            self.box = config.box

    def point_size_A(self) -> float:
        if self.box is not None and self.voxel_size_A is not None:
            return float(self.box * self.voxel_size_A)
        return DEFAULT_POINT_SIZE_A


def _colours_for(names: list[str], known: Mapping[str, str]) -> dict[str, str]:
    extra = sorted(set(names) - set(known) - {""})
    return {**{n: TAB10[i % len(TAB10)] for i, n in enumerate(extra)}, **known}


def _table_in_A(path: Path, ctx: _Context) -> tuple[pd.DataFrame, np.ndarray, float | None]:
    """``(table, (n, 3) zyx Å, voxel size used)`` for a picks file."""
    if path.suffix.lower() == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        if {"x_A", "y_A", "z_A"} <= set(header):
            table = pd.read_csv(path, dtype={"candidate_id": str, "tomo_id": str})
            return table, table[["z_A", "y_A", "x_A"]].to_numpy(np.float64), ctx.voxel_size_A
        if path.name in PROJECT_TABLES and {"z", "y", "x"} <= set(header):
            if ctx.voxel_size_A is None:
                raise ValueError(
                    f"{path}: z, y, x are voxels of a project, but no project.yaml with a voxel "
                    "size was found above it; open the file inside its project folder"
                )
            table = pd.read_csv(path, dtype={"candidate_id": str, "tomo_id": str})
            zyx = table[["z", "y", "x"]].to_numpy(np.float64) * ctx.voxel_size_A
            return table, zyx, ctx.voxel_size_A
        if {"x_px", "y_px", "z_px"} <= set(header):
            if ctx.voxel_size_A is None:
                raise ValueError(
                    f"{path}: x_px, y_px, z_px are voxels, but no project.yaml with a voxel "
                    "size was found above it; open the file inside its project folder, or "
                    "convert it to Å with 'cryoal convert-coords'"
                )
            names_tomo = "tomo_id" in header
            table = read_coords(
                path, voxel_size_A=ctx.voxel_size_A, tomo_id=None if names_tomo else path.stem
            )
            zyx = table[["z", "y", "x"]].to_numpy(np.float64) * ctx.voxel_size_A
            return table, zyx, ctx.voxel_size_A
        raise ValueError(
            f"{path}: the x, y, z columns carry no unit; rename them x_A, y_A, z_A (Å) or "
            "x_px, y_px, z_px (voxels), as cryoal writes them"
        )
    raw = scan_coords(path)
    geometries = dict(ctx.tomograms)
    # a file that names no tomogram is taken as the picks of the one named like the file
    named = set(raw.tomo_names.tolist()) if raw.tomo_names is not None else {path.stem}
    for name in sorted(named):
        if name not in geometries and (found := sibling_geometry(path.parent, name)):
            geometries[name] = found
    vs = ctx.voxel_size_A
    sizes = {g.voxel_size_A for g in geometries.values()}
    if vs is None and len(sizes) == 1:
        vs = sizes.pop()
    if (
        vs is None
        and raw.pixel_size_A is not None
        and np.allclose(raw.pixel_size_A, raw.pixel_size_A[0])
    ):
        vs = float(raw.pixel_size_A[0])
    if vs is None and raw.kind == "pixel":
        raise ValueError(
            f"{path}: pixel coordinates with no pixel size (no rlnTomoTiltSeriesPixelSize, no "
            "tomogram <rlnTomoName>.mrc beside the file, no project.yaml above it); open the "
            "file from its project folder, put the tomogram beside it, or convert it to Å "
            "with 'cryoal convert-coords FILE.star picks.csv --tomogram TS.mrc'"
        )
    kwargs: dict[str, Any] = {"voxel_size_A": vs if vs is not None else 1.0}
    if geometries:
        kwargs["tomograms"] = geometries
    if raw.tomo_names is None:
        kwargs["tomo_id"] = path.stem
    if raw.format.startswith("relion") and ctx.class_names:
        kwargs["class_names"] = ctx.class_names
    table = read_coords(path, **kwargs)
    per_row = np.array(
        [
            geometries[t].voxel_size_A if t in geometries else kwargs["voxel_size_A"]
            for t in table["tomo_id"]
        ]
    )
    return table, table[["z", "y", "x"]].to_numpy(np.float64) * per_row[:, None], vs


def sibling_geometry(folder: Path, tomo_id: str) -> TomogramGeometry | None:
    """Shape and voxel size of ``<tomo_id>.mrc`` / ``.rec`` / ``.map`` in ``folder``, if any."""
    from cryoal.io.mrc import open_tomogram
    from cryoal_napari._reader import TOMOGRAM_SUFFIXES

    for suffix in TOMOGRAM_SUFFIXES:
        candidate = folder / f"{tomo_id}{suffix}"
        if candidate.is_file():
            with open_tomogram(candidate) as tomo:
                return TomogramGeometry(tomo.shape, tomo.voxel_size_A)
    return None


def read_picks(path: str | os.PathLike) -> list[LayerData]:
    """A STAR or CSV picks file as Points layers in Å, one per tomogram it names.

    Features: ``candidate_id``, ``tomo_id``, ``class_name`` ("" when the file has none)
    and, where the file has them, ``rank`` and ``score``. Points are coloured by class
    (the project's colours when the file lies in a project).

    Raises
    ------
    ValueError
        Unreadable file, or pixel coordinates whose pixel size cannot be found.
    """
    path = Path(path)
    ctx = _Context(path)
    table, zyx_A, vs = _table_in_A(path, ctx)
    n = len(table)
    ids = (
        table["candidate_id"].astype(str).tolist()
        if "candidate_id" in table
        else [f"{path.stem}:{k:06d}" for k in range(n)]
    )
    tomos = table["tomo_id"].astype(str).tolist() if "tomo_id" in table else [path.stem] * n
    if "class_name" in table:
        classes = table["class_name"].fillna("").astype(str).tolist()
    else:
        classes = [""] * n
    colours = _colours_for(classes, ctx.colours)
    layers = []
    for tomo in dict.fromkeys(tomos) or [path.stem]:
        rows = [i for i, t in enumerate(tomos) if t == tomo]
        features: dict[str, list[Any]] = {
            "candidate_id": [ids[i] for i in rows],
            "tomo_id": [tomos[i] for i in rows],
            "class_name": [classes[i] for i in rows],
        }
        for extra in ("rank", "score"):
            if extra in table:
                features[extra] = table[extra].to_numpy()[rows].tolist()
        several = len(set(tomos)) > 1
        layers.append(
            points_layer(
                zyx_A[rows],
                features,
                name=f"{path.stem} {tomo}" if several else path.stem,
                label_column="class_name",
                colours=colours,
                size_A=ctx.point_size_A(),
                voxel_size_A=vs,
                metadata={
                    "kind": "picks",
                    "path": str(path.resolve()),
                    "tomo_id": tomo,
                    "voxel_size_A": vs,
                    "class_colours": colours,
                },
            )
        )
    return layers
