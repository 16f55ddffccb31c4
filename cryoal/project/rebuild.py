"""Rebuild a project's missing label store (``labels.sqlite``) from the files beside it.

``cryoal project rebuild-labels PROJECT``: when ``labels.sqlite`` was deleted, or a damaged
one was moved aside, a new store is made with the classes of ``project.yaml`` and filled
from what the project keeps on disk:

* candidates: the newest snapshot's frozen candidate table (``rounds/NNN/candidates.csv``,
  hash checked), then those of the project's readable copy ``candidates.csv`` that are not
  in it (candidates added after the snapshot);
* labels: the newest snapshot (``rounds/NNN/snapshot.csv``, hash checked), each label with
  its id, kind, class, annotator, round, model version and time, so the rebuilt store's
  labels are exactly the snapshot's; a segmentation label with its mask from the
  snapshot's ``masks.npz`` (hash checked; source ``restored``: how it was painted and what
  it cost are in no file);
* suggestion queues: every round's ``rounds/NNN/suggestions.csv`` whose candidates are all
  known, with the model version of that round's ``round.json`` (or of the merged queue's
  ``suggestions.json``).

Labels made after the newest snapshot are in no file and cannot come back; with no snapshot
at all, the store holds candidates and queues only. The history of candidate edits
(``candidate_edits``) is in no file either: a rebuilt store starts it afresh, and a
candidate of the snapshot deleted after it is live again (delete it once more). The store is built under a temporary
name and renamed to ``labels.sqlite`` when complete, so an interrupted rebuild leaves no
store behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_path
from cryoal.project.config import load_config
from cryoal.project.labels import CANDIDATE_COLUMNS, LabelStore
from cryoal.project.layout import (
    CANDIDATES_NAME,
    CONFIG_NAME,
    LABELS_NAME,
    MERGED_NAME,
    SNAPSHOT_NAME,
    SUGGESTIONS_NAME,
    round_dir,
    round_numbers,
)
from cryoal.project.pool import read_pool
from cryoal.project.rounds import read_model_info
from cryoal.project.snapshot import read_snapshot, read_snapshot_masks, snapshot_rounds

log = logging.getLogger(__name__)


@dataclass
class RebuildResult:
    """What the rebuilt store holds and where it came from.

    ``snapshot`` is the snapshot the labels came from (None: there was none);
    ``queues`` the rounds whose suggestion queue was restored, ``skipped_queues`` those
    whose queue names candidates no file holds.
    """

    path: Path
    snapshot: Path | None
    n_candidates: int
    n_labels: int
    queues: list[int] = field(default_factory=list)
    skipped_queues: list[int] = field(default_factory=list)


def rebuild_label_store(root: str | os.PathLike) -> RebuildResult:
    """Make ``ROOT/labels.sqlite`` again from the project's snapshots and tables.

    Raises
    ------
    FileNotFoundError
        ``root`` holds no ``project.yaml``.
    FileExistsError
        ``labels.sqlite`` exists (a damaged one must be moved aside first).
    ValueError
        A snapshot or candidate table whose hash does not match, or labels of classes the
        project does not have.
    """
    root = Path(root)
    config = load_config(root / CONFIG_NAME)
    final = root / LABELS_NAME
    if final.exists():
        raise FileExistsError(
            f"{final}: the label store exists, so there is nothing to rebuild; to replace a "
            f"damaged one, move it aside first (mv {final} {final}.damaged)"
        )
    snapshot_round = _newest_snapshot_round(root)
    candidates = _candidates(root, snapshot_round)
    labels = None if snapshot_round is None else read_snapshot(round_dir(root, snapshot_round))
    masks = None if snapshot_round is None else read_snapshot_masks(round_dir(root, snapshot_round))
    with atomic_path(final, overwrite=False) as tmp:
        try:
            store = LabelStore.create(tmp, config.class_names)
            try:
                result = _fill(store, root, candidates, labels, masks, snapshot_round)
            finally:
                store.close()
        finally:
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{tmp}{suffix}")
    result.path = final
    log.info("rebuilt %s: %d candidates, %d labels", final, result.n_candidates, result.n_labels)
    return result


def _newest_snapshot_round(root: Path) -> int | None:
    """The newest round with a snapshot file (its hash is checked when it is read)."""
    rounds = [r for r in snapshot_rounds(root) if (round_dir(root, r) / SNAPSHOT_NAME).is_file()]
    return rounds[-1] if rounds else None


def _candidates(root: Path, snapshot_round: int | None) -> pd.DataFrame:
    """The snapshot's frozen candidates, then the newer ones of ``candidates.csv``."""
    parts = []
    if snapshot_round is not None:
        parts.append(read_pool(round_dir(root, snapshot_round)))
    readable = root / CANDIDATES_NAME
    if readable.is_file():
        try:
            table = pd.read_csv(readable, dtype={"candidate_id": str, "tomo_id": str})
            parts.append(table.loc[:, list(CANDIDATE_COLUMNS)])
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            log.warning("%s: unreadable (%s); its candidates are not restored", readable, exc)
    if not parts:
        return pd.DataFrame(columns=list(CANDIDATE_COLUMNS))
    table = pd.concat(parts, ignore_index=True)
    return table.drop_duplicates("candidate_id", keep="first").reset_index(drop=True)


def _fill(
    store: LabelStore,
    root: Path,
    candidates: pd.DataFrame,
    labels: pd.DataFrame | None,
    masks: dict[str, np.ndarray] | None,
    snapshot_round: int | None,
) -> RebuildResult:
    sources = candidates["source"].where(candidates["source"].notna(), "rebuild")
    for source, group in candidates.groupby(sources.astype(str), sort=False):
        store.add_candidates(group, source=str(source))
    snapshot = None if snapshot_round is None else round_dir(root, snapshot_round) / SNAPSHOT_NAME
    result = RebuildResult(root / LABELS_NAME, snapshot, len(candidates), 0)
    known = set(candidates["candidate_id"].astype(str))
    for round_ in round_numbers(root):
        if _restore_queue(store, root, round_, known):
            result.queues.append(round_)
        elif (round_dir(root, round_) / SUGGESTIONS_NAME).is_file():
            result.skipped_queues.append(round_)
    if labels is not None:
        result.n_labels = store.restore_labels(labels, source=str(snapshot), masks=masks)
    return result


def _restore_queue(store: LabelStore, root: Path, round_: int, known: set[str]) -> bool:
    """Write round ``round_``'s queue from its ``suggestions.csv``; False when it has none
    or names unknown candidates."""
    directory = round_dir(root, round_)
    path = directory / SUGGESTIONS_NAME
    if not path.is_file():
        return False
    try:
        table = pd.read_csv(path, dtype={"candidate_id": str}).sort_values("rank")
        ids = table["candidate_id"].astype(str).tolist()
        scores = table["score"].to_numpy(dtype=float)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        log.warning("%s: unreadable (%s); its queue is not restored", path, exc)
        return False
    if not set(ids) <= known:
        return False
    model_version, seed = _queue_provenance(root, round_)
    strategy = str(table["strategy"].iloc[0]) if len(table) else "unknown"
    store.write_suggestions(
        round_, ids, scores, strategy,
        model_version=model_version, seed=seed,
    )  # fmt: skip
    return True


def _queue_provenance(root: Path, round_: int) -> tuple[str | None, int | None]:
    """Model version and seed of round ``round_``'s queue, from the files that record them."""
    merged = round_dir(root, round_) / MERGED_NAME
    if merged.is_file():
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(merged.read_text(encoding="utf-8"))
            return record.get("model_version"), record.get("seed")
    info = read_model_info(root, round_) if round_ > 0 else None
    return (info.model_version if info is not None else None), None
