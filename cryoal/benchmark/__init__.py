"""The label-efficiency benchmark: strategies x seeds on a dataset with a fixed test set.

``run_benchmark(config, out_dir)`` (the ``cryoal benchmark`` command) simulates (or opens)
a labelled subtomogram dataset, splits it once into an unlabeled pool and a held-out test
set (stratified, fixed by the data seed), runs one :class:`~cryoal.al.engine.ALEngine` per
strategy and seed with a :class:`~cryoal.al.oracle.SimulatedOracle`, and writes

``curves.csv``
    strategy, seed, cycle, n_labeled, accuracy, macro_f1, train_s, score_s;
``selections.csv``
    the true-class histogram of every labeled batch (collapse onto a few classes shows);
``summary.md``
    mean ± std per cycle and strategy, area under the learning curve, labels needed to reach
    random's final accuracy, and the paired difference of every strategy to random with
    95 % intervals (:mod:`cryoal.benchmark.stats`);
``curves.png`` / ``selections.png``
    accuracy and macro-F1 against labels and the class make-up of each strategy's picks.

Every run keeps its own resumable state under ``OUT/runs/<strategy>/seed_<s>/``, so the
same command restarted after a crash continues where it stopped. With ``train.task:
segment`` the data are crops with masks around the particles of simulated tomograms, split
by tomogram (``tomograms``), and ``curves.csv`` / ``summary.md`` / ``curves.png`` report
Dice and IoU against crops labelled and edit cost (``seg_report``). Modules: ``config``
(settings and presets), ``data`` (dataset, split, initial set), ``tomograms``, ``run`` (the
runs), ``calibrate`` (training-noise calibration), ``workers`` (``--jobs``), ``stats``,
``report``, ``seg_report``, ``plots``, ``layout``.
"""

from __future__ import annotations

from cryoal.benchmark.config import (
    PRESETS,
    BenchmarkConfig,
    BenchmarkStrategy,
    DataConfig,
    load_benchmark_config,
    preset_config,
)
from cryoal.benchmark.layout import BenchmarkResult
from cryoal.benchmark.run import BenchmarkProgress, engine_config, run_benchmark

__all__ = [
    "PRESETS",
    "BenchmarkConfig",
    "BenchmarkProgress",
    "BenchmarkResult",
    "BenchmarkStrategy",
    "DataConfig",
    "engine_config",
    "load_benchmark_config",
    "preset_config",
    "run_benchmark",
]
