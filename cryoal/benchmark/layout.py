"""Where a benchmark keeps its files: ``OUT/runs/<strategy>/seed_<s>/`` and the reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def slug(label: str) -> str:
    """A folder-safe form of a strategy's display name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "strategy"


def run_dir(out: Path, label: str, seed: int) -> Path:
    """The resumable engine folder of one (strategy, seed) run."""
    return Path(out) / "runs" / slug(label) / f"seed_{seed}"


@dataclass
class BenchmarkResult:
    """Paths written by :func:`cryoal.benchmark.run_benchmark`."""

    out_dir: Path
    curves_csv: Path
    selections_csv: Path
    summary_md: Path
    curves_png: Path
    selections_png: Path

    @classmethod
    def in_folder(cls, out: Path) -> BenchmarkResult:
        out = Path(out)
        return cls(
            out,
            out / "curves.csv",
            out / "selections.csv",
            out / "summary.md",
            out / "curves.png",
            out / "selections.png",
        )
