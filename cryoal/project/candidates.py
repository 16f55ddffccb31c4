"""Creating candidates: imported picks and the blob detector, with stable ids.

Every candidate gets an id ``<tomo_id>:<number>`` (``TS_01:000123``), numbered per
tomogram in the order created and never reused or renumbered. A pick closer than
``dedupe_px`` voxels to an existing candidate of the same tomogram is the same
particle and is not added twice (so importing a file twice is harmless). After every
change ``candidates.csv`` is rewritten (atomically) as a readable view of the table.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cryoal.io.atomic import atomic_path
from cryoal.io.coords import TomogramGeometry, read_coords
from cryoal.io.mrc import open_tomogram
from cryoal.progress import CountCallback
from cryoal.project.detect import detect_blobs
from cryoal.project.project import Project

log = logging.getLogger(__name__)

#: Picks closer than this (voxels) to an existing candidate are duplicates.
DEFAULT_DEDUPE_PX = 1.0


@dataclass
class CandidateImport:
    """What an import or a detection did, per tomogram."""

    added: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    outside: int = 0
    labelled: int = 0
    ids: list[str] = field(default_factory=list)

    @property
    def n_added(self) -> int:
        return sum(self.added.values())


def tomogram_geometries(project: Project) -> dict[str, TomogramGeometry]:
    """``tomo_id -> TomogramGeometry`` for every tomogram (for RELION 5 and Å coordinates)."""
    return {
        t.id: TomogramGeometry(shape_zyx=t.shape_zyx, voxel_size_A=t.voxel_size_A)
        for t in project.config.tomograms
    }


def import_picks(
    project: Project,
    path: str | os.PathLike,
    *,
    tomo_id: str | None = None,
    unit: str | None = None,
    class_name: str | None = None,
    as_labels: bool = False,
    annotator: str | None = None,
    dedupe_px: float = DEFAULT_DEDUPE_PX,
    tomogram_sizes_A: Mapping[str, np.ndarray] | None = None,
) -> CandidateImport:
    """Create candidates from a picks file (RELION 3/4/5 STAR, CSV, copick JSON, CZ cryoET
    Data Portal point ndjson, ``.coords``).

    Parameters
    ----------
    project
        The open project; its tomograms must include every tomogram the file names.
    path
        The picks file.
    tomo_id
        Tomogram the picks belong to when the file names none; for a file naming several
        tomograms, import only this one's picks.
    unit
        Coordinate unit for CSV files (``"angstrom"`` or ``"pixel"``), see ``read_coords``.
    class_name
        Class of every pick (when the file has no ``class_name``); stored as the
        candidate's prior class (a hint used by stratified round 0).
    as_labels
        Also record the picks' classes as labels (they must be project classes; a RELION
        ``rlnClassNumber`` k means the project's k-th class).
    annotator
        Annotator name for ``as_labels`` (default ``import:<file name>``).
    dedupe_px
        Picks closer than this (voxels) to an existing candidate, or to an earlier pick of
        the file, are skipped.
    tomogram_sizes_A
        RELION 5 tomogram extents (Å, from ``cryoal.io.coords.read_tomograms_star``) for
        centred coordinates, see ``read_coords``.

    Raises
    ------
    ValueError
        Picks for a tomogram the project does not have, unknown classes with
        ``as_labels``, or a project without tomograms.
    """
    path = Path(path)
    if not project.config.tomograms:
        raise ValueError(
            f"{path}: the project has no tomograms yet; add them first with "
            "'cryoal project add-tomogram DIR TOMO.mrc'"
        )
    if tomo_id is not None:
        project.config.tomogram(tomo_id)  # unknown id -> error naming the known ones
    with warnings.catch_warnings():
        # read_coords warns about picks outside a tomogram; _add_positions says it once,
        # with what was done about them
        warnings.filterwarnings("ignore", message=".*lie outside tomogram", category=UserWarning)
        table = read_coords(
            path,
            unit=unit,  # type: ignore[arg-type]
            tomo_id=tomo_id,
            voxel_size_A=project.voxel_size_A,
            tomograms=tomogram_geometries(project),
            # RELION rlnClassNumber k names the project's k-th class only for --as-labels;
            # otherwise the number is kept as the prior class (a hint)
            class_names=project.config.class_names if as_labels else None,
            tomogram_sizes_A=tomogram_sizes_A,
        )
    known = {t.id for t in project.config.tomograms}
    unknown = sorted(set(table["tomo_id"].astype(str)) - known)
    if unknown:
        raise ValueError(
            f"{path}: picks for tomogram(s) {unknown[:5]} that the project does not have "
            f"(it has {sorted(known)}); add them with 'cryoal project add-tomogram DIR "
            "TOMO.mrc --tomo-id ID' (the id must match the name in the picks file)"
        )
    if class_name is not None:
        table["class_name"] = class_name
    if as_labels:
        if "class_name" not in table.columns:
            raise ValueError(
                f"{path}: --as-labels needs a class per pick; the file has none, pass --class NAME"
            )
        for name in sorted(set(table["class_name"].astype(str))):
            project.config.class_id(name)  # unknown class -> error naming the classes
    prior = table["class_name"].astype(object) if "class_name" in table.columns else None
    result = _add_positions(
        project,
        table["tomo_id"].astype(str).to_numpy(),
        table[["z", "y", "x"]].to_numpy(dtype=np.float64),
        scores=None,
        prior=None if prior is None else prior.to_numpy(),
        source=f"picks:{path.name}",
        dedupe_px=dedupe_px,
    )
    if as_labels and result.ids:
        new = project.labels.candidates().set_index("candidate_id").loc[result.ids]
        project.labels.add_labels(
            result.ids, new["prior_class"].tolist(), annotator or f"import:{path.name}"
        )
        result.labelled = len(result.ids)
    write_candidates_csv(project)
    return result


def detect_candidates(
    project: Project,
    *,
    tomo_id: str | None = None,
    radius_A: float | None = None,
    n: int | None = None,
    polarity: str | None = None,
    progress: CountCallback | None = None,
) -> CandidateImport:
    """Run the difference-of-Gaussians detector on one or every tomogram of the project.

    Parameters
    ----------
    radius_A
        Particle radius in Å; default ``defaults.particle_radius_A``, else a third of the
        box.
    n
        Candidates kept per tomogram (default ``defaults.detect_n``).
    polarity
        ``dark`` or ``bright`` particles (default: the tomogram's recorded polarity, else
        ``defaults.polarity``).

    Candidates closer than the particle radius to existing ones are not added again.
    """
    cfg = project.config
    vs = project.voxel_size_A
    radius_A = radius_A or cfg.defaults.particle_radius_A or cfg.box * vs / 3.0
    n = n or cfg.defaults.detect_n
    tomo_ids = [tomo_id] if tomo_id is not None else [t.id for t in cfg.tomograms]
    if not tomo_ids:
        raise ValueError(
            f"{project.root}: the project has no tomograms yet; add them with "
            "'cryoal project add-tomogram DIR TOMO.mrc'"
        )
    total = CandidateImport()
    for tid in tomo_ids:
        spec = cfg.tomogram(tid)
        pol = polarity or spec.polarity or cfg.defaults.polarity
        with open_tomogram(project.tomogram_path(tid), voxel_size_A=spec.voxel_size_A) as tomo:
            det = detect_blobs(
                tomo.data, radius_A / vs, n, polarity=pol, progress=progress, source=str(tomo.path)
            )
        part = _add_positions(
            project,
            np.full(len(det), tid, dtype=object),
            det.positions_zyx,
            scores=det.scores,
            prior=None,
            source=f"detect:dog(r={radius_A:g}A,{pol})",
            dedupe_px=radius_A / vs,
        )
        total.added.update(part.added)
        total.duplicates += part.duplicates
        total.ids += part.ids
    write_candidates_csv(project)
    return total


def _add_positions(
    project: Project,
    tomo_ids: np.ndarray,
    zyx: np.ndarray,
    *,
    scores: np.ndarray | None,
    prior: np.ndarray | None,
    source: str,
    dedupe_px: float,
) -> CandidateImport:
    """Skip out-of-volume picks, then insert the rest with new ids, skipping duplicates.

    The duplicate check and the ids are made inside the label store's write transaction
    that inserts the candidates (:meth:`LabelStore.add_numbered_candidates`), so imports
    running at the same time each see the others' candidates and never share an id.
    """
    result = CandidateImport()
    inside = np.zeros(len(tomo_ids), dtype=bool)
    for tid in dict.fromkeys(tomo_ids.tolist()):
        rows = np.flatnonzero(tomo_ids == tid)
        shape = np.asarray(project.config.tomogram(tid).shape_zyx, dtype=np.float64)
        pos = zyx[rows]
        ok = np.all((pos >= -0.5) & (pos < shape - 0.5), axis=1)
        inside[rows] = ok
        result.added[tid] = 0
        if not ok.all():
            result.outside += int((~ok).sum())
            warnings.warn(
                f"{source}: {int((~ok).sum())} picks lie outside tomogram {tid!r} "
                f"(shape {tuple(int(s) for s in shape)} voxels) and were skipped; check the "
                "coordinate unit and the tomogram's voxel size",
                stacklevel=3,
            )
    table = pd.DataFrame({"tomo_id": tomo_ids, "z": zyx[:, 0], "y": zyx[:, 1], "x": zyx[:, 2]})
    if scores is not None:
        table["score"] = scores
    if prior is not None:
        table["prior_class"] = prior
    added = project.labels.add_numbered_candidates(
        table[inside], source, keep=lambda new, old: _not_duplicates(new, old, dedupe_px)
    )
    for tid, n in added["tomo_id"].value_counts(sort=False).items():
        result.added[str(tid)] = int(n)
    result.ids = added["candidate_id"].tolist()
    result.duplicates = int(inside.sum()) - len(added)
    if result.duplicates:
        log.info("%s: %d duplicate positions skipped", source, result.duplicates)
    return result


def _not_duplicates(pos: np.ndarray, existing: np.ndarray, tol: float) -> np.ndarray:
    """``(n,)`` bool: farther than ``tol`` from every existing and every earlier new one."""
    keep = np.ones(len(pos), dtype=bool)
    if len(pos) == 0:
        return keep
    if len(existing):
        dist, _ = cKDTree(existing).query(pos, k=1)
        keep &= dist > tol
    tree = cKDTree(pos)
    for i, j in sorted(tree.query_pairs(r=tol)):
        if keep[i]:
            keep[j] = False
    return keep


def write_candidates_csv(project: Project) -> Path:
    """Rewrite ``candidates.csv`` (atomically) from the label store.

    Columns: candidate_id, tomo_id, z, y, x (voxels, zyx as inside cryoal), x_A, y_A,
    z_A (Å, corner origin, for other tools), source, score, prior_class. The store is read
    and the file replaced under the project lock, so of two imports running at once the
    one that writes last has read the other's candidates too.
    """
    vs = project.voxel_size_A if project.config.voxel_size_A is not None else np.nan
    cols = ["candidate_id", "tomo_id", "z", "y", "x", "x_A", "y_A", "z_A", "source", "score",
            "prior_class"]  # fmt: skip
    with project.locked():
        table = project.labels.candidates()
        for axis in ("x", "y", "z"):
            table[f"{axis}_A"] = table[axis] * vs
        with atomic_path(project.candidates_path, overwrite=True) as tmp:
            table[cols].to_csv(tmp, index=False, lineterminator="\n")
    return project.candidates_path
