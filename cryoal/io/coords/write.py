"""Writing the canonical table: CSV, RELION 4/5 particle STAR and copick picks JSON (through
copick's data model).

Positions go out as xyz Å (or pixels) through :mod:`cryoal.io.coords.geometry`; a CSV
names its unit in its column names (``x_A, y_A, z_A`` or ``x_px, y_px, z_px``) so that
:func:`cryoal.io.coords.read_coords` reads it back without being told. Every file is written
atomically (:mod:`cryoal.io.atomic`). :func:`validate_table` checks a table first;
:func:`check_copick_name` checks copick object names, user and session ids as copick does.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import starfile

from cryoal.io.atomic import atomic_path, atomic_write_text, check_can_write
from cryoal.io.coords.columns import (
    _TOMO_SIZE,
    _XYZ_CENTRED,
    _XYZ_PIXEL,
    COLUMNS,
    CSV_COLUMNS,
    UNITS,
    Unit,
)
from cryoal.io.coords.copick_model import import_copick, picks_file_model, picks_file_text
from cryoal.io.coords.geometry import (
    TomogramGeometry,
    tomogram_centre_xyz_A,
    zyx_voxels_to_xyz_A,
)
from cryoal.io.names import check_tomo_id

log = logging.getLogger(__name__)


def validate_table(df: pd.DataFrame, what: str = "coordinate table") -> None:
    """Check that ``df`` is a canonical coordinate table."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected {list(COLUMNS)}")
    values = df[["z", "y", "x"]].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{what} has non-finite z, y, x values")
    if df["candidate_id"].astype(str).duplicated().any():
        raise ValueError(f"{what} has duplicate candidate ids")


def _voxel_sizes(
    df: pd.DataFrame,
    voxel_size_A: float | None,
    tomograms: Mapping[str, TomogramGeometry] | None,
    path: str | os.PathLike,
) -> np.ndarray:
    tomograms = tomograms or {}
    out = np.empty(len(df))
    for i, t in enumerate(df["tomo_id"].astype(str)):
        g = tomograms.get(t)
        vs = g.voxel_size_A if g is not None else voxel_size_A
        if vs is None or not np.isfinite(vs) or vs <= 0:
            raise ValueError(
                f"{path}: voxel size of tomogram {t!r} unknown or not positive ({vs}); give "
                "the tomogram or its voxel size (--voxel-size)"
            )
        out[i] = vs
    return out


def write_csv(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    unit: Unit = "angstrom",
    voxel_size_A: float | None,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a CSV with columns ``candidate_id, tomo_id, x_A, y_A, z_A[, class_name]``.

    ``unit="angstrom"`` writes corner-origin Å (``index * voxel_size_A``) as ``x_A, y_A,
    z_A``; ``"pixel"`` the voxel indices as ``x_px, y_px, z_px``. The column names carry
    the unit, so :func:`read_coords` reads the file back without being told. Written
    atomically.
    """
    validate_table(df)
    if unit not in UNITS:
        raise ValueError(f"{path}: unit {unit!r} must be one of {', '.join(UNITS)}")
    zyx = df[["z", "y", "x"]].to_numpy(dtype=np.float64)
    if unit == "angstrom":
        xyz = zyx_voxels_to_xyz_A(zyx, _voxel_sizes(df, voxel_size_A, tomograms, path))
    else:
        xyz = zyx[:, ::-1]
    cx, cy, cz = CSV_COLUMNS[unit]
    out = pd.DataFrame(
        {
            "candidate_id": df["candidate_id"].astype(str).to_numpy(),
            "tomo_id": df["tomo_id"].astype(str).to_numpy(),
            cx: xyz[:, 0],
            cy: xyz[:, 1],
            cz: xyz[:, 2],
        }
    )
    if "class_name" in df.columns:
        out["class_name"] = df["class_name"].astype(str).to_numpy()
    atomic_write_text(path, out.to_csv(index=False, float_format="%.6f"), overwrite=overwrite)
    return Path(path)


def write_star(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    voxel_size_A: float | None,
    version: Literal[4, 5] = 4,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    coords_pixel_size_A: float | None = None,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a RELION particle STAR file (``optics`` and ``particles`` blocks).

    Parameters
    ----------
    version
        4: ``rlnCoordinateX/Y/Z`` in pixels of ``coords_pixel_size_A`` (default: the
        tomogram voxel size), stated as ``rlnTomoTiltSeriesPixelSize``. 5:
        ``rlnCenteredCoordinateX/Y/ZAngst`` (needs ``tomograms`` for each tomogram's size),
        with each tomogram's size as ``rlnTomoSizeX/Y/Z`` in pixels of
        ``rlnTomoTiltSeriesPixelSize`` (as RELION 5's tomograms.star has it; written when
        the sizes are whole pixels), so a reader needs no tomogram to find the centre.
        Pass the unbinned tilt-series pixel size as ``coords_pixel_size_A`` (RELION's
        ``rlnTomoTiltSeriesPixelSize``; tomogram binning = voxel size / it) when RELION
        will use the file with the tilt series.
    class_names
        Written as ``rlnClassNumber`` = index + 1 of ``class_name`` (default: sorted names).

    ``candidate_id`` goes to ``rlnTomoParticleName`` and ``tomo_id`` to ``rlnTomoName``.
    Written atomically.
    """
    validate_table(df)
    if version not in (4, 5):
        raise ValueError(f"{path}: RELION STAR version {version} must be 4 or 5")
    if coords_pixel_size_A is not None and coords_pixel_size_A <= 0:
        raise ValueError(f"{path}: coordinate pixel size {coords_pixel_size_A} Å must be > 0")
    vs = _voxel_sizes(df, voxel_size_A, tomograms, path)
    zyx = df[["z", "y", "x"]].to_numpy(dtype=np.float64)
    position = zyx_voxels_to_xyz_A(zyx, vs)
    ps = np.full(len(df), float(coords_pixel_size_A)) if coords_pixel_size_A else vs
    groups = {v: i + 1 for i, v in enumerate(dict.fromkeys(ps.tolist()))}
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": list(groups.values()),
            "rlnOpticsGroupName": [f"opticsGroup{g}" for g in groups.values()],
            "rlnTomoTiltSeriesPixelSize": list(groups.keys()),
        }
    )
    part = pd.DataFrame(
        {
            "rlnTomoName": df["tomo_id"].astype(str).to_numpy(),
            "rlnTomoParticleName": df["candidate_id"].astype(str).to_numpy(),
        }
    )
    if version == 4:
        pixels = position / ps[:, None]
        for k, col in enumerate(_XYZ_PIXEL):
            part[col] = pixels[:, k]
    else:
        centred = np.empty_like(position)
        size_px = np.empty_like(position)
        tomograms = tomograms or {}
        for t in dict.fromkeys(df["tomo_id"].astype(str)):
            if t not in tomograms:
                raise ValueError(
                    f"{path}: RELION 5 centred coordinates need the size of tomogram {t!r}; "
                    f"give that tomogram (a file {t}.mrc, or one added with id {t!r})"
                )
            rows = (df["tomo_id"].astype(str) == t).to_numpy()
            g = tomograms[t]
            centred[rows] = position[rows] - tomogram_centre_xyz_A(g)
            shape_xyz = np.asarray(g.shape_zyx[::-1], dtype=np.float64)
            size_px[rows] = shape_xyz * g.voxel_size_A / ps[rows][:, None]
        for k, col in enumerate(_XYZ_CENTRED):
            part[col] = centred[:, k]
        whole = np.rint(size_px)
        if np.allclose(size_px, whole, rtol=0, atol=1e-6):
            for k, col in enumerate(_TOMO_SIZE):
                part[col] = whole[:, k].astype(np.int64)
        else:
            log.info(
                "%s: tomogram sizes are not whole tilt-series pixels; rlnTomoSize not written", path
            )
    part["rlnOpticsGroup"] = [groups[v] for v in ps.tolist()]
    if "class_name" in df.columns:
        names = df["class_name"].astype(str)
        order = list(class_names) if class_names is not None else sorted(set(names))
        lookup = {n: i + 1 for i, n in enumerate(order)}
        unknown = sorted(set(names) - set(lookup))
        if unknown:
            raise ValueError(f"{path}: class names {unknown} not in class_names {order}")
        part["rlnClassNumber"] = [lookup[n] for n in names]
    with atomic_path(path, overwrite=overwrite) as tmp:
        starfile.write({"optics": optics, "particles": part}, tmp, float_format="%.6f")
    return Path(path)


#: Characters copick refuses in object names, user and session ids (``copick.util.escape.
#: sanitize_name``): path separators and Windows-reserved characters, control characters,
#: white space, and ``_`` (the separator of ``<user>_<session>_<object>.json``).
_COPICK_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1F\x7F\s_]')


def check_copick_name(value: str, what: str) -> str:
    """Raise ``ValueError`` unless ``value`` is a valid copick name (as copick checks it).

    ``what`` names the setting in the message (e.g. ``"copick user id (--user-id)"``).
    """
    bad = sorted(set(_COPICK_INVALID.findall(value)))
    if not value or value != value.strip("-") or bad or value in (".", ".."):
        if bad:
            shown = ", ".join(repr(c) for c in bad)
        elif value in (".", ".."):
            shown = "a folder name"
        else:
            shown = "empty, or starts or ends with '-'"
        raise ValueError(
            f"{what} {value!r} is not a valid copick name ({shown}); use letters, digits, "
            "'-' and '.' (copick forbids '_', '/', spaces and <>:\"\\|?*)"
        )
    return value


def write_copick_picks(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    voxel_size_A: float | None,
    object_name: str,
    user_id: str,
    session_id: str,
    run_name: str | None = None,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one tomogram's coordinates as a copick picks JSON (locations in Å).

    The file is copick's own ``CopickPicksFile`` model, serialised as copick's ``store()``
    does (:mod:`cryoal.io.coords.copick_model`; needs the ``copick`` extra). ``run_name``
    defaults to the table's single ``tomo_id``; it must follow the tomogram-id rule
    (:func:`cryoal.io.names.check_tomo_id`), since copick makes it a folder name.
    Orientations are written as identity transforms with ``trust_orientation`` false.
    Written atomically.
    """
    validate_table(df)
    check_copick_name(str(object_name), "copick object name")
    check_copick_name(str(user_id), "copick user id (--user-id)")
    check_copick_name(str(session_id), "copick session id (--session-id)")
    runs = sorted(set(df["tomo_id"].astype(str)))
    if run_name is None:
        if len(runs) > 1:
            raise ValueError(
                f"{path}: a copick picks file holds one run, but the table has tomograms "
                f"{runs[:5]}; write one file per tomogram"
            )
        run_name = runs[0] if runs else None
    if run_name is not None:  # copick makes it a folder name: ExperimentRuns/<run_name>/
        try:
            check_tomo_id(run_name, "it would be the copick run name (a folder name): give "
                          "the tomogram another id (--tomo-id)")  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    vs = _voxel_sizes(df, voxel_size_A, tomograms, path)
    xyz = zyx_voxels_to_xyz_A(df[["z", "y", "x"]].to_numpy(dtype=np.float64), vs)
    check_can_write(path, overwrite)
    copick = import_copick(f"{path}: writing copick picks")
    model = picks_file_model(
        copick,
        xyz,
        object_name=str(object_name),
        user_id=str(user_id),
        session_id=str(session_id),
        run_name=run_name,
        voxel_spacing=float(vs[0]) if len(vs) and np.allclose(vs, vs[0]) else None,
    )
    atomic_write_text(path, picks_file_text(model), overwrite=overwrite)
    return Path(path)
