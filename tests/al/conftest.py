"""Fixtures for the active-learning tests: a small store and untrained tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.io.store import StoreWriter, SubtomogramStore
from cryoal.models import build_model


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from a second thread, and on a shared 2-core machine two
    OpenMP threads waiting for each other are several times slower; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def noise_store(tmp_path_factory: pytest.TempPathFactory) -> SubtomogramStore:
    """60 random 16^3 subtomograms in 3 classes (a bright blob whose size depends on the class)."""
    path = Path(tmp_path_factory.mktemp("al")) / "noise.h5"
    rng = np.random.default_rng(0)
    n, b = 60, 16
    z, y, x = np.mgrid[:b, :b, :b] - b / 2
    r = np.sqrt(z**2 + y**2 + x**2)
    labels = np.arange(n) % 3
    data = rng.normal(size=(n, b, b, b)).astype(np.float32)
    data += np.stack([(r < 2 + 2 * c).astype(np.float32) for c in labels])
    # ids deliberately not in row order
    ids = [f"TS_{i % 2}:{(7 * i) % n:04d}" for i in range(n)]
    with StoreWriter(path, box=b, voxel_size_A=10.0, class_names=["s", "m", "l"]) as w:
        w.append(data, ids, labels=labels)
    return SubtomogramStore(path)


@pytest.fixture(scope="session")
def teacher():
    return build_model("classify", "tiny", 3, seed=1).eval()


@pytest.fixture(scope="session")
def student():
    return build_model("classify", "tiny", 3, seed=2).eval()
