"""How far test accuracy moves with the training seed alone: from scratch, and fine-tuned
from the pool's pretrained encoder (issue 20's figure; target: std ≤ 0.03 at 600 labels).

For each budget the ``cpu`` preset's teacher (500 steps, batch 32, class-balanced, EMA
weights; SNR 0.1, pool 2,000, test 3,000) is trained on one class-stratified labelled set,
the same for both arms and every seed, with training seeds 0 … n−1 (initialisation, batch
order, augmentation): once from random weights and once from the encoder. Both arms run
through ``cryoal.benchmark.calibrate`` (as ``cryoal benchmark-calibrate``) in
``OUT/scratch`` and ``OUT/pretrained``, so an interrupted run resumes. The encoder is
``--encoder FOLDER`` (a ``cryoal pretrain`` folder of the same pool, e.g. the study's kept
``benchmarks/results/study/snr01_balanced_v2/encoders/<key>``) or else pretrained on the
pool into ``OUT/pretrained/encoders`` with the preset's pretraining (about 20 min on 2 cores).

Reported per budget: mean, std and range over seeds per arm, the ratio of the stds, and the
paired (same seed) difference with its 95 % Student-t interval; a plot of every seed's
accuracy per arm, lines joining a seed's two trainings (``OUT/spread.png``, copied to
``docs/images/al_spread.png``).

Usage: ``python benchmarks/run.py spread --out=DIR [--encoder=FOLDER] [--budgets=600]
[--seeds=0,1,2,3,4] [--jobs=1]``
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

IMAGE = Path(__file__).resolve().parents[1] / "docs" / "images" / "al_spread.png"
ARMS = {"scratch": "from scratch", "pretrained": "fine-tuned from the pool's encoder"}


def main(argv: list[str]) -> str:
    opts = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))
    if "out" not in opts:
        raise SystemExit("bench_spread: --out=DIR is required (it resumes from that folder)")
    out = Path(opts["out"])
    budgets = [int(b) for b in opts.get("budgets", "600").split(",")]
    seeds = [int(s) for s in opts.get("seeds", "0,1,2,3,4").split(",")]
    jobs = int(opts.get("jobs", 1))
    from cryoal.benchmark.calibrate import calibrate
    from cryoal.benchmark.config import load_benchmark_config

    cfg = load_benchmark_config("cpu")
    encoder = opts.get("encoder") or _pool_encoder(cfg, out / "pretrained")
    if not (Path(encoder) / "encoder.json").is_file():
        raise SystemExit(f"bench_spread: {encoder} holds no encoder.json; pass a folder "
                         "written by cryoal pretrain, or leave --encoder out to pretrain one")  # fmt: skip
    configs = {
        "scratch": cfg,
        "pretrained": cfg.model_copy(update={"train": cfg.train.updated(encoder=str(encoder))}),
    }
    steps = cfg.train.steps
    acc: dict[str, dict[int, dict[int, float]]] = {}
    for arm, arm_cfg in configs.items():
        frame = calibrate(arm_cfg, out / arm, budgets, [steps], seeds, jobs=jobs)
        acc[arm] = {
            b: {int(r.train_seed): float(r.accuracy) for r in g.itertuples()}
            for b, g in frame.groupby("budget")
        }
    png = _plot(acc, budgets, out / "spread.png")
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, IMAGE)
    return _report(cfg, acc, budgets, seeds, encoder) + f"\nPlot: `docs/images/{IMAGE.name}`.\n"


def _pool_encoder(cfg: Any, folder: Path) -> str:
    """The preset's encoder pretrained on the pool (cached in ``folder/encoders``)."""
    from cryoal.benchmark.data import prepare_data
    from cryoal.benchmark.run import pool_encoder
    from cryoal.io.store import SubtomogramStore

    path, pool, _ = prepare_data(cfg, folder)
    return pool_encoder(cfg, folder, SubtomogramStore(path), pool)


def _report(cfg: Any, acc: dict, budgets: list[int], seeds: list[int], encoder: str) -> str:
    from cryoal.benchmark.stats import t_interval

    d, t = cfg.data, cfg.train
    lines = [
        f"Data: {d.box}^3 at SNR {d.snr:g}, pool {d.pool_size:,}, test {d.test_size:,}. "
        f"Teacher `{t.teacher_preset}`, {t.steps} steps, batch {t.batch_size}, lr {t.lr:g} "
        f"({t.schedule}), class balance `{t.class_balance}`, EMA weights. One class-stratified "
        f"labelled set per budget for both arms; only the training seed changes "
        f"({', '.join(map(str, seeds))}). Encoder: `{Path(encoder).name}` (NT-Xent on the "
        "pool, never the test set).",
        "",
        "| labels | training | seeds | test accuracy mean | std over seeds | range |",
        "|---|---|---|---|---|---|",
    ]
    for b in budgets:
        for arm, name in ARMS.items():
            v = np.array(list(acc[arm][b].values()))
            lines.append(f"| {b} | {name} | {v.size} | {v.mean():.3f} | {v.std(ddof=1):.3f} | "
                         f"{v.min():.3f}–{v.max():.3f} |")  # fmt: skip
    lines += [
        "",
        "| labels | std ratio (encoder / scratch) | encoder − scratch, paired by seed (95 % CI) |",
        "|---|---|---|",
    ]
    for b in budgets:
        common = sorted(set(acc["scratch"][b]) & set(acc["pretrained"][b]))
        diffs = [acc["pretrained"][b][s] - acc["scratch"][b][s] for s in common]
        sd = {arm: np.std(list(acc[arm][b].values()), ddof=1) for arm in ARMS}
        lines.append(f"| {b} | {sd['pretrained'] / sd['scratch']:.2f} | {t_interval(diffs)} |")
    return "\n".join(lines) + "\n"


def _plot(acc: dict, budgets: list[int], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(budgets), figsize=(3.2 * len(budgets) + 0.8, 3.6),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, b in zip(axes[0], budgets, strict=True):
        common = sorted(set(acc["scratch"][b]) & set(acc["pretrained"][b]))
        for s in common:
            ax.plot([0, 1], [acc["scratch"][b][s], acc["pretrained"][b][s]], "-o", color="0.5",
                    alpha=0.7)  # fmt: skip
        for x, arm in enumerate(ARMS):
            v = list(acc[arm][b].values())
            ax.errorbar([x + 0.12], [np.mean(v)], yerr=[np.std(v, ddof=1)], fmt="s", color="C3",
                        capsize=4)  # fmt: skip
        ax.set_xticks([0, 1], ["from scratch", "from encoder"])
        ax.set_xlim(-0.4, 1.5)
        ax.set_title(f"{b} labels: one line per training seed", fontsize=9)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
