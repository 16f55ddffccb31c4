"""Candidates from picks: ids are allocated in the transaction that inserts them."""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pandas as pd
import pytest

from cryoal.io.store import SubtomogramStore
from cryoal.project.project import Project


def _write_picks(path: Path, xyz: list[tuple[int, int, int]]) -> Path:
    table = pd.DataFrame(xyz, columns=["x", "y", "z"]).assign(tomo_id="TS_01")
    table.to_csv(path, index=False)
    return path


def _import_together(barrier: Barrier, args: list[str]) -> None:
    """A process that runs ``cryoal ARGS`` once all of them are ready; exits with its code."""
    from cryoal.cli.main import run

    barrier.wait(timeout=120)
    sys.exit(run(args))


def test_concurrent_imports_all_succeed_with_distinct_gap_free_ids(
    make_label_project, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_label_project(tmp_path, queue=False)  # TS_01 (32x96x96) with 6 candidates
    xs = range(3, 91, 4)  # 22 columns, 4 voxels apart
    own = [
        _write_picks(tmp_path / f"own{k}.csv", [(x, 8 + 22 * k, z) for z in (5, 27) for x in xs])
        for k in range(4)
    ]
    # the same picks in every process: whichever imports them first adds them, once
    shared = _write_picks(tmp_path / "shared.csv", [(x, 90, 16) for x in xs])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(
            target=_import_together,
            args=(
                barrier,
                [
                    "project",
                    "import-picks",
                    str(root),
                    str(path),
                    str(shared),
                    "--coords-unit",
                    "pixel",
                ],
            ),
        )  # fmt: skip
        for path in own
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    err = capfd.readouterr().err
    assert [p.exitcode for p in procs] == [0, 0, 0, 0], err
    assert "cryoal: error" not in err
    with Project.open(root) as project:
        table = project.labels.candidates()
    assert len(table) == 6 + 4 * 44 + 22
    assert table["candidate_id"].tolist() == [f"TS_01:{i:06d}" for i in range(len(table))]
    assert (table["source"] == "picks:shared.csv").sum() == 22
    for k in range(4):
        assert (table["source"] == f"picks:own{k}.csv").sum() == 44
    # candidates.csv, rewritten by each import, ends with every candidate
    view = pd.read_csv(root / "candidates.csv")
    assert view["candidate_id"].tolist() == table["candidate_id"].tolist()


def test_after_candidate_edits_the_cache_extracts_only_the_changed_candidates(
    tmp_path: Path, make_segment_project, monkeypatch
) -> None:
    import numpy as np

    from cryoal.project import extraction
    from cryoal.project.extraction import candidate_store, extract_project_store

    project = Project.open(make_segment_project(tmp_path, masked=False))
    extracted: list[list[str]] = []
    real = extraction.extract_project_store

    def counting(project, coords, out_h5, **kw):  # noqa: ANN001, ANN202
        extracted.append(coords["candidate_id"].tolist())
        return real(project, coords, out_h5, **kw)

    monkeypatch.setattr(extraction, "extract_project_store", counting)
    first = candidate_store(project)
    assert len(extracted[0]) == 8 and len(first.ids) == 8
    project.labels.move_candidate("TS_01:000001", (13.0, 17.0, 47.0), "alice")
    added = project.labels.add_candidate_by_hand("TS_01", (10.0, 30.0, 30.0), "alice")
    project.labels.delete_candidates(["TS_01:000002"], "alice")
    second = candidate_store(project)
    # only the moved and the added candidate were cut from the tomogram again
    assert sorted(extracted[1]) == sorted(["TS_01:000001", added])
    table = project.labels.candidates()
    assert sorted(second.ids) == sorted(table["candidate_id"])
    # every subtomogram, centre and tomogram id as a fresh extraction of the new table gives
    fresh = SubtomogramStore(extract_project_store(project, table, tmp_path / "fresh.h5"))
    for cid in table["candidate_id"]:
        i, j = second.index_of([cid])[0], fresh.index_of([cid])[0]
        np.testing.assert_array_equal(second.subtomograms([i])[0], fresh.subtomograms([j])[0])
        np.testing.assert_array_equal(second.centres_zyx[i], fresh.centres_zyx[j])
        assert second.tomo_ids[i] == fresh.tomo_ids[j] and second.labels[i] == -1
    assert len(list((project.root / "cache").glob("candidates-*.h5"))) == 1
    assert candidate_store(project).path == second.path and len(extracted) == 2  # cached
    project.close()


def test_a_cache_written_meanwhile_by_another_process_is_used(
    tmp_path: Path, make_segment_project, monkeypatch
) -> None:
    from cryoal.project import extraction
    from cryoal.project.extraction import candidate_store

    project = Project.open(make_segment_project(tmp_path, masked=False))
    real = extraction.extract_project_store

    def another_process_first(project, coords, out_h5, **kw):  # noqa: ANN001, ANN202
        real(project, coords, out_h5, **kw)  # the other process finishes first ...
        return real(project, coords, out_h5, **kw)  # ... so this one finds the file there

    monkeypatch.setattr(extraction, "extract_project_store", another_process_first)
    store = candidate_store(project)
    assert len(store.ids) == 8
    assert list((project.root / "cache").glob("candidates-*.h5")) == [store.path]
    project.close()
