"""Small synthetic stores for the training tests (16^3 boxes, two separable classes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cryoal.io.store import StoreWriter

BOX = 16


def _make_store(
    path: Path,
    *,
    per_class: int = 48,
    noise: float = 0.3,
    seed: int = 0,
    masks: bool = False,
    unlabeled: int = 0,
    voxel_size_A: float = 10.0,
) -> Path:
    """Spheres (class 0) and dumbbells (class 1) with random shifts, sizes and noise.

    Masks (``masks=True``) hold 0 for background and ``class + 1`` inside the object, as
    the simulator writes them. ``unlabeled`` random samples get label -1.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:BOX, :BOX, :BOX] - (BOX - 1) / 2
    subs, labels, ms = [], [], []
    for c in range(2):
        for _ in range(per_class):
            dz, dy, dx = rng.uniform(-1.5, 1.5, 3)
            zz, yy, xx = z - dz, y - dy, x - dx
            if c == 0:
                m = zz**2 + yy**2 + xx**2 < rng.uniform(3.5, 4.5) ** 2
            else:
                r, d = rng.uniform(2.0, 2.6), rng.uniform(2.8, 3.6)
                m = (zz**2 + yy**2 + (xx - d) ** 2 < r**2) | (zz**2 + yy**2 + (xx + d) ** 2 < r**2)
            subs.append(m + noise * rng.standard_normal(m.shape))
            labels.append(c)
            ms.append(m.astype(np.uint8) * (c + 1))
    lab = np.array(labels)
    if unlabeled:
        lab[rng.choice(lab.size, unlabeled, replace=False)] = -1
    with StoreWriter(
        path, BOX, voxel_size_A, ["sphere", "dumbbell"], with_masks=masks, overwrite=True
    ) as w:
        w.append(
            np.stack(subs).astype(np.float32),
            [f"t:{i:05d}" for i in range(lab.size)],
            labels=lab,
            masks=np.stack(ms) if masks else None,
        )
    return path


@pytest.fixture(scope="session")
def make_store() -> Callable[..., Path]:
    """The store factory (see ``_make_store``) for tests that need a variant."""
    return _make_store


@pytest.fixture(scope="session")
def class_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 labeled samples, 2 balanced classes, 16^3."""
    return _make_store(tmp_path_factory.mktemp("stores") / "classes.h5")


@pytest.fixture(scope="session")
def seg_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 samples with masks (0 background, 1 sphere, 2 dumbbell), 16^3."""
    return _make_store(tmp_path_factory.mktemp("stores") / "seg.h5", per_class=32, masks=True)
