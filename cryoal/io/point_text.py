"""Two line-per-point coordinate formats: the CZ cryoET Data Portal's ndjson and ``.coords``.

* Portal ``.ndjson`` (``<object>-<version>_point.ndjson``, ``..._orientedpoint.ndjson``):
  one JSON object per line with ``type`` (``point``, ``orientedPoint`` or
  ``instancePoint``) and ``location`` ``{"x": .., "y": .., "z": ..}``; oriented points add
  ``xyz_rotation_matrix``, instance points ``instance_id`` (both ignored here). The portal
  documents the fields (docs/cryoet_data_portal_docsite_data.md, "Annotation Download
  Options"); the locations are voxels of the annotation's voxel spacing (the
  ``VoxelSpacing<A>`` folder the file lies in): the portal's ingestion divides Å inputs by
  that spacing (cryoet-data-portal-backend ``common/point_converter.py``) and copick's
  portal reader multiplies the locations by it to get Å.
* ``.coords`` (IMOD ``model2point`` output, as in EMPIAR-10045 and the RELION 2
  subtomogram tutorial): one point per line, ``x y z`` separated by white space, in voxels
  of the tomogram.

Neither names its tomogram or (for ``.coords``) its class: the caller gives the tomogram
id, and the manifest (or the file name) the class. :func:`scan_ndjson` and
:func:`scan_coords_text` return a :class:`cryoal.io.coords.RawCoords` in pixels;
:func:`cryoal.io.coords.read_coords` converts them to zyx voxels of the tomogram (scaling by
``coords_pixel_size_A / voxel_size_A`` when the points were taken at another voxel size).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: ``type`` values the portal writes for point-like annotations.
NDJSON_POINT_TYPES: tuple[str, ...] = ("point", "orientedPoint", "instancePoint")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc}); check the file") from exc


def _finite(path: Path, lineno: int, values: list[float]) -> list[float]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}: line {lineno}: non-finite coordinate {values}; fix that line")
    return values


def ndjson_xyz(path: str | Path) -> np.ndarray:
    """The ``(n, 3)`` x, y, z locations of a portal point ndjson file (blank lines skipped).

    Raises
    ------
    ValueError
        A line that is not a JSON object with a numeric ``location`` x, y, z, or a ``type``
        that is not a point (segmentation meshes, for example).
    """
    path = Path(path)
    rows: list[list[float]] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}: line {lineno} is not JSON ({exc.msg}); each line of a portal "
                "annotation file is one JSON object"
            ) from exc
        if not isinstance(doc, dict):
            raise ValueError(
                f"{path}: line {lineno} is not a JSON object; expected {{'location': ...}}"
            )
        kind = doc.get("type", "point")
        if kind not in NDJSON_POINT_TYPES:
            raise ValueError(
                f"{path}: line {lineno} has type {kind!r}; cryoal reads point annotations "
                f"({', '.join(NDJSON_POINT_TYPES)})"
            )
        loc = doc.get("location")
        try:
            xyz = [float(loc[k]) for k in ("x", "y", "z")]  # type: ignore[index]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: line {lineno} lacks a numeric location x, y, z ({exc!r}); expected "
                '{"type": "point", "location": {"x": .., "y": .., "z": ..}}'
            ) from exc
        rows.append(_finite(path, lineno, xyz))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def coords_text_xyz(path: str | Path) -> np.ndarray:
    """The ``(n, 3)`` x, y, z of a ``.coords`` file (blank lines and ``#`` comments skipped).

    Raises
    ------
    ValueError
        A line without exactly three numbers.
    """
    path = Path(path)
    rows: list[list[float]] = []
    for lineno, line in enumerate(_lines(path), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        try:
            if len(fields) != 3:
                raise ValueError(f"{len(fields)} fields")
            xyz = [float(v) for v in fields]
        except ValueError as exc:
            raise ValueError(
                f"{path}: line {lineno} ({line.strip()[:60]!r}) is not 'x y z' ({exc}); a "
                ".coords file holds three numbers per line, voxels of the tomogram"
            ) from exc
        rows.append(_finite(path, lineno, xyz))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def object_from_ndjson_name(path: str | Path) -> str | None:
    """The object name in a portal file name: ``cytosolic_ribosome-1.0_point.ndjson`` ->
    ``cytosolic_ribosome``; ``None`` when the name does not follow the portal's pattern."""
    stem = Path(path).name
    for suffix in ("_point.ndjson", "_orientedpoint.ndjson", "_instancepoint.ndjson"):
        if stem.endswith(suffix):
            head = stem[: -len(suffix)]
            name, sep, version = head.rpartition("-")
            if sep and name and version.replace(".", "").isdigit():
                return name
    return None
