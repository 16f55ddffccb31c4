"""Semi-supervised training (semi_supervised: fixmatch): FlexMatch thresholds, masked
pseudo-labels, strong views, and a run that learns from the pool without writing a label
and resumes to the same weights."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.io.store import SubtomogramStore
from cryoal.pretrain.views import make_view
from cryoal.train.config import TrainConfig
from cryoal.train.fit import TrainingPreempted, fit
from cryoal.train.semi import class_thresholds, pseudo_label_loss, pseudo_labels, update_state


def test_class_adaptive_thresholds_follow_flexmatch() -> None:
    # class 0 holds 3 samples, class 1 one, class 2 none; 2 samples hold no class
    state = np.array([0, 0, 0, 1, -1, -1])
    got = class_thresholds(state, 3, 0.9)
    # beta = sigma / max(max sigma, n_none) = [1, 1/3, 0]; threshold = beta / (2 - beta) * tau
    np.testing.assert_allclose(got, [0.9, (1 / 3) / (5 / 3) * 0.9, 0.0])
    # warm-up: while most samples hold nothing, the unused count scales every class down
    np.testing.assert_allclose(class_thresholds(np.array([0, -1, -1, -1]), 2, 0.9), [0.18, 0.0])
    # fixed thresholds when not adaptive
    np.testing.assert_allclose(class_thresholds(state, 3, 0.9, adaptive=False), [0.9] * 3)


def test_pseudo_labels_pass_only_their_class_threshold_and_the_loss_averages_the_batch() -> None:
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]]))
    classes, confidence, mask = pseudo_labels(logits, torch.tensor([0.8, 0.5]))
    assert classes.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(confidence, torch.tensor([0.9, 0.6, 0.7, 0.55]))
    assert mask.tolist() == [True, False, True, True]
    strong = torch.zeros(4, 2)  # uniform predictions: CE log 2 per sample
    loss = pseudo_label_loss(strong, classes, mask)
    assert float(loss) == pytest.approx(3 * np.log(2) / 4)  # over all 4, not the 3 kept
    assert float(pseudo_label_loss(strong, classes, torch.zeros(4, dtype=torch.bool))) == 0.0
    state = np.array([1, -1, 0])
    update_state(state, np.array([0, 1, 2]), np.array([-1, 1, 1]))
    assert state.tolist() == [1, 1, 1]  # a sample below the threshold keeps what it held


def test_strong_view_cutout_zeroes_one_cube_per_sample() -> None:
    x = torch.ones(3, 1, 8, 8, 8)
    gen = torch.Generator().manual_seed(0)
    out = make_view(x, gen, flip=False, max_shift=0, noise_std=0.0, cutout=0.5)
    for v in out:
        zero = (v == 0).nonzero()
        assert zero.shape[0] == 4**3  # one 4^3 cube
        assert (zero.max(0).values - zero.min(0).values)[1:].tolist() == [3, 3, 3]
    assert torch.equal(x, torch.ones(3, 1, 8, 8, 8))  # the input is untouched


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fixmatch_learns_from_the_pool_writes_no_label_and_resumes_exactly(
    class_store: Path, tmp_path: Path
) -> None:
    store = SubtomogramStore(class_store)
    labels = np.asarray(store.labels)
    labelled = np.concatenate([np.flatnonzero(labels == c)[:16] for c in (0, 1)])
    pool = np.setdiff1d(np.arange(labels.size), labelled)
    before = _sha(class_store)
    cfg = TrainConfig(
        teacher_preset="tiny", student_preset="tiny", batch_size=8, lr=1e-2, steps=40,
        semi_supervised="fixmatch", pseudo_threshold=0.8, seed=3,
    )  # fmt: skip
    ref = fit(cfg, store, labelled, unlabeled_indices=pool, out_dir=tmp_path / "ref")
    last = ref.history[-1]
    # the teacher labels part of the pool itself, and on this separable pair mostly right
    quality = last["pseudo_labels"]
    assert quality["coverage"] > 0.05
    assert quality["accuracy"] >= 0.8  # chance: 0.5
    assert 0.0 < last["train"]["pseudo_fraction"] <= 1.0
    # pseudo-labels stay inside training: the store (its labels included) is byte-identical
    assert _sha(class_store) == before
    np.testing.assert_array_equal(SubtomogramStore(class_store).labels, labels)
    # the pseudo-label loss changes the teacher: not the supervised training's weights
    plain = fit(cfg.updated(semi_supervised="none"), store, labelled, unlabeled_indices=pool)
    assert not torch.equal(plain.teacher.state_dict()["head.weight"],
                           ref.teacher.state_dict()["head.weight"])  # fmt: skip

    def stop_at_step_13(event) -> None:  # noqa: ANN001
        if event.kind == "step" and event.step == 13:
            os.kill(os.getpid(), signal.SIGUSR1)

    out = tmp_path / "preempted"
    with pytest.raises(TrainingPreempted):
        fit(cfg, store, labelled, unlabeled_indices=pool, out_dir=out,
            callback=stop_at_step_13, stop_on_sigusr1=True)  # fmt: skip
    resumed = fit(cfg, store, labelled, unlabeled_indices=pool, out_dir=out, resume=True)
    assert resumed.history[-1]["pseudo_labels"] == quality
    want = ref.teacher.state_dict()
    for k, v in resumed.teacher.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=1e-6)


def test_semi_supervised_needs_the_pool_and_a_classifier(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    cfg = TrainConfig(teacher_preset="tiny", student="none", semi_supervised="fixmatch")
    with pytest.raises(ValueError, match="needs unlabeled samples"):
        fit(cfg, store, np.arange(16))
    with pytest.raises(ValueError, match="semi_supervised fixmatch trains classifiers"):
        TrainConfig(task="segment", semi_supervised="fixmatch")
