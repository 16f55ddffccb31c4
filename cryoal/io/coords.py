"""Particle coordinates: RELION 3/4/5 STAR, CSV, copick picks, CZ cryoET Data Portal point
ndjson and ``.coords`` text (:mod:`cryoal.io.point_text`) <-> one canonical table.

The canonical table (a ``pandas.DataFrame``) has the columns

* ``candidate_id`` (str): stable id, from the file (``rlnTomoParticleName``, a CSV
  ``candidate_id`` column) or made as ``"<tomo_id>:<k:06d>"`` with ``k`` the row's rank
  among its tomogram's rows in the file;
* ``tomo_id`` (str);
* ``z``, ``y``, ``x`` (float): voxels of that tomogram, corner origin, 0-indexed, voxel
  centres at integers (voxel ``i`` covers ``[i - 0.5, i + 0.5)``);
* optionally ``class_name`` (str).

CSV files carry their unit in the column names: ``x_A, y_A, z_A`` (Å, corner origin) or
``x_px, y_px, z_px`` (pixels); :func:`write_csv` writes them and :func:`read_coords`
reads them back without being told the unit. Plain ``x, y, z`` columns (other tools)
need the unit stated by the caller (``--coords-unit``); it is never guessed.

At file boundaries positions are ``x, y, z`` and, unless a format says otherwise, in Å
with the same corner origin: ``position_A = index * voxel_size_A``. The conversion
between the two lives only in :func:`xyz_A_to_zyx_voxels` / :func:`zyx_voxels_to_xyz_A`
(and :func:`tomogram_centre_xyz_A` for RELION 5's centred coordinates).

RELION conventions (checked against RELION 5's source, ``src/jaz/tomography/
particle_set.cpp``, ``ParticleSet::getPosition`` and ``getParticleCoordDecenteredPixel``,
and ``tomogram_set.cpp``, where ``Tomogram::centre = (w0/2.0, h0/2.0, d0/2.0)``):

* RELION 3/4: ``rlnCoordinateX/Y/Z`` are 0-indexed pixels (RELION >= 4.1 no longer adds 1)
  of size ``rlnTomoTiltSeriesPixelSize`` (optics table) when given; otherwise cryoal takes
  them as pixels of the tomogram itself.
* RELION 5: ``rlnCenteredCoordinateX/Y/ZAngst`` are Å from the tomogram centre, and
  ``pixel = centred_A / pixel_size + size / 2`` with a floating-point ``size / 2``
  (no ``(size - 1) / 2``). It needs each tomogram's size, which is not in the particle
  file (RELION keeps it in tomograms.star as rlnTomoSizeX/Y/Z).
* Both: the particle position is ``pixel * pixel_size - A_sub @ origin_A`` where
  ``origin_A`` is ``rlnOriginX/Y/ZAngst`` (RELION 3.0: ``rlnOriginX/Y/Z`` pixels) and
  ``A_sub`` the rotation of ``rlnTomoSubtomogramRot/Tilt/Psi`` (identity when absent).
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import starfile

from cryoal.io.atomic import atomic_path, atomic_write_text
from cryoal.io.point_text import coords_text_xyz, ndjson_xyz, object_from_ndjson_name

log = logging.getLogger(__name__)

Unit = Literal["angstrom", "pixel"]
UNITS: tuple[str, ...] = ("angstrom", "pixel")
COLUMNS: tuple[str, ...] = ("candidate_id", "tomo_id", "z", "y", "x")

_XYZ_PIXEL = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
_XYZ_CENTRED = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
_ORIGIN_A = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
_ORIGIN_PX = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
_SUBTOMO_ANGLES = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
#: RELION 5 tomogram size (unbinned tilt-series pixels, as in tomograms.star); cryoal writes
#: it beside centred coordinates so that a reader needs no tomogram to find the centre.
_TOMO_SIZE = ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")
#: CSV coordinate columns per unit (the unit travels with the file).
CSV_COLUMNS: dict[str, tuple[str, str, str]] = {
    "angstrom": ("x_A", "y_A", "z_A"),
    "pixel": ("x_px", "y_px", "z_px"),
}
_STRING_LABELS = ["rlnTomoName", "rlnMicrographName", "rlnTomoParticleName", "rlnImageName"]
_STAR_SUFFIXES = (".star",)
_CSV_SUFFIXES = (".csv",)
_JSON_SUFFIXES = (".json",)
_NDJSON_SUFFIXES = (".ndjson",)
_COORDS_SUFFIXES = (".coords",)


# --------------------------------------------------------------------------------------
# Geometry: the one place where xyz Å and zyx voxels meet.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TomogramGeometry:
    """Size and voxel size of a tomogram that coordinates refer to.

    Attributes
    ----------
    shape_zyx
        ``(z, y, x)`` in voxels.
    voxel_size_A
        Isotropic voxel size, Å.
    """

    shape_zyx: tuple[int, int, int]
    voxel_size_A: float

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape_zyx)
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"tomogram shape {self.shape_zyx} must be 3 positive sizes (z, y, x)")
        if not np.isfinite(self.voxel_size_A) or self.voxel_size_A <= 0:
            raise ValueError(f"voxel size {self.voxel_size_A} Å must be a positive number")
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(self, "voxel_size_A", float(self.voxel_size_A))


def _per_row(voxel_size_A: float | np.ndarray, n: int) -> np.ndarray:
    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=np.float64), (n,))
    if not (np.isfinite(vs).all() and (vs > 0).all()):
        raise ValueError(f"voxel size {np.unique(vs)[:3].tolist()} Å must be positive")
    return vs[:, None]


def xyz_A_to_zyx_voxels(xyz_A: np.ndarray, voxel_size_A: float | np.ndarray) -> np.ndarray:
    """``(n, 3)`` xyz Å (corner origin) -> ``(n, 3)`` zyx voxels (0-indexed).

    ``voxel_size_A`` is a float or ``(n,)`` per-row voxel sizes.
    """
    xyz = np.asarray(xyz_A, dtype=np.float64).reshape(-1, 3)
    return xyz[:, ::-1] / _per_row(voxel_size_A, len(xyz))


def zyx_voxels_to_xyz_A(zyx: np.ndarray, voxel_size_A: float | np.ndarray) -> np.ndarray:
    """``(n, 3)`` zyx voxels -> ``(n, 3)`` xyz Å (corner origin); inverse of the above."""
    v = np.asarray(zyx, dtype=np.float64).reshape(-1, 3)
    return v[:, ::-1] * _per_row(voxel_size_A, len(v))


def tomogram_centre_xyz_A(geometry: TomogramGeometry) -> np.ndarray:
    """RELION 5's tomogram centre in corner-origin Å, ``(3,)`` xyz: ``size / 2 * voxel``."""
    return np.asarray(geometry.shape_zyx[::-1], dtype=np.float64) / 2.0 * geometry.voxel_size_A


def relion_euler_matrix(rot: np.ndarray, tilt: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """RELION's rotation matrices ``(n, 3, 3)`` from Euler angles in degrees (ZYZ).

    Same matrix as RELION's ``Euler_angles2matrix`` / ``Euler::anglesToMatrix3``.
    """
    a, b, g = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    m = np.empty((len(ca), 3, 3))
    m[:, 0, 0] = cg * cb * ca - sg * sa
    m[:, 0, 1] = cg * cb * sa + sg * ca
    m[:, 0, 2] = -cg * sb
    m[:, 1, 0] = -sg * cb * ca - cg * sa
    m[:, 1, 1] = -sg * cb * sa + cg * ca
    m[:, 1, 2] = sg * sb
    m[:, 2, 0] = sb * ca
    m[:, 2, 1] = sb * sa
    m[:, 2, 2] = cb
    return m


# --------------------------------------------------------------------------------------
# Parsing: what a file says, before any unit conversion.
# --------------------------------------------------------------------------------------
@dataclass
class RawCoords:
    """A coordinate file as written, before conversion to voxels.

    Attributes
    ----------
    path
        The file.
    format
        ``"relion-3/4"``, ``"relion-5"``, ``"csv"``, ``"copick"``, ``"portal-ndjson"`` or
        ``"coords"``.
    xyz
        ``(n, 3)`` the file's x, y, z values.
    kind
        ``"pixel"``, ``"angstrom"``, ``"centred-angstrom"`` (RELION 5) or ``None`` (a CSV,
        whose unit the caller must state).
    tomo_names, class_names, candidate_ids
        ``(n,)`` object arrays, or ``None`` where the file has none.
    origin_xyz_A
        ``(n, 3)`` shifts to subtract (Å, already rotated), or ``None``.
    origin_xyz_px
        ``(n, 3)`` RELION 3.0 shifts in pixels, or ``None``.
    pixel_size_A
        ``(n,)`` pixel size of the coordinates from the file (RELION optics), or ``None``.
    tomo_size_px
        ``(n, 3)`` xyz size of each row's tomogram in pixels of ``pixel_size_A``
        (``rlnTomoSizeX/Y/Z``), or ``None``.
    """

    path: Path
    format: str
    xyz: np.ndarray
    kind: str | None
    tomo_names: np.ndarray | None = None
    class_names: np.ndarray | None = None
    candidate_ids: np.ndarray | None = None
    origin_xyz_A: np.ndarray | None = None
    origin_xyz_px: np.ndarray | None = None
    pixel_size_A: np.ndarray | None = None
    tomo_size_px: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.xyz)


def _file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _STAR_SUFFIXES:
        return "star"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _JSON_SUFFIXES:
        return "copick"
    if suffix in _NDJSON_SUFFIXES:
        return "portal-ndjson"
    if suffix in _COORDS_SUFFIXES:
        return "coords"
    raise ValueError(
        f"{path}: unknown coordinate format {suffix or '(no suffix)'!r}; use a RELION .star, "
        "a .csv with x, y, z columns, a copick picks .json, a CZ cryoET Data Portal point "
        ".ndjson or a .coords file (x y z voxels per line)"
    )


def scan_coords(path: str | os.PathLike) -> RawCoords:
    """Parse a coordinate file without converting units (used by ``cryoal info``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unknown format, unreadable file or missing coordinate columns.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: coordinate file not found; check the path")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; pass the coordinate file inside it")
    fmt = _file_format(path)
    if fmt == "star":
        return _scan_star(path)
    if fmt == "csv":
        return _scan_csv(path)
    if fmt == "portal-ndjson":
        return _scan_ndjson(path)
    if fmt == "coords":
        return RawCoords(path=path, format="coords", xyz=coords_text_xyz(path), kind="pixel")
    return _scan_copick(path)


def _numeric(df: pd.DataFrame, columns: Sequence[str], path: Path) -> np.ndarray:
    try:
        values = df[list(columns)].apply(pd.to_numeric, errors="raise").to_numpy(np.float64)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{path}: non-numeric value in columns {list(columns)} ({exc}); fix the file"
        ) from exc
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: non-finite value {values[row].tolist()} in {list(columns)} at data row "
            f"{row + 1}; fix or remove that row"
        )
    return values


def _strings(series: pd.Series) -> np.ndarray:
    return series.astype(object).where(series.notna(), "").map(str).to_numpy(dtype=object)


def _micrograph_to_tomo(name: str) -> str:
    # RELION writes "path/TS_01.mrc" or "path/TS_01.st:mrc": the tomogram id is the stem.
    return Path(name.split(":")[0]).stem if name else name


def _star_blocks(path: Path) -> dict[str, pd.DataFrame]:
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_STRING_LABELS)
    except Exception as exc:  # starfile raises many types on malformed input
        raise ValueError(f"{path}: not a readable STAR file ({exc}); check the file") from exc
    return {str(k): v for k, v in (blocks or {}).items() if isinstance(v, pd.DataFrame)}


def _particle_block(path: Path, blocks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    def has_coords(df: pd.DataFrame) -> bool:
        return set(_XYZ_PIXEL) <= set(df.columns) or set(_XYZ_CENTRED) <= set(df.columns)

    if "particles" in blocks:
        block = blocks["particles"]
    else:
        candidates = [
            df
            for name, df in blocks.items()
            if name not in ("optics", "general") and has_coords(df)
        ]
        if len(candidates) > 1:
            raise ValueError(
                f"{path}: {len(candidates)} data blocks hold coordinates; keep one, or name it "
                "'data_particles' as RELION 3.1+ does"
            )
        block = candidates[0] if candidates else None
    if block is None or not has_coords(block):
        found = sorted({c for df in blocks.values() for c in df.columns})
        raise ValueError(
            f"{path}: no particle coordinates: expected rlnCoordinateX/Y/Z (RELION 3/4, pixels) "
            "or rlnCenteredCoordinateX/Y/ZAngst (RELION 5, Å) in a data block; found columns "
            f"{found[:12]}"
        )
    return block.reset_index(drop=True)


def _optics_pixel_size(
    path: Path, blocks: dict[str, pd.DataFrame], part: pd.DataFrame
) -> np.ndarray | None:
    optics = blocks.get("optics")
    if optics is None or "rlnTomoTiltSeriesPixelSize" not in optics.columns:
        return None
    sizes = _numeric(optics, ["rlnTomoTiltSeriesPixelSize"], path)[:, 0]
    if "rlnOpticsGroup" in part.columns and "rlnOpticsGroup" in optics.columns:
        groups = dict(
            zip(_numeric(optics, ["rlnOpticsGroup"], path)[:, 0].astype(int), sizes, strict=True)
        )
        wanted = _numeric(part, ["rlnOpticsGroup"], path)[:, 0].astype(int)
        missing = sorted(set(wanted.tolist()) - set(groups))
        if missing:
            raise ValueError(
                f"{path}: particles use optics group(s) {missing} that the optics table lacks"
            )
        per_row = np.array([groups[g] for g in wanted], dtype=np.float64)
    elif len(sizes) == 1:
        per_row = np.full(len(part), sizes[0])
    else:
        raise ValueError(
            f"{path}: {len(sizes)} optics groups but the particles have no rlnOpticsGroup column"
        )
    if not (per_row > 0).all():
        raise ValueError(f"{path}: rlnTomoTiltSeriesPixelSize {per_row.min()} Å must be > 0")
    return per_row


def _scan_star(path: Path) -> RawCoords:
    blocks = _star_blocks(path)
    if not blocks:
        raise ValueError(f"{path}: no data blocks found; is this a RELION STAR file?")
    part = _particle_block(path, blocks)
    # RELION 5 prefers centred coordinates when both are present (getParticleCoordDecenteredPixel).
    if set(_XYZ_CENTRED) <= set(part.columns):
        fmt, kind, xyz = "relion-5", "centred-angstrom", _numeric(part, _XYZ_CENTRED, path)
    else:
        fmt, kind, xyz = "relion-3/4", "pixel", _numeric(part, _XYZ_PIXEL, path)
    raw = RawCoords(path=path, format=fmt, xyz=xyz, kind=kind)
    if "rlnTomoName" in part.columns:
        raw.tomo_names = _strings(part["rlnTomoName"])
    elif "rlnMicrographName" in part.columns:
        raw.tomo_names = np.array(
            [_micrograph_to_tomo(s) for s in _strings(part["rlnMicrographName"])], dtype=object
        )
    if "rlnClassNumber" in part.columns:
        numbers = _numeric(part, ["rlnClassNumber"], path)[:, 0]
        raw.class_names = np.array([str(int(v)) for v in numbers], dtype=object)
    if "rlnTomoParticleName" in part.columns:
        raw.candidate_ids = _strings(part["rlnTomoParticleName"])
    for names in (_ORIGIN_A, _ORIGIN_PX):
        present = [c for c in names if c in part.columns]
        if present and len(present) != 3:
            raise ValueError(f"{path}: only {present} of the origin columns {list(names)} present")
    origin_a = _numeric(part, _ORIGIN_A, path) if _ORIGIN_A[0] in part.columns else None
    origin_px = _numeric(part, _ORIGIN_PX, path) if _ORIGIN_PX[0] in part.columns else None
    if origin_a is not None and origin_px is not None:
        raise ValueError(f"{path}: both rlnOriginX/Y/ZAngst and rlnOriginX/Y/Z present; keep one")
    if set(_SUBTOMO_ANGLES) <= set(part.columns):
        angles = _numeric(part, _SUBTOMO_ANGLES, path)
        rotation = relion_euler_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        if origin_a is not None:
            origin_a = np.einsum("nij,nj->ni", rotation, origin_a)
        if origin_px is not None:
            origin_px = np.einsum("nij,nj->ni", rotation, origin_px)
    raw.origin_xyz_A = origin_a
    raw.origin_xyz_px = origin_px
    raw.pixel_size_A = _optics_pixel_size(path, blocks, part)
    if set(_TOMO_SIZE) <= set(part.columns) and raw.pixel_size_A is not None:
        raw.tomo_size_px = _numeric(part, _TOMO_SIZE, path)
    return raw


def _scan_csv(path: Path) -> RawCoords:
    try:
        df = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc}); check the file") from exc
    df.columns = [str(c).strip() for c in df.columns]
    xyz_columns, kind = _csv_coordinate_columns(path, list(df.columns))
    df.columns = [c.lower() for c in df.columns]
    xyz = _numeric(df, [c.lower() for c in xyz_columns], path)
    raw = RawCoords(path=path, format="csv", xyz=xyz, kind=kind)
    if "tomo_id" in df.columns:
        raw.tomo_names = _strings(df["tomo_id"])
    for name in ("class_name", "class"):
        if name in df.columns:
            raw.class_names = _strings(df[name])
            break
    if "candidate_id" in df.columns:
        raw.candidate_ids = _strings(df["candidate_id"])
    return raw


def _csv_coordinate_columns(path: Path, columns: list[str]) -> tuple[list[str], str | None]:
    """The x, y, z columns of a CSV and their unit (``None``: plain x, y, z, not stated)."""
    lower = {c.lower(): c for c in columns}
    for unit, names in CSV_COLUMNS.items():
        present = [n for n in names if n.lower() in lower]
        if len(present) == 3:
            return [lower[n.lower()] for n in names], unit
        if present:
            missing = [n for n in names if n not in present]
            raise ValueError(f"{path}: CSV has {present} but lacks {missing}; add the column(s)")
    if all(a in lower for a in ("x", "y", "z")):
        return [lower[a] for a in ("x", "y", "z")], None
    raise ValueError(
        f"{path}: CSV lacks coordinate columns; expected x_A, y_A, z_A (Å), x_px, y_px, z_px "
        f"(pixels) or x, y, z (unit given with --coords-unit), optional tomo_id, class_name, "
        f"candidate_id; found {columns[:12]}"
    )


def _scan_copick(path: Path) -> RawCoords:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); check the file") from exc
    if not isinstance(doc, dict) or "points" not in doc or "pickable_object_name" not in doc:
        raise ValueError(
            f"{path}: not a copick picks file (needs 'pickable_object_name' and 'points')"
        )
    unit = doc.get("unit", "angstrom")
    if unit != "angstrom":
        raise ValueError(f"{path}: copick unit {unit!r} is not supported; copick stores angstrom")
    points = doc.get("points") or []
    try:
        xyz = np.array(
            [[p["location"][k] for k in ("x", "y", "z")] for p in points], dtype=np.float64
        ).reshape(-1, 3)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: malformed copick point ({exc}); each needs location x, y, z"
        ) from exc
    if not np.isfinite(xyz).all():
        raise ValueError(f"{path}: non-finite copick point location; fix the file")
    raw = RawCoords(path=path, format="copick", xyz=xyz, kind="angstrom")
    run = doc.get("run_name")
    if run:
        raw.tomo_names = np.full(len(xyz), str(run), dtype=object)
    raw.class_names = np.full(len(xyz), str(doc["pickable_object_name"]), dtype=object)
    return raw


def _scan_ndjson(path: Path) -> RawCoords:
    xyz = ndjson_xyz(path)
    raw = RawCoords(path=path, format="portal-ndjson", xyz=xyz, kind="pixel")
    name = object_from_ndjson_name(path)
    if name is not None:
        raw.class_names = np.full(len(xyz), name, dtype=object)
    return raw


# --------------------------------------------------------------------------------------
# Reading into the canonical table.
# --------------------------------------------------------------------------------------
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
    tomos = _row_tomograms(raw, tomo_id)
    ids = raw.candidate_ids if raw.candidate_ids is not None else _make_ids(tomos)
    keep = _rows_of(raw, tomos, tomo_id)

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


def _row_tomograms(raw: RawCoords, tomo_id: str | None) -> np.ndarray:
    """``(n,)`` object array: the tomogram of each row (the file's names, else ``tomo_id``)."""
    p = raw.path
    if raw.tomo_names is None:
        if tomo_id is None:
            raise ValueError(
                f"{p}: the file does not name tomograms; give the tomogram id (--tomo-id ID)"
            )
        return np.full(len(raw), str(tomo_id), dtype=object)
    tomos = raw.tomo_names
    empty = tomos == ""
    if empty.any():
        raise ValueError(
            f"{p}: data row {int(np.flatnonzero(empty)[0]) + 1} has an empty tomogram name"
        )
    return tomos


def _rows_of(raw: RawCoords, tomos: np.ndarray, tomo_id: str | None) -> np.ndarray:
    """``(n,)`` bool: the rows of tomogram ``tomo_id`` in a file that names tomograms (all
    rows otherwise)."""
    if tomo_id is None or raw.tomo_names is None:
        return np.ones(len(raw), dtype=bool)
    keep = tomos == str(tomo_id)
    if not keep.any():
        names = sorted(set(tomos.tolist()))
        raise ValueError(
            f"{raw.path}: no coordinates for tomogram {tomo_id!r}; the file has {names[:10]}; "
            "pass one of these (--tomo-id)"
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
    """Read a copick picks JSON (locations in Å) into the canonical table.

    ``class_name`` is the file's ``pickable_object_name``; ``tomo_id`` its ``run_name``
    (or the ``tomo_id`` argument when the file has none).
    """
    if _file_format(Path(path)) != "copick":
        raise ValueError(f"{path}: copick picks files end in .json")
    return read_coords(path, voxel_size_A=voxel_size_A, tomograms=tomograms, tomo_id=tomo_id)


# --------------------------------------------------------------------------------------
# Writing from the canonical table.
# --------------------------------------------------------------------------------------
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

    ``run_name`` defaults to the table's single ``tomo_id``. Orientations are written as
    identity transforms with ``trust_orientation`` false. Written atomically.
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
    vs = _voxel_sizes(df, voxel_size_A, tomograms, path)
    xyz = zyx_voxels_to_xyz_A(df[["z", "y", "x"]].to_numpy(dtype=np.float64), vs)
    identity = np.eye(4).tolist()
    doc = {
        "pickable_object_name": str(object_name),
        "user_id": str(user_id),
        "session_id": str(session_id),
        "run_name": run_name,
        "voxel_spacing": float(vs[0]) if len(vs) and np.allclose(vs, vs[0]) else None,
        "unit": "angstrom",
        "trust_orientation": False,
        "points": [
            {
                "location": {"x": float(x), "y": float(y), "z": float(z)},
                "transformation_": identity,
                "instance_id": 0,
                "score": 1.0,
            }
            for x, y, z in xyz
        ],
    }
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n", overwrite=overwrite)
    return Path(path)


def summarize_coords(raw: RawCoords) -> pd.DataFrame:
    """Counts per tomogram and class: columns ``tomo_id, class_name, count``."""
    tomos = raw.tomo_names if raw.tomo_names is not None else np.full(len(raw), "(unnamed)", object)
    classes = raw.class_names if raw.class_names is not None else np.full(len(raw), "", object)
    table = pd.DataFrame({"tomo_id": tomos, "class_name": classes})
    if table.empty:
        return pd.DataFrame({"tomo_id": [], "class_name": [], "count": []})
    counts = table.groupby(["tomo_id", "class_name"], sort=True).size().rename("count")
    return counts.reset_index()
