"""Task and transfer losses of joint teacher–student training (methods.md §1).

Shapes: classification logits ``(B, C)``, segmentation logits ``(B, C, D, H, W)``, targets
``(B,)`` class indices or ``(B, 1, D, H, W)`` voxel labels.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

Direction = Literal["teacher_student", "student_teacher"]


def transfer_distance(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    *,
    task: str = "classify",
    tau: float = 1.0,
    direction: Direction = "teacher_student",
    per_voxel: bool = False,
) -> torch.Tensor:
    """Teacher–student distance, the KT uncertainty of methods.md §1 (the one implementation).

    Both the student's transfer loss (:func:`transfer_loss`) and the ``kt`` acquisition score
    (:func:`cryoal.al.heuristics.kt`) call this function, so the loss a student minimises and
    the distance a sample is ranked by are the same number.

    Classification: ``tau^2 * KL(p_T || p_S)`` (or ``KL(p_S || p_T)``) with
    ``p = softmax(logits / tau)``. The ``tau^2`` factor is Hinton et al.'s: it keeps the
    gradient of the softened loss on the scale of the ``tau = 1`` loss; it multiplies every
    sample's score by the same constant, so rankings do not depend on it.
    Segmentation: mean over classes of ``(p_T - p_S)^2`` per voxel (``tau`` scales the logits,
    no ``tau^2`` factor), averaged over voxels unless ``per_voxel``.

    Parameters
    ----------
    teacher_logits, student_logits
        ``(B, C)`` or ``(B, C, *spatial)`` logits of the same shape; any float dtype (the
        computation runs in float32, or float64 when given float64).
    task
        ``"classify"`` or ``"segment"``.
    tau
        Softmax temperature (> 0).
    direction
        ``"teacher_student"`` = ``KL(p_T || p_S)`` (default) or ``"student_teacher"``.
    per_voxel
        Segmentation only: return the ``(B, *spatial)`` map instead of its mean.

    Returns
    -------
    torch.Tensor
        ``(B,)`` distances (``(B, *spatial)`` with ``per_voxel``); KL clipped at 0 against
        round-off.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher logits {tuple(teacher_logits.shape)} and student logits "
            f"{tuple(student_logits.shape)} differ; both models need the same classes"
        )
    if not tau > 0:
        raise ValueError(f"temperature tau={tau} must be > 0")
    dtype = torch.float64 if teacher_logits.dtype == torch.float64 else torch.float32
    t = teacher_logits.to(dtype) / tau
    s = student_logits.to(dtype) / tau
    if task == "segment":
        per_map = (torch.softmax(t, dim=1) - torch.softmax(s, dim=1)).pow(2).mean(dim=1)
        return per_map if per_voxel else per_map.flatten(1).mean(dim=1)
    if direction == "student_teacher":
        t, s = s, t
    elif direction != "teacher_student":
        raise ValueError(f"KL direction {direction!r}; use 'teacher_student' or 'student_teacher'")
    log_p = torch.log_softmax(t, dim=1)
    log_q = torch.log_softmax(s, dim=1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).clamp_min(0.0)
    return kl * tau**2


def transfer_loss(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    *,
    task: str = "classify",
    tau: float = 1.0,
    direction: Direction = "teacher_student",
) -> torch.Tensor:
    """Batch mean of :func:`transfer_distance` (scalar)."""
    return transfer_distance(
        teacher_logits, student_logits, task=task, tau=tau, direction=direction
    ).mean()


class TaskLoss(torch.nn.Module):
    """Supervised loss of the teacher: CE (classification) or Dice + CE (segmentation).

    Parameters
    ----------
    task
        ``"classify"`` or ``"segment"``.
    class_weights
        ``(C,)`` weights of the cross-entropy term (class balancing), or None.
    label_smoothing
        Cross-entropy label smoothing.
    dice_weight, ce_weight
        Segmentation: weights of the Dice and CE terms (MONAI ``DiceCELoss``).
    """

    def __init__(
        self,
        task: str,
        *,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.task = task
        self.label_smoothing = float(label_smoothing)
        if class_weights is not None:
            self.register_buffer("class_weights", class_weights.float())
        else:
            self.class_weights = None
        if task == "segment":
            self.dice_ce = DiceCELoss(
                to_onehot_y=True,
                softmax=True,
                lambda_dice=dice_weight,
                lambda_ce=ce_weight,
                weight=self.class_weights,
                label_smoothing=label_smoothing,
            )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "segment":
            return self.dice_ce(logits.float(), target)
        return F.cross_entropy(
            logits.float(),
            target,
            weight=self.class_weights,
            label_smoothing=self.label_smoothing,
        )


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of softmax probabilities (mean-teacher consistency)."""
    return (torch.softmax(logits_a.float(), 1) - torch.softmax(logits_b.float(), 1)).pow(2).mean()
