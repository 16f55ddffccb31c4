"""``cryoal train DIR``: train teacher and student of a project round from its snapshot.

The job reads only files: ``project.yaml``, the round's immutable snapshot (hash verified)
and the tomograms; it writes only inside ``rounds/NNN/``. It never opens the live label
store, so it can run on a cluster node whose filesystem is not safe for SQLite, as long
as the snapshot was taken beforehand (``cryoal project snapshot DIR`` on the workstation).
Only when there is no snapshot left to train does it take one itself (a local, read-only
use of the store).

Steps: snapshot rows labelled with a class -> ``rounds/NNN/train.h5`` (subtomograms cut
by ``cryoal.data.extract``) -> :func:`cryoal.al.round.train_round` (the call the benchmark
engine makes: training number ``NNN - 1``, seeded by the project's seed, labels in id
order, a stratified validation split of ``val_fraction``) into ``rounds/NNN/model/`` ->
``rounds/NNN/round.json`` with the model version (``r<round>-<snapshot hash>``), the
snapshot's hash and the metrics.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryoal.io.store import MASK_IGNORE, SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.project.labels import utc_now
from cryoal.project.layout import MODEL_RUN_DIR, TRAIN_STORE_NAME
from cryoal.project.project import Project
from cryoal.project.rounds import ModelInfo, read_model_info, trained_rounds, write_model_info
from cryoal.project.snapshot import (
    Snapshot,
    live_sha256,
    load_snapshot,
    read_snapshot,
    snapshot_rounds,
    write_snapshot,
)

if TYPE_CHECKING:
    from cryoal.pretrain.run import PretrainCallback
    from cryoal.train.config import TrainConfig
    from cryoal.train.events import TrainCallback

log = logging.getLogger(__name__)


@dataclass
class ProjectTrainResult:
    """A trained round: its record and the in-memory fit result."""

    info: ModelInfo
    fit_result: Any
    #: what the round did with its unlabelled candidates (:func:`pool_note`)
    pool_note: str = ""

    @property
    def round(self) -> int:
        return self.info.round

    @property
    def model_version(self) -> str:
        return self.info.model_version


def choose_snapshot(project: Project, round: int | None, new_snapshot: bool) -> Snapshot:
    """The snapshot to train: ``round``'s; else the newest untrained one; else a new one."""
    if round is not None:
        if new_snapshot:
            raise ValueError("choose either a round to retrain or a new snapshot, not both")
        return load_snapshot(project.root, round)
    rounds = snapshot_rounds(project.root)
    if not new_snapshot and rounds and read_model_info(project.root, rounds[-1]) is None:
        return load_snapshot(project.root, rounds[-1])
    if rounds and live_sha256(project.labels) == load_snapshot(project.root, rounds[-1]).sha256:
        raise ValueError(
            f"{project.root}: no label changed since the snapshot of round {rounds[-1]}"
            + (" (already trained)" if read_model_info(project.root, rounds[-1]) else "")
            + "; label the current queue first ('cryoal labels queue DIR'), then train again"
        )
    snap = write_snapshot(project.labels, project.root)
    log.info("took snapshot %s of %d labels", snap.path, snap.n_labels)
    return snap


def model_version(snapshot: Snapshot) -> str:
    """``r<round>-<first 8 hex of the snapshot's sha256>``, e.g. ``r002-3fa1c09b``."""
    return f"r{snapshot.round:03d}-{snapshot.sha256[:8]}"


def train_project(
    project: Project | str | os.PathLike,
    *,
    round: int | None = None,
    new_snapshot: bool = False,
    config: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    warm_start: bool = False,
    overwrite: bool = False,
    progress: CountCallback | None = None,
    callback: TrainCallback | None = None,
    stop_on_sigusr1: bool = False,
    pretrain: bool = True,
    pretrain_callback: PretrainCallback | None = None,
) -> ProjectTrainResult:
    """Train a round's teacher and student from its snapshot.

    Parameters
    ----------
    project
        An open project or its folder.
    round
        Train this round's snapshot. Default: the newest snapshot that has no model yet;
        if there is none, a new snapshot is taken first.
    new_snapshot
        Take a new snapshot of the live labels first and train it.
    config
        A ``TrainConfig`` YAML file; default the project's ``defaults.train`` mapping
        (:func:`project_train_config`: ``seed`` defaults to the project's
        ``defaults.seed``).
    overrides
        ``TrainConfig`` fields that override the configuration (CLI options).

    warm_start
        Start from the previous trained round's weights instead of a fresh initialisation.
    overwrite
        Retrain a round that already has a model (its model folder is replaced).
    progress
        Called with the number of subtomograms extracted for the round's training store.
    callback, stop_on_sigusr1
        As in :func:`cryoal.train.fit.fit`.
    pretrain
        Start the teacher from the project's pretrained encoder (``cryoal pretrain DIR``),
        pretraining one for the teacher's preset first when the project has none (one
        process only; under ``torchrun`` an existing encoder is used, none is made). False:
        random initialisation. A configuration that names an ``encoder`` keeps it; a warm
        start replaces both.
    pretrain_callback
        Called with every :class:`~cryoal.pretrain.run.PretrainEvent` while pretraining.

    The round is trained by :func:`cryoal.al.round.train_round`, as in a benchmark run:
    round ``r``'s model is training number ``r - 1``, seeded with
    ``training_seed(seed, r - 1)``, on the labels in candidate-id order.

    Under ``torchrun`` rank 0 chooses (or takes) the snapshot, extracts the training store
    and writes ``round.json``; the other ranks wait for it and train on the same rows.

    Returns
    -------
    ProjectTrainResult
        ``info`` (written to ``rounds/NNN/round.json``) and the ``fit`` result.

    Raises
    ------
    ValueError
        Too few labels, classes that differ from the project's, a round that is already
        trained (without ``overwrite``), or an invalid training configuration.
    """
    from cryoal.train import distributed as D

    if not isinstance(project, Project):
        project = Project.open(project, check_labels=False)
    cfg = project_train_config(project, config, overrides)
    ctx = D.setup(D.resolve_device(cfg.device))
    use_encoder = pretrain and cfg.encoder is None and not warm_start
    try:
        return _train_project(
            project, cfg, ctx, round, new_snapshot, warm_start, overwrite, progress,
            callback, stop_on_sigusr1, pretrain_callback if use_encoder else None,
            use_encoder,
        )  # fmt: skip
    finally:
        D.teardown(ctx)


def project_train_config(
    project: Project,
    config: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """The ``TrainConfig`` of the project's rounds: the ``config`` YAML file (default the
    project's ``defaults.train``), its ``seed`` defaulting to the project's
    ``defaults.seed`` and its ``task`` the project's (a different one given is refused),
    with ``overrides`` applied."""
    from cryoal.train.config import TrainConfig

    if config is not None:
        cfg = TrainConfig.from_yaml(config)
    else:
        cfg = TrainConfig.from_dict(
            project.config.defaults.train, source="project.yaml defaults.train"
        )
    task = project.config.task
    explicit_task = "task" in cfg.model_fields_set or "task" in (overrides or {})
    if "seed" not in cfg.model_fields_set:
        cfg = cfg.updated(seed=project.config.defaults.seed)
    cfg = cfg.updated(**(overrides or {}))
    if not explicit_task:
        return cfg.updated(task=task)
    if cfg.task != task:
        raise ValueError(
            f"{project.config_path}: the project's task is {task}, the training config's "
            f"{cfg.task}; remove 'task' from the training config (it follows the project)"
        )
    return cfg


def _with_project_encoder(
    project: Project,
    cfg: Any,
    ctx: Any,
    directory: Path,
    progress: CountCallback | None,
    callback: PretrainCallback | None,
) -> Any:
    """``cfg`` with the project's encoder for the teacher's preset and norm.

    The current encoder (``cryoal pretrain DIR``) is used when it was pretrained for the
    teacher's preset and norm. Otherwise, in one process, one is pretrained (or reused from
    the cache) on the round's frozen candidate table (``directory/candidates.csv``, so the
    live label store is not opened) with the project's pretraining settings. Unchanged for
    segmentation, fewer candidates than pretraining needs, or under ``torchrun`` without a
    fitting encoder.
    """
    from cryoal.pretrain.run import MIN_SAMPLES
    from cryoal.project.pool import read_pool
    from cryoal.project.pretraining import current_encoder, pretrain_project

    if cfg.task != "classify":
        return cfg
    norm = "batch" if cfg.norm == "syncbatch" else cfg.norm
    enc = current_encoder(project)
    if enc is None or (enc.preset, enc.norm) != (cfg.teacher_preset, norm):
        table = read_pool(directory)
        if ctx.world_size > 1 or len(table) < MIN_SAMPLES:
            log.warning(
                "no pretrained encoder for teacher %s / norm %s (%d candidates; pretraining "
                "needs %d and one process): training from random weights",
                cfg.teacher_preset, norm, len(table), MIN_SAMPLES,
            )  # fmt: skip
            return cfg
        log.info("pretraining the %s encoder on the project's candidates", cfg.teacher_preset)
        overrides = {"preset": cfg.teacher_preset, "norm": norm, "device": cfg.device}
        enc = pretrain_project(
            project, overrides=overrides, progress=progress, callback=callback, table=table
        )
    log.info("teacher starts from the pretrained encoder %s", enc.path)
    return cfg.updated(encoder=str(enc.path))


def _train_project(
    project: Project,
    cfg: Any,
    ctx: Any,
    round: int | None,
    new_snapshot: bool,
    warm_start: bool,
    overwrite: bool,
    progress: CountCallback | None,
    callback: TrainCallback | None,
    stop_on_sigusr1: bool,
    pretrain_callback: PretrainCallback | None,
    use_encoder: bool,
) -> ProjectTrainResult:
    from cryoal.al.round import train_round
    from cryoal.project.extraction import extract_project_store
    from cryoal.train import distributed as D

    if ctx.is_main:
        snap = choose_snapshot(project, round, new_snapshot)
        chosen = snap.round
    else:
        chosen = -1
    # rank 0 decides (it may take a snapshot); the others train the same round
    chosen = int(D.all_reduce_sum([float(max(chosen, 0))], ctx)[0])
    if not ctx.is_main:
        snap = choose_snapshot(project, chosen, False)
    directory = snap.directory
    if read_model_info(project.root, snap.round) is not None and not overwrite:
        raise ValueError(
            f"{directory}: round {snap.round} already has a trained model; retrain it only "
            "with overwrite, or take a new snapshot ('cryoal project snapshot DIR') to train "
            "on newer labels"
        )
    table = read_snapshot(directory)
    masks = None
    if cfg.task == "segment":
        rows, labels, masks = _mask_rows(project, table, directory)
    else:
        rows = _class_rows(project, table, directory)
        labels = rows["class_id"].to_numpy(dtype=np.int64)
    # semi-supervised training and a student of labelled+unlabelled batches also read the
    # round's unlabelled candidates (frozen with the snapshot); they are extracted into the
    # round's store with the label -1 (for segmentation a mask with no voxel annotated)
    # and never written anywhere as labels
    pool = _unlabelled_pool(directory, table) if _reads_pool(cfg) else rows.iloc[:0]
    extracted = pd.concat([rows, pool], ignore_index=True)
    store_labels = np.concatenate([labels, np.full(len(pool), -1, np.int64)])
    if masks is not None:
        box = project.config.box
        masks = np.concatenate([masks, np.full((len(pool), box, box, box), MASK_IGNORE, np.uint8)])

    store_path = directory / TRAIN_STORE_NAME
    reuse = store_path.exists() and not overwrite and _store_matches(store_path, extracted)
    if ctx.is_main and reuse:
        log.info("reusing %s", store_path)
    elif ctx.is_main:
        extract_project_store(
            project, extracted, store_path, labels=store_labels, masks=masks, overwrite=True,
            progress=progress,
        )  # fmt: skip
    run_dir = directory / MODEL_RUN_DIR
    if run_dir.exists() and overwrite and ctx.is_main:
        shutil.rmtree(run_dir)
    D.barrier(ctx)  # the store is written and the old run removed before anyone reads
    store = SubtomogramStore(store_path)
    # a run folder without round.json is an interrupted training: continue it (with the
    # configuration it started with, its encoder included)
    resume = run_dir.exists()
    if use_encoder and not resume:  # one process may pretrain; torchrun uses an existing one
        cfg = _with_project_encoder(
            project, cfg, ctx, directory, progress if ctx.is_main else None, pretrain_callback
        )
    init = None
    if warm_start:
        previous = [m for m in trained_rounds(project.root) if m.round < snap.round]
        if previous:
            init = previous[-1].run_path(project.root)
    fitted = train_round(
        cfg,
        store,
        store.index_of(rows["candidate_id"].tolist()),
        labels,
        seed=cfg.seed,
        training=snap.round - 1,  # round r's model is trained on the labels of rounds 0..r-1
        out_dir=run_dir,
        val_fraction=cfg.val_fraction,
        unlabeled_rows=store.index_of(pool["candidate_id"].tolist()) if len(pool) else None,
        warm_start_from=init,
        resume=resume,
        callback=callback,
        stop_on_sigusr1=stop_on_sigusr1,
    )
    result = fitted.result
    info = ModelInfo(
        round=snap.round,
        model_version=model_version(snap),
        snapshot_sha256=snap.sha256,
        preset=cfg.teacher_preset,
        class_names=project.config.model_classes,
        n_train=int(fitted.train_rows.size),
        n_val=int(fitted.val_rows.size),
        created_at=utc_now(),
        metrics=_summary_metrics(result.metrics),
        encoder=fitted.config.encoder,
    )
    if ctx.is_main:
        write_model_info(project.root, info)
    D.barrier(ctx)
    note = pool_note(fitted.config, len(pool))
    log.info("trained %s on %d labels; %s", info.model_version, len(rows), note)
    return ProjectTrainResult(info=info, fit_result=result, pool_note=note)


def pool_note(cfg: TrainConfig, n_pool: int) -> str:
    """One line for the training log: what the round does with its unlabelled candidates
    (``n_pool`` of them read), and how to turn semi-supervised rounds on where they are off."""
    if cfg.semi_supervised != "none":
        return (
            f"semi-supervised ({cfg.semi_supervised}): the teacher also learns from "
            f"pseudo-labels of {n_pool} unlabelled candidates of the round (never stored)"
        )
    if n_pool:
        return f"the student also reads {n_pool} unlabelled candidates of the round"
    if cfg.task != "classify":
        return "unlabelled candidates: not read (semi-supervised rounds classify only)"
    return (
        "semi-supervised rounds: off (level with supervised fine-tuning in cryoal's study so far, "
        "benchmarks/results/semi_study.md); --set semi_supervised=fixmatch turns them on"
    )


def _reads_pool(cfg: Any) -> bool:
    """Whether training reads unlabelled samples (semi-supervised, or a student of
    labelled and unlabelled batches)."""
    return bool(cfg.semi_supervised != "none" or cfg.student_data == "labeled+unlabeled")


def _unlabelled_pool(directory: Path, snapshot: pd.DataFrame) -> pd.DataFrame:
    """The round's frozen candidates (``candidates.csv``) without a label of any kind in
    its snapshot, sorted by id: the pool semi-supervised training reads.

    Raises
    ------
    ValueError
        No unlabelled candidate is left (the fix is in the message).
    """
    from cryoal.project.pool import read_pool

    candidates = read_pool(directory)
    labelled = set(snapshot["candidate_id"].astype(str))
    pool = candidates[~candidates["candidate_id"].astype(str).isin(labelled)]
    if pool.empty:
        raise ValueError(
            f"{directory}: every candidate is labelled, so there is no unlabelled pool for "
            "semi_supervised / student_data labeled+unlabeled; set them to none / labeled"
        )
    return pool.sort_values("candidate_id").reset_index(drop=True)


def _mask_rows(
    project: Project, table: pd.DataFrame, directory: Path
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The snapshot's mask-labelled rows, their labels (each mask's most annotated
    foreground class, 0 when it has none; for the stratified validation split) and their
    ``(n, box, box, box)`` masks, checked against the project's box."""
    from cryoal.project.snapshot import read_snapshot_masks

    rows = table[table["kind"] == "mask"].sort_values("candidate_id").reset_index(drop=True)
    if len(rows) < 2:
        raise ValueError(
            f"{directory}: the snapshot holds {len(rows)} masks; commit masks of a few "
            "candidates, then 'cryoal project snapshot DIR' and train again"
        )
    frozen = read_snapshot_masks(directory)
    box = project.config.box
    masks = np.empty((len(rows), box, box, box), np.uint8)
    labels = np.zeros(len(rows), np.int64)
    n_values = len(project.config.class_names) + 1
    for i, cid in enumerate(rows["candidate_id"]):
        mask = frozen.get(cid)
        if mask is None or mask.shape != (box, box, box):
            got = "none" if mask is None else str(mask.shape)
            raise ValueError(
                f"{directory}: the mask of {cid} is {got}, the project's box is {box}^3; "
                "commit a mask of the box's shape and take a new snapshot"
            )
        masks[i] = mask
        counts = np.bincount(mask[mask < n_values].ravel(), minlength=n_values)
        labels[i] = int(np.argmax(counts[1:])) if counts[1:].any() else 0
    return rows, labels, masks


def _class_rows(project: Project, table: pd.DataFrame, directory: Path) -> pd.DataFrame:
    """The snapshot rows labelled with a class, checked against the project's classes."""
    rows = table[table["kind"] == "class"].reset_index(drop=True)
    names = project.config.class_names
    for cid, name in set(zip(rows["class_id"].astype(int), rows["class_name"], strict=True)):
        if not 0 <= cid < len(names) or names[cid] != name:
            raise ValueError(
                f"{directory}: class {cid}={name!r} of the snapshot is not the project's "
                f"(classes {names}); the class list was changed after labelling"
            )
    if len(rows) < 2:
        raise ValueError(
            f"{directory}: the snapshot holds {len(rows)} class labels; label at least a few "
            "per class, then 'cryoal project snapshot DIR' and train again"
        )
    present = sorted(set(rows["class_name"]))
    if len(present) < 2:
        raise ValueError(
            f"{directory}: every label is {present[0]!r}; a classifier needs labels of at "
            "least two classes"
        )
    missing = [n for n in names if n not in present]
    if missing:
        log.warning("no labels yet for classes %s; the model cannot predict them", missing)
    return rows


def _store_matches(path: Path, rows: pd.DataFrame) -> bool:
    try:
        store = SubtomogramStore(path)
    except (OSError, ValueError):
        return False
    try:
        ids = [str(i) for i in store.ids]
        return sorted(ids) == sorted(rows["candidate_id"].tolist())
    finally:
        store.close()


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The final scalar metrics of a fit, flattened (``val.teacher.accuracy`` ->
    ``val_teacher_accuracy``); per-class lists and matrices stay in ``model/metrics.json``."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}_{key}" if prefix else str(key), sub)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = value

    walk("", metrics.get("final", metrics) if isinstance(metrics, dict) else {})
    return out
