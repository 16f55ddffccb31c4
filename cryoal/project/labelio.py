"""Labels in and out of a project: CSV import, CSV / RELION STAR / copick export.

Import (``cryoal labels import``) reads a CSV with one label per row, keyed by candidate
id; the whole file is validated first and written in one transaction, so a file with one
bad row changes nothing. Export writes the current labels with their coordinates (xyz Å,
corner origin, at the file boundary, as everywhere in cryoal) through
``cryoal.io.coords``; copick picks through the copick library
(``cryoal.io.copick_project``, the ``copick`` extra).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_write_text, check_can_write
from cryoal.io.coords import CSV_COLUMNS, check_copick_name, write_star, zyx_voxels_to_xyz_A
from cryoal.io.copick_project import (
    OverlayPicks,
    OverlaySegmentation,
    copick_config_text,
    write_overlay_picks,
    write_overlay_segmentations,
)
from cryoal.io.mrc import write_mrc
from cryoal.io.store import MASK_IGNORE
from cryoal.project.candidates import tomogram_geometries
from cryoal.project.config import SPECIAL_LABELS
from cryoal.project.project import Project

log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "star", "copick"]
EXPORT_FORMATS: tuple[str, ...] = ("csv", "star", "copick")
_LABEL_COLUMNS = ("label", "class_name", "class")
#: Name of the copick project configuration written beside exported picks.
COPICK_CONFIG = "copick_config.json"


def import_labels_csv(
    project: Project, path: str | os.PathLike, *, annotator: str | None = None
) -> int:
    """Record the labels of a CSV file (one transaction: all rows or none).

    The CSV has a ``candidate_id`` column and a ``label`` (or ``class_name`` / ``class``)
    column holding a class name, ``unsure`` or ``not-a-particle``; an optional
    ``annotator`` column. Tables with a ``kind`` column (``rounds/NNN/snapshot.csv``,
    label exports) give ``unsure`` / ``not-a-particle`` rows by their kind. Rows are recorded in file order (a later row for the same
    candidate wins). Provenance (round, proposing model) is filled in from the suggestion
    queues: the newest round that suggested the candidate.

    Parameters
    ----------
    annotator
        Annotator for rows without one (default ``import:<file name>``).

    Returns
    -------
    int
        Labels recorded.

    Raises
    ------
    ValueError
        Missing columns, empty cells, an unknown class or an unknown candidate (the
        message names the first one and the valid choices).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labels file not found; check the path")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc}); check the file") from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    label_col = next((c for c in _LABEL_COLUMNS if c in df.columns), None)
    if "candidate_id" not in df.columns or label_col is None:
        raise ValueError(
            f"{path}: a labels CSV needs columns candidate_id and label (class name, "
            f"{' or '.join(SPECIAL_LABELS)}); found {list(df.columns)[:10]}"
        )
    ids = df["candidate_id"].str.strip()
    labels = df[label_col].str.strip()
    if "kind" in df.columns:
        # a snapshot / export table: unsure and not-a-particle rows carry no class name,
        # their decision is the kind (so a snapshot re-imports whole)
        kinds = df["kind"].str.strip()
        labels = labels.where((labels != "") | ~kinds.isin(SPECIAL_LABELS), kinds)
    empty = (ids == "") | (labels == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 2  # 1-based, after the header
        raise ValueError(
            f"{path}: line {row} has an empty candidate_id or label; fill it or drop the row"
        )
    default = annotator or f"import:{path.name}"
    who = (
        df["annotator"].str.strip().where(df["annotator"].str.strip() != "", default)
        if "annotator" in df.columns
        else pd.Series([default] * len(df))
    )
    store = project.labels
    for lab in dict.fromkeys(labels):
        try:
            store.resolve_label(lab)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    try:
        return store.add_labels(ids.tolist(), labels.tolist(), who.tolist())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class ExportResult:
    """Files written and labels exported."""

    paths: list[Path]
    n_labels: int


def export_labels(
    project: Project,
    fmt: ExportFormat,
    out: str | os.PathLike,
    *,
    include_special: bool = False,
    star_version: Literal[4, 5] = 4,
    tilt_series_pixel_size_A: float | None = None,
    user_id: str = "cryoal",
    session_id: str = "0",
    overwrite: bool = False,
) -> ExportResult:
    """Export the current labels.

    Parameters
    ----------
    fmt
        ``csv``: columns candidate_id, tomo_id, x_A, y_A, z_A (Å, corner origin),
        class_name (the label), class_id, annotator, round, model_version, labelled_at.
        ``star``: a RELION particle STAR file (``rlnClassNumber`` = class id + 1,
        ``rlnTomoParticleName`` = candidate id), version 4 (pixel coordinates) or 5
        (centred Å). ``copick``: ``out`` is a copick overlay folder; one picks set per
        tomogram and class, written by copick (``run.new_picks(class, session, user)``,
        ``store()``) at ``ExperimentRuns/<tomo>/Picks/<user>_<session>_<class>.json``,
        and a ``copick_config.json`` naming the project's classes (colour, radius) as
        pickable objects, so copick and napari-copick can open the folder. For a segment
        project, its masks as copick segmentations (:func:`export_masks` ``to="copick"``).
    tilt_series_pixel_size_A
        STAR only: the unbinned tilt-series pixel size (Å), written as RELION's
        ``rlnTomoTiltSeriesPixelSize`` (tomogram binning = voxel size / it); version 4
        pixel coordinates are in these pixels. Default: the tomogram voxel size
        (binning 1).
    include_special
        CSV only: also export ``unsure`` and ``not-a-particle`` rows.
    overwrite
        Replace existing output files.

    Raises
    ------
    ValueError
        Unknown format, ``include_special`` with a format that has no place for it, or no
        labels to export.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format {fmt!r} must be one of {', '.join(EXPORT_FORMATS)}")
    if tilt_series_pixel_size_A is not None and fmt != "star":
        raise ValueError(
            "a tilt-series pixel size (--out-pixel-size) applies to --format star only"
        )
    if include_special and fmt != "csv":
        raise ValueError(
            f"--include-special works with --format csv only ({fmt} files hold classes only)"
        )
    if fmt == "copick" and project.config.task == "segment":  # its labels are masks
        return export_masks(
            project, out, to="copick", user_id=user_id, session_id=session_id, overwrite=overwrite
        )
    table = project.labels.current_labels(include_special=include_special)
    if table.empty:
        raise ValueError(
            f"{project.root}: no labels to export yet; label candidates first (napari, or "
            "'cryoal labels import DIR labels.csv')"
        )
    special = table["kind"] != "class"
    table.loc[special, "class_name"] = table.loc[special, "kind"]
    out = Path(out)
    vs = project.voxel_size_A
    geometries = tomogram_geometries(project)
    if fmt == "csv":
        check_can_write(out, overwrite)
        xyz = zyx_voxels_to_xyz_A(table[["z", "y", "x"]].to_numpy(dtype=np.float64), vs)
        frame = pd.DataFrame(
            {
                "candidate_id": table["candidate_id"],
                "tomo_id": table["tomo_id"],
                CSV_COLUMNS["angstrom"][0]: xyz[:, 0],
                CSV_COLUMNS["angstrom"][1]: xyz[:, 1],
                CSV_COLUMNS["angstrom"][2]: xyz[:, 2],
                "class_name": table["class_name"],
                "class_id": table["class_id"],
                "annotator": table["annotator"],
                "round": table["round"],
                "model_version": table["model_version"],
                "labelled_at": table["created_at"],
            }
        )
        atomic_write_text(out, frame.to_csv(index=False, float_format="%.6f"), overwrite=overwrite)
        paths = [out]
    elif fmt == "star":
        write_star(
            table,
            out,
            voxel_size_A=vs,
            version=star_version,
            tomograms=geometries,
            coords_pixel_size_A=tilt_series_pixel_size_A,
            class_names=project.config.class_names,
            overwrite=overwrite,
        )
        paths = [out]
    else:
        paths = _export_copick(project, table, out, user_id, session_id, overwrite)
    log.info("exported %d labels to %s", len(table), out)
    return ExportResult(paths=paths, n_labels=len(table))


def _export_copick(
    project: Project,
    table: pd.DataFrame,
    out: Path,
    user_id: str,
    session_id: str,
    overwrite: bool,
) -> list[Path]:
    """One copick picks set per tomogram and class, written with copick's ``new_picks``,
    and the configuration (unless the same one is there)."""
    check_copick_name(user_id, "copick user id (--user-id)")
    check_copick_name(session_id, "copick session id (--session-id)")
    for name in project.config.class_names:
        check_copick_name(name, "class name (a copick object name)")
    geometries = tomogram_geometries(project)
    sets = []
    for (tomo, name), part in table.groupby(["tomo_id", "class_name"], sort=True):
        g = geometries[str(tomo)]
        zyx = part[["z", "y", "x"]].to_numpy(dtype=np.float64)
        xyz = zyx_voxels_to_xyz_A(zyx, g.voxel_size_A)
        sets.append(OverlayPicks(str(tomo), str(name), xyz, voxel_spacing=g.voxel_size_A))
    config_path = out / COPICK_CONFIG
    config_text = copick_config_json(project, out)
    same_config = config_path.is_file() and config_path.read_text() == config_text
    if not same_config and config_path.exists():
        check_can_write(config_path, overwrite)  # raises with the fix
    paths = write_overlay_picks(
        out, config_text, sets, user_id=user_id, session_id=session_id, overwrite=overwrite
    )
    if not same_config:
        atomic_write_text(config_path, config_text, overwrite=overwrite)
    return [*paths, config_path]


def copick_config_json(project: Project, overlay: Path) -> str:
    """A copick project configuration (filesystem, overlay only) as JSON text, built with
    copick's models (``CopickConfigFSSpec``, ``PickableObject``).

    One pickable object per class: ``name`` = class name, ``label`` = class id + 1 (copick
    reserves 0 for background), ``color`` = the class colour as RGBA 0-255, ``radius`` =
    the particle radius in Å (project default, else a third of the box).
    """
    cfg = project.config
    vs = project.voxel_size_A
    radius = cfg.defaults.particle_radius_A or cfg.box * vs / 3.0
    objects = []
    for c in sorted(cfg.classes, key=lambda c: c.id):
        rgb = [int(c.colour[i : i + 2], 16) for i in (1, 3, 5)]
        objects.append(
            {
                "name": c.name,
                "is_particle": True,
                "label": c.id + 1,
                "color": [*rgb, 255],
                "radius": float(radius),
            }
        )
    return copick_config_text(
        name=cfg.name,
        description=f"labels exported by cryoal from project {cfg.name}",
        objects=objects,
        overlay=overlay,
    )


def mask_corner(centre_zyx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(3,)`` int voxel corner of a candidate's box: its rounded centre minus half the box
    (the extraction's convention)."""
    return np.floor(np.asarray(centre_zyx, dtype=np.float64) + 0.5).astype(int) - (
        np.asarray(shape) // 2
    )


def paste_mask(volume: np.ndarray, mask: np.ndarray, corner: np.ndarray) -> None:
    """Write a box's annotated foreground (values 1..254) into ``volume`` at ``corner``
    (voxels, zyx), clipped at the volume's edge; background and 255 leave it as it is."""
    lo = np.maximum(corner, 0)
    hi = np.minimum(corner + np.asarray(mask.shape), volume.shape)
    if np.any(hi <= lo):
        return
    src = mask[tuple(slice(a - c, b - c) for a, b, c in zip(lo, hi, corner, strict=True))]
    dst = volume[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    keep = (src > 0) & (src != MASK_IGNORE)
    dst[keep] = src[keep]


def export_masks(
    project: Project,
    out: str | os.PathLike,
    *,
    to: Literal["mrc", "copick"] = "mrc",
    user_id: str = "cryoal",
    session_id: str = "0",
    overwrite: bool = False,
) -> ExportResult:
    """Export every current segmentation mask.

    ``to="mrc"``: ``out`` is a folder of one ``<candidate id, ':' as '_'>.mrc`` per masked
    candidate (uint8 ``(z, y, x)`` of the candidate's box: 0 background, class + 1, 255 not
    annotated; the project's voxel size; the header origin at the box's corner in Å), and
    ``masks.csv`` listing them (candidate, file, tomogram, box corner in voxels, how the
    mask came to be, annotator, round, model version, time, edit cost), written last.

    ``to="copick"``: ``out`` is a copick overlay folder; per tomogram one multilabel
    segmentation of the tomogram's shape (``masks``, written by copick's
    ``new_segmentation`` + ``from_numpy`` as OME-Zarr at ``ExperimentRuns/<tomo>/
    Segmentations/``) holding every mask's annotated foreground pasted at its box (value =
    class id + 1 = the pickable object's label; not-annotated and background voxels 0;
    where boxes overlap, the later-labelled mask wins), and ``copick_config.json`` naming
    the classes. Memory: one uint8 volume of the largest tomogram.

    Raises
    ------
    ValueError
        No masks yet, or a file exists and not ``overwrite`` (checked before any write).
    """
    masks = project.labels.current_masks()
    if not masks:
        raise ValueError(
            f"{project.root}: no masks to export yet; commit masks first (the viewer, or the "
            "Python API 'project.labels.add_mask')"
        )
    out = Path(out)
    positions = project.labels.candidates().set_index("candidate_id")
    if to == "copick":
        return _export_copick_masks(project, masks, positions, out, user_id, session_id, overwrite)
    vs = project.voxel_size_A
    targets = [out / (m.candidate_id.replace(":", "_") + ".mrc") for m in masks]
    if out.is_dir():  # a new folder holds nothing to overwrite
        for path in [*targets, out / "masks.csv"]:
            check_can_write(path, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for m, path in zip(masks, targets, strict=True):
        centre = positions.loc[m.candidate_id, ["z", "y", "x"]].to_numpy(dtype=np.float64)
        corner = mask_corner(centre, m.mask.shape)
        write_mrc(path, m.mask, vs, origin_zyx_A=tuple(corner * vs), overwrite=overwrite)
        rows.append({
            "candidate_id": m.candidate_id, "file": path.name,
            "tomo_id": positions.loc[m.candidate_id, "tomo_id"],
            "corner_z": corner[0], "corner_y": corner[1], "corner_x": corner[2],
            "source": m.source, "annotator": m.annotator, "round": m.round,
            "model_version": m.model_version, "labelled_at": m.created_at,
            "voxels_changed": m.voxels_changed, "slices_touched": m.slices_touched,
            "seconds": m.seconds,
        })  # fmt: skip
    atomic_write_text(out / "masks.csv", pd.DataFrame(rows).to_csv(index=False), overwrite=True)
    return ExportResult([*targets, out / "masks.csv"], len(masks))


#: Name of the multilabel copick segmentation a segment project's masks are exported as.
COPICK_MASKS_NAME = "masks"


def _export_copick_masks(
    project: Project,
    masks: list,
    positions: pd.DataFrame,
    out: Path,
    user_id: str,
    session_id: str,
    overwrite: bool,
) -> ExportResult:
    """Each tomogram's masks pasted into one multilabel copick segmentation (see
    :func:`export_masks`)."""
    check_copick_name(user_id, "copick user id (--user-id)")
    check_copick_name(session_id, "copick session id (--session-id)")
    for name in project.config.class_names:
        check_copick_name(name, "class name (a copick object name)")
    geometries = tomogram_geometries(project)
    by_tomo: dict[str, list] = {}
    for m in sorted(masks, key=lambda m: m.created_at):
        by_tomo.setdefault(str(positions.loc[m.candidate_id, "tomo_id"]), []).append(m)
    config_path = out / COPICK_CONFIG
    config_text = copick_config_json(project, out)
    same_config = config_path.is_file() and config_path.read_text() == config_text
    if not same_config and config_path.exists():
        check_can_write(config_path, overwrite)  # raises with the fix
    paths = []
    for tomo, tomo_masks in sorted(by_tomo.items()):  # one tomogram's volume at a time
        g = geometries[tomo]
        volume = np.zeros(tuple(g.shape_zyx), dtype=np.uint8)
        for m in tomo_masks:
            centre = positions.loc[m.candidate_id, ["z", "y", "x"]].to_numpy(dtype=np.float64)
            paste_mask(volume, m.mask, mask_corner(centre, m.mask.shape))
        paths += write_overlay_segmentations(
            out, config_text, [OverlaySegmentation(tomo, volume, g.voxel_size_A)],
            name=COPICK_MASKS_NAME, user_id=user_id, session_id=session_id, overwrite=overwrite,
        )  # fmt: skip
    if not same_config:
        atomic_write_text(config_path, config_text, overwrite=overwrite)
    return ExportResult([*paths, config_path], len(masks))
