"""The store rows and labels of a training run.

Checks of the row indices passed to :func:`cryoal.train.fit.fit`, the class names of the
network's outputs, and the fingerprint of the training, validation and unlabeled rows and
the labels that a checkpoint is checked against on resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cryoal.io.store import SubtomogramStore


def _as_indices(values: Sequence[int] | np.ndarray | None, n: int, what: str) -> np.ndarray:
    idx = np.asarray([] if values is None else values, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{what} contains rows outside 0..{n - 1}")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{what} contains repeated rows; pass each sample once")
    return idx


def _class_names(store: SubtomogramStore, task: str, num_classes: int) -> list[str]:
    names = list(store.class_names)
    if task == "segment":
        names = ["background", *names]
    names = names[:num_classes]
    names += [f"class_{k}" for k in range(len(names), num_classes)]
    return names


def _data_hash(store: SubtomogramStore, parts: dict[str, np.ndarray], labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for name, idx in parts.items():
        h.update(name.encode())
        h.update("\x1f".join(store.ids[idx].tolist()).encode())
    h.update(labels.tobytes())
    return h.hexdigest()
