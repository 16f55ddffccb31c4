"""Candidates from picks: ids are allocated in the transaction that inserts them."""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pandas as pd
import pytest

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
