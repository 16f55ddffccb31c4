"""``cryoal suggest``: the next queue of candidates for the expert.

Round 0 (no trained model yet) is ``random`` or ``stratified`` over the unlabelled
candidates. Once a round ``r`` has a trained model (``cryoal train DIR``), suggestions of
round ``r`` are ranked by that model with ``defaults.strategy`` (``auto``: the recipe the
label-efficiency study measured for that model, unless the project says otherwise), drawn
at random, or ranked with any ``cryoal.al`` strategy or
recipe through ``cryoal.al.acquire``, the call the AL engine and the napari plugin use as
well.
The queue is written to the label store (the source of truth) and, as a readable copy, to
``rounds/NNN/suggestions.csv``; a model's round also gets the full score table of every
scored candidate, ``rounds/NNN/scores.csv`` (:mod:`cryoal.al.score_table`).

On a cluster the scoring is split and never opens the live label store: the candidates
and labels come from the trained round's frozen files (``snapshot.csv`` and
``candidates.csv``, :mod:`cryoal.project.pool`). :func:`score_shard` (``cryoal score DIR
--shard I/N``) scores one slice of the candidates into
``rounds/NNN/scores/shard-III-of-NNN.h5``; ``suggest(..., from_shards=True)`` (``cryoal
merge-scores DIR``) checks that the shards cover every candidate once, selects exactly as
the single-process run would and writes ``suggestions.csv`` and, last,
``suggestions.json`` (what the queue needs besides the CSV). :func:`import_suggestions`
(``cryoal suggest DIR --import``, where the label store lives) then writes that queue into
the store.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.al.ledger import round_name
from cryoal.al.strategies import StrategyConfig
from cryoal.io.atomic import atomic_path, atomic_write_text
from cryoal.progress import CountCallback
from cryoal.project.layout import (
    MERGED_NAME,
    SCORES_DIR,
    SCORES_TABLE_NAME,
    SUGGESTIONS_NAME,
    round_dir,
)
from cryoal.project.project import Project
from cryoal.project.rounds import ModelInfo, newest_model

log = logging.getLogger(__name__)

#: Strategies that need no model (the only ones possible in round 0).
MODEL_FREE = ("random", "stratified", "typical")
#: A round's strategy once parsed (:func:`parse_strategy`): a model-free method's name or a
#: :class:`~cryoal.al.strategies.StrategyConfig`.
RoundStrategy = str | StrategyConfig
#: Version of the merged-queue record (``rounds/NNN/suggestions.json``).
MERGED_FORMAT = "cryoal-merged-suggestions/1"


def parse_strategy(value: str | StrategyConfig) -> RoundStrategy:
    """A strategy as given (``--strategy``, ``defaults.strategy``) parsed once: ``random``
    and ``stratified`` stay names (drawn without a model, :func:`_model_free`); any other
    strategy or recipe becomes a :class:`StrategyConfig`, which is what is passed on.

    Raises
    ------
    ValueError
        Unknown strategy or option (one line naming it and listing the valid ones).
    """
    if isinstance(value, StrategyConfig) or value in MODEL_FREE:
        return value
    return StrategyConfig.parse(value)


#: ``defaults.strategy`` value that picks the measured recipe for the round's model.
AUTO_STRATEGY = "auto"
#: The recipe for a model fine-tuned from the project's pretrained encoder, and for one
#: trained from scratch (the label-efficiency study's choices; see ``Defaults.strategy``).
PRETRAINED_DEFAULT, SCRATCH_DEFAULT = "margin+div-emb+cap+explore", "margin+div+cap"


def measured_default(model: ModelInfo | None) -> str:
    """``defaults.strategy: auto`` resolved for the round's ``model``: the pretrained recipe
    when it was trained from an encoder, else the one measured for training from scratch."""
    if model is not None and model.encoder:
        return PRETRAINED_DEFAULT
    return SCRATCH_DEFAULT


def strategy_name(strategy: RoundStrategy) -> str:
    """The name recorded with a queue: the method's, or the strategy's display name."""
    return strategy if isinstance(strategy, str) else strategy.display_name


@dataclass
class SuggestResult:
    """A written suggestion queue."""

    round: int
    ids: list[str]
    scores: np.ndarray
    strategy: str
    model_version: str | None
    csv_path: Path


def suggest(
    project: Project,
    *,
    strategy: str | StrategyConfig | None = None,
    k: int | None = None,
    seed: int | None = None,
    replace: bool = False,
    device: str = "cpu",
    batch_size: int = 64,
    progress: CountCallback | None = None,
    on_batch: CountCallback | None = None,
    from_shards: bool = False,
) -> SuggestResult:
    """Rank the unlabelled candidates and write the next suggestion queue.

    Parameters
    ----------
    strategy
        ``random`` / ``stratified`` (no model needed), or a ``cryoal.al`` strategy or recipe
        (``kt``, ``entropy``, ..., or a :class:`StrategyConfig` already parsed by the caller,
        :func:`parse_strategy`) that uses the newest trained round's teacher and student.
        Default: ``defaults.strategy`` once a model exists, else ``defaults.round0_strategy``
        (``auto``: ``typical`` with a current encoder, else ``random``).
        A name is parsed once, here; the rest of the round receives the object.
    k
        Queue length (capped at the number of unlabelled candidates).
    seed
        Seed of random draws (default ``defaults.seed``).
    replace
        Replace an existing queue of the same round.
    device, batch_size
        Where the models run and the fixed micro-batch size of scoring.
    progress
        Called with the number of candidates extracted into the candidate store.
    on_batch
        Called with the number of candidates after each scored micro-batch.
    from_shards
        Do not score: merge the round's score shards (:func:`score_shard`, with the same
        strategy, seed and batch size) and select from them. The candidates and labels
        come from the round's frozen files; the queue is written to ``suggestions.csv``
        and ``suggestions.json`` only (``replace``: replace those of an earlier merge), and
        the label store is not opened: import it with :func:`import_suggestions`.

    Raises
    ------
    ValueError
        A model strategy before any model is trained, no unlabelled candidates, or the
        round already has a queue (without ``replace``).
    """
    model, strategy, k, seed, pool, labelled, candidates = _request(
        project, strategy, k, seed, frozen=from_shards
    )
    round_ = model.round if model is not None else 0
    if from_shards:
        record = round_dir(project.root, round_) / MERGED_NAME
        if record.exists() and not replace:
            raise ValueError(
                f"{record}: round {round_} already has a merged queue; import it ('cryoal "
                "suggest DIR --import'), or pass --replace to merge again"
            )
    else:
        store = project.labels
        if not replace and round_ in set(store.rounds()["round"].tolist()):
            raise ValueError(
                f"{store.path}: round {round_} already has suggestions; label them, then "
                "snapshot and train a new model for the next round, or pass --replace "
                "to replace this round's queue"
            )
    ids = pool["candidate_id"].to_numpy(dtype=object).astype(str)
    predicted: list[str] | None = None
    if isinstance(strategy, str):  # a model-free method
        picked, scores = _model_free(
            project, strategy, pool, ids, k, seed, candidates, batch_size, device
        )
        version = None
        # a replaced queue of a model's round: its old score table no longer applies
        (round_dir(project.root, round_) / SCORES_TABLE_NAME).unlink(missing_ok=True)
    else:
        assert model is not None
        ctx = _ModelContext(project, model, strategy, ids, sorted(labelled), k, seed, device,
                            batch_size, progress, candidates)  # fmt: skip
        picked, scores, predicted = ctx.select(on_batch, from_shards)
        version = model.model_version
        ctx.write_scores(round_)
        if project.config.task == "segment":  # the model's masks, to correct in the viewer
            from cryoal.project.proposals import write_proposals

            queued = ids[picked].tolist()
            write_proposals(
                round_dir(project.root, round_), queued, ctx.store.index_of(queued), ctx.store,
                ctx.run, device=device,
            )  # fmt: skip
    chosen = ids[picked]
    name = strategy_name(strategy) if isinstance(strategy, str) else round_name(strategy, ctx.cold)
    if from_shards:
        csv_path = _write_csv(
            project, round_, pool.set_index("candidate_id").loc[chosen], scores, name, predicted
        )
        _write_merged_record(project, round_, name, version, seed, csv_path)
        return SuggestResult(round_, chosen.tolist(), scores, name, version, csv_path)
    # the readable copy first, the store last: a job killed before the commit has written
    # only files (removable), and the commit makes the round exist in one step; a merged
    # queue's record no longer describes the CSV once it is rewritten here
    (round_dir(project.root, round_) / MERGED_NAME).unlink(missing_ok=True)
    csv_path = _write_csv(
        project, round_, pool.set_index("candidate_id").loc[chosen], scores, name, predicted
    )
    store.write_suggestions(
        round_, chosen.tolist(), scores, name, model_version=version, seed=seed, replace=replace
    )
    return SuggestResult(round_, chosen.tolist(), scores, name, version, csv_path)


def _model_free(
    project: Project,
    strategy: str,
    pool: pd.DataFrame,
    ids: np.ndarray,
    k: int,
    seed: int,
    candidates: pd.DataFrame,
    batch_size: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Round 0 (:func:`cryoal.al.round.initial_round`, the engine's round 0): ``stratified``
    draws evenly over the candidates' prior classes, or over tomograms when no candidate
    has one; ``typical`` runs TypiClust in the embedding of the project's pretrained
    encoder (``cryoal pretrain DIR``)."""
    from cryoal.al.round import initial_round

    prior = pool["prior_class"]
    groups = (
        prior.fillna("(none)").astype(str).to_numpy()
        if prior.notna().any()
        else pool["tomo_id"].astype(str).to_numpy()
    )
    features = None
    if strategy == "typical":
        features = _encoder_features(project, ids, candidates, batch_size, device)
    picked = initial_round(strategy, ids, k, seed, groups=groups, features=features)
    return picked, np.full(picked.size, np.nan)


def _encoder_features(
    project: Project, ids: np.ndarray, candidates: pd.DataFrame, batch_size: int, device: str
) -> np.ndarray:
    """``(n, F)`` embedding of candidates ``ids`` under the project's current encoder."""
    from cryoal.pretrain.embed import embed_rows
    from cryoal.project.extraction import candidate_store
    from cryoal.project.pretraining import current_encoder

    encoder = current_encoder(project)
    if encoder is None:
        raise ValueError(
            f"{project.root}: a typical round 0 needs the project's pretrained encoder; run "
            f"'cryoal pretrain {project.root}' first, or use --strategy random"
        )
    store = candidate_store(project, table=candidates)
    rows = store.index_of(ids.tolist())
    return embed_rows(encoder, store, rows, batch_size=batch_size, device=device)


def _round0_strategy(project: Project) -> str:
    """``defaults.round0_strategy`` with ``auto`` resolved: ``typical`` when the project
    has a current encoder, else ``random``."""
    chosen = project.config.defaults.round0_strategy
    if chosen != "auto":
        return chosen
    from cryoal.project.pretraining import current_encoder

    return "typical" if current_encoder(project) is not None else "random"


def _request(
    project: Project,
    strategy: str | StrategyConfig | None,
    k: int | None,
    seed: int | None,
    *,
    frozen: bool = False,
) -> tuple[ModelInfo | None, RoundStrategy, int, int, pd.DataFrame, set[str], pd.DataFrame]:
    """Resolve defaults (the strategy parsed once); the newest model, the unlabelled pool, the labelled ids and every
    candidate. ``frozen``: from the newest model's round files (``candidates.csv`` and
    ``snapshot.csv``) instead of the label store, which is then not opened."""
    cfg = project.config.defaults
    model = newest_model(project.root)
    if strategy is None:
        strategy = cfg.strategy if model is not None else _round0_strategy(project)
    if strategy == AUTO_STRATEGY:
        strategy = measured_default(model)
    strategy = parse_strategy(strategy)
    k = k if k is not None else cfg.k
    seed = seed if seed is not None else cfg.seed
    if k < 1:
        raise ValueError(f"--k {k} must be >= 1")
    if model is None and not isinstance(strategy, str):
        raise ValueError(
            f"strategy {strategy.display_name!r} needs a trained model and the project has none yet; use "
            "--strategy random or stratified for round 0, label the queue, then run "
            "'cryoal train DIR'"
        )
    if frozen:
        if model is None or isinstance(strategy, str):
            raise ValueError(
                f"strategy {strategy_name(strategy)!r} scores nothing; run 'cryoal suggest DIR' (no shards)"
            )
        from cryoal.project.pool import read_frozen_pool

        candidates, labelled = read_frozen_pool(project.root, model.round)
    else:
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
    return model, strategy, k, seed, pool, labelled, candidates


class _ModelContext:
    """The trained round's models, the candidate store and the candidates to score."""

    def __init__(
        self,
        project: Project,
        model: ModelInfo,
        strategy: StrategyConfig,
        pool_ids: np.ndarray,
        labelled_ids: list[str],
        k: int,
        seed: int,
        device: str,
        batch_size: int,
        progress: CountCallback | None,
        candidates: pd.DataFrame,
    ) -> None:
        from cryoal.al.acquire import candidate_rows
        from cryoal.al.ledger import ProjectLedger, in_cold_start
        from cryoal.al.round import round_strategy, selection_seed
        from cryoal.project.extraction import candidate_store
        from cryoal.train.checkpoint import load_run

        self.run = load_run(model.run_path(project.root), device=device)
        expected = project.config.model_classes
        if list(self.run.info.get("class_names", model.class_names)) != expected:
            raise ValueError(
                f"{model.run_path(project.root)}: the model's classes differ from the "
                f"project's {expected}; retrain with 'cryoal train DIR'"
            )
        self.project, self.model, self.k, self.seed = project, model, k, seed
        self.result: Any = None  # the last selection (an Acquisition)
        self.device, self.batch_size = device, batch_size
        self.strategy = strategy
        names = project.config.class_names
        ledger = ProjectLedger(project.root, model.round, names)
        self.cold = in_cold_start(self.strategy, model.round, ledger.rounds(), len(names))
        self.cfg = round_strategy(self.strategy, self.run.config, cold=self.cold)
        #: the seed of this round's draws: derived from the project's seed and the round
        self.selection_seed = selection_seed(seed, model.round)
        self.pool_ids = pool_ids
        self.store = candidate_store(project, progress=progress, table=candidates)
        pool_rows = self.store.index_of(pool_ids.tolist())
        self.labelled_rows = (
            self.store.index_of(labelled_ids) if labelled_ids else np.empty(0, np.int64)
        )
        self.rows, self.ids = candidate_rows(
            self.cfg, self.store, pool_rows, k, self.selection_seed
        )

    def meta(self, n_shards: int) -> dict[str, Any]:
        from cryoal.al.shards import candidates_sha256

        return {
            "n_shards": n_shards,
            "n_candidates": int(self.ids.size),
            "candidates_sha256": candidates_sha256(self.ids),
            "strategy": self.cfg.model_dump(mode="json"),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "model_version": self.model.model_version,
        }

    def score(self, shard: tuple[int, int], on_batch: CountCallback | None) -> Any:
        from cryoal.al.acquire import score_candidates

        return score_candidates(
            self.cfg, self.run.teacher, self.run.student, self.store, self.rows, self.ids,
            seed=self.selection_seed, batch_size=self.batch_size, device=self.device,
            on_batch=on_batch, shard=shard,
        )  # fmt: skip

    def select(
        self, on_batch: CountCallback | None, from_shards: bool
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Picks (positions in ``pool_ids``), their scores and the teacher's predicted class
        name of each pick."""
        from cryoal.al.acquire import select_scored
        from cryoal.al.round import round_embedding, select_round
        from cryoal.al.shards import candidates_sha256, merge_shards

        if from_shards:
            folder = round_dir(self.project.root, self.model.round) / SCORES_DIR
            table = merge_shards(
                sorted(folder.glob("shard-*.h5")), self.ids, candidates_sha256(self.ids)
            )
            meta = self.meta(0)
            self._check_shard_request(folder, table, meta)
            embed = round_embedding(
                self.cfg, self.run.config.encoder, self.store, batch_size=self.batch_size,
                device=self.device,
            )  # fmt: skip
            result = select_scored(
                self.cfg, table, k=self.k, seed=self.selection_seed, teacher=self.run.teacher,
                student=self.run.student, store=self.store, labeled_indices=self.labelled_rows,
                batch_size=self.batch_size, device=self.device, embed=embed,
            )  # fmt: skip
        else:
            result = select_round(
                self.strategy, self.run, self.store, self.store.index_of(self.pool_ids.tolist()),
                self.labelled_rows, self.k, seed=self.seed, round=self.model.round, cold=self.cold,
                batch_size=self.batch_size, device=self.device, on_batch=on_batch,
            )  # fmt: skip
        self.result = result
        position = {cid: i for i, cid in enumerate(self.pool_ids)}
        picked = np.array([position[str(c)] for c in result.ids], dtype=np.int64)
        names = self.project.config.model_classes
        predicted = [names[int(p)] if 0 <= int(p) < len(names) else "" for p in result.predicted]
        if self.project.config.task == "segment" and result.scored_probs is not None:
            # a crop's class is its most probable foreground class (background fills most
            # of every box, so it would win the mean over voxels)
            probs = dict(zip(result.scored_ids.astype(str), result.scored_probs, strict=True))
            predicted = [names[1 + int(np.argmax(probs[str(c)][1:]))] for c in result.ids]
        return picked, np.asarray(result.scores, dtype=np.float64), predicted

    def write_scores(self, round_: int) -> Path:
        """Write the last selection's score table to ``rounds/NNN/scores.csv``."""
        from cryoal.al.score_table import write_scores

        path = round_dir(self.project.root, round_) / SCORES_TABLE_NAME
        return write_scores(path, self.result, self.project.config.model_classes)

    def _check_shard_request(self, folder: Path, table: Any, meta: dict[str, Any]) -> None:
        from cryoal.al.shards import read_shard

        _, shard_meta = read_shard(sorted(folder.glob("shard-*.h5"))[0])
        for key in ("strategy", "seed", "batch_size", "model_version"):
            if shard_meta[key] != meta[key]:
                raise ValueError(
                    f"{folder}: the shards were scored with {key} {shard_meta[key]!r} but the "
                    f"merge asks for {meta[key]!r}; pass the scoring options to --merge too"
                )


def prepare_scoring(project: Project, *, progress: CountCallback | None = None) -> Path:
    """Extract (or find) the cached store of every candidate that scoring reads.

    Run once before a scoring job array, so that its tasks do not each extract the same
    cache (``cache/candidates-<hash>.h5``, see :func:`cryoal.project.extraction.candidate_store`).
    The candidates are the newest trained round's frozen ``candidates.csv``; the label
    store is not opened.
    """
    from cryoal.project.extraction import candidate_store
    from cryoal.project.pool import read_pool

    model = newest_model(project.root)
    if model is None:
        raise ValueError(
            f"{project.root}: no trained round to score yet; train one first ('cryoal train DIR')"
        )
    table = read_pool(round_dir(project.root, model.round))
    return Path(candidate_store(project, progress=progress, table=table).path)


def score_shard(
    project: Project,
    shard: tuple[int, int],
    *,
    strategy: str | StrategyConfig | None = None,
    k: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: CountCallback | None = None,
    on_batch: CountCallback | None = None,
) -> Path:
    """Score shard ``(i, N)`` of the newest model's candidates; write its score file.

    The candidates are those :func:`suggest` would score (the same strategy, ``k`` and
    ``seed`` select the same pre-subset), sorted by id; shard ``i`` takes the ``i``-th of
    ``N`` contiguous runs of whole micro-batches of ``batch_size``, so the merged scores are
    bitwise those of one process. The file ``rounds/NNN/scores/shard-III-of-NNN.h5`` is
    written atomically (see :mod:`cryoal.al.shards`). The candidates and labels are the
    round's frozen files (``candidates.csv``, ``snapshot.csv``); the label store is not
    opened.

    Returns
    -------
    Path
        The shard file.
    """
    from cryoal.al.shards import shard_name, write_shard

    model, strategy, k, seed, pool, labelled, candidates = _request(
        project, strategy, k, seed, frozen=True
    )
    assert model is not None and not isinstance(strategy, str)  # frozen: model strategies
    ids = pool["candidate_id"].to_numpy(dtype=object).astype(str)
    ctx = _ModelContext(project, model, strategy, ids, sorted(labelled), k, seed, device,
                        batch_size, progress, candidates)  # fmt: skip
    table = ctx.score(shard, on_batch)
    meta = ctx.meta(shard[1]) | {"shard": shard[0]}
    path = round_dir(project.root, model.round) / SCORES_DIR / shard_name(*shard)
    return write_shard(path, table, meta)


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


def _write_merged_record(
    project: Project,
    round_: int,
    strategy: str,
    model_version: str | None,
    seed: int,
    csv_path: Path,
) -> Path:
    """``rounds/NNN/suggestions.json``, written last: the merged queue is complete."""
    import json

    from cryoal.project.snapshot import sha256_file

    record = {
        "format": MERGED_FORMAT,
        "round": round_,
        "strategy": strategy,
        "model_version": model_version,
        "seed": seed,
        "csv_sha256": sha256_file(csv_path),
    }
    path = csv_path.parent / MERGED_NAME
    atomic_write_text(path, json.dumps(record, indent=2) + "\n", overwrite=True)
    return path


@dataclass
class ImportResult:
    """A merged queue brought into the label store (or found there already)."""

    round: int
    ids: list[str]
    strategy: str
    model_version: str | None
    already: bool


def _merge_hint(root: Path) -> str:
    where = shlex.quote(str(root))
    return (
        f"run 'cryoal merge-scores {where}' once every 'cryoal score {where} --shard I/N' has "
        "run, then import again"
    )


def _round_to_import(project: Project) -> int:
    """The round whose merged queue ``--import`` brings in: the newest trained round's,
    which is the round ``cryoal score`` and ``cryoal merge-scores`` work on."""
    model = newest_model(project.root)
    if model is None:
        raise FileNotFoundError(
            f"{project.root / 'rounds'}: no trained round, so no merged queue ({MERGED_NAME}) "
            f"to import; train one ('cryoal train {shlex.quote(str(project.root))}'), then "
            f"{_merge_hint(project.root)}"
        )
    record_path = round_dir(project.root, model.round) / MERGED_NAME
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{record_path}: round {model.round} is trained but its score shards were never "
            f"merged into a queue; {_merge_hint(project.root)}"
        )
    return model.round


def import_suggestions(
    project: Project, *, round: int | None = None, replace: bool = False
) -> ImportResult:
    """Write a queue merged from score shards (``cryoal merge-scores``) into the label store.

    Parameters
    ----------
    round
        The round whose ``suggestions.json`` to import; default the newest trained round
        (the round ``cryoal score`` and ``cryoal merge-scores`` work on), refused when that
        round has no merged queue.
    replace
        Replace a different queue the store already holds for that round. A store that
        already holds exactly this queue is left as it is (``already=True``).

    Raises
    ------
    FileNotFoundError
        No trained round, or no merged queue in the round (its shards were not merged).
    ValueError
        A record that does not match its ``suggestions.csv`` (rewritten since the merge), or
        the round already has another queue (without ``replace``).
    """
    import json

    from cryoal.project.snapshot import sha256_file

    if round is None:
        round = _round_to_import(project)
    directory = round_dir(project.root, round)
    record_path, csv_path = directory / MERGED_NAME, directory / SUGGESTIONS_NAME
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{record_path}: no merged queue for round {round}; {_merge_hint(project.root)}"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{record_path}: unreadable ({exc}); run 'cryoal merge-scores DIR' again"
        ) from None
    if record.get("format") != MERGED_FORMAT:
        raise ValueError(
            f"{record_path}: format {record.get('format')!r}, expected {MERGED_FORMAT!r}"
        )
    if not csv_path.is_file() or sha256_file(csv_path) != record["csv_sha256"]:
        raise ValueError(
            f"{csv_path}: not the queue the merge wrote (missing or rewritten since); run "
            "'cryoal merge-scores DIR --replace' again"
        )
    table = pd.read_csv(csv_path, dtype={"candidate_id": str})
    ids = table["candidate_id"].tolist()
    store = project.labels
    if round in set(store.rounds()["round"].tolist()):
        held = store.queue(round, include_labelled=True)["candidate_id"].tolist()
        if held == ids:
            return ImportResult(round, ids, record["strategy"], record["model_version"], True)
    store.write_suggestions(
        round, ids, table["score"].to_numpy(dtype=np.float64), record["strategy"],
        model_version=record["model_version"], seed=record["seed"], replace=replace,
    )  # fmt: skip
    return ImportResult(round, ids, record["strategy"], record["model_version"], False)
