"""Label-efficiency benchmark: strategies x seeds on a dataset with a fixed test set.

``run_benchmark(config, out_dir)`` (the ``cryoal benchmark`` command) simulates (or opens)
a labelled subtomogram dataset, splits it once into an unlabeled pool and a held-out test
set (stratified, fixed by the data seed), runs one :class:`~cryoal.al.engine.ALEngine`
per strategy and seed with a :class:`~cryoal.al.oracle.SimulatedOracle`, and writes

``curves.csv``
    strategy, seed, cycle, n_labeled, accuracy, macro_f1, train_s, score_s;
``selections.csv``
    the true-class histogram of every labeled batch (collapse onto a few classes shows);
``summary.md``
    mean ± std per cycle and strategy, area under the learning curve, labels needed to
    reach random's final accuracy, which strategies beat random and by how much;
``curves.png`` / ``selections.png``
    accuracy and macro-F1 against labels (mean line, ±1 std band over seeds) and the class
    make-up of each strategy's picks.

Every run keeps its own resumable state under ``OUT/runs/<strategy>/seed_<s>/``, so the
same command restarted after a crash continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cryoal.al.engine import ALEngine, EngineConfig
from cryoal.al.oracle import SimulatedOracle
from cryoal.al.strategies import StrategyConfig
from cryoal.io.atomic import atomic_path, atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.train.config import TrainConfig

logger = logging.getLogger(__name__)

PRESETS: tuple[str, ...] = ("smoke", "cpu", "paper")

#: Environment variable naming a folder of template maps for the ``cpu`` preset.
TEMPLATES_ENV = "CRYOAL_TEMPLATES"


class DataConfig(BaseModel):
    """The dataset: an existing labelled store, or a simulation to run once."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(None, description="existing labelled HDF5 store (skips simulation)")
    templates: str | None = Field(
        None, description="folder of template maps/models; null = generated phantoms"
    )
    n_classes: int | None = Field(None, ge=2, description="classes (phantoms / first N templates)")
    per_class: int = Field(300, ge=1, description="simulated samples per class")
    box: int = Field(32, ge=8, description="subtomogram edge, voxels")
    voxel_size_A: float = Field(10.0, gt=0, description="voxel size, Å")
    snr: float = Field(0.1, gt=0, description="signal-to-noise ratio")
    tilt_range: tuple[float, float] = Field((-60.0, 60.0), description="tilt range, degrees")
    seed: int = Field(0, description="seed of the simulation and of the pool/test split")
    test_size: int | float = Field(1000, description="held-out test samples (count or fraction)")
    pool_size: int | None = Field(None, ge=1, description="unlabeled pool size (default: the rest)")


class BenchmarkStrategy(StrategyConfig):
    """A strategy plus optional training overrides for its runs (e.g. dropout for BALD)."""

    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig overrides")


class BenchmarkConfig(BaseModel):
    """Everything one benchmark needs (YAML: these keys, all optional over a preset)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("custom", description="preset the configuration started from")
    data: DataConfig = Field(default_factory=DataConfig)
    strategies: list[BenchmarkStrategy] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    initial: int | float = Field(0.1, description="initial labeled set (count or pool fraction)")
    per_cycle: int | float = Field(0.05, description="labels per cycle (count or pool fraction)")
    n_cycles: int = Field(7, ge=1, description="training cycles")
    warm_start: bool = Field(False, description="warm-start each cycle from the previous one")
    train: TrainConfig = Field(default_factory=TrainConfig)
    batch_size: int = Field(64, ge=1, description="scoring batch size")
    device: str = Field("cpu", description="cpu, cuda or auto")

    @field_validator("strategies", mode="before")
    @classmethod
    def _names_to_configs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    def labels(self) -> list[str]:
        """Display names of the strategies (unique)."""
        names = [s.display_name for s in self.strategies]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"strategies {sorted(dup)} appear twice; give them distinct 'label's")
        return names


# --------------------------------------------------------------------------- presets
def _default_templates() -> str | None:
    env = os.environ.get(TEMPLATES_ENV)
    if env:
        return env
    repo_shared = Path(__file__).resolve().parents[2].parent / "shared" / "structures" / "maps_10A"
    return str(repo_shared) if repo_shared.is_dir() else None


def preset_config(name: str) -> dict[str, Any]:
    """The configuration mapping of a named preset (``smoke``, ``cpu`` or ``paper``).

    * ``smoke`` — 4 phantom classes, 24^3, SNR 1, a pool of 120 and a test set of 120;
      16 -> 48 labels over 3 cycles; tiny networks, 40 epochs at lr 0.01, batch 8; random,
      kt and entropy-gradnorm, 2 seeds. About a minute on 2 cores. The final test accuracy
      ends well above chance (0.25): 0.8–0.95 on the preset's data.
    * ``cpu`` — the methods.md §5 CPU calibration: 10 template maps (``--templates``,
      ``$CRYOAL_TEMPLATES`` or the repository's shared maps), 32^3, SNR 0.1, ±60° wedge,
      pool 2,000, test 1,000; 10 % labeled, +5 % per cycle, 7 cycles (200 -> 800); the
      stride-2 teacher and student, 15 epochs, batch 32, flips and cosine decay; random,
      entropy, kt, entropy-gradnorm, pcoreset and the kt + probability-coreset hybrid, 2 seeds.
      The uncertainty strategies score a random half of the pool (the papers' protocol).
    * ``paper`` — methods.md §5 (GPU): 50 classes (phantoms unless ``--templates``) at SNR
      0.05, 24,000 pool + 1,000 test, 3D ResNet-18 with SGD 0.1, 100 epochs, step at 80 %,
      batch 128, a random 12,000 of the pool scored, every strategy, 3 seeds.
    """
    if name == "smoke":
        return {
            "preset": "smoke",
            "data": {"templates": None, "n_classes": 4, "per_class": 60, "box": 24, "snr": 1.0,
                     "test_size": 120, "seed": 0},
            "strategies": ["random", "kt", "entropy-gradnorm"],
            "seeds": [0, 1],
            "initial": 16, "per_cycle": 16, "n_cycles": 3,
            "train": {"teacher_preset": "tiny", "student_preset": "tiny", "epochs": 40,
                      "batch_size": 8, "lr": 0.01},
            "batch_size": 32,
        }  # fmt: skip
    if name == "cpu":
        half = {"subset_size": 0.5}
        return {
            "preset": "cpu",
            "data": {"templates": _default_templates(), "per_class": 300, "box": 32, "snr": 0.1,
                     "test_size": 1000, "pool_size": 2000, "seed": 0},
            "strategies": [
                {"name": "random"},
                {"name": "entropy", **half},
                {"name": "kt", **half},
                {"name": "entropy-gradnorm", **half},
                {"name": "pcoreset"},
                {"name": "kt", **half, "selection": "diverse", "diversity_space": "teacher_probs",
                 "label": "kt+pcoreset"},
            ],
            "seeds": [0, 1],
            "initial": 0.1, "per_cycle": 0.05, "n_cycles": 7,
            "train": {"teacher_preset": "teacher", "student_preset": "student", "epochs": 15,
                      "batch_size": 32},
            "batch_size": 64,
        }  # fmt: skip
    if name == "paper":
        sub = {"subset_size": 12000}
        return {
            "preset": "paper",
            "data": {"templates": None, "n_classes": 50, "per_class": 500, "box": 32,
                     "snr": 0.05, "test_size": 1000, "seed": 0},
            "strategies": [
                {"name": "random"}, {"name": "entropy", **sub}, {"name": "margin", **sub},
                {"name": "least-confidence", **sub},
                {"name": "bald", **sub, "train": {"dropout": 0.3}},
                {"name": "coreset", **sub}, {"name": "badge", **sub}, {"name": "kt", **sub},
                {"name": "kt-ema", **sub}, {"name": "entropy-gradnorm", **sub},
                {"name": "expected-gradnorm", **sub}, {"name": "pcoreset", **sub},
            ],
            "seeds": [0, 1, 2],
            "initial": 0.1, "per_cycle": 0.05, "n_cycles": 7,
            "train": {"teacher_preset": "resnet18", "student_preset": "student",
                      "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                      "epochs": 100, "schedule": "step", "step_milestones": [0.8],
                      "batch_size": 128, "device": "auto", "amp": True},
            "batch_size": 256, "device": "auto",
        }  # fmt: skip
    raise ValueError(f"unknown benchmark preset {name!r}; choose one of {', '.join(PRESETS)}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key in ("data", "train") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_benchmark_config(
    preset: str | None = None,
    config_path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> BenchmarkConfig:
    """A preset, updated by a YAML file, updated by ``overrides`` (``data``/``train`` merge).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, bad YAML, unknown key or invalid value (one line naming it).
    """
    data: dict[str, Any] = preset_config(preset) if preset else {}
    source = f"preset {preset}" if preset else "benchmark config"
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: benchmark config not found; check the path")
        try:
            extra = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
        if not isinstance(extra, dict):
            raise ValueError(f"{path}: a benchmark config must be a YAML mapping")
        data = _merge(data, extra)
        source = str(path)
    data = _merge(data, overrides or {})
    try:
        cfg = BenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ValueError(
            f"{source}: {loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
        ) from None
    if not cfg.strategies:
        raise ValueError(f"{source}: no strategies given; list them under 'strategies:'")
    cfg.labels()
    return cfg


# --------------------------------------------------------------------------- data
def prepare_data(
    cfg: BenchmarkConfig, out_dir: Path, progress: bool = False
) -> tuple[Path, np.ndarray, np.ndarray]:
    """Simulate (once) or open the dataset; return its path, pool rows and test rows.

    The split is stratified by class and fixed by ``data.seed``: every strategy and seed
    sees the same pool and the same test set.
    """
    d = cfg.data
    if d.store is not None:
        path = Path(d.store)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: benchmark store not found; check data.store")
    else:
        path = out_dir / "data" / "dataset.h5"
        spec = d.model_dump(mode="json")
        spec_path = out_dir / "data" / "dataset.json"
        if path.exists():
            if spec_path.exists() and json.loads(spec_path.read_text()) != spec:
                raise ValueError(
                    f"{path}: was simulated with different data settings; use a new --out folder"
                )
        else:
            from cryoal.sim.subtomograms import simulate_subtomograms

            if cfg.preset == "cpu" and d.templates is None:
                raise ValueError(
                    "the cpu preset simulates from template maps: pass --templates DIR (a folder "
                    f"of density maps, e.g. the 10 SHREC maps at 10 Å) or set ${TEMPLATES_ENV}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            simulate_subtomograms(
                path,
                templates=d.templates,
                n_classes=d.n_classes,
                per_class=d.per_class,
                box=d.box,
                voxel_size_A=d.voxel_size_A,
                snr=d.snr,
                tilt_range=d.tilt_range,
                seed=d.seed,
                progress=progress,
            )
            atomic_write_text(spec_path, json.dumps(spec, indent=1))
    store = SubtomogramStore(path)
    labels = store.labels
    if (labels < 0).any():
        raise ValueError(
            f"{path}: {int((labels < 0).sum())} samples have no label; the benchmark needs ground truth"
        )
    pool, test = split_pool_test(store.ids.astype(str), labels, d.test_size, d.pool_size, d.seed)
    return path, pool, test


def split_pool_test(
    ids: np.ndarray, labels: np.ndarray, test_size: int | float, pool_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of rows into ``(pool, test)``, deterministic given ``seed``."""
    from cryoal.al.selectors import canonical_order, resolve_size

    n = ids.size
    n_test = resolve_size(test_size, n, "test_size")
    if n_test >= n:
        raise ValueError(f"test_size {test_size} leaves no pool out of {n} samples")
    n_pool = n - n_test if pool_size is None else int(pool_size)
    if n_pool + n_test > n:
        raise ValueError(f"pool_size {pool_size} + test {n_test} exceed the {n} samples available")
    order = canonical_order(ids)  # independent of the store's row order
    rng = np.random.default_rng(seed)
    perm = order[rng.permutation(n)]
    classes = np.unique(labels)

    def take(rows: np.ndarray, total: int) -> np.ndarray:
        # largest-remainder allocation per class, then the first rows of each class
        counts = {c: int((labels[rows] == c).sum()) for c in classes}
        quota = {c: total * counts[c] / max(rows.size, 1) for c in classes}
        alloc = {c: min(counts[c], int(math.floor(quota[c]))) for c in classes}
        rest = total - sum(alloc.values())
        for c in sorted(classes, key=lambda c: (-(quota[c] - alloc[c]), c)):
            if rest <= 0:
                break
            if alloc[c] < counts[c]:
                alloc[c] += 1
                rest -= 1
        return np.concatenate([rows[labels[rows] == c][: alloc[c]] for c in classes])

    test = take(perm, n_test)
    remaining = perm[~np.isin(perm, test)]
    pool = take(remaining, n_pool)
    return np.sort(pool), np.sort(test)


# --------------------------------------------------------------------------- running
def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "strategy"


def engine_config(cfg: BenchmarkConfig, strategy: BenchmarkStrategy, seed: int) -> EngineConfig:
    """The :class:`EngineConfig` of one (strategy, seed) run."""
    train = cfg.train.updated(**strategy.train) if strategy.train else cfg.train
    plain = StrategyConfig.model_validate(strategy.model_dump(exclude={"train"}))
    return EngineConfig(
        strategy=plain,
        train=train,
        initial=cfg.initial,
        per_cycle=cfg.per_cycle,
        n_cycles=cfg.n_cycles,
        warm_start=cfg.warm_start,
        seed=seed,
        batch_size=cfg.batch_size,
        device=cfg.device,
    )


@dataclass
class BenchmarkResult:
    """Paths written by :func:`run_benchmark`."""

    out_dir: Path
    curves_csv: Path
    selections_csv: Path
    summary_md: Path
    curves_png: Path
    selections_png: Path


def run_benchmark(
    cfg: BenchmarkConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    on_run_done: Callable[[str, int], None] | None = None,
) -> BenchmarkResult:
    """Run every strategy x seed (resuming finished or interrupted runs) and report.

    Parameters
    ----------
    cfg
        :class:`BenchmarkConfig` (see :func:`load_benchmark_config`).
    out_dir
        Output folder (created). Re-running with the same folder resumes.
    progress
        Show rich progress bars (overall runs and steps, and pool scoring).
    on_run_done
        Called with (strategy label, seed) after each finished run.

    Returns
    -------
    BenchmarkResult
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = cfg.labels()
    cfg_path = out / "benchmark.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    path, pool, test = prepare_data(cfg, out, progress=progress)
    store = SubtomogramStore(path)
    oracle = SimulatedOracle(store)
    runs = [
        (s, lab, seed) for seed in cfg.seeds for s, lab in zip(cfg.strategies, labels, strict=True)
    ]
    steps_per_run = 3 * cfg.n_cycles - 1
    ctx = _Progress(progress, len(runs) * steps_per_run)
    with ctx:
        for strategy, label, seed in runs:
            run_dir = out / "runs" / _slug(label) / f"seed_{seed}"
            ctx.describe(f"{label} seed {seed}")
            engine = ALEngine(
                store,
                oracle,
                engine_config(cfg, strategy, seed),
                run_dir,
                pool_indices=pool,
                test_indices=test,
                on_batch=ctx.scored,
                on_step=lambda st: ctx.step(st),
            )
            done_before = _steps_done(engine.state)
            ctx.advance(done_before)
            engine.run()
            if not engine.done:
                raise RuntimeError(f"{run_dir}: the simulated oracle left labels unanswered")
            ctx.finish_run(steps_per_run - _steps_done(engine.state))
            write_reports(cfg, out)
            if on_run_done:
                on_run_done(label, seed)
    return write_reports(cfg, out)


def _steps_done(state: dict[str, Any]) -> int:
    """Engine steps already taken: labelings + trainings + selections."""
    return len(state["batches"]) + len(state["history"]) + int(state["cycle"])


class _Progress:
    """rich progress bars (or nothing): overall steps, and candidates scored this step."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._p = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._p.__enter__()
            self._all = self._p.add_task("benchmark steps", total=self.total)
            self._score = self._p.add_task("scoring pool", total=None, visible=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._all, description=text)

    def advance(self, n: int) -> None:
        if self._p is not None and n:
            self._p.advance(self._all, n)

    def step(self, state: dict[str, Any]) -> None:
        if self._p is not None:
            self._p.advance(self._all, 1)
            self._p.update(self._score, visible=False, completed=0)

    def scored(self, n: int) -> None:
        if self._p is not None:
            self._p.update(self._score, visible=True)
            self._p.advance(self._score, n)

    def finish_run(self, remaining: int) -> None:
        self.advance(max(0, remaining))


# --------------------------------------------------------------------------- reports
def collect(cfg: BenchmarkConfig, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(curves, selections)`` tables from every run state present under ``out/runs``."""
    rows: list[dict[str, Any]] = []
    sel_rows: list[dict[str, Any]] = []
    for label in cfg.labels():
        for seed in cfg.seeds:
            state_path = out / "runs" / _slug(label) / f"seed_{seed}" / "state.json"
            if not state_path.exists():
                continue
            state = json.loads(state_path.read_text())
            for h in state["history"]:
                rows.append({
                    "strategy": label, "seed": seed, "cycle": h["cycle"],
                    "n_labeled": h["n_labeled"], "accuracy": h["accuracy"],
                    "macro_f1": h["macro_f1"], "train_s": h["train_s"], "score_s": h["score_s"],
                })  # fmt: skip
            for b in state["batches"]:
                sel_rows.append({
                    "strategy": label, "seed": seed, "round": b["round"], "selector": b["strategy"],
                    "n": b["n"], **b["class_counts"],
                })  # fmt: skip
    curves = pd.DataFrame(rows, columns=[
        "strategy", "seed", "cycle", "n_labeled", "accuracy", "macro_f1", "train_s", "score_s"])  # fmt: skip
    selections = pd.DataFrame(sel_rows)
    return curves, selections


def write_reports(cfg: BenchmarkConfig, out: Path) -> BenchmarkResult:
    """(Re)write curves.csv, selections.csv, summary.md, curves.png and selections.png."""
    curves, selections = collect(cfg, out)
    res = BenchmarkResult(
        out,
        out / "curves.csv",
        out / "selections.csv",
        out / "summary.md",
        out / "curves.png",
        out / "selections.png",
    )
    for df, path in ((curves, res.curves_csv), (selections, res.selections_csv)):
        with atomic_path(path, overwrite=True) as tmp:
            df.to_csv(tmp, index=False)
    atomic_write_text(res.summary_md, summarise(cfg, curves, selections))
    if not curves.empty:
        plot_curves(curves, res.curves_png, title=f"cryoal benchmark ({cfg.preset})")
    if not selections.empty:
        plot_selections(selections, res.selections_png)
    return res


def _fmt(mean: float, std: float) -> str:
    """``mean ± std``; just the mean when there is no spread to show (one seed)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def area_under_curve(n: np.ndarray, acc: np.ndarray) -> float:
    """Normalised area under a learning curve: mean accuracy over the label range."""
    n = np.asarray(n, float)
    acc = np.asarray(acc, float)
    if n.size < 2 or n[-1] == n[0]:
        return float(acc.mean()) if acc.size else float("nan")
    return float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(n)) / (n[-1] - n[0]))


def labels_to_reach(n: np.ndarray, acc: np.ndarray, target: float) -> float | None:
    """First label count at which the curve reaches ``target`` (linear between cycles)."""
    n = np.asarray(n, float)
    acc = np.asarray(acc, float)
    for i in range(acc.size):
        if acc[i] >= target:
            if i == 0:
                return float(n[0])
            frac = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
            return float(n[i - 1] + frac * (n[i] - n[i - 1]))
    return None


def summarise(cfg: BenchmarkConfig, curves: pd.DataFrame, selections: pd.DataFrame) -> str:
    """The Markdown summary (tables and an automatic reading of them)."""
    d = cfg.data
    lines = [f"# Active-learning benchmark: preset `{cfg.preset}`", ""]
    src = d.store or (f"simulated from {Path(d.templates).name if d.templates else 'phantoms'}")
    lines += [
        f"Data: {src}, {d.box}^3 voxels at {d.voxel_size_A:g} Å, SNR {d.snr:g}, "
        f"tilt {d.tilt_range[0]:g}..{d.tilt_range[1]:g}°; test {d.test_size}, pool "
        f"{d.pool_size or 'rest'}. Schedule: initial {cfg.initial}, +{cfg.per_cycle} per cycle, "
        f"{cfg.n_cycles} cycles, {'warm start' if cfg.warm_start else 'retrained from scratch'}. "
        f"Teacher `{cfg.train.teacher_preset}`, student `{cfg.train.student_preset}` (when a "
        f"strategy needs one), {cfg.train.epochs} epochs, batch {cfg.train.batch_size}. "
        f"Seeds {cfg.seeds}.",
        "",
    ]
    if curves.empty:
        return "\n".join([*lines, "No finished cycles yet."]) + "\n"
    labels = [lab for lab in cfg.labels() if lab in set(curves["strategy"])]
    g = curves.groupby(["strategy", "n_labeled"])["accuracy"]
    mean, std = g.mean(), g.std()
    ns = sorted(curves["n_labeled"].unique())
    lines += ["## Test accuracy (mean ± std over seeds) per labeled-set size", ""]
    lines += ["| strategy | " + " | ".join(str(n) for n in ns) + " |"]
    lines += ["|---|" + "---|" * len(ns)]
    for lab in labels:
        cells = [
            _fmt(mean.get((lab, n), float("nan")), std.get((lab, n), float("nan"))) for n in ns
        ]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines.append("")

    ref = "random" if "random" in labels else None
    per_seed = {
        (lab, seed): grp.sort_values("n_labeled")
        for (lab, seed), grp in curves.groupby(["strategy", "seed"])
    }
    complete = {k: v for k, v in per_seed.items() if len(v) == cfg.n_cycles}
    target = None
    if ref:
        finals = [v["accuracy"].iloc[-1] for (lab, _), v in complete.items() if lab == ref]
        target = float(np.mean(finals)) if finals else None
    lines += [
        "## Summary per strategy",
        "",
        "ALC = area under the accuracy-vs-labels curve divided by the label range (the mean "
        "accuracy over the budget). Labels to reach = labels needed to reach random's final "
        f"mean accuracy ({'n/a' if target is None else f'{target:.3f}'}), linear between "
        "cycles, mean over the seeds that reach it. Times are seconds per cycle.",
        "",
        "| strategy | final accuracy | final macro-F1 | ALC | labels to reach random's final | train s | score s |",
        "|---|---|---|---|---|---|---|",
    ]
    alc: dict[str, list[float]] = {}
    for lab in labels:
        runs = [v for (lb, _), v in complete.items() if lb == lab]
        if not runs:
            lines.append(f"| {lab} | (running) | | | | | |")
            continue
        fin = np.array([r["accuracy"].iloc[-1] for r in runs])
        f1 = np.array([r["macro_f1"].iloc[-1] for r in runs], float)
        alc[lab] = [area_under_curve(r["n_labeled"], r["accuracy"]) for r in runs]
        reach = (
            [labels_to_reach(r["n_labeled"], r["accuracy"], target) for r in runs]
            if target is not None
            else []
        )
        got = [x for x in reach if x is not None]
        reach_txt = (
            "n/a"
            if target is None
            else (
                f"{np.mean(got):.0f}"
                + ("" if len(got) == len(reach) else f" ({len(got)}/{len(reach)} seeds)")
                if got
                else "not reached"
            )
        )
        sub = curves[curves["strategy"] == lab]
        lines.append(
            f"| {lab} | {_fmt(fin.mean(), fin.std(ddof=1) if fin.size > 1 else float('nan'))} "
            f"| {_fmt(f1.mean(), f1.std(ddof=1) if f1.size > 1 else float('nan'))} "
            f"| {_fmt(np.mean(alc[lab]), np.std(alc[lab], ddof=1) if len(alc[lab]) > 1 else float('nan'))} "
            f"| {reach_txt} | {sub['train_s'].mean():.1f} | {sub['score_s'].dropna().mean() if sub['score_s'].notna().any() else 0:.1f} |"
        )
    lines.append("")
    if ref:
        lines += _versus_random(labels, ref, complete, alc)
    if not selections.empty:
        lines += _collapse_table(labels, selections)
    return "\n".join(lines) + "\n"


def _versus_random(
    labels: list[str],
    ref: str,
    complete: dict[tuple[str, int], pd.DataFrame],
    alc: dict[str, list[float]],
) -> list[str]:
    lines = [
        "## Against random (paired by seed: same initial set and test set)",
        "",
        "Per cycle, the difference in test accuracy to random with the same seed; a cycle "
        "counts as a win (loss) when the mean difference is above +0.01 (below -0.01) and "
        "every seed agrees in sign. With few seeds, differences under ~0.03 are within noise.",
        "",
    ]
    seeds_ref = {s: v for (lab, s), v in complete.items() if lab == ref}
    for lab in labels:
        if lab == ref:
            continue
        diffs: dict[int, list[float]] = {}
        for (lb, seed), v in complete.items():
            if lb != lab or seed not in seeds_ref:
                continue
            r = seeds_ref[seed].set_index("n_labeled")["accuracy"]
            for n, a in zip(v["n_labeled"], v["accuracy"], strict=True):
                if n in r.index:
                    diffs.setdefault(int(n), []).append(float(a - r[n]))
        if not diffs:
            continue
        wins, losses, parts = [], [], []
        for n in sorted(diffs):
            dd = np.array(diffs[n])
            parts.append(f"{n}: {dd.mean():+.3f}")
            if dd.mean() > 0.01 and (dd > 0).all():
                wins.append(f"{n} ({dd.mean():+.3f})")
            elif dd.mean() < -0.01 and (dd < 0).all():
                losses.append(f"{n} ({dd.mean():+.3f})")
        d_alc = np.mean(alc.get(lab, [np.nan])) - np.mean(alc.get(ref, [np.nan]))
        verdict = (
            f"beats random at {', '.join(wins)} labels" if wins else "never clearly beats random"
        )
        if losses:
            verdict += f"; falls below random at {', '.join(losses)} labels"
        lines.append(
            f"- **{lab}**: {verdict}; ALC {d_alc:+.3f} vs random. Per cycle: {'; '.join(parts)}."
        )
    return [*lines, ""]


def _collapse_table(labels: list[str], selections: pd.DataFrame) -> list[str]:
    meta = {"strategy", "seed", "round", "selector", "n"}
    classes = [c for c in selections.columns if c not in meta]
    acq = selections[selections["round"] > 0]
    if acq.empty or not classes:
        return []
    lines = [
        "## What each strategy picked (true classes of the acquired batches, all seeds)",
        "",
        "Largest class share = the mean over batches of the most frequent class's share of the "
        f"batch (uniform over {len(classes)} classes would be about {1 / len(classes):.2f}).",
        "",
        "| strategy | largest class share | most picked classes | never picked |",
        "|---|---|---|---|",
    ]
    for lab in labels:
        sub = acq[acq["strategy"] == lab]
        if sub.empty:
            continue
        counts = sub[classes].to_numpy(float)
        share = (counts.max(axis=1) / np.maximum(counts.sum(axis=1), 1)).mean()
        tot = counts.sum(axis=0)
        frac = tot / max(tot.sum(), 1)
        top = ", ".join(f"{classes[i]} {frac[i]:.0%}" for i in np.argsort(-frac)[:3])
        never = ", ".join(c for c, t in zip(classes, tot, strict=True) if t == 0) or "–"
        lines.append(f"| {lab} | {share:.2f} | {top} | {never} |")
    return [*lines, ""]


def plot_curves(curves: pd.DataFrame, png: Path, title: str = "") -> Path:
    """Accuracy and macro-F1 against labels: mean line and ±1 std band per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    order = list(dict.fromkeys(curves["strategy"]))
    for metric, ax in zip(("accuracy", "macro_f1"), axes, strict=True):
        for lab in order:
            sub = curves[curves["strategy"] == lab].groupby("n_labeled")[metric]
            m, s = sub.mean(), sub.std().fillna(0.0)
            style = {"color": "black", "ls": "--"} if lab == "random" else {}
            (line,) = ax.plot(m.index, m.values, marker="o", ms=3, label=lab, **style)
            ax.fill_between(
                m.index,
                m.values - s.values,
                m.values + s.values,
                alpha=0.15,
                color=line.get_color(),
            )
        ax.set_xlabel("labeled subtomograms")
        ax.set_ylabel("test " + metric.replace("_", "-"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return png


def plot_selections(selections: pd.DataFrame, png: Path) -> Path:
    """Heat map: share of each true class among each strategy's acquired labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = {"strategy", "seed", "round", "selector", "n"}
    classes = [c for c in selections.columns if c not in meta]
    acq = selections[selections["round"] > 0]
    order = list(dict.fromkeys(acq["strategy"]))
    if not order:
        return png
    mat = np.array([acq[acq["strategy"] == s][classes].to_numpy(float).sum(0) for s in order])
    mat = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    size = (max(6.0, 3.0 + 0.7 * len(classes)), max(2.8, 1.4 + 0.45 * len(order)))
    fig, ax = plt.subplots(figsize=size, constrained_layout=True)
    im = ax.imshow(mat, cmap="viridis", vmin=0, aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(order)), order)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(
                j,
                i,
                f"{mat[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if mat[i, j] < mat.max() * 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, label="share")
    ax.set_title("true classes of the acquired labels (all cycles and seeds)")
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return png
