"""Fixing a project's candidates by hand, and removing a tomogram added by mistake.

A person adds a particle the detector missed, re-centres an off-centre pick, deletes a
duplicate (and restores it); every change is a committed row of the label store's
``candidate_edits`` with who and when (:mod:`cryoal.project.labels.edits`), and
``candidates.csv`` is rewritten after it. The viewer's candidate layer and the
``cryoal project add-candidate / move-candidate / delete-candidates / restore-candidates /
remove-tomogram`` commands both call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryoal.project.candidates import write_candidates_csv
from cryoal.project.project import Project

log = logging.getLogger(__name__)


def particle_radius_px(project: Project) -> float:
    """The project's particle radius in voxels: ``defaults.particle_radius_A``, else a
    third of the box (the detector's rule). Two candidates closer than this are one
    particle."""
    cfg = project.config
    vs = project.voxel_size_A
    return float((cfg.defaults.particle_radius_A or cfg.box * vs / 3.0) / vs)


def _check_inside(project: Project, tomo_id: str, zyx: Sequence[float]) -> list[float]:
    shape = np.asarray(project.config.tomogram(tomo_id).shape_zyx, dtype=np.float64)
    pos = np.asarray(zyx, dtype=np.float64).reshape(-1)
    if pos.shape != (3,) or not np.isfinite(pos).all():
        raise ValueError(f"position {list(pos)} must be three finite numbers z, y, x (voxels)")
    if np.any(pos < -0.5) or np.any(pos >= shape - 0.5):
        raise ValueError(
            f"position z, y, x = {', '.join(f'{v:g}' for v in pos)} voxels lies outside "
            f"tomogram {tomo_id!r} (shape {tuple(int(s) for s in shape)}); give voxel "
            "coordinates inside it"
        )
    return [float(v) for v in pos]


def add_candidate(
    project: Project,
    tomo_id: str,
    zyx: Sequence[float],
    annotator: str,
    *,
    queue_round: int | None = None,
) -> str:
    """Add a particle placed by hand at ``zyx`` (voxels) of ``tomo_id``; its new id.

    ``queue_round`` appends it to that round's queue so it can be labelled at once.
    Refused (``ValueError`` naming the candidate) within :func:`particle_radius_px` of a
    live candidate, and outside the tomogram.
    """
    pos = _check_inside(project, tomo_id, zyx)
    cid = project.labels.add_candidate_by_hand(
        tomo_id, pos, annotator, round=queue_round, min_distance_px=particle_radius_px(project)
    )
    write_candidates_csv(project)
    log.info("%s: %s added %s at z, y, x = %s voxels", project.root, annotator, cid, pos)
    return cid


def move_candidate(
    project: Project, candidate_id: str, zyx: Sequence[float], annotator: str
) -> None:
    """Re-centre ``candidate_id`` on ``zyx`` (voxels of its tomogram); labels stay."""
    pos = _check_inside(project, project.labels.tomogram_of(candidate_id), zyx)
    project.labels.move_candidate(candidate_id, pos, annotator)
    write_candidates_csv(project)


def delete_candidates(project: Project, candidate_ids: Sequence[str], annotator: str) -> int:
    """Delete candidates (kept in the history, restorable); the number newly deleted."""
    n = project.labels.delete_candidates(candidate_ids, annotator)
    write_candidates_csv(project)
    return n


def restore_candidates(project: Project, candidate_ids: Sequence[str], annotator: str) -> int:
    """Bring deleted candidates back with their labels; the number restored. Refused
    (``ValueError``) for a candidate whose tomogram is no longer in the project."""
    for cid in candidate_ids:
        tomo_id = project.labels.tomogram_of(cid)
        if tomo_id not in {t.id for t in project.config.tomograms}:
            raise ValueError(
                f"candidate {cid!r}: its tomogram {tomo_id!r} was removed from "
                f"{project.root}; add the tomogram again under that id first ('cryoal "
                f"project add-tomogram {project.root} TOMO.mrc --tomo-id {tomo_id}')"
            )
    n = project.labels.restore_candidates(candidate_ids, annotator)
    write_candidates_csv(project)
    return n


@dataclass(frozen=True)
class TomogramRemoval:
    """What removing a tomogram did: its candidates deleted, its labels left out."""

    tomo_id: str
    candidates: int
    labels: int


def remove_tomogram(
    project: Project, tomo_id: str, annotator: str, *, force: bool = False
) -> TomogramRemoval:
    """Remove tomogram ``tomo_id`` from ``project.yaml`` and delete its candidates.

    The candidates are deleted as edits (history kept; restorable if the tomogram is
    added again under the same id), so nothing is erased. A tomogram whose candidates
    carry labels is refused unless ``force``: those labels would leave the training set.

    Raises
    ------
    ValueError
        Unknown tomogram, or labels exist and not ``force`` (the message gives the count
        and the option).
    """
    project.config.tomogram(tomo_id)  # unknown id: error naming the known ones
    store = project.labels
    labelled = store.current_labels()
    n_labels = int((labelled["tomo_id"] == tomo_id).sum())
    if n_labels and not force:
        raise ValueError(
            f"tomogram {tomo_id!r} of {project.root} has {n_labels} labelled candidates; "
            "removing it takes them out of training (they stay in the history); pass "
            "--force to remove it anyway"
        )
    ids = store.candidates(tomo_id)["candidate_id"].tolist()
    # candidates first: a crash before project.yaml is saved leaves a tomogram with no
    # candidates (run the command again), never candidates of a tomogram that is gone
    store.delete_candidates(ids, annotator)
    with project.editing() as config:
        config.tomograms = [t for t in config.tomograms if t.id != tomo_id]
    write_candidates_csv(project)
    log.info("%s: removed tomogram %s (%d candidates deleted)", project.root, tomo_id, len(ids))
    return TomogramRemoval(tomo_id, len(ids), n_labels)
