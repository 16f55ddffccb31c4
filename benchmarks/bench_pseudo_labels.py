"""Which pool samples a semi-supervised teacher could pseudo-label, per class: a fixed
confidence threshold against class-balanced quotas (the top q of the pool per class).

Semi-supervised rounds on the SNR 0.1 pool pseudo-label a third of it, almost none of the
hardest classes (issue 24's study). Distribution alignment and per-class quotas would push
pseudo-labels into those classes; whether that helps depends on how right the teacher is
there. Measured on the ``cpu`` preset's data (SNR 0.1, pool 2,000): the teacher fine-tuned
from the pool's encoder on the 100 class-stratified labels of the study's first round
(500 steps, training seed 0), its softmax on the 1,900 unlabelled pool samples (the samples
as stored: the clean weak view), and per class:

* **threshold 0.95**: how many samples it predicts as the class with confidence ≥ 0.95
  (FixMatch's default), and the share of them that truly are;
* **quota 5 % / 10 %**: the 95 / 190 samples with the highest probability of the class
  (a class-balanced quota: every class gets its share of the pool), and the share right;
* the class's recall (accuracy of the plain prediction on its pool samples).

Usage: ``python benchmarks/run.py pseudo_labels --out=DIR --encoder=FOLDER`` (``DIR``: a
folder for the simulated data, reused when it holds them; ``FOLDER``: the pool's encoder,
e.g. ``benchmarks/results/study/snr01_balanced_v2/encoders/<key>``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUOTAS = (0.05, 0.10)
THRESHOLD = 0.95


def main(argv: list[str]) -> str:
    opts = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))
    if "out" not in opts or "encoder" not in opts:
        raise SystemExit("bench_pseudo_labels: --out=DIR and --encoder=FOLDER are required")
    from cryoal.benchmark.config import load_benchmark_config
    from cryoal.benchmark.data import prepare_data, stratified_initial
    from cryoal.io.store import SubtomogramStore
    from cryoal.train.fit import fit
    from cryoal.train.predict import predict

    cfg = load_benchmark_config("cpu")
    path, pool, _ = prepare_data(cfg, Path(opts["out"]))
    store = SubtomogramStore(path)
    ids = stratified_initial(store, pool, 100, cfg.data.seed)
    rows = np.sort(np.flatnonzero(np.isin(store.ids.astype(str), ids)))
    train = cfg.train.updated(seed=0, student="none", encoder=opts["encoder"])
    teacher = fit(train, store, rows, labels=store.labels[rows], out_dir=None).teacher
    rest = np.setdiff1d(pool, rows)
    probs = predict(teacher, store, rest).probs
    truth = store.labels[rest]
    pred, conf = probs.argmax(1), probs.max(1)
    lines = [
        f"Teacher fine-tuned from encoder `{Path(opts['encoder']).name}` on 100 stratified "
        f"labels ({cfg.train.steps} steps, seed 0); {rest.size:,} unlabelled pool samples, "
        f"SNR {cfg.data.snr:g}. Pool accuracy of its plain prediction: "
        f"{(pred == truth).mean():.3f}. n = samples pseudo-labelled as the class, "
        "right = the share of them that truly are.",
        "",
        f"| class | pool samples | recall | threshold {THRESHOLD}: n | right | "
        + " | ".join(f"quota {q:.0%}: n | right" for q in QUOTAS)
        + " |",
        "|---|---|---|---|---|" + "---|---|" * len(QUOTAS),
    ]
    totals = {"thr": [0, 0], **{q: [0, 0] for q in QUOTAS}}
    for c, name in enumerate(store.class_names):
        sel = (pred == c) & (conf >= THRESHOLD)
        cells = [name, str(int((truth == c).sum())), f"{(pred[truth == c] == c).mean():.2f}",
                 str(int(sel.sum())), f"{(truth[sel] == c).mean():.2f}" if sel.any() else "–"]  # fmt: skip
        totals["thr"][0] += int(sel.sum())
        totals["thr"][1] += int((truth[sel] == c).sum())
        for q in QUOTAS:
            top = np.argsort(-probs[:, c])[: int(round(q * rest.size))]
            right = int((truth[top] == c).sum())
            cells += [str(top.size), f"{right / top.size:.2f}"]
            totals[q][0] += top.size
            totals[q][1] += right
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["all", str(rest.size), f"{(pred == truth).mean():.2f}"]
    for key in ("thr", *QUOTAS):
        n, right = totals[key]
        cells += [str(n), f"{right / n:.2f}"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
