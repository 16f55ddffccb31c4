"""One active-learning round, the same for benchmarks and projects.

A round is: (0) a model-free first batch, or (r > 0) the models of the previous training →
score the unlabeled pool → select ``k`` → ask the oracle → record. The benchmark engine
(:class:`cryoal.al.engine.ALEngine`, simulated oracle) and projects
(:func:`cryoal.project.suggest.suggest`, the expert's label store as oracle) both call the
functions here, so the same strategy on the same model, pool and seed picks the same
candidates in both:

* :func:`initial_selection` — round 0, no model: ``random`` or ``stratified`` (round-robin
  over groups: prior classes or tomograms in a project, true classes in a benchmark).
* :func:`in_cold_start` / :func:`round_strategy` — the strategy a round actually runs: the cold-start strategy
  while the cold start lasts, and the ``kt`` score linked to the training's temperature
  and KL direction.
* :func:`selection_seed` / :func:`training_seed` — the seeds of round ``q``'s selection and
  of training number ``t``, derived from the run's (or project's) seed. Rounds are the
  queues: round 0 is model-free, round ``q >= 1`` is selected by models trained on the
  labels of rounds ``0..q-1`` (the engine's cycle ``q - 1``; a project's model of round
  ``q``).
* :func:`select_round` — score and select with the trained models (:func:`acquire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cryoal.al.strategies import StrategyConfig

if TYPE_CHECKING:
    from cryoal.al.acquire import Acquisition

#: Round-0 methods, which need no model.
InitialMethod = Literal["random", "stratified"]
INITIAL_METHODS: tuple[str, ...] = ("random", "stratified")


def selection_seed(seed: int, round: int) -> int:
    """Seed of round ``round``'s scoring and selection (pre-subsets, stochastic batches,
    k-center starts, MC-dropout masks)."""
    # tagged by the training that made the models (q - 1), as the engine always has been,
    # so benchmark runs started before this module resume with the same draws
    from cryoal.al.acquire import subseed

    return subseed(seed, 1000 + int(round) - 1)


def training_seed(seed: int, training: int) -> int:
    """Seed of training number ``training`` (0 = on round 0's labels; initialisation, batch
    order, augmentation)."""
    from cryoal.al.acquire import subseed

    return subseed(seed, 100 + int(training))


def initial_selection(
    method: str,
    ids: Sequence[str] | np.ndarray,
    k: int,
    seed: int,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """Round 0: positions of ``k`` of ``ids`` chosen without a model.

    Parameters
    ----------
    method
        ``random``: a uniform sample; ``stratified``: round-robin over ``groups`` (sorted
        by name), a seeded random order inside each group, so rare groups are not left out.
    ids
        ``(n,)`` candidate ids; the result does not depend on their order.
    k
        Picks (capped at ``n``).
    seed
        Seed of the draw.
    groups
        ``(n,)`` group of each candidate (required for ``stratified``).

    Returns
    -------
    numpy.ndarray
        ``(min(k, n),)`` positions into ``ids``, in pick order.
    """
    from cryoal.al import heuristics, selectors

    arr = np.asarray(ids).astype(str)
    k = min(int(k), arr.size)
    rng_seed = int(seed)
    order = np.argsort(arr, kind="stable")
    if method == "random":
        by_id = np.empty(arr.size)
        by_id[order] = heuristics.random_scores(arr.size, rng_seed)  # follows sorted ids
        return selectors.top_k(arr, by_id, k)
    if method != "stratified":
        raise ValueError(f"round-0 method {method!r} is not one of {', '.join(INITIAL_METHODS)}")
    if groups is None:
        raise ValueError("stratified round 0 needs a group for every candidate")
    g = np.asarray(groups).astype(str)
    rng = np.random.default_rng(rng_seed)
    queues = []
    for name in sorted(set(g.tolist())):
        members = order[g[order] == name]
        queues.append(list(members[rng.permutation(len(members))]))
    picked: list[int] = []
    while len(picked) < k:
        for q in queues:
            if q and len(picked) < k:
                picked.append(int(q.pop(0)))
    return np.asarray(picked, dtype=np.int64)


def in_cold_start(strategy: StrategyConfig, round: int) -> bool:
    """Rounds ``1 .. cold_start_cycles`` run the cold-start strategy (the engine also ends a
    cold start by ``cold_start_margin``, from the teacher's accuracy on the labelled batch)."""
    return 1 <= int(round) <= strategy.cold_start_cycles


def random_initial(ids: Sequence[str] | np.ndarray, k: int, seed: int) -> np.ndarray:
    """Round 0 as a uniform sample: ``initial_selection("random", ids, k, seed)``."""
    return initial_selection("random", ids, k, seed)


def round_strategy(strategy: StrategyConfig, run_config: Any, *, cold: bool) -> StrategyConfig:
    """The strategy round ``r`` runs: the cold-start strategy while ``cold``, linked to the
    training (``run_config.tau`` / ``kl_direction``) so that ``kt`` ranks by the distance
    the student learnt."""
    s = strategy.cold_start_strategy() if cold else strategy
    return s.linked_to_training(run_config.tau, run_config.kl_direction)


def select_round(
    strategy: StrategyConfig,
    run: Any,
    store: Any,
    pool_rows: np.ndarray,
    labeled_rows: np.ndarray,
    k: int,
    *,
    seed: int,
    round: int,
    cold: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    on_batch: Any = None,
) -> Acquisition:
    """Score the pool with the trained models and choose round ``round``'s ``k`` candidates
    (the same call for the benchmark engine and for projects).

    Parameters
    ----------
    strategy
        The configured strategy (:func:`round_strategy` is applied here).
    run
        The trained models: ``teacher``, ``student`` and their training ``config``
        (a :class:`cryoal.train.checkpoint.LoadedRun`).
    store, pool_rows, labeled_rows
        The subtomogram store and the rows of the unlabeled pool and of the labeled set.
    k
        Batch size of the round.
    seed, round
        The run's or project's seed, and the round being selected.
    cold
        The cold start is still on.
    batch_size, device, on_batch
        As in :func:`cryoal.al.acquire.acquire`.
    """
    from cryoal.al.acquire import acquire

    return acquire(
        round_strategy(strategy, run.config, cold=cold),
        teacher=run.teacher,
        student=run.student,
        store=store,
        pool_indices=pool_rows,
        labeled_indices=labeled_rows,
        k=k,
        seed=selection_seed(seed, round),
        batch_size=batch_size,
        device=device,
        on_batch=on_batch,
    )
