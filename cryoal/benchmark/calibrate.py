"""Training-noise calibration: how much test accuracy moves with the training seed alone.

Before strategies are compared, the benchmark's training recipe must be steady: on a fixed
labeled set, changing only the training seed (initialisation, batch order, augmentation)
should move test accuracy by much less than the differences being measured. For each
labeled-set size (budget) and training length, :func:`calibrate` trains the teacher on one
class-stratified labeled set with several training seeds and records the spread, with the
benchmark's own settings (data, network, class balance, weight averaging).

With ``warm_steps`` it calibrates the warm-started schedule instead: for each training seed
one chain through the budgets in increasing order, as a benchmark run with ``warm_start``
trains them — the smallest budget's stratified set from scratch for ``steps``, then each
larger budget's set (the previous one plus random pool samples, the same for every seed)
warm-started from the previous model for ``warm_steps``.

Writes ``OUT/calibration.csv`` (budget, steps, warm steps (0 = from scratch), train seed,
accuracy, macro-F1, final train loss, seconds), ``OUT/calibration.md`` (mean ± std per
budget and schedule) and ``OUT/calibration.png`` (accuracy against labels per schedule);
the table and the plot cover every row trained in ``OUT``, so calibrations with other
budgets or schedules in the same folder end up side by side.
"""

from __future__ import annotations

import logging
import os
import time
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

COLUMNS = [
    "budget", "steps", "warm_steps", "train_seed", "accuracy", "macro_f1", "train_loss", "train_s"
]  # fmt: skip


def nested_sets(
    store: Any, pool: np.ndarray, budgets: Sequence[int], seed: int
) -> list[np.ndarray]:
    """Sorted store rows of nested labeled sets, one per budget (increasing).

    The smallest is the benchmark's class-stratified initial set of ``seed``; each larger one
    adds the next rows of a seeded random order of the rest of the pool, as the random arm
    of a benchmark run grows its labeled set.
    """
    from cryoal.al.acquire import subseed

    budgets = sorted(int(b) for b in budgets)
    if budgets[-1] > pool.size:
        raise ValueError(
            f"budget {budgets[-1]} is larger than the pool ({pool.size} samples); give budgets "
            "up to the pool size (data.pool_size)"
        )
    first = set(stratified_initial(store, pool, budgets[0], seed))
    ids = store.ids.astype(str)
    start = np.array([r for r in pool if ids[r] in first], np.int64)
    rest = np.setdiff1d(pool, start)
    rest = rest[np.random.default_rng(subseed(seed, 1)).permutation(rest.size)]
    return [np.sort(np.concatenate([start, rest[: b - start.size]])) for b in budgets]


def _evaluate_row(
    cfg: BenchmarkConfig, store: Any, test: np.ndarray, result: Any, train_s: float
) -> dict[str, Any]:
    from cryoal.train.evaluate import evaluate

    metrics = evaluate(
        result.teacher,
        None,
        store,
        test,
        task=cfg.train.task,
        class_names=list(store.class_names),
        batch_size=cfg.batch_size,
        device=cfg.device,
    )["teacher"]
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_loss": (result.metrics.get("train") or {}).get("task_loss"),
        "train_s": round(train_s, 2),
    }


def train_once(cfg: BenchmarkConfig, out: Path, budget: int, steps: int, seed: int) -> list[dict]:
    """Train the teacher from scratch on the fixed ``budget`` labeled set with training seed
    ``seed``; return its test figures (one row of calibration.csv, in a list)."""
    from cryoal.io.store import SubtomogramStore
    from cryoal.train.fit import fit

    path, pool, test = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    ids = stratified_initial(store, pool, budget, cfg.data.seed)
    rows = np.sort(np.flatnonzero(np.isin(store.ids.astype(str), ids)))
    train = cfg.train.updated(steps=steps, seed=seed, student="none", device=cfg.device)
    t0 = time.perf_counter()
    result = fit(train, store, rows, labels=store.labels[rows], out_dir=None)
    row = _evaluate_row(cfg, store, test, result, time.perf_counter() - t0)
    return [{"budget": budget, "steps": steps, "warm_steps": 0, "train_seed": seed, **row}]


def train_chain(
    cfg: BenchmarkConfig,
    out: Path,
    budgets: Sequence[int],
    steps: int,
    warm_steps: int,
    seed: int,
) -> list[dict]:
    """Train the teacher through the nested sets of :func:`nested_sets` (smallest budget from
    scratch for ``steps``, each next one warm-started for ``warm_steps``), training seed
    ``seed`` (per budget derived as a benchmark run derives it per cycle); one row each."""
    from cryoal.al.round import training_seed
    from cryoal.io.store import SubtomogramStore
    from cryoal.train.fit import fit

    path, pool, test = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    rows_out: list[dict] = []
    previous = None
    sets = nested_sets(store, pool, budgets, cfg.data.seed)
    for cycle, (budget, rows) in enumerate(zip(sorted(budgets), sets, strict=True)):
        train = cfg.train.updated(
            steps=steps if cycle == 0 else warm_steps,
            seed=training_seed(seed, cycle),
            student="none",
            device=cfg.device,
        )
        t0 = time.perf_counter()
        previous = fit(train, store, rows, labels=store.labels[rows], out_dir=None, init=previous)
        row = _evaluate_row(cfg, store, test, previous, time.perf_counter() - t0)
        rows_out.append(
            {"budget": int(budget), "steps": steps, "warm_steps": warm_steps, "train_seed": seed}
            | row
        )
    return rows_out


def _worker(cfg_json: dict[str, Any], out: str, job: tuple) -> list[dict]:
    """Process-pool entry point: ``job`` is ("once", budget, steps, seed) or
    ("chain", budgets, steps, warm_steps, seed)."""
    return _run_job(BenchmarkConfig.model_validate(cfg_json), Path(out), job)


def _run_job(cfg: BenchmarkConfig, out: Path, job: tuple) -> list[dict]:
    if job[0] == "chain":
        return train_chain(cfg, out, *job[1:])
    return train_once(cfg, out, *job[1:])


def calibrate(
    cfg: BenchmarkConfig,
    out_dir: str | os.PathLike,
    budgets: Sequence[int],
    steps: Sequence[int],
    train_seeds: Sequence[int],
    *,
    warm_steps: Sequence[int] = (),
    jobs: int = 1,
    on_done: Callable[[list[dict], int, int], None] | None = None,
) -> pd.DataFrame:
    """Train budgets x steps x seeds from scratch, or (``warm_steps``) one warm-started chain
    through the budgets per steps x warm steps x seed; resume rows already in
    calibration.csv; write the table and the plot of every row in the folder.

    Parameters
    ----------
    cfg
        The benchmark configuration whose data and training recipe are calibrated.
    out_dir
        Output folder (the dataset is simulated into it, or reused).
    budgets
        Labeled-set sizes (counts) to calibrate, e.g. the smallest and largest of the curve;
        with ``warm_steps``, every budget of the chain.
    steps
        Training lengths (optimizer steps) from scratch (with ``warm_steps``: of the chain's
        first budget).
    train_seeds
        Training seeds; the labeled set of a budget is the same for all of them.
    warm_steps
        Optimizer steps of each warm-started budget of a chain; empty: train from scratch.
    jobs
        Trainings (or chains) at once, each in its own process.
    on_done
        Called with (rows, finished, total) after each training or chain.

    Returns
    -------
    pandas.DataFrame
        The rows of ``calibration.csv`` for these budgets, lengths and seeds.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepare_data(cfg, out)
    csv = out / "calibration.csv"
    table = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=COLUMNS)
    if "warm_steps" not in table.columns:  # written before warm chains were calibrated
        table.insert(2, "warm_steps", 0)
    have = {
        (int(r.budget), int(r.steps), int(r.warm_steps), int(r.train_seed))
        for r in table.itertuples()
    }
    b_all = sorted(int(b) for b in budgets)
    jobs_todo: list[tuple] = []
    for s in steps:
        for seed in train_seeds:
            if warm_steps:
                jobs_todo += [
                    ("chain", b_all, int(s), int(w), int(seed))
                    for w in warm_steps
                    if any((b, int(s), int(w), int(seed)) not in have for b in b_all)
                ]
            else:
                jobs_todo += [
                    ("once", b, int(s), int(seed))
                    for b in b_all
                    if (b, int(s), 0, int(seed)) not in have
                ]
    rows = table.to_dict("records")
    finished = 0

    def record(new: list[dict]) -> None:
        nonlocal finished
        keys = {(r["budget"], r["steps"], r["warm_steps"], r["train_seed"]) for r in new}
        kept = [r for r in rows if (r["budget"], r["steps"], r["warm_steps"], r["train_seed"])
                not in keys]  # fmt: skip
        rows[:] = kept + new
        frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(
            ["warm_steps", "steps", "budget", "train_seed"]
        )
        with atomic_path(csv, overwrite=True) as tmp:
            frame.to_csv(tmp, index=False)
        finished += 1
        if on_done is not None:
            on_done(new, finished, len(jobs_todo))

    if jobs == 1:
        for job in jobs_todo:
            record(_run_job(cfg, out, job))
    else:
        cfg_json = cfg.model_dump(mode="json")
        with process_pool(jobs) as pool:
            futures = [pool.submit(_worker, cfg_json, str(out), job) for job in jobs_todo]
            for future in as_completed(futures):
                record(future.result())
    everything = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write_text(out / "calibration.md", calibration_table(cfg, everything), overwrite=True)
    plot_calibration(everything, out / "calibration.png", start=_start(cfg))
    return everything[
        everything["budget"].isin(b_all)
        & everything["steps"].isin([int(s) for s in steps])
        & everything["warm_steps"].isin([int(w) for w in warm_steps] or [0])
        & everything["train_seed"].isin([int(s) for s in train_seeds])
    ]


def _start(cfg: BenchmarkConfig) -> str:
    """Where the first training of a row starts: random weights, or the pretrained encoder
    that ``train.encoder`` names."""
    return "scratch" if cfg.train.encoder is None else "the pretrained encoder"


def schedule_name(steps: int, warm_steps: int, start: str = "scratch") -> str:
    """How a row was trained, for tables and legends (``start``: see :func:`_start`)."""
    if not warm_steps:
        return f"{steps} steps from {start}"
    return f"warm chain: {steps} steps from {start}, then {warm_steps} per budget"


def calibration_table(cfg: BenchmarkConfig, frame: pd.DataFrame) -> str:
    """Markdown: mean ± std of test accuracy over training seeds per budget and schedule."""
    d, t = cfg.data, cfg.train
    lines = [
        "# Training-noise calibration",
        "",
        f"Data: {d.box}^3 at SNR {d.snr:g}, test {d.test_size}. Teacher `{t.teacher_preset}`, "
        f"batch {t.batch_size}, lr {t.lr:g} ({t.schedule}), class balance `{t.class_balance}`, "
        f"weights {'EMA-averaged' if t.average == 'ema' else 'of the last step'}. Only the "
        f"training seed changes: from {_start(cfg)}, one class-stratified labeled set per "
        "budget; in a warm chain, nested sets (the stratified smallest plus random pool "
        "samples), each budget warm-started from the previous one's model.",
        "",
        "| labels | training | seeds | test accuracy mean | std over seeds | range | final "
        "train loss | s per training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (w, s, b), g in frame.groupby(["warm_steps", "steps", "budget"]):
        acc = g["accuracy"].to_numpy(float)
        sd = acc.std(ddof=1) if acc.size > 1 else float("nan")
        lines.append(
            f"| {b} | {schedule_name(int(s), int(w), _start(cfg))} | {acc.size} | "
            f"{acc.mean():.3f} | {sd:.3f} | {acc.min():.3f}–{acc.max():.3f} | "
            f"{g['train_loss'].mean():.3f} | "
            f"{g['train_s'].mean():.0f} |"
        )
    return "\n".join([*lines, ""]) + "\n"


def plot_calibration(frame: pd.DataFrame, png: Path, start: str = "scratch") -> Path:
    """Test accuracy against labels, one line per schedule (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for (w, s), g in frame.groupby(["warm_steps", "steps"]):
        stats = g.groupby("budget")["accuracy"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3,
                    label=schedule_name(int(s), int(w), start))  # fmt: skip
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (mean ± std over training seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return png
