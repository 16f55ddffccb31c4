"""Selection: ``k`` candidates from a (merged) :class:`ScoreTable` -> :class:`Acquisition`.

A strategy with its own selector (from :mod:`cryoal.al.registry`) gets the candidates in its
selection space; the others are picked by score with the selectors of
:mod:`cryoal.al.selectors`: top-k, stochastic, or top-M + k-center / k-means++ diversity,
each with an optional per-class cap. The models are used only to place the labeled set in
the selection space.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cryoal.al import selectors as sel
from cryoal.al.acquire.result import Acquisition
from cryoal.al.acquire.scoring import ScoreTable
from cryoal.al.acquire.seeds import subseed
from cryoal.al.acquire.stream import _Outputs, _probs_for_space, _stream
from cryoal.al.registry import SelectInputs
from cryoal.al.strategies import StrategyConfig
from cryoal.io.store import SubtomogramStore
from cryoal.train.distributed import resolve_device


def select_scored(
    cfg: StrategyConfig,
    table: ScoreTable,
    *,
    k: int,
    seed: int,
    teacher: nn.Module,
    student: nn.Module | None,
    store: SubtomogramStore,
    labeled_indices: Sequence[int] | np.ndarray,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    predict_s: float = 0.0,
    embed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Acquisition:
    """Pick ``k`` candidates from a (merged) :class:`ScoreTable`, as :func:`acquire` does,
    with the strategy ``cfg`` parsed once by the caller.

    The models are used only by the coreset family to place the labeled set
    (``labeled_indices``) in the selection space. ``embed`` (store rows -> ``(n, F)``)
    replaces the teacher's features in feature-space selection.
    """
    dev = resolve_device(device)
    labeled = np.asarray(labeled_indices, np.int64).reshape(-1)
    cand, cand_ids = table.rows, table.ids
    if not 1 <= k <= cand.size:
        raise ValueError(f"k={k} must be between 1 and the number of scored candidates {cand.size}")
    sel_seed = subseed(seed, 2)
    space = cfg.selection_space
    t1 = time.perf_counter()
    predicted = table.predicted
    out = _Outputs(
        teacher_logits=[] if table.teacher_logits is None else [table.teacher_logits],
        student_logits=[] if table.student_logits is None else [table.student_logits],
        features=[] if table.features is None else [table.features],
        scores=[] if table.scores is None else [table.scores],
    )
    if embed is not None and space == "features":
        out.features = [embed(cand)]

    def points_of(o: _Outputs) -> np.ndarray:
        if space == "features":
            f = _Outputs.cat(o.features)
            if f is None:
                raise ValueError("feature-space selection needs a classifier with forward_features")
            return f
        logits = _Outputs.cat(o.student_logits if space == "student_probs" else o.teacher_logits)
        assert logits is not None
        return _probs_for_space(logits.astype(np.float64))

    def centres() -> np.ndarray | None:
        if labeled.size == 0:
            return None
        if embed is not None and space == "features":
            return embed(labeled)
        lab = _stream(
            cfg,
            teacher,
            student,
            store,
            labeled,
            batch_size=batch_size,
            device=dev,
            want_features=space == "features",
            want_student=space == "student_probs",
            on_batch=None,
            score=False,
        )
        return points_of(lab)

    n_explore = exploration_picks(cfg.explore, k)
    k_main = k - n_explore
    cap = None if cfg.class_cap is None else max(1, math.ceil(cfg.class_cap * k_main))
    select = cfg.spec.select
    if select is not None:
        inputs = SelectInputs(
            ids=cand_ids, k=k, seed=sel_seed, points=lambda: points_of(out), centres=centres,
            teacher_logits=_Outputs.cat(out.teacher_logits),
            features=_Outputs.cat(out.features), predicted=predicted, cap=cap,
        )  # fmt: skip
        pos, pick_scores, scores_all = select(cfg, inputs)
    else:
        scored = _Outputs.cat(out.scores)
        assert scored is not None and scored.shape == (cand.size,)
        scores_all = scored
        pos = _select_by_score(
            cfg, cand_ids, scores_all, k_main, sel_seed, predicted, cap, lambda: points_of(out),
            centres,
        )  # fmt: skip
        pick_scores = scores_all[pos]
    if n_explore:

        def features_of(rows: np.ndarray) -> np.ndarray:
            if embed is not None:
                return embed(rows)
            lab = _stream(cfg, teacher, student, store, rows, batch_size=batch_size, device=dev,
                          want_features=True, want_student=False, on_batch=None, score=False)  # fmt: skip
            f = _Outputs.cat(lab.features)
            if f is None:
                raise ValueError("explore needs a classifier with forward_features")
            return f

        pos = _explore(
            cfg, pos, n_explore, cand, cand_ids, labeled, subseed(seed, 3), features_of,
            None if embed is not None else table.features,
        )  # fmt: skip
        pick_scores = scores_all[pos]
    t2 = time.perf_counter()
    return Acquisition(
        ids=cand_ids[pos],
        indices=cand[pos],
        scores=np.asarray(pick_scores, np.float64),
        predicted=predicted[pos],
        scored_ids=cand_ids,
        scored_scores=scores_all,
        strategy=cfg.display_name,
        timings={"predict": predict_s, "select": t2 - t1},
        scored_predicted=predicted,
        scored_probs=(
            None
            if table.teacher_logits is None
            else _probs_for_space(table.teacher_logits.astype(np.float64)).astype(np.float32)
        ),
    )


def exploration_picks(explore: float, k: int) -> int:
    """Picks of a batch of ``k`` chosen by exploration: ``round(explore * k)``, at least 1
    when ``explore > 0`` and at most ``k - 1`` (0 for ``k = 1``)."""
    if explore <= 0 or k < 2:
        return 0
    return min(k - 1, max(1, round(explore * k)))


def _explore(
    cfg: StrategyConfig,
    pos: np.ndarray,
    n: int,
    cand: np.ndarray,
    cand_ids: np.ndarray,
    labeled: np.ndarray,
    seed: int,
    features_of: Callable[[np.ndarray], np.ndarray],
    cand_features: np.ndarray | None,
) -> np.ndarray:
    """``pos`` plus ``n`` positions chosen by TypiClust among the candidates not in ``pos``,
    with the labelled set and ``pos`` as the covered samples (feature space)."""
    rest = np.setdiff1d(np.arange(cand.size), pos)
    feats = cand_features if cand_features is not None else features_of(cand)
    covered = [feats[pos]]
    if labeled.size:
        covered.insert(0, features_of(labeled))
    extra, _ = sel.typiclust(
        feats[rest], n, cand_ids[rest], labeled=np.concatenate(covered),
        metric=cfg.coreset_metric, seed=seed, n_neighbors=cfg.typicality_neighbors,
        max_clusters=cfg.typicality_max_clusters,
    )  # fmt: skip
    return np.concatenate([pos, rest[extra]])


def _select_by_score(
    cfg: StrategyConfig,
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    seed: int,
    predicted: np.ndarray,
    cap: int | None,
    points: Callable[[], np.ndarray],
    centres: Callable[[], np.ndarray | None],
) -> np.ndarray:
    """Top-k, stochastic or top-M + diversity selection of ``k`` positions."""
    if cfg.selection == "top_k":
        if cap is None:
            return sel.top_k(ids, scores, k)
        return sel.apply_class_cap(sel.rank_by_score(ids, scores), predicted, k, cap)
    if cfg.selection == "stochastic":
        order = sel.stochastic_top_k(ids, scores, ids.size, seed, cfg.beta, cfg.weighting)
        return order[:k] if cap is None else sel.apply_class_cap(order, predicted, k, cap)
    # diverse: top-M by score, then k-center / k-means++ among them
    m = min(ids.size, max(k, math.ceil(cfg.diversity_factor * k)))
    top = sel.top_k(ids, scores, m)
    pts = points()[top]
    if cfg.diversity_method == "kcenter":
        pos, _ = sel.kcenter_greedy(
            pts,
            k,
            ids[top],
            centres=centres(),
            seed=seed,
            groups=predicted[top] if cap else None,
            cap=cap,
        )
    else:
        # with a cap, order all M candidates by k-means++ and take the first k within the cap
        pos = sel.kmeanspp(pts, k if cap is None else m, ids[top], seed=seed, first="max_norm")
        if cap is not None:
            pos = sel.apply_class_cap(pos, predicted[top], k, cap)
    return top[pos]
