"""A labelling project made from a copick project (``cryoal project from-copick``).

The copick project is opened with the copick library (``cryoal.io.copick_project``, the
``copick`` extra). The project gets:

* classes: the copick pickable objects that are particles (``is_particle``), ordered by
  their copick ``label`` then name, or the objects named by the caller, in that order;
* tomograms: one per copick run (the run name is the tomogram id), of one voxel spacing and
  one tomogram type (each chosen automatically when the runs have only one). An MRC beside
  the tomogram's OME-Zarr (same stem) is used where it lies; otherwise the Zarr's
  full-resolution level is converted to ``tomograms/<run>.mrc`` inside the project. The
  voxel size is copick's voxel spacing (a differing MRC header is warned about);
* candidates: every picks set of those objects in those runs (optionally of one user /
  session), as the particle centres copick defines (location + transformation
  translation, Å) divided by the voxel spacing. Each set is written to
  ``imports/copick__<run>__<user>_<session>_<object>.csv`` (x, y, z in voxels, with the
  class) and imported from there, so the project records exactly what it imported.

Everything is read and checked before the project folder is touched; a failure after that
removes what was created.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.io.coords import write_csv, xyz_A_to_zyx_voxels
from cryoal.io.copick_project import (
    CopickTomogram,
    RunPicks,
    open_copick_project,
    read_run_picks,
    select_runs,
    select_tomograms,
    tomogram_mrc,
)
from cryoal.io.mrc import open_tomogram
from cryoal.io.names import check_class_name
from cryoal.project.candidates import CandidateImport, import_picks
from cryoal.project.config import check_tomo_id
from cryoal.project.from_manifest import DEFAULT_BOX
from cryoal.project.layout import CONFIG_NAME
from cryoal.project.project import VOXEL_SIZE_RTOL, Project

log = logging.getLogger(__name__)


@dataclass
class CopickImport:
    """What :func:`project_from_copick` did.

    Attributes
    ----------
    tomograms
        ``tomo_id -> MRC`` used; ``converted`` the runs whose OME-Zarr was converted.
    voxel_size_A, tomo_type
        The copick voxel spacing and tomogram type used.
    picks_sets
        copick picks sets imported.
    imported
        The candidates added per tomogram, repeated and outside picks, labels recorded.
    """

    directory: Path
    classes: list[str]
    voxel_size_A: float
    tomo_type: str
    tomograms: dict[str, Path] = field(default_factory=dict)
    converted: list[str] = field(default_factory=list)
    picks_sets: int = 0
    imported: CandidateImport = field(default_factory=CandidateImport)


def project_from_copick(
    config: str | os.PathLike,
    project_dir: str | os.PathLike,
    *,
    runs: Sequence[str] | None = None,
    voxel_size_A: float | None = None,
    tomo_type: str | None = None,
    objects: Sequence[str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    box: int | None = None,
    as_labels: bool = False,
) -> CopickImport:
    """Create a project in ``project_dir`` from the copick project of ``config``.

    Parameters
    ----------
    config
        The copick configuration JSON.
    project_dir
        New project folder (must not hold a project yet).
    runs
        copick runs to use (default: all).
    voxel_size_A, tomo_type
        copick voxel spacing (Å) and tomogram type of the tomograms (default: the only
        ones the runs have).
    objects
        Pickable objects that become the classes (default: every particle object).
    user_id, session_id
        Import only the picks of this copick user / session (default: all).
    box
        Subtomogram edge, voxels (default 32).
    as_labels
        Also record each pick's object as a label (annotator ``copick:<user>/<session>``).

    Raises
    ------
    FileNotFoundError
        No such configuration.
    FileExistsError
        ``project_dir`` already holds a project.
    ValueError
        copick is not installed, the configuration is not copick's, no objects, runs or
        tomograms to use (the message names the choices and the option), or a name cryoal
        cannot use as a class or tomogram id.
    """
    config = Path(config)
    project_dir = Path(project_dir)
    if project_dir.exists() and not project_dir.is_dir():
        raise NotADirectoryError(
            f"{project_dir}: exists and is not a folder; choose a new project folder"
        )
    if (project_dir / CONFIG_NAME).exists():
        raise FileExistsError(
            f"{project_dir / CONFIG_NAME}: a project already exists here; choose another folder"
        )
    root = open_copick_project(config)
    classes = _classes(root, config, objects)
    chosen_runs = select_runs(root, config, runs)
    for run in chosen_runs:
        _check_run_name(config, run.name)
    tomos = select_tomograms(
        root, config, chosen_runs, voxel_size_A=voxel_size_A, tomo_type=tomo_type
    )
    picks = [
        p
        for run in chosen_runs
        for p in read_run_picks(run, objects=classes, user_id=user_id, session_id=session_id)
        if len(p.xyz_A)
    ]
    before = set(os.listdir(project_dir)) if project_dir.is_dir() else None
    try:
        return _create(project_dir, classes, tomos, picks, box=box, as_labels=as_labels)
    except BaseException:
        _remove_created(project_dir, before)
        raise


def _classes(root: Any, where: Path, objects: Sequence[str] | None) -> list[str]:
    """The class names: ``objects`` (checked), else the copick particle objects."""
    available = list(root.pickable_objects)
    names = [o.name for o in available]
    if objects:
        unknown = [n for n in objects if n not in names]
        if unknown:
            raise ValueError(
                f"{where}: no pickable object {unknown[0]!r} in the copick project; it has "
                f"{names} (--object-name)"
            )
        chosen = list(dict.fromkeys(objects))
    else:
        particles = [o for o in available if o.is_particle]
        particles.sort(key=lambda o: (o.label if o.label is not None else 0, o.name))
        chosen = [o.name for o in particles]
    if not chosen:
        raise ValueError(
            f"{where}: the copick project has no particle objects (pickable_objects with "
            f"is_particle true; it has {names}); name the objects to use (--object-name NAME)"
        )
    for name in chosen:
        try:
            check_class_name(name)
        except ValueError as exc:
            raise ValueError(f"{where}: copick object: {exc}") from None
    return chosen


def _check_run_name(where: Path, name: str) -> None:
    try:
        check_tomo_id(name)
    except ValueError:
        raise ValueError(
            f"{where}: copick run {name!r} cannot be a cryoal tomogram id (it must start with "
            "a letter or digit and hold only letters, digits and _ . -); leave it out by "
            "choosing the runs (--run NAME)"
        ) from None


def _create(
    project_dir: Path,
    classes: list[str],
    tomos: list[CopickTomogram],
    picks: list[RunPicks],
    *,
    box: int | None,
    as_labels: bool,
) -> CopickImport:
    project = Project.init(project_dir, classes, box=box or DEFAULT_BOX)
    result = CopickImport(
        directory=project.root,
        classes=classes,
        voxel_size_A=tomos[0].voxel_size_A,
        tomo_type=tomos[0].tomo_type,
    )
    try:
        for tomo in tomos:
            result.tomograms[tomo.run] = _add_tomogram(project, tomo)
            if tomo.mrc is None:
                result.converted.append(tomo.run)
        spacing = {t.run: t.voxel_size_A for t in tomos}
        imports = project.root / "imports"
        imports.mkdir(exist_ok=True)
        for p in picks:
            _import_set(project, imports, p, spacing[p.run], as_labels, result)
    finally:
        project.close()
    log.info("project %s from copick: %d candidates", project_dir, result.imported.n_added)
    return result


def _add_tomogram(project: Project, tomo: CopickTomogram) -> Path:
    """Add a run's tomogram (its MRC, converted from the Zarr if there is none)."""
    converted = project.root / "tomograms" / f"{tomo.run}.mrc"
    if tomo.mrc is None:
        converted.parent.mkdir(exist_ok=True)
    path = tomogram_mrc(tomo, converted)
    if tomo.mrc is not None:
        _warn_other_header(path, tomo)
    project.add_tomogram(path, tomo.run, voxel_size_A=tomo.voxel_size_A)
    return path


def _warn_other_header(path: Path, tomo: CopickTomogram) -> None:
    with contextlib.suppress(ValueError), open_tomogram(path) as t:
        header = t.voxel_size_A
        if not np.isclose(header, tomo.voxel_size_A, rtol=VOXEL_SIZE_RTOL):
            warnings.warn(
                f"{path}: header voxel size {header:.4g} Å differs from copick's voxel spacing "
                f"{tomo.voxel_size_A:.4g} Å of run {tomo.run!r}; the project uses copick's, "
                "as copick places the picks with it",
                stacklevel=4,
            )


def _import_set(
    project: Project,
    imports: Path,
    picks: RunPicks,
    voxel_size_A: float,
    as_labels: bool,
    result: CopickImport,
) -> None:
    """Write one picks set as a voxel CSV in ``imports/`` and import it as candidates."""
    zyx = xyz_A_to_zyx_voxels(picks.xyz_A, voxel_size_A)
    table = pd.DataFrame(
        {
            "candidate_id": [f"{picks.run}:{k:06d}" for k in range(len(zyx))],
            "tomo_id": picks.run,
            "z": zyx[:, 0],
            "y": zyx[:, 1],
            "x": zyx[:, 2],
            "class_name": picks.object_name,
        }
    )
    name = f"copick__{picks.run}__{picks.user_id}_{picks.session_id}_{picks.object_name}.csv"
    csv = write_csv(table, imports / name, unit="pixel", voxel_size_A=None, overwrite=True)
    res = import_picks(
        project, csv, unit="pixel", as_labels=as_labels,
        annotator=f"copick:{picks.user_id}/{picks.session_id}",
    )  # fmt: skip
    result.picks_sets += 1
    total = result.imported
    for tid, n in res.added.items():
        total.added[tid] = total.added.get(tid, 0) + n
    total.duplicates += res.duplicates
    total.outside += res.outside
    total.labelled += res.labelled
    total.ids += res.ids


def _remove_created(project_dir: Path, before: set[str] | None) -> None:
    """Remove what a failed creation left in ``project_dir`` (``before``: what was there)."""
    if before is None:
        shutil.rmtree(project_dir, ignore_errors=True)
        return
    if not project_dir.is_dir():
        return
    for name in set(os.listdir(project_dir)) - before:
        path = project_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
