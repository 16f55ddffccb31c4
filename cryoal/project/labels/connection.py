"""Opening the label store's SQLite file, and the network-filesystem check.

Every connection runs in autocommit mode (the store issues ``BEGIN`` / ``COMMIT``
itself), with ``synchronous=FULL`` (a committed label survives a power cut too, not only
a crash or ``kill -9``), foreign keys on, and a busy timeout, so that a second writer
waits for the first instead of seeing "database is locked".

WAL needs the shared-memory file of one host: keep the project on a local disk (a warning
is raised on NFS, SMB, Lustre, GPFS, BeeGFS, FUSE mounts, see ``fscheck``).
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

from cryoal.project.fscheck import filesystem_type, is_network_filesystem

#: Seconds a connection waits for another writer before giving up (SQLite busy timeout).
DEFAULT_BUSY_TIMEOUT_S = 30.0


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    # FULL: a committed label survives power loss too, not only a process crash. Labels
    # arrive at human speed, so the extra fsync per commit costs nothing noticeable.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def warn_if_network_filesystem(path: Path, stacklevel: int = 2) -> str | None:
    """Warn (``UserWarning``) when ``path`` is on a network filesystem; return its type."""
    fs_type = filesystem_type(path)
    if is_network_filesystem(fs_type):
        warnings.warn(
            f"{path}: the label store is on a {fs_type} filesystem, where SQLite's WAL mode "
            "is unsafe if more than one machine opens it; keep the project on a local disk "
            "(training jobs on other machines read snapshots, never the live store)",
            stacklevel=stacklevel,
        )
    return fs_type
