"""A segment project: masks committed in the label store, frozen with a snapshot, and a
teacher and student trained on them through the project's one training path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.project.labels import LabelStore


@pytest.fixture
def segment_project(tmp_path: Path, make_segment_project) -> Path:
    return make_segment_project(tmp_path)


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
    assert sorted(frozen) == [f"TS_01:{i:06d}" for i in range(6)]
    store = SubtomogramStore(segment_project / "rounds" / "001" / "train.h5")
    row = store.index_of(["TS_01:000001"])
    np.testing.assert_array_equal(store.masks(row)[0], frozen["TS_01:000001"])
    assert set(np.unique(store.labels)) == {0, 1}  # each crop's main foreground class
    # the model ranks the unmasked candidates (a segment project's default: random weighted
    # by the teacher's predicted foreground)
    assert run(["suggest", root, "--k", "2"]) == 0
    with LabelStore(segment_project / "labels.sqlite") as labels:
        queue = labels.queue(1)
    assert sorted(queue["candidate_id"]) == ["TS_01:000006", "TS_01:000007"]
    assert set(queue["strategy"]) == {"random_foreground"} and queue["score"].between(0, 1).all()
    scores = pd.read_csv(segment_project / "rounds" / "001" / "scores.csv")
    assert {"p_background", "p_small", "p_large"} <= set(scores.columns)
    queued = pd.read_csv(segment_project / "rounds" / "001" / "suggestions.csv")
    assert set(queued["predicted_class"]) <= {"small", "large"}  # a foreground class per crop

    # the crops open with the model's masks; accepting one, correcting another (a killed
    # viewer's draft comes back), each recorded with how it came to be and its cost
    from cryoal.project.session import LabellingSession

    session = LabellingSession(segment_project, annotator="alice")
    first = session.current.candidate_id
    crop = session.mask_crop()
    assert crop.proposal is not None and crop.proposal.shape == (16, 16, 16)
    assert crop.uncertainty is not None and (crop.uncertainty >= 0).all()
    assert crop.uncertainty.max() > 0  # the KT-MSE map, whichever strategy ranked the crop
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


def test_a_segment_project_suggests_with_the_segmentation_baselines(
    segment_project: Path, capsys
) -> None:
    root = str(segment_project)
    argv = ["train", root, "--preset", "tiny", "--student-preset", "tiny", "--epochs", "1",
            "--batch-size", "4", "--val-fraction", "0.34"]  # fmt: skip
    assert run(argv) == 0
    # the round's model segments a whole tomogram into a label map named by class
    from cryoal.io.mrc import open_tomogram, read_class_names

    out = segment_project.parent / "TS_01_labels.mrc"
    tomo = segment_project.parent / "TS_01.mrc"
    for model in (segment_project / "rounds" / "001", segment_project):  # a round, the newest
        argv = ["predict", str(model), str(tomo), "--out", str(out), "-q", "--overwrite"]
        assert run(argv) == 0, capsys.readouterr().err
        with open_tomogram(out) as labels, open_tomogram(tomo) as source:
            assert labels.shape == source.shape
        assert read_class_names(out) == ["background", "small", "large"]
    for strategy in ("random_foreground", "entropy-gradnorm", "foreground-fraction"):
        code = run(["suggest", root, "--k", "2", "--strategy", strategy, "--replace"])
        assert code == 0, capsys.readouterr().err
        with LabelStore(segment_project / "labels.sqlite") as labels:
            queue = labels.queue(1)
        assert sorted(queue["candidate_id"]) == ["TS_01:000006", "TS_01:000007"]
        assert queue["score"].notna().all(), strategy
        scores = pd.read_csv(segment_project / "rounds" / "001" / "scores.csv")
        if strategy != "entropy-gradnorm":  # the score is the predicted foreground fraction
            fg = 1.0 - scores.set_index("candidate_id")["p_background"]
            np.testing.assert_allclose(
                queue.set_index("candidate_id")["score"], fg[queue["candidate_id"]], atol=1e-4
            )


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


def test_project_init_declares_the_task(tmp_path: Path) -> None:
    import yaml

    assert run(["project", "init", str(tmp_path / "seg"), "--classes", "membrane,ribosome",
                "--task", "segment"]) == 0  # fmt: skip
    config = yaml.safe_load((tmp_path / "seg" / "project.yaml").read_text())
    assert config["task"] == "segment" and config["defaults"]["strategy"] == "random_foreground"
    assert run(["project", "init", str(tmp_path / "cls"), "--classes", "a,b"]) == 0
    assert yaml.safe_load((tmp_path / "cls" / "project.yaml").read_text())["task"] == "classify"


def test_masks_export_as_a_copick_segmentation_that_copick_reads(
    segment_project: Path, capsys
) -> None:
    copick = pytest.importorskip("copick")
    with LabelStore(segment_project / "labels.sqlite") as labels:
        centres = labels.candidates().set_index("candidate_id")[["z", "y", "x"]]
    balls = centres.loc[[f"TS_01:{k:06d}" for k in range(6)]].to_numpy(dtype=int)

    out = segment_project.parent / "overlay"
    argv = ["labels", "export", str(segment_project), "--format", "copick", "--out", str(out)]
    assert run(argv) == 0, capsys.readouterr().err
    root = copick.from_file(str(out / "copick_config.json"))
    [seg] = root.get_run("TS_01").get_segmentations(
        name="masks", user_id="cryoal", session_id="0", is_multilabel=True
    )
    volume = seg.numpy()
    assert volume.shape == (32, 64, 64) and float(seg.voxel_size) == 10.0
    # each ball where it was painted, with its class id + 1 (= the pickable object's label);
    # the two x-columns left not annotated stay 0, and nothing else is painted
    zz, yy, xx = np.mgrid[:32, :64, :64]
    expected = np.zeros((32, 64, 64), np.uint8)
    for k, (z, y, x) in enumerate(balls):
        r, value = (3.0, 1) if k % 2 == 0 else (5.0, 2)
        ball = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r**2
        expected[ball & (xx >= x - 6)] = value
    np.testing.assert_array_equal(volume, expected)
    labels = {o.name: o.label for o in root.pickable_objects}
    assert labels == {"small": 1, "large": 2}
    # an existing segmentation is refused (nothing touched) unless --overwrite
    assert run(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run([*argv, "--overwrite"]) == 0
    assert not list(out.glob("ExperimentRuns/*partial*"))


def test_a_rebuilt_store_gets_the_snapshots_masks_back(segment_project: Path) -> None:
    root = str(segment_project)
    assert run(["project", "snapshot", root]) == 0
    with LabelStore(segment_project / "labels.sqlite") as labels:
        before = {m.candidate_id: m.mask for m in labels.current_masks()}
    assert len(before) == 6
    for suffix in ("", "-wal", "-shm"):
        path = segment_project / f"labels.sqlite{suffix}"
        if path.exists():
            path.unlink()
    assert run(["project", "rebuild-labels", root]) == 0
    with LabelStore(segment_project / "labels.sqlite") as labels:
        after = labels.current_masks()
    assert {m.candidate_id for m in after} == set(before)
    for m in after:
        np.testing.assert_array_equal(m.mask, before[m.candidate_id])
        assert m.source == "restored" and m.annotator == "alice"


def test_predict_names_the_missing_model_of_an_untrained_project(
    segment_project: Path, capsys
) -> None:
    tomo = segment_project.parent / "TS_01.mrc"
    argv = ["predict", str(segment_project), str(tomo), "--out", str(tomo.with_name("l.mrc"))]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "no round has a trained model yet" in err and f"cryoal train {segment_project}" in err
    assert not tomo.with_name("l.mrc").exists()
