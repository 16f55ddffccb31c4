"""Scoring: the candidates a strategy scores, and their scores (or one shard of them).

:func:`candidate_rows` draws the seeded pre-subset of the pool in id order,
:func:`shard_range` splits it into scoring shards of whole micro-batches, and
:func:`score_candidates` streams one shard through the models into a :class:`ScoreTable`:
per candidate, what selection needs and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from cryoal.al import selectors as sel
from cryoal.al.acquire.seeds import subseed
from cryoal.al.acquire.stream import _Outputs, _stream
from cryoal.al.strategies import StrategyConfig
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.train.distributed import resolve_device


def candidate_rows(
    cfg: StrategyConfig, store: SubtomogramStore, pool: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates a strategy scores: the seeded pre-subset of the pool, in id order.

    Returns
    -------
    rows, ids
        ``(n,)`` store rows and their ids, sorted by id (so results never depend on the
        order of the pool, and every scoring shard derives the same list).
    """
    pool_ids = np.asarray(store.ids[pool]).astype(str)
    sub_pos = sel.random_subset(pool_ids, cfg.subset_size, subseed(seed, 1))
    if sub_pos.size < k:  # a subset smaller than the batch: widen it to k
        sub_pos = sel.random_subset(pool_ids, k, subseed(seed, 1))
    sub_pos = sub_pos[sel.canonical_order(pool_ids[sub_pos])]
    return pool[sub_pos], pool_ids[sub_pos]


def shard_range(n: int, batch_size: int, shard: int, n_shards: int) -> tuple[int, int]:
    """Positions ``[start, stop)`` of scoring shard ``shard`` of ``n_shards`` over ``n`` items.

    Shards are contiguous runs of whole micro-batches of ``batch_size`` (the last
    micro-batch of the list may be short and is padded by the model runner), so every
    micro-batch holds the same candidates whatever the number of shards, and the scores are
    bitwise those of the single-process run.
    """
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard}/{n_shards}: need 0 <= i < N (e.g. --shard 0/4)")
    batches = -(-n // batch_size)
    lo, hi = shard * batches // n_shards, (shard + 1) * batches // n_shards
    return min(n, lo * batch_size), min(n, hi * batch_size)


@dataclass
class ScoreTable:
    """Per-candidate outputs of scoring: what selection needs, and nothing more.

    Attributes
    ----------
    ids, rows
        ``(n,)`` candidate ids (sorted) and store rows.
    predicted
        ``(n,)`` the teacher's predicted class.
    scores
        ``(n,)`` informativeness (higher = more informative), or None for native selectors
        (coreset, pcoreset, badge, typiclust).
    teacher_logits, student_logits
        ``(n, C)`` float32 (log mean-voxel probabilities for segmentation): the teacher's
        always (score tables; None only in shards written by older versions), the
        student's when the selection uses its probability space, else None.
    features
        ``(n, F)`` float32 penultimate features (coreset, BADGE, diverse selection in
        feature space), else None.
    """

    ids: np.ndarray
    rows: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray | None = None
    teacher_logits: np.ndarray | None = None
    student_logits: np.ndarray | None = None
    features: np.ndarray | None = None

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "predicted", "scores", "teacher_logits", "student_logits", "features"
    )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[ScoreTable]) -> ScoreTable:
        """Parts in the given order, joined (arrays that are None stay None)."""
        parts = [p for p in parts if p.ids.size] or list(parts[:1])
        kw: dict[str, Any] = {
            name: (
                None
                if getattr(parts[0], name) is None
                else np.concatenate([getattr(p, name) for p in parts])
            )
            for name in cls.ARRAYS
        }
        return cls(
            ids=np.concatenate([p.ids for p in parts]),
            rows=np.concatenate([p.rows for p in parts]),
            **kw,
        )


def score_candidates(
    cfg: StrategyConfig,
    teacher: nn.Module,
    student: nn.Module | None,
    store: SubtomogramStore,
    rows: np.ndarray,
    ids: np.ndarray,
    *,
    seed: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    on_batch: CountCallback | None = None,
    shard: tuple[int, int] = (0, 1),
) -> ScoreTable:
    """Score candidates (or one shard of them) with the models, keeping what selection needs.

    Parameters
    ----------
    cfg
        The strategy, parsed once by the caller (:meth:`StrategyConfig.parse`).
    rows, ids
        All candidates, from :func:`candidate_rows` (sorted by id).
    seed
        The acquisition seed; each candidate's MC-dropout masks come from ``(seed,
        candidate id, pass)`` (:mod:`cryoal.al.mc_dropout`), so they do not depend on the
        sharding or on the other candidates of a micro-batch.
    batch_size
        The fixed micro-batch size (must be the same for every shard of a run).
    shard
        ``(i, N)``: score only shard ``i`` of ``N`` (:func:`shard_range`).

    Returns
    -------
    ScoreTable
        For the shard's candidates, in id order.
    """
    dev = resolve_device(device)
    start, stop = shard_range(rows.size, batch_size, *shard)
    space = cfg.selection_space
    keep = cfg.needs.keep if cfg.spec.native else frozenset()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        out = _stream(
            cfg,
            teacher,
            student,
            store,
            rows[start:stop],
            batch_size=batch_size,
            device=dev,
            want_features=space == "features" or "features" in keep,
            want_student=cfg.needs_student,
            keep_teacher=True,  # the score table's probabilities
            keep_student=space == "student_probs",
            on_batch=on_batch,
            mc_seed=subseed(seed, 3),
            first_batch=start // batch_size,
        )
    predicted = _Outputs.cat(out.predicted)
    return ScoreTable(
        ids=np.asarray(ids[start:stop]).astype(str),
        rows=np.asarray(rows[start:stop], np.int64),
        predicted=np.empty(0, np.int64) if predicted is None else predicted.astype(np.int64),
        scores=_Outputs.cat(out.scores),
        teacher_logits=_Outputs.cat(out.teacher_logits),
        student_logits=_Outputs.cat(out.student_logits),
        features=_Outputs.cat(out.features),
    )
