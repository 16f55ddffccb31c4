"""Candidates through the models, batch by batch, keeping what a strategy needs.

The candidates are streamed in fixed-size batches (:func:`cryoal.train.predict.
stream_outputs`; exact gradient norms of :mod:`cryoal.al.gradnorm` for strategies that need
them), and each batch is turned into scores by the strategy's score function from
:mod:`cryoal.al.registry`. Memory is bounded by the batch plus what the strategy needs per
candidate (one score; the teacher's ``C`` logits, for the score table and probability-space
selection; ``F`` features for feature-space selection). Segmentation outputs are reduced
to ``(n, C)`` log mean-voxel probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cryoal.al import gradnorm as gn
from cryoal.al import heuristics as H
from cryoal.al.registry import BatchArrays, Needs
from cryoal.al.strategies import StrategyConfig
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.train.predict import stream_outputs


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
