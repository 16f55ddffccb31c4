"""A segment project: masks committed in the label store, frozen with a snapshot, and a
teacher and student trained on them through the project's one training path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.io.mrc import write_mrc
from cryoal.project.labels import LabelStore
from cryoal.project.project import Project

CENTRES = np.array([[12, 16, 16], [12, 16, 48], [12, 48, 16], [12, 48, 48], [20, 32, 32],
                    [20, 16, 32]])  # fmt: skip


def _ball_mask(box: int, radius: float, value: int) -> np.ndarray:
    zz, yy, xx = np.mgrid[:box, :box, :box] - box // 2
    mask = np.where(zz**2 + yy**2 + xx**2 <= radius**2, value, 0).astype(np.uint8)
    mask[:, :, :2] = 255  # an edge strip left unannotated
    return mask


@pytest.fixture
def segment_project(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    volume = rng.normal(0.0, 0.3, size=(32, 64, 64)).astype(np.float32)
    zz, yy, xx = np.mgrid[:32, :64, :64]
    for k, (z, y, x) in enumerate(CENTRES):
        r = 3.0 if k % 2 == 0 else 5.0  # two kinds of particles: small and large balls
        volume += 2.0 * (((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) <= r**2)
    write_mrc(tmp_path / "TS_01.mrc", volume, voxel_size_A=10.0)
    root = tmp_path / "proj"
    assert run(["project", "init", str(root), "--classes", "small,large", "--box", "16",
                "--task", "segment"]) == 0  # fmt: skip
    with Project.open(root) as project:
        project.add_tomogram(tmp_path / "TS_01.mrc", "TS_01")
        ids = [f"TS_01:{i:06d}" for i in range(len(CENTRES))]
        every = np.concatenate([CENTRES, [[24, 48, 32], [8, 32, 48]]])  # two never masked
        project.labels.add_candidates(
            pd.DataFrame({"candidate_id": [f"TS_01:{i:06d}" for i in range(len(every))],
                          "tomo_id": "TS_01", "z": every[:, 0] * 1.0, "y": every[:, 1] * 1.0,
                          "x": every[:, 2] * 1.0}), source="test",
        )  # fmt: skip
        for k, cid in enumerate(ids):
            small = k % 2 == 0
            project.labels.add_mask(
                cid, _ball_mask(16, 3.0 if small else 5.0, 1 if small else 2), "alice"
            )
    return root


def test_a_segment_project_trains_on_its_masks(segment_project: Path, capsys) -> None:
    root = str(segment_project)
    argv = ["train", root, "--preset", "tiny", "--student-preset", "tiny", "--epochs", "2",
            "--batch-size", "4", "--val-fraction", "0.34"]  # fmt: skip
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "validation mean Dice" in out
    info = json.loads((segment_project / "rounds" / "001" / "round.json").read_text())
    assert info["class_names"] == ["background", "small", "large"]
    assert 0.0 <= info["metrics"]["val_teacher_mean_dice"] <= 1.0
    # the masks were frozen with the snapshot and went into the round's store as targets
    from cryoal.io.store import SubtomogramStore
    from cryoal.project.snapshot import read_snapshot_masks

    frozen = read_snapshot_masks(segment_project / "rounds" / "001")
    assert sorted(frozen) == [f"TS_01:{i:06d}" for i in range(len(CENTRES))]
    store = SubtomogramStore(segment_project / "rounds" / "001" / "train.h5")
    row = store.index_of(["TS_01:000001"])
    np.testing.assert_array_equal(store.masks(row)[0], frozen["TS_01:000001"])
    assert set(np.unique(store.labels)) == {0, 1}  # each crop's main foreground class
    # the model ranks the unmasked candidates by KT-MSE (a segment project's default)
    assert run(["suggest", root, "--k", "2"]) == 0
    with LabelStore(segment_project / "labels.sqlite") as labels:
        queue = labels.queue(1)
    assert sorted(queue["candidate_id"]) == ["TS_01:000006", "TS_01:000007"]
    assert set(queue["strategy"]) == {"kt"} and queue["score"].notna().all()
    scores = pd.read_csv(segment_project / "rounds" / "001" / "scores.csv")
    assert {"p_background", "p_small", "p_large"} <= set(scores.columns)

    # the crops open with the model's masks; accepting one, correcting another (a killed
    # viewer's draft comes back), each recorded with how it came to be and its cost
    from cryoal.project.session import LabellingSession

    session = LabellingSession(segment_project, annotator="alice")
    first = session.current.candidate_id
    crop = session.mask_crop()
    assert crop.proposal is not None and crop.proposal.shape == (16, 16, 16)
    assert crop.uncertainty is not None and (crop.uncertainty >= 0).all()
    np.testing.assert_array_equal(crop.start, crop.proposal)
    session.commit_mask(crop.start, seconds=1.5)
    second = session.current.candidate_id
    assert second != first
    edited = session.mask_crop().start.copy()
    edited[8, 6:10, 6:10] = np.where(edited[8, 6:10, 6:10] == 2, 1, 2)  # 16 voxels repainted
    session.save_draft(edited)
    session.close()
    again = LabellingSession(segment_project, annotator="alice")  # the viewer was killed
    assert again.current.candidate_id == second
    crop = again.mask_crop()
    assert crop.from_draft
    np.testing.assert_array_equal(crop.start, edited)
    again.commit_mask(crop.start, seconds=12.0)
    with LabelStore(segment_project / "labels.sqlite") as labels:
        accepted, corrected = labels.current_mask(first), labels.current_mask(second)
        assert labels.draft(second, "alice") is None
    assert (accepted.source, accepted.voxels_changed, accepted.seconds) == ("accepted", 0, 1.5)
    assert (corrected.source, corrected.voxels_changed, corrected.slices_touched) == (
        "corrected", 16, 1,
    )  # fmt: skip
    assert corrected.model_version == info["model_version"]


def test_the_project_task_decides_the_training_task(segment_project: Path, capsys) -> None:
    argv = ["train", str(segment_project), "--preset", "tiny", "--epochs", "1", "--task",
            "classify"]  # fmt: skip
    assert run(argv) == 2
    assert "the project's task is segment, the training config's classify" in (
        capsys.readouterr().err
    )
    with LabelStore(segment_project / "labels.sqlite") as store:  # nothing was snapshotted
        assert store.latest_round() is None
    assert not (segment_project / "rounds").exists()


def test_a_segment_projects_session_takes_no_class_labels(segment_project: Path) -> None:
    from cryoal.project.session import LabellingSession

    with LabelStore(segment_project / "labels.sqlite") as labels:
        labels.write_suggestions(0, ["TS_01:000006", "TS_01:000007"], None, "random")
    session = LabellingSession(segment_project, annotator="alice")
    with pytest.raises(ValueError, match="is a segment project: its labels are masks"):
        session.label("small")
    assert session.label("unsure").kind == "unsure"  # a crop can still be marked unsure
