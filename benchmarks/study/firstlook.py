"""A first look at a new arm before the study runs it: its runs (same data, pretraining and
seeds as a study pool, in a folder of their own) next to the pool's kept runs, cycle by
cycle and seed by seed. Recorded as ``benchmarks/results/al_study_firstlooks.md``.

Usage (repository root)::

    .venv/bin/python benchmarks/study/firstlook.py POOL OUT [OUT ...]

``POOL`` names a kept pool (``benchmarks/results/study/POOL``); each ``OUT`` is a benchmark
folder whose runs used that pool's ``data/`` and ``encoders/`` (copied in before the run).
Too few seeds for intervals: the per-seed rows are the result, not a verdict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run as bench_run  # noqa: E402  (benchmarks/run.py: the results writer)

KEPT = HERE.parent / "results" / "study"


def _runs(folder: Path) -> dict[tuple[str, int], list[dict]]:
    """``(arm, seed) -> history`` of every run state under ``folder/runs``."""
    out = {}
    for state in sorted(folder.glob("runs/*/seed_*/state.json")):
        history = json.loads(state.read_text())["history"]
        if history:
            out[(state.parent.parent.name, int(state.parent.name.removeprefix("seed_")))] = history
    return out


def _cells(history: list[dict], sizes: list[int]) -> list[str]:
    by_n = {h["n_labeled"]: h["accuracy"] for h in history}
    cells = [f"{by_n[n]:.3f}" if n in by_n else "–" for n in sizes]
    per_class = history[-1].get("per_class_accuracy") or {}
    if per_class and history[-1]["n_labeled"] == sizes[-1]:
        name = min(per_class, key=per_class.get)
        cells.append(f"{name} {per_class[name]:.2f}")
    else:
        cells.append("–")
    return cells


def build(pool: str, folders: list[Path]) -> str:
    reference = _runs(KEPT / pool)
    new: dict[tuple[str, int], list[dict]] = {}
    for folder in folders:
        new.update(_runs(folder))
    sizes = sorted({h["n_labeled"] for hs in [*reference.values(), *new.values()] for h in hs})
    lines = [
        f"Pool `{pool}` (its kept runs, `benchmarks/results/study/{pool}/`) and new arms run "
        "on the same data, encoder and seeds; test accuracy per labelled-set size, per seed "
        "(– : not run or not finished). Too few seeds for intervals.",
        "",
    ]
    for seed in sorted({s for _, s in new}):
        lines += [f"### seed {seed}", "",
                  "| arm | " + " | ".join(str(n) for n in sizes) + " | worst class at the end |",
                  "|---|" + "---|" * (len(sizes) + 1)]  # fmt: skip
        for (arm, s), history in sorted({**reference, **new}.items()):
            if s == seed:
                marker = " (new)" if (arm, s) in new else ""
                lines.append(f"| {arm}{marker} | " + " | ".join(_cells(history, sizes)) + " |")
        lines.append("")
        for (arm, s), history in sorted(new.items()):
            pseudo = [
                (h["n_labeled"], h["pseudo_labels"]) for h in history if h.get("pseudo_labels")
            ]
            if s == seed and pseudo:
                lines += [f"{arm}: pseudo-labels held at the end of each cycle (share of the "
                          "pool / share right): " + "; ".join(
                              f"{n}: {p['coverage']:.2f} / {p['accuracy']:.2f}"
                              for n, p in pseudo if p.get("accuracy") is not None), ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("Usage")[1].strip(), file=sys.stderr)
        return 2
    pool, folders = argv[0], [Path(a) for a in argv[1:]]
    command = "python benchmarks/study/firstlook.py " + " ".join(argv)
    print(bench_run.record("al_study_firstlooks", build(pool, folders), command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
