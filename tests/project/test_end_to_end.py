"""The whole loop on a simulated tomogram, from the command line, with labels from ground truth
standing in for the expert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from cryoal.cli.main import run
from cryoal.io.coords import read_coords
from cryoal.project.labels import LabelStore
from cryoal.project.rounds import read_model_info
from cryoal.sim.tomograms import simulate_tomogram


def _expert_labels(project: Path, truth: pd.DataFrame, queue_csv: Path, out: Path) -> list[str]:
    """Label a queue from ground truth: the class of the true particle at each candidate."""
    queue = pd.read_csv(queue_csv)
    tree = cKDTree(truth[["z", "y", "x"]].to_numpy())
    dist, idx = tree.query(queue[["z", "y", "x"]].to_numpy())
    assert dist.max() < 1.0  # candidates are the imported picks
    labels = truth["class_name"].to_numpy()[idx]
    pd.DataFrame({"candidate_id": queue["candidate_id"], "label": labels}).to_csv(out, index=False)
    return list(labels)


@pytest.mark.timeout(300)
def test_loop_on_a_simulated_tomogram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulate_tomogram(
        tmp_path / "sim", shape_zyx=(64, 128, 128), n_particles=36, n_classes=2, snr=1.0, seed=3
    )
    truth = pd.read_csv(sim.ground_truth)
    names = ",".join(json.loads(sim.settings.read_text())["class_names"])
    proj = tmp_path / "proj"

    assert run(["project", "init", str(proj), "--classes", names, "--box", "24"]) == 0
    assert (
        run(["project", "add-tomogram", str(proj), str(sim.tomogram), "--tomo-id", "sim_tomo"]) == 0
    )
    assert run(["project", "import-picks", str(proj), str(sim.star)]) == 0
    assert run(["suggest", str(proj), "--strategy", "random", "--k", "16", "--seed", "1"]) == 0
    labelled = _expert_labels(proj, truth, proj / "rounds/000/suggestions.csv", tmp_path / "r0.csv")
    assert len(set(labelled)) == 2  # both classes among the first labels
    assert (
        run(["labels", "import", str(proj), str(tmp_path / "r0.csv"), "--annotator", "expert"]) == 0
    )

    capsys.readouterr()
    assert run(["train", str(proj), "--preset", "tiny", "--student-preset", "tiny",
                "--epochs", "3", "--batch-size", "8", "--val-fraction", "0.25", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    info = read_model_info(proj, 1)
    assert info is not None and info.model_version.startswith("r001-") and info.n_train == 12
    # what the new model can do: its validation accuracy overall and per class
    line = next(x for x in out.splitlines() if x.startswith("model version r001-"))
    acc = info.metrics["val_teacher_accuracy"]
    assert f"(round 1, 12 train / 4 val labels): validation accuracy {acc:.3f} (" in line
    assert all(f"{name} " in line.split("(", 2)[2] for name in names.split(","))

    capsys.readouterr()
    assert run(["suggest", str(proj), "--strategy", "kt", "--k", "8"]) == 0
    assert f"round 1: 8 suggestions (kt by model {info.model_version})" in capsys.readouterr().out
    queue = pd.read_csv(proj / "rounds/001/suggestions.csv")
    assert len(queue) == 8 and queue["score"].notna().all()
    assert (np.diff(queue["score"].to_numpy()) <= 1e-12).all()  # ranked, most informative first
    # the round's full score table: every candidate scored, the queue's picks in order
    from cryoal.al.score_table import read_scores

    table = read_scores(proj / "rounds/001/scores.csv")
    picks = table[table["pick"] >= 0].sort_values("pick")
    assert list(picks["candidate_id"]) == list(queue["candidate_id"]) and len(table) > 8
    np.testing.assert_allclose(picks["score"], queue["score"], rtol=1e-9)
    assert list(picks["predicted_class"]) == list(queue["predicted_class"].fillna(""))
    assert not (proj / "rounds/000/scores.csv").exists()  # round 0: no model, no scores
    with LabelStore(proj / "labels.sqlite") as store:
        first = set(store.queue(0, include_labelled=True)["candidate_id"])
        assert not first & set(queue["candidate_id"])  # labelled ones are not asked again
        rounds = store.rounds().set_index("round")
        assert rounds.loc[1, "model_version"] == info.model_version
    # nothing labelled since round 1 was trained: training again is refused, not repeated
    capsys.readouterr()
    assert run(["train", str(proj), "--preset", "tiny"]) == 2
    assert "no label changed since the snapshot of round 1" in capsys.readouterr().err
    _expert_labels(proj, truth, proj / "rounds/001/suggestions.csv", tmp_path / "r1.csv")
    assert (
        run(["labels", "import", str(proj), str(tmp_path / "r1.csv"), "--annotator", "expert"]) == 0
    )
    with LabelStore(proj / "labels.sqlite") as store:
        latest = store.current_labels().set_index("candidate_id").loc[queue["candidate_id"]]
        assert (latest["round"] == 1).all() and (
            latest["model_version"] == info.model_version
        ).all()

    star = tmp_path / "labels.star"
    assert run(["labels", "export", str(proj), "--format", "star", "--out", str(star)]) == 0
    exported = read_coords(star, voxel_size_A=10.0, class_names=names.split(","))
    assert len(exported) == 24
    dist, idx = cKDTree(truth[["z", "y", "x"]].to_numpy()).query(
        exported[["z", "y", "x"]].to_numpy()
    )
    assert dist.max() < 0.01  # the exported coordinates land on the true particles
    assert (truth["class_name"].to_numpy()[idx] == exported["class_name"].to_numpy()).all()

    assert run(["status", str(proj)]) == 0
    status = capsys.readouterr().out
    assert info.model_version in status and "candidates     │ 36" in status
