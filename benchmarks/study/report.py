"""Write issue 20's study into ``benchmarks/results/al_study.md`` (and RESULTS.md) from the
pools kept in ``benchmarks/results/study/`` by ``keep.py``, and copy each pool's curves to
``docs/images/al_study_<pool>_curves.png``.

Each pool's section is its benchmark summary (accuracy per labelled-set size, the three
paired comparisons the pool's config names, per-cycle differences, the class make-up of the
picks), headed by how many of its runs have finished and the pool's pretraining record.
Pools not run yet are listed as such, so the file always says how far the study got.

Usage (repository root)::

    .venv/bin/python benchmarks/study/report.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import run as bench_run  # noqa: E402  (benchmarks/run.py: the results writer)

from cryoal.benchmark.layout import run_dir  # noqa: E402

KEPT = HERE.parent / "results" / "study"
IMAGES = ROOT / "docs" / "images"
POOLS = {
    "snr01_balanced_v2": "SNR 0.1, balanced pool",
    "snr01_lt10": "SNR 0.1, 10:1 long-tailed pool",
    "snr005_balanced": "SNR 0.05, balanced pool",
    "snr005_lt10": "SNR 0.05, 10:1 long-tailed pool",
}
# the study config each kept pool was run from (benchmarks/study/<name>.yaml)
CONFIGS = {
    "snr01_balanced_v2": "snr01_balanced",
    "snr01_lt10": "snr01_lt10",
    "snr005_balanced": "snr005_balanced",
    "snr005_lt10": "snr005_lt10",
}
COMMAND = "bash benchmarks/study/run.sh /work/study POOL  (then benchmarks/study/report.py)"

INTRO = """\
Issue 20's study: does self-supervised pretraining on the pool (R1 = random labelling,
fine-tuned from the pool's encoder) and the pretrained default (A1 = TypiClust round 0 in the
encoder's embedding, then margin with the diversity stage in that embedding and a 0.2 class
cap, fine-tuned from the encoder) save labels against today's random labelling from scratch
(R0)? Per pool: 5 paired seeds (same test set, round-0 draw where the rule is the same, and
training seeds), budgets 50, 100, 200 … 600 labels of a 2,000-sample pool, test 3,000; the
`cpu` preset's teacher and training (500 steps); one encoder per pool (30 epochs of NT-Xent,
2 threads), shared by its pretrained arms. Three claims per pool, each with 95 % Student-t
intervals over seeds: A1 vs R0 (the product), R1 vs R0 (the training), A1 vs R1 (the
acquisition). The configs also hold `kt` with the new training and A1 with `explore: 0.2`;
their rows appear once they have run. Configs: `benchmarks/study/<pool>.yaml`; finished run
states: `benchmarks/results/study/<pool>/`. The balanced SNR 0.1 pool was run twice: its
first R1 and A1 runs (`snr01_balanced/`) started from an encoder that today's pretraining no
longer reproduces (typical round 0 at 50 labels 0.615 there, 0.527 now), so the pool was run
again on today's encoder (`snr01_balanced_v2/`: R0's states copied, the pretrained arms
rerun); the first run's folder stays for the record.
"""


def _demote(summary: str) -> str:
    """The summary's body without its title, headings two levels down."""
    lines = summary.splitlines()[1:]
    return "\n".join("##" + ln if ln.startswith("#") else ln for ln in lines).strip()


def _progress(pool: str, folder: Path) -> str:
    """Finished runs against the study's config for the pool (``CONFIGS``), naming each arm
    that has fewer than all its seeds (the kept ``benchmark.yaml`` holds only the arms run
    so far, so it cannot say what is still to run)."""
    cfg = yaml.safe_load((HERE / f"{CONFIGS[pool]}.yaml").read_text())
    seeds = yaml.safe_load((folder / "benchmark.yaml").read_text())["seeds"]
    labels = [s["label"] for s in cfg["strategies"]]
    done = {
        label: sum((run_dir(folder, label, seed) / "state.json").is_file() for seed in seeds)
        for label in labels
    }
    short = [f"{label} {n}/{len(seeds)}" for label, n in done.items() if n < len(seeds)]
    line = f"{sum(done.values())} of {len(labels) * len(seeds)} runs finished"
    return line + (f" (still to run: {', '.join(short)})" if short else "")


def _pretraining(folder: Path) -> str:
    record = folder / "pretraining.json"
    if not record.is_file():
        return "pretraining record not kept"
    info = json.loads(record.read_text())
    hist = info.get("history") or [{}]
    cfg = info.get("config", {})
    return (
        f"pretraining: {cfg.get('objective', info.get('objective'))}, {len(hist)} epochs on "
        f"{info['n_samples']:,} samples, loss {hist[0].get('loss', float('nan')):.3f} → "
        f"{hist[-1].get('loss', float('nan')):.3f}, {info['elapsed_s'] / 60:.1f} min wall"
    )


def build() -> str:
    parts = [INTRO]
    missing = []
    for pool, title in POOLS.items():
        folder = KEPT / pool
        if not (folder / "summary.md").is_file():
            missing.append(title)
            continue
        image = IMAGES / f"al_study_{pool}_curves.png"
        if (folder / "curves.png").is_file():
            shutil.copyfile(folder / "curves.png", image)
        parts += [
            f"### {title}",
            "",
            f"{_progress(pool, folder)}; {_pretraining(folder)}. Curves: `docs/images/{image.name}`.",
            "",
            _demote((folder / "summary.md").read_text()),
            "",
        ]
    if missing:
        parts.append(f"Not run yet: {'; '.join(missing)}.")
    return "\n".join(parts)


def main() -> int:
    out = bench_run.record("al_study", build(), COMMAND)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
