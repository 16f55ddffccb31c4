"""What a label key costs as a project's label history grows (headless, no napari).

A project's labels accumulate over months; the viewer must stay as fast with 50,000 labels
as with 500. Measured in one run, per history size H (labels stored, each on its own
candidate, 10 classes, 20 tomograms):

* **one candidate's label** (``LabelStore.current_label``, read before every label is
  written, for undo): the query on today's ``current_labels`` view against the same query
  on the view that schema version 4 defined (a GROUP BY over the whole history), both on
  the same connection and file.
* **a label key's store work, headless**: ``LabellingSession.label`` (the label committed
  with an fsync, the cursor moved), then ``label_counts`` (the viewer's totals), as the
  widget calls them: the totals kept by the session (today) against the totals recounted
  from the store on every key (``LabelStore.count_labels``, one pass over every current
  label; the viewer before), interleaved key by key in the same session. The last column
  adds them up: one candidate's label + commit + totals, with the v4 view and a recount
  against today's.
* **another program's label shown**: what the viewer does when its 2 s poll sees a write
  by someone else (a second annotator, ``cryoal labels import``): ``LabellingSession.refresh``
  (the round's queue with every entry's current label) and ``points`` (the tomogram's
  candidates with theirs), each read by index per candidate.

Times are medians of repeated calls, milliseconds; figures to compare are the ratios.

Usage: ``python benchmarks/run.py label_store [--sizes=1000,5000,20000,50000] [--reps=15]``
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from synthetic import write_noise_tomogram

#: The ``current_labels`` view of schema version 4 (GROUP BY over every label), as a
#: temporary view to time against today's.
OLD_VIEW = (
    "CREATE TEMP VIEW current_labels_v4 AS SELECT l.label_id, l.candidate_id, c.tomo_id, c.z, "
    "c.y, c.x, l.kind, l.class_id, k.name AS class_name, l.annotator, l.round, "
    "l.model_version, l.created_at FROM labels AS l JOIN (SELECT candidate_id, MAX(label_id) "
    "AS label_id FROM labels GROUP BY candidate_id) AS newest ON newest.label_id = l.label_id "
    "JOIN live_candidates AS c ON c.candidate_id = l.candidate_id LEFT JOIN classes AS k ON "
    "k.class_id = l.class_id WHERE l.kind != 'cleared'"
)
ONE = "SELECT * FROM {view} WHERE candidate_id = ?"
CLASSES = [f"class{i}" for i in range(10)]


def _median_ms(fn, reps: int) -> float:  # noqa: ANN001 - a callable of no arguments
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _project(tmp: Path, size: int, seed: int) -> tuple[Path, list[str]]:
    """A project with ``size`` labelled candidates and a queue of 200 unlabelled ones."""
    from cryoal.project.project import Project

    project = Project.init(tmp / "proj", CLASSES, box=16)
    for t in range(20):
        tomo = tmp / f"t{t:02d}.mrc"
        write_noise_tomogram(tomo, (32, 128, 128), seed=seed + t)
        project.add_tomogram(tomo, f"TS_{t:02d}")
    rng = np.random.default_rng(seed)
    n = size + 200
    ids = [f"TS_{i % 20:02d}:{i:06d}" for i in range(n)]
    table = pd.DataFrame({"candidate_id": ids, "tomo_id": [i.split(":")[0] for i in ids],
                          "z": 16.0, "y": rng.uniform(8, 120, n), "x": rng.uniform(8, 120, n)})  # fmt: skip
    store = project.labels
    store.add_candidates(table, source="bench")
    store.add_labels(ids[:size], list(rng.integers(0, len(CLASSES), size)), "bench")
    store.write_suggestions(0, ids[size:], None, "random", seed=seed)
    project.close()
    return tmp / "proj", ids


def _one_size(size: int, reps: int) -> dict[str, float]:
    from cryoal.project.session import LabellingSession

    with tempfile.TemporaryDirectory() as tmp:
        root, ids = _project(Path(tmp), size, seed=size)
        conn = sqlite3.connect(root / "labels.sqlite")
        conn.execute(OLD_VIEW)
        probe = ids[size // 2]
        row = {
            "one_new": _median_ms(lambda: conn.execute(ONE.format(view="current_labels"), (probe,)).fetchall(), reps),
            "one_old": _median_ms(lambda: conn.execute(ONE.format(view="current_labels_v4"), (probe,)).fetchall(), reps),
        }  # fmt: skip
        conn.close()
        session = LabellingSession(root, annotator="bench")

        session.label_counts("TS_00")
        commit: list[float] = []
        totals: dict[bool, list[float]] = {True: [], False: []}
        for i in range(2 * reps):  # interleaved, so both see the same machine
            recount = bool(i % 2)
            t0 = time.perf_counter()
            session.label(i % len(CLASSES))
            t1 = time.perf_counter()
            if recount:
                session._totals.invalidate()  # as the viewer counted before: once per key
            session.label_counts("TS_00")
            commit.append((t1 - t0) * 1e3)
            totals[recount].append((time.perf_counter() - t1) * 1e3)
        row["outside"] = _median_ms(lambda: (session.refresh(), session.points()), reps)
        row["commit"] = float(np.median(commit))
        row["totals_old"] = float(np.median(totals[True]))
        row["totals_new"] = float(np.median(totals[False]))
        session.close()
    return row


def main(argv: list[str]) -> str:
    opts = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))
    sizes = [int(s) for s in opts.get("sizes", "1000,5000,20000,50000").split(",")]
    reps = int(opts.get("reps", 15))
    rows = {size: _one_size(size, reps) for size in sizes}
    lines = [
        f"Label stores with H labels (one per candidate, 10 classes, 20 tomograms) and a queue "
        f"of 200 unlabelled candidates; medians of {reps} calls (a key: {reps} each way, "
        "interleaved), milliseconds.",
        "",
        "| labels H | one candidate's label: v4 view | today's view | ratio | label "
        "committed | totals recounted | totals kept by the session | a key's store work, "
        "before / now | another program's label shown (refresh + points) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, r in rows.items():
        before = r["one_old"] + r["commit"] + r["totals_old"]
        now = r["one_new"] + r["commit"] + r["totals_new"]
        lines.append(
            f"| {size:,} | {r['one_old']:.2f} | {r['one_new']:.3f} | "
            f"{r['one_old'] / r['one_new']:.0f}× | {r['commit']:.1f} | {r['totals_old']:.1f} | "
            f"{r['totals_new']:.2f} | {before:.1f} / {now:.1f} ms ({before / now:.1f}×) | "
            f"{r['outside']:.0f} |"
        )
    return "\n".join(lines) + "\n"
