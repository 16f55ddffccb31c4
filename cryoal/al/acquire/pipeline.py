"""The one call from trained models to the next batch of candidates: :func:`acquire`.

It checks its inputs (pool, ``k``, the models the strategy needs), draws the pre-subset
(:func:`cryoal.al.acquire.scoring.candidate_rows`), scores it
(:func:`cryoal.al.acquire.scoring.score_candidates`) and picks ``k`` candidates
(:func:`cryoal.al.acquire.selection.select_scored`); a strategy that needs no model
(``random``) goes straight to its selector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cryoal.al.acquire.result import Acquisition
from cryoal.al.acquire.scoring import candidate_rows, score_candidates
from cryoal.al.acquire.seeds import subseed
from cryoal.al.acquire.selection import select_scored
from cryoal.al.acquire.stream import _summarise
from cryoal.al.registry import SelectInputs
from cryoal.al.strategies import StrategyConfig
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.train.distributed import resolve_device
from cryoal.train.predict import stream_outputs


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
    embed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Acquisition:
    """Choose ``k`` candidates from the unlabeled pool.

    Parameters
    ----------
    strategy_config
        A :class:`StrategyConfig`, a strategy name, or a mapping of its fields (parsed
        here, once; what follows receives the object).
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
    embed
        ``store rows -> (n, F)`` features that replace the teacher's in feature-space
        selection (``embedding: encoder``: see :func:`cryoal.al.round.round_embedding`).

    Returns
    -------
    Acquisition

    Raises
    ------
    ValueError
        Unknown strategy or option, missing model, ``k`` outside ``1..N``, or a strategy
        that does not apply to the model (e.g. coreset features from a segmenter).
    """
    cfg = (
        strategy_config
        if isinstance(strategy_config, StrategyConfig)  # parsed by the caller
        else StrategyConfig.parse(strategy_config)
    )
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
        embed=embed,
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
