"""Torch datasets over the HDF5 subtomogram store, and the sampling that feeds training.

Everything random here is a pure function of explicit seeds: the epoch order of
``(seed, epoch)``, each sample's augmentation of its own 32-bit seed. So a run gives the same
batches with 0 or N DataLoader workers, and a run resumed mid-epoch continues with exactly
the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cryoal.data.transforms import Augmentation, apply_augmentation
from cryoal.io.store import SubtomogramStore

#: An item request: a position into the dataset's ``indices``, optionally with the seed of
#: its augmentation.
Item = int | tuple[int, int]


class SubtomogramDataset(Dataset):
    """Samples of a :class:`~cryoal.io.store.SubtomogramStore` as tensors.

    Parameters
    ----------
    store
        The store (picklable: each worker process opens its own HDF5 handle).
    indices
        ``(n,)`` store rows this dataset exposes; item ``k`` is row ``indices[k]``.
    targets
        ``task="classify"``: ``(n,)`` class indices aligned with ``indices`` (default: the
        store's labels; -1 = unlabeled is allowed and passed through). Ignored for
        ``task="segment"``, whose targets are the store's ``/masks``.
    task
        ``"classify"`` or ``"segment"``.
    transform
        A MONAI randomizable dictionary transform applied to ``{"image", "mask"}`` (e.g.
        :func:`cryoal.data.transforms.wedge_safe_augmentation`); used only for items that
        carry a seed.
    preload
        Read all ``n`` subtomograms (and masks) into memory once (``n * b^3 * 4`` bytes).

    Items
    -----
    ``dataset[k]`` or ``dataset[(k, seed)]`` is a dict with ``"image"`` float32 ``(1, b, b,
    b)`` zyx, ``"target"`` int64 ``()`` (classify) or ``(1, b, b, b)`` (segment) and
    ``"index"`` int64 (the store row). ``__getitems__`` reads a whole batch in one HDF5
    call, which DataLoader uses automatically.
    """

    def __init__(
        self,
        store: SubtomogramStore,
        indices: Sequence[int] | np.ndarray,
        targets: Sequence[int] | np.ndarray | None = None,
        *,
        task: Literal["classify", "segment"] = "classify",
        transform: Augmentation | None = None,
        preload: bool = False,
    ) -> None:
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(store)):
            raise IndexError(f"{store.path}: dataset indices outside 0..{len(store) - 1}")
        if task not in ("classify", "segment"):
            raise ValueError(f"task {task!r} is not supported; use 'classify' or 'segment'")
        self.task = task
        if task == "segment" and not store.has_masks:
            raise ValueError(
                f"{store.path}: segmentation needs /masks in the store; simulate with masks "
                "or choose --task classify"
            )
        if targets is None:
            targets = store.labels[self.indices]
        self.targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if self.targets.shape != self.indices.shape:
            raise ValueError(
                f"{len(self.targets)} targets for {len(self.indices)} samples; pass one per index"
            )
        self.transform = transform
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        if preload:
            self._images = store.subtomograms(self.indices)
            if task == "segment":
                self._masks = store.masks(self.indices)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: Sequence[Item]) -> list[dict[str, torch.Tensor]]:
        pos = np.array([it[0] if isinstance(it, tuple) else it for it in items], dtype=np.int64)
        seeds = [it[1] if isinstance(it, tuple) else None for it in items]
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"dataset position out of range 0..{len(self) - 1}")
        if self._images is not None:
            images = self._images[pos]
            masks = self._masks[pos] if self._masks is not None else None
        else:
            rows = self.indices[pos]
            images = self.store.subtomograms(rows)
            masks = self.store.masks(rows) if self.task == "segment" else None
        out = []
        for k, seed in enumerate(seeds):
            item: dict[str, torch.Tensor] = {"image": torch.from_numpy(np.array(images[k][None]))}
            if masks is not None:
                item["mask"] = torch.from_numpy(masks[k][None].astype(np.int64))
            if seed is not None and self.transform is not None:
                item = apply_augmentation(self.transform, item, seed)
            target = item.pop("mask") if masks is not None else torch.tensor(self.targets[pos[k]])
            item["target"] = target
            item["index"] = torch.tensor(self.indices[pos[k]], dtype=torch.int64)
            out.append(item)
        return out


def stratified_split(
    labels: Sequence[int] | np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..n-1`` into train and validation, stratified by label.

    Each class with at least 2 samples gives ``round(val_fraction * n_c)`` (at least 1)
    samples to validation; classes with one sample stay in training.

    Returns
    -------
    train, val
        Sorted ``int64`` positions into ``labels``.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction {val_fraction} must be in [0, 1)")
    rng = np.random.default_rng([int(seed), 0x5A11])
    val: list[np.ndarray] = []
    if val_fraction > 0:
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            if members.size < 2:
                continue
            k = min(members.size - 1, max(1, int(round(val_fraction * members.size))))
            val.append(rng.choice(members, size=k, replace=False))
    val_pos = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    train_pos = np.setdiff1d(np.arange(labels.size), val_pos)
    return train_pos.astype(np.int64), val_pos.astype(np.int64)


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights ``(C,)`` float32, mean 1 over the classes present.

    Classes absent from ``labels`` get weight 1 (they never contribute to the loss).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def epoch_batches(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    sample_weights: np.ndarray | None = None,
    stream: int = 0,
    steps: int | None = None,
) -> np.ndarray:
    """Positions of one epoch as ``(steps, batch_size)``, a pure function of the seeds.

    Without ``sample_weights`` the epoch is a random permutation of ``0..n-1``; the last
    batch is completed with the first positions of the next permutation, so every batch has
    exactly ``batch_size`` samples (stable BatchNorm statistics and a fixed step cost) and
    ``steps = ceil(n / batch_size)``. With ``sample_weights`` (``(n,)``, >= 0) the ``steps *
    batch_size`` positions are drawn with replacement in proportion to the weights
    (balanced sampling when the weights are ``1 / count(class)``). ``steps`` overrides the
    number of batches (e.g. to pair unlabeled batches with the labeled ones); the
    permutations then repeat as often as needed.
    """
    if n <= 0:
        raise ValueError("cannot build batches from an empty set of samples")
    steps = -(-n // batch_size) if steps is None else int(steps)
    rng = np.random.default_rng([int(seed), int(epoch), int(stream)])
    total = steps * batch_size
    if sample_weights is not None:
        p = np.asarray(sample_weights, dtype=np.float64)
        order = rng.choice(n, size=total, replace=True, p=p / p.sum())
    else:
        parts = [rng.permutation(n)]
        while sum(len(p) for p in parts) < total:
            parts.append(rng.permutation(n))
        order = np.concatenate(parts)[:total]
    return order.reshape(steps, batch_size).astype(np.int64)


def augmentation_seeds(
    shape: tuple[int, ...], *, seed: int, epoch: int, stream: int = 0
) -> np.ndarray:
    """Per-sample augmentation seeds in ``[0, 2**31)`` for one epoch (pure function of seeds)."""
    rng = np.random.default_rng([int(seed), int(epoch), int(stream), 0xA06])
    return rng.integers(0, 2**31, size=shape, dtype=np.int64)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and ``random`` in each worker from torch.

    cryoal's own augmentation is seeded per sample and does not need it; this makes any
    third-party transform a user adds reproducible too.
    """
    import random

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def batch_loader(
    dataset: SubtomogramDataset,
    batches: Sequence[Sequence[Item]],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
    prefetch_factor: int = 4,
) -> DataLoader:
    """A DataLoader yielding the given batches in order (collated dicts of tensors).

    ``batches`` is a list of lists of items (positions or ``(position, seed)``). The
    loader's own generator is seeded explicitly, so creating it never draws from torch's
    global RNG. With ``num_workers > 0`` each worker opens the HDF5 store itself (the
    store's handle is not pickled) and keeps ``prefetch_factor`` batches ready; with
    ``pin_memory`` (training on CUDA) batches land in page-locked memory, so the copy to
    the GPU runs asynchronously (``non_blocking=True``).
    """
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_sampler=[list(b) for b in batches],
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )
