"""Semi-supervised rounds on 2 CPU cores: the cost of a FixMatch step, and a whole round.

What is measured, in one run, with the ``cpu`` preset's training (``teacher`` and
``student`` networks, batch 32, class-balanced sampling, EMA weights) on 32³ phantoms:

* **step cost**: optimizer steps per second (the median time between step events) of a
  supervised step and of a semi-supervised one (``semi_supervised: fixmatch``: the teacher also predicts a weak view of an unlabelled
  batch as large as the labelled one and learns from the confident ones on strong views),
  interleaved (supervised, semi, supervised, semi) on the same labels; the ratio of the
  medians.
* **round on a 2,000 pool**: from the last label to the next queue with semi-supervised
  training, as the ``cpu`` preset runs it: train teacher and student for 500 steps on 100
  labels with the 1,900 unlabelled samples of the pool, score the 1,900 with ``kt`` and
  select 100; wall seconds against the 10-minute target, and against the same round trained
  without the pool (supervised) in the same run.

Data: phantoms (a sphere or a dumbbell per box, as ``bench_round``): enough to time a step,
not to judge accuracy (the study in ``benchmarks/study/`` does that).

Usage: ``python benchmarks/run.py semi [--threads=2] [--steps=500] [--probe-steps=20]``
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_round import _Clock, _phantoms

N_POOL, N_LABELS, K = 2_000, 100, 100


def main(argv: list[str]) -> str:
    opts = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))
    threads = int(opts.get("threads", 2))
    steps = int(opts.get("steps", 500))
    probe = int(opts.get("probe-steps", 20))
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    from cryoal.al.acquire import acquire
    from cryoal.benchmark.config import preset_config
    from cryoal.io.store import SubtomogramStore
    from cryoal.train import TrainConfig, fit
    from cryoal.train.perf import tune_cpu_allocator

    tune_cpu_allocator()
    cpu_train = preset_config("cpu")["train"]
    with tempfile.TemporaryDirectory() as tmp:
        store = SubtomogramStore(_phantoms(Path(tmp) / "pool.h5", N_POOL, 0))
        labelled, pool = np.arange(N_LABELS), np.arange(N_LABELS, N_POOL)
        base = TrainConfig(**{**cpu_train, "steps": probe, "val_fraction": 0.0})
        semi = base.updated(semi_supervised="fixmatch")

        step_s: dict[str, list[float]] = {"none": [], "fixmatch": []}
        for _ in range(2):  # interleaved, so both see the same machine
            for cfg in (base, semi):
                ticks: list[float] = []

                def tick(event, ticks: list[float] = ticks) -> None:  # noqa: ANN001
                    if event.kind == "step":
                        ticks.append(time.perf_counter())

                fit(cfg, store, labelled, unlabeled_indices=pool, callback=tick)
                step_s[cfg.semi_supervised] += np.diff(ticks)[1:].tolist()  # first: warm-up
        sup, fix = (1.0 / float(np.median(step_s[k])) for k in ("none", "fixmatch"))

        clock = _Clock()
        for name, cfg in (("supervised", base), ("semi-supervised", semi)):
            run = clock(f"{name}: train teacher + student ({steps} steps)", lambda cfg=cfg: fit(
                cfg.updated(steps=steps), store, labelled, unlabeled_indices=pool))  # fmt: skip
            clock(f"{name}: score {pool.size:,} (kt) + select {K}", lambda run=run: acquire(
                "kt", teacher=run.teacher, student=run.student, store=store,
                pool_indices=pool, labeled_indices=labelled, k=K, seed=0, batch_size=64))  # fmt: skip
    walls = {name: sum(w for n, w, _ in clock.rows if n.startswith(name)) for name in
             ("supervised", "semi-supervised")}  # fmt: skip
    semi_wall = walls["semi-supervised"]
    return "\n".join(
        [
            f"Pool of {N_POOL:,} 32³ phantoms, {N_LABELS} labels; the `cpu` preset's training "
            f"(`{cpu_train['teacher_preset']}` teacher, `{cpu_train['student_preset']}` "
            f"student, batch {cpu_train['batch_size']}, balanced sampler, EMA weights), "
            f"{threads} torch threads. No GPU was lent to this work: CPU figures only.",
            "",
            f"| optimizer step (median over 2 × {probe} steps, interleaved) | steps/s | ratio |",
            "|---|---:|---:|",
            f"| supervised | {sup:.2f} | 1.00 |",
            f"| semi-supervised (FixMatch) | {fix:.2f} | {sup / fix:.2f}× the cost |",
            "",
            "| round stage | wall s | CPU s |",
            "|---|---:|---:|",
            *[f"| {n} | {w:.1f} | {c:.1f} |" for n, w, c in clock.rows],
            "",
            f"Semi-supervised round: {semi_wall:.0f} s = {semi_wall / 600:.2f} of the 10-minute "
            f"target ({'met' if semi_wall < 600 else 'missed'}); {semi_wall / walls['supervised']:.2f}× "
            "the supervised round of the same run. Load average when the run started: "
            f"{load:.1f} on {os.cpu_count()} cores.",
        ]
    )


if __name__ == "__main__":
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "2")
    print(main(sys.argv[1:]))
