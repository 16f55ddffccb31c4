"""Run a benchmark: every strategy x seed as a resumable active-learning engine run.

Runs are independent, so ``jobs`` of them run at once in separate processes (one thread
each unless ``OMP_NUM_THREADS`` says otherwise); their results do not depend on ``jobs``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cryoal.al.engine import ALEngine, EngineConfig
from cryoal.al.strategies import StrategyConfig
from cryoal.benchmark.config import BenchmarkConfig, BenchmarkStrategy
from cryoal.benchmark.data import prepare_data, stratified_initial
from cryoal.benchmark.layout import BenchmarkResult, run_dir
from cryoal.benchmark.report import write_reports
from cryoal.benchmark.workers import process_pool
from cryoal.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkProgress:
    """A progress report: engine steps done out of the total, and what finished last."""

    done: int
    total: int
    text: str


def engine_config(
    cfg: BenchmarkConfig, strategy: BenchmarkStrategy, seed: int, encoder: str | None = None
) -> EngineConfig:
    """The :class:`EngineConfig` of one (strategy, seed) run (``encoder``: the pool's
    pretrained encoder folder, used by ``pretrained`` strategies)."""
    if strategy.pretrained and encoder is None:
        raise ValueError(f"strategy {strategy.display_name!r} is pretrained: pass the encoder")
    overrides = {**strategy.train, **({"encoder": encoder} if strategy.pretrained else {})}
    train = cfg.train.updated(**overrides) if overrides else cfg.train
    plain = StrategyConfig.model_validate(
        strategy.model_dump(exclude={"train", "pretrained", "evaluate"})
    )
    return EngineConfig(
        strategy=plain,
        train=train,
        initial=cfg.initial,
        per_cycle=cfg.per_cycle,
        n_cycles=cfg.n_cycles,
        budgets=cfg.budgets,
        warm_start=cfg.warm_start,
        warm_start_steps=cfg.warm_start_steps,
        seed=seed,
        batch_size=cfg.batch_size,
        device=cfg.device,
        evaluate=strategy.evaluate,
    )


def steps_per_run(cfg: BenchmarkConfig) -> int:
    """Engine steps of one run: labelings + trainings + selections."""
    return 3 * cfg.n_cycles - 1


def _steps_done(state: dict[str, Any]) -> int:
    return len(state["batches"]) + len(state["history"]) + int(state["cycle"])


def run_one(
    cfg: BenchmarkConfig,
    out: Path,
    index: int,
    seed: int,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """Run (or resume) strategy ``cfg.strategies[index]`` with ``seed``; returns its steps.

    ``on_step`` is called with the number of engine steps done so far in this run.
    """
    from cryoal.al.oracle import SimulatedOracle
    from cryoal.io.store import SubtomogramStore

    path, pool, test = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    strategy = cfg.strategies[index]
    label = cfg.labels()[index]
    encoder = None
    if strategy.pretrained:  # a finished run needs only the encoder's name, not the weights
        done = _finished(run_dir(out, label, seed))
        encoder = pool_encoder(cfg, out, store, pool, make=not done)
    initial = stratified_initial(store, pool, cfg.initial, seed) if cfg.stratified_initial else None
    folder = run_dir(out, label, seed)
    engine = ALEngine(
        store,
        SimulatedOracle(store),
        engine_config(cfg, strategy, seed, encoder),
        folder,
        pool_indices=pool,
        test_indices=test,
        on_step=(lambda st: on_step(_steps_done(st))) if on_step else None,
        initial_ids=initial,
    )
    engine.run()
    if not engine.done:
        raise RuntimeError(f"{folder}: the simulated oracle left labels unanswered")
    return _steps_done(engine.state)


def pool_encoder(
    cfg: BenchmarkConfig, out: Path, store: Any, pool: Any, *, make: bool = True
) -> str:
    """The encoder pretrained on the pool (never the test set), made once in
    ``OUT/encoders/`` and shared by every pretrained strategy and seed; its folder
    (``make=False``: the folder's name only, nothing pretrained)."""
    from cryoal.pretrain.run import cached_folder, pretrain_cached

    if not make:
        return str(cached_folder(cfg.pretrain_config(), store, pool, out / "encoders"))
    return str(pretrain_cached(cfg.pretrain_config(), store, pool, out / "encoders").path)


def _finished(folder: Path) -> bool:
    """The engine run in ``folder`` is done."""
    from cryoal.al.engine import STATE_FILE

    try:
        return bool(json.loads((folder / STATE_FILE).read_text())["phase"] == "done")
    except (OSError, ValueError, KeyError):
        return False


def _pretrained_runs_left(cfg: BenchmarkConfig, out: Path) -> bool:
    """Some run of a pretrained strategy is not finished (so the encoder is needed)."""
    return any(
        not _finished(run_dir(out, label, seed))
        for label, strategy in zip(cfg.labels(), cfg.strategies, strict=True)
        if strategy.pretrained
        for seed in cfg.seeds
    )


def _run_in_worker(cfg_json: dict[str, Any], out: str, index: int, seed: int) -> int:
    """Process-pool entry point (spawned: configuration passed as plain JSON data)."""
    return run_one(BenchmarkConfig.model_validate(cfg_json), Path(out), index, seed)


def run_benchmark(
    cfg: BenchmarkConfig,
    out_dir: str | os.PathLike,
    *,
    jobs: int = 1,
    on_progress: Callable[[BenchmarkProgress], None] | None = None,
    on_run_done: Callable[[str, int], None] | None = None,
) -> BenchmarkResult:
    """Run every strategy x seed (resuming finished or interrupted runs) and report.

    Parameters
    ----------
    cfg
        :class:`BenchmarkConfig` (see :func:`cryoal.benchmark.load_benchmark_config`).
    out_dir
        Output folder (created). Re-running with the same folder resumes.
    jobs
        Runs at once, each in its own process (``1``: in this process, in order).
    on_progress
        Called with a :class:`BenchmarkProgress` after every engine step (``jobs=1``) or
        every finished run (``jobs>1``).
    on_run_done
        Called with (strategy label, seed) after each finished run.

    Returns
    -------
    BenchmarkResult
    """
    if jobs < 1:
        raise ValueError(f"jobs {jobs} must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = cfg.labels()
    atomic_write_text(
        out / "benchmark.yaml",
        yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
        overwrite=True,
    )
    path, pool_rows, _ = prepare_data(cfg, out)  # simulate once, before any worker starts
    if _pretrained_runs_left(cfg, out):  # pretrain once, before any worker starts
        from cryoal.io.store import SubtomogramStore

        logger.info("pretraining the encoder on the pool (once, shared by pretrained arms)")
        pool_encoder(cfg, out, SubtomogramStore(path), pool_rows)
    runs = [(i, seed) for seed in cfg.seeds for i in range(len(cfg.strategies))]
    per_run = steps_per_run(cfg)
    total = len(runs) * per_run
    finished = 0

    def report(text: str, in_run: int = 0) -> None:
        if on_progress is not None:
            on_progress(BenchmarkProgress(finished * per_run + in_run, total, text))

    def done(index: int, seed: int) -> None:
        nonlocal finished
        finished += 1
        write_reports(cfg, out)
        report(f"{labels[index]} seed {seed} done")
        if on_run_done:
            on_run_done(labels[index], seed)

    if jobs == 1:
        for index, seed in runs:
            name = f"{labels[index]} seed {seed}"

            def on_step(n: int, name: str = name) -> None:
                report(name, n)

            run_one(cfg, out, index, seed, on_step=on_step)
            done(index, seed)
    else:
        cfg_json = cfg.model_dump(mode="json")
        with process_pool(jobs) as pool:
            futures = {
                pool.submit(_run_in_worker, cfg_json, str(out), index, seed): (index, seed)
                for index, seed in runs
            }
            for future in as_completed(futures):
                future.result()
                done(*futures[future])
    return write_reports(cfg, out)
