"""Points layers to RELION STAR or CSV files, positions in Å (npe2 single-layer writers).

A point's position is its world coordinate ``data * scale + translate`` (zyx) in the
layer's units, converted to Å; :mod:`cryoal.io.coords` writes the file (atomically). Ids,
tomogram and class come from the layer's features (``candidate_id``, ``tomo_id``,
``class_name`` or ``label``); without a ``tomo_id`` feature the tomogram is the layer's
``metadata["cryoal"]["tomo_id"]``, else its name (less napari's " - Points" suffix).
Points added in the viewer get new ids ``<tomo_id>:<number>`` after the highest existing
one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.io.coords import write_csv, write_star

_ID_NUMBER = re.compile(r":(\d+)$")
_SPECIAL = ("unsure", "not-a-particle")


def _to_angstrom_factors(units: Any, name: str) -> np.ndarray:
    """Per-axis factor from the layer's units to Å; an error for non-length units."""
    if units is None:
        raise ValueError(
            f"layer {name!r}: no units; points are written in Å, so give the layer Å units "
            "(layer.units = 'angstrom') or add the points on a layer opened by cryoal"
        )
    factors = []
    for u in units:
        quantity = 1.0 * u if not isinstance(u, str) else None
        if quantity is None:
            import pint

            quantity = 1.0 * pint.get_application_registry().Unit(u)
        if quantity.dimensionality != {"[length]": 1}:
            raise ValueError(
                f"layer {name!r}: units {[str(x) for x in units]} are not lengths; points are "
                "written in Å, so set layer.units = 'angstrom' (with the scale of a voxel in "
                "Å) or add the points on a layer opened by cryoal"
            )
        factors.append(float(quantity.to("angstrom").magnitude))
    return np.asarray(factors)


def _viewer_voxel_size() -> float | None:
    """The voxel size of the cryoal layers in napari's current viewer, if they agree."""
    if "napari" not in sys.modules:
        return None
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return None
    sizes = {
        round(float(vs), 6)
        for layer in viewer.layers
        if (vs := ((layer.metadata or {}).get("cryoal") or {}).get("voxel_size_A"))
    }
    return sizes.pop() if len(sizes) == 1 else None


def _column(features: pd.DataFrame, names: tuple[str, ...], n: int) -> list[str] | None:
    for name in names:
        if name in features.columns:
            return ["" if pd.isna(v) else str(v) for v in features[name].tolist()][:n]
    return None


def _ids(given: list[str] | None, tomos: list[str]) -> list[str]:
    """Keep unique ids; number missing or repeated ones after each tomogram's highest."""
    n = len(tomos)
    ids = list(given) if given is not None else [""] * n
    highest: dict[str, int] = {}
    for i, t in zip(ids, tomos, strict=True):
        m = _ID_NUMBER.search(i)
        if m and i.startswith(f"{t}:"):
            highest[t] = max(highest.get(t, -1), int(m.group(1)))
    seen: set[str] = set()
    for k in range(n):
        if not ids[k] or ids[k] in seen:
            highest[tomos[k]] = highest.get(tomos[k], -1) + 1
            ids[k] = f"{tomos[k]}:{highest[tomos[k]]:06d}"
        seen.add(ids[k])
    return ids


def points_table(
    data: Any, meta: Mapping[str, Any]
) -> tuple[pd.DataFrame, float | None, list[str]]:
    """The canonical coordinate table of a points layer, in voxels of 1 Å.

    Returns
    -------
    table
        ``candidate_id, tomo_id, z, y, x`` (Å) and ``class_name`` ("" when none).
    voxel_size_A
        The layer's voxel size (``metadata["cryoal"]["voxel_size_A"]``, else its scale
        when isotropic and not 1, else that of the current viewer's cryoal layers), or
        None.
    class_order
        Class names in the project's order when the layer knows it.
    """
    name = str(meta.get("name", "points"))
    pts = np.asarray(data, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(
            f"layer {name!r}: points of shape {pts.shape} are not (n, 3) z, y, x; cryoal writes "
            "3-D points"
        )
    for key, identity in (("rotate", np.eye(3)), ("shear", np.zeros(3)), ("affine", np.eye(4))):
        value = meta.get(key)
        value = getattr(value, "affine_matrix", value)
        if value is not None and not np.allclose(np.asarray(value, dtype=np.float64), identity):
            raise ValueError(
                f"layer {name!r} is rotated, sheared or has an affine transform ({key}); cryoal "
                "writes positions from scale and translate only: reset the layer's transform"
            )
    scale = np.asarray(meta.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    translate = np.asarray(meta.get("translate", (0.0, 0.0, 0.0)), dtype=np.float64)
    zyx_A = (pts * scale + translate) * _to_angstrom_factors(meta.get("units"), name)
    cryoal_meta = (meta.get("metadata") or {}).get("cryoal") or {}
    features = meta.get("features")
    features = pd.DataFrame(features) if features is not None else pd.DataFrame()
    n = len(pts)
    # napari names a layer made from another "<source> - Points": the tomogram's name
    default_tomo = str(cryoal_meta.get("tomo_id") or name.split(" - Points")[0])
    tomos = _column(features, ("tomo_id",), n) or [default_tomo] * n
    tomos = [t or default_tomo for t in tomos]
    table = pd.DataFrame(
        {
            "candidate_id": _ids(_column(features, ("candidate_id",), n), tomos),
            "tomo_id": tomos,
            "z": zyx_A[:, 0],
            "y": zyx_A[:, 1],
            "x": zyx_A[:, 2],
        }
    )
    classes = _column(features, ("class_name", "label"), n)
    table["class_name"] = classes if classes is not None else [""] * n
    # A layer napari made from a tomogram layer ("New points layer") has its scale: one
    # voxel, in the layer's units.
    scaled = scale * _to_angstrom_factors(meta.get("units"), name)
    from_scale = float(scaled[0]) if np.allclose(scaled, scaled[0]) and scaled[0] != 1 else None
    vs = cryoal_meta.get("voxel_size_A") or from_scale or _viewer_voxel_size()
    order = list((cryoal_meta.get("class_colours") or {}).keys())
    return table, (float(vs) if vs else None), order


def write_points_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a points layer as CSV: ``candidate_id, tomo_id, x_A, y_A, z_A``, ``class_name``."""
    table, _, _ = points_table(data, meta)
    if not table["class_name"].astype(bool).any():
        table = table.drop(columns="class_name")
    write_csv(table, path, unit="angstrom", voxel_size_A=1.0, overwrite=True)
    return [str(Path(path))]


def write_points_star(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a points layer as a RELION 4 STAR file.

    ``rlnCoordinateX/Y/Z`` are pixels of the layer's voxel size (stated as
    ``rlnTomoTiltSeriesPixelSize``), so cryoal and RELION read back the same Å.
    ``rlnClassNumber`` is written when every point has a class (project order).

    Raises
    ------
    ValueError
        The voxel size of the points is unknown (not opened by cryoal, scale 1, and no
        single voxel size among the viewer's cryoal layers).
    """
    table, vs, order = points_table(data, meta)
    if vs is None:
        raise ValueError(
            f"{path}: the voxel size of layer {meta.get('name')!r} is unknown, and RELION "
            "coordinates are pixels; open the tomogram with cryoal in the same viewer, or "
            "save as CSV (Å)"
        )
    classes = table["class_name"]
    has_class = classes.astype(bool).all() and not classes.isin(_SPECIAL).any()
    if not has_class:
        table = table.drop(columns="class_name")
    voxels = table.assign(z=table["z"] / vs, y=table["y"] / vs, x=table["x"] / vs)
    names = [c for c in order if c in set(classes)] + sorted(set(classes) - set(order))
    write_star(
        voxels,
        path,
        voxel_size_A=vs,
        version=4,
        class_names=names if has_class else None,
        overwrite=True,
    )
    return [str(Path(path))]
