"""Evaluate teacher (and student) on labeled store rows: the metrics of ``metrics.json``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cryoal.io.store import SubtomogramStore
from cryoal.train.losses import Direction, transfer_distance
from cryoal.train.metrics import (
    ConfusionCounter,
    agreement,
    classification_metrics,
    segmentation_metrics,
)
from cryoal.train.predict import stream_outputs


def evaluate(
    teacher: nn.Module,
    student: nn.Module | None,
    store: SubtomogramStore,
    indices: Sequence[int] | np.ndarray,
    *,
    task: str,
    class_names: Sequence[str],
    targets: Sequence[int] | np.ndarray | None = None,
    tau: float = 1.0,
    direction: Direction = "teacher_student",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    amp: bool | str = False,
) -> dict:
    """Metrics of the teacher, the student and their agreement on ``indices``.

    Parameters
    ----------
    teacher, student
        Models (``student`` may be None).
    store
        The store; targets are its labels (classify) or masks (segment).
    indices
        Store rows to evaluate.
    task
        ``"classify"`` or ``"segment"``.
    class_names
        ``C`` names (segmentation: background first).
    targets
        Classify: ``(n,)`` labels aligned with ``indices`` instead of the store's.
    tau, direction
        Of the teacher–student distance (:func:`cryoal.train.losses.transfer_distance`).
    batch_size, device, amp
        As in :func:`cryoal.train.predict.stream_outputs`.

    Returns
    -------
    dict
        ``{"n", "teacher": {...}, "student": {...}?, "agreement": float?, "distance":
        float?}`` with :func:`~cryoal.train.metrics.classification_metrics` or
        :func:`~cryoal.train.metrics.segmentation_metrics` per model; ``agreement`` is the
        fraction of samples (voxels) with the same arg-max, ``distance`` the mean
        teacher–student distance.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    c = len(class_names)
    if task == "classify":
        truth_all = store.labels[idx] if targets is None else np.asarray(targets, np.int64)
        lookup = dict(zip(idx.tolist(), truth_all.tolist(), strict=True))
    models = {"teacher": teacher} | ({"student": student} if student is not None else {})
    counters = {name: ConfusionCounter(c) for name in models}
    agree = total = 0
    dist_sum = 0.0
    n = 0
    for out in stream_outputs(models, store, idx, batch_size=batch_size, device=device, amp=amp):
        if task == "classify":
            truth = torch.as_tensor([lookup[int(i)] for i in out.indices])
        else:
            truth = torch.from_numpy(store.masks(out.indices).astype(np.int64))
        for name, logits in out.logits.items():
            counters[name].update(truth, logits.argmax(dim=1))
        if student is not None:
            a, t = agreement(out.logits["teacher"], out.logits["student"])
            agree += a
            total += t
            dist_sum += float(
                transfer_distance(
                    out.logits["teacher"],
                    out.logits["student"],
                    task=task,
                    tau=tau,
                    direction=direction,
                ).sum()
            )
        n += len(out.indices)
    summarise = classification_metrics if task == "classify" else segmentation_metrics
    result: dict = {"n": n}
    for name, counter in counters.items():
        result[name] = summarise(counter.matrix, class_names)
    if student is not None:
        result["agreement"] = agree / total if total else None
        result["distance"] = dist_sum / n if n else None
    return result
