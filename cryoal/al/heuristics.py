"""Acquisition heuristics: pure functions from prediction arrays to ``(N,)`` scores.

Every function here maps predictions of ``N`` samples to one float per sample, and a
higher score always means "more informative, ask about this one first". Nothing here
touches a model, a file or a global random state, so the functions are safe to call on
chunks of a pool: the score of a sample depends only on that sample's predictions.

Shapes (the baal convention):

* classification probabilities ``(N, C)``;
* ``T`` stochastic (MC-dropout) passes ``(N, C, T)``;
* segmentation ``(N, C, *spatial)`` (e.g. ``(N, C, D, H, W)``); voxel scores are reduced
  to one score per subtomogram by :func:`reduce_spatial` (``mean`` by default, ``max``,
  ``top_quantile`` = the mean of the voxels at or above the ``quantile`` of that sample, or
  ``foreground`` = the mean of score × the model's foreground probability ``1 - p_0``, so
  that a crop's score comes from where its particle or membrane is, not from the
  background filling most of the box).

All functions compute in float64 and return float64.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Reduction = Literal["mean", "max", "top_quantile", "foreground"]
KLDirection = Literal["teacher_student", "student_teacher"]

#: Probabilities are clipped to this floor before taking logarithms.
EPS = 1e-12


def _as_float(a: np.ndarray, name: str, min_ndim: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions (N, C, ...); got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf; check the model outputs")
    return arr


def softmax(logits: np.ndarray, axis: int = 1, tau: float = 1.0) -> np.ndarray:
    """Numerically stable ``softmax(logits / tau)`` along ``axis`` (the class axis).

    Parameters
    ----------
    logits
        ``(N, C, ...)`` raw model outputs.
    axis
        Class axis.
    tau
        Temperature (> 0).
    """
    if not tau > 0:
        raise ValueError(f"temperature tau={tau} must be > 0")
    z = np.asarray(logits, dtype=np.float64) / tau
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = 1, tau: float = 1.0) -> np.ndarray:
    """``log softmax(logits / tau)`` along ``axis``, computed stably."""
    if not tau > 0:
        raise ValueError(f"temperature tau={tau} must be > 0")
    z = np.asarray(logits, dtype=np.float64) / tau
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def reduce_spatial(
    voxel_scores: np.ndarray,
    reduction: Reduction = "mean",
    quantile: float = 0.9,
    probs: np.ndarray | None = None,
) -> np.ndarray:
    """Reduce per-voxel scores ``(N, *spatial)`` to ``(N,)``; ``(N,)`` passes through.

    Parameters
    ----------
    voxel_scores
        ``(N,)`` or ``(N, *spatial)``.
    reduction
        ``"mean"`` (default), ``"max"``, ``"top_quantile"``: mean of the voxels whose
        score is at or above the sample's ``quantile``-quantile (e.g. the top 10 %), or
        ``"foreground"``: the mean of each voxel's score times its foreground
        probability ``1 - probs[:, 0]`` (class 0 = background), so a crop of background
        alone scores near 0.
    quantile
        In ``[0, 1)``, used by ``top_quantile``.
    probs
        ``(N, C, *spatial)`` class probabilities, for ``foreground``.
    """
    s = np.asarray(voxel_scores, dtype=np.float64)
    if s.ndim == 1:
        return s
    flat = s.reshape(s.shape[0], -1)
    if reduction == "foreground":
        if probs is None:
            raise ValueError("the foreground reduction needs the model's class probabilities")
        weight = (1.0 - np.asarray(probs, dtype=np.float64)[:, 0]).reshape(flat.shape)
        return (flat * weight).mean(axis=1)
    if reduction == "mean":
        return flat.mean(axis=1)
    if reduction == "max":
        return flat.max(axis=1)
    if reduction == "top_quantile":
        if not 0.0 <= quantile < 1.0:
            raise ValueError(
                f"quantile={quantile} must be in [0, 1) for the top_quantile reduction"
            )
        # number of voxels kept: ceil((1 - q) * V), at least one; sorting keeps it exact
        v = flat.shape[1]
        keep = max(1, int(np.ceil((1.0 - quantile) * v - 1e-9)))
        top = np.partition(flat, v - keep, axis=1)[:, v - keep :]
        return top.mean(axis=1)
    raise ValueError(
        f"unknown spatial reduction {reduction!r}; use 'mean', 'max', 'top_quantile' or "
        "'foreground'"
    )


def _entropy_along(p: np.ndarray, axis: int) -> np.ndarray:
    return -(p * np.log(np.clip(p, EPS, None))).sum(axis=axis)


def entropy(probs: np.ndarray, reduction: Reduction = "mean", quantile: float = 0.9) -> np.ndarray:
    """Predictive entropy ``-sum_c p_c log p_c`` (nats).

    Parameters
    ----------
    probs
        ``(N, C)`` or ``(N, C, *spatial)`` probabilities.
    """
    p = _as_float(probs, "probs", 2)
    return reduce_spatial(_entropy_along(p, 1), reduction, quantile, p)


def margin(probs: np.ndarray, reduction: Reduction = "mean", quantile: float = 0.9) -> np.ndarray:
    """``1 - (p_(1) - p_(2))``: one minus the gap between the two most probable classes."""
    p = _as_float(probs, "probs", 2)
    if p.shape[1] < 2:
        raise ValueError(f"margin needs at least 2 classes; got probabilities of shape {p.shape}")
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return reduce_spatial(1.0 - (top2[:, 0] - top2[:, 1]), reduction, quantile, p)


def least_confidence(
    probs: np.ndarray, reduction: Reduction = "mean", quantile: float = 0.9
) -> np.ndarray:
    """``1 - max_c p_c``."""
    p = _as_float(probs, "probs", 2)
    return reduce_spatial(1.0 - p.max(axis=1), reduction, quantile, p)


def bald(mc_probs: np.ndarray, reduction: Reduction = "mean", quantile: float = 0.9) -> np.ndarray:
    """BALD mutual information from ``T`` stochastic passes.

    ``I = H(mean_t p_t) - mean_t H(p_t)``, clipped at 0 against round-off.

    Parameters
    ----------
    mc_probs
        ``(N, C, T)`` or ``(N, C, T, *spatial)`` probabilities of ``T >= 2`` MC-dropout passes.
    """
    p = _as_float(mc_probs, "mc_probs", 3)
    if p.shape[2] < 2:
        raise ValueError(f"BALD needs at least 2 stochastic passes; got T={p.shape[2]}")
    mean_p = p.mean(axis=2)
    mi = _entropy_along(mean_p, 1) - _entropy_along(p, 1).mean(axis=1)
    return reduce_spatial(np.maximum(mi, 0.0), reduction, quantile, mean_p)


def kt(
    teacher_logits: np.ndarray,
    student_logits: np.ndarray,
    tau: float = 1.0,
    direction: KLDirection = "teacher_student",
    reduction: Reduction = "mean",
    quantile: float = 0.9,
) -> np.ndarray:
    """Teacher–student distance (methods.md §1), higher = more informative.

    The same number the student is trained to minimise: this calls
    :func:`cryoal.train.losses.transfer_distance` in float64. Classification (``(N, C)``
    logits): ``tau^2 * KL(p_T || p_S)`` at temperature ``tau`` (the ``tau^2`` factor scales
    every score alike and leaves rankings unchanged). Segmentation (``(N, C, *spatial)``
    logits): per voxel the mean over classes of ``(p_T - p_S)^2``
    (``p = softmax(logits / tau)``), reduced over voxels (mean by default).

    Parameters
    ----------
    teacher_logits, student_logits
        ``(N, C)`` or ``(N, C, *spatial)`` logits of the same shape.
    tau
        Temperature (> 0).
    direction
        ``"teacher_student"`` = ``KL(p_T || p_S)`` (default) or ``"student_teacher"``.
    """
    import torch

    from cryoal.train.losses import transfer_distance

    t = _as_float(teacher_logits, "teacher_logits", 2)
    s = _as_float(student_logits, "student_logits", 2)
    if t.shape != s.shape:
        raise ValueError(f"teacher logits {t.shape} and student logits {s.shape} differ in shape")
    if direction not in ("teacher_student", "student_teacher"):
        raise ValueError(
            f"unknown KL direction {direction!r}; use 'teacher_student' or 'student_teacher'"
        )
    task = "classify" if t.ndim == 2 else "segment"
    d = transfer_distance(
        torch.from_numpy(t),
        torch.from_numpy(s),
        task=task,
        tau=tau,
        direction=direction,
        per_voxel=True,
    ).numpy()
    fg = softmax(t, axis=1, tau=tau) if reduction == "foreground" and t.ndim > 2 else None
    return reduce_spatial(d, reduction, quantile, fg)


def foreground(probs: np.ndarray) -> np.ndarray:
    """Each crop's predicted foreground fraction: the mean over voxels of ``1 - p_0``.

    Parameters
    ----------
    probs
        ``(N, C, *spatial)`` class probabilities of a segmentation model whose class 0 is
        the background.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        ``(N, C)`` probabilities: a classifier has no background class.
    """
    p = _as_float(probs, "probs", 2)
    if p.ndim < 3:
        raise ValueError(
            "the foreground score needs a segmentation model (voxel probabilities with "
            f"class 0 = background); got probabilities of shape {p.shape}"
        )
    return (1.0 - p[:, 0]).reshape(p.shape[0], -1).mean(axis=1)


def random_scores(n: int, seed: int) -> np.ndarray:
    """``n`` i.i.d. uniform scores from ``numpy.random.default_rng(seed)``."""
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    return np.random.default_rng(seed).random(n)
