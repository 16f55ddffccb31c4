"""Subtomogram stores for a project: one extraction recipe for training and scoring.

Training (labelled candidates of a snapshot) and scoring (every candidate) must cut and
normalise subtomograms identically, or the model would score data unlike what it learned
from; both go through :func:`extract_project_store`, which calls
``cryoal.data.extract.extract_to_store``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from cryoal.data.extract import extract_to_store
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.project.layout import CACHE_DIR
from cryoal.project.project import Project

log = logging.getLogger(__name__)

#: Extraction options shared by training and scoring stores.
EDGE: Final = "pad"
NORMALISE = True


def extract_project_store(
    project: Project,
    coords: pd.DataFrame,
    out_h5: str | os.PathLike,
    *,
    labels: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    overwrite: bool = False,
    progress: CountCallback | None = None,
) -> Path:
    """Extract ``coords`` (candidate_id, tomo_id, z, y, x) into a store with the project's
    box, classes and extraction recipe; ``labels`` are class ids (-1 = unlabelled).

    With ``masks`` (``(n, box, box, box)`` uint8: 0 background, class k + 1, 255 not
    annotated) the store is a segmentation store (its models predict ``background`` and
    the project's classes)."""
    tomo_ids = sorted(set(coords["tomo_id"].astype(str)))
    paths = {t: project.tomogram_path(t) for t in tomo_ids}
    if labels is None:
        labels = np.full(len(coords), -1, dtype=np.int64)
    return extract_to_store(
        paths,
        coords[["candidate_id", "tomo_id", "z", "y", "x"]],
        out_h5,
        project.config.box,
        edge=EDGE,
        normalise=NORMALISE,
        class_names=project.config.class_names,
        labels=labels,
        masks=masks,
        overwrite=overwrite,
        voxel_size_A=project.voxel_size_A,
        progress=progress,
    )


def _pool_key(project: Project, table: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(f"box={project.config.box};edge={EDGE};norm={NORMALISE}\n".encode())
    for t in project.config.tomograms:
        path = project.tomogram_path(t.id)
        stat = path.stat()
        digest.update(f"{t.id}={path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    digest.update(table[["candidate_id", "tomo_id", "z", "y", "x"]].to_csv(index=False).encode())
    return digest.hexdigest()[:16]


def candidate_store(
    project: Project, *, progress: CountCallback | None = None, table: pd.DataFrame | None = None
) -> SubtomogramStore:
    """A store with every candidate's subtomogram, cached under ``cache/``.

    The cache file is named by a hash of the candidate table, the box and the tomogram
    files, so it is rebuilt exactly when one of them changes (older caches are removed).
    ``table`` is the candidate table to use (a round's frozen ``candidates.csv``, so that
    cluster jobs never open the label store); default: the label store's.
    """
    if table is None:
        table = project.labels.candidates()
    if table.empty:
        raise ValueError(
            f"{project.root}: the project has no candidates; import picks "
            "('cryoal project import-picks') or run the detector ('cryoal project detect')"
        )
    cache = project.root / CACHE_DIR
    cache.mkdir(exist_ok=True)
    path = cache / f"candidates-{_pool_key(project, table)}.h5"
    if not path.exists():
        log.info("extracting %d candidates into %s", len(table), path)
        extract_project_store(project, table, path, progress=progress)
        for old in cache.glob("candidates-*.h5"):
            if old != path:
                old.unlink()
    return SubtomogramStore(path)
