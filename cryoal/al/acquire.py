"""One call from trained models to the next batch of candidates to label.

:func:`acquire` is what ``cryoal suggest``, the AL engine, the benchmark and the napari
plugin use: it optionally draws a random pre-subset of the unlabeled pool, streams those
candidates through the models in fixed-size batches (:func:`cryoal.train.predict.
stream_outputs`), turns the outputs into scores with the pure heuristics of
:mod:`cryoal.al.heuristics` / :mod:`cryoal.al.gradnorm`, and picks ``k`` candidates with the
selectors of :mod:`cryoal.al.selectors`. Memory is bounded by the batch plus what the
strategy needs per candidate (one score; the teacher's ``C`` logits, for the score table and
probability-space selection; ``F`` features for feature-space selection). What each
strategy needs and how it scores or selects is read from :mod:`cryoal.al.registry`; nothing
here names a strategy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from cryoal.al import gradnorm as gn
from cryoal.al import heuristics as H
from cryoal.al import selectors as sel
from cryoal.al.registry import BatchArrays, Needs, SelectInputs
from cryoal.al.strategies import StrategyConfig
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.train.distributed import resolve_device
from cryoal.train.predict import stream_outputs

logger = logging.getLogger(__name__)


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


def subseed(seed: int, *tags: int) -> int:
    """An independent 32-bit seed derived from ``seed`` and integer ``tags``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(1)[0])


@dataclass
class _Outputs:
    """Per-candidate arrays gathered while streaming (only those a strategy needs)."""

    teacher_logits: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    student_logits: list[np.ndarray] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)

    @staticmethod
    def cat(parts: list[np.ndarray]) -> np.ndarray | None:
        return np.concatenate(parts) if parts else None


def _check_models(
    cfg: StrategyConfig, teacher: nn.Module | None, student: nn.Module | None
) -> None:
    if not cfg.needs.model:
        return
    if teacher is None:
        raise ValueError(f"strategy {cfg.name!r} needs a trained teacher model")
    if cfg.needs_student and student is None:
        mode = (
            "an EMA student (train with student: ema)"
            if cfg.student_mode == "ema"
            else ("a trained student (train with student: trained)")
        )
        raise ValueError(f"strategy {cfg.display_name!r} needs {mode}; none was given")


def _probs_for_space(logits: np.ndarray) -> np.ndarray:
    """``(n, C)`` probabilities; segmentation outputs are averaged over voxels."""
    p = H.softmax(logits, axis=1)
    if p.ndim > 2:
        p = p.reshape(p.shape[0], p.shape[1], -1).mean(axis=2)
    return p


def _iter_batches(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [indices[i : i + batch_size] for i in range(0, indices.size, batch_size)]


def _gradnorm_scores(
    cfg: StrategyConfig,
    surrogate: gn.Surrogate,
    teacher: nn.Module,
    store: SubtomogramStore,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device,
    out: _Outputs,
    on_batch: CountCallback | None,
    keep_teacher: bool,
) -> None:
    """Exact all-parameter gradient norms, batch by batch (needs gradients, not no_grad),
    turned into scores by the strategy's score function."""
    score = cfg.spec.score
    assert score is not None
    was_training = teacher.training
    teacher.to(device)
    teacher.eval()
    try:
        for rows in _iter_batches(indices, batch_size):
            x = torch.from_numpy(store.subtomograms(rows)[:, None]).to(device)
            g = gn.gradnorm_scores(
                teacher, x, surrogate=surrogate, norm=cfg.gradnorm_norm, scope="all"
            )
            with torch.no_grad():
                t = _summarise(teacher(x).float().cpu().numpy())
            out.scores.append(score(cfg, BatchArrays(teacher=t, gradnorms=g)))
            out.predicted.append(t.argmax(axis=1).astype(np.int32))
            if keep_teacher:
                out.teacher_logits.append(t)
            if on_batch:
                on_batch(rows.size)
    finally:
        teacher.train(was_training)


def _stream(
    cfg: StrategyConfig,
    teacher: nn.Module,
    student: nn.Module | None,
    store: SubtomogramStore,
    indices: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    want_features: bool,
    want_student: bool,
    on_batch: CountCallback | None,
    keep_teacher: bool = True,
    keep_student: bool = True,
    mc_seed: int | None = None,
    first_batch: int = 0,
    score: bool = True,
) -> _Outputs:
    """Stream ``indices`` through the models, keeping scores and what selection needs.

    Always keeps the teacher's predicted class; ``keep_teacher`` also keeps its ``(n, C)``
    logits (selection in its probability space, BADGE). ``want_student`` runs the student;
    ``keep_student`` also keeps its logits (selection in the student's probability space).
    ``score``: compute the strategy's scores (with the MC passes or gradients it needs);
    False only collects outputs (e.g. the labeled set's points).
    """
    out = _Outputs()
    if indices.size == 0:
        return out
    needs = cfg.needs if score else Needs()
    if needs.gradients is not None:
        _gradnorm_scores(
            cfg, needs.gradients, teacher, store, indices, batch_size, device, out, on_batch,
            keep_teacher,
        )  # fmt: skip
        if want_student or want_features:
            extra = _stream(
                cfg,
                teacher,
                student,
                store,
                indices,
                batch_size=batch_size,
                device=device,
                want_features=want_features,
                want_student=want_student,
                on_batch=None,
                score=False,
            )
            out.features, out.student_logits = extra.features, extra.student_logits
        return out
    models: dict[str, nn.Module] = {"teacher": teacher}
    if want_student and student is not None:
        models["student"] = student
    mc = needs.mc_passes
    score_fn = cfg.spec.score if score else None
    head = getattr(teacher, "head", None)
    head_bias = getattr(head, "bias", None) is not None
    stream = stream_outputs(
        models,
        store,
        indices,
        batch_size=batch_size,
        device=device,
        mc_passes=mc,
        features=want_features or needs.features,
        mc_seed=mc_seed,
        first_batch=first_batch,
    )
    if mc and mc_seed is not None:  # masks keyed by (seed, candidate id, pass)
        from cryoal.al.mc_dropout import keyed_stream

        ids = np.asarray(store.ids)
        stream = keyed_stream(stream, list(models.values()), ids, indices, batch_size, mc_seed)
    for batch in stream:
        t = batch.logits["teacher"].numpy()
        s = batch.logits["student"].numpy() if "student" in batch.logits else None
        if score_fn is not None:
            feats = batch.features.get("teacher") if needs.features else None
            arrays = BatchArrays(
                teacher=t, student=s, features=None if feats is None else feats.numpy(),
                head_bias=head_bias,
            )  # fmt: skip
            out.scores.append(score_fn(cfg, arrays))
        if mc:  # keep the mean over passes as the prediction
            t = np.log(np.clip(H.softmax(t, axis=1).mean(axis=2), 1e-12, None))
        # (n, C) per candidate; segmentation outputs as log mean-voxel probabilities
        t = _summarise(t)
        out.predicted.append(t.argmax(axis=1).astype(np.int32))
        if keep_teacher:
            out.teacher_logits.append(t)
        if s is not None and keep_student:
            out.student_logits.append(_summarise(s))
        if want_features:
            out.features.append(batch.features["teacher"].numpy())
        if on_batch:
            on_batch(batch.indices.size)
    return out


def _summarise(logits: np.ndarray) -> np.ndarray:
    """Classification logits as they are; segmentation reduced to log mean-voxel probs."""
    if logits.ndim == 2:
        return logits.astype(np.float32)
    return np.log(np.clip(_probs_for_space(logits), 1e-12, None)).astype(np.float32)


def acquire(
    strategy_config: StrategyConfig | str | dict,
    *,
    teacher: nn.Module | None,
    student: nn.Module | None,
    store: SubtomogramStore,
    pool_indices: Sequence[int] | np.ndarray,
    labeled_indices: Sequence[int] | np.ndarray,
    k: int,
    seed: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    on_batch: CountCallback | None = None,
) -> Acquisition:
    """Choose ``k`` candidates from the unlabeled pool.

    Parameters
    ----------
    strategy_config
        A :class:`StrategyConfig`, a strategy name, or a mapping of its fields.
    teacher, student
        Trained models (``cryoal.train.fit.fit`` returns both); ``student`` may be None for
        strategies that do not use it; ``random`` needs neither.
    store
        The subtomogram store holding pool (and labeled) candidates.
    pool_indices
        ``(N,)`` store rows of the unlabeled candidates.
    labeled_indices
        Store rows of the labeled set (centres for the coreset family; may be empty).
    k
        Batch size (``1 <= k <= N``).
    seed
        Seed of the pre-subset, stochastic selection and k-center/k-means++ draws.
    batch_size
        Samples per forward pass.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    on_batch
        Called with the number of candidates after each streamed batch (progress bars).

    Returns
    -------
    Acquisition

    Raises
    ------
    ValueError
        Unknown strategy or option, missing model, ``k`` outside ``1..N``, or a strategy
        that does not apply to the model (e.g. coreset features from a segmenter).
    """
    cfg = StrategyConfig.parse(strategy_config)
    pool = np.asarray(pool_indices, np.int64).reshape(-1)
    labeled = np.asarray(labeled_indices, np.int64).reshape(-1)
    if pool.size == 0:
        raise ValueError("the unlabeled pool is empty; nothing left to suggest")
    if not 1 <= k <= pool.size:
        raise ValueError(f"k={k} must be between 1 and the pool size {pool.size}")
    if np.unique(pool).size != pool.size:
        raise ValueError("pool_indices contain repeated store rows")
    if np.intersect1d(pool, labeled).size:
        raise ValueError("pool_indices and labeled_indices overlap; the pool must be unlabeled")
    _check_models(cfg, teacher, student)
    if (
        cfg.needs.mc_passes
        and teacher is not None
        and not any(
            isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in teacher.modules()
        )
    ):
        raise ValueError(
            f"{cfg.name} needs MC dropout, but the teacher has no dropout; train with "
            "dropout > 0 (e.g. 0.3 in the training config)"
        )
    dev = resolve_device(device)
    t0 = time.perf_counter()
    cand, cand_ids = candidate_rows(cfg, store, pool, k, seed)
    sel_seed = subseed(seed, 2)

    if not cfg.needs.model:
        return _select_model_free(cfg, cand, cand_ids, k, sel_seed, teacher, store, batch_size,
                                  dev, t0)  # fmt: skip

    assert teacher is not None
    table = score_candidates(
        cfg, teacher, student, store, cand, cand_ids,
        seed=seed, batch_size=batch_size, device=dev, on_batch=on_batch,
    )  # fmt: skip
    t1 = time.perf_counter()
    return select_scored(
        cfg, table, k=k, seed=seed, teacher=teacher, student=student, store=store,
        labeled_indices=labeled, batch_size=batch_size, device=dev, predict_s=t1 - t0,
    )  # fmt: skip


def _select_model_free(
    cfg: StrategyConfig,
    cand: np.ndarray,
    cand_ids: np.ndarray,
    k: int,
    sel_seed: int,
    teacher: nn.Module | None,
    store: SubtomogramStore,
    batch_size: int,
    dev: torch.device,
    t0: float,
) -> Acquisition:
    """A strategy that needs no model (``random``): its selector on the ids alone."""
    select = cfg.spec.select
    assert select is not None
    inputs = SelectInputs(
        ids=cand_ids, k=k, seed=sel_seed, points=lambda: np.empty((cand.size, 0)),
        centres=lambda: None, teacher_logits=None, features=None,
        predicted=np.full(cand.size, -1, np.int64), cap=None,
    )  # fmt: skip
    pos, pick_scores, scores = select(cfg, inputs)
    predicted = np.full(k, -1, np.int64)
    if teacher is not None:  # the teacher's guesses, e.g. for a cold-start accuracy check
        logits = [
            b.logits["teacher"].numpy()
            for b in stream_outputs(
                {"teacher": teacher}, store, cand[pos], batch_size=batch_size, device=dev
            )
        ]
        predicted = _summarise(np.concatenate(logits)).argmax(axis=1).astype(np.int64)
    t1 = time.perf_counter()
    return Acquisition(
        ids=cand_ids[pos],
        indices=cand[pos],
        scores=pick_scores,
        predicted=predicted,
        scored_ids=cand_ids,
        scored_scores=scores,
        strategy=cfg.display_name,
        timings={"predict": 0.0, "select": t1 - t0},
    )


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
    cfg: StrategyConfig | str | dict,
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
        The strategy.
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
    cfg = StrategyConfig.parse(cfg)
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


def select_scored(
    cfg: StrategyConfig | str | dict,
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
) -> Acquisition:
    """Pick ``k`` candidates from a (merged) :class:`ScoreTable`, as :func:`acquire` does.

    The models are used only by the coreset family to place the labeled set
    (``labeled_indices``) in the selection space.
    """
    cfg = StrategyConfig.parse(cfg)
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

    cap = None if cfg.class_cap is None else max(1, math.ceil(cfg.class_cap * k))
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
            cfg, cand_ids, scores_all, k, sel_seed, predicted, cap, lambda: points_of(out), centres
        )
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
