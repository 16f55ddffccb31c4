"""The frozen candidate pool written beside each snapshot (what cluster scoring reads)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from cryoal.project.labels import LabelStore
from cryoal.project.layout import POOL_NAME
from cryoal.project.pool import cluster_round, read_frozen_pool, read_pool
from cryoal.project.snapshot import write_snapshot


@pytest.fixture
def store(tmp_path: Path) -> LabelStore:
    s = LabelStore.create(tmp_path / "labels.sqlite", ["ribosome", "proteasome"])
    s.add_candidates(
        pd.DataFrame(
            {"candidate_id": [f"TS_01:{i:06d}" for i in range(5)], "tomo_id": "TS_01",
             "z": [1.5, 2, 3.1, 4, 0.1 + 0.2], "y": 10.0, "x": 20.25,
             "prior_class": ["ribosome", None, None, "proteasome", None]}
        ),
        source="picks.star",
    )  # fmt: skip
    s.add_label("TS_01:000000", "ribosome", "alice")
    s.add_label("TS_01:000002", "unsure", "bob")
    yield s
    s.close()


def test_every_snapshot_freezes_the_candidates_and_the_unlabelled_pool(
    store: LabelStore, tmp_path: Path
) -> None:
    snap = write_snapshot(store, tmp_path)
    frozen = read_pool(snap.directory)
    pd.testing.assert_frame_equal(frozen, store.candidates(), check_exact=True)
    assert not os.stat(snap.directory / POOL_NAME).st_mode & stat.S_IWUSR  # read-only
    # labels made after the snapshot do not change the round's pool
    store.add_label("TS_01:000003", "proteasome", "alice")
    candidates, labelled = read_frozen_pool(tmp_path, snap.round)
    assert labelled == {"TS_01:000000", "TS_01:000002"}
    assert len(candidates) == 5


def test_a_changed_pool_is_refused_and_a_missing_one_names_the_fix(
    store: LabelStore, tmp_path: Path
) -> None:
    snap = write_snapshot(store, tmp_path)
    path = snap.directory / POOL_NAME
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace("20.25", "20.5"))
    with pytest.raises(ValueError, match="content does not match candidates.csv.sha256"):
        read_pool(snap.directory)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="run 'cryoal suggest DIR' on the machine"):
        read_frozen_pool(tmp_path, snap.round)


def test_the_cluster_round_is_the_untrained_snapshot_with_its_frozen_table(
    store: LabelStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="no untrained snapshot; take one where labels.sqlite"):
        cluster_round(tmp_path, train=True)
    snap = write_snapshot(store, tmp_path)
    assert cluster_round(tmp_path, train=True) == snap.round
    with pytest.raises(ValueError, match="no trained round to score"):
        cluster_round(tmp_path, train=False)
    (snap.directory / POOL_NAME).unlink()  # a snapshot taken before frozen tables existed
    with pytest.raises(ValueError, match="no candidates.csv .its snapshot predates"):
        cluster_round(tmp_path, train=True)


def test_a_folder_left_by_an_interrupted_snapshot_is_reused(
    store: LabelStore, tmp_path: Path
) -> None:
    from cryoal.project.pool import write_pool

    directory = tmp_path / "rounds" / "001"
    directory.mkdir(parents=True)
    write_pool(store.candidates().iloc[:2], directory)  # the crash came before snapshot.csv
    snap = write_snapshot(store, tmp_path)
    assert snap.directory == directory
    assert len(read_pool(directory)) == 5
