"""The result of one acquisition: :class:`Acquisition`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Acquisition:
    """The result of one acquisition.

    Attributes
    ----------
    ids
        ``(k,)`` candidate ids to label, in the order the selector picked them.
    indices
        ``(k,)`` store rows of ``ids``.
    scores
        ``(k,)`` the picks' scores (for k-center / k-means++ picks: the distance to the
        nearest centre when picked; for typiclust: the typicality when picked).
    predicted
        ``(k,)`` the teacher's predicted class of each pick (-1 when no model was run).
    scored_ids, scored_scores
        Every candidate that was scored (the pre-subset) and its score (``(n,)``), for
        ranking tables; higher = more informative.
    strategy
        Display name of the strategy.
    timings
        Seconds spent: ``{"predict": ..., "select": ...}``.
    scored_predicted
        ``(n,)`` the teacher's predicted class of every scored candidate, or None when
        only the picks were predicted (``random``).
    scored_probs
        ``(n, C)`` float32 teacher probabilities of every scored candidate (segmentation:
        mean over voxels), or None (``random``; shards written without logits).
    """

    ids: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    predicted: np.ndarray
    scored_ids: np.ndarray
    scored_scores: np.ndarray
    strategy: str
    timings: dict[str, float] = field(default_factory=dict)
    scored_predicted: np.ndarray | None = None
    scored_probs: np.ndarray | None = None
