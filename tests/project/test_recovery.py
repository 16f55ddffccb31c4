"""A project whose files were moved, damaged or deleted: one line naming the file and a fix
that works (followed here to the end): moved tomograms (``relocate-tomogram``), damaged
``round.json`` / ``model.json``, and a deleted ``labels.sqlite`` (``rebuild-labels``)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.io.mrc import write_mrc
from cryoal.project.labels import LabelStore
from cryoal.project.rounds import read_model_info
from cryoal.project.session import LabellingSession
from cryoal.project.snapshot import live_sha256, load_snapshot

_TRAIN = ["--preset", "tiny", "--student-preset", "tiny", "--epochs", "1", "--batch-size", "2",
          "--val-fraction", "0", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, make_label_project) -> Path:
    """The small labelling project with 4 of its 6 candidates labelled and round 1 trained
    (a tiny model, one epoch)."""
    root = make_label_project(tmp_path_factory.mktemp("trained"))
    for i, name in ((0, "ring"), (2, "ring"), (1, "barrel"), (3, "barrel")):
        assert run(["labels", "add", str(root), f"TS_01:{i:06d}", name]) == 0
    assert run(["train", str(root), *_TRAIN]) == 0
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A copy of ``trained`` with its own copy of the tomogram."""
    root = tmp_path / "proj"
    shutil.copytree(trained, root)
    shutil.copy(trained.parent / "TS_01.mrc", tmp_path / "TS_01.mrc")
    assert (
        run(["project", "relocate-tomogram", str(root), "TS_01", str(tmp_path / "TS_01.mrc")]) == 0
    )
    return root


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert run(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: "), lines
    return lines[0].removeprefix("cryoal: error: ")


# -- a moved tomogram ----------------------------------------------------------------------
def test_a_moved_tomogram_is_named_with_its_id_and_the_fix(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tomogram = tmp_path / "TS_01.mrc"
    moved = tomogram.rename(tmp_path / "archive.mrc")
    expected = (
        f"tomogram 'TS_01' of project {project}: {tomogram} does not exist (moved or deleted "
        f"since it was added); move it back, or record where it is now with 'cryoal project "
        f"relocate-tomogram {project} TS_01 NEW_PATH'"
    )
    assert (
        _error(capsys, ["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == expected
    )
    assert _error(capsys, ["score", str(project), "--prepare", "--quiet"]) == expected
    assert not (project / "cache").exists() or not list((project / "cache").iterdir())
    # the fix it gives
    assert run(["project", "relocate-tomogram", str(project), "TS_01", str(moved)]) == 0
    assert run(["score", str(project), "--prepare", "--quiet"]) == 0
    assert run(["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == 0


def test_relocate_refuses_a_file_that_is_not_the_tomogram(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.mrc"
    write_mrc(other, np.zeros((32, 96, 80), np.float32), voxel_size_A=10.0)
    line = _error(capsys, ["project", "relocate-tomogram", str(project), "TS_01", str(other)])
    assert line.startswith(f"{other}: (32, 96, 80) voxels at 10 Å, but tomogram 'TS_01' has")
    line = _error(capsys, ["project", "relocate-tomogram", str(project), "TS_99", str(other)])
    assert "unknown tomogram 'TS_99'" in line


# -- damaged round.json and model.json ------------------------------------------------------
def test_a_damaged_round_record_is_named_and_the_fix_works(
    project: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = project / "rounds" / "001" / "round.json"
    record.write_bytes(b"\x9a\xff binary \x00")
    config = project / "rounds" / "001" / "model" / "train.yaml"
    fix = (
        f"delete it (rm {record}) and train round 1 again, from its checkpoints where they "
        f"are intact: 'cryoal train {project} --config {config}'"
    )
    assert _error(capsys, ["status", str(project)]) == (
        f"{record}: damaged (not text: byte 0 is not UTF-8); {fix}"
    )
    record.write_text('{"round": 1,')
    assert _error(capsys, ["suggest", str(project)]).startswith(
        f"{record}: damaged (not valid JSON"
    )
    record.unlink()
    assert run(["train", str(project), "--config", str(config), "--quiet"]) == 0
    info, before = read_model_info(project, 1), read_model_info(trained, 1)
    assert info is not None and before is not None
    assert (info.model_version, info.snapshot_sha256) == (
        before.model_version,
        before.snapshot_sha256,
    )
    assert run(["status", str(project)]) == 0


def test_a_damaged_model_description_is_named_and_the_fix_works(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = project / "rounds" / "001" / "model"
    (run_dir / "model.json").write_bytes(bytes(range(256)))
    line = _error(capsys, ["suggest", str(project), "--strategy", "entropy", "--k", "2"])
    assert line.startswith(f"{run_dir / 'model.json'}: damaged (not text: byte 128 is not UTF-8)")
    assert f"then 'cryoal train PROJECT --config {run_dir / 'train.yaml'}'" in line
    (run_dir / "model.json").unlink()
    (project / "rounds" / "001" / "round.json").unlink()
    assert run(["train", str(project), "--config", str(run_dir / "train.yaml"), "--quiet"]) == 0
    assert run(["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == 0


# -- a deleted label store ------------------------------------------------------------------
def _delete_store(project: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (project / f"labels.sqlite{suffix}").unlink()


def test_a_deleted_label_store_is_rebuilt_from_the_newest_snapshot(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == 0
    with LabelStore(project / "labels.sqlite") as store:
        candidates, queue = store.candidates(), store.queue(1, include_labelled=True)
        rounds = store.rounds()
    assert run(["labels", "add", str(project), "TS_01:000004", "ring"]) == 0  # after the snapshot
    _delete_store(project)

    fix = (
        "restore it from a backup, or rebuild it from the newest labels snapshot "
        f"(rounds/NNN/snapshot.csv) with 'cryoal project rebuild-labels {project}'"
    )
    store_path = project / "labels.sqlite"
    assert _error(capsys, ["status", str(project)]) == (
        f"{store_path}: the project's label store is missing; {fix}"
    )
    # project init is not the way (it refuses), and says what is
    assert _error(capsys, ["project", "init", str(project), "--classes", "ring,barrel"]) == (
        f"{project / 'project.yaml'}: a project already exists here, and its label store "
        f"labels.sqlite is missing; {fix}"
    )
    capsys.readouterr()
    assert run(["project", "rebuild-labels", str(project)]) == 0
    snapshot = project / "rounds" / "001" / "snapshot.csv"
    assert capsys.readouterr().out.strip() == (
        f"rebuilt {store_path}: 6 candidates; 4 labels from {snapshot} (labels made after it "
        "are lost); suggestion queues of rounds 1"
    )
    with LabelStore(store_path) as store:
        # exactly the snapshot's labels (ids, provenance and times: the same table hash)
        assert live_sha256(store) == load_snapshot(project, 1).sha256
        assert len(store.current_labels()) == 4
        pd.testing.assert_frame_equal(store.candidates(), candidates)
        pd.testing.assert_frame_equal(store.queue(1, include_labelled=True), queue)
        # (the fixture wrote round 0 into the store only, without rounds/000/suggestions.csv)
        columns = ["round", "strategy", "model_version", "k"]
        pd.testing.assert_frame_equal(
            store.rounds()[columns],
            rounds.loc[rounds["round"] == 1, columns].reset_index(drop=True),
        )
    # the project works again: status, training (nothing changed since the snapshot), labelling
    assert run(["status", str(project)]) == 0
    assert "no label changed since the snapshot of round 1" in _error(
        capsys, ["train", str(project), *_TRAIN]
    )
    with contextlib.closing(LabellingSession(project)) as session:
        assert session.round == 1 and len(session.queue) == 2
        session.label("ring")
    assert run(["train", str(project), *_TRAIN]) == 0
    assert read_model_info(project, 2) is not None


def test_rebuild_refuses_an_existing_store_and_a_folder_without_project(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = project / "labels.sqlite"
    assert _error(capsys, ["project", "rebuild-labels", str(project)]) == (
        f"{store}: the label store exists, so there is nothing to rebuild; to replace a "
        f"damaged one, move it aside first (mv {store} {store}.damaged)"
    )
    assert "no project configuration here" in _error(
        capsys, ["project", "rebuild-labels", str(tmp_path / "nothing")]
    )


def test_rebuild_without_a_snapshot_restores_candidates_and_queues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_mrc(tmp_path / "TS_01.mrc", np.zeros((32, 64, 64), np.float32), voxel_size_A=10.0)
    picks = tmp_path / "picks.csv"
    pd.DataFrame({"x_A": [200.0, 400.0, 300.0], "y_A": [200.0, 300.0, 400.0],
                  "z_A": [160.0] * 3}).to_csv(picks, index=False)  # fmt: skip
    proj = tmp_path / "proj"
    assert run(["project", "init", str(proj), "--classes", "a,b", "--box", "8"]) == 0
    assert run(["project", "add-tomogram", str(proj), str(tmp_path / "TS_01.mrc")]) == 0
    assert run(["project", "import-picks", str(proj), str(picks), "--tomo-id", "TS_01"]) == 0
    assert run(["suggest", str(proj), "--strategy", "random", "--k", "2"]) == 0
    with LabelStore(proj / "labels.sqlite") as store:
        candidates, queue = store.candidates(), store.queue(0)
    _delete_store(proj)
    capsys.readouterr()
    assert run(["project", "rebuild-labels", str(proj)]) == 0
    assert "3 candidates; no labels (the project has no snapshot" in capsys.readouterr().out
    with LabelStore(proj / "labels.sqlite") as store:
        pd.testing.assert_frame_equal(store.candidates(), candidates)
        pd.testing.assert_frame_equal(store.queue(0), queue)


def test_a_damaged_label_store_is_moved_aside_and_rebuilt_as_the_message_says(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = project / "labels.sqlite"
    conn = sqlite3.connect(store)  # fold the WAL into the file, then break its header
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = bytearray(store.read_bytes())
    raw[:100] = b"x" * 100
    store.write_bytes(bytes(raw))
    line = _error(capsys, ["status", str(project)])
    assert line.endswith(
        f"mv {store} {store}.damaged, then 'cryoal project rebuild-labels {project}'"
    )
    store.rename(f"{store}.damaged")
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{store}{suffix}").unlink()
    assert run(["project", "rebuild-labels", str(project)]) == 0
    assert run(["status", str(project)]) == 0
    with LabelStore(store) as s:
        assert live_sha256(s) == load_snapshot(project, 1).sha256


def test_a_damaged_metrics_file_is_named_and_can_be_deleted(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = project / "rounds" / "001" / "model" / "metrics.json"
    metrics.write_bytes(b"\xff\xfe\x00")
    assert _error(capsys, ["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == (
        f"{metrics}: damaged (not text: byte 0 is not UTF-8); delete it: the models load "
        "without it (only the run's per-epoch metrics are lost)"
    )
    metrics.unlink()
    assert run(["suggest", str(project), "--strategy", "entropy", "--k", "2"]) == 0
