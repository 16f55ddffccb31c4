"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_STRUCTURES = REPO_ROOT.parent / "shared" / "structures"


@pytest.fixture(scope="session")
def shared_structures() -> Path:
    """``../shared/structures`` (real SHREC maps at 10 Å and two PDB models)."""
    if not (SHARED_STRUCTURES / "maps_10A").is_dir():
        pytest.skip(f"{SHARED_STRUCTURES} not present (it sits beside the repository in CI)")
    return SHARED_STRUCTURES


@pytest.fixture
def label_project(tmp_path: Path) -> Path:
    """A small labelling project (``build_label_project``)."""
    return build_label_project(tmp_path)


@pytest.fixture
def make_label_project():  # noqa: ANN201 - the builder below
    """``build_label_project`` itself, for tests that need a variant."""
    return build_label_project


def build_label_project(tmp_path: Path, queue: bool = True) -> Path:
    """A small labelling project in ``tmp_path/proj``: a 32×96×96 tomogram at 10 Å with 6 bright blobs, one
    candidate on each (ids ``TS_01:000000``..``000005``), classes ring, barrel, and a
    round-0 queue of all six in id order (``queue=False``: no queue yet)."""
    import numpy as np
    import pandas as pd

    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    rng = np.random.default_rng(0)
    volume = rng.normal(0.0, 0.3, size=(32, 96, 96)).astype(np.float32)
    centres = np.array(
        [[16, 20, 20], [16, 20, 70], [12, 50, 45], [20, 75, 20], [16, 75, 72], [10, 48, 80]]
    )
    zz, yy, xx = np.mgrid[:32, :96, :96]
    for z, y, x in centres:
        volume += 3.0 * np.exp(-((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) / (2 * 3.0**2))
    write_mrc(tmp_path / "TS_01.mrc", volume, voxel_size_A=10.0)
    root = tmp_path / "proj"
    project = Project.init(root, ["ring", "barrel"], box=16)
    project.add_tomogram(tmp_path / "TS_01.mrc", "TS_01")
    ids = [f"TS_01:{i:06d}" for i in range(len(centres))]
    table = pd.DataFrame(
        {"candidate_id": ids, "tomo_id": "TS_01", "z": centres[:, 0].astype(float),
         "y": centres[:, 1].astype(float), "x": centres[:, 2].astype(float)}
    )  # fmt: skip
    project.labels.add_candidates(table, source="test")
    if queue:
        project.labels.write_suggestions(0, ids, None, "random", seed=0)
    project.close()
    return root
