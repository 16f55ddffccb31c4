"""Training-noise calibration: how much test accuracy moves with the training seed alone.

Before strategies are compared, the benchmark's training recipe must be steady: on a fixed
labeled set, changing only the training seed (initialisation, batch order, augmentation)
should move test accuracy by much less than the differences being measured. For each
labeled-set size (budget) and training length, :func:`calibrate` trains the teacher on one
class-stratified labeled set with several training seeds and records the spread, with the
benchmark's own settings (data, network, class balance, weight averaging).

Writes ``OUT/calibration.csv`` (budget, steps, train seed, accuracy, macro-F1, final train
loss, seconds), ``OUT/calibration.md`` (mean ± std per budget and length) and
``OUT/calibration.png`` (accuracy against training length per budget).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.benchmark.config import BenchmarkConfig
from cryoal.benchmark.data import prepare_data, stratified_initial
from cryoal.benchmark.workers import process_pool
from cryoal.io.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

COLUMNS = ["budget", "steps", "train_seed", "accuracy", "macro_f1", "train_loss", "train_s"]


def train_once(cfg: BenchmarkConfig, out: Path, budget: int, steps: int, seed: int) -> dict:
    """Train the teacher on the fixed ``budget`` labeled set with training seed ``seed``;
    return its test figures (one row of calibration.csv)."""
    import time

    from cryoal.io.store import SubtomogramStore
    from cryoal.train.evaluate import evaluate
    from cryoal.train.fit import fit

    path, pool, test = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    ids = stratified_initial(store, pool, budget, cfg.data.seed)
    rows = np.sort(np.flatnonzero(np.isin(store.ids.astype(str), ids)))
    labels = store.labels[rows]
    train = cfg.train.updated(steps=steps, seed=seed, student="none", device=cfg.device)
    t0 = time.perf_counter()
    result = fit(train, store, rows, labels=labels, out_dir=None)
    train_s = time.perf_counter() - t0
    metrics = evaluate(
        result.teacher,
        None,
        store,
        test,
        task=train.task,
        class_names=list(store.class_names),
        batch_size=cfg.batch_size,
        device=cfg.device,
    )["teacher"]
    loss = (result.metrics.get("train") or {}).get("task_loss")
    return {
        "budget": budget,
        "steps": steps,
        "train_seed": seed,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_loss": loss,
        "train_s": round(train_s, 2),
    }


def _worker(cfg_json: dict[str, Any], out: str, budget: int, steps: int, seed: int) -> dict:
    """Process-pool entry point."""
    return train_once(BenchmarkConfig.model_validate(cfg_json), Path(out), budget, steps, seed)


def calibrate(
    cfg: BenchmarkConfig,
    out_dir: str | os.PathLike,
    budgets: Sequence[int],
    steps: Sequence[int],
    train_seeds: Sequence[int],
    *,
    jobs: int = 1,
    on_done: Callable[[dict, int, int], None] | None = None,
) -> pd.DataFrame:
    """Train budgets x steps x seeds (resuming rows already in calibration.csv) and report.

    Parameters
    ----------
    cfg
        The benchmark configuration whose data and training recipe are calibrated.
    out_dir
        Output folder (the dataset is simulated into it, or reused).
    budgets
        Labeled-set sizes (counts) to calibrate, e.g. the smallest and largest of the curve.
    steps
        Training lengths (optimizer steps) to compare.
    train_seeds
        Training seeds; the labeled set of a budget is the same for all of them.
    jobs
        Trainings at once, each in its own process.
    on_done
        Called with (row, finished, total) after each training.

    Returns
    -------
    pandas.DataFrame
        The rows of ``calibration.csv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepare_data(cfg, out)
    csv = out / "calibration.csv"
    table = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=COLUMNS)
    have = {(int(r.budget), int(r.steps), int(r.train_seed)) for r in table.itertuples()}
    todo = [
        (b, s, seed)
        for b in budgets
        for s in steps
        for seed in train_seeds
        if (int(b), int(s), int(seed)) not in have
    ]
    rows = table.to_dict("records")

    def record(row: dict) -> None:
        rows.append(row)
        frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(["budget", "steps", "train_seed"])
        with atomic_path(csv, overwrite=True) as tmp:
            frame.to_csv(tmp, index=False)
        if on_done is not None:
            on_done(row, len(rows) - len(have), len(todo))

    if jobs == 1:
        for b, s, seed in todo:
            record(train_once(cfg, out, b, s, seed))
    else:
        cfg_json = cfg.model_dump(mode="json")
        with process_pool(jobs) as pool:
            futures = [pool.submit(_worker, cfg_json, str(out), b, s, seed) for b, s, seed in todo]
            for future in as_completed(futures):
                record(future.result())
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame[
        frame["budget"].isin(list(budgets))
        & frame["steps"].isin(list(steps))
        & frame["train_seed"].isin(list(train_seeds))
    ]
    atomic_write_text(out / "calibration.md", calibration_table(cfg, frame), overwrite=True)
    plot_calibration(frame, out / "calibration.png")
    return frame


def calibration_table(cfg: BenchmarkConfig, frame: pd.DataFrame) -> str:
    """Markdown: mean ± std of test accuracy over training seeds per budget and length."""
    d, t = cfg.data, cfg.train
    lines = [
        "# Training-noise calibration",
        "",
        f"Data: {d.box}^3 at SNR {d.snr:g}, test {d.test_size}. Teacher `{t.teacher_preset}`, "
        f"batch {t.batch_size}, lr {t.lr:g} ({t.schedule}), class balance `{t.class_balance}`, "
        f"weights {'EMA-averaged' if t.average == 'ema' else 'of the last step'}. One "
        "class-stratified labeled set per budget; only the training seed changes.",
        "",
        "| labels | steps | seeds | test accuracy mean | std over seeds | range | final train "
        "loss | s per training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (b, s), g in frame.groupby(["budget", "steps"]):
        acc = g["accuracy"].to_numpy(float)
        sd = acc.std(ddof=1) if acc.size > 1 else float("nan")
        lines.append(
            f"| {b} | {s} | {acc.size} | {acc.mean():.3f} | {sd:.3f} | "
            f"{acc.min():.3f}–{acc.max():.3f} | {g['train_loss'].mean():.3f} | "
            f"{g['train_s'].mean():.0f} |"
        )
    return "\n".join([*lines, ""]) + "\n"


def plot_calibration(frame: pd.DataFrame, png: Path) -> Path:
    """Test accuracy against training steps, one line per budget (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for b, g in frame.groupby("budget"):
        stats = g.groupby("steps")["accuracy"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3,
                    label=f"{b} labels")  # fmt: skip
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("test accuracy (mean ± std over training seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return png
