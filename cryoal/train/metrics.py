"""Evaluation metrics from confusion counts, accumulated batch by batch (bounded memory).

Classification: accuracy, macro-F1, per-class accuracy (recall), confusion matrix.
Segmentation: voxel accuracy, Dice and IoU per class, their means over foreground classes.
Teacher–student agreement: fraction of samples (voxels) with the same arg-max class.
Every function returns plain Python numbers and lists, ready for ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class ConfusionCounter:
    """Running ``(C, C)`` confusion matrix (rows: truth, columns: prediction).

    ``update`` takes class indices of any shape (samples or voxels); entries whose truth is
    negative (unlabeled) or not a class (a mask's 255, not annotated) are skipped.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, truth: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray) -> None:
        t = torch.as_tensor(truth).reshape(-1).long().cpu()
        p = torch.as_tensor(pred).reshape(-1).long().cpu()
        c = self.num_classes
        keep = (t >= 0) & (t < c)
        t, p = t[keep], p[keep]
        self.matrix += (
            torch.bincount(t * c + p, minlength=c * c).reshape(c, c).numpy().astype(np.int64)
        )


def confusion_matrix(
    truth: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """``(C, C)`` int64 confusion matrix of two label arrays (rows: truth)."""
    counter = ConfusionCounter(num_classes)
    counter.update(np.asarray(truth), np.asarray(pred))
    return counter.matrix


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n / d) if d > 0 else None for n, d in zip(num, den, strict=True)]


def classification_metrics(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class accuracy and the confusion matrix.

    Macro-F1 averages F1 over the classes present in the truth or the predictions (as
    scikit-learn does); per-class accuracy (recall) is ``None`` for a class with no
    samples.
    """
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m).astype(np.float64)
    n_true = m.sum(axis=1).astype(np.float64)
    n_pred = m.sum(axis=0).astype(np.float64)
    total = m.sum()
    f1_den = n_true + n_pred
    present = f1_den > 0
    f1 = np.where(present, 2 * tp / np.maximum(f1_den, 1), 0.0)
    per_class = _safe_ratio(tp, n_true)
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class_accuracy": dict(zip(class_names, per_class, strict=True)),
        "confusion_matrix": m.tolist(),
    }


def segmentation_metrics(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """Voxel accuracy, Dice and IoU per class from a voxel confusion matrix.

    ``class_names`` includes the background (class 0). Dice = 2TP / (2TP + FP + FN), IoU =
    TP / (TP + FP + FN) from the summed confusion counts: pooled over all evaluated voxels
    of all samples (not a mean of per-sample scores); ``None`` for a class absent from
    truth and prediction. ``mean_dice`` / ``mean_iou`` average the foreground classes,
    ``worst_dice`` / ``worst_iou`` are their minimum (classes with ``None`` left out).
    """
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m).astype(np.float64)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    dice = _safe_ratio(2 * tp, 2 * tp + fp + fn)
    iou = _safe_ratio(tp, tp + fp + fn)
    fg_dice = [d for d in dice[1:] if d is not None]
    fg_iou = [v for v in iou[1:] if v is not None]
    total = m.sum()
    return {
        "n_voxels": int(total),
        "voxel_accuracy": float(tp.sum() / total) if total else None,
        "dice": dict(zip(class_names, dice, strict=True)),
        "iou": dict(zip(class_names, iou, strict=True)),
        "mean_dice": float(np.mean(fg_dice)) if fg_dice else None,
        "mean_iou": float(np.mean(fg_iou)) if fg_iou else None,
        "worst_dice": float(np.min(fg_dice)) if fg_dice else None,
        "worst_iou": float(np.min(fg_iou)) if fg_iou else None,
    }


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> tuple[int, int]:
    """``(agreeing, total)`` arg-max agreements over samples (or voxels) of two outputs."""
    a = logits_a.argmax(dim=1)
    b = logits_b.argmax(dim=1)
    return int((a == b).sum()), int(a.numel())
