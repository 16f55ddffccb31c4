"""Write the studies kept in ``benchmarks/results/study/`` (by ``keep.py``) into
``benchmarks/results/<study>.md`` and RESULTS.md, and copy each pool's curves to
``docs/images/<study>_<pool>_curves.png``. Three studies (:data:`STUDIES`):

* ``al_study`` — issue 20: pretraining and the pretrained default acquisition, four pools;
* ``semi_study`` — issue 24: semi-supervised rounds (pool 1 so far);
* ``seg_study`` — issue 21: segmentation active learning, Dice against crops and edit cost.

Each pool's section is its benchmark summary (the paired comparisons its config names, the
class make-up of the picks), headed by how many of its runs have finished against the
study's config (naming the arms still short of their seeds) and, for pretrained pools, the
pool's pretraining record. Pools not run yet are listed as such, so each file always says
how far its study got.

Usage (repository root)::

    .venv/bin/python benchmarks/study/report.py              # all three
    .venv/bin/python benchmarks/study/report.py seg_study    # one
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import run as bench_run  # noqa: E402  (benchmarks/run.py: the results writer)

from cryoal.benchmark.config import load_benchmark_config  # noqa: E402
from cryoal.benchmark.layout import run_dir  # noqa: E402

KEPT = HERE.parent / "results" / "study"
IMAGES = ROOT / "docs" / "images"
#: A kept run's state (``keep.py save`` keeps the states of finished runs only).
FINISHED_RUNS = "runs/*/seed_*/state.json"

AL_INTRO = """\
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


@dataclass(frozen=True)
class Study:
    """A study: its pools (kept folder -> title, in report order), the study config each
    pool's arms come from (``benchmarks/study/<name>.yaml``), its intro and how it is run."""

    intro: str
    pools: dict[str, str]
    configs: dict[str, str]
    command: str
    #: arms stopped on purpose before all their seeds (the intro says why)
    stopped: frozenset[str] = frozenset()


SEMI_INTRO = """\
Issue 24's study: do semi-supervised rounds (FixMatch on the pool's unlabelled samples,
fine-tuned from the pool's encoder) save labels beyond pretraining? R0 = random from scratch,
R1 = random fine-tuned from the encoder (both the runs of issue 20's pool, restored; on the
long-tailed pool, whose encoder had not been kept, R1 ran again on a new one), S1 = R1
with semi-supervised rounds, A2 = the projects' default acquisition with them, kt with them,
and an ActiveKD arm (the frozen encoder with a linear head as the teacher, distilled into the
student, PCoreSet; stopped after two seeds, far below R1). 5 paired seeds, budgets 50 … 600 of
a 2,000-sample pool, test 3,000, the `cpu` preset's training. Configs:
`benchmarks/study/semi_snr01_balanced.yaml` (staged: S1 and ActiveKD, then A2
(`semi_snr01_balanced_stage2.yaml`), then kt) and `semi_snr01_lt10.yaml` (S1 first:
`semi_snr01_lt10_stage1.yaml`); finished runs: `benchmarks/results/study/semi_<pool>/`.
"""

SEG_INTRO = """\
Issue 21's study: does any acquisition rule make segmentation labels go further than random
crops, counted in crops and in the simulated annotator's edit cost (painting each mask from
scratch; correcting the proposing model's mask)? The `cpu-seg` preset: 32³ crops around the
particles of 10 simulated tomograms (crowded particles of 4 maps, a vesicle and a membrane
sheet), the last 2 tomograms held out; 10 → 100 crops; 800 training steps per budget; arms
random, foreground-aware random, KT-MSE (voxel mean, foreground-weighted, top 10 %), entropy
and entropy-gradnorm; 5 paired seeds. Configs: `benchmarks/study/seg_snr01.yaml`,
`seg_snr005.yaml`; finished runs: `benchmarks/results/study/seg_<snr>/`.
"""

STUDIES = {
    "al_study": Study(
        AL_INTRO,
        {
            "snr01_balanced_v2": "SNR 0.1, balanced pool",
            "snr01_lt10": "SNR 0.1, 10:1 long-tailed pool",
            "snr005_balanced": "SNR 0.05, balanced pool",
            "snr005_lt10": "SNR 0.05, 10:1 long-tailed pool",
        },
        {
            "snr01_balanced_v2": "snr01_balanced",
            "snr01_lt10": "snr01_lt10",
            "snr005_balanced": "snr005_balanced",
            "snr005_lt10": "snr005_lt10",
        },
        "bash benchmarks/study/run.sh /work/study POOL  (then benchmarks/study/report.py)",
    ),
    "semi_study": Study(
        SEMI_INTRO,
        {
            "semi_snr01_balanced": "SNR 0.1, balanced pool",
            "semi_snr01_lt10": "SNR 0.1, 10:1 long-tailed pool",
            "semi_snr005_balanced": "SNR 0.05, balanced pool",
            "semi_snr005_lt10": "SNR 0.05, 10:1 long-tailed pool",
        },
        {"semi_snr01_balanced": "semi_snr01_balanced", "semi_snr01_lt10": "semi_snr01_lt10"},
        "cryoal benchmark --preset cpu --config benchmarks/study/semi_snr01_balanced.yaml "
        "--jobs 1 --out OUT  (R0, R1 restored first; then benchmarks/study/report.py)",
        stopped=frozenset({"activekd-probe+pcoreset"}),
    ),
    "seg_study": Study(
        SEG_INTRO,
        {"seg_snr01": "SNR 0.1", "seg_snr005": "SNR 0.05"},
        {"seg_snr01": "seg_snr01", "seg_snr005": "seg_snr005"},
        "cryoal benchmark --preset cpu-seg --config benchmarks/study/seg_snr01.yaml --jobs 1 "
        "--out OUT  (then benchmarks/study/report.py)",
    ),
}


def _demote(summary: str) -> str:
    """The summary's body without its title, headings two levels down."""
    lines = summary.splitlines()[1:]
    return "\n".join("##" + ln if ln.startswith("#") else ln for ln in lines).strip()


def _progress(config: str, folder: Path, stopped: frozenset[str] = frozenset()) -> str:
    """Finished runs against the study config ``config`` (resolved over the preset the kept
    runs used), naming each arm that has fewer than all its seeds (the kept
    ``benchmark.yaml`` holds only the arms run so far, so it cannot say what is still to
    run)."""
    kept = yaml.safe_load((folder / "benchmark.yaml").read_text())
    cfg = load_benchmark_config(kept.get("preset"), HERE / f"{config}.yaml")
    seeds = kept["seeds"]
    done = {
        label: sum((run_dir(folder, label, seed) / "state.json").is_file() for seed in seeds)
        for label in cfg.labels()
    }
    short = [
        f"{label} {n}/{len(seeds)}"
        for label, n in done.items()
        if n < len(seeds) and label not in stopped
    ]
    halted = [f"{label} at {done[label]}/{len(seeds)}" for label in stopped if label in done]
    line = f"{sum(done.values())} of {len(done) * len(seeds)} runs finished"
    line += f" (still to run: {', '.join(short)})" if short else ""
    return line + (f"; stopped: {', '.join(halted)}" if halted else "")


def _pretraining(folder: Path) -> str:
    """The pool's pretraining record as a clause, or "" for a pool without one."""
    record = folder / "pretraining.json"
    if not record.is_file():
        return ""
    info = json.loads(record.read_text())
    hist = info.get("history") or [{}]
    cfg = info.get("config", {})
    return (
        f"; pretraining: {cfg.get('objective', info.get('objective'))}, {len(hist)} epochs on "
        f"{info['n_samples']:,} samples, loss {hist[0].get('loss', float('nan')):.3f} → "
        f"{hist[-1].get('loss', float('nan')):.3f}, {info['elapsed_s'] / 60:.1f} min wall"
    )


def build(study: Study, name: str) -> str:
    parts = [study.intro]
    missing = []
    for pool, title in study.pools.items():
        folder = KEPT / pool
        if not (folder / "summary.md").is_file() or not any(folder.glob(FINISHED_RUNS)):
            missing.append(title)  # a kept pool may hold only its encoder so far
            continue
        image = IMAGES / f"{name}_{pool}_curves.png"
        curves = ""
        if (folder / "curves.png").is_file():
            shutil.copyfile(folder / "curves.png", image)
            curves = f" Curves: `docs/images/{image.name}`."
        parts += [
            f"### {title}",
            "",
            f"{_progress(study.configs[pool], folder, study.stopped)}{_pretraining(folder)}."
            + curves,
            "",
            _demote((folder / "summary.md").read_text()),
            "",
        ]
    if missing:
        parts.append(f"Not run yet: {'; '.join(missing)}.")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in STUDIES]
    if unknown:
        print(f"report.py: unknown study {unknown[0]!r}; choose from {', '.join(STUDIES)}")
        return 2
    for name in argv or list(STUDIES):
        print(bench_run.record(name, build(STUDIES[name], name), STUDIES[name].command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
