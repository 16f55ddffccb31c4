"""The segmentation benchmark's report: Dice and IoU against crops labelled and edit cost.

``curves.csv`` has :data:`CURVE_COLUMNS`: per strategy, seed and cycle the test crops'
foreground Dice and IoU (mean and worst class, from the summed voxel confusion counts)
and the cumulative edit cost of the labelled crops in voxels, painted from scratch
(``cost_scratch``) and corrected from the proposing teacher's mask (``cost_correct``,
:mod:`cryoal.al.edit_cost`). ``summary.md`` compares every arm, paired by seed, with
``random`` and ``random_foreground`` (those of them that are arms, or the configured
``comparisons``): ALC differences against crops and against each edit cost (the mean
Dice over the cost range both runs of a seed cover), final Dice differences, all with 95 %
Student-t intervals, and the crops and the cost each arm needs to reach the reference's
final mean Dice, as ratios with intervals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.benchmark.config import BenchmarkConfig
from cryoal.benchmark.report import (
    MIN_VERDICT_SEEDS,
    labels_ratios,
    mean_std,
    paired_alc_over,
    paired_differences,
    picks_table,
    ratio_text,
    sample_std,
    verdict_of,
)
from cryoal.benchmark.stats import Interval, area_under_curve, t_interval

METRIC_COLUMNS = ("mean_dice", "worst_dice", "mean_iou", "worst_iou")
#: Cumulative edit cost column of each mode (voxels).
COST_COLUMNS = {"scratch": "cost_scratch", "correct": "cost_correct"}
CURVE_COLUMNS = (
    "strategy", "seed", "cycle", "n_labeled", *METRIC_COLUMNS, *COST_COLUMNS.values(),
    "train_s", "score_s",
)  # fmt: skip
#: The baselines every arm is compared with (those that are arms of the benchmark).
REFERENCES = ("random", "random_foreground")


def segment_columns(record: dict[str, Any]) -> dict[str, Any]:
    """The Dice / IoU and cost columns of one engine history record."""
    cost = record.get("cost") or {}
    return {
        **{k: record.get(k) for k in METRIC_COLUMNS},
        **{col: cost.get(mode) for mode, col in COST_COLUMNS.items()},
    }


def _header(cfg: BenchmarkConfig, out: Path) -> list[str]:
    d, t = cfg.data, cfg.train
    src = d.store or f"simulated from {Path(d.templates).name if d.templates else 'phantoms'}"
    if d.tomograms is not None:
        tm = d.tomograms
        src = (
            f"crops around the particles of {tm.count} tomograms of "
            f"{'×'.join(map(str, tm.shape_zyx))} voxels with {tm.particles} particles each "
            f"({src}{', membranes' if tm.membranes else ''}), the last {tm.test} held out"
        )
    split_path = out / "data" / "split.json"
    split = json.loads(split_path.read_text()) if split_path.is_file() else None
    counts = f"; pool {split['pool_crops']}, test {split['test_crops']} crops" if split else ""
    length = f"{t.steps} optimizer steps" if t.steps else f"{t.epochs} epochs"
    return [
        f"# Segmentation active-learning benchmark: preset `{cfg.preset}`",
        "",
        f"Data: {src}; {d.box}^3 voxels at {d.voxel_size_A:g} Å, SNR {d.snr:g}, tilt "
        f"{d.tilt_range[0]:g}..{d.tilt_range[1]:g}°{counts}. Schedule: {cfg.schedule_text()} "
        f"(crops). Teacher `{t.teacher_preset}`, student `{t.student_preset}` (when a strategy "
        f"needs one), {length}, batch {t.batch_size}. Seeds {cfg.seeds}.",
        "",
        "Dice and IoU are foreground scores from the voxel confusion counts summed over all "
        "test crops (background and voxels outside the tomograms left out): the mean over "
        "classes and the worst class. Edit cost is the simulated annotator's, in voxels, "
        "summed over the labelled crops: *scratch* = painting each mask (its true foreground "
        "voxels); *correct* = correcting the mask of the teacher that proposed the crop (the "
        "voxels where it differs from the truth; round 0 has no model, so its crops cost "
        "their scratch cost in both modes).",
        "",
    ]


def summarise_segment(
    cfg: BenchmarkConfig, out: Path, curves: pd.DataFrame, selections: pd.DataFrame
) -> str:
    """The Markdown summary of a segmentation benchmark (see the module docstring)."""
    lines = _header(cfg, out)
    if curves.empty:
        return "\n".join([*lines, "No finished cycles yet."]) + "\n"
    labels = [lab for lab in cfg.labels() if lab in set(curves["strategy"])]
    ns = sorted(curves["n_labeled"].unique())
    g = curves.groupby(["strategy", "n_labeled"])
    lines += [
        "## Test mean Dice / worst-class Dice (mean ± std over seeds) per crops labelled",
        "",
        "| strategy | " + " | ".join(str(n) for n in ns) + " |",
        "|---|" + "---|" * len(ns),
    ]
    for lab in labels:
        cells = []
        for n in ns:
            if (lab, n) not in g.groups:
                cells.append("–")
                continue
            sub = g.get_group((lab, n))
            cells.append(
                f"{mean_std(sub['mean_dice'].mean(), sub['mean_dice'].std())} / "
                f"{mean_std(sub['worst_dice'].mean(), sub['worst_dice'].std())}"
            )
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines.append("")
    complete = {
        key: grp.sort_values("n_labeled")
        for key, grp in curves.groupby(["strategy", "seed"])
        if len(grp) == cfg.n_cycles
    }
    lines += _per_strategy(labels, curves, complete)
    pairs = cfg.comparisons or [
        (lab, ref) for ref in REFERENCES if ref in labels for lab in labels if lab != ref
    ]
    for against in dict.fromkeys(r for _, r in pairs):
        if against in labels:
            arms = [a for a, r in pairs if r == against and a in labels]
            lines += _versus(arms, against, complete)
    if not selections.empty:
        lines += picks_table(labels, selections)
    return "\n".join(lines) + "\n"


def _per_strategy(
    labels: list[str], curves: pd.DataFrame, complete: dict[Any, pd.DataFrame]
) -> list[str]:
    lines = [
        "## Summary per strategy",
        "",
        "Final = at the last cycle (mean ± std over seeds). ALC = area under the mean-Dice-vs-"
        "crops curve divided by the crop range. Cost = cumulative edit cost of the final "
        "labelled set, thousands of voxels. Times are seconds per cycle.",
        "",
        "| strategy | final mean Dice | final worst Dice | final mean IoU | final worst IoU "
        "| ALC | cost scratch (k) | cost correct (k) | train s | score s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lab in labels:
        runs = [v for (lb, _), v in complete.items() if lb == lab]
        if not runs:
            lines.append(f"| {lab} | (running) | | | | | | | | |")
            continue
        final = pd.DataFrame([r.iloc[-1] for r in runs])
        cells = [
            mean_std(final[c].astype(float).mean(), sample_std(final[c].to_numpy(float)))
            for c in METRIC_COLUMNS
        ]
        alc = np.array([area_under_curve(r["n_labeled"], r["mean_dice"]) for r in runs])
        costs = [
            mean_std(
                final[c].astype(float).mean() / 1e3, sample_std(final[c].to_numpy(float) / 1e3)
            )
            for c in COST_COLUMNS.values()
        ]
        sub = curves[curves["strategy"] == lab]
        score_s = sub["score_s"].dropna().mean() if sub["score_s"].notna().any() else 0.0
        lines.append(
            f"| {lab} | {' | '.join(cells)} | {mean_std(alc.mean(), sample_std(alc))} | {' | '.join(costs)} "
            f"| {sub['train_s'].mean():.1f} | {score_s:.1f} |"
        )
    return [*lines, ""]


def _versus(arms: list[str], ref: str, complete: dict[Any, pd.DataFrame]) -> list[str]:
    """Each of ``arms`` against ``ref``, paired by seed: ALC and final mean / worst-class
    Dice differences, and the crops and costs to reach ``ref``'s final mean Dice."""
    finals = [v["mean_dice"].iloc[-1] for (lab, _), v in complete.items() if lab == ref]
    target = float(np.nanmean(finals)) if finals else None
    lines = [
        f"## Against {ref} (paired by seed: same initial crops, test set and training seeds)",
        "",
        f"Mean paired difference to {ref} with its 95 % Student-t interval over seeds. ALC "
        f"against crops: the mean Dice over the crop schedule; against a cost: the mean Dice "
        f"over the range of edit cost (scratch or correction) that both runs of a seed "
        f"cover, curves linear between cycles. An arm *beats {ref}* on an axis when the "
        f"interval of its ALC difference there lies above zero (judged on "
        f"{MIN_VERDICT_SEEDS} or more paired seeds). Crops / cost to reach = per "
        f"seed, the crops (or edit cost, linear between cycles) the arm needs to reach {ref}'s "
        f"final mean Dice ({'n/a' if target is None else f'{target:.3f}'}) divided by what "
        f"{ref} needs (its last value when it never does); below 1 saves.",
        "",
        "| strategy | seeds | ALC difference (crops) | ALC difference (scratch cost) | ALC "
        "difference (correction cost) | final Dice difference | final worst-class Dice "
        "difference | crops to reach | scratch cost to reach | correction cost to reach "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lab in arms:
        if lab == ref:
            continue
        per_n, alc = paired_differences(lab, ref, complete, metric="mean_dice")
        if not alc:
            continue
        worst, _ = paired_differences(lab, ref, complete, metric="worst_dice")
        d_alc = t_interval(alc)
        d_cost = {
            mode: t_interval(paired_alc_over(lab, ref, complete, metric="mean_dice", x=col))
            for mode, col in COST_COLUMNS.items()
        }
        last = max(per_n)
        reach = ["n/a"] * 3
        if target is not None and np.isfinite(target):
            reach = [
                ratio_text(
                    *labels_ratios(lab, ref, complete, target, None, metric="mean_dice", x=x)
                )
                for x in ("n_labeled", *COST_COLUMNS.values())
            ]
        lines.append(
            f"| {lab} | {d_alc.n} | {d_alc} | {d_cost['scratch']} | {d_cost['correct']} "
            f"| {t_interval(per_n[last])} | {t_interval(worst.get(last, []))} "
            f"| {' | '.join(reach)} | {_verdicts(d_alc, d_cost, ref)} |"
        )
    return [*lines, ""]


def _verdicts(d_crops: Interval, d_cost: dict[str, Interval], ref: str) -> str:
    """The axes on which an arm's ALC interval excludes zero, grouped by verdict, e.g.
    ``worse than random (crops, scratch cost)``; ``not resolved`` on none, ``too few
    seeds`` below ``MIN_VERDICT_SEEDS`` pairs."""
    if d_crops.n < MIN_VERDICT_SEEDS:
        return verdict_of(d_crops, ref)
    axes = {
        "crops": d_crops,
        "scratch cost": d_cost["scratch"],
        "correction cost": d_cost["correct"],
    }
    by_verdict: dict[str, list[str]] = {}
    for axis, d in axes.items():
        by_verdict.setdefault(verdict_of(d, ref), []).append(axis)
    found = [f"{v} ({', '.join(a)})" for v, a in by_verdict.items() if v != "not resolved"]
    return "; ".join(found) or "not resolved"
