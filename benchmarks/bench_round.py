"""Round turnaround: from the last label to the next queue, on 2 CPU cores, tiny presets.

A project of 10,000 unlabelled candidates and 1,000 labels (32^3 boxes). One round is
what happens between an expert's last label and the next queue:

1. train the teacher and its student on the 1,000 labels (``fit``, default schedule,
   ``tiny`` presets, 10 % held out for validation),
2. score all 10,000 candidates with ``kt`` (teacher + student forward passes, fixed
   micro-batches),
3. select the next queue (top-k, k = 50).

Reported: wall time and CPU seconds (user + system of this process; the machine is shared,
so CPU seconds are the steadier figure) per stage and in total, against the 10-minute
target. Also: the same scoring split into 3 shards and merged (scores bitwise equal to
one process, picks identical), and training samples/s with bf16 autocast against
float32 on this CPU (one epoch each, same data).

Data: synthetic phantoms made here (a sphere or a dumbbell per box, random shifts and
sizes, Gaussian noise), enough to time a round; accuracy figures of real-looking data are
in the ``train`` and ``al_cpu`` benchmarks. Snapshot and the extraction of the training
store from tomograms (``cryoal train DIR``) are not included.

Usage: ``python benchmarks/run.py round [--threads=2] [--epochs=15]`` (``--pool=N
--labels=M`` for a smaller trial run)
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

N_POOL, N_LABELS, BOX, K = 10_000, 1_000, 32, 50


def _phantoms(path: Path, n: int, seed: int) -> Path:
    from cryoal.io.store import StoreWriter

    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:BOX, :BOX, :BOX].astype(np.float32) - (BOX - 1) / 2
    labels = rng.integers(0, 2, n)
    with StoreWriter(path, BOX, 10.0, ["sphere", "dumbbell"], overwrite=True) as w:
        for start in range(0, n, 500):
            chunk = []
            for c in labels[start : start + 500]:
                dz, dy, dx = rng.uniform(-3, 3, 3)
                zz, yy, xx = z - dz, y - dy, x - dx
                if c == 0:
                    m = zz**2 + yy**2 + xx**2 < rng.uniform(7, 9) ** 2
                else:
                    r, d = rng.uniform(4, 5.2), rng.uniform(5.6, 7.2)
                    m = (zz**2 + yy**2 + (xx - d) ** 2 < r**2) | (
                        zz**2 + yy**2 + (xx + d) ** 2 < r**2
                    )
                chunk.append(m + 1.0 * rng.standard_normal(m.shape))
            ids = [f"P:{i:06d}" for i in range(start, start + len(chunk))]
            w.append(np.stack(chunk).astype(np.float32), ids, labels=labels[start : start + 500])
    return path


class _Clock:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def __call__(self, name: str, fn):  # type: ignore[no-untyped-def]
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = fn()
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        self.rows.append((name, t1 - t0, cpu))
        return out


def main(argv: list[str]) -> str:
    opts = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))
    threads = int(opts.get("threads", 2))
    epochs = int(opts.get("epochs", 15))
    n_pool, n_labels = int(opts.get("pool", N_POOL)), int(opts.get("labels", N_LABELS))
    torch.set_num_threads(threads)
    from cryoal.al.acquire import acquire, candidate_rows, score_candidates, select_scored
    from cryoal.al.shards import candidates_sha256, merge_shards, shard_name, write_shard
    from cryoal.al.strategies import StrategyConfig
    from cryoal.io.store import SubtomogramStore
    from cryoal.train import TrainConfig, fit
    from cryoal.train.perf import tune_cpu_allocator

    tune_cpu_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        store = SubtomogramStore(_phantoms(Path(tmp) / "pool.h5", n_pool + n_labels, 0))
        labelled = np.arange(n_labels)
        pool = np.arange(n_labels, n_labels + n_pool)
        n_val = n_labels // 10
        cfg = TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=epochs)
        clock = _Clock()
        res = clock("train teacher + student", lambda: fit(
            cfg, store, labelled[n_val:], val_indices=labelled[:n_val]))  # fmt: skip
        picked = clock(f"score {n_pool:,} (kt) + select", lambda: acquire(
            "kt", teacher=res.teacher, student=res.student, store=store, pool_indices=pool,
            labeled_indices=labelled, k=K, seed=0, batch_size=64))  # fmt: skip
        wall = sum(r[1] for r in clock.rows)
        cpu = sum(r[2] for r in clock.rows)

        # sharded: 3 shards written and merged, against the single-process picks
        kt = StrategyConfig.parse("kt")
        rows, ids = candidate_rows(kt, store, pool, K, 0)
        meta = {"n_shards": 3, "candidates_sha256": candidates_sha256(ids), "strategy": "kt",
                "seed": 0, "batch_size": 64, "model_version": "bench",
                "n_candidates": int(ids.size)}  # fmt: skip
        t0 = time.perf_counter()
        paths = [
            write_shard(Path(tmp) / shard_name(i, 3), score_candidates(
                kt, res.teacher, res.student, store, rows, ids, seed=0, batch_size=64,
                shard=(i, 3)), meta | {"shard": i})
            for i in range(3)
        ]  # fmt: skip
        merged = merge_shards(paths, ids, candidates_sha256(ids))
        shard_pick = select_scored(kt, merged, k=K, seed=0, teacher=res.teacher,
                                   student=res.student, store=store, labeled_indices=labelled)  # fmt: skip
        shard_s = time.perf_counter() - t0
        one = score_candidates(kt, res.teacher, res.student, store, rows, ids, seed=0,
                               batch_size=64)  # fmt: skip
        bitwise = one.scores.tobytes() == merged.scores.tobytes()
        same = shard_pick.ids.tolist() == picked.ids.tolist()

        # AMP: one epoch of training, float32 against bf16 autocast
        amp_cfg = cfg.updated(epochs=1, student="trained")
        rates = {}
        for mode in ("off", "bf16"):
            t0 = time.perf_counter()
            fit(amp_cfg.updated(amp=mode), store, labelled)
            rates[mode] = n_labels / (time.perf_counter() - t0)

    val = res.metrics["val"]
    lines = [
        f"Project of {n_pool:,} candidates and {n_labels:,} labels ({BOX}^3 phantoms), tiny "
        f"presets, {epochs} epochs, {threads} torch threads, k = {K}. No GPU was lent to this "
        "work: CPU figures only.",
        "",
        "| stage | wall s | CPU s |",
        "|---|---:|---:|",
        *[f"| {n} | {w:.1f} | {c:.1f} |" for n, w, c in clock.rows],
        f"| **round turnaround** | **{wall:.1f}** | **{cpu:.1f}** |",
        "",
        f"Target: under 600 s wall on 2 cores -> {wall / 600:.2f} of the target "
        f"({'met' if wall < 600 else 'missed'}). CPU s / wall s = {cpu / wall:.2f} (of "
        f"{threads} threads; lower means the shared machine gave this run less than its "
        "threads).",
        f"Validation ({n_val} held out): teacher accuracy {val['teacher']['accuracy']:.3f}, "
        f"student {val['student']['accuracy']:.3f}.",
        f"Scoring split into 3 shards, written, merged and selected: {shard_s:.1f} s; scores "
        f"bitwise equal to one process: {'yes' if bitwise else 'NO'}; same {K} picks: "
        f"{'yes' if same else 'NO'}.",
        "",
        "| training (1 epoch, teacher + student) | samples/s | ratio |",
        "|---|---:|---:|",
        f"| float32 | {rates['off']:.1f} | 1.00 |",
        f"| bf16 autocast (CPU) | {rates['bf16']:.1f} | {rates['bf16'] / rates['off']:.2f} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "2")
    print(main(sys.argv[1:]))
