"""Known answers for the transfer distance, the task loss and the metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoal.train.losses import TaskLoss, transfer_distance, transfer_loss
from cryoal.train.metrics import (
    ConfusionCounter,
    agreement,
    classification_metrics,
    confusion_matrix,
    segmentation_metrics,
)


def _logits(p: list[float]) -> torch.Tensor:
    return torch.log(torch.tensor([p]))


def test_kl_both_directions_by_hand() -> None:
    pt, ps = [0.5, 0.5], [0.9, 0.1]
    kl_ts = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_st = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    t, s = _logits(pt), _logits(ps)
    d_ts = transfer_distance(t, s, direction="teacher_student")
    d_st = transfer_distance(t, s, direction="student_teacher")
    assert d_ts.shape == (1,)
    assert float(d_ts) == pytest.approx(kl_ts, rel=1e-5)
    assert float(d_st) == pytest.approx(kl_st, rel=1e-5)
    assert float(transfer_distance(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_temperature_softens_and_scales_by_tau_squared() -> None:
    t = torch.tensor([[2.0, 0.0, -1.0]])
    s = torch.tensor([[0.0, 1.0, 0.0]])
    tau = 2.0
    pt, ps = torch.softmax(t / tau, 1), torch.softmax(s / tau, 1)
    expected = tau**2 * float((pt * (pt / ps).log()).sum())
    assert float(transfer_distance(t, s, tau=tau)) == pytest.approx(expected, rel=1e-5)


def test_segmentation_distance_is_voxel_mean_squared_probability_difference() -> None:
    t = torch.zeros(2, 2, 2, 2, 2)
    s = torch.zeros(2, 2, 2, 2, 2)
    s[0, 0] = math.log(3.0)  # p_S = (0.75, 0.25) in sample 0, (0.5, 0.5) like p_T in sample 1
    d = transfer_distance(t, s, task="segment")
    assert d.shape == (2,)
    assert d.tolist() == pytest.approx([0.25**2, 0.0])
    assert float(transfer_loss(t, s, task="segment")) == pytest.approx(0.25**2 / 2)


def test_mismatched_outputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="same classes"):
        transfer_distance(torch.zeros(2, 3), torch.zeros(2, 4))


def test_class_weighted_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor([1.0, 3.0])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = float((w[y] * ce).sum() / w[y].sum())
    assert float(TaskLoss("classify", class_weights=w)(logits, y)) == pytest.approx(expected)


def test_dice_ce_is_small_for_a_perfect_segmentation() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[..., :2, :, :] = 1
    good = torch.where(target.bool(), 10.0, -10.0).float()
    logits_good = torch.cat([-good, good], dim=1)
    loss = TaskLoss("segment")
    assert float(loss(logits_good, target)) < 0.01
    assert float(loss(-logits_good, target)) > 1.0


def test_classification_metrics_by_hand() -> None:
    truth = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 0, 1]
    m = confusion_matrix(truth, pred, 4)
    assert m[:3, :3].tolist() == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    r = classification_metrics(m, ["a", "b", "c", "d"])
    assert r["accuracy"] == pytest.approx(3 / 6)
    f1_a = 2 * 2 / (2 * 2 + 1 + 1)
    f1_b = 2 * 1 / (2 * 1 + 2 + 1)
    # class c appears in the truth only (F1 = 0); class d nowhere (left out, as scikit-learn)
    assert r["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)
    assert r["per_class_accuracy"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": 0.0, "d": None}


def test_unlabeled_truth_is_ignored_by_the_counter() -> None:
    c = ConfusionCounter(2)
    c.update(np.array([0, -1, 1]), np.array([0, 1, 1]))
    assert c.matrix.tolist() == [[1, 0], [0, 1]]


def test_dice_and_iou_by_hand() -> None:
    truth = np.zeros((1, 4, 4, 4), np.int64)
    truth[0, :2] = 1  # 32 voxels of class 1
    pred = np.zeros_like(truth)
    pred[0, 1:3] = 1  # 32 voxels, 16 overlapping
    c = ConfusionCounter(3)
    c.update(truth, pred)
    r = segmentation_metrics(c.matrix, ["background", "x", "y"])
    assert r["dice"]["x"] == pytest.approx(2 * 16 / (32 + 32))
    assert r["iou"]["x"] == pytest.approx(16 / 48)
    assert r["dice"]["y"] is None
    assert r["mean_dice"] == pytest.approx(0.5)
    assert r["voxel_accuracy"] == pytest.approx((64 - 32) / 64)


def test_agreement_counts_same_argmax() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    assert agreement(a, b) == (2, 3)


def test_voxels_not_annotated_carry_no_loss_and_no_gradient() -> None:
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, 6)
    target = torch.randint(0, 3, (2, 1, 6, 6, 6))
    loss = TaskLoss("segment")
    # nothing ignored: MONAI's Dice + CE exactly
    assert float(loss(logits, target)) == pytest.approx(
        float(DiceCELoss(to_onehot_y=True, softmax=True)(logits, target)), rel=1e-5
    )
    ignored = target.clone()
    ignored[0, 0, :3] = 255
    ignored[1] = 255  # a crop marked unsure: all ignored
    x = logits.clone().requires_grad_(True)
    loss(x, ignored).backward()
    assert torch.all(x.grad[0, :, :3] == 0) and torch.all(x.grad[1] == 0)
    assert x.grad[0, :, 3:].abs().sum() > 0
    # what the annotated voxels say does not depend on the ignored ones' logits
    changed = logits.clone()
    changed[0, :, :3] = torch.randn(3, 3, 6, 6) * 10
    assert float(loss(changed, ignored)) == pytest.approx(float(loss(logits, ignored)), rel=1e-6)
    everything = torch.full_like(target, 255)
    y = logits.clone().requires_grad_(True)
    out = loss(y, everything)
    out.backward()
    assert float(out.detach()) == 0.0 and torch.all(y.grad == 0)
    # the student's transfer counts only annotated voxels of labelled crops
    teacher, student = torch.randn(2, 3, 6, 6, 6), torch.randn(2, 3, 6, 6, 6)
    counted = ignored[:, 0] != 255
    s = student.clone().requires_grad_(True)
    transfer_loss(teacher, s, task="segment", voxel_mask=counted).backward()
    assert torch.all(s.grad[0, :, :3] == 0) and torch.all(s.grad[1] == 0)
    per_voxel = transfer_distance(teacher, student, task="segment", per_voxel=True)
    expected = per_voxel[0][counted[0]].mean() / 2  # sample 1 counts nothing: 0
    assert float(transfer_loss(teacher, student, task="segment", voxel_mask=counted)) == (
        pytest.approx(float(expected), rel=1e-5)
    )
    # metrics skip them too
    counter = ConfusionCounter(3)
    counter.update(ignored, logits.argmax(1, keepdim=True))
    assert counter.matrix.sum() == 6 * 6 * 3
