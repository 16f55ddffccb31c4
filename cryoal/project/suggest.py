"""``cryoal suggest``: the next queue of candidates for the expert.

Round 0 (no trained model yet) is ``random`` or ``stratified`` over the unlabelled
candidates. Once a round ``r`` has a trained model (``cryoal train DIR``), suggestions of
round ``r`` are ranked by that model with any ``cryoal.al`` strategy (``kt`` by default)
through ``cryoal.al.acquire``, the call the AL engine and the napari plugin use as well.
The queue is written to the label store (the source of truth) and, as a readable copy, to
``rounds/NNN/suggestions.csv``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_path
from cryoal.project.project import Project
from cryoal.project.rounds import SUGGESTIONS_NAME, ModelInfo, newest_model
from cryoal.project.snapshot import round_dir

log = logging.getLogger(__name__)

#: Strategies that need no model (the only ones possible in round 0).
MODEL_FREE = ("random", "stratified")


@dataclass
class SuggestResult:
    """A written suggestion queue."""

    round: int
    ids: list[str]
    scores: np.ndarray
    strategy: str
    model_version: str | None
    csv_path: Path


def stratified_order(groups: np.ndarray, ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` positions drawn evenly over ``groups``: round-robin over the groups (sorted by
    name), a seeded random order inside each group.

    Parameters
    ----------
    groups
        ``(n,)`` group label of each candidate (prior class or tomogram).
    ids
        ``(n,)`` candidate ids (sorted input makes the result independent of row order).
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(ids, kind="stable")
    queues = []
    for g in sorted(set(groups.tolist())):
        members = order[groups[order] == g]
        queues.append(list(members[rng.permutation(len(members))]))
    picked: list[int] = []
    while len(picked) < k:
        for q in queues:
            if q and len(picked) < k:
                picked.append(int(q.pop(0)))
    return np.asarray(picked, dtype=np.int64)


def suggest(
    project: Project,
    *,
    strategy: str | None = None,
    k: int | None = None,
    seed: int | None = None,
    replace: bool = False,
    device: str = "cpu",
    batch_size: int = 64,
    progress: bool = True,
) -> SuggestResult:
    """Rank the unlabelled candidates and write the next suggestion queue.

    Parameters
    ----------
    strategy
        ``random`` / ``stratified`` (no model needed), or a ``cryoal.al`` strategy name
        (``kt``, ``entropy``, ...) that uses the newest trained round's teacher and student.
        Default: ``defaults.strategy`` once a model exists, else ``defaults.round0_strategy``.
    k
        Queue length (capped at the number of unlabelled candidates).
    seed
        Seed of random draws (default ``defaults.seed``).
    replace
        Replace an existing queue of the same round.

    Raises
    ------
    ValueError
        A model strategy before any model is trained, no unlabelled candidates, or the
        round already has a queue (without ``replace``).
    """
    cfg = project.config.defaults
    model = newest_model(project.root)
    if strategy is None:
        strategy = cfg.strategy if model is not None else cfg.round0_strategy
    k = k if k is not None else cfg.k
    seed = seed if seed is not None else cfg.seed
    if k < 1:
        raise ValueError(f"--k {k} must be >= 1")
    if model is None and strategy not in MODEL_FREE:
        raise ValueError(
            f"strategy {strategy!r} needs a trained model and the project has none yet; use "
            "--strategy random or stratified for round 0, label the queue, then run "
            "'cryoal train DIR'"
        )
    store = project.labels
    candidates = store.candidates()
    labelled = set(store.current_labels()["candidate_id"])
    pool = candidates[~candidates["candidate_id"].isin(labelled)].reset_index(drop=True)
    if pool.empty:
        raise ValueError(
            f"{project.root}: every candidate is labelled; add candidates ('cryoal project "
            "import-picks' / 'detect') to continue"
        )
    if k > len(pool):
        log.info("only %d unlabelled candidates; suggesting all of them", len(pool))
        k = len(pool)
    round_ = model.round if model is not None else 0
    if not replace and round_ in set(store.rounds()["round"].tolist()):
        raise ValueError(
            f"{store.path}: round {round_} already has suggestions; label them, then "
            "snapshot and train a new model for the next round, or pass --replace "
            "to replace this round's queue"
        )
    ids = pool["candidate_id"].to_numpy(dtype=object).astype(str)
    predicted: list[str] | None = None
    if strategy in MODEL_FREE:
        picked, scores = _model_free(strategy, pool, ids, k, seed)
        version = None
    else:
        assert model is not None
        picked, scores, predicted = _with_model(
            project, model, strategy, ids, sorted(labelled), k, seed, device, batch_size, progress
        )
        version = model.model_version
    chosen = ids[picked]
    # the readable copy first, the store last: a job killed before the commit has written
    # only files (removable), and the commit makes the round exist in one step
    csv_path = _write_csv(
        project, round_, pool.set_index("candidate_id").loc[chosen], scores, strategy, predicted
    )
    store.write_suggestions(
        round_, chosen.tolist(), scores, strategy, model_version=version, seed=seed, replace=replace
    )
    return SuggestResult(round_, chosen.tolist(), scores, strategy, version, csv_path)


def _model_free(
    strategy: str, pool: pd.DataFrame, ids: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from cryoal.al import heuristics, selectors

    if strategy == "random":
        scores = heuristics.random_scores(len(ids), seed)
        order = np.argsort(ids, kind="stable")
        by_id = np.empty(len(ids))
        by_id[order] = scores  # scores follow sorted ids: independent of row order
        picked = selectors.top_k(ids, by_id, k)
        return picked, np.full(k, np.nan)
    prior = pool["prior_class"]
    groups = (
        prior.fillna("(none)").astype(str).to_numpy()
        if prior.notna().any()
        else pool["tomo_id"].astype(str).to_numpy()
    )
    return stratified_order(groups, ids, k, seed), np.full(k, np.nan)


def _with_model(
    project: Project,
    model: ModelInfo,
    strategy: str,
    pool_ids: np.ndarray,
    labelled_ids: list[str],
    k: int,
    seed: int,
    device: str,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Picks, their scores and the teacher's predicted class name of each pick."""
    from cryoal.al.acquire import acquire
    from cryoal.project.extraction import candidate_store
    from cryoal.train.checkpoint import load_run

    run = load_run(model.run_path(project.root), device=device)
    if list(run.info.get("class_names", model.class_names)) != project.config.class_names:
        raise ValueError(
            f"{model.run_path(project.root)}: the model's classes differ from the project's "
            f"{project.config.class_names}; retrain with 'cryoal train DIR'"
        )
    store = candidate_store(project, progress=progress)
    pool_rows = store.index_of(pool_ids.tolist())
    labelled_rows = store.index_of(labelled_ids) if labelled_ids else np.empty(0, np.int64)
    result = acquire(
        strategy,
        teacher=run.teacher,
        student=run.student,
        store=store,
        pool_indices=pool_rows,
        labeled_indices=labelled_rows,
        k=k,
        seed=seed,
        batch_size=batch_size,
        device=device,
    )
    position = {cid: i for i, cid in enumerate(pool_ids)}
    picked = np.array([position[str(c)] for c in result.ids], dtype=np.int64)
    names = project.config.class_names
    predicted = [names[int(p)] if 0 <= int(p) < len(names) else "" for p in result.predicted]
    return picked, np.asarray(result.scores, dtype=np.float64), predicted


def _write_csv(
    project: Project,
    round_: int,
    rows: pd.DataFrame,
    scores: np.ndarray,
    strategy: str,
    predicted: list[str] | None,
) -> Path:
    directory = round_dir(project.root, round_)
    directory.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {
            "rank": np.arange(len(rows)),
            "candidate_id": rows.index.to_numpy(),
            "score": scores,
            "strategy": strategy,
            "tomo_id": rows["tomo_id"].to_numpy(),
            "z": rows["z"].to_numpy(),
            "y": rows["y"].to_numpy(),
            "x": rows["x"].to_numpy(),
        }
    )
    if predicted is not None:  # the teacher's class for each pick (shown by the napari widget)
        table["predicted_class"] = predicted
    path = directory / SUGGESTIONS_NAME
    with atomic_path(path, overwrite=True) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return path
