"""SQLite errors a user can act on: a damaged store file and a full disk.

:func:`translate_sqlite_errors` turns SQLite's "not a database" / "malformed" errors into
:class:`DamagedStoreError`, whose message (:func:`damaged_store_message`) says how to
check the file, recover what SQLite can read, or rebuild it from the newest labels
snapshot (``cryoal project rebuild-labels``); a full disk becomes ``OSError(ENOSPC)``
naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

#: SQLite result codes (``sqlite3.Error.sqlite_errorcode``, primary code in the low byte).
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26


def _nearly_full(path: Path) -> bool:
    """Whether the disk holding ``path`` has (almost) no space left.

    SQLite reports a full disk as SQLITE_FULL when the database or WAL cannot grow, but
    as a plain I/O error when its shared-memory index (``-shm``) cannot.
    """
    import shutil

    try:
        return shutil.disk_usage(path.parent).free < 2**20
    except OSError:
        return False


class DamagedStoreError(ValueError):
    """The label store file is damaged (not a database, or a malformed page)."""


def damaged_store_message(path: Path, detail: str) -> str:
    """One line: what is wrong with ``path``, how to check it and how to recover."""
    from cryoal.project.layout import SNAPSHOT_NAME, round_dir
    from cryoal.project.snapshot import snapshot_rounds

    root = path.parent
    rounds = snapshot_rounds(root)
    newest = next(
        (round_dir(root, r) / SNAPSHOT_NAME for r in reversed(rounds)
         if (round_dir(root, r) / SNAPSHOT_NAME).is_file()),
        None,
    )  # fmt: skip
    if newest is not None:
        fallback = (
            f"or start again from the newest labels snapshot {newest}: mv {path} "
            f"{path}.damaged, then 'cryoal project rebuild-labels {root}'"
        )
    else:
        fallback = (
            "no labels snapshot exists (rounds/NNN/snapshot.csv) to restore labels from; "
            f"mv {path} {path}.damaged, then 'cryoal project rebuild-labels {root}' restores "
            "the candidates and queues"
        )
    return (
        f"{path}: the label store is damaged ({' '.join(detail.split())}); keep a copy of "
        f'the file, check it with: sqlite3 {path} "PRAGMA integrity_check"; recover '
        f"what SQLite can read with: sqlite3 {path} .recover | sqlite3 {path}.recovered "
        f"(then replace the damaged file with it), {fallback}"
    )


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


@contextlib.contextmanager
def translate_sqlite_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's "damaged file" errors into :class:`DamagedStoreError` and a full
    disk into ``OSError(ENOSPC)`` naming ``path``; anything else passes through."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        code = _sqlite_code(exc)
        text = str(exc)
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
            code is None and ("malformed" in text or "not a database" in text)
        ):
            raise DamagedStoreError(damaged_store_message(path, text)) from exc
        if code == _SQLITE_FULL or (code == _SQLITE_IOERR and _nearly_full(path)):
            import errno

            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
