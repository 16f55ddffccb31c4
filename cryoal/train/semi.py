"""Semi-supervised classification: FixMatch pseudo-labels with FlexMatch class-adaptive
thresholds (``semi_supervised: fixmatch``).

Per step, on a labelled batch ``(x_l, y_l)`` and an unlabelled batch ``u`` (weak view
``w(u)``: the wedge-safe flips of supervised training; strong view ``s(u)``:
:func:`cryoal.pretrain.views.make_view` of ``w(u)`` with shifts, added noise and a cutout
cube)::

    p        = softmax(T(w(u)))                    (no gradient)
    c, q     = argmax p, max p
    mask     = q >= threshold_c                    (per class, below)
    L_teacher = CE(T(x_l), y_l) + lambda_u * mean(mask * CE(T(s(u)), c))

Class-adaptive thresholds (FlexMatch, Zhang et al. 2021): each unlabelled sample keeps the
class of its latest prediction above the fixed ``threshold`` (or none). With ``sigma_c`` the
samples held by class ``c`` and ``n_none`` those held by none,

    beta_c      = sigma_c / max(max_k sigma_k, n_none)       (threshold warm-up)
    threshold_c = beta_c / (2 - beta_c) * threshold          (convex mapping)

so classes the teacher is not yet confident about, often the rare ones of a long-tailed
pool, get lower thresholds and still receive pseudo-labels, instead of the head classes
taking them all. Pseudo-labels live only inside a training step: they are never written to
a label store or shown as labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def class_thresholds(
    state: np.ndarray, num_classes: int, threshold: float, adaptive: bool = True
) -> np.ndarray:
    """Confidence threshold of each class.

    Parameters
    ----------
    state
        ``(N,)`` int: per unlabelled sample, the class of its latest prediction at or above
        ``threshold``, -1 when it has none.
    num_classes
        Number of classes ``C``.
    threshold
        The fixed threshold ``tau`` (FixMatch's 0.95).
    adaptive
        FlexMatch's class-adaptive thresholds; False: ``tau`` for every class.

    Returns
    -------
    np.ndarray
        ``(C,)`` float64 thresholds in ``[0, tau]``.
    """
    if not adaptive:
        return np.full(num_classes, float(threshold))
    held = state[state >= 0]
    sigma = np.bincount(held, minlength=num_classes)[:num_classes].astype(np.float64)
    scale = max(float(sigma.max(initial=0.0)), float(state.size - held.size))
    beta = sigma / scale if scale > 0 else np.zeros(num_classes)
    return beta / (2.0 - beta) * float(threshold)


def pseudo_labels(
    logits_weak: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher's pseudo-labels on weak views.

    Parameters
    ----------
    logits_weak
        ``(B, C)`` logits on the weak views (detached by the caller).
    thresholds
        ``(C,)`` per-class thresholds on the same device.

    Returns
    -------
    classes, confidence, mask
        ``(B,)`` arg-max classes, their probabilities, and which samples pass their class's
        threshold.
    """
    probs = torch.softmax(logits_weak.float(), dim=1)
    confidence, classes = probs.max(dim=1)
    return classes, confidence, confidence >= thresholds[classes]


def pseudo_label_loss(
    logits_strong: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """FixMatch's unlabelled loss: cross-entropy of the strong views against the
    pseudo-labels, masked and averaged over the whole unlabelled batch (so a step with few
    confident samples weighs little)."""
    per_sample = F.cross_entropy(logits_strong.float(), classes, reduction="none")
    return (per_sample * mask.float()).sum() / max(1, int(mask.numel()))


def update_state(state: np.ndarray, positions: np.ndarray, held: np.ndarray) -> None:
    """Record the latest confident predictions, in place.

    ``positions``: ``(B,)`` samples' positions in ``state``; ``held``: ``(B,)`` the class
    of each one's prediction at or above the fixed threshold, -1 where it was below (such
    samples keep what they held, as in FlexMatch)."""
    keep = held >= 0
    state[positions[keep]] = held[keep]


def pseudo_label_quality(
    state: np.ndarray, truth: np.ndarray, num_classes: int
) -> dict[str, object]:
    """Coverage and accuracy of the held pseudo-labels, overall and per true class, where
    the store knows the truth (a benchmark's pool; -1 elsewhere). A measurement only:
    nothing in training reads it.

    Returns
    -------
    dict
        ``coverage`` (share of samples holding a class), ``accuracy`` (share of the held
        classes that are right; None when none is held or no truth is known), and
        ``per_class``: ``{"coverage": [...], "accuracy": [...]}`` by true class.
    """
    known = truth >= 0
    held = state >= 0
    out: dict[str, object] = {"coverage": float(held.mean()) if state.size else 0.0}
    both = known & held
    out["accuracy"] = float((state[both] == truth[both]).mean()) if both.any() else None
    cov: list[float | None] = []
    acc: list[float | None] = []
    for c in range(num_classes):
        of_c = known & (truth == c)
        cov.append(float(held[of_c].mean()) if of_c.any() else None)
        hit = of_c & held
        acc.append(float((state[hit] == c).mean()) if hit.any() else None)
    out["per_class"] = {"coverage": cov, "accuracy": acc}
    return out
