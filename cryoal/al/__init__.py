"""Active learning: heuristics, selectors, strategies, oracles and the AL loop.

* :mod:`cryoal.al.heuristics` — pure functions, predictions -> ``(N,)`` scores.
* :mod:`cryoal.al.gradnorm` — per-sample gradient norms (closed form and exact).
* :mod:`cryoal.al.selectors` — top-k, random subset, stochastic, k-center, k-means++.
* :mod:`cryoal.al.registry` — every strategy: what it needs, how it scores or selects.
* :mod:`cryoal.al.strategies` — :class:`StrategyConfig`.
* :func:`acquire` — trained models + unlabeled pool -> the next batch to label.
* :mod:`cryoal.al.oracle` — :class:`Oracle` protocol, :class:`SimulatedOracle`.
* :mod:`cryoal.al.engine` — :class:`ALEngine`: resumable rounds.
"""

from __future__ import annotations

from cryoal.al.acquire import Acquisition, acquire
from cryoal.al.engine import ALEngine, EngineConfig
from cryoal.al.oracle import Oracle, SimulatedOracle
from cryoal.al.strategies import STRATEGIES, StrategyConfig

__all__ = [
    "STRATEGIES",
    "ALEngine",
    "Acquisition",
    "EngineConfig",
    "Oracle",
    "SimulatedOracle",
    "StrategyConfig",
    "acquire",
]
