"""The live label store: API behaviour, provenance, and crash / concurrency reliability."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.project import labels as labels_module
from cryoal.project.fscheck import filesystem_type, is_network_filesystem
from cryoal.project.labels import LabelStore
from cryoal.project.labels import connection as connection_module

CLASSES = ["ribosome", "proteasome", "membrane"]


def _candidates(n: int, tomo: str = "TS_01") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    zyx = rng.uniform(0, 100, size=(n, 3))
    return pd.DataFrame(
        {
            "candidate_id": [f"{tomo}:{i:06d}" for i in range(n)],
            "tomo_id": tomo,
            "z": zyx[:, 0],
            "y": zyx[:, 1],
            "x": zyx[:, 2],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> LabelStore:
    s = LabelStore.create(tmp_path / "labels.sqlite", CLASSES)
    s.add_candidates(_candidates(20), source="test")
    yield s
    s.close()


def test_store_is_wal_and_versioned(store: LabelStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == labels_module.SCHEMA_VERSION
    conn.close()


def _downgrade(path: Path, version: int) -> None:
    """Make a store look as an older cryoal wrote it: version 2 had no candidate edits
    (its current labels joined every candidate) and no masks, version 1 no label
    provenance either."""
    from cryoal.project.labels import schema

    conn = sqlite3.connect(path)
    for statement in ("DROP TABLE masks", "DROP TABLE mask_drafts",
                      "DROP VIEW current_labels", "DROP VIEW live_candidates",
                      "DROP TABLE candidate_edits", "ALTER TABLE candidates DROP COLUMN deleted",
                      schema._CURRENT_LABELS.replace("live_candidates", "candidates")):  # fmt: skip
        conn.execute(statement)
    if version == 1:
        conn.execute("ALTER TABLE labels DROP COLUMN undoes")
        conn.execute("ALTER TABLE labels DROP COLUMN source")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_a_version_1_store_is_upgraded_on_open_and_keeps_every_label(store: LabelStore) -> None:
    store.add_label("TS_01:000001", "ribosome", "alice")
    store.add_label("TS_01:000002", "unsure", "bob")
    before = store.current_labels()
    store.close()
    _downgrade(store.path, 1)  # as cryoal wrote it before labels had a provenance
    with LabelStore(store.path) as upgraded:
        pd.testing.assert_frame_equal(upgraded.current_labels(), before)
        assert upgraded.label_history()["source"].tolist() == ["decision", "decision"]
        row = upgraded.add_label("TS_01:000003", "proteasome", "carol", source="confirmed")
        assert row.source == "confirmed"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == labels_module.SCHEMA_VERSION
    conn.close()
    with LabelStore(store.path) as again, pytest.raises(ValueError, match="label source 'guess'"):
        again.add_label("TS_01:000004", "ribosome", "dave", source="guess")


def test_a_version_4_store_finds_one_candidates_label_without_reading_the_history(
    store: LabelStore,
) -> None:
    """Version 5 redefines the current-labels view (the same rows): one candidate's label
    is an index lookup, not a GROUP BY over every label ever stored."""
    for i in range(5):
        store.add_label(f"TS_01:{i:06d}", "ribosome", "alice")
    store.add_label("TS_01:000001", "unsure", "bob")
    store.clear_label("TS_01:000002", "bob")
    before = store.current_labels()
    store.close()
    conn = sqlite3.connect(store.path)  # the view as version 4 defined it
    conn.executescript(
        "DROP VIEW current_labels; CREATE VIEW current_labels AS SELECT l.label_id, "
        "l.candidate_id, c.tomo_id, c.z, c.y, c.x, l.kind, l.class_id, k.name AS class_name, "
        "l.annotator, l.round, l.model_version, l.created_at FROM labels AS l JOIN (SELECT "
        "candidate_id, MAX(label_id) AS label_id FROM labels GROUP BY candidate_id) AS newest "
        "ON newest.label_id = l.label_id JOIN live_candidates AS c ON c.candidate_id = "
        "l.candidate_id LEFT JOIN classes AS k ON k.class_id = l.class_id WHERE l.kind != "
        "'cleared'; PRAGMA user_version = 4;"
    )
    conn.close()
    with LabelStore(store.path) as upgraded:
        pd.testing.assert_frame_equal(upgraded.current_labels(), before)
        assert upgraded.current_label("TS_01:000001").kind == "unsure"
        assert upgraded.current_label("TS_01:000002") is None
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == labels_module.SCHEMA_VERSION
    plan = " | ".join(
        row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM current_labels WHERE candidate_id = ?", ("x",)
        )
    )  # fmt: skip
    conn.close()
    assert "SCAN" not in plan, plan  # only index searches


def test_newest_label_wins_and_history_is_kept(store: LabelStore) -> None:
    store.add_label("TS_01:000001", "ribosome", "alice")
    store.add_label("TS_01:000001", "unsure", "bob")
    store.add_label("TS_01:000001", 1, "carol")  # class id works too
    current = store.current_label("TS_01:000001")
    assert (current.kind, current.class_name, current.annotator) == ("class", "proteasome", "carol")
    history = store.label_history("TS_01:000001")
    assert history["annotator"].tolist() == ["alice", "bob", "carol"]
    store.clear_label("TS_01:000001", "carol")
    assert store.current_label("TS_01:000001") is None
    assert len(store.label_history("TS_01:000001")) == 4


def test_counts_and_special_labels(store: LabelStore) -> None:
    store.add_label("TS_01:000000", "ribosome", "a")
    store.add_label("TS_01:000002", "ribosome", "a")
    store.add_label("TS_01:000003", "not-a-particle", "a")
    store.add_label("TS_01:000004", "unsure", "a")
    counts = store.counts()
    assert counts["ribosome"] == 2 and counts["proteasome"] == 0
    assert counts["not-a-particle"] == 1 and counts["unsure"] == 1
    assert counts["unlabelled"] == 16 and counts["candidates"] == 20
    only_classes = store.current_labels(include_special=False)
    assert set(only_classes["kind"]) == {"class"}
    assert len(store.current_labels()) == 4
    assert "TS_01:000003" not in store.unlabelled_ids()


def test_label_counts_per_tomogram_follow_the_newest_label(store: LabelStore) -> None:
    store.add_candidates(_candidates(3, tomo="TS_02"), source="test")
    store.add_label("TS_01:000000", "ribosome", "a")
    store.add_label("TS_01:000001", "ribosome", "a")
    store.add_label("TS_01:000001", "membrane", "b")  # relabelled: counts once, as membrane
    store.add_label("TS_01:000002", "unsure", "a")
    store.add_label("TS_01:000003", "proteasome", "a")
    store.clear_label("TS_01:000003", "a")  # cleared: not counted
    store.add_label("TS_02:000000", "ribosome", "a")
    store.add_label("TS_02:000001", "not-a-particle", "a")
    assert sorted(store.count_labels()) == [
        ("membrane", "TS_01", 1), ("not-a-particle", "TS_02", 1), ("ribosome", "TS_01", 1),
        ("ribosome", "TS_02", 1), ("unsure", "TS_01", 1),
    ]  # fmt: skip


def test_provenance_comes_from_the_suggestion_round(store: LabelStore) -> None:
    store.write_suggestions(0, ["TS_01:000005", "TS_01:000006"], None, "random", seed=1)
    store.write_suggestions(
        1, ["TS_01:000007", "TS_01:000006"], [0.9, 0.5], "kt", model_version="round-001-abc"
    )
    a = store.add_label("TS_01:000005", "membrane", "alice")
    b = store.add_label("TS_01:000006", "membrane", "alice")
    c = store.add_label("TS_01:000008", "membrane", "alice")
    assert (a.round, a.model_version) == (0, None)
    assert (b.round, b.model_version) == (1, "round-001-abc")  # newest round that asked
    assert c.round is None
    assert a.created_at < b.created_at < c.created_at


def test_queue_skips_labelled_and_keeps_rank(store: LabelStore) -> None:
    ids = ["TS_01:000009", "TS_01:000003", "TS_01:000011"]
    store.write_suggestions(0, ids, [3.0, 2.0, 1.0], "entropy")
    assert store.next_suggestion() == "TS_01:000009"
    store.add_label("TS_01:000009", "ribosome", "a")
    assert store.queue()["candidate_id"].tolist() == ids[1:]
    assert len(store.queue(include_labelled=True)) == 3
    progress = store.round_progress()
    assert progress[["suggested", "answered", "labels"]].iloc[0].tolist() == [3, 1, 1]


def test_round_cannot_be_written_twice_without_replace(store: LabelStore) -> None:
    store.write_suggestions(0, ["TS_01:000001"], None, "random")
    with pytest.raises(ValueError, match="already has suggestions"):
        store.write_suggestions(0, ["TS_01:000002"], None, "random")
    store.write_suggestions(0, ["TS_01:000002"], None, "random", replace=True)
    assert store.queue(0)["candidate_id"].tolist() == ["TS_01:000002"]


def test_bad_input_is_rejected_with_the_fix(store: LabelStore) -> None:
    with pytest.raises(ValueError, match="unknown class 'ribosom'.*ribosome"):
        store.add_label("TS_01:000001", "ribosom", "a")
    with pytest.raises(ValueError, match="unknown class 7"):
        store.add_label("TS_01:000001", 7, "a")
    with pytest.raises(ValueError, match="unknown candidate 'TS_09:000001'"):
        store.add_label("TS_09:000001", "ribosome", "a")
    with pytest.raises(ValueError, match="annotator"):
        store.add_label("TS_01:000001", "ribosome", " ")
    with pytest.raises(ValueError, match="already exists"):
        store.add_candidates(_candidates(1), source="again")
    # a batch with one bad id writes nothing
    with pytest.raises(ValueError, match="unknown candidate 'nope'"):
        store.add_labels(["TS_01:000001", "nope"], ["ribosome", "ribosome"], "a")
    assert store.current_labels().empty


def test_create_refuses_an_existing_store(store: LabelStore) -> None:
    with pytest.raises(FileExistsError, match="already exists"):
        LabelStore.create(store.path, CLASSES)


def test_open_rejects_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.close()
    with pytest.raises(ValueError, match="not a cryoal label store"):
        LabelStore(path)


def test_network_filesystem_is_detected_and_warned(tmp_path: Path, monkeypatch) -> None:
    mounts = (
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /mnt/lab nfs4 rw 0 0\n"
        "user@host:/x /mnt/my\\040data fuse.sshfs rw 0 0\n"
    )
    assert filesystem_type("/mnt/lab/proj/labels.sqlite", mounts) == "nfs4"
    assert filesystem_type("/mnt/my data/proj", mounts) == "fuse.sshfs"
    assert filesystem_type("/home/u/proj", mounts) == "ext4"
    assert is_network_filesystem("lustre") and is_network_filesystem("fuse.sshfs")
    assert not is_network_filesystem("ext4") and not is_network_filesystem("xfs")

    path = tmp_path / "labels.sqlite"
    LabelStore.create(path, CLASSES).close()
    monkeypatch.setattr(connection_module, "filesystem_type", lambda p: "nfs4")
    with pytest.warns(UserWarning, match="nfs4 filesystem.*local disk"):
        LabelStore(path).close()
    monkeypatch.setattr(connection_module, "filesystem_type", lambda p: "ext4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LabelStore(path).close()


# -- reliability -------------------------------------------------------------------------
def _labelling_child(path: Path, write_fd: int, start: int, n: int) -> None:
    """Child process: label candidates one by one; report each id after its commit returns."""
    try:
        s = LabelStore(path, check_filesystem=False)
        for i in range(start, start + n):
            cid, name, who = f"TS_01:{i % 400:06d}", CLASSES[i % 3], f"child-{i}"
            s.add_label(cid, name, who)
            os.write(write_fd, f"{cid} {name} {who}\n".encode())
    finally:
        os._exit(0)


def test_kill_9_mid_stream_loses_no_committed_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    s = LabelStore.create(path, CLASSES)
    s.add_candidates(_candidates(400), source="test")
    s.close()
    rng = np.random.default_rng(7)
    confirmed: set[tuple[str, str, str]] = set()
    start = 0
    for _ in range(20):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            _labelling_child(path, write_fd, start, 10_000)
        os.close(write_fd)
        stop_after = int(rng.integers(1, 40))
        buffer = b""
        with os.fdopen(read_fd, "rb", buffering=0) as reader:
            while buffer.count(b"\n") < stop_after:
                chunk = reader.read(4096)
                if not chunk:
                    break
                buffer += chunk
            os.kill(pid, signal.SIGKILL)  # mid-stream: the child is inside another commit
            os.waitpid(pid, 0)
            buffer += reader.read()
        lines = [ln for ln in buffer.decode().splitlines() if ln]
        assert len(lines) >= stop_after
        confirmed.update(tuple(line.split()) for line in lines)
        start += 10_000  # every label written by any child has its own annotator name
    s = LabelStore(path, check_filesystem=False)
    assert s.integrity_check() == ["ok"]
    history = s.label_history()
    stored = set(
        zip(history["candidate_id"], history["class_name"], history["annotator"], strict=True)
    )
    assert confirmed <= stored
    # at most one unconfirmed label per killed child (committed, not yet reported)
    assert len(stored - confirmed) <= 20
    s.close()


def _writer_child(path: Path, seconds: float, tag: str, write_fd: int) -> None:
    locked = 0
    try:
        s = LabelStore(path, busy_timeout_s=30.0, check_filesystem=False)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            try:
                s.add_label(f"TS_01:{i % 200:06d}", CLASSES[i % 3], tag)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    locked += 1
                else:
                    raise
            i += 1
        os.write(write_fd, f"{i} {locked}\n".encode())
    finally:
        os._exit(0)


def test_writers_and_a_reader_never_see_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    s = LabelStore.create(path, CLASSES)
    s.add_candidates(_candidates(200), source="test")
    s.close()
    seconds = 2.5
    children = []
    for tag in ("writer-a", "writer-b"):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            _writer_child(path, seconds, tag, write_fd)
        os.close(write_fd)
        children.append((pid, read_fd))
    reader = LabelStore(path, check_filesystem=False)
    reads, reader_locked, seen = 0, 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            seen.append(len(reader.label_history()))
            reader.counts()
            reader.current_labels()
            reads += 1
        except sqlite3.OperationalError:
            reader_locked += 1
    writes, writer_locked = 0, 0
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as fh:
            done, locked = map(int, fh.read().split())
        os.waitpid(pid, 0)
        writes += done
        writer_locked += locked
    assert reader_locked == 0 and writer_locked == 0
    assert reads > 5 and writes > 20
    assert seen == sorted(seen)  # the reader never sees labels disappear
    assert len(reader.label_history()) == writes
    assert reader.integrity_check() == ["ok"]
    reader.close()


def test_filesystem_type_uses_the_system_mount_table(tmp_path) -> None:
    """psutil's mount table (macOS and Linux alike) gives the type of tmp_path's mount."""
    import psutil

    fs = filesystem_type(tmp_path)
    parts = {p.mountpoint: p.fstype for p in psutil.disk_partitions(all=True)}
    best = max((m for m in parts if tmp_path == Path(m) or Path(m) in tmp_path.resolve().parents),
               key=lambda m: len(Path(m).parts))  # fmt: skip
    assert fs == parts[best]
    assert is_network_filesystem("smbfs") and is_network_filesystem("afpfs")  # macOS names


def test_a_version_2_store_gains_candidate_edits_on_open(store: LabelStore) -> None:
    store.add_label("TS_01:000001", "ribosome", "alice")
    before = store.current_labels()
    store.close()
    _downgrade(store.path, 2)
    with LabelStore(store.path) as upgraded:
        pd.testing.assert_frame_equal(upgraded.current_labels(), before)
        assert upgraded.delete_candidates(["TS_01:000001"], "bob") == 1
        assert upgraded.current_labels().empty
        # masks can be stored, and label ids go on from where they were
        new_id = upgraded.add_mask("TS_01:000002", np.zeros((4, 4, 4), np.uint8), "carol")
        assert new_id > int(before["label_id"].max())
        assert upgraded.current_mask("TS_01:000002").annotator == "carol"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == labels_module.SCHEMA_VERSION
    conn.close()


def test_deleted_candidates_leave_pool_queue_and_labels_and_come_back(store: LabelStore) -> None:
    store.write_suggestions(0, ["TS_01:000001", "TS_01:000002", "TS_01:000003"], None, "random")
    store.add_label("TS_01:000001", "ribosome", "alice")
    assert store.delete_candidates(["TS_01:000001", "TS_01:000002"], "bob") == 2
    assert store.delete_candidates(["TS_01:000001"], "bob") == 0  # already deleted
    assert "TS_01:000001" not in set(store.candidates()["candidate_id"])
    assert store.n_candidates() == 18 and store.counts()["candidates"] == 18
    assert store.current_labels().empty and "TS_01:000002" not in store.unlabelled_ids()
    assert store.queue()["candidate_id"].tolist() == ["TS_01:000003"]
    with pytest.raises(ValueError, match="was deleted.*restore-candidates"):
        store.add_label("TS_01:000002", "ribosome", "alice")
    with pytest.raises(ValueError, match="unknown candidate 'TS_01:999999'"):
        store.delete_candidates(["TS_01:000003", "TS_01:999999"], "bob")  # all or none
    assert store.has_candidate("TS_01:000003")
    assert store.restore_candidates(["TS_01:000001"], "carol") == 1
    assert store.current_label("TS_01:000001").class_name == "ribosome"  # its label is back
    edits = store.candidate_edits()
    assert edits[["candidate_id", "action", "annotator"]].values.tolist() == [
        ["TS_01:000001", "deleted", "bob"], ["TS_01:000002", "deleted", "bob"],
        ["TS_01:000001", "restored", "carol"],
    ]  # fmt: skip
    assert store.deleted_ids() == ["TS_01:000002"]


def test_candidates_added_by_hand_get_new_ids_and_moves_keep_where_they_were(
    store: LabelStore,
) -> None:
    store.write_suggestions(0, ["TS_01:000001"], [0.5], "random")
    store.delete_candidates(["TS_01:000019"], "bob")  # the newest id is never given again
    cid = store.add_candidate_by_hand("TS_01", (5.0, 6.0, 7.0), "alice", round=0)
    assert cid == "TS_01:000020"
    assert store.queue()[["candidate_id", "strategy"]].values.tolist() == [
        ["TS_01:000001", "random"], [cid, "added"]
    ]  # fmt: skip
    row = store.candidates().set_index("candidate_id").loc[cid]
    assert row["source"] == "manual:alice" and (row["z"], row["y"], row["x"]) == (5.0, 6.0, 7.0)
    with pytest.raises(ValueError, match="already at 1.0 voxels.*TS_01:000020"):
        store.add_candidate_by_hand("TS_01", (5.0, 6.0, 8.0), "bob", min_distance_px=3.0)
    store.add_label(cid, "proteasome", "alice")
    store.move_candidate(cid, (5.0, 9.0, 7.0), "bob")
    assert store.current_label(cid).class_name == "proteasome"  # the label moves with it
    moved = store.candidate_edits().iloc[-1]
    assert (moved["action"], moved["annotator"]) == ("moved", "bob")
    assert (moved["from_y"], moved["y"]) == (6.0, 9.0)
    assert store.current_labels().set_index("candidate_id").loc[cid, "y"] == 9.0
    with pytest.raises(ValueError, match="three finite numbers"):
        store.move_candidate(cid, (1.0, float("nan"), 2.0), "bob")
