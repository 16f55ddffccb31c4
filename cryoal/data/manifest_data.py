"""A fetched dataset's tomograms and picks as cryoal tables, and its labelled picks as a store.

The picks files of a manifest are read with :func:`cryoal.io.coords.read_coords` in the
convention the manifest states (RELION 3/4 pixels, RELION 5 centred Å, copick Å, CSV Å or
voxels, CZ cryoET Data Portal ndjson voxels, ``.coords`` voxels), converted to zyx voxels
of their tomogram (pixel coordinates taken at another voxel size, given as the picks
file's ``voxel_size_A``, are scaled), and their class labels mapped onto the manifest's
class map (a class's ``name`` or one of its ``aliases``). Tomograms keep their MRC header's
voxel size (unless their file entry gives one); a header that disagrees with the
manifest's ``voxel_size_A`` is warned about (:func:`tomogram_geometries`).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.coords import TomogramGeometry, read_coords
from cryoal.io.manifest import FileEntry, Manifest
from cryoal.io.mrc import open_tomogram
from cryoal.progress import CountCallback

logger = logging.getLogger(__name__)

_UNIT = {"csv-angstrom": "angstrom", "csv-pixel": "pixel"}
#: Relative difference between a header's and a manifest's voxel size that is warned about
#: (the tolerance of cryoal.project.project.VOXEL_SIZE_RTOL).
VOXEL_SIZE_RTOL = 1e-3


def _fetch_hint(manifest: Manifest, data_dir: Path) -> str:
    return f"fetch it with 'cryoal data fetch {manifest.fetch_argument()} --to {data_dir}'"


def tomogram_files(manifest: Manifest, data_dir: str | os.PathLike) -> dict[str, Path]:
    """``tomo_id -> path`` of every tomogram file, in manifest order.

    Raises
    ------
    ValueError
        The dataset has no tomograms (a template set, for example).
    FileNotFoundError
        A tomogram file is not in ``data_dir``.
    """
    data_dir = Path(data_dir)
    tomos = manifest.files_of("tomogram")
    if not tomos:
        raise ValueError(
            f"dataset {manifest.name!r} has no tomograms (its files are "
            f"{sorted({f.kind for f in manifest.files})}); pick a dataset with tomograms and picks"
        )
    out: dict[str, Path] = {}
    for f in tomos:
        path = data_dir / f.path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: tomogram of {manifest.name} not found; "
                                    f"{_fetch_hint(manifest, data_dir)}")  # fmt: skip
        out[str(f.tomo_id)] = path
    return out


def _where(manifest: Manifest) -> str:
    """The manifest as messages name it: its file, else its name."""
    return str(manifest.file) if manifest.file is not None else f"manifest {manifest.name!r}"


def tomogram_geometries(
    manifest: Manifest, data_dir: str | os.PathLike
) -> dict[str, TomogramGeometry]:
    """``tomo_id -> TomogramGeometry`` from the MRC headers (a tomogram file's
    ``voxel_size_A`` overrides its header).

    The manifest's top-level ``voxel_size_A`` never overrides a header: where a header
    disagrees with it (relative difference over 0.1 %), the header's is used and a
    ``UserWarning`` (a ``cryoal: warning:`` line) names the file, both values and the fix.
    """
    out: dict[str, TomogramGeometry] = {}
    by_id = {f.tomo_id: f for f in manifest.files_of("tomogram")}
    for tomo_id, path in tomogram_files(manifest, data_dir).items():
        override = by_id[tomo_id].voxel_size_A
        with open_tomogram(path, voxel_size_A=override) as tomo:
            z, y, x = (int(n) for n in tomo.shape)
            out[tomo_id] = TomogramGeometry(shape_zyx=(z, y, x), voxel_size_A=tomo.voxel_size_A)
        stated = manifest.voxel_size_A
        if override is None and stated is not None:
            _warn_voxel_size(manifest, path, tomo_id, out[tomo_id].voxel_size_A, stated)
    return out


def _warn_voxel_size(
    manifest: Manifest, path: Path, tomo_id: str, header_A: float, stated_A: float
) -> None:
    if not np.isclose(header_A, stated_A, rtol=VOXEL_SIZE_RTOL):
        warnings.warn(
            f"{path}: the MRC header says {header_A:.6g} Å per voxel, {_where(manifest)} says "
            f"voxel_size_A {stated_A:.6g}; using the header's; if the header is wrong, give "
            f"this tomogram's file entry (tomo_id {tomo_id}) voxel_size_A: {stated_A:g} in the "
            "manifest, else correct the manifest's voxel_size_A",
            stacklevel=3,
        )


def _read_one(
    manifest: Manifest, entry: FileEntry, path: Path, geometries: dict[str, TomogramGeometry]
) -> pd.DataFrame:
    convention = str(entry.convention)
    voxel = (
        geometries[entry.tomo_id].voxel_size_A
        if entry.tomo_id in geometries
        else manifest.voxel_size_A
    )
    table = read_coords(
        path,
        unit=_UNIT.get(convention),  # type: ignore[arg-type]
        tomo_id=entry.tomo_id,
        voxel_size_A=voxel,
        tomograms=geometries,
        # pixel coordinates taken at another voxel size (a portal annotation's spacing)
        coords_pixel_size_A=entry.voxel_size_A,
        class_names=manifest.class_names if convention.startswith("relion") else None,
        tomo_id_from=f"tomo_id of {entry.path} in {_where(manifest)}",
    )
    if entry.class_name is not None:
        table["class_name"] = entry.class_name
    if "class_name" in table.columns:
        labels = table["class_name"].astype(str)
        mapping = {label: manifest.class_for(label) for label in labels.unique()}
        unknown = sorted(k for k, v in mapping.items() if v is None)
        if unknown:
            raise ValueError(
                f"{path}: class {unknown[0]!r} is not in the class map of dataset "
                f"{manifest.name!r} ({manifest.class_names}); add it to the manifest's classes "
                "(as a name or an alias)"
            )
        table["class_name"] = labels.map(mapping)
    table["source_file"] = entry.path
    return table


def read_picks(
    manifest: Manifest,
    data_dir: str | os.PathLike,
    *,
    geometries: dict[str, TomogramGeometry] | None = None,
) -> pd.DataFrame:
    """Every picks file of the dataset as one canonical table (zyx voxels).

    Returns
    -------
    pandas.DataFrame
        ``candidate_id, tomo_id, z, y, x`` (voxels of each tomogram), ``class_name`` (a
        manifest class, or missing where the file names no class) and ``source_file``.
        Candidate ids are the files' own or ``<tomo_id>:<k>``, unique over all files.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing picks file, or a class the class map does not know.
    """
    data_dir = Path(data_dir)
    geometries = geometries if geometries is not None else tomogram_geometries(manifest, data_dir)
    tables = []
    for entry in manifest.files_of("picks"):
        path = data_dir / entry.path
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: picks file of {manifest.name} not found; {_fetch_hint(manifest, data_dir)}"
            )
        tables.append(_read_one(manifest, entry, path, geometries))
    if not tables:
        raise ValueError(f"dataset {manifest.name!r} lists no picks files; nothing to import")
    table = pd.concat(tables, ignore_index=True)
    if table["candidate_id"].duplicated().any():
        # per-object files (copick) number their rows from 0 each: renumber per tomogram
        k = table.groupby("tomo_id").cumcount().to_numpy()
        table["candidate_id"] = [f"{t}:{i:06d}" for t, i in zip(table["tomo_id"], k, strict=True)]
    return table


def extract_labelled_store(
    manifest: Manifest,
    data_dir: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    box: int,
    progress: CountCallback | None = None,
    dedupe_px: float = 1.0,
) -> Path:
    """Cut subtomograms at the dataset's labelled picks into an HDF5 store (for the benchmark).

    Picks that repeat an earlier pick of the same tomogram (closer than ``dedupe_px`` voxels,
    e.g. the same particles in a STAR and a CSV file) are kept once. Labels are the manifest's
    class ids; boxes at the tomogram edge are padded.

    Raises
    ------
    ValueError
        The dataset has no labelled picks.
    """
    from cryoal.data.extract import extract_to_store

    data_dir = Path(data_dir)
    geometries = tomogram_geometries(manifest, data_dir)
    table = read_picks(manifest, data_dir, geometries=geometries)
    if "class_name" not in table.columns or table["class_name"].isna().all():
        raise ValueError(
            f"dataset {manifest.name!r}: its picks carry no classes; the benchmark needs labelled "
            "picks (give the picks files a class_name in the manifest)"
        )
    table = table[table["class_name"].notna()].reset_index(drop=True)
    keep = np.ones(len(table), dtype=bool)
    for _, rows in table.groupby("tomo_id").indices.items():
        pos = table.loc[rows, ["z", "y", "x"]].to_numpy(np.float64)
        for i in range(1, len(rows)):
            d = np.linalg.norm(pos[:i][keep[rows[:i]]] - pos[i], axis=1)
            if d.size and d.min() < dedupe_px:
                keep[rows[i]] = False
    if not keep.all():
        logger.info("%s: %d repeated picks kept once", manifest.name, int((~keep).sum()))
    table = table[keep].reset_index(drop=True)
    ids = {name: i for i, name in enumerate(manifest.class_names)}
    labels = table["class_name"].map(ids).to_numpy(np.int64)
    return extract_to_store(
        tomogram_files(manifest, data_dir),
        table.drop(columns=["source_file"]),
        out_h5,
        box,
        class_names=manifest.class_names,
        labels=labels,
        overwrite=True,
        progress=progress,
    )


def benchmark_data(
    dataset: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    box: int,
    progress: CountCallback | None = None,
) -> dict[str, str]:
    """The ``data`` settings of ``cryoal benchmark --manifest DATASET``.

    A dataset with tomograms and labelled picks: its subtomograms are cut (once) into
    ``OUT/data/<name>_box<box>.h5`` and the benchmark runs on that store (``{"store": ...}``).
    A template set (only ``template`` files): the benchmark simulates from its folder
    (``{"templates": ...}``).

    Raises
    ------
    FileNotFoundError
        The dataset (or a file of it) is not fetched.
    ValueError
        Neither templates nor labelled picks.
    """
    from cryoal.data.fetch import default_data_dir
    from cryoal.io.manifest import find_manifest

    manifest, _ = find_manifest(dataset)
    folder = Path(data_dir) if data_dir is not None else default_data_dir(manifest.name)
    kinds = {f.kind for f in manifest.files}
    if "tomogram" not in kinds and "template" in kinds:
        templates = manifest.files_of("template")
        missing = [f.path for f in templates if not (folder / f.path).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder / missing[0]}: template of {manifest.name} not found; "
                f"{_fetch_hint(manifest, folder)}"
            )
        parents = {str(Path(f.path).parent) for f in templates}
        if len(parents) != 1:
            raise ValueError(
                f"dataset {manifest.name!r}: its templates lie in several folders {sorted(parents)}; "
                "the benchmark simulates from one folder"
            )
        return {"templates": str(folder / parents.pop())}
    out = Path(out_dir) / "data" / f"{manifest.name}_box{box}.h5"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        extract_labelled_store(manifest, folder, out, box=box, progress=progress)
    return {"store": str(out)}
