"""Segmentation labels: a voxel mask of a candidate's box, stored with its label row.

A mask is ``uint8`` ``(z, y, x)``: 0 background, ``k + 1`` for class ``k``, 255
(:data:`MASK_IGNORE`) for voxels not annotated. :meth:`MaskLabels.add_mask` writes the
``mask`` label row and the compressed mask (with the sha256 of its bytes, how it came to
be, the model that proposed it and what the edit cost) in ONE transaction, and drops the
annotator's draft of that candidate, so a committed mask and its row never exist one
without the other. While a mask is edited the viewer autosaves it as a draft
(:meth:`MaskLabels.save_draft`, one per candidate and annotator), so a killed viewer
resumes the crop. History is append-only as for class labels: a new mask is a new row,
and the newest label of a candidate wins. :class:`~cryoal.project.labels.LabelStore`
inherits these methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoal.io.store import MASK_IGNORE
from cryoal.project.labels.errors import DamagedStoreError, translate_sqlite_errors
from cryoal.project.labels.rows import _check_annotator, _insert_label_row
from cryoal.project.labels.schema import KIND_MASK, MASK_SOURCES, utc_now

#: The sources of a mask a person commits (``restored`` is a rebuilt store's own).
EDIT_SOURCES = tuple(s for s in MASK_SOURCES if s != "restored")

#: zlib level: masks are mostly runs of one value, level 6 packs a 64³ mask in ~1 ms.
_ZLIB_LEVEL = 6


@dataclass(frozen=True)
class StoredMask:
    """A committed mask and its provenance."""

    label_id: int
    candidate_id: str
    mask: np.ndarray
    source: str
    annotator: str
    round: int | None
    model_version: str | None
    created_at: str
    voxels_changed: int | None
    slices_touched: int | None
    seconds: float | None


def check_mask(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """``mask`` as C-ordered uint8 ``(z, y, x)``; ``ValueError`` naming the bad values."""
    arr = np.asarray(mask)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"a mask is a (z, y, x) volume; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"a mask holds integer values; got dtype {arr.dtype}")
    values = np.unique(arr)
    bad = values[((values < 0) | (values > n_classes)) & (values != MASK_IGNORE)]
    if bad.size:
        raise ValueError(
            f"mask values {bad[:5].tolist()} are not 0 (background), 1..{n_classes} (class "
            f"+ 1) or {MASK_IGNORE} (not annotated)"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def pack_mask(mask: np.ndarray) -> tuple[bytes, str]:
    """The zlib-compressed bytes of a checked mask and the sha256 of its raw bytes."""
    raw = mask.tobytes()
    return zlib.compress(raw, _ZLIB_LEVEL), hashlib.sha256(raw).hexdigest()


def _unpack(
    path: Path, what: str, shape: tuple[int, int, int], data: bytes, sha: str
) -> np.ndarray:
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise DamagedStoreError(f"{path}: {what} cannot be decompressed ({exc})") from None
    if hashlib.sha256(raw).hexdigest() != sha or len(raw) != int(np.prod(shape)):
        raise DamagedStoreError(
            f"{path}: {what} does not match its sha256; the store is damaged, restore it "
            "from a backup"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()


class MaskLabels:
    """The segmentation half of :class:`~cryoal.project.labels.LabelStore`."""

    path: Path
    _lock: Any
    _conn: sqlite3.Connection
    _class_names: list[str]
    if TYPE_CHECKING:  # LabelStore's write transaction

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    def add_mask(
        self,
        candidate_id: str,
        mask: np.ndarray,
        annotator: str,
        *,
        source: str = "painted",
        round: int | None = None,
        model_version: str | None = None,
        voxels_changed: int | None = None,
        slices_touched: int | None = None,
        seconds: float | None = None,
    ) -> int:
        """Commit a mask of ``candidate_id``'s box; durable when it returns.

        Parameters
        ----------
        mask
            ``(z, y, x)`` integers: 0 background, class + 1, 255 not annotated.
        source
            ``painted``, ``corrected`` (from the model's proposal) or ``accepted`` (the
            proposal unchanged).
        round, model_version
            Provenance, as for :meth:`LabelStore.add_label` (looked up from the queue when
            None); ``model_version`` is the model that proposed the mask.
        voxels_changed, slices_touched, seconds
            The edit's cost: voxels that differ from the proposal (or painted), z-slices
            with a change, and time spent on the crop.

        Returns
        -------
        int
            The label id of the mask.

        Raises
        ------
        ValueError
            Unknown or deleted candidate, bad values or shape, unknown source, empty
            annotator.
        """
        who = _check_annotator(annotator)
        if source not in EDIT_SOURCES:
            raise ValueError(f"mask source {source!r}: choose one of {', '.join(EDIT_SOURCES)}")
        arr = check_mask(mask, len(self._class_names))
        data, sha = pack_mask(arr)
        with self._write() as conn:
            label_id, *_ = _insert_label_row(
                conn, self.path, candidate_id, KIND_MASK, None, who, round, model_version
            )
            conn.execute(
                "INSERT INTO masks (label_id, nz, ny, nx, data, sha256, source, voxels_changed, "
                "slices_touched, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (label_id, *arr.shape, data, sha, source, voxels_changed, slices_touched, seconds),
            )
            conn.execute(
                "DELETE FROM mask_drafts WHERE candidate_id = ? AND annotator = ?",
                (candidate_id, who),
            )
        return label_id

    def current_mask(self, candidate_id: str) -> StoredMask | None:
        """The candidate's winning mask, or None when its current label is not a mask."""
        rows = self._mask_rows("cl.candidate_id = ?", (candidate_id,), current=True)
        return rows[0] if rows else None

    def current_masks(self) -> list[StoredMask]:
        """The winning mask of every candidate whose current label is a mask, by id."""
        return self._mask_rows("1 = 1", (), current=True)

    def mask_history(self, candidate_id: str) -> list[StoredMask]:
        """Every mask ever committed for the candidate, oldest first."""
        return self._mask_rows("l.candidate_id = ?", (candidate_id,), current=False)

    def _mask_rows(self, where: str, params: tuple, *, current: bool) -> list[StoredMask]:
        source = (
            "FROM current_labels AS cl JOIN labels AS l ON l.label_id = cl.label_id"
            if current
            else "FROM labels AS l"
        )
        sql = (
            "SELECT l.label_id, l.candidate_id, m.nz, m.ny, m.nx, m.data, m.sha256, m.source, "
            "l.annotator, l.round, l.model_version, l.created_at, m.voxels_changed, "
            f"m.slices_touched, m.seconds {source} JOIN masks AS m ON m.label_id = l.label_id "
            f"WHERE {where} ORDER BY l.candidate_id, l.label_id"
        )
        with self._lock, translate_sqlite_errors(self.path):
            rows = self._conn.execute(sql, params).fetchall()
        out = []
        for r in rows:
            mask = _unpack(self.path, f"the mask of label {r[0]} ({r[1]})", r[2:5], r[5], r[6])
            out.append(StoredMask(r[0], r[1], mask, r[7], *r[8:]))
        return out

    def save_draft(self, candidate_id: str, mask: np.ndarray, annotator: str) -> None:
        """Autosave the annotator's mask in progress (replacing their previous draft of
        the candidate); committed when it returns."""
        who = _check_annotator(annotator)
        arr = check_mask(mask, len(self._class_names))
        data, sha = pack_mask(arr)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mask_drafts (candidate_id, annotator, nz, ny, nx, data, "
                "sha256, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate_id, who, *arr.shape, data, sha, utc_now()),
            )

    def draft(self, candidate_id: str, annotator: str) -> np.ndarray | None:
        """The annotator's draft of the candidate, or None."""
        with self._lock, translate_sqlite_errors(self.path):
            row = self._conn.execute(
                "SELECT nz, ny, nx, data, sha256 FROM mask_drafts WHERE candidate_id = ? AND "
                "annotator = ?",
                (candidate_id, annotator.strip()),
            ).fetchone()
        if row is None:
            return None
        return _unpack(self.path, f"the draft of {candidate_id} by {annotator}", row[:3], *row[3:])

    def discard_draft(self, candidate_id: str, annotator: str) -> None:
        """Drop the annotator's draft of the candidate (e.g. reset to the model's mask)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM mask_drafts WHERE candidate_id = ? AND annotator = ?",
                (candidate_id, annotator.strip()),
            )
