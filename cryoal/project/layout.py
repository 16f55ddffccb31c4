"""The project folder on disk: every file and folder name, in one place.

::

    PROJECT/
      project.yaml          classes, tomograms, defaults (CONFIG_NAME)
      labels.sqlite         the label store (LABELS_NAME); stays on a local disk
      .project.lock         held while a process changes the project (LOCK_NAME)
      candidates.csv        candidate ids and positions (CANDIDATES_NAME)
      logs/                 the output of train / suggest jobs the viewer started (LOGS_DIR)
      cache/                extracted candidate subtomograms (CACHE_DIR)
        encoders/<key>/     encoders pretrained on the candidates (ENCODERS_DIR), named by
                            the pool's content hash and the settings
        encoders/current.json  which of them training starts from (CURRENT_ENCODER_NAME)
      rounds/NNN/           one folder per round (ROUNDS_DIR, round_dir)
        snapshot.csv(.sha256)  the frozen labels the round trained on (SNAPSHOT_NAME, HASH_NAME)
        masks.npz(.sha256)  the masks of its mask labels, frozen with it (MASKS_NAME,
                            MASKS_HASH_NAME; only when it has mask labels)
        train.h5            the round's training subtomograms (TRAIN_STORE_NAME)
        model/              the trained networks (MODEL_RUN_DIR)
        round.json          the round's record (MODEL_INFO_NAME)
        candidates.csv(.sha256)  the candidate table frozen with the snapshot (POOL_NAME,
                            POOL_HASH_NAME): the pool of cluster scoring jobs, which never
                            open labels.sqlite
        scores/             sharded score files (SCORES_DIR)
        suggestions.json    a queue merged from score shards, waiting for
                            'cryoal suggest --import' (MERGED_NAME)
        suggestions.csv     the queue the round proposed (SUGGESTIONS_NAME)
        scores.csv          every scored candidate: score, pick, class probabilities
                            (SCORES_TABLE_NAME)
        proposals.npz       segment projects: the teacher's mask and the KT-MSE map of
                            each queued candidate (cryoal.project.proposals)

Modules that read or write these files take the names from here.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_NAME = "project.yaml"
LABELS_NAME = "labels.sqlite"
LOCK_NAME = ".project.lock"
CANDIDATES_NAME = "candidates.csv"
CACHE_DIR = "cache"
LOGS_DIR = "logs"
ENCODERS_DIR = "encoders"
CURRENT_ENCODER_NAME = "current.json"
ROUNDS_DIR = "rounds"
SNAPSHOT_NAME = "snapshot.csv"
HASH_NAME = SNAPSHOT_NAME + ".sha256"
MASKS_NAME = "masks.npz"
MASKS_HASH_NAME = MASKS_NAME + ".sha256"
TRAIN_STORE_NAME = "train.h5"
MODEL_RUN_DIR = "model"
MODEL_INFO_NAME = "round.json"
SCORES_DIR = "scores"
SUGGESTIONS_NAME = "suggestions.csv"
SCORES_TABLE_NAME = "scores.csv"
MERGED_NAME = "suggestions.json"
POOL_NAME = CANDIDATES_NAME
POOL_HASH_NAME = POOL_NAME + ".sha256"


def is_project(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a ``project.yaml``."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_NAME).is_file()


def round_dir(project_root: str | os.PathLike, round: int) -> Path:
    """``<project>/rounds/NNN`` (three digits, zero padded)."""
    return Path(project_root) / ROUNDS_DIR / f"{round:03d}"


def round_numbers(project_root: str | os.PathLike) -> list[int]:
    """Numbers of the existing ``rounds/NNN`` folders, ascending."""
    base = Path(project_root) / ROUNDS_DIR
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())
