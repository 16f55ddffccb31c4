"""What the label store holds: its SQL schema, schema version, label kinds and row types.

Tables (schema version in ``PRAGMA user_version``):

``classes``      class_id, name (copied from ``project.yaml`` at creation, checked on open)
``candidates``   candidate_id (``TS_01:000123``), tomo_id, z, y, x (voxels, where the
                 candidate is now), source, score (detector), prior_class (class given by
                 imported picks), created_at, deleted (1 once deleted; the row stays)
``candidate_edits``  edit_id (insertion order), candidate_id, action (:data:`EDIT_ACTIONS`:
                 ``added`` by hand, ``moved``, ``deleted``, ``restored``), z, y, x (the
                 position after the edit), from_z, from_y, from_x (before a move),
                 annotator, created_at. Every change to a candidate after its import is a
                 row here; nothing is deleted.
``labels``       label_id (insertion order), candidate_id, kind (``class`` / ``unsure`` /
                 ``not-a-particle`` / ``cleared``), class_id, annotator, round,
                 model_version, created_at, source (how the row came to be:
                 :data:`SOURCES`), undoes (for ``undo`` rows: the label_id of the decision
                 undone). History is kept: the newest label (largest label_id) of a
                 candidate wins; ``cleared`` withdraws a label.
``rounds``       round, strategy, model_version, k, seed, created_at
``suggestions``  round, rank, candidate_id, score, strategy
``masks``        label_id (a ``mask`` label), nz, ny, nx, data (zlib-compressed uint8:
                 0 background, class k + 1, 255 not annotated), sha256 (uncompressed),
                 source (:data:`MASK_SOURCES`), voxels_changed, slices_touched, seconds
``mask_drafts``  candidate_id, annotator, nz, ny, nx, data, sha256, updated_at: the mask
                 being edited, autosaved, until it is committed
view ``live_candidates``: the candidates not deleted (what pools, queues and labels use).
view ``current_labels``: the winning label of each labelled live candidate.

Timestamps (``created_at``) are UTC ISO 8601 text from :func:`utc_now`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from cryoal.project.config import SPECIAL_LABELS

#: Label kinds stored in ``labels.kind``; a ``mask`` row has its voxel mask in ``masks``.
KIND_CLASS = "class"
KIND_CLEARED = "cleared"
KIND_MASK = "mask"
KINDS = (KIND_CLASS, *SPECIAL_LABELS, KIND_CLEARED, KIND_MASK)

#: How a stored mask came to be (``masks.source``): ``painted`` from scratch, ``corrected``
#: from the model's proposal, ``accepted`` as the model proposed it, ``restored`` from a
#: snapshot's ``masks.npz`` into a rebuilt store (its edit cost is not known).
MASK_SOURCES = ("painted", "corrected", "accepted", "restored")

#: Schema version written to ``PRAGMA user_version``.
SCHEMA_VERSION = 5

#: What a ``candidate_edits`` row records.
EDIT_ACTIONS = ("added", "moved", "deleted", "restored")

_CANDIDATE_EDITS = f"""
CREATE TABLE candidate_edits (
    edit_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id TEXT NOT NULL REFERENCES candidates (candidate_id),
    action       TEXT NOT NULL CHECK (action IN ({", ".join(repr(a) for a in EDIT_ACTIONS)})),
    z REAL NOT NULL, y REAL NOT NULL, x REAL NOT NULL,
    from_z REAL, from_y REAL, from_x REAL,
    annotator    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    CHECK ((action = 'moved') = (from_z IS NOT NULL))
);
CREATE INDEX candidate_edits_by_candidate ON candidate_edits (candidate_id, edit_id);
CREATE VIEW live_candidates AS SELECT * FROM candidates WHERE deleted = 0;
"""

#: The labels table (``{name}``: ``labels``, or the new table a migration copies into).
_LABELS = (
    """CREATE TABLE {name} (
    label_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id  TEXT NOT NULL REFERENCES candidates (candidate_id),
    kind          TEXT NOT NULL CHECK (kind IN ("""
    + ", ".join(repr(k) for k in KINDS)
    + """)),
    class_id      INTEGER REFERENCES classes (class_id),
    annotator     TEXT NOT NULL,
    round         INTEGER,
    model_version TEXT,
    created_at    TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT 'decision',
    undoes        INTEGER,
    CHECK ((kind = 'class') = (class_id IS NOT NULL))
);
"""
)

#: Voxel masks of ``mask`` labels (zlib-compressed uint8 ``(z, y, x)``, C order, with the
#: sha256 of the uncompressed bytes), and the one draft per candidate and annotator that
#: the viewer autosaves while a mask is edited.
_MASK_TABLE = (
    """
CREATE TABLE {name} (
    label_id       INTEGER PRIMARY KEY REFERENCES labels (label_id),
    nz INTEGER NOT NULL, ny INTEGER NOT NULL, nx INTEGER NOT NULL,
    data           BLOB NOT NULL,
    sha256         TEXT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ("""
    + ", ".join(repr(k) for k in MASK_SOURCES)
    + """)),
    voxels_changed INTEGER,
    slices_touched INTEGER,
    seconds        REAL
);
"""
)
_MASKS = (
    _MASK_TABLE.format(name="masks")
    + """CREATE TABLE mask_drafts (
    candidate_id TEXT NOT NULL REFERENCES candidates (candidate_id),
    annotator    TEXT NOT NULL,
    nz INTEGER NOT NULL, ny INTEGER NOT NULL, nx INTEGER NOT NULL,
    data         BLOB NOT NULL,
    sha256       TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (candidate_id, annotator)
);
"""
)

#: A candidate's newest label found through ``labels_by_candidate`` (a correlated MAX), so
#: that asking for one candidate reads its rows only, not a GROUP BY over the whole history.
_CURRENT_LABELS = f"""
CREATE VIEW current_labels AS
    SELECT l.label_id, l.candidate_id, c.tomo_id, c.z, c.y, c.x, l.kind, l.class_id,
           k.name AS class_name, l.annotator, l.round, l.model_version, l.created_at
    FROM labels AS l
    JOIN live_candidates AS c ON c.candidate_id = l.candidate_id
    LEFT JOIN classes AS k ON k.class_id = l.class_id
    WHERE l.label_id = (SELECT MAX(m.label_id) FROM labels AS m
                        WHERE m.candidate_id = l.candidate_id)
      AND l.kind != '{KIND_CLEARED}';
"""

#: Statements that bring a store of version ``v`` to ``v + 1`` (run in one transaction when
#: a store is opened): version 2 adds the labels' provenance (``source``, ``undoes``); the
#: rows written before it read as ``decision``. Version 3 adds candidate edits (added by
#: hand, moved, deleted, restored), leaves deleted candidates out of the current labels,
#: and adds segmentation masks (the labels table is copied into one that allows the kind
#: ``mask``: SQLite cannot change a CHECK in place). Version 4 lets a mask be ``restored``
#: (the masks table copied likewise). Version 5 redefines the ``current_labels`` view (the
#: same rows) so that one candidate's label is an index lookup: with the old view it cost a
#: scan of the whole history (26–42 ms at 20,000 labels), on every label key.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE labels ADD COLUMN source TEXT NOT NULL DEFAULT 'decision'",
        "ALTER TABLE labels ADD COLUMN undoes INTEGER",
    ),
    2: (
        "ALTER TABLE candidates ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",
        *(st.strip() for st in _CANDIDATE_EDITS.split(";") if st.strip()),
        "DROP VIEW current_labels",
        _LABELS.format(name="labels_v3").strip().rstrip(";"),
        "INSERT INTO labels_v3 SELECT label_id, candidate_id, kind, class_id, annotator, round, "
        "model_version, created_at, source, undoes FROM labels",
        "DROP TABLE labels",
        "ALTER TABLE labels_v3 RENAME TO labels",
        "CREATE INDEX labels_by_candidate ON labels (candidate_id, label_id)",
        *(st.strip() for st in _MASKS.split(";") if st.strip()),
        _CURRENT_LABELS.strip().rstrip(";"),
    ),
    3: (
        _MASK_TABLE.format(name="masks_v4").strip().rstrip(";"),
        "INSERT INTO masks_v4 SELECT label_id, nz, ny, nx, data, sha256, source, "
        "voxels_changed, slices_touched, seconds FROM masks",
        "DROP TABLE masks",
        "ALTER TABLE masks_v4 RENAME TO masks",
    ),
    4: ("DROP VIEW current_labels", _CURRENT_LABELS.strip().rstrip(";")),
}

#: How a label row came to be (``labels.source``): ``decision`` (a person chose it: a key,
#: a button, ``cryoal labels add``), ``confirmed`` (a person accepted the model's predicted
#: class with the viewer's confirm key), ``import`` (a CSV or picks import), ``undo`` (it
#: restores the state before an undone decision), ``restore`` (a store rebuilt from a
#: snapshot).
SOURCES = ("decision", "confirmed", "import", "undo", "restore")


_SCHEMA = f"""
CREATE TABLE classes (
    class_id INTEGER PRIMARY KEY CHECK (class_id >= 0),
    name     TEXT NOT NULL UNIQUE
);
CREATE TABLE candidates (
    candidate_id TEXT PRIMARY KEY,
    tomo_id      TEXT NOT NULL,
    z REAL NOT NULL, y REAL NOT NULL, x REAL NOT NULL,
    source       TEXT NOT NULL,
    score        REAL,
    prior_class  TEXT,
    created_at   TEXT NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);
CREATE INDEX candidates_by_tomo ON candidates (tomo_id);
{_LABELS.format(name="labels")}CREATE INDEX labels_by_candidate ON labels (candidate_id, label_id);
CREATE TABLE rounds (
    round         INTEGER PRIMARY KEY CHECK (round >= 0),
    strategy      TEXT NOT NULL,
    model_version TEXT,
    k             INTEGER NOT NULL,
    seed          INTEGER,
    created_at    TEXT NOT NULL
);
CREATE TABLE suggestions (
    round        INTEGER NOT NULL REFERENCES rounds (round),
    rank         INTEGER NOT NULL,
    candidate_id TEXT NOT NULL REFERENCES candidates (candidate_id),
    score        REAL,
    strategy     TEXT NOT NULL,
    PRIMARY KEY (round, rank),
    UNIQUE (round, candidate_id)
);
CREATE INDEX suggestions_by_candidate ON suggestions (candidate_id, round);
{_CANDIDATE_EDITS}{_MASKS}{_CURRENT_LABELS}"""

#: Columns of ``LabelStore.candidate_edits()``.
EDIT_COLUMNS = ("edit_id", "candidate_id", "tomo_id", "action", "z", "y", "x", "from_z",
                "from_y", "from_x", "annotator", "created_at")  # fmt: skip

#: Columns of ``LabelStore.candidates()``.
CANDIDATE_COLUMNS = ("candidate_id", "tomo_id", "z", "y", "x", "source", "score", "prior_class")

#: Columns of ``LabelStore.current_labels()`` (also the snapshot table).
LABEL_COLUMNS = (
    "candidate_id", "tomo_id", "z", "y", "x", "kind", "class_id", "class_name",
    "annotator", "round", "model_version", "created_at", "label_id",
)  # fmt: skip


def utc_now() -> str:
    """Current UTC time as ISO 8601 with microseconds (sorts as text)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Label:
    """One stored label (a row of ``labels``)."""

    label_id: int
    candidate_id: str
    kind: str
    class_id: int | None
    class_name: str | None
    annotator: str
    round: int | None
    model_version: str | None
    created_at: str
    source: str = "decision"
    undoes: int | None = None
