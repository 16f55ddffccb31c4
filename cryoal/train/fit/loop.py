"""The :func:`fit` entry point and its loop over epochs and steps.

:func:`fit` checks the inputs, sets up the process group under ``torchrun`` and runs the
loop: progress events to the callback, checkpoints every ``checkpoint_every_steps`` and at
each epoch end, ``metrics.json``, and on a stop request (SIGUSR1) a checkpoint, a SLURM
requeue and :class:`~cryoal.train.fit.result.TrainingPreempted`.

Reproducibility: initialisation, batch order, augmentation and dropout derive from
``config.seed``; the global torch RNG of the caller is saved and restored. A run killed at
any point and resumed from its newest checkpoint replays exactly the same batches.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryoal.io.atomic import atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.train.checkpoint import LoadedRun, list_checkpoints, save_run_models
from cryoal.train.config import TrainConfig
from cryoal.train.distributed import (
    DistContext,
    StopRequest,
    any_rank,
    barrier,
    device_for,
    requeue_slurm_job,
    resolve_device,
    setup,
    teardown,
)
from cryoal.train.events import TrainCallback, TrainEvent
from cryoal.train.fit.inputs import _as_indices
from cryoal.train.fit.result import FitResult, TrainingPreempted
from cryoal.train.fit.seeds import derive_seed
from cryoal.train.fit.trainer import _Trainer

#: The training's log (``cryoal --debug``); programs that follow a training read the
#: JSON-lines events of ``cryoal --events json`` instead (:mod:`cryoal.cli.progress`).
log = logging.getLogger("cryoal.train.fit")


def _preempt(
    trainer: _Trainer,
    out: Path | None,
    ctx: DistContext,
    callback: TrainCallback | None,
    t0: float,
    step0: int,
    saved: bool = False,
) -> None:
    """Checkpoint (unless just done), requeue the SLURM job from rank 0 and stop."""
    assert out is not None
    if not saved:
        trainer.save_checkpoint()  # rank 0 writes, every rank waits at the barrier
    job = requeue_slurm_job() if ctx.is_main else None
    if callback is not None:
        callback(_event(trainer, "stopped", t0, step0))
    raise TrainingPreempted(out, trainer.global_step, job)


def _write_metrics(out_dir: Path, trainer: _Trainer, final: dict[str, Any] | None) -> None:
    body = {
        "task": trainer.task,
        "class_names": trainer.class_names,
        "epochs": trainer.history,
        "final": final,
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(body, indent=1))


def fit(
    config: TrainConfig,
    store: SubtomogramStore | str | os.PathLike,
    train_indices: Sequence[int] | np.ndarray,
    *,
    val_indices: Sequence[int] | np.ndarray | None = None,
    unlabeled_indices: Sequence[int] | np.ndarray | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    out_dir: str | os.PathLike | None = None,
    init: FitResult | LoadedRun | str | os.PathLike | None = None,
    resume: bool = False,
    callback: TrainCallback | None = None,
    stop_on_sigusr1: bool = False,
) -> FitResult:
    """Train a teacher (and its student) on store rows.

    Parameters
    ----------
    config
        All hyper-parameters (:class:`~cryoal.train.config.TrainConfig`).
    store
        A :class:`~cryoal.io.store.SubtomogramStore` or its path.
    train_indices
        Labeled store rows to train on.
    val_indices
        Labeled rows evaluated after every epoch (none: no validation metrics). ``fit``
        never splits ``train_indices`` itself; :func:`cryoal.train.run.train_store` does.
    unlabeled_indices
        Rows the student may also learn from (``student_data: labeled+unlabeled``).
    labels
        Classify: ``(n_train,)`` class indices aligned with ``train_indices``, instead of
        ``store.labels[train_indices]`` (e.g. labels from an oracle or the label store).
    out_dir
        Run folder for ``train.yaml``, checkpoints, ``metrics.json``, ``model.json`` and
        the final safetensors; None trains in memory (no checkpoints).
    init
        Warm start from a previous :class:`FitResult`, :class:`LoadedRun` or run folder
        (teacher, and student when both runs have the same student network).
    resume
        Continue from the newest valid checkpoint in ``out_dir`` (start fresh when there
        is none, so a scheduler can always pass it).
    callback
        Called with a :class:`~cryoal.train.events.TrainEvent` after every step and epoch
        (on every rank that passes one; the CLI passes one on rank 0 only).
    stop_on_sigusr1
        Catch ``SIGUSR1`` while training (the SLURM pre-emption warning): at the next step
        boundary every rank stops, rank 0 writes a checkpoint, requeues the SLURM job when
        running in one (``scontrol requeue $SLURM_JOB_ID``) and :class:`TrainingPreempted`
        is raised on every rank. Needs ``out_dir``.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Invalid indices or labels, a store without masks for segmentation, a run folder
        that already holds a run (without ``resume``), or a checkpoint from a different
        configuration / data, or one modified after it was written.
    TrainingPreempted
        ``stop_on_sigusr1`` and SIGUSR1 arrived: the checkpoint is written.
    """
    if not isinstance(store, SubtomogramStore):
        store = SubtomogramStore(store)
    n = len(store)
    train = _as_indices(train_indices, n, "train_indices")
    if train.size == 0:
        raise ValueError(f"{store.path}: no training samples; label some samples first")
    val = _as_indices(val_indices, n, "val_indices")
    unlabeled = _as_indices(unlabeled_indices, n, "unlabeled_indices")
    if np.intersect1d(train, val).size:
        raise ValueError("train_indices and val_indices overlap; validation must be held out")
    if labels is None:
        targets = store.labels[train].copy()
    else:
        targets = np.asarray(labels, dtype=np.int64).reshape(-1)
        if targets.shape != train.shape:
            raise ValueError(f"{targets.size} labels for {train.size} train_indices; pass one each")
    # Every sample training will read, before anything is written (stores from other
    # tools may hold NaN/Inf; checked in chunks).
    store.check_finite(np.concatenate([train, val, unlabeled]))
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and not resume and (list_checkpoints(out) or (out / "model.json").exists()):
        raise FileExistsError(
            f"{out}: already holds a training run; continue it with --resume or choose a new --out"
        )

    device = resolve_device(config.device)
    ctx = setup(device)
    try:
        dev = device_for(device, ctx)
        parts = (train, targets, val, unlabeled)
        with StopRequest() if stop_on_sigusr1 and out is not None else _NoStop() as stop:
            return _fit(config, store, *parts, out, init, resume, callback, stop, dev, ctx)
    finally:
        teardown(ctx)


class _NoStop:
    """Stand-in for :class:`StopRequest` when pre-emption is not handled."""

    requested = False

    def __enter__(self) -> _NoStop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _event(
    trainer: _Trainer, kind: str, t0: float, step0: int, record: dict[str, Any] | None = None
) -> TrainEvent:
    """A progress event from the trainer's state (rates since this process started)."""
    c = trainer.config
    done = trainer.global_step - step0
    spent = max(time.perf_counter() - t0, 1e-9)
    per_step = spent / done if done else float("nan")
    left = trainer.total_steps - trainer.global_step
    n = max(1, trainer.accum["n"])
    loss = trainer.accum["task"] / n if trainer.accum["n"] else None
    acc = dice = None
    if record is not None:
        loss = record["train"]["task_loss"]
        teacher = (record.get("val") or {}).get("teacher") or {}
        acc, dice = teacher.get("accuracy"), teacher.get("mean_dice")
    return TrainEvent(
        kind=kind,  # type: ignore[arg-type]
        epoch=trainer.epoch,
        epochs=trainer.epochs,
        step=trainer.global_step,
        total_steps=trainer.total_steps,
        samples_per_s=done * c.batch_size / spent,
        eta_s=left * per_step if done else float("nan"),
        loss=loss,
        accuracy=acc,
        dice=dice,
        record=record,
    )


def _fit(
    config: TrainConfig,
    store: SubtomogramStore,
    train: np.ndarray,
    targets: np.ndarray,
    val: np.ndarray,
    unlabeled: np.ndarray,
    out: Path | None,
    init: Any,
    resume: bool,
    callback: TrainCallback | None,
    stop: StopRequest | _NoStop,
    device: torch.device,
    ctx: DistContext,
) -> FitResult:
    rng_devices = [device] if device.type == "cuda" else []
    main = ctx.is_main
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(derive_seed(config.seed, "dropout"))
        trainer = _Trainer(config, store, train, targets, val, unlabeled, out, init, device, ctx)
        if out is not None and main:
            out.mkdir(parents=True, exist_ok=True)
        barrier(ctx)
        if resume and out is not None and not trainer.restore():
            log.info("%s: no checkpoint to resume from; starting from scratch", out)
        if out is not None and main:
            config.write_yaml(out / "train.yaml")
        t_start = time.perf_counter() - trainer.elapsed
        t0, step0 = time.perf_counter(), trainer.global_step
        every = config.checkpoint_every_steps
        watch = isinstance(stop, StopRequest)
        while trainer.epoch < trainer.epochs:
            lab, unl = trainer.epoch_loaders()
            uiter = iter(unl) if unl is not None else None
            for batch in lab:
                trainer.step(batch, next(uiter) if uiter is not None else None)
                trainer.elapsed = time.perf_counter() - t_start
                if callback is not None:
                    callback(_event(trainer, "step", t0, step0))
                mid_epoch = trainer.step_in_epoch < trainer.steps_per_epoch
                # every rank must stop at the same step: agree on the flag (one all-reduce)
                if watch and any_rank(stop.requested, ctx) and mid_epoch:
                    _preempt(trainer, out, ctx, callback, t0, step0)
                if every and trainer.global_step % every == 0 and mid_epoch:
                    trainer.save_checkpoint()
            record = trainer.end_epoch()
            log.info("epoch %d: %s", record["epoch"], record["train"])
            trainer.save_checkpoint()
            if out is not None and main:
                _write_metrics(out, trainer, None)
            if callback is not None:
                callback(_event(trainer, "epoch", t0, step0, record))
            if watch and trainer.epoch < trainer.epochs and any_rank(stop.requested, ctx):
                _preempt(trainer, out, ctx, callback, t0, step0, saved=True)
    models = trainer.final_models()
    for model in models.values():
        model.eval()
    last = trainer.history[-1] if trainer.history else {}
    final = {
        "val": last.get("val"),
        "train": last.get("train"),
        "epochs": len(trainer.history),
        "steps": trainer.global_step,
        "train_time_s": trainer.elapsed,
        "n_train": int(train.size),
        "n_val": int(val.size),
        "n_unlabeled": int(unlabeled.size),
        "processes": ctx.world_size,
    }
    info = trainer.info()
    if out is not None and main:
        _write_metrics(out, trainer, final)
        save_run_models(out, models, info)
    barrier(ctx)
    return FitResult(
        teacher=models["teacher"],
        student=models.get("student"),
        metrics=final,
        out_dir=out,
        config=config,
        history=trainer.history,
        info=info,
    )
