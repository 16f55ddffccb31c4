"""Immutable, hashed snapshots of the current labels (``rounds/NNN/snapshot.csv``).

Training never reads the live SQLite store: it reads a snapshot, a plain CSV table of the
labels as they were at one moment, with its SHA-256 in ``snapshot.csv.sha256`` beside it
(the format ``sha256sum -c`` checks). A snapshot is written once (temp file, fsync,
rename, then made read-only) and never rewritten; every read verifies the hash, so a job
on a cluster filesystem either trains on exactly the labels that were snapshotted or stops
with a clear error. The candidate table of the same moment is frozen beside it
(``candidates.csv``, :mod:`cryoal.project.pool`) for the scoring jobs of the round, and so
are the masks of its segmentation labels (``masks.npz``, hashed the same way).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_write_bytes
from cryoal.project.labels import LABEL_COLUMNS, LabelStore
from cryoal.project.layout import (
    HASH_NAME,
    MASKS_HASH_NAME,
    MASKS_NAME,
    SNAPSHOT_NAME,
    round_dir,
    round_numbers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """A written snapshot: its round, folder, CSV path, SHA-256 and label count."""

    round: int
    directory: Path
    sha256: str
    n_labels: int

    @property
    def path(self) -> Path:
        return self.directory / SNAPSHOT_NAME


def _has_snapshot_files(directory: Path) -> bool:
    return (directory / SNAPSHOT_NAME).exists() or (directory / HASH_NAME).exists()


def snapshot_rounds(project_root: str | os.PathLike) -> list[int]:
    """Rounds that hold a snapshot (complete or not), ascending."""
    return [
        r for r in round_numbers(project_root) if _has_snapshot_files(round_dir(project_root, r))
    ]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_snapshot(store: LabelStore, project_root: str | os.PathLike) -> Snapshot:
    """Write the store's current labels as the next round's immutable snapshot.

    The round is one more than the newest snapshot and the newest suggestion round (and at
    least 1: round 0 is the model-free first queue). All labels are listed, ``unsure`` and
    ``not-a-particle`` included (training uses only ``kind == "class"`` rows, or ``mask``
    rows for segmentation, whose masks are frozen beside it in ``masks.npz``).

    Returns
    -------
    Snapshot
        Round, folder, hash and number of labels.
    """
    from cryoal.project.pool import write_pool

    with store.consistent_read():  # the labels, their masks and the candidates of one moment
        table = store.current_labels(include_special=True)
        masks = store.current_masks() if (table["kind"] == "mask").any() else []
        candidates = store.candidates()
    latest = store.latest_round()
    taken = snapshot_rounds(project_root)
    number = max(1, (taken[-1] + 1) if taken else 1, (latest + 1) if latest is not None else 1)
    while True:
        directory = round_dir(project_root, number)
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
            break
        except FileExistsError:
            if not _has_snapshot_files(directory):
                break  # e.g. made by 'suggest' for round 0, or left empty by a crash
            number += 1
    write_pool(candidates, directory)  # before the snapshot: a snapshot always has one
    if masks:  # likewise its masks
        _write_masks(directory, masks)
    data = _table_bytes(table)
    digest = hashlib.sha256(data).hexdigest()
    csv_path = directory / SNAPSHOT_NAME
    atomic_write_bytes(csv_path, data, overwrite=False)
    atomic_write_bytes(
        directory / HASH_NAME, f"{digest}  {SNAPSHOT_NAME}\n".encode(), overwrite=False
    )
    for p in (csv_path, directory / HASH_NAME):
        os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    log.info("snapshot of %d labels written to %s (sha256 %s)", len(table), csv_path, digest)
    return Snapshot(round=number, directory=directory, sha256=digest, n_labels=len(table))


def _write_masks(directory: Path, masks: list) -> None:
    """``masks.npz`` (one uint8 array per candidate id) and its sha256, read-only."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{m.candidate_id: m.mask for m in masks})
    data = buf.getvalue()
    atomic_write_bytes(directory / MASKS_NAME, data, overwrite=False)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(
        directory / MASKS_HASH_NAME, f"{digest}  {MASKS_NAME}\n".encode(), overwrite=False
    )
    for p in (directory / MASKS_NAME, directory / MASKS_HASH_NAME):
        os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def read_snapshot_masks(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """The masks frozen with a snapshot (``candidate id -> (z, y, x) uint8``), after
    verifying their sha256; empty when the snapshot has no mask labels.

    Raises
    ------
    ValueError
        The snapshot lists mask labels but its ``masks.npz`` is missing, or the file changed.
    """
    directory = Path(directory)
    path, hash_path = directory / MASKS_NAME, directory / MASKS_HASH_NAME
    if not path.is_file():
        if (read_snapshot(directory)["kind"] == "mask").any():
            raise ValueError(
                f"{path}: missing, but the snapshot lists mask labels; take a new snapshot "
                "with 'cryoal project snapshot DIR'"
            )
        return {}
    recorded = hash_path.read_text(encoding="utf-8").split() if hash_path.is_file() else []
    if not recorded or recorded[0].lower() != sha256_file(path):
        raise ValueError(
            f"{path}: content changed after it was written, or its {MASKS_HASH_NAME} is "
            "missing; snapshots are immutable, take a new one with 'cryoal project snapshot DIR'"
        )
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


def live_sha256(store: LabelStore) -> str:
    """SHA-256 a snapshot of the store's current labels would have (nothing is written)."""
    return hashlib.sha256(_table_bytes(store.current_labels(include_special=True))).hexdigest()


def _table_bytes(table: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    table.loc[:, list(LABEL_COLUMNS)].to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def verify_snapshot(directory: str | os.PathLike) -> str:
    """Check a snapshot's SHA-256 against the recorded one; return it.

    Raises
    ------
    FileNotFoundError
        No snapshot in ``directory``.
    ValueError
        The hash file is missing (the write was interrupted) or the content changed.
    """
    directory = Path(directory)
    csv_path, hash_path = directory / SNAPSHOT_NAME, directory / HASH_NAME
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{csv_path}: no snapshot here; take one with 'cryoal project snapshot DIR'"
        )
    if not hash_path.is_file():
        raise ValueError(
            f"{hash_path}: missing, so {csv_path} cannot be trusted (its write was "
            "interrupted); take a new snapshot with 'cryoal project snapshot DIR'"
        )
    recorded = hash_path.read_text(encoding="utf-8").split()
    actual = sha256_file(csv_path)
    if not recorded or recorded[0].lower() != actual:
        want = recorded[0][:12] if recorded else "nothing"
        raise ValueError(
            f"{csv_path}: content changed after it was written (sha256 {actual[:12]}... but "
            f"{want}... recorded); snapshots are immutable, take a new one with "
            "'cryoal project snapshot DIR'"
        )
    return actual


def read_snapshot(directory: str | os.PathLike) -> pd.DataFrame:
    """Read a snapshot table after verifying its hash (columns ``LABEL_COLUMNS``)."""
    directory = Path(directory)
    verify_snapshot(directory)
    df = pd.read_csv(
        directory / SNAPSHOT_NAME,
        dtype={"candidate_id": str, "tomo_id": str, "kind": str, "class_name": str,
               "annotator": str, "model_version": str, "created_at": str},
        keep_default_na=False,
        na_values={"class_id": [""], "round": [""], "model_version": [""], "class_name": [""]},
    )  # fmt: skip
    return df.astype({"class_id": "Int64", "round": "Int64"})


def load_snapshot(project_root: str | os.PathLike, round: int) -> Snapshot:
    """The verified snapshot of ``round``."""
    directory = round_dir(project_root, round)
    digest = verify_snapshot(directory)
    n = len(read_snapshot(directory))
    return Snapshot(round=round, directory=directory, sha256=digest, n_labels=n)


def newest_snapshot(project_root: str | os.PathLike) -> Snapshot | None:
    """The newest snapshot (verified), or None when the project has none."""
    rounds = snapshot_rounds(project_root)
    if not rounds:
        return None
    return load_snapshot(project_root, rounds[-1])
