"""Learning-curve statistics: area under the curve, labels to reach a target, paired intervals.

Strategies are compared to random *paired by seed*: the same seed gives the same initial
labeled set, the same test set and the same network initialisation in every cycle, so the
per-seed difference removes most of the run-to-run noise. Intervals are two-sided 95 %
Student-t intervals of the mean paired difference over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def area_under_curve(n: np.ndarray, acc: np.ndarray) -> float:
    """Normalised area under a learning curve: mean accuracy over the label range.

    Parameters
    ----------
    n, acc
        Labeled-set sizes (increasing) and the accuracy at each, shape (C,).
    """
    n = np.asarray(n, float)
    acc = np.asarray(acc, float)
    if n.size < 2 or n[-1] == n[0]:
        return float(acc.mean()) if acc.size else float("nan")
    return float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(n)) / (n[-1] - n[0]))


def mean_over_range(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the curve through ``(x, y)`` (linear between points, ``x`` increasing, shape
    (C,)) over ``[lo, hi]``, a range inside ``x``'s: the area under a learning curve
    against an axis (edit cost) on which two runs' points do not line up."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if not x[0] <= lo < hi <= x[-1]:
        raise ValueError(f"range [{lo}, {hi}] is not inside the curve's [{x[0]}, {x[-1]}]")
    grid = np.union1d(x[(x > lo) & (x < hi)], [lo, hi])
    vals = np.interp(grid, x, y)
    return float(np.sum((vals[1:] + vals[:-1]) / 2 * np.diff(grid)) / (hi - lo))


def labels_to_reach(n: np.ndarray, acc: np.ndarray, target: float) -> float | None:
    """First label count at which the curve reaches ``target`` (linear between cycles);
    ``None`` when it never does."""
    n = np.asarray(n, float)
    acc = np.asarray(acc, float)
    for i in range(acc.size):
        if acc[i] >= target:
            if i == 0:
                return float(n[0])
            frac = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
            return float(n[i - 1] + frac * (n[i] - n[i - 1]))
    return None


@dataclass(frozen=True)
class Interval:
    """Mean of paired values with its two-sided 95 % Student-t interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def above_zero(self) -> bool:
        """The whole interval is above zero (a resolved improvement)."""
        return self.n >= 2 and self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.n >= 2 and self.high < 0

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.3f} (1 seed)"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def t_interval(values: np.ndarray | list[float], level: float = 0.95) -> Interval:
    """Mean and Student-t confidence interval of ``values`` (shape (S,), one per seed)."""
    from scipy import stats

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, float("nan"), float("nan"), int(v.size))
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Interval(mean, mean - half, mean + half, int(v.size))
