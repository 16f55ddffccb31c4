"""One active-learning round, the same for benchmarks and projects.

A round is: (0) a model-free first batch, or (r > 0) train on the labels so far → score the
unlabeled pool → select ``k`` → ask the oracle → record. The benchmark engine
(:class:`cryoal.al.engine.ALEngine`, simulated oracle) and projects
(:func:`cryoal.project.training.train_project` and :func:`cryoal.project.suggest.suggest`,
the expert's label store as oracle) both call the functions here, so the same strategy on
the same labels, pool, configuration and seed trains the same models and picks the same
candidates in both:

* :func:`initial_round` — round 0, no model: ``random`` or ``stratified`` (round-robin
  over groups: prior classes or tomograms in a project, true classes in a benchmark),
  drawn with :func:`round0_seed`.
* :func:`train_round` — training number ``t`` (on the labels of rounds ``0..t``): the
  labelled rows in id order, :func:`training_seed`, the student the round's strategy needs
  (:func:`round_student`), a warm start from the previous training, then
  :func:`cryoal.train.fit.fit`.
* :func:`round_strategy` — the strategy a round actually runs: the cold-start strategy
  while the cold start lasts (:func:`cryoal.al.ledger.in_cold_start`, read from the
  run's or project's :class:`~cryoal.al.ledger.Ledger`), and the ``kt`` score linked to
  the training's temperature and KL direction.
* :func:`selection_seed` / :func:`training_seed` — the seeds of round ``q``'s selection and
  of training number ``t``, derived from the run's (or project's) seed. Rounds are the
  queues: round 0 is model-free, round ``q >= 1`` is selected by models trained on the
  labels of rounds ``0..q-1`` (training ``q - 1``: the engine's cycle ``q - 1``; a
  project's model of round ``q``).
* :func:`select_round` — score and select with the trained models (:func:`acquire`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cryoal.al.strategies import StrategyConfig

if TYPE_CHECKING:
    from cryoal.al.acquire import Acquisition
    from cryoal.io.store import SubtomogramStore
    from cryoal.train.config import TrainConfig
    from cryoal.train.events import TrainCallback
    from cryoal.train.fit import FitResult

#: Round-0 methods, which need no trained model (``typical``: the pretrained encoder's
#: embedding).
InitialMethod = Literal["random", "stratified", "typical"]
INITIAL_METHODS: tuple[str, ...] = ("random", "stratified", "typical")
_Ids = Sequence[Any] | np.ndarray


def selection_seed(seed: int, round: int) -> int:
    """Seed of round ``round``'s scoring and selection (pre-subsets, stochastic batches,
    k-center starts, MC-dropout masks)."""
    # tagged by the training that made the models (q - 1), as the engine always has been,
    # so benchmark runs started before this module resume with the same draws
    from cryoal.al.acquire import subseed

    return subseed(seed, 1000 + int(round) - 1)


def round0_seed(seed: int) -> int:
    """Seed of round 0's model-free draw (the engine's since its first version)."""
    from cryoal.al.acquire import subseed

    return subseed(seed, 0)


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
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Round 0: positions of ``k`` of ``ids`` chosen without a trained model.

    Parameters
    ----------
    method
        ``random``: a uniform sample; ``stratified``: round-robin over ``groups`` (sorted
        by name), a seeded random order inside each group, so rare groups are not left out;
        ``typical``: TypiClust (:func:`cryoal.al.selectors.typiclust`) on ``features``, the
        most typical candidate of each of ``k`` k-means clusters.
    ids
        ``(n,)`` candidate ids; the result does not depend on their order.
    k
        Picks (capped at ``n``).
    seed
        Seed of the draw.
    groups
        ``(n,)`` group of each candidate (required for ``stratified``).
    features
        ``(n, F)`` embedding of each candidate (required for ``typical``).

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
    if method == "typical":
        if features is None or len(features) != arr.size:
            raise ValueError("a typical round 0 needs the embedding of every candidate")
        pos, _ = selectors.typiclust(np.asarray(features, np.float64), k, arr, seed=rng_seed)
        return np.asarray(pos, np.int64)
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


def initial_round(
    method: str,
    ids: _Ids,
    k: int,
    seed: int,
    groups: _Ids | None = None,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Round 0 of a run or project with seed ``seed``: ``initial_selection(method, ids, k,
    round0_seed(seed), groups, features)``."""
    return initial_selection(method, ids, k, round0_seed(seed), groups=groups, features=features)


def round_embedding(
    strategy: StrategyConfig,
    encoder: str | None,
    store: Any,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    round0: bool = False,
) -> Any:
    """The ``rows -> (n, F)`` features that selection under ``strategy`` reads: None for
    ``embedding: teacher`` (the trained teacher's own) and for ``auto`` without an encoder,
    else the frozen encoder the training starts from (``encoder``, its folder).
    ``round0``: the embedding of round 0 instead (None unless ``round0: typical``).

    Raises
    ------
    ValueError
        The embedding is needed and there is no encoder.
    """
    if round0:
        if strategy.round0 != "typical":
            return None
    elif strategy.embedding == "teacher" or (strategy.embedding == "auto" and encoder is None):
        return None
    if encoder is None:
        raise ValueError(
            f"strategy {strategy.display_name!r} reads the pretrained encoder's embedding, but "
            "the training has no encoder; pretrain one ('cryoal pretrain') or set embedding: "
            "teacher and round0: random"
        )
    from cryoal.pretrain.embed import encoder_embedding

    return encoder_embedding(encoder, store, batch_size=batch_size, device=device)


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

    embed = round_embedding(
        strategy, run.config.encoder, store, batch_size=batch_size, device=device
    )
    return acquire(
        round_strategy(strategy, run.config, cold=cold),
        embed=embed,
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


def round_student(
    config: TrainConfig, strategy: StrategyConfig | None
) -> Literal["trained", "ema", "none"]:
    """The student a round trains: the one the round's strategy needs
    (:attr:`StrategyConfig.student_mode`) when the strategy is known at training time (a
    benchmark run), else the training configuration's ``student`` (a project, whose
    strategy is chosen when suggesting: ``cryoal suggest --strategy``)."""
    return config.student if strategy is None else strategy.student_mode


@dataclass
class RoundFit:
    """A round's training: the configuration it ran with (seed and student set by the
    round's rules), the store rows it trained and validated on, and :func:`fit`'s result."""

    config: TrainConfig
    train_rows: np.ndarray
    val_rows: np.ndarray
    result: FitResult


def train_round(
    config: TrainConfig,
    store: SubtomogramStore,
    rows: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    seed: int,
    training: int,
    out_dir: str | os.PathLike,
    strategy: StrategyConfig | None = None,
    val_fraction: float = 0.0,
    unlabeled_rows: Sequence[int] | np.ndarray | None = None,
    warm_start_from: str | os.PathLike | None = None,
    warm_start_steps: int | None = None,
    resume: bool = False,
    callback: TrainCallback | None = None,
    stop_on_sigusr1: bool = False,
) -> RoundFit:
    """Fit training number ``training``: the teacher, and the student the round needs, on
    the labelled set. ``ALEngine`` cycles and ``cryoal train PROJECT`` both run it.

    Parameters
    ----------
    config
        The training configuration; its ``seed`` and ``student`` are replaced by the
        round's (:func:`training_seed` of ``seed`` and ``training``, :func:`round_student`).
    store, rows, labels
        The subtomogram store, the labelled rows and their classes (any order: they are
        trained in the order of their ids, so the result does not depend on how a ledger
        lists them).
    seed
        The run's or project's seed.
    training
        ``0`` for the training on round 0's labels, ``t`` for that on rounds ``0..t``.
    out_dir
        The run folder (see :func:`cryoal.train.fit.fit`).
    strategy
        The round's strategy when it is known at training time (it sets the student).
    val_fraction
        Labelled fraction held out for validation (a stratified split drawn with the
        training's seed); 0: train on every label.
    unlabeled_rows
        Rows the student may also learn from (``student_data: labeled+unlabeled``) and
        semi-supervised training draws its unlabelled batches from
        (``semi_supervised: fixmatch``).
    warm_start_from, warm_start_steps
        The previous training's run folder to start from, and the optimizer steps of the
        warm-started training (default: the configuration's). None: a fresh start (or the
        configuration's pretrained ``encoder``).
    resume, callback, stop_on_sigusr1
        As in :func:`cryoal.train.fit.fit`.

    Raises
    ------
    ValueError
        Rows and labels of different lengths, or a ``labeled+unlabeled`` student without
        ``unlabeled_rows``.
    """
    from cryoal.data.datasets import stratified_split
    from cryoal.train.fit import fit

    rows_arr = np.asarray(rows, np.int64).reshape(-1)
    labels_arr = np.asarray(labels, np.int64).reshape(-1)
    if rows_arr.size != labels_arr.size:
        raise ValueError(f"{rows_arr.size} labelled rows but {labels_arr.size} labels")
    order = np.argsort(np.asarray(store.ids[rows_arr]).astype(str), kind="stable")
    rows_arr, labels_arr = rows_arr[order], labels_arr[order]
    cfg = config.updated(
        student=round_student(config, strategy), seed=training_seed(seed, training)
    )
    if warm_start_from is not None and warm_start_steps is not None:
        cfg = cfg.updated(steps=warm_start_steps)
    cfg = _own_config_on_resume(cfg, out_dir, resume)
    unlabeled = None
    if cfg.student_data == "labeled+unlabeled" or cfg.semi_supervised != "none":
        if unlabeled_rows is None:
            option, fix = (
                ("student_data labeled+unlabeled", "student_data: labeled")
                if cfg.student_data == "labeled+unlabeled"
                else (f"semi_supervised {cfg.semi_supervised}", "semi_supervised: none")
            )
            raise ValueError(
                f"{option} needs the unlabelled rows; set {fix} in the training config"
            )
        unlabeled = np.asarray(unlabeled_rows, np.int64).reshape(-1)
    train_pos = np.arange(rows_arr.size)
    val_pos = np.empty(0, np.int64)
    if val_fraction > 0:
        train_pos, val_pos = stratified_split(labels_arr, val_fraction, cfg.seed)
    result = fit(
        cfg,
        store,
        rows_arr[train_pos],
        val_indices=rows_arr[val_pos] if val_pos.size else None,
        unlabeled_indices=unlabeled,
        labels=labels_arr[train_pos],
        out_dir=out_dir,
        init=warm_start_from,
        resume=resume,
        callback=callback,
        stop_on_sigusr1=stop_on_sigusr1,
    )
    return RoundFit(cfg, rows_arr[train_pos], rows_arr[val_pos], result)


def _own_config_on_resume(
    cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool
) -> TrainConfig:
    """An interrupted training continues with its own ``train.yaml`` (the seed it derived,
    the encoder it started from), taking only the runtime fields (device, workers, ...)
    from ``cfg``; a fresh one uses ``cfg``."""
    from pathlib import Path

    from cryoal.train.config import RUNTIME_FIELDS, TrainConfig

    saved = Path(out_dir) / "train.yaml"
    if not resume or not saved.is_file():
        return cfg
    own = TrainConfig.from_yaml(saved)
    return own.updated(**{name: getattr(cfg, name) for name in RUNTIME_FIELDS})
