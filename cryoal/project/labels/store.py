"""The live label store: :class:`LabelStore`, the API the napari widget calls.

Every label an expert makes is a committed transaction the moment the call returns, so
neither a crash, ``kill -9`` nor a power cut loses it, and the file is never
half-rewritten. WAL mode lets one writer (the napari widget) and any number of readers
(``cryoal status``, a snapshot, a suggestion job) work at the same time; writes start
with ``BEGIN IMMEDIATE`` and every connection has a busy timeout, so nobody sees
"database is locked". Reads that need one consistent view run in one read transaction
(:meth:`LabelStore.consistent_read`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.project.config import SPECIAL_LABELS
from cryoal.project.labels.connection import (
    DEFAULT_BUSY_TIMEOUT_S,
    _connect,
    _has_tables,
    _split_sql,
    warn_if_network_filesystem,
)
from cryoal.project.labels.edits import CandidateEdits
from cryoal.project.labels.errors import (
    DamagedStoreError,
    damaged_store_message,
    translate_sqlite_errors,
)
from cryoal.project.labels.masks import MaskLabels, check_mask, pack_mask
from cryoal.project.labels.rows import (
    INSERT_CANDIDATE,
    _candidate_rows,
    _check_annotator,
    _first_existing,
    _insert_label_row,
    _label_frame,
    _next_candidate_number,
    _restored_label_row,
    _unknown_candidate_message,
    _unknown_candidates,
)
from cryoal.project.labels.schema import (
    _SCHEMA,
    CANDIDATE_COLUMNS,
    KIND_CLASS,
    KIND_CLEARED,
    KIND_MASK,
    LABEL_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    Label,
    utc_now,
)

log = logging.getLogger(__name__)


class LabelStore(CandidateEdits, MaskLabels):
    """The project's live label store (SQLite, WAL), the API the napari widget calls.

    Open an existing store with ``LabelStore(path)``; create one with
    ``LabelStore.create(path, class_names)``. A store may be used from several threads
    (calls are serialised by a lock) and from several processes on one host at once.

    Parameters
    ----------
    path
        ``labels.sqlite``.
    busy_timeout_s
        How long a call waits for a concurrent writer before failing.
    check_filesystem
        Warn when the file lives on a network filesystem (WAL is unsafe there).

    Raises
    ------
    FileNotFoundError
        No store at ``path``.
    ValueError
        Not a cryoal label store, or one written by a newer cryoal.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        check_filesystem: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: no label store here; create a project with "
                "'cryoal project init DIR --classes a,b'"
            )
        if check_filesystem:
            warn_if_network_filesystem(self.path, stacklevel=3)
        self._lock = threading.RLock()
        with translate_sqlite_errors(self.path):
            self._conn = _connect(self.path, busy_timeout_s)
            try:
                self._check_schema()
                self._class_names = self._read_class_names()
            except BaseException:
                self._conn.close()
                raise

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        class_names: Sequence[str],
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> LabelStore:
        """Create a new, empty store with classes ``class_names`` (ids 0..n-1 in order).

        Raises
        ------
        FileExistsError
            A non-empty database already exists at ``path``.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{path.parent}: folder does not exist; create it first")
        if len(set(class_names)) != len(class_names) or not class_names:
            raise ValueError(f"class names {list(class_names)} must be non-empty and unique")
        conn = _connect(path, busy_timeout_s)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != 0 or _has_tables(conn):
                raise FileExistsError(
                    f"{path}: a label store already exists; open it instead, or remove it "
                    "to start over (every label in it would be lost)"
                )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ValueError(
                    f"{path}: SQLite refused WAL mode (got {mode!r}); put the project on a "
                    "local disk"
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO classes (class_id, name) VALUES (?, ?)",
                    [(i, str(n)) for i, n in enumerate(class_names)],
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        return cls(path, busy_timeout_s=busy_timeout_s)

    def close(self) -> None:
        """Close the connection (committed data is already on disk)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # -- transactions ----------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front so a
        concurrent writer makes us wait (busy timeout) instead of failing mid-way."""
        with self._lock, translate_sqlite_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same committed state."""
        with self._lock, translate_sqlite_errors(self.path):
            if self._conn.in_transaction:  # nested in consistent_read(): same view
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")

    def _check_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise ValueError(
                f"{self.path}: not a cryoal label store (no schema); create a project with "
                "'cryoal project init'"
            )
        if version in MIGRATIONS:
            version = self._migrate(version)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: label store schema version {version} was written by a newer "
                f"cryoal (this one reads {SCHEMA_VERSION}); upgrade cryoal"
            )
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: unknown label store schema version {version}; this cryoal "
                f"reads version {SCHEMA_VERSION}"
            )
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            self._conn.execute("PRAGMA journal_mode=WAL")

    def _migrate(self, version: int) -> int:
        """Bring an older store to ``SCHEMA_VERSION``, one version per transaction (all of a
        step or none of it); a concurrent opener that migrated first is left alone. The
        version reached."""
        while version in MIGRATIONS:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                now = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                if now == version:
                    for statement in MIGRATIONS[version]:
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            log.info("%s: label store upgraded to schema version %d", self.path, version)
        return version

    def _read_class_names(self) -> list[str]:
        rows = self._conn.execute("SELECT class_id, name FROM classes ORDER BY class_id").fetchall()
        if [cid for cid, _ in rows] != list(range(len(rows))) or not rows:
            # A store always holds classes 0..n-1; anything else is damage, not a change.
            self.raise_if_damaged()
        return [name for _, name in rows]

    def raise_if_damaged(self) -> None:
        """Raise :class:`DamagedStoreError` when ``PRAGMA quick_check`` finds damage."""
        with self._lock, translate_sqlite_errors(self.path):
            result = [r[0] for r in self._conn.execute("PRAGMA quick_check").fetchall()]
        if result != ["ok"]:
            raise DamagedStoreError(damaged_store_message(self.path, result[0]))

    # -- classes ---------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names ordered by class id."""
        return list(self._class_names)

    def resolve_label(self, label: str | int) -> tuple[str, int | None]:
        """``(kind, class_id)`` for a class name, class id, ``unsure`` or ``not-a-particle``.

        Raises
        ------
        ValueError
            Unknown class name or id (the message lists the valid ones).
        """
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < len(self._class_names):
                return KIND_CLASS, int(label)
        elif isinstance(label, str):
            text = label.strip()
            if text in SPECIAL_LABELS:
                return text, None
            if text in self._class_names:
                return KIND_CLASS, self._class_names.index(text)
        ids = f" (ids 0..{len(self._class_names) - 1})" if not isinstance(label, str) else ""
        raise ValueError(
            f"unknown class {label!r}; the project's classes are {self._class_names}{ids} "
            f"or the special labels {list(SPECIAL_LABELS)}; give one of these names"
        )

    # -- candidates ------------------------------------------------------------------
    def add_candidates(self, table: pd.DataFrame, source: str) -> int:
        """Insert candidates with the ids they carry, in one transaction (all or none).

        Parameters
        ----------
        table
            Columns ``candidate_id`` (str), ``tomo_id`` (str), ``z``, ``y``, ``x`` (voxels),
            optionally ``score`` (float) and ``prior_class`` (str or None).
        source
            Where they came from, e.g. ``"picks:TS_01.star"`` or ``"detect:dog"``.

        Returns
        -------
        int
            Number inserted.

        Raises
        ------
        ValueError
            A candidate id already exists or is repeated, or coordinates are not finite.
        """
        rows = _candidate_rows(table, source)
        if not rows:
            return 0
        with self._write() as conn:
            try:
                conn.executemany(INSERT_CANDIDATE, rows)
            except sqlite3.IntegrityError as exc:
                clash = _first_existing(conn, [r[0] for r in rows])
                raise ValueError(
                    f"candidate id {clash!r} already exists in {self.path}; candidate ids are "
                    "permanent, choose new ones"
                ) from exc
        log.info("%s: added %d candidates from %s", self.path, len(rows), source)
        return len(rows)

    def add_numbered_candidates(
        self,
        table: pd.DataFrame,
        source: str,
        keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """Give new candidates the next ids of their tomograms and insert them, in ONE
        write transaction.

        The transaction starts with ``BEGIN IMMEDIATE`` (the write lock), reads each
        tomogram's candidates, numbers the new ones ``<tomo_id>:<n>`` from the largest
        existing number + 1 and inserts them, so concurrent imports wait for each other
        and never pick the same id.

        Parameters
        ----------
        table
            Columns ``tomo_id``, ``z``, ``y``, ``x`` (voxels), optionally ``score`` and
            ``prior_class``; ids are numbered in row order within each tomogram.
        source
            Where they came from (see :meth:`add_candidates`).
        keep
            ``keep(new_zyx, existing_zyx) -> bool mask`` over the new rows of one
            tomogram, called inside the transaction with that tomogram's candidates as
            they are then (e.g. to skip duplicates); default: keep all.

        Returns
        -------
        pandas.DataFrame
            The inserted rows with their ``candidate_id`` as first column (``table``'s
            index kept).
        """
        with self._write() as conn:
            parts = [
                self._number_candidates(conn, group, tomo_id, keep)
                for tomo_id, group in table.groupby("tomo_id", sort=False)
            ]
            added = pd.concat(parts) if parts else table.iloc[:0].assign(candidate_id=[])
            added = added[["candidate_id", *table.columns]]
            rows = _candidate_rows(added, source)
            conn.executemany(INSERT_CANDIDATE, rows)
        if rows:
            log.info("%s: added %d candidates from %s", self.path, len(rows), source)
        return added

    @staticmethod
    def _number_candidates(
        conn: sqlite3.Connection,
        group: pd.DataFrame,
        tomo_id: str,
        keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    ) -> pd.DataFrame:
        """The rows of ``group`` (one tomogram) that ``keep`` keeps, with their new ids."""
        # numbered after every id ever given (deleted ones too: ids are never reused);
        # duplicates are looked for among the live candidates only
        existing = conn.execute(
            "SELECT candidate_id, z, y, x, deleted FROM candidates WHERE tomo_id = ?",
            (str(tomo_id),),
        ).fetchall()
        if keep is not None:
            live = [r[1:4] for r in existing if not r[4]]
            known = np.array(live, dtype=np.float64).reshape(-1, 3)
            group = group[keep(group[["z", "y", "x"]].to_numpy(dtype=np.float64), known)]
        first = _next_candidate_number(str(tomo_id), (r[0] for r in existing))
        ids = [f"{tomo_id}:{first + i:06d}" for i in range(len(group))]
        return group.assign(candidate_id=ids)

    def candidates(self, tomo_id: str | None = None) -> pd.DataFrame:
        """The live candidates (or those of one tomogram; deleted ones left out), sorted by
        id; columns ``CANDIDATE_COLUMNS``."""
        sql = f"SELECT {', '.join(CANDIDATE_COLUMNS)} FROM live_candidates"
        params: tuple = ()
        if tomo_id is not None:
            sql += " WHERE tomo_id = ?"
            params = (tomo_id,)
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql + " ORDER BY candidate_id", params).fetchall()
        df = pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))
        return df.astype({"candidate_id": object, "tomo_id": object, "z": float, "y": float,
                          "x": float, "score": float})  # fmt: skip

    def n_candidates(self, tomo_id: str | None = None) -> int:
        """Number of live candidates (of one tomogram)."""
        with self._lock, translate_sqlite_errors(self.path):
            if tomo_id is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM live_candidates").fetchone()[0])
            return int(
                self._conn.execute(
                    "SELECT COUNT(*) FROM live_candidates WHERE tomo_id = ?", (tomo_id,)
                ).fetchone()[0]
            )

    def has_candidate(self, candidate_id: str) -> bool:
        """Whether ``candidate_id`` is a live candidate (exists and is not deleted)."""
        with self._lock, translate_sqlite_errors(self.path):
            row = self._conn.execute(
                "SELECT 1 FROM live_candidates WHERE candidate_id = ?", (candidate_id,)
            ).fetchone()
        return row is not None

    # -- labels ----------------------------------------------------------------------
    def add_label(
        self,
        candidate_id: str,
        label: str | int,
        annotator: str,
        *,
        round: int | None = None,
        model_version: str | None = None,
        source: str = "decision",
        undoes: int | None = None,
    ) -> Label:
        """Record one label in its own committed transaction; returns once it is durable.

        Parameters
        ----------
        candidate_id
            The candidate, e.g. ``"TS_01:000123"``.
        label
            Class name, class id, ``"unsure"`` or ``"not-a-particle"``.
        annotator
            Who labelled it (a person, or a tool name such as ``"import:labels.csv"``).
        round, model_version
            Provenance. When ``round`` is None it is the newest round whose suggestion
            queue holds the candidate (None if never suggested); when ``model_version`` is
            None it is the model that proposed that round.
        source, undoes
            How the row came to be (``SOURCES``: ``decision``, ``confirmed``, ``import``,
            ``undo``, ``restore``) and, for an ``undo`` row, the label id it undoes.

        Raises
        ------
        ValueError
            Unknown candidate or class, or an empty annotator.
        """
        kind, class_id = self.resolve_label(label)
        return self._insert_label(
            candidate_id, kind, class_id, annotator, round, model_version, source, undoes
        )

    def clear_label(
        self,
        candidate_id: str,
        annotator: str,
        *,
        source: str = "decision",
        undoes: int | None = None,
    ) -> Label:
        """Withdraw the candidate's label (it becomes unlabelled again; history is kept)."""
        return self._insert_label(
            candidate_id, KIND_CLEARED, None, annotator, None, None, source, undoes
        )

    def _insert_label(
        self,
        candidate_id: str,
        kind: str,
        class_id: int | None,
        annotator: str,
        round: int | None,
        model_version: str | None,
        source: str = "decision",
        undoes: int | None = None,
    ) -> Label:
        annotator = _check_annotator(annotator)
        with self._write() as conn:
            row = _insert_label_row(
                conn, self.path, candidate_id, kind, class_id, annotator, round, model_version,
                source, undoes,
            )  # fmt: skip
        name = self._class_names[class_id] if class_id is not None else None
        return Label(
            row[0], candidate_id, kind, class_id, name, annotator, row[1], row[2], row[3],
            source, undoes,
        )  # fmt: skip

    def add_labels(
        self,
        candidate_ids: Sequence[str],
        labels: Sequence[str | int],
        annotator: str | Sequence[str],
        *,
        round: int | None = None,
        source: str = "import",
    ) -> int:
        """Record many labels in ONE transaction (all or none), e.g. a CSV import.

        Every id and label is validated before anything is written. ``annotator`` is one
        name for all, or one per label. Provenance as in ``add_label`` (``source``
        ``import`` unless told).

        Returns
        -------
        int
            Number of labels written.
        """
        if len(candidate_ids) != len(labels):
            raise ValueError(f"{len(candidate_ids)} candidate ids but {len(labels)} labels")
        annotators = [annotator] * len(labels) if isinstance(annotator, str) else list(annotator)
        if len(annotators) != len(labels):
            raise ValueError(f"{len(annotators)} annotators for {len(labels)} labels")
        resolved = [self.resolve_label(lab) for lab in labels]
        annotators = [_check_annotator(a) for a in annotators]
        with self._write() as conn:
            unknown = _unknown_candidates(conn, candidate_ids)
            if unknown:
                raise ValueError(_unknown_candidate_message(self.path, unknown))
            for cid, (kind, class_id), who in zip(candidate_ids, resolved, annotators, strict=True):
                _insert_label_row(
                    conn, self.path, str(cid), kind, class_id, who, round, None, source
                )
        return len(candidate_ids)

    def restore_labels(
        self,
        table: pd.DataFrame,
        source: str,
        masks: Mapping[str, np.ndarray] | None = None,
    ) -> int:
        """Insert labels exactly as ``table`` recorded them, in ONE transaction (all or none).

        ``table`` has the columns of :meth:`current_labels` (a ``rounds/NNN/snapshot.csv``);
        every row keeps its label id, kind, class, annotator, round, model version and
        time, so afterwards the store's current labels are the table's. A ``mask`` row gets
        its mask from ``masks`` (candidate id -> ``(z, y, x)`` uint8, a snapshot's
        ``masks.npz``) with the source ``restored`` (its edit cost is not known). ``source``
        names the table in messages. Meant for a store being rebuilt (the ids must be free).

        Raises
        ------
        ValueError
            A kind or class that is not this store's (the message names ``source``), an
            unknown candidate, or a mask row whose mask ``masks`` lacks or is invalid.
        """
        rows = [_restored_label_row(r, self._class_names, source) for r in table.itertuples()]
        packed = []
        for label_id, candidate_id, kind, *_ in rows:
            if kind != KIND_MASK:
                continue
            if masks is None or candidate_id not in masks:
                raise ValueError(
                    f"{source}: the mask label of {candidate_id} has no mask beside it; "
                    "restore the snapshot's masks.npz (or take a new snapshot)"
                )
            arr = check_mask(masks[candidate_id], len(self._class_names))
            packed.append((label_id, *arr.shape, *pack_mask(arr)))
        with self._write() as conn:
            unknown = _unknown_candidates(conn, [r[1] for r in rows])
            if unknown:
                raise ValueError(f"{source}: {_unknown_candidate_message(self.path, unknown)}")
            conn.executemany(
                "INSERT INTO labels (label_id, candidate_id, kind, class_id, annotator, round, "
                "model_version, created_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'restore')",
                rows,
            )
            conn.executemany(
                "INSERT INTO masks (label_id, nz, ny, nx, data, sha256, source) "
                "VALUES (?, ?, ?, ?, ?, ?, 'restored')",
                packed,
            )
        return len(rows)

    def current_labels(
        self, include_special: bool = True, tomo_id: str | None = None
    ) -> pd.DataFrame:
        """The winning (newest) label of every labelled candidate (of ``tomo_id`` only,
        when given: read through the candidates' index, not the whole history), sorted by
        candidate id.

        Columns ``LABEL_COLUMNS``: ``kind`` is ``class``, ``unsure`` or ``not-a-particle``;
        ``class_id`` / ``class_name`` are set for ``class`` rows only. Candidates whose
        newest label is ``cleared`` are unlabelled and not listed.
        """
        sql = f"SELECT {', '.join(LABEL_COLUMNS)} FROM current_labels WHERE 1"
        params: tuple = ()
        if not include_special:
            sql += f" AND kind = '{KIND_CLASS}'"
        if tomo_id is not None:
            sql += " AND tomo_id = ?"
            params = (tomo_id,)
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql + " ORDER BY candidate_id", params).fetchall()
        return _label_frame(rows)

    def count_labels(self) -> list[tuple[str, str, int]]:
        """Current labels counted per name (a class's name, ``unsure``, ``not-a-particle``,
        ``mask``) and tomogram: ``(name, tomo_id, count)`` rows, in one aggregate query."""
        sql = (
            f"SELECT CASE WHEN kind = '{KIND_CLASS}' THEN class_name ELSE kind END AS name, "
            "tomo_id, COUNT(*) FROM current_labels GROUP BY name, tomo_id"
        )
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql).fetchall()
        return [(str(name), str(tomo), int(n)) for name, tomo, n in rows]

    def label_history(self, candidate_id: str | None = None) -> pd.DataFrame:
        """Every label ever stored (oldest first), including withdrawn and overridden ones."""
        sql = (
            "SELECT l.label_id, l.candidate_id, l.kind, l.class_id, k.name, l.annotator, "
            "l.round, l.model_version, l.created_at, l.source, l.undoes FROM labels AS l "
            "LEFT JOIN classes AS k ON k.class_id = l.class_id"
        )
        params: tuple = ()
        if candidate_id is not None:
            sql += " WHERE l.candidate_id = ?"
            params = (candidate_id,)
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql + " ORDER BY l.label_id", params).fetchall()
        cols = ["label_id", "candidate_id", "kind", "class_id", "class_name", "annotator",
                "round", "model_version", "created_at", "source", "undoes"]  # fmt: skip
        return pd.DataFrame(rows, columns=cols).astype(
            {"class_id": "Int64", "round": "Int64", "undoes": "Int64"}
        )

    def current_label(self, candidate_id: str) -> Label | None:
        """The candidate's winning label, or None when unlabelled."""
        with self._lock, translate_sqlite_errors(self.path):
            row = self._conn.execute(
                "SELECT c.label_id, c.candidate_id, c.kind, c.class_id, c.class_name, "
                "c.annotator, c.round, c.model_version, c.created_at, l.source, l.undoes "
                "FROM current_labels AS c JOIN labels AS l ON l.label_id = c.label_id "
                "WHERE c.candidate_id = ?",
                (candidate_id,),
            ).fetchone()
        return None if row is None else Label(*row)

    def unlabelled_ids(self) -> list[str]:
        """Ids of candidates with no current label (sorted)."""
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(
                "SELECT candidate_id FROM live_candidates WHERE candidate_id NOT IN "
                "(SELECT candidate_id FROM current_labels) ORDER BY candidate_id"
            ).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        """Current label counts: one entry per class, ``unsure``, ``not-a-particle``,
        ``unlabelled`` and ``candidates`` (live candidates)."""
        with self._read() as conn:
            by_class = dict(
                conn.execute(
                    "SELECT class_id, COUNT(*) FROM current_labels WHERE kind = 'class' "
                    "GROUP BY class_id"
                ).fetchall()
            )
            by_kind = dict(
                conn.execute("SELECT kind, COUNT(*) FROM current_labels GROUP BY kind").fetchall()
            )
            total = int(conn.execute("SELECT COUNT(*) FROM live_candidates").fetchone()[0])
        out = {name: int(by_class.get(i, 0)) for i, name in enumerate(self._class_names)}
        for special in SPECIAL_LABELS:
            out[special] = int(by_kind.get(special, 0))
        out["unlabelled"] = total - sum(int(v) for v in by_kind.values())
        out["candidates"] = total
        return out

    # -- rounds and suggestions ------------------------------------------------------
    def write_suggestions(
        self,
        round: int,
        candidate_ids: Sequence[str],
        scores: Sequence[float] | np.ndarray | None,
        strategy: str,
        *,
        model_version: str | None = None,
        seed: int | None = None,
        replace: bool = False,
    ) -> None:
        """Store round ``round`` and its ranked suggestion queue in one transaction.

        ``candidate_ids`` are in rank order (rank 0 = ask first); ``scores`` align with
        them (None for strategies without scores, e.g. random).

        Raises
        ------
        ValueError
            The round already has suggestions (and not ``replace``), an id is unknown or
            repeated, or lengths differ.
        """
        if round < 0:
            raise ValueError(f"round {round} must be >= 0")
        ids = [str(c) for c in candidate_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("suggested candidate ids must be distinct")
        if scores is None:
            score_list: list[float | None] = [None] * len(ids)
        else:
            arr = np.asarray(scores, dtype=np.float64)
            if arr.shape != (len(ids),):
                raise ValueError(f"{arr.shape[0]} scores for {len(ids)} suggestions")
            score_list = [None if not np.isfinite(s) else float(s) for s in arr]
        with self._write() as conn:
            exists = conn.execute("SELECT 1 FROM rounds WHERE round = ?", (round,)).fetchone()
            if exists and not replace:
                raise ValueError(
                    f"{self.path}: round {round} already has suggestions; label them, then "
                    "snapshot and train a new model for the next round, or pass --replace "
                    "to replace this round's queue"
                )
            unknown = _unknown_candidates(conn, ids)
            if unknown:
                raise ValueError(_unknown_candidate_message(self.path, unknown))
            if exists:
                conn.execute("DELETE FROM suggestions WHERE round = ?", (round,))
                conn.execute("DELETE FROM rounds WHERE round = ?", (round,))
            conn.execute(
                "INSERT INTO rounds (round, strategy, model_version, k, seed, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (round, strategy, model_version, len(ids), seed, utc_now()),
            )
            conn.executemany(
                "INSERT INTO suggestions (round, rank, candidate_id, score, strategy) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (round, rank, cid, s, strategy)
                    for rank, (cid, s) in enumerate(zip(ids, score_list, strict=True))
                ],
            )

    def latest_round(self) -> int | None:
        """The newest round with suggestions, or None before round 0."""
        with self._lock, translate_sqlite_errors(self.path):
            row = self._conn.execute("SELECT MAX(round) FROM rounds").fetchone()
        return None if row[0] is None else int(row[0])

    def rounds(self) -> pd.DataFrame:
        """One row per round: round, strategy, model_version, k, seed, created_at."""
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(
                "SELECT round, strategy, model_version, k, seed, created_at FROM rounds "
                "ORDER BY round"
            ).fetchall()
        return pd.DataFrame(
            rows, columns=["round", "strategy", "model_version", "k", "seed", "created_at"]
        )

    def queue(self, round: int | None = None, include_labelled: bool = False) -> pd.DataFrame:
        """A round's suggestions in rank order (the newest round by default).

        Columns: rank, candidate_id, score, strategy, tomo_id, z, y, x, kind, class_name
        (the candidate's current label, None when unlabelled). Without
        ``include_labelled`` only candidates still waiting for a label are listed.
        """
        cols = ["rank", "candidate_id", "score", "strategy", "tomo_id", "z", "y", "x", "kind",
                "class_name"]  # fmt: skip
        with self._read() as conn:
            if round is None:
                row = conn.execute("SELECT MAX(round) FROM rounds").fetchone()
                if row[0] is None:
                    return pd.DataFrame(columns=cols)
                round = int(row[0])
            # each suggestion's label looked up by candidate (an index search per row):
            # a LEFT JOIN on the view would build the view for every candidate first
            label_of = (
                "(SELECT cl.{} FROM current_labels AS cl WHERE cl.candidate_id = s.candidate_id)"
            )
            sql = (
                "SELECT s.rank, s.candidate_id, s.score, s.strategy, c.tomo_id, c.z, c.y, c.x, "
                f"{label_of.format('kind')}, {label_of.format('class_name')} "
                "FROM suggestions AS s JOIN live_candidates AS c ON c.candidate_id = s.candidate_id "
                "WHERE s.round = ?"
            )
            if not include_labelled:
                sql += f" AND {label_of.format('label_id')} IS NULL"
            rows = conn.execute(sql + " ORDER BY s.rank", (round,)).fetchall()
        return pd.DataFrame(rows, columns=cols)

    def next_suggestion(self, round: int | None = None) -> str | None:
        """Id of the best-ranked unlabelled suggestion of ``round`` (newest round by
        default), or None when the queue is done."""
        q = self.queue(round)
        return None if q.empty else str(q["candidate_id"].iloc[0])

    def round_progress(self) -> pd.DataFrame:
        """Per round: suggested, answered (labelled now), and labels recorded in that round."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT r.round, r.strategy, r.model_version, "
                "(SELECT COUNT(*) FROM suggestions s WHERE s.round = r.round), "
                "(SELECT COUNT(*) FROM suggestions s JOIN current_labels cl "
                "   ON cl.candidate_id = s.candidate_id WHERE s.round = r.round), "
                "(SELECT COUNT(*) FROM current_labels cl WHERE cl.round = r.round) "
                "FROM rounds r ORDER BY r.round"
            ).fetchall()
        return pd.DataFrame(
            rows,
            columns=["round", "strategy", "model_version", "suggested", "answered", "labels"],
        )

    # -- maintenance -----------------------------------------------------------------
    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` messages; ``["ok"]`` for a healthy database."""
        with self._lock, translate_sqlite_errors(self.path):
            return [r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall()]

    def consistent_read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A read transaction (one consistent view of the database) for several queries."""
        return self._read()
