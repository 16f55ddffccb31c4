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
) -> torch.Tensor:
    """Per-sample teacher–student distance ``(B,)``, the KT uncertainty of methods.md §1.

    Classification: ``tau^2 * KL(p_T || p_S)`` (or ``KL(p_S || p_T)``) with
    ``p = softmax(logits / tau)``. Segmentation: mean over classes and voxels of
    ``(p_T - p_S)^2`` (``tau`` scales the logits, no ``tau^2`` factor).
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher logits {tuple(teacher_logits.shape)} and student logits "
            f"{tuple(student_logits.shape)} differ; both models need the same classes"
        )
    t = teacher_logits.float() / tau
    s = student_logits.float() / tau
    if task == "segment":
        diff = torch.softmax(t, dim=1) - torch.softmax(s, dim=1)
        return diff.pow(2).flatten(1).mean(dim=1)
    log_t = torch.log_softmax(t, dim=1)
    log_s = torch.log_softmax(s, dim=1)
    if direction == "teacher_student":
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
    elif direction == "student_teacher":
        kl = (log_s.exp() * (log_s - log_t)).sum(dim=1)
    else:
        raise ValueError(f"KL direction {direction!r}; use 'teacher_student' or 'student_teacher'")
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
