"""Benchmark reports: the tables (curves.csv, selections.csv), summary.md and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoal.benchmark.config import BenchmarkConfig
from cryoal.benchmark.layout import BenchmarkResult, run_dir
from cryoal.benchmark.plots import plot_curves, plot_selections
from cryoal.benchmark.stats import (
    Interval,
    area_under_curve,
    labels_to_reach,
    mean_over_range,
    t_interval,
)
from cryoal.io.atomic import atomic_path, atomic_write_text


def collect(cfg: BenchmarkConfig, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(curves, selections)`` tables from every run state present under ``out/runs``."""
    rows: list[dict[str, Any]] = []
    sel_rows: list[dict[str, Any]] = []
    long_tailed = cfg.data.pool_imbalance != 1.0
    segment = cfg.task == "segment"
    if segment:
        from cryoal.benchmark.seg_report import CURVE_COLUMNS, segment_columns
    for label in cfg.labels():
        for seed in cfg.seeds:
            state_path = run_dir(out, label, seed) / "state.json"
            if not state_path.exists():
                continue
            state = json.loads(state_path.read_text())
            for h in state["history"]:
                if segment:
                    rows.append({
                        "strategy": label, "seed": seed, "cycle": h["cycle"],
                        "n_labeled": h["n_labeled"], **segment_columns(h),
                        "train_s": h["train_s"], "score_s": h["score_s"],
                    })  # fmt: skip
                    continue
                rows.append({
                    "strategy": label, "seed": seed, "cycle": h["cycle"],
                    "n_labeled": h["n_labeled"], "accuracy": h["accuracy"],
                    "macro_f1": h["macro_f1"], "train_s": h["train_s"], "score_s": h["score_s"],
                    **(_half_accuracies(h["per_class_accuracy"]) if long_tailed else {}),
                    **_pseudo_columns(h.get("pseudo_labels")),
                })  # fmt: skip
            for b in state["batches"]:
                sel_rows.append({
                    "strategy": label, "seed": seed, "round": b["round"], "selector": b["strategy"],
                    "n": b["n"], **b["class_counts"],
                })  # fmt: skip
    columns = ["strategy", "seed", "cycle", "n_labeled", "accuracy", "macro_f1", "train_s",
               "score_s", *(HALF_COLUMNS if long_tailed else ())]  # fmt: skip
    if segment:
        columns = list(CURVE_COLUMNS)
    if any(PSEUDO_COLUMNS[0] in r for r in rows):
        columns += PSEUDO_COLUMNS
    curves = pd.DataFrame(rows, columns=columns)
    selections = pd.DataFrame(sel_rows)
    return curves, selections


#: curves.csv columns of a long-tailed benchmark: mean test accuracy over the more frequent
#: and over the rarer half of the classes (label order; the middle class of an odd number
#: counts as frequent).
HALF_COLUMNS = ("frequent_half_accuracy", "rarer_half_accuracy")


#: curves.csv columns of semi-supervised runs, from the last epoch of each cycle's training:
#: share of the pool holding a pseudo-label (its latest prediction reached
#: ``pseudo_threshold``), their accuracy against the simulation's truth,
#: the lowest per-class coverage (by true class), and the share of unlabelled samples in the
#: last epoch's batches that passed their class's threshold, i.e. were pseudo-labelled in
#: the loss (NaN for runs recorded before it was kept).
PSEUDO_COLUMNS = ["pseudo_coverage", "pseudo_accuracy", "pseudo_worst_class_coverage",
                  "pseudo_used_fraction"]  # fmt: skip


def _pseudo_columns(pseudo: dict[str, Any] | None) -> dict[str, float]:
    if not pseudo:
        return {}
    per_class = [c for c in pseudo["per_class"]["coverage"] if c is not None]
    acc = pseudo.get("accuracy")
    used = pseudo.get("used_fraction")
    return {
        PSEUDO_COLUMNS[0]: float(pseudo["coverage"]),
        PSEUDO_COLUMNS[1]: float("nan") if acc is None else float(acc),
        PSEUDO_COLUMNS[2]: float(min(per_class)) if per_class else float("nan"),
        PSEUDO_COLUMNS[3]: float("nan") if used is None else float(used),
    }


def _pseudo_table(labels: list[str], curves: pd.DataFrame) -> list[str]:
    """Pseudo-labels of the semi-supervised arms per labelled-set size (mean over seeds)."""
    semi = curves.dropna(subset=[PSEUDO_COLUMNS[0]])
    if semi.empty:
        return []
    ns = sorted(semi["n_labeled"].unique())
    lines = [
        "## Pseudo-labels of the semi-supervised arms",
        "",
        "At the end of each cycle's training, mean over seeds: *used*, the share of "
        "unlabelled samples in the last epoch's batches whose confidence passed their class's "
        "threshold, so that the loss pseudo-labelled them (– for runs recorded before this was "
        "kept); *held*, the share of the pool whose latest prediction reached "
        "`pseudo_threshold` (with `pseudo_adaptive`, FlexMatch's learning state, from which "
        "the lower class thresholds follow); the share of held pseudo-labels that are right "
        "(accuracy, against the simulation's classes); and the held share of the least "
        "covered true class. Pseudo-labels never enter the labelled set.",
        "",
        "| strategy | "
        + " | ".join(f"{n}: used / held / accuracy / worst class" for n in ns)
        + " |",
        "|---|" + "---|" * len(ns),
    ]
    g = semi.groupby(["strategy", "n_labeled"])[PSEUDO_COLUMNS].mean()
    for lab in labels:
        if lab not in set(semi["strategy"]):
            continue
        cells = []
        for n in ns:
            if (lab, n) not in g.index:
                cells.append("–")
                continue
            cov, acc, worst, used = g.loc[(lab, n)]
            used_txt = "–" if np.isnan(used) else f"{used:.2f}"
            cells.append(f"{used_txt} / {cov:.2f} / {acc:.2f} / {worst:.2f}")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _half_accuracies(per_class: dict[str, float]) -> dict[str, float]:
    from cryoal.benchmark.data import rarer_half

    values = np.array(list(per_class.values()), float)
    rare = np.zeros(values.size, bool)
    rare[rarer_half(values.size)] = True
    return {
        HALF_COLUMNS[0]: float(values[~rare].mean()),
        HALF_COLUMNS[1]: float(values[rare].mean()) if rare.any() else float("nan"),
    }


def write_reports(cfg: BenchmarkConfig, out: Path) -> BenchmarkResult:
    """(Re)write curves.csv, selections.csv, summary.md, curves.png and selections.png."""
    curves, selections = collect(cfg, out)
    res = BenchmarkResult.in_folder(out)
    for df, path in ((curves, res.curves_csv), (selections, res.selections_csv)):
        with atomic_path(path, overwrite=True) as tmp:
            df.to_csv(tmp, index=False)
    if cfg.task == "segment":
        from cryoal.benchmark.plots import plot_segment_curves
        from cryoal.benchmark.seg_report import summarise_segment

        atomic_write_text(res.summary_md, summarise_segment(cfg, out, curves, selections))
        if not curves.empty:
            title = f"cryoal segmentation benchmark ({cfg.preset}, SNR {cfg.data.snr:g})"
            plot_segment_curves(curves, res.curves_png, title=title)
    else:
        atomic_write_text(res.summary_md, summarise(cfg, curves, selections))
    if not curves.empty and cfg.task != "segment":
        tail = "" if cfg.data.pool_imbalance == 1.0 else f", pool {cfg.data.pool_imbalance:g}:1"
        title = f"cryoal benchmark ({cfg.preset}, SNR {cfg.data.snr:g}{tail})"
        plot_curves(curves, res.curves_png, title=title)
    if not selections.empty:
        plot_selections(selections, res.selections_png)
    return res


def mean_std(mean: float, std: float) -> str:
    """``mean ± std``; just the mean when there is no spread to show (one seed)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def summarise(cfg: BenchmarkConfig, curves: pd.DataFrame, selections: pd.DataFrame) -> str:
    """The Markdown summary: accuracy per cycle, per-strategy figures, paired comparison
    with random (95 % intervals) and the class make-up of the picks."""
    d = cfg.data
    t = cfg.train
    lines = [f"# Active-learning benchmark: preset `{cfg.preset}`", ""]
    src = d.store or (f"simulated from {Path(d.templates).name if d.templates else 'phantoms'}")
    length = f"{t.steps} optimizer steps" if t.steps else f"{t.epochs} epochs"
    lines += [
        f"Data: {src}, {d.box}^3 voxels at {d.voxel_size_A:g} Å, SNR {d.snr:g}, "
        f"tilt {d.tilt_range[0]:g}..{d.tilt_range[1]:g}°; test {d.test_size}, pool "
        f"{d.pool_size or 'rest'}{_imbalance_note(d.pool_imbalance)}. Schedule: {cfg.schedule_text()}, round 0 "
        f"{'class-stratified' if cfg.stratified_initial else 'random'}{_round0_note(cfg)}, "
        f"{'warm start' if cfg.warm_start else 'retrained from scratch'}{_pretrained_note(cfg)}. Teacher "
        f"`{t.teacher_preset}`, student `{t.student_preset}` (when a strategy needs one), "
        f"{length}, batch {t.batch_size}, class balance `{t.class_balance}`, weights "
        f"{'EMA-averaged' if t.average == 'ema' else 'of the last step'}. Seeds {cfg.seeds}."
        f"{_evaluated_note(cfg)}",
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
            mean_std(mean.get((lab, n), float("nan")), std.get((lab, n), float("nan"))) for n in ns
        ]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines.append("")

    complete = {
        (lab, seed): grp.sort_values("n_labeled")
        for (lab, seed), grp in curves.groupby(["strategy", "seed"])
        if len(grp) == cfg.n_cycles
    }
    ref = "random" if "random" in labels else None
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
        "cycles, mean over the seeds that reach it. Times are seconds per cycle; wall = "
        "minutes per run (one process).",
        "",
        "| strategy | final accuracy | final macro-F1 | ALC | labels to reach random's final "
        "| train s | score s | wall min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lab in labels:
        runs = [v for (lb, _), v in complete.items() if lb == lab]
        if not runs:
            lines.append(f"| {lab} | (running) | | | | | | |")
            continue
        fin = np.array([r["accuracy"].iloc[-1] for r in runs])
        f1 = np.array([r["macro_f1"].iloc[-1] for r in runs], float)
        alc = np.array([area_under_curve(r["n_labeled"], r["accuracy"]) for r in runs])
        reach = (
            [labels_to_reach(r["n_labeled"], r["accuracy"], target) for r in runs]
            if (target is not None)
            else []
        )
        got = [x for x in reach if x is not None]
        reach_txt = "n/a" if target is None else (
            f"{np.mean(got):.0f}" + ("" if len(got) == len(reach) else f" ({len(got)}/{len(reach)} seeds)")
            if got else "not reached"
        )  # fmt: skip
        sub = curves[curves["strategy"] == lab]
        score_s = sub["score_s"].dropna().mean() if sub["score_s"].notna().any() else 0.0
        wall = (sub["train_s"].sum() + sub["score_s"].fillna(0).sum()) / max(len(runs), 1) / 60
        lines.append(
            f"| {lab} | {mean_std(fin.mean(), sample_std(fin))} | {mean_std(f1.mean(), sample_std(f1))} "
            f"| {mean_std(alc.mean(), sample_std(alc))} | {reach_txt} | {sub['train_s'].mean():.1f} "
            f"| {score_s:.1f} | {wall:.1f} |"
        )
    lines.append("")
    pairs = cfg.comparisons or ([(lab, ref) for lab in labels if lab != ref] if ref else [])
    for against in dict.fromkeys(r for _, r in pairs):
        if against in labels:
            lines += _versus(
                [a for a, r in pairs if r == against and a in labels], against, complete
            )
    if HALF_COLUMNS[1] in curves.columns:
        lines += _halves_table(labels, ref, complete)
    if PSEUDO_COLUMNS[0] in curves.columns:
        lines += _pseudo_table(labels, curves)
    if not selections.empty:
        lines += picks_table(labels, selections, cfg.data.pool_imbalance)
    return "\n".join(lines) + "\n"


def _halves_table(
    labels: list[str], ref: str | None, complete: dict[tuple[str, int], pd.DataFrame]
) -> list[str]:
    """Long-tailed pools: final accuracy on the frequent and the rarer half of the classes,
    and the paired difference to random on the rarer half."""
    lines = [
        "## Frequent and rarer classes (long-tailed pool)",
        "",
        "Final test accuracy averaged over the more frequent and over the rarer half of the "
        "classes (mean ± std over seeds), and the paired difference to random on the rarer "
        "half with its 95 % interval.",
        "",
        "| strategy | frequent half | rarer half | rarer half − random |",
        "|---|---|---|---|",
    ]
    finals = {key: run.iloc[-1] for key, run in complete.items()}
    for lab in labels:
        seeds = sorted(s for (lb, s) in finals if lb == lab)
        if not seeds:
            continue
        freq = np.array([finals[(lab, s)][HALF_COLUMNS[0]] for s in seeds], float)
        rare = np.array([finals[(lab, s)][HALF_COLUMNS[1]] for s in seeds], float)
        paired = [
            finals[(lab, s)][HALF_COLUMNS[1]] - finals[(ref, s)][HALF_COLUMNS[1]]
            for s in seeds
            if ref is not None and lab != ref and (ref, s) in finals
        ]
        diff = t_interval(paired) if paired else "–"
        lines.append(
            f"| {lab} | {mean_std(freq.mean(), sample_std(freq))} | {mean_std(rare.mean(), sample_std(rare))} | {diff} |"
        )
    return [*lines, ""]


def sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof 1) of ``values`` (S,); NaN for one value."""
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def seed_pairs(
    label: str, ref: str, complete: dict[tuple[str, int], pd.DataFrame]
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """``(label's curve, ref's curve)`` of every seed both have finished, by seed."""
    ref_runs = {s: v for (lab, s), v in complete.items() if lab == ref}
    return [
        (v, ref_runs[seed])
        for (lb, seed), v in sorted(complete.items(), key=lambda kv: kv[0][1])
        if lb == label and seed in ref_runs
    ]


def paired_differences(
    label: str,
    ref: str,
    complete: dict[tuple[str, int], pd.DataFrame],
    metric: str = "accuracy",
) -> tuple[dict[int, list[float]], list[float]]:
    """Per-seed differences ``label - ref`` of ``metric`` (a curves column): by
    labeled-set size, and in ALC (against labels)."""
    per_n: dict[int, list[float]] = {}
    alc: list[float] = []
    for v, r in seed_pairs(label, ref, complete):
        rn = r.set_index("n_labeled")[metric]
        for n, a in zip(v["n_labeled"], v[metric], strict=True):
            if n in rn.index:
                per_n.setdefault(int(n), []).append(float(a - rn[n]))
        alc.append(
            area_under_curve(v["n_labeled"], v[metric])
            - area_under_curve(r["n_labeled"], r[metric])
        )
    return per_n, alc


def paired_alc_over(
    label: str,
    ref: str,
    complete: dict[tuple[str, int], pd.DataFrame],
    *,
    metric: str,
    x: str,
) -> list[float]:
    """Per seed: ``label``'s mean ``metric`` minus ``ref``'s over the range of ``x`` (an
    edit cost, cumulative) that both runs of the seed cover (:func:`mean_over_range`), the
    ALC against ``x``; seeds whose runs share no range are left out."""
    out: list[float] = []
    for v, r in seed_pairs(label, ref, complete):
        lo = max(float(v[x].iloc[0]), float(r[x].iloc[0]))
        hi = min(float(v[x].iloc[-1]), float(r[x].iloc[-1]))
        if hi > lo:
            out.append(
                mean_over_range(v[x], v[metric], lo, hi) - mean_over_range(r[x], r[metric], lo, hi)
            )
    return out


def labels_ratios(
    label: str,
    ref: str,
    complete: dict[tuple[str, int], pd.DataFrame],
    target: float,
    n_final: float | None,
    *,
    metric: str = "accuracy",
    x: str = "n_labeled",
) -> tuple[list[float], int]:
    """Per seed: the ``x`` (labels, or an edit cost) ``label`` needs for ``metric`` to reach
    ``target`` divided by what ``ref`` needs with the same seed (``n_final`` when ``ref``
    never reaches it; None: ``ref``'s last ``x``); seeds where ``label`` never reaches it
    are left out. Returns the ratios and the number of seeds."""
    pairs = seed_pairs(label, ref, complete)
    ratios: list[float] = []
    for v, r in pairs:
        mine = labels_to_reach(v[x], v[metric], target)
        fallback = float(r[x].iloc[-1]) if n_final is None else float(n_final)
        theirs = labels_to_reach(r[x], r[metric], target) or fallback
        if mine is not None:
            ratios.append(mine / theirs)
    return ratios, len(pairs)


def ratio_text(ratios: list[float], pairs: int) -> str:
    """A :func:`labels_ratios` result for a table: mean [95 % interval], and how many
    seeds reach the target when not all do."""
    if not ratios:
        return "not reached"
    ci = t_interval(ratios)
    text = f"{ci.mean:.2f}" if ci.n < 2 else f"{ci.mean:.2f} [{ci.low:.2f}, {ci.high:.2f}]"
    if len(ratios) < pairs:
        text += f" ({len(ratios)}/{pairs} seeds reach it)"
    return text


def _versus(
    arms: list[str],
    ref: str,
    complete: dict[tuple[str, int], pd.DataFrame],
) -> list[str]:
    """Each of ``arms`` against ``ref``, paired by seed: ALC, final accuracy, labels ratio
    to ``ref``'s final mean accuracy, accuracy with half the labels against ``ref``'s
    final, and the per-cycle differences (95 % intervals)."""
    finals = [v["accuracy"].iloc[-1] for (lab, _), v in complete.items() if lab == ref]
    target = float(np.mean(finals)) if finals else None
    n_final = max(int(v["n_labeled"].iloc[-1]) for v in complete.values()) if complete else 0
    lines = [
        f"## Against {ref} (paired by seed: same test set and training seeds)",
        "",
        f"Mean paired difference to {ref} with its 95 % Student-t interval over seeds. A "
        f"strategy *beats {ref}* when the interval of its ALC difference lies above zero "
        f"(judged on {MIN_VERDICT_SEEDS} or more paired seeds). "
        f"Labels ratio = per seed, the labels the strategy needs to reach {ref}'s final mean "
        f"accuracy ({'n/a' if target is None else f'{target:.3f}'}) divided by the labels "
        f"{ref} needs (its last label count when it never does); below 1 saves labels. Half "
        f"the labels = the strategy's accuracy at {n_final // 2} labels minus {ref}'s at "
        f"{n_final}.",
        "",
        f"| strategy | seeds | ALC difference | final difference | labels ratio | half the "
        f"labels − {ref} final | cycles below {ref} (mean) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    details = []
    for lab in arms:
        if lab == ref:
            continue
        per_n, alc = paired_differences(lab, ref, complete)
        if not alc:
            continue
        d_alc = t_interval(alc)
        last = max(per_n)
        d_fin = t_interval(per_n[last])
        below = [n for n in sorted(per_n) if np.mean(per_n[n]) < 0]
        ratio_txt = "n/a"
        if target is not None and n_final:
            ratio_txt = ratio_text(*labels_ratios(lab, ref, complete, target, n_final))
        half = half_budget_differences(lab, ref, complete, n_final)
        verdict = verdict_of(d_alc, ref)
        lines.append(
            f"| {lab} | {d_alc.n} | {d_alc} | {d_fin} | {ratio_txt} "
            f"| {t_interval(half) if half else 'n/a'} "
            f"| {', '.join(map(str, below)) or 'none'} | {verdict} |"
        )
        details.append(
            f"- **{lab}** per cycle: "
            + "; ".join(f"{n}: {t_interval(per_n[n])}" for n in sorted(per_n))
        )
    return [*lines, "", *details, ""]


#: Fewest paired seeds a verdict is given on: with two, the interval rests on one degree of
#: freedom, and two seeds that happen to differ from ``ref`` by the same amount give an
#: interval of zero width that "excludes zero" (seen in a study: both seeds 0.00917).
MIN_VERDICT_SEEDS = 3


def verdict_of(d_alc: Interval, ref: str) -> str:
    """``beats ref`` / ``worse than ref`` when the paired ALC interval excludes zero;
    ``too few seeds`` below ``MIN_VERDICT_SEEDS`` pairs, whatever the interval."""
    if d_alc.n < MIN_VERDICT_SEEDS:
        return f"too few seeds ({d_alc.n} of at least {MIN_VERDICT_SEEDS})"
    if d_alc.above_zero:
        return f"beats {ref}"
    if d_alc.below_zero:
        return f"worse than {ref}"
    return "not resolved"


def half_budget_differences(
    label: str, ref: str, complete: dict[tuple[str, int], pd.DataFrame], n_final: int
) -> list[float]:
    """Per seed: ``label``'s accuracy at ``n_final // 2`` labels minus ``ref``'s at
    ``n_final`` (empty when ``label`` has no training at half the labels)."""
    out = []
    for v, r in seed_pairs(label, ref, complete):
        mine = v.set_index("n_labeled")["accuracy"]
        theirs = r.set_index("n_labeled")["accuracy"]
        if n_final // 2 in mine.index and n_final in theirs.index:
            out.append(float(mine[n_final // 2] - theirs[n_final]))
    return out


def _round0_note(cfg: BenchmarkConfig) -> str:
    typical = [s.display_name for s in cfg.strategies if s.round0 == "typical"]
    if not typical:
        return ""
    return f" (TypiClust in the pretrained encoder's embedding for {', '.join(typical)})"


def _pretrained_note(cfg: BenchmarkConfig) -> str:
    pretrained = [s.display_name for s in cfg.strategies if s.pretrained]
    if not pretrained:
        return ""
    return f" (from the encoder pretrained on the pool for {', '.join(pretrained)})"


def _evaluated_note(cfg: BenchmarkConfig) -> str:
    students = [s.display_name for s in cfg.strategies if s.evaluate == "student"]
    if not students:
        return ""
    return f" Accuracy is the trained student's for {', '.join(students)}, else the teacher's."


def _imbalance_note(imbalance: float) -> str:
    if imbalance == 1.0:
        return ""
    return f" (long-tailed: {imbalance:g}× more of the first class than of the last)"


def picks_table(
    labels: list[str], selections: pd.DataFrame, pool_imbalance: float = 1.0
) -> list[str]:
    """The "what each strategy picked" section: class make-up of the acquired batches
    (round 0 excluded); with a long-tailed pool, also the share of picks from its rarer half."""
    from cryoal.benchmark.data import long_tail_shares, rarer_half

    meta = {"strategy", "seed", "round", "selector", "n"}
    classes = [c for c in selections.columns if c not in meta]
    acq = selections[selections["round"] > 0]
    if acq.empty or not classes:
        return []
    rare = rarer_half(len(classes))
    long_tailed = pool_imbalance != 1.0
    header = "| strategy | largest class share | most picked classes | never picked |"
    lines = [
        "## What each strategy picked (true classes of the acquired batches, all seeds)",
        "",
        "Largest class share = the mean over batches of the most frequent class's share of the "
        f"batch (uniform over {len(classes)} classes would be about {1 / len(classes):.2f}).",
    ]
    if long_tailed:
        pool_share = long_tail_shares(len(classes), pool_imbalance)[rare].sum()
        lines.append(
            f"Rarer half = the share of the picks from the {len(classes[rare])} rarest classes of "
            f"the long-tailed pool ({', '.join(classes[rare])}), which hold {pool_share:.0%} of "
            "the pool."
        )
        header += " rarer half |"
    lines += ["", header, "|---|---|---|---|" + ("---|" if long_tailed else "")]
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
        row = f"| {lab} | {share:.2f} | {top} | {never} |"
        if long_tailed:
            row += f" {tot[rare].sum() / max(tot.sum(), 1):.0%} |"
        lines.append(row)
    return [*lines, ""]
