"""Candidates fixed by hand: added, moved (re-centred), deleted and restored.

Each edit is one committed transaction that changes the candidate's row (its position, or
its ``deleted`` flag) and appends a ``candidate_edits`` row saying who did what, when, and
from where to where, so nothing is silently lost: a deleted candidate keeps its row and its
labels' history, leaves the pools, queues and current labels, and comes back with
:meth:`CandidateEdits.restore_candidates`. :class:`~cryoal.project.labels.LabelStore`
inherits these methods.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryoal.project.labels.errors import translate_sqlite_errors
from cryoal.project.labels.rows import (
    INSERT_CANDIDATE,
    _candidate_rows,
    _check_annotator,
    _next_candidate_number,
    _unknown_candidate_message,
    deleted_candidate_message,
)
from cryoal.project.labels.schema import EDIT_COLUMNS, utc_now

#: Source of a candidate added by hand (``manual:<annotator>``).
MANUAL_SOURCE = "manual"
#: Strategy recorded for a candidate appended to a round's queue by hand.
ADDED_STRATEGY = "added"

_INSERT_EDIT = (
    "INSERT INTO candidate_edits (candidate_id, action, z, y, x, from_z, from_y, from_x, "
    "annotator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class CandidateEdits:
    """The candidate-editing half of :class:`~cryoal.project.labels.LabelStore`."""

    path: Path
    _lock: Any
    _conn: sqlite3.Connection
    if TYPE_CHECKING:  # LabelStore's write transaction

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    def add_candidate_by_hand(
        self,
        tomo_id: str,
        zyx: Sequence[float],
        annotator: str,
        *,
        round: int | None = None,
        min_distance_px: float = 0.0,
    ) -> str:
        """Add one candidate a person placed (a particle the detector missed).

        Parameters
        ----------
        tomo_id
            Its tomogram.
        zyx
            Position (voxels of the tomogram).
        annotator
            Who placed it; the candidate's source is ``manual:<annotator>``.
        round
            Append it to this round's suggestion queue (last rank, strategy ``added``), so
            the viewer can label it at once; None: not queued.
        min_distance_px
            Refuse a position closer than this (voxels) to a live candidate of the
            tomogram (the same particle twice).

        Returns
        -------
        str
            The new candidate's id (the tomogram's next number; ids are never reused).

        Raises
        ------
        ValueError
            Non-finite position, an empty annotator, a position too close to a live
            candidate (the message names it), or a round without a queue.
        """
        who = _check_annotator(annotator)
        pos = _position(zyx)
        with self._write() as conn:
            if min_distance_px > 0:
                near = _nearest_live(conn, tomo_id, pos)
                if near is not None and near[1] <= min_distance_px:
                    raise ValueError(
                        f"{self.path}: a candidate is already at {near[1]:.1f} voxels from "
                        f"({', '.join(f'{v:.1f}' for v in pos)}) in tomogram {tomo_id!r}: "
                        f"{near[0]}; select it instead of adding another"
                    )
            existing = conn.execute(
                "SELECT candidate_id FROM candidates WHERE tomo_id = ?", (tomo_id,)
            ).fetchall()
            cid = f"{tomo_id}:{_next_candidate_number(tomo_id, (r[0] for r in existing)):06d}"
            table = pd.DataFrame({"candidate_id": [cid], "tomo_id": [tomo_id], "z": [pos[0]],
                                  "y": [pos[1]], "x": [pos[2]]})  # fmt: skip
            conn.executemany(INSERT_CANDIDATE, _candidate_rows(table, f"{MANUAL_SOURCE}:{who}"))
            conn.execute(_INSERT_EDIT, (cid, "added", *pos, None, None, None, who, utc_now()))
            if round is not None:
                if (
                    conn.execute("SELECT 1 FROM rounds WHERE round = ?", (round,)).fetchone()
                    is None
                ):
                    raise ValueError(f"{self.path}: round {round} has no queue to add {cid} to")
                rank = conn.execute(
                    "SELECT COALESCE(MAX(rank), -1) + 1 FROM suggestions WHERE round = ?", (round,)
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO suggestions (round, rank, candidate_id, score, strategy) "
                    "VALUES (?, ?, ?, NULL, ?)",
                    (round, int(rank), cid, ADDED_STRATEGY),
                )
        return cid

    def move_candidate(self, candidate_id: str, zyx: Sequence[float], annotator: str) -> None:
        """Re-centre a live candidate on ``zyx`` (voxels); its labels stay with it.

        Raises
        ------
        ValueError
            Unknown or deleted candidate, non-finite position, or an empty annotator.
        """
        who = _check_annotator(annotator)
        pos = _position(zyx)
        with self._write() as conn:
            before = self._live_position(conn, candidate_id)
            conn.execute(
                "UPDATE candidates SET z = ?, y = ?, x = ? WHERE candidate_id = ?",
                (*pos, candidate_id),
            )
            conn.execute(_INSERT_EDIT, (candidate_id, "moved", *pos, *before, who, utc_now()))

    def delete_candidates(self, candidate_ids: Sequence[str], annotator: str) -> int:
        """Delete candidates (duplicates, wrong picks) in ONE transaction: they leave the
        pool, the queues and the current labels; rows and history stay. Candidates already
        deleted are left as they are.

        Returns
        -------
        int
            Number newly deleted.

        Raises
        ------
        ValueError
            An unknown id (nothing is deleted), or an empty annotator.
        """
        return self._set_deleted(candidate_ids, annotator, deleted=True)

    def restore_candidates(self, candidate_ids: Sequence[str], annotator: str) -> int:
        """Bring deleted candidates back (with their labels), in ONE transaction; the
        number restored."""
        return self._set_deleted(candidate_ids, annotator, deleted=False)

    def _set_deleted(self, candidate_ids: Sequence[str], annotator: str, *, deleted: bool) -> int:
        who = _check_annotator(annotator)
        ids = list(dict.fromkeys(str(c) for c in candidate_ids))
        now = utc_now()
        changed = 0
        with self._write() as conn:
            rows = {}
            for cid in ids:
                row = conn.execute(
                    "SELECT z, y, x, deleted FROM candidates WHERE candidate_id = ?", (cid,)
                ).fetchone()
                if row is None:
                    raise ValueError(_unknown_candidate_message(self.path, [cid]))
                rows[cid] = row
            for cid, (z, y, x, was) in rows.items():
                if bool(was) == deleted:
                    continue
                conn.execute(
                    "UPDATE candidates SET deleted = ? WHERE candidate_id = ?", (int(deleted), cid)
                )
                action = "deleted" if deleted else "restored"
                conn.execute(_INSERT_EDIT, (cid, action, z, y, x, None, None, None, who, now))
                changed += 1
        return changed

    def tomogram_of(self, candidate_id: str) -> str:
        """The tomogram of a candidate (live or deleted); ``ValueError`` when unknown."""
        with self._lock, translate_sqlite_errors(self.path):
            row = self._conn.execute(
                "SELECT tomo_id FROM candidates WHERE candidate_id = ?", (candidate_id,)
            ).fetchone()
        if row is None:
            raise ValueError(_unknown_candidate_message(self.path, [candidate_id]))
        return str(row[0])

    def candidate_edits(self, tomo_id: str | None = None) -> pd.DataFrame:
        """Every candidate edit (oldest first); columns ``EDIT_COLUMNS``."""
        sql = (
            "SELECT e.edit_id, e.candidate_id, c.tomo_id, e.action, e.z, e.y, e.x, e.from_z, "
            "e.from_y, e.from_x, e.annotator, e.created_at FROM candidate_edits AS e "
            "JOIN candidates AS c ON c.candidate_id = e.candidate_id"
        )
        params: tuple = ()
        if tomo_id is not None:
            sql += " WHERE c.tomo_id = ?"
            params = (tomo_id,)
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql + " ORDER BY e.edit_id", params).fetchall()
        return pd.DataFrame(rows, columns=list(EDIT_COLUMNS))

    def deleted_ids(self, tomo_id: str | None = None) -> list[str]:
        """Ids of deleted candidates (of one tomogram), sorted."""
        sql = "SELECT candidate_id FROM candidates WHERE deleted = 1"
        params: tuple = ()
        if tomo_id is not None:
            sql += " AND tomo_id = ?"
            params = (tomo_id,)
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql + " ORDER BY candidate_id", params).fetchall()
        return [r[0] for r in rows]

    def _live_position(self, conn: sqlite3.Connection, candidate_id: str) -> tuple[float, ...]:
        row = conn.execute(
            "SELECT z, y, x, deleted FROM candidates WHERE candidate_id = ?", (candidate_id,)
        ).fetchone()
        if row is None:
            raise ValueError(_unknown_candidate_message(self.path, [candidate_id]))
        if row[3]:
            raise ValueError(deleted_candidate_message(self.path, candidate_id))
        return tuple(float(v) for v in row[:3])


def _position(zyx: Sequence[float]) -> tuple[float, float, float]:
    pos = np.asarray(zyx, dtype=np.float64).reshape(-1)
    if pos.shape != (3,) or not np.isfinite(pos).all():
        raise ValueError(f"candidate position {list(pos)} must be three finite numbers z, y, x")
    return float(pos[0]), float(pos[1]), float(pos[2])


def _nearest_live(
    conn: sqlite3.Connection, tomo_id: str, pos: tuple[float, float, float]
) -> tuple[str, float] | None:
    rows = conn.execute(
        "SELECT candidate_id, z, y, x FROM live_candidates WHERE tomo_id = ?", (tomo_id,)
    ).fetchall()
    if not rows:
        return None
    xyz = np.array([r[1:] for r in rows], dtype=np.float64)
    dist = np.linalg.norm(xyz - np.asarray(pos), axis=1)
    i = int(np.argmin(dist))
    return str(rows[i][0]), float(dist[i])
