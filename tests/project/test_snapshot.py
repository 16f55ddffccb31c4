"""Snapshots: immutable, hashed, verified on every read, numbered by round."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from cryoal.project.labels import LabelStore
from cryoal.project.layout import HASH_NAME, SNAPSHOT_NAME
from cryoal.project.snapshot import newest_snapshot, read_snapshot, verify_snapshot, write_snapshot


@pytest.fixture
def store(tmp_path: Path) -> LabelStore:
    s = LabelStore.create(tmp_path / "labels.sqlite", ["ribosome", "proteasome"])
    s.add_candidates(
        pd.DataFrame(
            {"candidate_id": [f"TS_01:{i:06d}" for i in range(6)], "tomo_id": "TS_01",
             "z": [1.5, 2, 3, 4, 5, 6], "y": 10.0, "x": 20.25}
        ),
        source="test",
    )  # fmt: skip
    s.add_label("TS_01:000000", "ribosome", "alice")
    s.add_label("TS_01:000001", "proteasome", "alice")
    s.add_label("TS_01:000002", "not-a-particle", "bob")
    yield s
    s.close()


def test_snapshot_holds_current_labels_and_round_trips(store: LabelStore, tmp_path: Path) -> None:
    snap = write_snapshot(store, tmp_path)
    assert snap.round == 1 and snap.directory == tmp_path / "rounds" / "001"
    table = read_snapshot(snap.directory)
    live = store.current_labels()

    def plain(df: pd.DataFrame) -> list[list]:
        return df.astype(object).where(df.notna(), None).values.tolist()

    assert list(table.columns) == list(live.columns)
    assert plain(table) == plain(live)
    assert table.loc[table["kind"] == "not-a-particle", "class_id"].isna().all()
    assert table["class_name"].tolist()[:2] == ["ribosome", "proteasome"]


def test_snapshot_hash_matches_and_never_changes(store: LabelStore, tmp_path: Path) -> None:
    snap = write_snapshot(store, tmp_path)
    csv_bytes = (snap.directory / SNAPSHOT_NAME).read_bytes()
    assert hashlib.sha256(csv_bytes).hexdigest() == snap.sha256
    # sha256sum -c understands the hash file
    result = subprocess.run(["sha256sum", "-c", HASH_NAME], cwd=snap.directory, capture_output=True)
    assert result.returncode == 0
    # later labels and later snapshots leave the first snapshot byte-identical
    store.add_label("TS_01:000003", "ribosome", "carol")
    store.add_label("TS_01:000000", "proteasome", "carol")
    second = write_snapshot(store, tmp_path)
    assert second.round == 2 and second.sha256 != snap.sha256
    assert (snap.directory / SNAPSHOT_NAME).read_bytes() == csv_bytes
    assert verify_snapshot(snap.directory) == snap.sha256
    assert newest_snapshot(tmp_path).round == 2
    mode = (snap.directory / SNAPSHOT_NAME).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_tampered_or_incomplete_snapshot_is_refused(store: LabelStore, tmp_path: Path) -> None:
    snap = write_snapshot(store, tmp_path)
    path = snap.directory / SNAPSHOT_NAME
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace("ribosome", "proteasome"))
    with pytest.raises(ValueError, match="content changed after it was written"):
        read_snapshot(snap.directory)
    (snap.directory / HASH_NAME).chmod(0o644)
    (snap.directory / HASH_NAME).unlink()
    with pytest.raises(ValueError, match="write was interrupted"):
        read_snapshot(snap.directory)


def test_snapshot_round_follows_suggestion_rounds(store: LabelStore, tmp_path: Path) -> None:
    store.write_suggestions(0, ["TS_01:000004"], None, "random")
    (tmp_path / "rounds" / "000").mkdir(parents=True)  # as 'suggest' makes for round 0
    assert write_snapshot(store, tmp_path).round == 1
    store.write_suggestions(1, ["TS_01:000005"], [1.0], "kt", model_version="m1")
    store.write_suggestions(2, ["TS_01:000003"], [1.0], "kt", model_version="m2")
    assert write_snapshot(store, tmp_path).round == 3
