"""copick projects through the copick library (the ``copick`` extra).

* :func:`open_copick_project` opens a copick configuration JSON (``copick.from_file``).
* :func:`select_tomograms` picks one tomogram per run (a voxel spacing and a tomogram type,
  each chosen automatically when the project has only one); :func:`tomogram_mrc` gives the
  MRC file of such a tomogram: an MRC beside the OME-Zarr with the same stem, as the CZ
  cryoET Data Portal ships them, or an MRC converted from the Zarr's full-resolution level
  (read whole through copick, written atomically with the voxel spacing in the header).
* :func:`read_run_picks` reads a run's picks (``run.get_picks``), each set as the particle
  centres copick defines (``full_positions``: location + transformation translation, Å).
* :func:`write_overlay_picks` writes picks into a copick overlay folder with copick's own
  ``run.new_picks(object, session, user)`` and ``picks.store()``, into a temporary overlay
  beside ``ExperimentRuns`` whose files are then renamed into place one by one, so no picks
  file is ever seen half-written. :func:`copick_config_text` is a filesystem configuration
  built with copick's models.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.io.atomic import check_can_write, fsync_directory, make_temp_dir
from cryoal.io.coords.copick_model import import_copick, picks_points, validation_line
from cryoal.io.mrc import write_mrc

log = logging.getLogger(__name__)

#: Relative tolerance when matching a requested voxel spacing to copick's.
SPACING_RTOL = 1e-3


def open_copick_project(config: str | os.PathLike) -> Any:
    """The copick root of a configuration file (``copick.from_file``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        copick is not installed, or the file is not a copick configuration (one line).
    """
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: copick configuration not found; pass the project's config JSON "
            "(e.g. copick_config.json)"
        )
    copick = import_copick(f"{path}: opening a copick project")
    try:
        with warnings.catch_warnings():
            # copick takes a config without config_type as a filesystem one, and says so
            warnings.filterwarnings("ignore", message="config_type not found")
            return copick.from_file(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); check the file") from exc
    except (ValueError, KeyError, TypeError) as exc:  # pydantic validation, unknown type
        raise ValueError(
            f"{path}: not a copick configuration ({validation_line(exc)}); check the file "
            "(copick's config needs config_type, pickable_objects and overlay_root)"
        ) from None


@dataclass(frozen=True)
class CopickTomogram:
    """One run's tomogram in a copick project.

    Attributes
    ----------
    run
        The run name (cryoal uses it as the tomogram id).
    voxel_size_A
        copick's voxel spacing, Å.
    tomo_type
        copick's tomogram type (e.g. ``wbp``, ``denoised``).
    mrc
        An MRC file beside the tomogram's OME-Zarr (same stem), or ``None``.
    tomogram
        copick's ``CopickTomogram``.
    """

    run: str
    voxel_size_A: float
    tomo_type: str
    mrc: Path | None
    tomogram: Any


def _spacings_with_tomograms(run: Any) -> dict[float, Any]:
    return {float(vs.voxel_size): vs for vs in run.voxel_spacings if vs.tomograms}


def _choose_spacing(where: Path, runs: Sequence[Any], voxel_size_A: float | None) -> float:
    found = sorted({s for run in runs for s in _spacings_with_tomograms(run)})
    if not found:
        raise ValueError(
            f"{where}: the copick runs {[r.name for r in runs][:5]} hold no tomograms; add "
            "tomograms to the copick project first"
        )
    if voxel_size_A is None:
        if len(found) > 1:
            raise ValueError(
                f"{where}: the runs have tomograms at voxel spacings {found} Å; choose one "
                "(--voxel-size A)"
            )
        return found[0]
    match = [s for s in found if np.isclose(s, voxel_size_A, rtol=SPACING_RTOL)]
    if not match:
        raise ValueError(
            f"{where}: no tomograms at voxel spacing {voxel_size_A:g} Å; the runs have "
            f"{found} Å (--voxel-size)"
        )
    return match[0]


def _choose_type(where: Path, spacings: Sequence[Any], tomo_type: str | None) -> str:
    found = sorted({t.tomo_type for vs in spacings for t in vs.tomograms})
    if tomo_type is None:
        if len(found) > 1:
            raise ValueError(
                f"{where}: voxel spacing {spacings[0].voxel_size:g} Å has tomogram types "
                f"{found}; choose one (--tomo-type TYPE)"
            )
        return found[0]
    if tomo_type not in found:
        raise ValueError(
            f"{where}: no tomograms of type {tomo_type!r} at voxel spacing "
            f"{spacings[0].voxel_size:g} Å; the runs have {found} (--tomo-type)"
        )
    return tomo_type


def select_runs(root: Any, where: Path, names: Sequence[str] | None) -> list[Any]:
    """The copick runs ``names`` (default: all), in name order.

    Raises ``ValueError`` for a project without runs or an unknown name (listing the runs).
    """
    runs = {r.name: r for r in root.runs}
    if not runs:
        raise ValueError(
            f"{where}: the copick project has no runs (no folders in ExperimentRuns/ under "
            "its overlay or static root); check overlay_root and static_root"
        )
    if not names:
        return [runs[n] for n in sorted(runs)]
    unknown = [n for n in names if n not in runs]
    if unknown:
        raise ValueError(
            f"{where}: no copick run {unknown[0]!r}; the project has {sorted(runs)[:10]} (--run)"
        )
    return [runs[n] for n in dict.fromkeys(names)]


def select_tomograms(
    root: Any,
    where: Path,
    runs: Sequence[Any],
    *,
    voxel_size_A: float | None = None,
    tomo_type: str | None = None,
) -> list[CopickTomogram]:
    """One tomogram per run: the voxel spacing and tomogram type every run must have.

    ``voxel_size_A`` / ``tomo_type`` default to the only ones the runs have.

    Raises
    ------
    ValueError
        No tomograms, several spacings or types to choose from, or a run without the
        chosen one (one line naming the choices and the option).
    """
    spacing = _choose_spacing(where, runs, voxel_size_A)
    per_run = {}
    for run in runs:
        have = _spacings_with_tomograms(run)
        match = [vs for s, vs in have.items() if np.isclose(s, spacing, rtol=SPACING_RTOL)]
        if not match:
            raise ValueError(
                f"{where}: run {run.name!r} has no tomograms at voxel spacing {spacing:g} Å "
                f"(it has {sorted(have)} Å); choose the runs (--run NAME) or the spacing "
                "(--voxel-size A)"
            )
        per_run[run.name] = match[0]
    chosen = _choose_type(where, list(per_run.values()), tomo_type)
    out = []
    for name, vs in per_run.items():
        tomos = vs.get_tomograms(chosen)
        if not tomos:
            types = sorted(t.tomo_type for t in vs.tomograms)
            raise ValueError(
                f"{where}: run {name!r} has no {chosen!r} tomogram at {spacing:g} Å (it has "
                f"{types}); choose the runs (--run NAME) or the type (--tomo-type)"
            )
        tomo = tomos[0]
        out.append(CopickTomogram(name, spacing, chosen, _mrc_beside(tomo), tomo))
    return out


def _mrc_beside(tomogram: Any) -> Path | None:
    """An MRC file with the stem of the tomogram's OME-Zarr, on a local filesystem."""
    read_only = bool(getattr(tomogram, "read_only", False))
    fs = getattr(tomogram, "fs_static" if read_only else "fs_overlay", None)
    stem = getattr(tomogram, "static_stem" if read_only else "overlay_stem", None)
    protocol = getattr(fs, "protocol", ())
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if stem is None or "file" not in protocols:
        return None
    for suffix in (".mrc", ".rec"):
        path = Path(f"{stem}{suffix}")
        if path.is_file():
            return path
    return None


def tomogram_mrc(tomogram: CopickTomogram, converted: Path, *, overwrite: bool = False) -> Path:
    """The MRC of a copick tomogram: the one beside its Zarr, else ``converted``.

    ``converted`` is written from the Zarr's full-resolution level (``tomogram.numpy()``,
    the whole volume in memory once) with the copick voxel spacing in its header, atomically.
    """
    if tomogram.mrc is not None:
        return tomogram.mrc
    data = tomogram.tomogram.numpy()
    log.info("%s: converting copick tomogram %s to MRC", converted, tomogram.run)
    return write_mrc(converted, data, tomogram.voxel_size_A, overwrite=overwrite)


@dataclass(frozen=True)
class RunPicks:
    """One copick picks set of a run.

    Attributes
    ----------
    run, object_name, user_id, session_id
        Its run, pickable object, user and session.
    xyz_A
        ``(n, 3)`` particle centres, Å (copick's ``full_positions``).
    """

    run: str
    object_name: str
    user_id: str
    session_id: str
    xyz_A: np.ndarray


def read_run_picks(
    run: Any,
    *,
    objects: Sequence[str],
    user_id: str | None = None,
    session_id: str | None = None,
) -> list[RunPicks]:
    """The picks of ``run`` for ``objects`` (optionally one user's / session's), in name order."""
    found = run.get_picks(object_name=list(objects), user_id=user_id, session_id=session_id)
    out = []
    for picks in sorted(found, key=lambda p: (p.pickable_object_name, p.user_id, p.session_id)):
        xyz = np.asarray(picks.full_positions(), dtype=np.float64).reshape(-1, 3)
        if not np.isfinite(xyz).all():
            raise ValueError(
                f"copick run {run.name!r}: picks {picks.user_id}_{picks.session_id}_"
                f"{picks.pickable_object_name} hold a non-finite location; fix that file"
            )
        out.append(
            RunPicks(run.name, picks.pickable_object_name, picks.user_id, picks.session_id, xyz)
        )
    return out


def copick_config_text(
    *, name: str, description: str, objects: Sequence[dict[str, Any]], overlay: Path
) -> str:
    """A copick filesystem configuration (overlay only) as JSON, built with copick's models.

    ``objects`` are ``PickableObject`` fields (``name``, ``is_particle``, ``label``,
    ``color``, ``radius``).
    """
    copick = import_copick(f"{overlay}: writing a copick configuration")
    fs = copick.impl.filesystem
    config = fs.CopickConfigFSSpec(
        name=name,
        description=description,
        pickable_objects=[copick.models.PickableObject(**o) for o in objects],
        overlay_root="local://" + str(Path(overlay).resolve()),
        overlay_fs_args={"auto_mkdir": True},
    )
    return json.dumps(config.model_dump(exclude_none=True), indent=4) + "\n"


@dataclass(frozen=True)
class OverlayPicks:
    """Picks to write: one run, one pickable object, ``(n, 3)`` xyz Å."""

    run: str
    object_name: str
    xyz_A: np.ndarray
    voxel_spacing: float | None = None


def overlay_picks_path(overlay: Path, picks: OverlayPicks, user_id: str, session_id: str) -> Path:
    """Where copick's filesystem backend keeps these picks in ``overlay``."""
    name = f"{user_id}_{session_id}_{picks.object_name}.json"
    return Path(overlay) / "ExperimentRuns" / picks.run / "Picks" / name


def write_overlay_picks(
    overlay: str | os.PathLike,
    config_text: str,
    sets: Sequence[OverlayPicks],
    *,
    user_id: str,
    session_id: str,
    overwrite: bool = False,
) -> list[Path]:
    """Write picks into a copick overlay folder with copick's ``new_picks`` and ``store()``.

    ``config_text`` is the project's configuration (its pickable objects must include
    every ``object_name``). Existing picks files are refused before anything is written
    unless ``overwrite``.
    """
    overlay = Path(overlay)
    for picks in sets:
        _refuse_existing(overlay_picks_path(overlay, picks, user_id, session_id), overwrite)
    with _staged_overlay(overlay, config_text, "picks") as (copick, root):
        staged = [_store_picks(copick, root, p, user_id, session_id) for p in sets]
        return [_move_into(Path(f), Path(root.root_overlay), overlay) for f in staged]


@contextlib.contextmanager
def _staged_overlay(overlay: Path, config_text: str, what: str) -> Iterator[tuple[Any, Any]]:
    """copick and a copick root whose overlay is a temporary folder beside
    ``overlay/ExperimentRuns`` (removed on exit): files are written there by copick and
    renamed into ``overlay`` by the caller."""
    if overlay.exists() and not overlay.is_dir():
        raise NotADirectoryError(
            f"{overlay}: exists and is not a folder; a copick export needs a folder (--out DIR)"
        )
    copick = import_copick(f"{overlay}: writing copick {what}")
    overlay.mkdir(parents=True, exist_ok=True)
    stage = make_temp_dir(overlay / "ExperimentRuns")
    try:
        config = {**json.loads(config_text), "overlay_root": "local://" + str(stage.resolve())}
        config.pop("static_root", None)
        fs = copick.impl.filesystem
        yield copick, fs.CopickRootFSSpec(fs.CopickConfigFSSpec(**config))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """``FileExistsError`` (with the fix) when ``path`` exists and ``overwrite`` is false."""
    if path.exists() and not overwrite:
        check_can_write(path, overwrite)


def _store_picks(copick: Any, root: Any, picks: OverlayPicks, user_id: str, session_id: str) -> str:
    run = root.get_run(picks.run) or root.new_run(picks.run)
    made = run.new_picks(picks.object_name, session_id, user_id, exist_ok=True)
    made.meta.voxel_spacing = picks.voxel_spacing
    made.meta.trust_orientation = False
    made.points = picks_points(copick, picks.xyz_A)
    made.store()
    return str(made.path)


def _move_into(staged: Path, stage: Path, overlay: Path) -> Path:
    """Rename a staged file (and its run's ``.meta`` where the overlay lacks one) into place."""
    final = overlay / staged.relative_to(stage)
    final.parent.mkdir(parents=True, exist_ok=True)
    run_meta = staged.parent.parent / ".meta"
    if run_meta.is_file() and not (final.parent.parent / ".meta").exists():
        os.replace(run_meta, final.parent.parent / ".meta")
    with open(staged, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(staged, final)
    fsync_directory(final.parent)
    return final


@dataclass(frozen=True)
class OverlaySegmentation:
    """A multilabel segmentation to write: one run, ``(z, y, x)`` uint8 labels (0 background,
    a pickable object's label elsewhere) at ``voxel_spacing`` Å."""

    run: str
    labels: np.ndarray
    voxel_spacing: float


def write_overlay_segmentations(
    overlay: str | os.PathLike,
    config_text: str,
    sets: Sequence[OverlaySegmentation],
    *,
    name: str,
    user_id: str,
    session_id: str,
    overwrite: bool = False,
) -> list[Path]:
    """Write multilabel segmentations into a copick overlay folder with copick's own
    ``run.new_segmentation(spacing, name, session, is_multilabel=True, user)`` and
    ``from_numpy`` (OME-Zarr), staged in a temporary overlay and each ``.zarr`` folder renamed
    into place whole, so no segmentation is ever seen half-written.

    Existing segmentations of the same name, user and session are refused before anything
    is written unless ``overwrite`` (then each is replaced only once its new copy is complete).
    """
    overlay = Path(overlay)
    with _staged_overlay(overlay, config_text, "segmentations") as (_, root):
        staged = []
        for seg in sets:
            run = root.get_run(seg.run) or root.new_run(seg.run)
            made = run.new_segmentation(
                seg.voxel_spacing, name, session_id, True, user_id=user_id, exist_ok=True
            )
            final = overlay / Path(made.path).relative_to(Path(root.root_overlay))
            _refuse_existing(final, overwrite)
            made.from_numpy(np.asarray(seg.labels, dtype=np.uint8))
            staged.append((Path(made.path), final))
        return [_move_dir_into(s, Path(root.root_overlay), overlay) for s, _ in staged]


def _move_dir_into(staged: Path, stage: Path, overlay: Path) -> Path:
    """Rename a staged ``.zarr`` folder (and its run's ``.meta`` where the overlay lacks one)
    into place; an existing folder is set aside first and removed once the new one is in."""
    final = overlay / staged.relative_to(stage)
    final.parent.mkdir(parents=True, exist_ok=True)
    run_meta = staged.parent.parent / ".meta"
    if run_meta.is_file() and not (final.parent.parent / ".meta").exists():
        os.replace(run_meta, final.parent.parent / ".meta")
    old = None
    if final.exists():
        old = make_temp_dir(final)
        os.replace(final, old / final.name)
    os.replace(staged, final)
    fsync_directory(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
