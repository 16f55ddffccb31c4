"""Reading a coordinate file into the canonical table (zyx voxels per tomogram).

:func:`read_coords` scans the file (:mod:`cryoal.io.coords.scan`), settles its unit (the
file's, or the caller's for a CSV with plain x, y, z), gives each row its tomogram and a
stable id (the file's, or ``"<tomo_id>:<k:06d>"``), converts the positions to zyx voxels of
each tomogram (RELION pixel sizes and origin shifts; RELION 5 centres from the size RELION
states, the file's ``rlnTomoSizeX/Y/Z`` or tomograms.star (:func:`read_tomograms_star`),
else the given tomogram's) and warns about positions outside the tomogram.
:func:`read_copick_picks` does the same for a copick picks file (read with copick's data
model, :mod:`cryoal.io.coords.copick_model`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.coords.columns import _TOMO_SIZE, UNITS, Unit
from cryoal.io.coords.geometry import (
    TomogramGeometry,
    tomogram_centre_xyz_A,
    xyz_A_to_zyx_voxels,
)
from cryoal.io.coords.scan import (
    RawCoords,
    _file_format,
    _numeric,
    _star_blocks,
    _strings,
    scan_coords,
)

log = logging.getLogger(__name__)


def _make_ids(tomos: np.ndarray) -> np.ndarray:
    counters: dict[str, int] = {}
    out = np.empty(len(tomos), dtype=object)
    for i, t in enumerate(tomos):
        k = counters.get(t, 0)
        counters[t] = k + 1
        out[i] = f"{t}:{k:06d}"
    return out


def read_coords(
    path: str | os.PathLike,
    *,
    unit: Unit | None = None,
    tomo_id: str | None = None,
    voxel_size_A: float | None = None,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    coords_pixel_size_A: float | None = None,
    class_names: Sequence[str] | None = None,
    tomogram_sizes_A: Mapping[str, np.ndarray] | None = None,
    tomo_id_from: str = "--tomo-id",
) -> pd.DataFrame:
    """Read a coordinate file into the canonical table (zyx voxels per tomogram).

    Parameters
    ----------
    path
        RELION 3/4/5 ``.star``, ``.csv`` (columns x, y, z; optional tomo_id,
        class_name (or class), candidate_id), copick picks ``.json``, portal point
        ``.ndjson`` or ``.coords`` (both pixels; they name no tomogram, so ``tomo_id``
        is required).
    unit
        Unit of a CSV's x, y, z: ``"angstrom"`` or ``"pixel"``. Required for CSV (never
        guessed); for other formats it may be given only if it matches the format.
    tomo_id
        Files that name tomograms: keep only this tomogram's rows. Files that do not:
        the tomogram these rows belong to (required then).
    voxel_size_A
        Voxel size (Å) of the tomogram(s) the coordinates are for, used where
        ``tomograms`` has no entry. Needed for Å inputs and for RELION pixels whose pixel
        size differs from the tomogram's.
    tomograms
        ``tomo_id -> TomogramGeometry``; RELION 5 files need an entry for each tomogram.
    coords_pixel_size_A
        Pixel size (Å) of pixel coordinates; default: ``rlnTomoTiltSeriesPixelSize`` from
        a RELION optics table, else the tomogram's voxel size.
    class_names
        Names for RELION ``rlnClassNumber`` k (``class_names[k - 1]``); default ``str(k)``.
    tomogram_sizes_A
        ``tomo_id -> (3,)`` xyz extent (Å) of the tomograms RELION 5 centred coordinates
        refer to, from RELION's tomograms.star (:func:`read_tomograms_star`). With the
        file's own ``rlnTomoSizeX/Y/Z`` it fixes the centre; ``tomograms`` then only gives
        the voxel size, and a tomogram of another size is warned about.
    tomo_id_from
        Where the caller's user gives ``tomo_id`` (named in the messages when it is
        missing or names no rows): an option, or a manifest field.

    Returns
    -------
    pandas.DataFrame
        Columns ``candidate_id, tomo_id, z, y, x`` (+ ``class_name``), file order.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, bad format, missing unit / voxel size / tomogram size, unknown
        tomogram, duplicate ids.
    """
    raw = scan_coords(path)
    p = raw.path
    kind = _coords_kind(raw, unit)
    if coords_pixel_size_A is not None and coords_pixel_size_A <= 0:
        raise ValueError(f"{p}: coordinate pixel size {coords_pixel_size_A} Å must be > 0")
    tomos = _row_tomograms(raw, tomo_id, tomo_id_from)
    ids = raw.candidate_ids if raw.candidate_ids is not None else _make_ids(tomos)
    keep = _rows_of(raw, tomos, tomo_id, tomo_id_from)

    zyx = np.full((len(raw), 3), np.nan)
    tomograms = dict(tomograms or {})
    for t in dict.fromkeys(tomos[keep].tolist()):
        rows = np.flatnonzero(keep & (tomos == t))
        geometry = tomograms.get(t)
        target = geometry.voxel_size_A if geometry is not None else voxel_size_A
        if target is not None and (not np.isfinite(target) or target <= 0):
            raise ValueError(f"{p}: voxel size {target} Å must be > 0")
        stated = _stated_size_A(raw, rows, t, tomogram_sizes_A)
        zyx[rows] = _to_voxels(raw, kind, rows, t, geometry, target, coords_pixel_size_A, stated)
        if geometry is not None:
            _warn_outside(p, t, zyx[rows], geometry)
    return _canonical_table(raw, ids, tomos, zyx, keep, class_names)


def _coords_kind(raw: RawCoords, unit: Unit | None) -> str:
    """The unit of the file's coordinates: stated by the file, or ``unit`` for a plain CSV.

    ``"pixel"``, ``"angstrom"`` or ``"centred-angstrom"`` (RELION 5); a ``unit`` that
    contradicts the file is refused.
    """
    p = raw.path
    if unit is not None and unit not in UNITS:
        raise ValueError(f"{p}: unit {unit!r} must be one of {', '.join(UNITS)}")
    kind = raw.kind
    if kind is None:  # a CSV with plain x, y, z
        if unit is None:
            raise ValueError(
                f"{p}: the unit of x, y, z is not stated; name the columns x_A, y_A, z_A (Å) "
                "or x_px, y_px, z_px (pixels), or give the unit (--coords-unit angstrom|pixel)"
            )
        return unit
    if unit is not None and unit != ("pixel" if kind == "pixel" else "angstrom"):
        source = "its column names" if raw.format == "csv" else "the format's definition"
        raise ValueError(
            f"{p}: {raw.format} coordinates are in {kind} by {source}, not {unit}; "
            "drop the unit option (--coords-unit)"
        )
    return kind


def _row_tomograms(raw: RawCoords, tomo_id: str | None, tomo_id_from: str) -> np.ndarray:
    """``(n,)`` object array: the tomogram of each row (the file's names, else ``tomo_id``)."""
    p = raw.path
    if raw.tomo_names is None:
        if tomo_id is None:
            raise ValueError(
                f"{p}: the file does not name tomograms; give the tomogram id ({tomo_id_from})"
            )
        return np.full(len(raw), str(tomo_id), dtype=object)
    tomos = raw.tomo_names
    empty = tomos == ""
    if empty.any():
        raise ValueError(
            f"{p}: data row {int(np.flatnonzero(empty)[0]) + 1} has an empty tomogram name"
        )
    return tomos


def _rows_of(
    raw: RawCoords, tomos: np.ndarray, tomo_id: str | None, tomo_id_from: str
) -> np.ndarray:
    """``(n,)`` bool: the rows of tomogram ``tomo_id`` in a file that names tomograms (all
    rows otherwise)."""
    if tomo_id is None or raw.tomo_names is None:
        return np.ones(len(raw), dtype=bool)
    keep = tomos == str(tomo_id)
    if not keep.any():
        names = sorted(set(tomos.tolist()))
        raise ValueError(
            f"{raw.path}: no coordinates for tomogram {tomo_id!r}; the file has {names[:10]}; "
            f"pass one of these ({tomo_id_from})"
        )
    return keep


def _canonical_table(
    raw: RawCoords,
    ids: np.ndarray,
    tomos: np.ndarray,
    zyx: np.ndarray,
    keep: np.ndarray,
    class_names: Sequence[str] | None,
) -> pd.DataFrame:
    """The ``keep`` rows as ``candidate_id, tomo_id, z, y, x`` (+ ``class_name``); unique ids.

    ``ids``, ``tomos``, ``keep``: ``(n,)``; ``zyx``: ``(n, 3)`` voxels.
    """
    p = raw.path
    table = pd.DataFrame(
        {
            "candidate_id": pd.Series(ids[keep], dtype=object).map(str),
            "tomo_id": pd.Series(tomos[keep], dtype=object).map(str),
            "z": zyx[keep, 0],
            "y": zyx[keep, 1],
            "x": zyx[keep, 2],
        }
    )
    if raw.class_names is not None:
        names = raw.class_names[keep]
        if raw.format.startswith("relion") and class_names is not None:
            names = _relion_class_names(p, names, class_names)
        table["class_name"] = pd.Series(names, dtype=object).map(str)
    dup = table["candidate_id"].duplicated()
    if dup.any():
        raise ValueError(
            f"{p}: candidate id {table['candidate_id'][dup].iloc[0]!r} occurs more than once; "
            "ids must be unique (remove the id column to have cryoal number the rows)"
        )
    return table


def _relion_class_names(path: Path, numbers: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    out = np.empty(len(numbers), dtype=object)
    for i, k in enumerate(numbers):
        idx = int(k) - 1
        if not 0 <= idx < len(class_names):
            raise ValueError(
                f"{path}: rlnClassNumber {k} has no name among {len(class_names)} class names "
                f"{list(class_names)}"
            )
        out[i] = class_names[idx]
    return out


def _to_voxels(
    raw: RawCoords,
    kind: str | None,
    rows: np.ndarray,
    tomo: str,
    geometry: TomogramGeometry | None,
    target: float | None,
    coords_pixel_size_A: float | None,
    stated: tuple[np.ndarray, str] | None = None,
) -> np.ndarray:
    """``(len(rows), 3)`` zyx voxel positions in tomogram ``tomo`` (voxel size ``target``)."""
    if kind == "centred-angstrom":
        return _centred_to_voxels(raw, rows, tomo, geometry, target, stated)
    if kind == "angstrom":
        if target is None:
            raise ValueError(
                f"{raw.path}: coordinates in Å need the voxel size of tomogram {tomo!r}; give "
                "the tomogram or its voxel size (--voxel-size)"
            )
        return xyz_A_to_zyx_voxels(raw.xyz[rows], target)
    return _pixels_to_voxels(raw, rows, tomo, target, coords_pixel_size_A)


def _origins(raw: RawCoords, rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """RELION's per-row origin shifts of ``rows``: ``(n, 3)`` xyz in Å and in pixels (or None)."""
    origin_a = raw.origin_xyz_A[rows] if raw.origin_xyz_A is not None else None
    origin_px = raw.origin_xyz_px[rows] if raw.origin_xyz_px is not None else None
    return origin_a, origin_px


def _centred_to_voxels(
    raw: RawCoords,
    rows: np.ndarray,
    tomo: str,
    geometry: TomogramGeometry | None,
    target: float | None,
    stated: tuple[np.ndarray, str] | None,
) -> np.ndarray:
    """RELION 5 coordinates (Å from the tomogram's centre) as zyx voxels."""
    p = raw.path
    origin_a, origin_px = _origins(raw, rows)
    centre = _relion5_centre(raw, tomo, geometry, stated)
    voxel = geometry.voxel_size_A if geometry is not None else target
    if voxel is None:
        raise ValueError(
            f"{p}: RELION 5 centred coordinates of tomogram {tomo!r} need its voxel size; "
            f"give that tomogram (a file {tomo}.mrc) or its voxel size (--voxel-size)"
        )
    position = raw.xyz[rows] + centre
    if origin_a is not None:
        position = position - origin_a
    if origin_px is not None:
        ps = raw.pixel_size_A[rows] if raw.pixel_size_A is not None else None
        if ps is None:
            raise ValueError(f"{p}: rlnOriginX/Y/Z in pixels need rlnTomoTiltSeriesPixelSize")
        position = position - origin_px * ps[:, None]
    return xyz_A_to_zyx_voxels(position, voxel)


def _pixels_to_voxels(
    raw: RawCoords,
    rows: np.ndarray,
    tomo: str,
    target: float | None,
    coords_pixel_size_A: float | None,
) -> np.ndarray:
    """Pixel coordinates (RELION 3/4 or CSV ``pixel``) as zyx voxels of size ``target``."""
    p = raw.path
    xyz = raw.xyz[rows]
    origin_a, origin_px = _origins(raw, rows)
    if coords_pixel_size_A is not None:
        ps = np.full(len(rows), float(coords_pixel_size_A))
    elif raw.pixel_size_A is not None:
        ps = raw.pixel_size_A[rows]
    else:
        ps = None
    if ps is None:
        if target is None:
            if origin_a is not None and np.any(origin_a != 0):
                raise ValueError(
                    f"{p}: rlnOriginX/Y/ZAngst shifts need the pixel size; pass the tomogram's "
                    "voxel size (--voxel-size A)"
                )
            log.info("%s: no pixel size known; taking the pixel coordinates as voxels", p)
            shifted = xyz - origin_px if origin_px is not None else xyz
            return shifted[:, ::-1].copy()
        ps = np.full(len(rows), float(target))
    if target is None:
        raise ValueError(
            f"{p}: the coordinates are pixels of {np.unique(ps)[:3].tolist()} Å "
            f"(rlnTomoTiltSeriesPixelSize); give tomogram {tomo!r} or its voxel size "
            "(--voxel-size) so they can be scaled to its voxels"
        )
    position = xyz * ps[:, None]
    if origin_px is not None:
        position = position - origin_px * ps[:, None]
    if origin_a is not None:
        position = position - origin_a
    return xyz_A_to_zyx_voxels(position, target)


def _stated_size_A(
    raw: RawCoords,
    rows: np.ndarray,
    tomo: str,
    tomogram_sizes_A: Mapping[str, np.ndarray] | None,
) -> tuple[np.ndarray, str] | None:
    """The xyz extent (Å) RELION states for ``rows`` (``(n, 3)`` or ``(3,)``) and its source."""
    if raw.tomo_size_px is not None and raw.pixel_size_A is not None:
        return raw.tomo_size_px[rows] * raw.pixel_size_A[rows][:, None], "rlnTomoSizeX/Y/Z"
    if tomogram_sizes_A is not None and tomo in tomogram_sizes_A:
        return np.asarray(tomogram_sizes_A[tomo], dtype=np.float64), "tomograms.star"
    return None


def _relion5_centre(
    raw: RawCoords,
    tomo: str,
    geometry: TomogramGeometry | None,
    stated: tuple[np.ndarray, str] | None,
) -> np.ndarray:
    """RELION 5's tomogram centre (corner-origin Å, xyz): ``(n, 3)`` or ``(3,)``.

    The size RELION states (the file's own ``rlnTomoSizeX/Y/Z`` times
    ``rlnTomoTiltSeriesPixelSize``, else tomograms.star) wins over the given tomogram,
    which may be another reconstruction of a different size; a disagreement is warned
    about, naming both.
    """
    p = raw.path
    if stated is not None:
        size_A, source = stated
        size_A = np.atleast_2d(size_A)
        if geometry is not None:
            given_A = np.asarray(geometry.shape_zyx[::-1], dtype=np.float64) * geometry.voxel_size_A
            # a binned reconstruction rounds its size by less than one of its voxels; a
            # tomogram a whole voxel (or more) off is another one
            if np.abs(size_A - given_A).max() > 0.999 * geometry.voxel_size_A:
                file_size = " x ".join(f"{float(v):g}" for v in size_A[0])
                tomo_size = " x ".join(f"{float(v):g}" for v in given_A)
                warnings.warn(
                    f"{p}: the picks of tomogram {tomo!r} were made in a tomogram of "
                    f"{file_size} Å (x, y, z; {source}), the given tomogram is "
                    f"{tomo_size} Å; centres are taken from {source}: check that the "
                    "picks belong to this tomogram",
                    stacklevel=4,
                )
        return size_A / 2.0
    if geometry is None:
        raise ValueError(
            f"{p}: RELION 5 centred coordinates of tomogram {tomo!r} need its size, which the "
            f"file does not state (rlnTomoSizeX/Y/Z); give that tomogram (a file {tomo}.mrc, "
            f"or one added with id {tomo!r})"
        )
    return tomogram_centre_xyz_A(geometry)


def read_tomograms_star(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """RELION 5 tomograms.star -> ``tomo_id -> (3,)`` xyz extent in Å.

    The extent is ``rlnTomoSizeX/Y/Z`` (unbinned tilt-series pixels) times
    ``rlnTomoTiltSeriesPixelSize``, the size whose half RELION takes as the centre of
    centred coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tomograms STAR file not found; check the path")
    blocks = _star_blocks(path)
    needed = ["rlnTomoName", *_TOMO_SIZE, "rlnTomoTiltSeriesPixelSize"]
    for df in blocks.values():
        if set(needed) <= set(df.columns):
            sizes = _numeric(df, [*_TOMO_SIZE], path) * _numeric(
                df, ["rlnTomoTiltSeriesPixelSize"], path
            )
            if not (sizes > 0).all():
                raise ValueError(f"{path}: tomogram sizes and pixel sizes must be > 0")
            names = _strings(df["rlnTomoName"])
            return {str(n): sizes[i] for i, n in enumerate(names)}
    raise ValueError(
        f"{path}: not a RELION 5 tomograms.star: expected a block with columns {needed}"
    )


def _warn_outside(path: Path, tomo: str, zyx: np.ndarray, geometry: TomogramGeometry) -> None:
    shape = np.asarray(geometry.shape_zyx, dtype=np.float64)
    outside = np.any((zyx < -0.5) | (zyx >= shape - 0.5), axis=1)
    if outside.any():
        warnings.warn(
            f"{path}: {int(outside.sum())} of {len(zyx)} coordinates lie outside tomogram "
            f"{tomo!r} (z, y, x) = {geometry.shape_zyx}; check the unit and voxel size",
            stacklevel=3,
        )


def read_copick_picks(
    path: str | os.PathLike,
    *,
    voxel_size_A: float | None = None,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    tomo_id: str | None = None,
) -> pd.DataFrame:
    """Read a copick picks JSON (Å) into the canonical table, with copick's data model.

    Positions are copick's particle centres (``full_positions``: location plus the
    transformation's translation). ``class_name`` is the file's ``pickable_object_name``;
    ``tomo_id`` its ``run_name`` (or the ``tomo_id`` argument when the file has none).
    Needs the ``copick`` extra (a one-line ``ValueError`` naming it otherwise).
    """
    if _file_format(Path(path)) != "copick":
        raise ValueError(f"{path}: copick picks files end in .json")
    return read_coords(path, voxel_size_A=voxel_size_A, tomograms=tomograms, tomo_id=tomo_id)
