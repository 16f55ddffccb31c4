"""Undo what a cancelled project job wrote: remove the files and folders it created.

``cryoal train DIR`` and ``cryoal suggest DIR`` write only new files before their last,
atomic step (``rounds/NNN/round.json``; the suggestion queue's single commit to the label
store), and only under ``rounds/`` and ``cache/``. A job stopped before that step is undone
by removing every path under those two folders that did not exist when it started; the
label store and anything else in the project folder (an export the user saved there while
the job ran, say) are never touched here.

Limit: a training that *resumes* an interrupted run continues checkpoints that already
existed; cancelling it keeps their newer content (they are not new files).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryoal.project.layout import CACHE_DIR, LABELS_NAME, LOCK_NAME, LOGS_DIR, ROUNDS_DIR

log = logging.getLogger(__name__)

#: Files a job never rolls back: the live label store (and SQLite's side files), the lock,
#: and the jobs' logs (kept, cancelled or not, to read what a job did).
KEEP = frozenset(
    {LABELS_NAME, f"{LABELS_NAME}-wal", f"{LABELS_NAME}-shm", f"{LABELS_NAME}-journal", LOCK_NAME,
     LOGS_DIR}
)  # fmt: skip
#: The folders train and suggest jobs write into; a cancel rolls back only these.
JOB_FOLDERS = (ROUNDS_DIR, CACHE_DIR)


@dataclass(frozen=True)
class ProjectFiles:
    """The relative paths (files and folders) under a project folder at one moment."""

    root: Path
    paths: frozenset[str]

    @classmethod
    def capture(cls, root: str | os.PathLike) -> ProjectFiles:
        """List every file and folder under ``root`` (the label store's files and the job
        logs excepted)."""
        root = Path(root)
        found: set[str] = set()
        for directory, dirs, files in os.walk(root):
            rel = Path(directory).relative_to(root)
            if rel == Path("."):
                dirs[:] = [d for d in dirs if d != LOGS_DIR]
            for name in [*dirs, *files]:
                path = (rel / name).as_posix()
                if path not in KEEP:
                    found.add(path)
        return cls(root, frozenset(found))

    def new_paths(self) -> list[str]:
        """Paths under the job folders that exist now but did not at capture, deepest first."""
        now = ProjectFiles.capture(self.root).paths
        new = {p for p in now - self.paths if p.split("/", 1)[0] in JOB_FOLDERS}
        return sorted(new, key=lambda p: (-p.count("/"), p))

    def remove_new(self) -> list[str]:
        """Remove every file and folder created under the job folders since capture; returns
        what was removed.

        Read-only files (snapshots) are removed too: only their folder's permission
        matters for unlinking.
        """
        removed = []
        for rel in self.new_paths():
            path = self.root / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=False)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue  # inside a folder removed already
            removed.append(rel)
        log.info("%s: removed %d paths written by a cancelled job", self.root, len(removed))
        return removed
