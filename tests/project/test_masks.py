"""Segmentation masks in the label store: committed with their label row, drafts that
survive a killed viewer, nothing lost on kill -9, and the MRC export."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.project.labels import DamagedStoreError, LabelStore

CLASSES = ["membrane", "ribosome"]


def _store(tmp_path: Path, n: int = 8) -> LabelStore:
    store = LabelStore.create(tmp_path / "labels.sqlite", CLASSES)
    ids = [f"TS_01:{i:06d}" for i in range(n)]
    store.add_candidates(
        pd.DataFrame({"candidate_id": ids, "tomo_id": "TS_01", "z": 20.0, "y": 20.0 + 4 * np.arange(n),
                      "x": 30.0}),
        source="test",
    )  # fmt: skip
    return store


def _mask(seed: int, shape=(16, 16, 16)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=shape, p=[0.7, 0.1, 0.1, 0.1])
    return mask


def test_a_mask_is_committed_with_its_label_row_and_newest_wins(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_suggestions(0, ["TS_01:000001"], [0.4], "kt-mse", model_version="round-000-x")
    first, second = _mask(0), _mask(1)
    store.save_draft("TS_01:000001", first, "alice")
    label_id = store.add_mask("TS_01:000001", first, "alice", source="corrected",
                              voxels_changed=120, slices_touched=5, seconds=8.5)  # fmt: skip
    assert store.draft("TS_01:000001", "alice") is None  # the commit supersedes the draft
    got = store.current_mask("TS_01:000001")
    np.testing.assert_array_equal(got.mask, first)
    assert (got.label_id, got.source, got.annotator) == (label_id, "corrected", "alice")
    assert (got.round, got.model_version) == (0, "round-000-x")  # from the queue
    assert (got.voxels_changed, got.slices_touched, got.seconds) == (120, 5, 8.5)
    row = store.current_label("TS_01:000001")
    assert (row.kind, row.class_name) == ("mask", None)
    store.add_mask("TS_01:000001", second, "bob", source="accepted")
    np.testing.assert_array_equal(store.current_mask("TS_01:000001").mask, second)
    assert [m.annotator for m in store.mask_history("TS_01:000001")] == ["alice", "bob"]
    store.add_label("TS_01:000001", "unsure", "carol")  # a newer label wins over the mask
    assert store.current_mask("TS_01:000001") is None
    assert len(store.mask_history("TS_01:000001")) == 2  # history stays
    assert [m.candidate_id for m in store.current_masks()] == []


def test_bad_masks_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for bad, says in ((np.full((4, 4, 4), 3, np.uint8), r"mask values \[3\]"),
                      (np.zeros((4, 4), np.uint8), "a mask is a \\(z, y, x\\) volume"),
                      (np.zeros((4, 4, 4), np.float32), "integer values")):  # fmt: skip
        with pytest.raises(ValueError, match=says):
            store.add_mask("TS_01:000000", bad, "alice")
    with pytest.raises(ValueError, match="mask source 'guessed'"):
        store.add_mask("TS_01:000000", _mask(0), "alice", source="guessed")
    with pytest.raises(ValueError, match="unknown candidate 'TS_01:999999'"):
        store.add_mask("TS_01:999999", _mask(0), "alice")
    assert store.label_history().empty and store.current_masks() == []


def test_a_draft_survives_reopening_and_damage_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save_draft("TS_01:000002", _mask(2), "alice")
    store.save_draft("TS_01:000002", _mask(3), "alice")  # autosave replaces the draft
    store.close()
    with LabelStore(tmp_path / "labels.sqlite") as again:
        np.testing.assert_array_equal(again.draft("TS_01:000002", "alice"), _mask(3))
        assert again.draft("TS_01:000002", "bob") is None
        again.add_mask("TS_01:000003", _mask(4), "alice")
        again.discard_draft("TS_01:000002", "alice")
        assert again.draft("TS_01:000002", "alice") is None
    conn = sqlite3.connect(tmp_path / "labels.sqlite")
    conn.execute("UPDATE masks SET sha256 = 'x'")
    conn.commit()
    conn.close()
    damaged = LabelStore(tmp_path / "labels.sqlite")
    with pytest.raises(DamagedStoreError, match="does not match its sha256"):
        damaged.current_mask("TS_01:000003")
    damaged.close()


def _masking_child(path: Path, write_fd: int, start: int) -> None:  # pragma: no cover
    try:
        store = LabelStore(path, check_filesystem=False)
        for i in range(start, start + 10_000):
            cid = f"TS_01:{i % 8:06d}"
            store.save_draft(cid, _mask(i + 1), f"child-{i}")
            label_id = store.add_mask(cid, _mask(i), f"child-{i}")
            os.write(write_fd, f"{label_id} {i}\n".encode())
    finally:
        os._exit(0)


def test_kill_9_during_commits_loses_no_committed_mask(tmp_path: Path) -> None:
    _store(tmp_path).close()
    path = tmp_path / "labels.sqlite"
    rng = np.random.default_rng(5)
    confirmed: dict[int, int] = {}
    start = 0
    for _ in range(6):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            _masking_child(path, write_fd, start)
        os.close(write_fd)
        stop_after = int(rng.integers(1, 15))
        buffer = b""
        with os.fdopen(read_fd, "rb", buffering=0) as reader:
            while buffer.count(b"\n") < stop_after:
                chunk = reader.read(4096)
                if not chunk:
                    break
                buffer += chunk
            os.kill(pid, signal.SIGKILL)  # mid-stream: inside another draft or commit
            os.waitpid(pid, 0)
            buffer += reader.read()
        for line in buffer.decode().splitlines():
            label_id, i = (int(v) for v in line.split())
            confirmed[label_id] = i
        start += 10_000
    with LabelStore(path, check_filesystem=False) as store:
        assert store.integrity_check() == ["ok"]
        stored = {m.label_id: m for cid in {f"TS_01:{k:06d}" for k in range(8)}
                  for m in store.mask_history(cid)}  # fmt: skip
        for label_id, i in confirmed.items():  # every reported commit, intact
            np.testing.assert_array_equal(stored[label_id].mask, _mask(i))
        # a mask row never exists without its label row, nor a mask label without its mask
        history = store.label_history()
        assert set(history["label_id"]) == set(stored)


def test_masks_export_as_mrc_label_volumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    write_mrc(tmp_path / "TS_01.mrc", np.zeros((40, 64, 64), np.float32), 10.0)
    project = Project.init(tmp_path / "proj", CLASSES, box=16)
    project.add_tomogram(tmp_path / "TS_01.mrc", "TS_01")
    project.labels.add_candidates(
        pd.DataFrame({"candidate_id": ["TS_01:000000"], "tomo_id": ["TS_01"], "z": [20.0],
                      "y": [24.0], "x": [30.0]}), source="test",
    )  # fmt: skip
    root = str(project.root)
    assert run(["labels", "export", root, "--format", "masks", "--out", str(tmp_path / "m")]) == 2
    assert "no masks to export yet" in capsys.readouterr().err
    project.labels.add_mask("TS_01:000000", _mask(7), "alice", source="painted")
    project.close()
    assert run(["labels", "export", root, "--format", "masks", "--out", str(tmp_path / "m")]) == 0
    with mrcfile.open(tmp_path / "m" / "TS_01_000000.mrc") as mrc:
        np.testing.assert_array_equal(np.asarray(mrc.data), _mask(7))
        assert float(mrc.voxel_size.x) == pytest.approx(10.0)
    index = pd.read_csv(tmp_path / "m" / "masks.csv")
    assert index[["candidate_id", "file", "source", "annotator"]].values.tolist() == [
        ["TS_01:000000", "TS_01_000000.mrc", "painted", "alice"]
    ]
    assert index[["corner_z", "corner_y", "corner_x"]].values.tolist() == [[12, 16, 22]]
    # a second export refuses to overwrite unless told
    assert run(["labels", "export", root, "--format", "masks", "--out", str(tmp_path / "m")]) == 2


def test_a_version_3_store_keeps_its_masks_and_can_hold_restored_ones(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_mask("TS_01:000001", _mask(1), "alice", source="accepted")
    store.close()
    conn = sqlite3.connect(store.path)  # as cryoal wrote it before masks could be restored
    old_check = "CHECK (source IN ('painted', 'corrected', 'accepted'))"
    conn.executescript(
        "CREATE TABLE masks_v3 (label_id INTEGER PRIMARY KEY REFERENCES labels (label_id), "
        "nz INTEGER NOT NULL, ny INTEGER NOT NULL, nx INTEGER NOT NULL, data BLOB NOT NULL, "
        f"sha256 TEXT NOT NULL, source TEXT NOT NULL {old_check}, voxels_changed INTEGER, "
        "slices_touched INTEGER, seconds REAL); INSERT INTO masks_v3 SELECT * FROM masks; "
        "DROP TABLE masks; ALTER TABLE masks_v3 RENAME TO masks; PRAGMA user_version = 3;"
    )
    conn.close()
    with LabelStore(store.path) as upgraded:
        kept = upgraded.current_mask("TS_01:000001")
        np.testing.assert_array_equal(kept.mask, _mask(1))
        assert kept.source == "accepted"
        table = pd.DataFrame([{
            "label_id": 99, "candidate_id": "TS_01:000002", "kind": "mask", "class_id": None,
            "class_name": None, "annotator": "bob", "round": 1, "model_version": "m1",
            "created_at": "2026-12-06T00:00:00+00:00",
        }])  # fmt: skip
        upgraded.restore_labels(table, "snapshot.csv", masks={"TS_01:000002": _mask(2)})
        restored = upgraded.current_mask("TS_01:000002")
        np.testing.assert_array_equal(restored.mask, _mask(2))
        assert (restored.source, restored.voxels_changed) == ("restored", None)
        # a person's commit cannot claim to be restored; a mask row needs its mask
        with pytest.raises(ValueError, match="mask source 'restored'"):
            upgraded.add_mask("TS_01:000003", _mask(3), "carol", source="restored")
        with pytest.raises(ValueError, match="has no mask beside it"):
            upgraded.restore_labels(table.assign(label_id=100), "snapshot.csv", masks={})
