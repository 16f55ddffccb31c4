"""Correcting masks: commit latency, store growth, and Enter to the next crop in napari.

Run with ``xvfb-run -a python benchmarks/run.py masks [--n=40] [--box=64]`` (the viewer
part needs an X display; ``xvfb-run`` gives a virtual one with software OpenGL).

What is measured, in one run:

* **mask committed**: ``LabelStore.add_mask`` of a ``box``³ mask (a ball of a class in
  background, an edge slab not annotated, the model's proposal changed by a stroke),
  compressed, hashed and committed with its label row (``synchronous=FULL``: an fsync)
  before it returns; against a bare one-row SQLite commit in the same folder (the fsync
  floor) and the compression alone.
* **store growth**: bytes of ``labels.sqlite`` (+ WAL) per 1,000 such masks.
* **Enter → next crop shown with its mask**: a real Enter on the canvas of a segment
  project in napari (commit, the next crop's proposal into the ``mask`` layer, the box,
  camera and slice moved) until the canvas has drawn the new frame (the event loop's own
  paint, else a ``repaint``, then ``glFinish``); against a bare repaint in the same run.

Targets (issue 21): Enter → next crop p95 < 150 ms on 2 cores for a 64³ crop; commit of a
64³ mask p95 < 30 ms; store growth reported.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from _frames import frame_waiter, p50_p95_max

HERE = Path(__file__).resolve().parent


def _opts(argv: list[str]) -> dict[str, str]:
    opts = {"n": "40", "box": "64", "seed": "0"}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in opts:
            raise SystemExit(f"bench_masks: unknown option --{key}; known: {sorted(opts)}")
        opts[key] = value
    return opts


def proposal(box: int, rng: np.random.Generator) -> np.ndarray:
    """A model-like mask: a ball of class 1 or 2 (radius a quarter of the box, jittered
    edge) in background."""
    zz, yy, xx = np.mgrid[:box, :box, :box] - box // 2
    r = box / 4 + rng.normal(0, 0.8, (box, box, box))
    return np.where(zz**2 + yy**2 + xx**2 <= r**2, int(rng.integers(1, 3)), 0).astype(np.uint8)


def corrected(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The proposal after a stroke (a disc repainted on one slice) and an edge slab left
    unannotated."""
    out = mask.copy()
    box = mask.shape[0]
    z, y, x = (int(v) for v in rng.integers(box // 4, 3 * box // 4, 3))
    yy, xx = np.mgrid[:box, :box]
    out[z][(yy - y) ** 2 + (xx - x) ** 2 <= (box // 8) ** 2] = 2
    out[:, :, :2] = 255
    return out


def measure_store(folder: Path, box: int, n: int, seed: int) -> dict[str, list[float]]:
    import pandas as pd

    from cryoal.project.labels import LabelStore

    rng = np.random.default_rng(seed)
    store = LabelStore.create(folder / "labels.sqlite", ["a", "b"])
    ids = [f"T:{i:06d}" for i in range(n)]
    store.add_candidates(
        pd.DataFrame({"candidate_id": ids, "tomo_id": "T", "z": 1.0, "y": 1.0, "x": 1.0}), "bench"
    )
    size0 = _size(folder)
    times: dict[str, list[float]] = {"commit": [], "compress": [], "floor": []}
    for cid in ids:
        mask = corrected(proposal(box, rng), rng)
        t = time.perf_counter()
        zlib.compress(mask.tobytes(), 6)
        times["compress"].append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        store.add_mask(cid, mask, "bench", source="corrected")
        times["commit"].append((time.perf_counter() - t) * 1e3)
    store.close()
    times["growth_per_1000"] = [(_size(folder) - size0) / n * 1000]
    conn = sqlite3.connect(folder / "floor.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (i INTEGER)")
    for i in range(n):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        times["floor"].append((time.perf_counter() - t) * 1e3)
    conn.close()
    return times


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("labels.sqlite*"))


def build_project(tmp: Path, box: int, n: int, seed: int) -> Path:
    """A segment project with ``n + 4`` candidates, a queue of them and a proposal each."""
    import pandas as pd

    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project
    from cryoal.project.proposals import PROPOSALS_NAME

    rng = np.random.default_rng(seed)
    shape = (4 * box, 8 * box, 8 * box)
    write_mrc(tmp / "TS_01.mrc", rng.normal(0, 1, shape).astype(np.float32), 10.0)
    project = Project.init(tmp / "proj", ["membrane", "ribosome"], box=box, task="segment")
    project.add_tomogram(tmp / "TS_01.mrc", "TS_01")
    m = n + 4
    zyx = rng.uniform(box, np.array(shape) - box, size=(m, 3))
    ids = [f"TS_01:{i:06d}" for i in range(m)]
    project.labels.add_candidates(
        pd.DataFrame({"candidate_id": ids, "tomo_id": "TS_01", "z": zyx[:, 0], "y": zyx[:, 1],
                      "x": zyx[:, 2]}), "bench",
    )  # fmt: skip
    project.labels.write_suggestions(1, ids, np.linspace(1, 0, m), "kt", model_version="bench")
    arrays = {f"mask/{c}": proposal(box, rng) for c in ids}
    arrays |= {f"uncertainty/{c}": np.zeros((box,) * 3, np.float16) for c in ids}
    folder = project.root / "rounds" / "001"
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (folder / PROPOSALS_NAME).write_bytes(buf.getvalue())
    project.close()
    return tmp / "proj"


def measure_viewer(root: Path, n: int) -> dict[str, list[float]]:
    import napari
    from cryoal_napari._widget import open_project
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    widget = open_project(viewer, root)
    QApplication.processEvents()
    native = viewer.window._qt_viewer.canvas.native
    shown = frame_waiter(viewer)

    times: dict[str, list[float]] = {"enter": [], "enter_handled": [], "repaint": []}
    for _ in range(2):  # warm-up
        QTest.keyClick(native, Qt.Key.Key_Return)
        shown()
    for _ in range(n):
        t = time.perf_counter()
        shown()
        times["repaint"].append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        QTest.keyClick(native, Qt.Key.Key_Return)
        handled = time.perf_counter()
        shown()
        times["enter"].append((time.perf_counter() - t) * 1e3)
        times["enter_handled"].append((handled - t) * 1e3)
    widget.close()
    viewer.close()
    return times


def main(argv: list[str]) -> str:
    opts = _opts(argv)
    n, box, seed = int(opts["n"]), int(opts["box"]), int(opts["seed"])
    if not os.environ.get("DISPLAY"):
        raise SystemExit(
            "bench_masks: no X display; run it under Xvfb: "
            "xvfb-run -a .venv/bin/python benchmarks/run.py masks"
        )
    (HERE / "_work").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="masks_", dir=HERE / "_work"))
    load_before = os.getloadavg()[0]
    try:
        (tmp / "store").mkdir()
        store_times = measure_store(tmp / "store", box, 10 * n, seed)
        viewer_times = measure_viewer(build_project(tmp, box, n, seed), n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for times, key, what, target in (
        (viewer_times, "enter", "Enter → mask committed, next crop shown with its mask", 150.0),
        (viewer_times, "enter_handled", "… of which the key handled (commit, next crop)", None),
        (viewer_times, "repaint", "baseline: repaint, nothing changed", None),
        (store_times, "commit", f"`add_mask` of a {box}³ mask, committed on return", 30.0),
        (store_times, "compress", "… its zlib compression alone", None),
        (store_times, "floor", "baseline: bare SQLite commit, synchronous=FULL", None),
    ):
        p50, p95, worst = p50_p95_max(times[key])
        verdict = "-" if target is None else ("yes" if p95 < target else "**no**")
        rows.append(f"| {what} | {p50:.1f} | {p95:.1f} | {worst:.1f} | "
                    f"{'-' if target is None else f'< {target:.0f}'} | {verdict} |")  # fmt: skip
    growth = store_times["growth_per_1000"][0] / 2**20
    e50, r50 = p50_p95_max(viewer_times["enter"])[0], p50_p95_max(viewer_times["repaint"])[0]
    c50, f50 = p50_p95_max(store_times["commit"])[0], p50_p95_max(store_times["floor"])[0]
    return "\n".join(
        [
            f"Segment project, box {box}³ voxels; {n} Enter presses through the widget in a "
            "real napari window (Xvfb, software OpenGL), each crop opening with its model "
            f"proposal from `proposals.npz`; {10 * n} masks committed to a fresh label store "
            "(the proposal with a stroke repainted and an edge slab unannotated).",
            "",
            "| step | p50 ms | p95 ms | max ms | target p95 | met |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Store growth: {growth:.1f} MiB per 1,000 {box}³ masks (labels.sqlite + WAL). "
            f"Ratios (p50): Enter → next crop = {e50 / r50:.1f} × a bare repaint; a mask "
            f"commit = {c50 / max(f50, 1e-9):.1f} × a bare fsync'd SQLite commit. Load average "
            f"when the run started: {load_before:.1f} on {os.cpu_count()} cores (other jobs "
            "share the machine).",
        ]
    )
