"""Datasets, sampling and augmentation: deterministic, balanced, wedge-preserving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.data.datasets import (
    SubtomogramDataset,
    augmentation_seeds,
    batch_loader,
    class_weights,
    epoch_batches,
    stratified_split,
)
from cryoal.data.transforms import apply_augmentation, wedge_safe_augmentation
from cryoal.io.store import SubtomogramStore


def _wedge_region(n: int, max_tilt_deg: float = 60.0) -> np.ndarray:
    """Fourier voxels a ±max_tilt tilt series about y never measures (fftfreq order)."""
    k = np.fft.fftfreq(n)
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    return np.abs(kz) > np.tan(np.deg2rad(max_tilt_deg)) * np.abs(kx) + 1e-9


def test_flips_and_180_about_y_keep_the_missing_wedge_but_90_degrees_would_not() -> None:
    n = 16
    rng = np.random.default_rng(0)
    wedge = _wedge_region(n)
    spectrum = np.fft.fftn(rng.standard_normal((n, n, n)))
    spectrum[wedge] = 0
    vol = np.fft.ifftn(spectrum).real.astype(np.float32)  # a volume with a ±60° wedge
    aug = wedge_safe_augmentation(("image",))
    seen = set()
    for seed in range(64):
        out = apply_augmentation(aug, {"image": vol[None]}, seed)["image"][0].numpy()
        seen.add(aug.spatial_axes)
        leak = np.abs(np.fft.fftn(out))[wedge].max()
        assert leak < 1e-3 * np.abs(spectrum).max()
    assert len(seen) == 8  # all flip combinations occur
    rotated = np.rot90(vol, k=1, axes=(0, 2))  # 90° about y: the wedge moves
    assert np.abs(np.fft.fftn(rotated))[wedge].max() > 0.1 * np.abs(spectrum).max()


def test_augmentation_is_a_pure_function_of_the_seed_and_keeps_masks_aligned() -> None:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((1, 8, 8, 8)).astype(np.float32)
    mask = (image > 0).astype(np.int64)
    aug = wedge_safe_augmentation(("image", "mask"))
    a = apply_augmentation(aug, {"image": image, "mask": mask}, 7)
    b = apply_augmentation(
        wedge_safe_augmentation(("image", "mask")), {"image": image, "mask": mask}, 7
    )
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert torch.equal(a["mask"], (a["image"] > 0).long())


def test_epoch_batches_are_full_cover_every_sample_and_depend_only_on_seeds() -> None:
    b = epoch_batches(10, 4, seed=3, epoch=2)
    assert b.shape == (3, 4)
    assert set(b.ravel()[:10]) == set(range(10))
    assert np.array_equal(b, epoch_batches(10, 4, seed=3, epoch=2))
    assert not np.array_equal(b, epoch_batches(10, 4, seed=3, epoch=3))
    assert epoch_batches(10, 4, seed=3, epoch=2, steps=7).shape == (7, 4)
    s = augmentation_seeds((3, 4), seed=3, epoch=2)
    assert np.array_equal(s, augmentation_seeds((3, 4), seed=3, epoch=2))


def test_balanced_sampler_and_class_weights_counter_imbalance() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 3)
    assert w.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10), 1.0])
    order = epoch_batches(100, 50, seed=0, epoch=0, sample_weights=w[labels], steps=40)
    frac_minority = (labels[order.ravel()] == 1).mean()
    assert 0.45 < frac_minority < 0.55


def test_stratified_split_is_disjoint_stratified_and_deterministic() -> None:
    labels = np.array([0] * 50 + [1] * 20 + [2] * 1)
    train, val = stratified_split(labels, 0.2, seed=4)
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).tolist() == list(range(labels.size))
    assert np.bincount(labels[val], minlength=3).tolist() == [10, 4, 0]
    t2, v2 = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(val, v2)
    assert stratified_split(labels, 0.0, seed=4)[1].size == 0


def test_dataset_reads_batches_from_the_store_with_workers(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    idx = np.array([5, 90, 3, 41])
    ds = SubtomogramDataset(store, idx)
    items = ds.__getitems__([0, 1, (2, 11), 3])
    assert items[0]["image"].shape == (1, 16, 16, 16)
    assert items[1]["target"].item() == store.labels[90]
    assert [it["index"].item() for it in items] == idx.tolist()
    np.testing.assert_array_equal(items[3]["image"][0].numpy(), store.subtomograms([41])[0])
    batches = [[(0, 1), (1, 2)], [(2, 3), (3, 4)]]
    in_proc = [b["image"] for b in batch_loader(ds, batches)]
    workers = [b["image"] for b in batch_loader(ds, batches, num_workers=2)]
    for a, b in zip(in_proc, workers, strict=True):
        assert torch.equal(a, b)


def test_dataset_for_segmentation_needs_masks(class_store: Path, seg_store: Path) -> None:
    with pytest.raises(ValueError, match="masks"):
        SubtomogramDataset(SubtomogramStore(class_store), [0], task="segment")
    ds = SubtomogramDataset(SubtomogramStore(seg_store), [0, 40], task="segment", preload=True)
    item = ds[1]
    assert item["target"].shape == (1, 16, 16, 16) and item["target"].max() == 2
