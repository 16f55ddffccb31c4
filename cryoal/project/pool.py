"""The frozen candidate pool of a round (``rounds/NNN/candidates.csv``), beside its snapshot.

Cluster jobs never open the live label store. Training reads the round's snapshot
(:mod:`cryoal.project.snapshot`); scoring and the merge need, in addition, every candidate
as it was when the snapshot was taken (ids, tomograms, positions: the subtomograms to cut
and which of them are still unlabelled). :func:`cryoal.project.snapshot.write_snapshot`
therefore writes the candidate table too, in the same way: a CSV (columns
``CANDIDATE_COLUMNS`` of the label store, sorted by id), its SHA-256 in
``candidates.csv.sha256``, read-only, never rewritten. The unlabelled pool of the round is
that table minus the snapshot's labelled candidates (:func:`read_frozen_pool`).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pandas as pd

from cryoal.io.atomic import atomic_write_bytes
from cryoal.project.labels import CANDIDATE_COLUMNS
from cryoal.project.layout import POOL_HASH_NAME, POOL_NAME, round_dir
from cryoal.project.snapshot import read_snapshot, sha256_file


def write_pool(table: pd.DataFrame, directory: str | os.PathLike) -> str:
    """Write the candidate table as ``DIRECTORY/candidates.csv`` (+ ``.sha256``), read-only.

    Parameters
    ----------
    table
        ``LabelStore.candidates()``: columns ``CANDIDATE_COLUMNS``, positions zyx in voxels.

    Returns
    -------
    str
        The file's hex SHA-256.
    """
    directory = Path(directory)
    buf = io.StringIO()
    table.loc[:, list(CANDIDATE_COLUMNS)].to_csv(buf, index=False, lineterminator="\n")
    data = buf.getvalue().encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    # overwrite: a folder left by an interrupted snapshot is reused (it has no snapshot yet)
    atomic_write_bytes(directory / POOL_NAME, data, overwrite=True)
    atomic_write_bytes(
        directory / POOL_HASH_NAME, f"{digest}  {POOL_NAME}\n".encode(), overwrite=True
    )
    for p in (directory / POOL_NAME, directory / POOL_HASH_NAME):
        os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return digest


def read_pool(directory: str | os.PathLike) -> pd.DataFrame:
    """The frozen candidate table of a round folder, after checking its SHA-256.

    Raises
    ------
    FileNotFoundError
        The round has no frozen candidate table (its snapshot was taken by an older cryoal).
    ValueError
        The hash file is missing or the content changed.
    """
    directory = Path(directory)
    path, hash_path = directory / POOL_NAME, directory / POOL_HASH_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no frozen candidate table for this round (its snapshot predates them); "
            "run 'cryoal suggest DIR' on the machine that holds labels.sqlite instead"
        )
    recorded = hash_path.read_text(encoding="utf-8").split() if hash_path.is_file() else []
    actual = sha256_file(path)
    if not recorded or recorded[0].lower() != actual:
        raise ValueError(
            f"{path}: content does not match {hash_path.name} (changed or interrupted write); "
            "take a new snapshot with 'cryoal project snapshot DIR' and train it"
        )
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = [
        (cid, tomo, float(z), float(y), float(x), source or None,
         float(score) if score else None, prior or None)
        for cid, tomo, z, y, x, source, score, prior in text.loc[
            :, list(CANDIDATE_COLUMNS)
        ].itertuples(index=False)
    ]  # fmt: skip
    # built as LabelStore.candidates() builds its frame: the same dtypes, None for NULL
    df = pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))
    return df.astype({"candidate_id": object, "tomo_id": object, "z": float, "y": float,
                      "x": float, "score": float})  # fmt: skip


def read_frozen_pool(project_root: str | os.PathLike, round: int) -> tuple[pd.DataFrame, set[str]]:
    """Candidates and labelled ids of ``round`` as they were at its snapshot.

    Returns
    -------
    candidates
        Every candidate (``CANDIDATE_COLUMNS``), sorted by id.
    labelled
        Ids with a label (any kind) in the round's snapshot.
    """
    directory = round_dir(project_root, round)
    candidates = read_pool(directory)
    labelled = set(read_snapshot(directory)["candidate_id"].astype(str))
    return candidates, labelled


def cluster_round(project_root: str | os.PathLike, *, train: bool) -> int:
    """The round that cluster jobs will work on, after checking its frozen files exist.

    Reads only files (the label store is not opened). ``train``: the newest snapshot
    without a trained model (what ``cryoal train DIR`` trains); else the newest trained
    round (what ``cryoal score`` scores).

    Raises
    ------
    ValueError
        No such round, or its snapshot has no frozen candidate table.
    """
    from cryoal.project.rounds import newest_model, read_model_info
    from cryoal.project.snapshot import snapshot_rounds

    root = Path(project_root)
    if train:
        rounds = snapshot_rounds(root)
        if not rounds or read_model_info(root, rounds[-1]) is not None:
            raise ValueError(
                f"{root}: no untrained snapshot; take one where labels.sqlite lives ('cryoal "
                "project snapshot DIR') before submitting, so that no job opens the label store"
            )
        number = rounds[-1]
    else:
        model = newest_model(root)
        if model is None:
            raise ValueError(
                f"{root}: no trained round to score; train one first ('cryoal slurm train DIR')"
            )
        number = model.round
    if not (round_dir(root, number) / POOL_NAME).is_file():
        raise ValueError(
            f"{round_dir(root, number)}: no {POOL_NAME} (its snapshot predates frozen candidate "
            "tables); take a new snapshot ('cryoal project snapshot DIR') and train it"
        )
    return number
