"""Plots of a benchmark: learning curves and the class make-up of the picks (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_path


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
            m = sub.mean()
            _band(ax, m.index, m, sub.std().fillna(0.0), lab)
        ax.set_xlabel("labeled subtomograms")
        ax.set_ylabel("test " + metric.replace("_", "-"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, png, title)


def _band(ax, x, mean: pd.Series, std: pd.Series, label: str) -> None:  # noqa: ANN001
    """One strategy's mean line and ±1 std band over ``x`` (random dashed black)."""
    style = {"color": "black", "ls": "--"} if label == "random" else {}
    (line,) = ax.plot(x, mean.values, marker="o", ms=3, label=label, **style)
    ax.fill_between(
        x, mean.values - std.values, mean.values + std.values, alpha=0.15, color=line.get_color()
    )


def _save(fig, png: Path, title: str = "") -> Path:  # noqa: ANN001
    """Title ``fig``, write it to ``png`` atomically (120 dpi) and close it."""
    import matplotlib.pyplot as plt

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
    return _save(fig, png)


def plot_segment_curves(curves: pd.DataFrame, png: Path, title: str = "") -> Path:
    """Segmentation: mean and worst-class test Dice (rows) against crops labelled and the
    cumulative edit cost painting from scratch and correcting (columns). Lines are the mean
    over seeds per cycle (the costs' mean on the x axis), bands ±1 std of Dice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = {
        "n_labeled": "crops labelled",
        "cost_scratch": "edit cost, painting (k voxels)",
        "cost_correct": "edit cost, correcting (k voxels)",
    }
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), constrained_layout=True)
    order = list(dict.fromkeys(curves["strategy"]))
    for row, metric in enumerate(("mean_dice", "worst_dice")):
        for col, (x, xlabel) in enumerate(xs.items()):
            ax = axes[row, col]
            scale = 1.0 if x == "n_labeled" else 1e-3
            for lab in order:
                g = curves[curves["strategy"] == lab].groupby("cycle")
                px = g[x].mean().to_numpy(float) * scale
                _band(ax, px, g[metric].mean(), g[metric].std().fillna(0.0), lab)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test " + metric.replace("_", " ").replace("worst", "worst-class"))
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    return _save(fig, png, title)
