"""The pretraining loop: views, objective, AdamW with cosine decay, checkpoints, resume.

:func:`pretrain` learns an encoder from store rows into an encoder folder
(:mod:`cryoal.pretrain.encoder`); it checkpoints after every epoch and always resumes from
the newest valid checkpoint, so a run killed at any point (even with ``kill -9``) continues
to exactly the weights an uninterrupted run reaches: the batch order and every view derive
from ``config.seed`` and the step, never from a global random state.
:func:`pretrain_cached` names the folder after the pool's content hash and the
configuration, so a pool is pretrained once and reused by every run that reads it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from cryoal.io.store import SubtomogramStore
from cryoal.pretrain.config import PretrainConfig
from cryoal.pretrain.encoder import (
    Encoder,
    build_classifier,
    is_encoder,
    load_encoder,
    pool_hash,
    save_encoder,
)
from cryoal.pretrain.objectives import Objective, projection_head
from cryoal.pretrain.views import make_view, view_sources
from cryoal.train.checkpoint import (
    join_optimizer_state,
    load_latest_checkpoint,
    save_checkpoint,
    scheduler_state_json,
    split_optimizer_state,
)
from cryoal.train.distributed import autocast_context, resolve_device
from cryoal.train.fit.seeds import derive_seed

log = logging.getLogger("cryoal.pretrain")

#: Fewest pool samples pretraining accepts (a contrastive batch needs negatives).
MIN_SAMPLES = 16


@dataclass(frozen=True)
class PretrainEvent:
    """One pretraining progress report.

    ``kind`` is ``"step"`` after every step and ``"epoch"`` after every epoch (``loss`` is
    then the epoch's mean). ``step`` / ``total_steps`` count optimiser steps of the run.
    """

    kind: Literal["step", "epoch"]
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    samples_per_s: float
    eta_s: float


#: Called with every :class:`PretrainEvent`.
PretrainCallback = Callable[[PretrainEvent], None]


def uses_halves(config: PretrainConfig, store: SubtomogramStore) -> bool:
    """Pretraining on ``store`` makes its views from half pairs (``noise_pairs`` and a store
    that holds them)."""
    return config.noise_pairs and store.has_halves


class _Pool:
    """The pool's subtomograms, ``(n, c, b, b, b)`` with ``c`` = 1, or 2 for half pairs: held
    in memory when they fit, else read per batch."""

    def __init__(
        self, store: SubtomogramStore, rows: np.ndarray, max_gb: float, halves: bool
    ) -> None:
        self.store = store
        self.rows = rows
        self.halves = halves
        channels = 2 if halves else 1
        nbytes = rows.size * channels * store.box**3 * 4
        self.data: torch.Tensor | None = None
        if nbytes <= max_gb * 2**30:
            self.data = torch.empty((rows.size, channels, store.box, store.box, store.box))
            for lo in range(0, rows.size, 512):
                self.data[lo : lo + min(512, rows.size - lo)] = self._read(rows[lo : lo + 512])

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        if self.halves:
            return torch.from_numpy(self.store.halves(rows))
        return torch.from_numpy(self.store.subtomograms(rows)).unsqueeze(1)

    def batch(self, positions: np.ndarray) -> torch.Tensor:
        if self.data is not None:
            return self.data[torch.from_numpy(positions)]
        return self._read(self.rows[positions])


class _Run:
    """Networks, optimiser and schedule of one pretraining."""

    def __init__(self, config: PretrainConfig, n: int, device: torch.device) -> None:
        c = config
        self.config = c
        self.device = device
        self.batch = min(c.batch_size, n)
        self.steps_per_epoch = n // self.batch
        self.total_steps = self.steps_per_epoch * c.epochs
        self.encoder = build_classifier(c.preset, c.norm, derive_seed(c.seed, "encoder")).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(c.seed, "head"))
            self.head = projection_head(
                self.encoder.num_features,
                c.hidden_dim,
                c.projection_dim,
                c.objective,
            ).to(device)
        self.loss_fn = Objective(c.objective, c.temperature)
        params = [*self.encoder.backbone.parameters(), *self.head.parameters()]
        self.opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0

    def _lr_factor(self, step: int) -> float:
        warm = min(self.config.warmup_steps, self.total_steps // 4)
        if warm and step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def models(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def step(self, x: torch.Tensor) -> float:
        """One optimiser step on ``x`` ``(B, 1, b, b, b)`` (both views from each sample) or
        ``(B, 2, b, b, b)`` half pairs (one view from each half, in a random order)."""
        c = self.config
        gen = torch.Generator().manual_seed(derive_seed(c.seed, f"views{self.global_step}"))
        v1, v2 = (
            make_view(v, gen, flip=c.flip, max_shift=c.max_shift, noise_std=c.noise_std)
            for v in view_sources(x, gen)
        )
        views = torch.cat([v1, v2]).to(self.device, non_blocking=True)
        with autocast_context(self.device, c.amp):
            z = self.head(self.encoder.forward_features(views)).float()
        loss = self.loss_fn(z[: x.shape[0]], z[x.shape[0] :])
        if not torch.isfinite(loss):
            raise ValueError(
                f"pretraining loss became {loss.item()} at step {self.global_step}; lower lr "
                f"(now {c.lr}) or check the pool for constant or non-finite subtomograms"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.global_step += 1
        return float(loss.detach())

    def save(self, out: Path, extra: dict[str, Any]) -> None:
        tensors, optim_js = split_optimizer_state(self.opt.state_dict(), "optim")
        state = {
            "epoch": self.epoch,
            "config_hash": self.config.training_hash(),
            "optimizer": optim_js,
            "scheduler": scheduler_state_json(self.sched.state_dict()),
            "history": self.history,
            "elapsed_s": self.elapsed,
            **extra,
        }
        save_checkpoint(
            out,
            self.global_step,
            self.models(),
            tensors or {"none": torch.zeros(1)},
            state,
            keep=self.config.keep_checkpoints,
        )

    def restore(self, out: Path, pool: str) -> bool:
        ckpt = load_latest_checkpoint(out)
        if ckpt is None:
            return False
        st = ckpt.state
        if st.get("config_hash") != self.config.training_hash() or st.get("pool_hash") != pool:
            raise ValueError(
                f"{ckpt.path}: belongs to a pretraining of other samples or settings; use "
                f"another folder, or delete {out} to start again"
            )
        for name, model in self.models().items():
            model.load_state_dict(ckpt.models[name])
        self.opt.load_state_dict(join_optimizer_state(st["optimizer"], ckpt.tensors))
        self.sched.load_state_dict(st["scheduler"])
        self.epoch = int(st["epoch"])
        self.global_step = int(st["global_step"])
        self.history = list(st["history"])
        self.elapsed = float(st["elapsed_s"])
        log.info("resumed pretraining from %s (epoch %d)", ckpt.path, self.epoch)
        return True


def _check_rows(store: SubtomogramStore, rows: Any) -> np.ndarray:
    arr = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    if arr.size and (arr.min() < 0 or arr.max() >= len(store)):
        raise ValueError(f"{store.path}: pool rows must be in 0..{len(store) - 1}")
    if arr.size < MIN_SAMPLES:
        raise ValueError(
            f"{store.path}: {arr.size} pool samples; pretraining needs >= {MIN_SAMPLES} "
            "(add candidates, or train without pretraining)"
        )
    return arr


def pretrain(
    config: PretrainConfig,
    store: SubtomogramStore | str | os.PathLike,
    rows: np.ndarray | None,
    out_dir: str | os.PathLike,
    *,
    callback: PretrainCallback | None = None,
    pool_digest: str | None = None,
) -> Encoder:
    """Learn an encoder from unlabelled store rows (resuming an unfinished run in ``out_dir``).

    Parameters
    ----------
    config
        Hyper-parameters (:class:`PretrainConfig`).
    store
        A :class:`~cryoal.io.store.SubtomogramStore` or its path.
    rows
        Store rows of the pool (never a test set); None: every row.
    out_dir
        The encoder folder (see :mod:`cryoal.pretrain.encoder`).
    callback
        Called with a :class:`PretrainEvent` after every step and epoch.
    pool_digest
        :func:`~cryoal.pretrain.encoder.pool_hash` of the rows, when the caller has it
        (saves reading the pool once more).

    Returns
    -------
    Encoder
        The finished encoder (read back from ``out_dir``; an already finished one for the
        same pool and configuration is returned without training).

    Raises
    ------
    ValueError
        Fewer than 16 samples, an unknown preset, or a folder holding a pretraining of
        other samples or settings.
    """
    if not isinstance(store, SubtomogramStore):
        store = SubtomogramStore(store)
    arr = _check_rows(store, np.arange(len(store)) if rows is None else rows)
    out = Path(out_dir)
    halves = uses_halves(config, store)
    digest = pool_digest if pool_digest is not None else pool_hash(store, arr, halves=halves)
    if is_encoder(out):
        enc = load_encoder(out)
        if (
            enc.info.get("pool_hash") != digest
            or enc.info.get("config_hash") != config.training_hash()
        ):
            raise ValueError(
                f"{out}: holds an encoder pretrained on other samples or settings; use "
                "another folder, or delete it to pretrain again"
            )
        return enc
    store.check_finite(arr)
    device = resolve_device(config.device)
    run = _Run(config, arr.size, device)
    run.restore(out, digest)
    pool = _Pool(store, arr, config.preload_max_gb, halves)
    _train(run, pool, out, digest, callback)
    info = {
        "preset": config.preset,
        "norm": config.norm,
        "objective": config.objective,
        "box": store.box,
        "voxel_size_A": store.voxel_size_A,
        "store": str(store.path),
        "pool_hash": digest,
        "n_samples": int(arr.size),
        "noise_pairs": halves,
        "config": config.model_dump(mode="json"),
        "config_hash": config.training_hash(),
        "history": run.history,
        "elapsed_s": round(run.elapsed, 2),
        "num_features": run.encoder.num_features,
    }
    save_encoder(out, run.encoder, info)
    return load_encoder(out)


def _epoch_batches(run: _Run, n: int) -> Iterator[np.ndarray]:
    order = np.random.default_rng(derive_seed(run.config.seed, f"order{run.epoch}")).permutation(n)
    for k in range(run.steps_per_epoch):
        yield np.sort(order[k * run.batch : (k + 1) * run.batch])


def _train(
    run: _Run, pool: _Pool, out: Path, digest: str, callback: PretrainCallback | None
) -> None:
    c = run.config
    run.encoder.train()
    run.head.train()
    n_done_at_start = run.global_step
    t0 = time.perf_counter()
    while run.epoch < c.epochs:
        losses: list[float] = []
        for positions in _epoch_batches(run, pool.rows.size):
            losses.append(run.step(pool.batch(positions)))
            rate, eta = _rate(run, n_done_at_start, t0)
            if callback is not None:
                callback(
                    PretrainEvent("step", run.epoch, c.epochs, run.global_step, run.total_steps,
                                  losses[-1], rate, eta)
                )  # fmt: skip
        run.epoch += 1
        run.elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        n_done_at_start = run.global_step
        record = {"epoch": run.epoch, "loss": float(np.mean(losses)), "elapsed_s": run.elapsed}
        run.history.append(record)
        run.save(out, {"pool_hash": digest})
        log.info(
            "pretrain epoch %d/%d loss %.4f (%.0f s)", run.epoch, c.epochs, record["loss"],
            run.elapsed,
        )  # fmt: skip
        if callback is not None:
            rate = run.steps_per_epoch * run.batch / max(1e-9, run.elapsed / run.epoch)
            eta = (c.epochs - run.epoch) * run.elapsed / run.epoch
            callback(
                PretrainEvent("epoch", run.epoch, c.epochs, run.global_step, run.total_steps,
                              record["loss"], rate, eta)
            )  # fmt: skip


def _rate(run: _Run, start_step: int, t0: float) -> tuple[float, float]:
    dt = max(1e-9, time.perf_counter() - t0)
    steps = run.global_step - start_step
    rate = steps * run.batch / dt
    eta = (run.total_steps - run.global_step) * dt / max(1, steps)
    return rate, eta


def cache_key(digest: str, config: PretrainConfig) -> str:
    """The encoder cache's folder name for a pool hash and a configuration (16 hex digits)."""
    import hashlib

    return hashlib.sha256(f"{digest}:{config.training_hash()}".encode()).hexdigest()[:16]


def pretrain_cached(
    config: PretrainConfig,
    store: SubtomogramStore | str | os.PathLike,
    rows: np.ndarray | None,
    cache_dir: str | os.PathLike,
    *,
    callback: PretrainCallback | None = None,
) -> Encoder:
    """:func:`pretrain` into ``cache_dir/<key>``, keyed by the pool's content and the config.

    A finished encoder for the same pool and configuration is returned at once; an
    unfinished one resumes; its ``encoder.json`` records the store and the pool's size.
    """
    if not isinstance(store, SubtomogramStore):
        store = SubtomogramStore(store)
    arr = _check_rows(store, np.arange(len(store)) if rows is None else rows)
    digest = pool_hash(store, arr, halves=uses_halves(config, store))
    folder = Path(cache_dir) / cache_key(digest, config)
    return pretrain(config, store, arr, folder, callback=callback, pool_digest=digest)


def cached_folder(
    config: PretrainConfig,
    store: SubtomogramStore,
    rows: np.ndarray | None,
    cache_dir: str | os.PathLike,
) -> Path:
    """The folder :func:`pretrain_cached` uses for this pool and configuration (whether or
    not it has been made)."""
    arr = _check_rows(store, np.arange(len(store)) if rows is None else rows)
    digest = pool_hash(store, arr, halves=uses_halves(config, store))
    return Path(cache_dir) / cache_key(digest, config)


def describe(encoder: Encoder) -> str:
    """One line about an encoder for logs and the CLI."""
    i = encoder.info
    hist = i.get("history") or [{}]
    pairs = " (views from their half pairs)" if i.get("noise_pairs") else ""
    loss = hist[-1].get("loss", float("nan"))
    return (
        f"{encoder.path}: {i['objective']} encoder of preset {i['preset']} pretrained on "
        f"{i['n_samples']} samples{pairs} for {len(hist)} epochs (final loss {loss:.3f}, "
        f"{i.get('elapsed_s', 0):.0f} s)"
    )
