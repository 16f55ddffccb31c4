"""Sample data: a simulated project made on first use, complete, then reused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from cryoal_napari._sample import make_sample_project, sample_project, sample_root

from cryoal.project.project import Project


def test_sample_project_is_made_once_and_opens_as_layers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # honour TMPDIR in this test
    root = sample_root()
    assert root.is_relative_to(tmp_path)

    layers = sample_project()
    assert (root / "project.yaml").is_file()
    assert [kind for _, _, kind in layers] == ["image", "points"]
    (tomo, tkw, _), (points, pkw, _) = layers
    assert tomo.shape == (64, 128, 128) and tkw["scale"] == (10.0, 10.0, 10.0)
    assert len(points) == 36
    with Project.open(root) as project:
        assert project.labels.n_candidates() == 36
        assert len(project.labels.queue()) == 16
    queue = pd.read_csv(root / "rounds" / "000" / "suggestions.csv")
    assert len(queue) == 16
    # nothing half-made is left beside it, and a second call reuses the project
    assert [p.name for p in root.parent.iterdir()] == [root.name]
    stamp = (root / "labels.sqlite").stat().st_mtime_ns
    assert make_sample_project() == root
    assert (root / "labels.sqlite").stat().st_mtime_ns == stamp
