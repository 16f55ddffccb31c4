"""Parsing coordinate files: what a file says, before any unit conversion.

:func:`scan_coords` tells the format from the suffix (RELION 3/4/5 ``.star``, ``.csv``,
copick picks ``.json``, read with copick's data model (:mod:`cryoal.io.coords.copick_model`),
CZ cryoET Data Portal point ``.ndjson``, ``.coords`` text) and returns a :class:`RawCoords`:
the file's x, y, z values and their kind (pixels, Å, RELION 5 centred Å, or not stated for a
CSV with plain x, y, z columns), with the tomogram names, class names, ids, RELION origin
shifts (rotated by the subtomogram angles), optics pixel sizes and tomogram sizes the file
carries. A CSV's unit comes from its column names (``x_A, y_A, z_A`` or ``x_px, y_px,
z_px``). :func:`summarize_coords` counts the rows per tomogram and class (``cryoal info``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from cryoal.io.coords.columns import _TOMO_SIZE, _XYZ_CENTRED, _XYZ_PIXEL, CSV_COLUMNS
from cryoal.io.coords.copick_model import parse_picks_file
from cryoal.io.coords.geometry import relion_euler_matrix
from cryoal.io.point_text import coords_text_xyz, ndjson_xyz, object_from_ndjson_name

_ORIGIN_A = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
_ORIGIN_PX = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
_SUBTOMO_ANGLES = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
_STRING_LABELS = ["rlnTomoName", "rlnMicrographName", "rlnTomoParticleName", "rlnImageName"]
_STAR_SUFFIXES = (".star",)
_CSV_SUFFIXES = (".csv",)
_JSON_SUFFIXES = (".json",)
_NDJSON_SUFFIXES = (".ndjson",)
_COORDS_SUFFIXES = (".coords",)


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
    """A copick picks file, read with copick's data model (particle centres in Å)."""
    picks = parse_picks_file(path)
    xyz = picks.xyz_A
    raw = RawCoords(path=path, format="copick", xyz=xyz, kind="angstrom")
    if picks.run_name:
        raw.tomo_names = np.full(len(xyz), picks.run_name, dtype=object)
    raw.class_names = np.full(len(xyz), picks.object_name, dtype=object)
    return raw


def _scan_ndjson(path: Path) -> RawCoords:
    xyz = ndjson_xyz(path)
    raw = RawCoords(path=path, format="portal-ndjson", xyz=xyz, kind="pixel")
    name = object_from_ndjson_name(path)
    if name is not None:
        raw.class_names = np.full(len(xyz), name, dtype=object)
    return raw


def summarize_coords(raw: RawCoords) -> pd.DataFrame:
    """Counts per tomogram and class: columns ``tomo_id, class_name, count``."""
    tomos = raw.tomo_names if raw.tomo_names is not None else np.full(len(raw), "(unnamed)", object)
    classes = raw.class_names if raw.class_names is not None else np.full(len(raw), "", object)
    table = pd.DataFrame({"tomo_id": tomos, "class_name": classes})
    if table.empty:
        return pd.DataFrame({"tomo_id": [], "class_name": [], "count": []})
    counts = table.groupby(["tomo_id", "class_name"], sort=True).size().rename("count")
    return counts.reset_index()
