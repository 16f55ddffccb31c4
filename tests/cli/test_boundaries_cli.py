"""Boundaries as a hostile user meets them (issue 14): a full disk, Ctrl-C and SIGTERM,
leftovers of killed runs, a damaged label store. Part of the bad-input corpus: every case
checks the one-line message, the exit code and that nothing is left behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.io.atomic import PARTIAL_MARKER, partial_name
from cryoal.io.mrc import write_mrc
from cryoal.project.labels import LabelStore

ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "cryoal", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: "), stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


def _tomogram(path: Path, shape=(48, 64, 64)) -> Path:
    rng = np.random.default_rng(0)
    return write_mrc(path, rng.standard_normal(shape).astype(np.float32), 10.0)


def _picks(path: Path, n: int, shape=(48, 64, 64)) -> Path:
    rng = np.random.default_rng(1)
    zyx = rng.uniform(8, np.array(shape) - 8, size=(n, 3))
    pd.DataFrame({"x_A": zyx[:, 2] * 10, "y_A": zyx[:, 1] * 10, "z_A": zyx[:, 0] * 10}).rename(
        columns={"x_A": "x", "y_A": "y", "z_A": "z"}
    ).to_csv(path, index=False)
    return path


# -- a full disk -----------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs (needs the right to mount; skipped otherwise)."""
    where = tmp_path / "small"
    where.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; return it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    return filler


def _check_disk_full(res: subprocess.CompletedProcess[str], named: Path) -> None:
    assert res.returncode == 2, res.stderr[-2000:]
    line = _one_error_line(res.stderr)
    assert f"{named}: no space left on device" in line, line


@pytest.mark.parametrize("workers", [1, 2])
def test_disk_full_simulate_subtomograms(small_disk: Path, workers: int) -> None:
    out = small_disk / "sim.h5"
    res = _cli("simulate", "subtomograms", out, "--classes", "2", "--per-class", "40",
               "--workers", workers)  # fmt: skip
    _check_disk_full(res, out)
    assert os.listdir(small_disk) == []


def test_disk_full_extract(small_disk: Path, tmp_path: Path) -> None:
    tomo = _tomogram(tmp_path / "TS_01.mrc")
    picks = _picks(tmp_path / "picks.csv", 300)
    out = small_disk / "s.h5"
    res = _cli("extract", tomo, picks, out, "--box", "16", "--coords-unit", "angstrom",
               "--no-progress")  # fmt: skip
    _check_disk_full(res, out)
    assert os.listdir(small_disk) == []


def test_disk_full_simulate_tomogram(small_disk: Path) -> None:
    out = small_disk / "sim"
    res = _cli("simulate", "tomogram", out, "--shape", "64", "96", "96", "--particles", "5")
    _check_disk_full(res, out)
    assert os.listdir(small_disk) == []


def test_disk_full_labels_add_and_import_keep_every_label(small_disk: Path, tmp_path: Path) -> None:
    proj = small_disk / "proj"
    assert run(["project", "init", str(proj), "--classes", "a,b"]) == 0
    with LabelStore(proj / "labels.sqlite") as store:
        ids = [f"TS_01:{i:06d}" for i in range(300)]
        store.add_candidates(
            pd.DataFrame({"candidate_id": ids, "tomo_id": "TS_01", "z": 1.0, "y": 2.0, "x": 3.0}),
            "test",
        )
        store.add_label(ids[0], "a", "me")
    before = [n for n in sorted(os.listdir(proj)) if not n.endswith(("-wal", "-shm"))]
    filler = _fill(small_disk)
    res = _cli("labels", "add", proj, ids[1], "b", "--annotator", "me")
    _check_disk_full(res, proj / "labels.sqlite")
    csv = tmp_path / "labels.csv"
    csv.write_text("candidate_id,label\n" + "".join(f"{i},a\n" for i in ids[2:]))
    res = _cli("labels", "import", proj, csv)
    _check_disk_full(res, proj / "labels.sqlite")
    filler.unlink()
    # SQLite's own -wal/-shm files may stay (they hold committed data only).
    assert [n for n in sorted(os.listdir(proj)) if not n.endswith(("-wal", "-shm"))] == before
    with LabelStore(proj / "labels.sqlite") as store:
        assert store.current_labels()["candidate_id"].tolist() == [ids[0]]
        assert store.integrity_check() == ["ok"]


# -- Ctrl-C and SIGTERM ----------------------------------------------------------------------
def _interrupt(argv: list[object], sig: int, folder: Path, wait_for: float = 4.0) -> tuple:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryoal", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # As a script's background job: bash starts those with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 120
    while not any(PARTIAL_MARKER in n for n in os.listdir(folder)):  # the work has begun
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, time.monotonic() - sent


LONG_JOBS = {
    "simulate subtomograms": lambda d: ["simulate", "subtomograms", d / "s.h5", "--classes",
                                        "2", "--per-class", "20000"],
    "simulate subtomograms, 2 workers": lambda d: ["simulate", "subtomograms", d / "s.h5",
                                                   "--classes", "2", "--per-class", "20000",
                                                   "--workers", "2"],
    "extract": lambda d: ["extract", d / "in" / "TS_01.mrc", d / "in" / "picks.csv", d / "s.h5",
                          "--box", "24", "--coords-unit", "angstrom", "--no-progress"],
}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("job", list(LONG_JOBS))
def test_signals_stop_long_commands_promptly_and_clean_up(
    tmp_path: Path, job: str, sig: int
) -> None:
    if job == "extract":
        (tmp_path / "in").mkdir()
        _tomogram(tmp_path / "in" / "TS_01.mrc", shape=(96, 128, 128))
        _picks(tmp_path / "in" / "picks.csv", 60000, shape=(96, 128, 128))
    code, err, took = _interrupt(LONG_JOBS[job](tmp_path), sig, tmp_path)
    assert code == 128 + sig, err[-2000:]
    assert took < 10, took
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    lines = err.strip().splitlines()
    assert lines[-1].startswith("cryoal: ") and name in lines[-1], err[-2000:]
    assert "Traceback" not in err
    assert sorted(n for n in os.listdir(tmp_path) if n != "in") == []


# -- leftovers of killed runs ----------------------------------------------------------------
def _fake_partial(final: Path, pid: int, size: int = 1000) -> Path:
    name = partial_name(final)
    head, _, tail = name.rpartition(f"-{os.getpid()}-")
    p = final.with_name(f"{head}-{pid}-{tail}")
    p.write_bytes(b"\0" * size)
    return p


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_later_run_removes_the_partials_of_killed_runs(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    stale = _fake_partial(out, _dead_pid())
    live = _fake_partial(out, os.getppid())  # a running process: never touched
    res = _cli("simulate", "subtomograms", out, "--classes", "2", "--per-class", "2")
    assert res.returncode == 0, res.stderr
    assert not stale.exists() and live.exists()
    assert out.is_file()


def test_cryoal_clean_lists_and_removes_leftovers(tmp_path: Path, capsys) -> None:
    (tmp_path / "sub").mkdir()
    stale = _fake_partial(tmp_path / "sub" / "s.h5", _dead_pid(), size=3000)
    stale_dir = tmp_path / partial_name(tmp_path / "sim")
    stale_dir = stale_dir.with_name(stale_dir.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    stale_dir.mkdir()
    (stale_dir / "tomogram.mrc").write_bytes(b"\0" * 100)
    live = _fake_partial(tmp_path / "t.h5", os.getppid())
    keep = tmp_path / "sub" / ".hidden"
    keep.write_text("not ours")

    assert run(["clean", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert str(stale) in out and str(stale_dir) in out and str(live) in out
    assert "running" in out
    assert stale.exists() and stale_dir.exists()

    assert run(["clean", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "removed 2" in out
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists() and keep.exists()


# -- a damaged label store -------------------------------------------------------------------
def _labelled_project(tmp_path: Path) -> tuple[Path, list[str]]:
    proj = tmp_path / "proj"
    assert run(["project", "init", str(proj), "--classes", "a,b"]) == 0
    ids = [f"TS_01:{i:06d}" for i in range(300)]
    with LabelStore(proj / "labels.sqlite") as store:
        store.add_candidates(
            pd.DataFrame({"candidate_id": ids, "tomo_id": "TS_01", "z": 1.0, "y": 2.0, "x": 3.0}),
            "test",
        )
        for cid in ids[:40]:
            store.add_label(cid, "a", "me")
    assert run(["project", "snapshot", str(proj)]) == 0
    conn = sqlite3.connect(proj / "labels.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return proj, ids


def _damage_header(path: Path) -> str:
    raw = bytearray(path.read_bytes())
    raw[:100] = b"x" * 100
    path.write_bytes(bytes(raw))
    return "file is not a database"


def _damage_page(path: Path) -> str:
    raw = bytearray(path.read_bytes())
    raw[4096:8192] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return "malformed"


def _damage_classes(path: Path) -> str:
    # Page 2 holds the classes table: zero its cells, as a torn write would.
    raw = bytearray(path.read_bytes())
    raw[4096 + 8 : 8192] = b"\0" * (4096 - 8)
    path.write_bytes(bytes(raw))
    return "damaged"


@pytest.mark.parametrize("damage", [_damage_header, _damage_page, _damage_classes])
@pytest.mark.parametrize("command", ["add", "status"])
def test_damaged_label_store_says_so_and_how_to_recover(
    tmp_path: Path, capsys, damage, command: str
) -> None:
    proj, ids = _labelled_project(tmp_path)
    db = proj / "labels.sqlite"
    detail = damage(db)
    before = db.read_bytes()
    capsys.readouterr()
    argv = ["labels", "add", str(proj), ids[50], "b"] if command == "add" else ["status", str(proj)]
    assert run(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{db}: the label store is damaged" in line and detail in line, line
    assert f'sqlite3 {db} "PRAGMA integrity_check"' in line
    assert str(proj / "rounds" / "001" / "snapshot.csv") in line
    assert f"mv {db} {db}.damaged, then 'cryoal project rebuild-labels {proj}'" in line
    assert "classes" not in line.split("(")[0]  # not misread as a change of classes
    assert db.read_bytes() == before  # the damaged file is left for recovery


# -- subtomogram stores from other tools -----------------------------------------------------
def _good_store(path: Path) -> Path:
    from cryoal.io.store import StoreWriter

    rng = np.random.default_rng(0)
    with StoreWriter(path, 8, 10.0, ["a", "b"]) as w:
        w.append(rng.standard_normal((12, 8, 8, 8)).astype(np.float32),
                 [f"s{i}" for i in range(12)], labels=[i % 2 for i in range(12)])  # fmt: skip
    return path


def _replace(f, name: str, data) -> None:
    del f[name]
    f.create_dataset(name, data=data)


STORE_CASES = {
    "int16 subtomograms": (
        lambda f: _replace(f, "subtomograms", np.zeros((12, 8, 8, 8), np.int16)),
        "subtomograms has dtype int16",
    ),
    "class names not JSON": (
        lambda f: f.attrs.__setitem__("class_names", "a,b"),
        "class_names = 'a,b' is not JSON",
    ),
    "class names not strings": (
        lambda f: f.attrs.__setitem__("class_names", "[1, 2]"),
        "must be a JSON list of strings",
    ),
    "label out of range": (
        lambda f: f["labels"].__setitem__(3, 7),
        "labels holds 7 (sample 's3'",
    ),
    "box attribute disagrees": (
        lambda f: f.attrs.__setitem__("box", 16),
        "boxes of (8, 8, 8) voxels but attribute box = 16",
    ),
    "voxel size 0": (lambda f: f.attrs.__setitem__("voxel_size_A", 0.0), "voxel_size_A = 0 Å"),
    "duplicate ids": (
        lambda f: f["ids"].__setitem__(5, "s4"),
        "ids holds 's4' more than once",
    ),
    "2-D images": (
        lambda f: _replace(f, "subtomograms", np.zeros((12, 8, 8), np.float32)),
        "subtomograms has shape (12, 8, 8)",
    ),
    "string labels": (
        lambda f: _replace(f, "labels", np.array([b"a"] * 12)),
        "labels has dtype |S1; it must hold integers",
    ),
    "NaN voxels": (
        lambda f: f["subtomograms"].__setitem__((6, 1, 2, 3), np.nan),
        "holds NaN/Inf in sample 's6' (row 6",
    ),
}


@pytest.mark.parametrize("case", list(STORE_CASES))
def test_foreign_store_is_refused_before_training(tmp_path: Path, capsys, case: str) -> None:
    import h5py

    store = _good_store(tmp_path / "other_tool.h5")
    change, expected = STORE_CASES[case]
    with h5py.File(store, "r+") as f:
        change(f)
    out = tmp_path / "run"
    capsys.readouterr()
    code = run(["train", str(store), "--out", str(out), "--epochs", "1", "--quiet"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert str(store) in line and expected in line, line
    assert not out.exists()  # no train.yaml, no run folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_tool.h5"]


def test_disk_full_train_output(small_disk: Path, tmp_path: Path) -> None:
    store = _good_store(tmp_path / "s.h5")
    out = small_disk / "run"
    res = _cli("train", store, "--out", out, "--epochs", "1", "--quiet")
    assert res.returncode == 2, res.stderr[-2000:]
    line = _one_error_line(res.stderr)
    assert "no space left on device" in line and str(out) in line, line
    leftovers = [p for p in small_disk.rglob("*") if PARTIAL_MARKER in p.name]
    assert leftovers == []


# -- more bad inputs of issue 14 through the CLI ---------------------------------------------
def _compressed_tomogram(d: Path) -> tuple[list[object], str]:
    import gzip

    tomo = _tomogram(d / "TS_01.mrc", shape=(24, 32, 32))
    packed = d / "TS_01.mrc.gz"
    packed.write_bytes(gzip.compress(tomo.read_bytes()))
    picks = _picks(d / "picks.csv", 5, shape=(24, 32, 32))
    argv = ["extract", packed, picks, d / "out" / "s.h5", "--box", "8", "--coords-unit",
            "angstrom", "--no-progress"]  # fmt: skip
    return (
        argv,
        f"{packed}: gzip-compressed MRC cannot be memory-mapped; decompress it with 'gunzip {packed}'",
    )


def _bad_axis_order(d: Path) -> tuple[list[object], str]:
    tomo = _tomogram(d / "TS_01.mrc", shape=(24, 32, 32))
    raw = bytearray(tomo.read_bytes())
    raw[64:76] = np.array([2, 2, 3], "<i4").tobytes()
    tomo.write_bytes(bytes(raw))
    return ["info", tomo], f"{tomo}: header axis order mapc, mapr, maps = (2, 2, 3)"


def _nan_box(d: Path) -> tuple[list[object], str]:
    vol = np.random.default_rng(0).standard_normal((24, 32, 32)).astype(np.float32)
    vol[12, 16, 16] = np.nan
    tomo = write_mrc(d / "TS_01.mrc", vol, 10.0)
    (d / "picks.csv").write_text("x,y,z\n160,160,120\n")
    argv = ["extract", tomo, d / "picks.csv", d / "out" / "s.h5", "--box", "8",
            "--coords-unit", "angstrom", "--no-progress"]  # fmt: skip
    return (
        argv,
        "candidate 'TS_01:000000' (1 in this batch) holds 1 NaN/Inf voxels, the first at tomogram zyx [12, 16, 16]",
    )


def _unreadable_template(d: Path) -> tuple[list[object], str]:
    folder = d / "templates"
    folder.mkdir()
    write_mrc(folder / "a.mrc", np.ones((8, 8, 8), np.float32), 10.0)
    (folder / "b.map.xz").write_bytes(b"\xfd7zXZ\x00")
    argv = ["simulate", "subtomograms", d / "out" / "s.h5", "--templates", folder,
            "--per-class", "2"]  # fmt: skip
    return argv, "'b.map.xz' looks like a map or model but cryoal cannot read it"


CLI_CASES = {
    "compressed tomogram": _compressed_tomogram,
    "invalid axis order": _bad_axis_order,
    "NaN inside a box": _nan_box,
    "unreadable template": _unreadable_template,
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_issue14_bad_inputs_give_one_line_and_no_output(tmp_path: Path, capsys, case: str) -> None:
    (tmp_path / "out").mkdir()
    argv, expected = CLI_CASES[case](tmp_path)
    capsys.readouterr()
    code = run([str(a) for a in argv])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert expected in line, line
    assert list((tmp_path / "out").iterdir()) == []


def test_info_refuses_out_of_range_labels_instead_of_miscounting(tmp_path: Path, capsys) -> None:
    import h5py

    store = _good_store(tmp_path / "other_tool.h5")
    with h5py.File(store, "r+") as f:
        f["labels"][3] = 7
    capsys.readouterr()
    assert run(["info", str(store)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{store}: dataset labels holds 7 (sample 's3', 1 such rows) outside -1..1" in line
