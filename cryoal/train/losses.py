"""Task and transfer losses of joint teacher–student training (methods.md §1).

Shapes: classification logits ``(B, C)``, segmentation logits ``(B, C, D, H, W)``, targets
``(B,)`` class indices or ``(B, 1, D, H, W)`` voxel labels, where ``MASK_IGNORE`` (255)
marks voxels not annotated: they carry no loss and no gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss

from cryoal.io.store import MASK_IGNORE

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
    voxel_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batch mean of :func:`transfer_distance` (scalar).

    ``voxel_mask`` (segmentation): ``(B, *spatial)`` bool, the voxels that count; each
    sample's distance is the mean over its counted voxels (0 when it has none).
    """
    if task != "segment" or voxel_mask is None:
        return transfer_distance(
            teacher_logits, student_logits, task=task, tau=tau, direction=direction
        ).mean()
    per_voxel = transfer_distance(
        teacher_logits, student_logits, task=task, tau=tau, direction=direction, per_voxel=True
    )
    weight = voxel_mask.to(per_voxel.dtype).flatten(1)
    per_sample = (per_voxel.flatten(1) * weight).sum(1) / weight.sum(1).clamp_min(1.0)
    return per_sample.mean()


class TaskLoss(torch.nn.Module):
    """Supervised loss of the teacher: CE (classification) or Dice + CE (segmentation).

    Segmentation targets may mark voxels ``MASK_IGNORE`` (not annotated): the Dice term
    (MONAI ``MaskedDiceLoss``, softmax first) and the CE term (``ignore_index``) leave them
    out, so they carry no gradient. Without such voxels the loss is MONAI's ``DiceCELoss``.

    Parameters
    ----------
    task
        ``"classify"`` or ``"segment"``.
    class_weights
        ``(C,)`` weights of the cross-entropy term (class balancing), or None.
    label_smoothing
        Cross-entropy label smoothing.
    dice_weight, ce_weight
        Segmentation: weights of the Dice and CE terms.
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
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        if class_weights is not None:
            self.register_buffer("class_weights", class_weights.float())
        else:
            self.class_weights = None
        if task == "segment":
            self.dice = MaskedDiceLoss(to_onehot_y=True, softmax=True, weight=self.class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.task == "segment":
            counted = target != MASK_IGNORE  # (B, 1, *spatial)
            if not bool(counted.any()):
                return logits.sum() * 0.0  # nothing annotated: no loss, a zero gradient
            labels = torch.where(counted, target, torch.zeros_like(target))
            dice = self.dice(logits, labels, mask=counted.to(logits.dtype))
            ce = F.cross_entropy(
                logits, target[:, 0].long(), weight=self.class_weights,
                ignore_index=MASK_IGNORE, label_smoothing=self.label_smoothing,
            )  # fmt: skip
            return self.dice_weight * dice + self.ce_weight * ce
        return F.cross_entropy(
            logits,
            target,
            weight=self.class_weights,
            label_smoothing=self.label_smoothing,
        )


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of softmax probabilities (mean-teacher consistency)."""
    return (torch.softmax(logits_a.float(), 1) - torch.softmax(logits_b.float(), 1)).pow(2).mean()
