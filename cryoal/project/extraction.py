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
import tempfile
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from cryoal.data.extract import extract_to_store, extraction_attrs
from cryoal.io.store import StoreWriter, SubtomogramStore
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
    with_halves: bool = False,
) -> Path:
    """Extract ``coords`` (candidate_id, tomo_id, z, y, x) into a store with the project's
    box, classes and extraction recipe; ``labels`` are class ids (-1 = unlabelled).

    With ``masks`` (``(n, box, box, box)`` uint8: 0 background, class k + 1, 255 not
    annotated) the store is a segmentation store (its models predict ``background`` and
    the project's classes). With ``with_halves`` and odd/even halves recorded for every
    tomogram of ``coords``, the store also holds each candidate's half pair."""
    tomo_ids = sorted(set(coords["tomo_id"].astype(str)))
    paths = {t: project.tomogram_path(t) for t in tomo_ids}
    halves = project_halves(project, tomo_ids) if with_halves else None
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
        halves=halves,
    )


def project_halves(project: Project, tomo_ids: list[str]) -> dict[str, tuple[Path, Path]] | None:
    """``tomo_id -> (odd, even)`` when every one of ``tomo_ids`` has halves, else None (a
    store holds half pairs for all its candidates or for none)."""
    found = {t: project.halves_paths(t) for t in tomo_ids}
    pairs = {t: p for t, p in found.items() if p is not None}
    if len(pairs) < len(found):
        if pairs:
            log.info(
                "half tomograms recorded for %d of %d tomograms; the candidate store holds no "
                "half pairs (add the others with 'cryoal project add-halves')",
                len(pairs), len(found),
            )  # fmt: skip
        return None
    return pairs


def _recipe_key(project: Project) -> str:
    """What every cached subtomogram depends on besides its candidate: box, edge policy,
    normalisation and the tomogram files (path, size, modification time), their halves'
    files included where recorded."""
    digest = hashlib.sha256()
    digest.update(f"box={project.config.box};edge={EDGE};norm={NORMALISE}\n".encode())
    for t in project.config.tomograms:
        files = [project.tomogram_path(t.id), *(project.halves_paths(t.id) or ())]
        for k, path in enumerate(files):
            stat = path.stat()
            name = t.id if k == 0 else f"{t.id}/half{k}"
            digest.update(f"{name}={path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _table_key(table: pd.DataFrame) -> str:
    """What places the candidates' boxes: their ids, tomograms and centres."""
    rows = table[["candidate_id", "tomo_id", "z", "y", "x"]].to_csv(index=False).encode()
    return hashlib.sha256(rows).hexdigest()[:16]


def candidate_store(
    project: Project, *, progress: CountCallback | None = None, table: pd.DataFrame | None = None
) -> SubtomogramStore:
    """A store with every candidate's subtomogram, cached under ``cache/``.

    The cache file is named by the extraction recipe (box, edge, normalisation, tomogram
    files) and the candidate table, so it is rebuilt exactly when one of them changes (older
    caches are removed). When only candidates changed (added, moved or deleted by hand),
    the new cache copies the unchanged candidates' subtomograms from the previous one and
    extracts only the others. When every tomogram of the table has odd/even halves
    (``cryoal project add-halves``), the cache holds each candidate's half pair too (three
    boxes per candidate on disk), which pretraining makes its views from. ``table`` is the
    candidate table to use (a round's frozen
    ``candidates.csv``, so that cluster jobs never open the label store); default: the
    label store's.
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
    recipe = _recipe_key(project)
    path = cache / f"candidates-{recipe}-{_table_key(table)}.h5"
    if not path.exists():
        previous = sorted(cache.glob(f"candidates-{recipe}-*.h5"), key=_mtime_or_zero)
        try:
            if previous and previous[-1].is_file():
                _update_cache(project, table, previous[-1], path, progress)
            else:
                log.info("extracting %d candidates into %s", len(table), path)
                extract_project_store(project, table, path, progress=progress, with_halves=True)
        except FileExistsError:
            if not path.is_file():
                raise
            # another cryoal process (a Suggest job beside a Train) wrote the same cache
            log.info("%s: written meanwhile by another process; using it", path)
        for old in cache.glob("candidates-*.h5"):
            if old != path:
                old.unlink(missing_ok=True)  # another process may have removed it already
    return SubtomogramStore(path)


def _mtime_or_zero(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by another process since the listing
        return 0.0


def _update_cache(
    project: Project,
    table: pd.DataFrame,
    previous: Path,
    path: Path,
    progress: CountCallback | None,
) -> None:
    """Write the cache of ``table`` at ``path`` from ``previous`` (same recipe): its rows of
    candidates whose id, tomogram and centre are unchanged, copied; the rest extracted."""
    old = SubtomogramStore(previous)
    by_id = pd.Series(np.arange(len(old.ids)), index=np.asarray(old.ids).astype(str))
    where = by_id.reindex(table["candidate_id"].astype(str)).to_numpy()  # NaN: a new id
    known = ~np.isnan(where)
    row = np.where(known, where, 0).astype(np.int64)
    tomos = table["tomo_id"].astype(str).to_numpy()
    kept = known & (np.asarray(old.tomo_ids).astype(str)[row] == tomos)
    kept &= (old.centres_zyx[row] == table[["z", "y", "x"]].to_numpy(np.float64)).all(axis=1)
    rows = row[kept]
    old.close()
    fresh = table[~kept]
    log.info("updating %s: %d candidates kept, %d extracted", path, rows.size, len(fresh))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        extracted = Path(tmp) / "fresh.h5"
        if len(fresh):
            extract_project_store(
                project, fresh, extracted, progress=progress, with_halves=old.has_halves
            )
        tomo_ids = sorted(set(table["tomo_id"].astype(str)))
        extra = extraction_attrs({t: project.tomogram_path(t) for t in tomo_ids}, EDGE, NORMALISE)
        with StoreWriter(path, old.box, old.voxel_size_A, project.config.class_names,
                         dtype=str(old.dtype), with_halves=old.has_halves,
                         extra_attrs=extra) as writer:  # fmt: skip
            writer.copy_rows(previous, rows)
            if progress is not None:
                progress(int(rows.size))
            if len(fresh):
                writer.copy_rows(extracted, np.arange(len(fresh)))
