"""Joint teacher–student training learns, transfers, and honours every KT option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.data.datasets import stratified_split
from cryoal.io.store import SubtomogramStore
from cryoal.models import build_model
from cryoal.train.config import TrainConfig
from cryoal.train.fit import derive_seed, ema_update, fit
from cryoal.train.fit.trainer import _Trainer
from cryoal.train.losses import transfer_distance
from cryoal.train.predict import stream_outputs

TINY = {"teacher_preset": "tiny", "student_preset": "tiny", "batch_size": 16, "lr": 1e-2}


def _split(store: SubtomogramStore) -> tuple[np.ndarray, np.ndarray]:
    return stratified_split(store.labels, 0.25, seed=0)


def test_joint_training_learns_and_the_student_closes_in_on_the_teacher(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    train, val = _split(store)
    cfg = TrainConfig(**TINY, epochs=10, student_lr=2e-2)
    result = fit(cfg, store, train, val_indices=val)
    final = result.metrics["val"]
    # a separable two-class problem: well above chance (0.5)
    assert final["teacher"]["accuracy"] >= 0.85
    assert final["student"]["accuracy"] >= 0.8
    assert final["agreement"] >= 0.85
    # the student's distance to the teacher shrinks once the teacher settles
    distances = [h["val"]["distance"] for h in result.history]
    assert distances[-1] < 0.6 * max(distances)
    # ... and is far below that of an untrained student of the same architecture
    fresh = build_model("classify", "tiny", 2, seed=derive_seed(0, "student"))
    d = {"trained": 0.0, "fresh": 0.0}
    models = {"teacher": result.teacher, "trained": result.student, "fresh": fresh}
    for out in stream_outputs(models, store, val):
        for name in d:
            d[name] += float(transfer_distance(out.logits["teacher"], out.logits[name]).sum())
    assert d["trained"] < 0.5 * d["fresh"]
    assert len(result.history) == 10 and result.out_dir is None


def _teacher_weights(config: TrainConfig, store: SubtomogramStore, train: np.ndarray) -> dict:
    return fit(config, store, train).teacher.state_dict()


def test_detached_teacher_trains_exactly_like_the_task_only_baseline(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    train, _ = _split(store)
    base = TrainConfig(**TINY, epochs=1)
    kt = _teacher_weights(base, store, train)
    alone = _teacher_weights(base.updated(student="none"), store, train)
    coupled = _teacher_weights(
        base.updated(detach_teacher=False, transfer_weight=1.0), store, train
    )
    for k in kt:
        assert torch.equal(kt[k], alone[k]), k
    assert any(not torch.equal(kt[k], coupled[k]) for k in kt if kt[k].is_floating_point())


def test_transfer_weight_needs_an_undetached_teacher() -> None:
    with pytest.raises(ValueError, match="detach_teacher: false"):
        TrainConfig(transfer_weight=0.5)


def test_ema_update_is_an_exponential_moving_average() -> None:
    ema, model = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.fill_(3.0)
        model.running_mean.fill_(7.0)
    ema_update(ema, model, decay=0.75)
    assert ema.weight.tolist() == pytest.approx([1.5] * 3)
    assert ema.running_mean.tolist() == [7.0] * 3  # buffers are copied


def test_ema_student_follows_the_teacher(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    train, val = _split(store)
    cfg = TrainConfig(**TINY, epochs=3, student="ema", ema_decay=0.9)
    result = fit(cfg, store, train, val_indices=val)
    assert result.info["models"]["student"]["kind"] == "ema"
    assert result.info["models"]["student"]["preset"] == "tiny"
    t, s = result.teacher.state_dict(), result.student.state_dict()
    assert not torch.equal(t["head.weight"], s["head.weight"])
    assert result.metrics["val"]["agreement"] is not None
    assert result.metrics["train"]["transfer_loss"] is None  # nothing trained the student


def test_student_sees_labeled_and_unlabeled_batches(tmp_path: Path, make_store) -> None:
    store = SubtomogramStore(make_store(tmp_path / "u.h5", per_class=24, unlabeled=16))
    labeled = np.flatnonzero(store.labels >= 0)
    unlabeled = np.flatnonzero(store.labels < 0)
    cfg = TrainConfig(**TINY, epochs=1, student_data="labeled+unlabeled", unlabeled_batch_size=8)
    trainer = _Trainer(
        cfg, store, labeled, store.labels[labeled], np.empty(0, np.int64), unlabeled, None, None
    )
    lab, unl = trainer.epoch_loaders()
    pairs = list(zip(lab, unl, strict=True))
    assert len(pairs) == trainer.steps_per_epoch
    for batch, ubatch in pairs:
        assert batch["image"].shape[0] == 16 and ubatch["image"].shape[0] == 8
        assert set(ubatch["index"].tolist()) <= set(unlabeled.tolist())
        assert set(batch["index"].tolist()) <= set(labeled.tolist())
    result = fit(cfg, store, labeled, unlabeled_indices=unlabeled)
    assert result.metrics["n_unlabeled"] == unlabeled.size
    assert np.isfinite(result.metrics["train"]["transfer_loss"])


def test_unlabeled_training_samples_are_refused(tmp_path: Path, make_store) -> None:
    store = SubtomogramStore(make_store(tmp_path / "u.h5", per_class=8, unlabeled=4))
    with pytest.raises(ValueError, match="unlabeled_indices"):
        fit(TrainConfig(**TINY, epochs=1), store, np.arange(len(store)))


def test_segmentation_trains_teacher_and_student(seg_store: Path) -> None:
    store = SubtomogramStore(seg_store)
    train, val = _split(store)
    cfg = TrainConfig(**{**TINY, "batch_size": 8}, task="segment", epochs=5)
    result = fit(cfg, store, train, val_indices=val)
    first, last = result.history[0], result.history[-1]
    assert result.info["class_names"] == ["background", "sphere", "dumbbell"]
    assert last["train"]["task_loss"] < 0.7 * first["train"]["task_loss"]
    assert last["val"]["teacher"]["mean_dice"] > 0.3
    assert last["val"]["teacher"]["dice"]["background"] > 0.95
    assert last["val"]["distance"] < first["val"]["distance"]
    with torch.no_grad():
        out = result.teacher(torch.from_numpy(store.subtomograms([0]))[:, None])
    assert out.shape == (1, 3, 16, 16, 16)


def test_segmentation_trains_on_partly_annotated_masks(seg_store: Path, tmp_path: Path) -> None:
    """Masks whose voxels are partly 255 (not annotated), one crop entirely: training runs,
    and those voxels are left out of the losses and the validation Dice."""
    import shutil

    import h5py

    path = shutil.copyfile(seg_store, tmp_path / "partial.h5")
    with h5py.File(path, "r+") as f:
        masks = f["masks"][...]
        masks[:, :, :, :8] = 255  # half of every crop not annotated
        masks[0] = 255  # one crop marked unsure
        f["masks"][...] = masks
    store = SubtomogramStore(path)
    train, val = _split(store)
    cfg = TrainConfig(**{**TINY, "batch_size": 8}, task="segment", epochs=2)
    result = fit(cfg, store, train, val_indices=val)
    last = result.history[-1]
    assert np.isfinite(last["train"]["task_loss"]) and np.isfinite(last["train"]["transfer_loss"])
    assert 0.0 <= last["val"]["teacher"]["dice"]["background"] <= 1.0


def test_balanced_sampling_and_weighted_loss_run(tmp_path: Path, make_store) -> None:
    store = SubtomogramStore(make_store(tmp_path / "imb.h5", per_class=16))
    rows = np.concatenate([np.arange(16), np.arange(16, 20)])  # 16 spheres, 4 dumbbells
    for mode in ("balanced_sampler", "weighted_loss"):
        cfg = TrainConfig(**TINY, epochs=1, class_balance=mode, student="none")
        assert np.isfinite(fit(cfg, store, rows).metrics["train"]["task_loss"])


def test_warm_start_begins_from_the_previous_run(class_store: Path, tmp_path: Path) -> None:
    store = SubtomogramStore(class_store)
    rows = np.arange(32)
    cfg = TrainConfig(**TINY, epochs=1)
    first = fit(cfg, store, rows, out_dir=tmp_path / "r0")
    # a vanishing learning rate: the warm-started weights are the previous run's
    again = fit(cfg.updated(lr=1e-12, seed=9), store, rows, init=tmp_path / "r0")
    for name in ("teacher", "student"):
        a = getattr(first, name).state_dict()
        b = getattr(again, name).state_dict()
        torch.testing.assert_close(b["head.weight"], a["head.weight"], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="warm start"):
        fit(cfg.updated(teacher_preset="student"), store, rows, init=first)


def test_steps_set_the_training_length_whatever_the_labeled_set_size(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    train, _ = _split(store)
    cfg = TrainConfig(**TINY, steps=10, student="none")
    for rows in (train[:20], train):
        per_epoch = -(-rows.size // 16)
        result = fit(cfg, store, rows)
        # at least 10 optimizer steps, rounded up to whole epochs
        assert result.metrics["steps"] == per_epoch * -(-10 // per_epoch)
        assert result.metrics["steps"] - per_epoch < 10 <= result.metrics["steps"]
    # runs without the option hash as before, so their checkpoints keep resuming
    assert TrainConfig().training_hash() == TrainConfig(steps=None).training_hash()
    assert TrainConfig().training_hash() != TrainConfig(steps=10).training_hash()
    # so do the semi-supervised options (added later) while they keep their defaults: the
    # hashes cryoal wrote into checkpoints before they existed (commit eb43f2e)
    assert TrainConfig().training_hash() == (
        "ae495cb02ed1887c1ab9084adcdce53cbff3cc4db54b7c5aeea50be3b5fbc27c"
    )
    assert TrainConfig(steps=500, average="ema").training_hash() == (
        "31c315b6d87bab211fc897f0c289db1f8bb3b2705c6b3a74dd0cd00104893b3c"
    )
    assert TrainConfig(semi_supervised="fixmatch").training_hash() != TrainConfig().training_hash()


def test_ema_weights_are_saved_and_a_preempted_run_resumes_to_the_same_average(
    class_store: Path, tmp_path: Path
) -> None:
    import os
    import signal

    from cryoal.train.checkpoint import load_run
    from cryoal.train.fit import TrainingPreempted

    store = SubtomogramStore(class_store)
    train, _ = _split(store)
    cfg = TrainConfig(**TINY, epochs=3, average="ema", average_decay=0.9, seed=3)
    reference = fit(cfg, store, train, out_dir=tmp_path / "ref")
    live = fit(cfg.updated(average="none"), store, train)
    ref_t = reference.teacher.state_dict()
    # the saved model is the average, not the last step's weights (same seed, same steps)
    assert not torch.equal(ref_t["head.weight"], live.teacher.state_dict()["head.weight"])
    saved = load_run(tmp_path / "ref").teacher.state_dict()
    assert all(torch.equal(saved[k], ref_t[k]) for k in ref_t)

    def stop_at_step_4(event) -> None:
        if event.kind == "step" and event.step == 4:
            os.kill(os.getpid(), signal.SIGUSR1)

    out = tmp_path / "preempted"
    with pytest.raises(TrainingPreempted):
        fit(cfg, store, train, out_dir=out, callback=stop_at_step_4, stop_on_sigusr1=True)
    resumed = fit(cfg, store, train, out_dir=out, resume=True)
    got = resumed.teacher.state_dict()
    for k in ref_t:
        assert torch.allclose(got[k], ref_t[k], atol=1e-6), k
