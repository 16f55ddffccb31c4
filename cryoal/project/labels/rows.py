"""Statements the label store runs inside its write transactions, and its label frame.

Checks of an annotator name and of candidate ids (with the message for unknown ids), the
rows of new candidates and the next free number of a tomogram's candidate ids, the
insert of one label row with its provenance (round and model version, looked up from the
suggestion queue when not given), and the ``LABEL_COLUMNS`` table of current labels.
These run on a connection the caller already holds in a transaction; they never commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.project.labels.schema import KIND_CLASS, KINDS, LABEL_COLUMNS, SOURCES, utc_now

#: The insert of one candidate row (the values of :func:`_candidate_rows`).
INSERT_CANDIDATE = (
    "INSERT INTO candidates (candidate_id, tomo_id, z, y, x, source, score, prior_class, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _candidate_rows(table: pd.DataFrame, source: str) -> list[tuple]:
    """Rows for :data:`INSERT_CANDIDATE` from a table with ``candidate_id``, ``tomo_id``,
    ``z``, ``y``, ``x`` and optionally ``score`` and ``prior_class``.

    Raises ``ValueError`` for a missing column, non-finite coordinates or a repeated id.
    """
    missing = {"candidate_id", "tomo_id", "z", "y", "x"} - set(table.columns)
    if missing:
        raise ValueError(f"candidate table lacks columns {sorted(missing)}")
    zyx = table[["z", "y", "x"]].to_numpy(dtype=np.float64)
    if not np.isfinite(zyx).all():
        raise ValueError("candidate coordinates contain NaN/Inf; fix the picks file")
    ids = table["candidate_id"].astype(str).tolist()
    dup = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(dup):
        raise ValueError(f"candidate id {dup[0]!r} is repeated in the new candidates")
    scores = (
        table["score"].to_numpy(dtype=np.float64) if "score" in table else np.full(len(ids), np.nan)
    )
    prior = table["prior_class"].tolist() if "prior_class" in table else [None] * len(ids)
    now = utc_now()
    return [
        (
            cid, str(t), float(z), float(y), float(x), source,
            None if not np.isfinite(s) else float(s),
            None if p is None or (isinstance(p, float) and np.isnan(p)) or p == "" else str(p),
            now,
        )
        for cid, t, (z, y, x), s, p in zip(ids, table["tomo_id"], zyx, scores, prior, strict=True)
    ]  # fmt: skip


def _next_candidate_number(tomo_id: str, ids: Iterable[str]) -> int:
    """First free ``n`` for ids ``f"{tomo_id}:{n:06d}"``: the largest in ``ids`` plus 1."""
    numbers = [0]
    for cid in ids:
        head, _, tail = cid.rpartition(":")
        if head == tomo_id and tail.isdigit():
            numbers.append(int(tail) + 1)
    return max(numbers)


def _check_annotator(annotator: str) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError(
            "annotator must be a non-empty name (a person, or a tool such as 'import:file.csv')"
        )
    return annotator.strip()


def _unknown_candidates(conn: sqlite3.Connection, ids: Iterable[str]) -> list[str]:
    unknown = []
    for cid in ids:
        if (
            conn.execute("SELECT 1 FROM live_candidates WHERE candidate_id = ?", (cid,)).fetchone()
            is None
        ):
            unknown.append(cid)
    return unknown


def _first_existing(conn: sqlite3.Connection, ids: Iterable[str]) -> str:
    for cid in ids:
        if conn.execute("SELECT 1 FROM candidates WHERE candidate_id = ?", (cid,)).fetchone():
            return cid
    return "?"


def _unknown_candidate_message(path: Path, unknown: Sequence[str]) -> str:
    more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
    return (
        f"unknown candidate {unknown[0]!r}{more} in {path}; candidate ids look like "
        "'TS_01:000123' (see candidates.csv in the project folder); import "
        "picks or run the detector to create candidates first"
    )


def deleted_candidate_message(path: Path, candidate_id: str) -> str:
    """One line: the candidate was deleted, and how to bring it back."""
    return (
        f"candidate {candidate_id!r} was deleted from {path}; restore it first with 'cryoal "
        f"project restore-candidates {path.parent} {candidate_id}'"
    )


def _insert_label_row(
    conn: sqlite3.Connection,
    path: Path,
    candidate_id: str,
    kind: str,
    class_id: int | None,
    annotator: str,
    round: int | None,
    model_version: str | None,
    source: str = "decision",
    undoes: int | None = None,
) -> tuple[int, int | None, str | None, str]:
    if source not in SOURCES:
        raise ValueError(f"label source {source!r}: choose one of {', '.join(SOURCES)}")
    row = conn.execute(
        "SELECT deleted FROM candidates WHERE candidate_id = ?", (candidate_id,)
    ).fetchone()
    if row is None:
        raise ValueError(_unknown_candidate_message(path, [candidate_id]))
    if row[0]:
        raise ValueError(deleted_candidate_message(path, candidate_id))
    if round is None:
        row = conn.execute(
            "SELECT s.round, r.model_version FROM suggestions AS s JOIN rounds AS r "
            "ON r.round = s.round WHERE s.candidate_id = ? ORDER BY s.round DESC LIMIT 1",
            (candidate_id,),
        ).fetchone()
        if row is not None:
            round = int(row[0])
            model_version = model_version if model_version is not None else row[1]
    elif model_version is None:
        row = conn.execute("SELECT model_version FROM rounds WHERE round = ?", (round,)).fetchone()
        model_version = None if row is None else row[0]
    now = utc_now()
    cur = conn.execute(
        "INSERT INTO labels (candidate_id, kind, class_id, annotator, round, model_version, "
        "created_at, source, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (candidate_id, kind, class_id, annotator, round, model_version, now, source, undoes),
    )
    row_id = cur.lastrowid
    if row_id is None:  # sqlite3 sets it after every successful INSERT
        raise RuntimeError(f"{candidate_id}: the label store returned no row id for the label")
    return int(row_id), round, model_version, now


def _cell(value: Any) -> Any:
    """A table cell as SQLite stores it: None for an empty or missing value."""
    if isinstance(value, str):
        return value or None
    return None if value is None or bool(pd.isna(value)) else value


def _restored_label_row(
    row: Any, class_names: Sequence[str], source: str
) -> tuple[int, str, str, int | None, str, int | None, str | None, str]:
    """A ``labels`` row from a snapshot row (:meth:`LabelStore.restore_labels`), checked
    against the store's kinds and classes."""
    kind, class_id, name = str(row.kind), _cell(row.class_id), _cell(row.class_name)
    known = kind in KINDS and (kind == KIND_CLASS) == (class_id is not None)
    if class_id is not None:
        class_id = int(class_id)
        known = known and 0 <= class_id < len(class_names) and class_names[class_id] == name
    if not known:
        raise ValueError(
            f"{source}: label {kind} {class_id}={name!r} of {row.candidate_id} is not one of "
            f"the project's (classes {list(class_names)}); the class list was changed after "
            "labelling, restore it in project.yaml"
        )
    round_, version = _cell(row.round), _cell(row.model_version)
    return (
        int(row.label_id), str(row.candidate_id), kind, class_id,
        _check_annotator(str(row.annotator)), None if round_ is None else int(round_),
        None if version is None else str(version), str(row.created_at),
    )  # fmt: skip


def _label_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    return df.astype(
        {"candidate_id": object, "tomo_id": object, "z": float, "y": float, "x": float,
         "class_id": "Int64", "round": "Int64", "label_id": "int64"}
    )  # fmt: skip
