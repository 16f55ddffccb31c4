"""A labelling project made from a fetched dataset (``cryoal project from-manifest``).

The project gets the dataset's classes (class map, in id order), its tomograms (ids from the
manifest, voxel size from the MRC headers) and its picks as candidates. Each picks file is
converted from its convention to zyx voxels (``cryoal.data.manifest_data.read_picks``),
written to ``imports/<path>.csv`` (x, y, z in voxels, with the class) inside the project, and
imported from there, so the project records exactly what it imported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cryoal.data.manifest_data import read_picks, tomogram_files, tomogram_geometries
from cryoal.io.coords import write_csv
from cryoal.io.manifest import Manifest
from cryoal.project.candidates import import_picks
from cryoal.project.project import Project

logger = logging.getLogger(__name__)

#: Default subtomogram box when neither the call nor the manifest gives one.
DEFAULT_BOX = 32


@dataclass
class ManifestImport:
    """What :func:`project_from_manifest` did."""

    directory: Path
    classes: list[str]
    tomograms: list[str]
    candidates: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    outside: int = 0
    labelled: int = 0

    @property
    def n_candidates(self) -> int:
        return sum(self.candidates.values())


def _safe_name(path: str) -> str:
    # sim/particles.star -> sim__particles_star.csv (distinct for every manifest path)
    return path.replace("/", "__").replace(".", "_") + ".csv"


def project_from_manifest(
    manifest: Manifest,
    data_dir: str | os.PathLike,
    project_dir: str | os.PathLike,
    *,
    box: int | None = None,
    as_labels: bool = False,
) -> ManifestImport:
    """Create a project in ``project_dir`` from a dataset fetched into ``data_dir``.

    Parameters
    ----------
    manifest
        The dataset's manifest (it needs tomograms and a class map; without picks files
        the project has no candidates until ``cryoal project detect`` finds some).
    data_dir
        Folder the dataset was fetched into (``cryoal data fetch NAME --to DATA_DIR``).
    project_dir
        New project folder (must not hold a project yet).
    box
        Subtomogram edge, voxels; default the manifest's ``box``, else 32.
    as_labels
        Also record the picks' classes as labels (annotator ``dataset:<name>``), e.g. to
        train on a dataset's ground truth. Default: the classes are kept as each
        candidate's prior class only, and an expert (or the loop) labels them.

    Raises
    ------
    FileNotFoundError
        A tomogram or picks file is not in ``data_dir`` (the message says how to fetch it).
    FileExistsError
        ``project_dir`` already holds a project.
    ValueError
        The dataset has no tomograms or classes, or the picks use a class the class map does
        not know.
    """
    data_dir = Path(data_dir)
    if not manifest.classes:
        raise ValueError(f"dataset {manifest.name!r} has no class map; add classes to its manifest")
    tomos = tomogram_files(manifest, data_dir)
    geometries = tomogram_geometries(manifest, data_dir)
    # a dataset without picks still makes a project: 'cryoal project detect' finds candidates
    picks = (
        read_picks(manifest, data_dir, geometries=geometries)
        if manifest.files_of("picks")
        else pd.DataFrame({"source_file": []})
    )
    overrides = {f.tomo_id: f.voxel_size_A for f in manifest.files_of("tomogram")}
    project = Project.init(
        project_dir,
        manifest.class_names,
        box=box or manifest.box or DEFAULT_BOX,
        name=manifest.name,
    )
    result = ManifestImport(
        directory=project.root, classes=manifest.class_names, tomograms=list(tomos)
    )
    try:
        for tomo_id, path in tomos.items():
            project.add_tomogram(path, tomo_id, voxel_size_A=overrides.get(tomo_id))
        imports = project.root / "imports"
        imports.mkdir(exist_ok=True)
        for source, table in picks.groupby("source_file", sort=False):
            table = table.drop(columns=["source_file"])
            if "class_name" in table.columns and table["class_name"].isna().all():
                table = table.drop(columns=["class_name"])
            csv = write_csv(
                table, imports / _safe_name(str(source)), unit="pixel", voxel_size_A=None,
                overwrite=True,
            )  # fmt: skip
            res = import_picks(
                project, csv, unit="pixel", as_labels=as_labels,
                annotator=f"dataset:{manifest.name}",
            )  # fmt: skip
            for tid, n in res.added.items():
                result.candidates[tid] = result.candidates.get(tid, 0) + n
            result.duplicates += res.duplicates
            result.outside += res.outside
            result.labelled += res.labelled
    finally:
        project.close()
    logger.info(
        "project %s from %s: %d candidates", project_dir, manifest.name, result.n_candidates
    )
    return result
