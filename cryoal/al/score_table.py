"""A round's full score table: every scored candidate, its score, class and probabilities.

Written by the AL engine (``OUT/cycles/cycle_NN/scores.csv``) and by ``cryoal suggest``
(``rounds/NNN/scores.csv``) so the viewer and analyses can read why a batch was chosen.
One row per scored candidate, sorted by id::

    candidate_id, score, pick, predicted_class, p_<class 0>, p_<class 1>, ...

``score`` is the strategy's (higher = more informative; for native selectors the value
when picked, empty for the others: k-center distance, typicality, ...); ``pick`` the
position in the batch (0 = first picked) or -1; ``predicted_class`` the teacher's class
name and ``p_<class>`` its probabilities (for segmentation: mean over voxels). ``random``
runs no model over the pool: only its picks have a class and probabilities (when a
teacher was given), the rest are empty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.al.acquire import Acquisition
from cryoal.io.atomic import atomic_path

#: File name of the table, in a cycle or round folder.
SCORES_CSV = "scores.csv"


def score_frame(acq: Acquisition, class_names: Sequence[str]) -> pd.DataFrame:
    """The score table of one acquisition (see the module docstring for the columns).

    Parameters
    ----------
    acq
        The acquisition (its ``scored_*`` arrays cover every scored candidate).
    class_names
        ``C`` class names, in model output order.
    """
    ids = np.asarray(acq.scored_ids).astype(str)
    n, names = ids.size, list(class_names)
    pick = np.full(n, -1, np.int64)
    position = {cid: i for i, cid in enumerate(ids)}
    picked_pos = np.array([position[str(i)] for i in acq.ids], np.int64)
    pick[picked_pos] = np.arange(picked_pos.size)
    predicted = acq.scored_predicted
    if predicted is None:  # only the picks were predicted
        predicted = np.full(n, -1, np.int64)
        predicted[picked_pos] = acq.predicted
    label = np.array([names[p] if 0 <= p < len(names) else "" for p in predicted], dtype=object)
    frame = pd.DataFrame(
        {
            "candidate_id": ids,
            "score": np.asarray(acq.scored_scores, np.float64),
            "pick": pick,
            "predicted_class": label,
        }
    )
    probs = acq.scored_probs
    if probs is not None:
        if probs.shape != (n, len(names)):
            raise ValueError(
                f"{probs.shape[1]} class probabilities per candidate but {len(names)} class "
                f"names {names}; pass the model's class names"
            )
        for c, name in enumerate(names):
            frame[f"p_{name}"] = probs[:, c]
    return frame


def write_scores(path: str | os.PathLike, acq: Acquisition, class_names: Sequence[str]) -> Path:
    """Write :func:`score_frame` to ``path`` atomically (replacing an earlier attempt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = score_frame(acq, class_names)
    with atomic_path(path, overwrite=True) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return path


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """A score table as written by :func:`write_scores` (ids as strings)."""
    frame = pd.read_csv(
        path, dtype={"candidate_id": str, "predicted_class": str}, keep_default_na=False,
        na_values=[""],
    )  # fmt: skip
    frame["predicted_class"] = frame["predicted_class"].fillna("")
    return frame
