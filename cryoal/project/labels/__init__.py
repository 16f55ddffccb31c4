"""The live label store: one SQLite file in WAL mode (``labels.sqlite``).

Why SQLite: every label an expert makes is a committed transaction the moment the call
returns, so neither a crash, ``kill -9`` nor a power cut (``synchronous=FULL``) loses it,
and the file is never half-rewritten the way a JSON file rewritten in place can be. WAL
mode lets one writer (the napari widget) and any number of readers (``cryoal status``, a
snapshot, a suggestion job) work at the same time; writes start with ``BEGIN IMMEDIATE``
and every connection has a busy timeout, so nobody sees "database is locked".

The package's modules, one job each:

* :mod:`cryoal.project.labels.store`: :class:`LabelStore`, the store's API (candidates,
  labels, rounds and suggestion queues; transactions and locking);
* :mod:`cryoal.project.labels.schema`: the tables (listed there), schema version, label
  kinds, column names, the :class:`Label` row and :func:`utc_now` timestamps;
* :mod:`cryoal.project.labels.connection`: opening the SQLite file (``synchronous=FULL``,
  foreign keys, busy timeout) and the network-filesystem warning;
* :mod:`cryoal.project.labels.edits`: candidates added, moved, deleted and restored by
  hand, each with a ``candidate_edits`` row;
* :mod:`cryoal.project.labels.masks`: segmentation masks committed with their label row,
  and the drafts autosaved while one is edited;
* :mod:`cryoal.project.labels.rows`: checks and the label insert run inside the store's
  write transactions, and the current-labels table;
* :mod:`cryoal.project.labels.errors`: a damaged file or a full disk turned into
  :class:`DamagedStoreError` / ``OSError(ENOSPC)`` with what to do.

Every public name is importable from ``cryoal.project.labels``.

WAL needs the shared-memory file of one host: keep the project on a local disk (a warning
is raised on NFS, SMB, Lustre, GPFS, BeeGFS, FUSE mounts, see ``fscheck``).
"""

from __future__ import annotations

from cryoal.io.store import MASK_IGNORE
from cryoal.project.labels.connection import DEFAULT_BUSY_TIMEOUT_S, warn_if_network_filesystem
from cryoal.project.labels.errors import (
    DamagedStoreError,
    damaged_store_message,
    translate_sqlite_errors,
)
from cryoal.project.labels.masks import StoredMask, check_mask
from cryoal.project.labels.schema import (
    CANDIDATE_COLUMNS,
    KIND_CLASS,
    KIND_CLEARED,
    KIND_MASK,
    KINDS,
    LABEL_COLUMNS,
    MASK_SOURCES,
    SCHEMA_VERSION,
    SOURCES,
    Label,
    utc_now,
)
from cryoal.project.labels.store import LabelStore

__all__ = [
    "CANDIDATE_COLUMNS",
    "DEFAULT_BUSY_TIMEOUT_S",
    "KINDS",
    "KIND_CLASS",
    "KIND_CLEARED",
    "KIND_MASK",
    "LABEL_COLUMNS",
    "MASK_IGNORE",
    "MASK_SOURCES",
    "SCHEMA_VERSION",
    "SOURCES",
    "DamagedStoreError",
    "Label",
    "LabelStore",
    "StoredMask",
    "check_mask",
    "damaged_store_message",
    "translate_sqlite_errors",
    "utc_now",
    "warn_if_network_filesystem",
]
