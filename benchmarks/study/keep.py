"""Keep a study's finished runs in the repository, and put them back, so that a study
spanning several sittings resumes where it stopped.

A benchmark folder (``cryoal benchmark --out OUT``) holds each (strategy, seed) run as
``runs/<strategy>/seed_<s>/state.json`` beside model weights that a finished run no longer
needs: its reports are rebuilt from the states alone. ``save`` copies the states of the
finished runs (once a study is kept, of its own arms only: those of the kept
``benchmark.yaml`` and those a later stage's configuration adds), the pool's pretraining record
(``pretraining.json``) and the finished encoder itself (``encoders/<key>/encoder.json``
and ``encoder.safetensors``, about 1 MB) into ``benchmarks/results/study/<name>/`` and rebuilds its reports from every kept state
under the kept ``benchmark.yaml`` (so a sitting may run a filtered configuration: a subset
of arms or seeds); ``restore`` copies the states and the encoder back into an output
folder, where ``cryoal benchmark`` with the same configuration and ``--out`` skips the
finished runs, reuses the encoder (the same weights for every sitting's pretrained runs,
and no second pretraining) and trains only what is left.

Usage (repository root)::

    .venv/bin/python benchmarks/study/keep.py save OUT NAME
    .venv/bin/python benchmarks/study/keep.py restore NAME OUT
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

KEPT = Path(__file__).resolve().parents[1] / "results" / "study"
#: A finished encoder's files, in the order they are copied (``encoder.json`` last: its
#: presence is what marks the encoder finished).
ENCODER_FILES = ("encoder.safetensors", "encoder.json")
REPORTS = ("benchmark.yaml", "summary.md", "curves.csv", "selections.csv", "curves.png",
           "selections.png")  # fmt: skip


def _finished(state: Path) -> bool:
    try:
        return bool(json.loads(state.read_text())["phase"] == "done")
    except (OSError, ValueError, KeyError):
        return False


def save(out: Path, name: str) -> list[Path]:
    """Copy ``out``'s finished run states to ``KEPT/name`` with the reports: rebuilt from all
    kept states under the kept ``benchmark.yaml`` when there is one, else copied from ``out``;
    the paths written. With a kept ``benchmark.yaml`` only its arms' states are copied, so
    runs of another study restored into ``out`` to be reused (its R0 and R1) stay out; the
    arms that ``out``'s own ``benchmark.yaml`` adds (a later stage) join the kept one."""
    from cryoal.benchmark.config import load_benchmark_config
    from cryoal.benchmark.layout import slug

    dest = KEPT / name
    kept_config = dest / "benchmark.yaml"
    config = load_benchmark_config(None, kept_config) if kept_config.is_file() else None
    if config is not None and (out / "benchmark.yaml").is_file():
        merged = _with_new_arms(config, load_benchmark_config(None, out / "benchmark.yaml"))
        if merged is not config:
            _write_config(merged, kept_config)
            config = merged
    arms = None if config is None else {slug(label) for label in config.labels()}
    copied = []
    for state in sorted(out.glob("runs/*/seed_*/state.json")):
        if _finished(state) and (arms is None or state.parent.parent.name in arms):
            target = dest / state.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(state, target)
            copied.append(target)
    # the pool's pretraining record (objective, epochs, loss, wall time) as
    # pretraining.json for the reports, and the encoder itself, so that later sittings'
    # pretrained runs use the same weights
    for record in sorted(out.glob("encoders/*/encoder.json")):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record, dest / "pretraining.json")
        copied.append(dest / "pretraining.json")
        kept = dest / record.parent.relative_to(out)
        kept.mkdir(parents=True, exist_ok=True)
        for name in ENCODER_FILES:  # the weights first: encoder.json marks it finished
            shutil.copyfile(record.parent / name, kept / name)
            copied.append(kept / name)
    if config is not None:
        # the study's full configuration is kept: rebuild its reports from every kept state
        # (a sitting may run a subset of the arms or seeds with a filtered configuration)
        from cryoal.benchmark.report import write_reports

        write_reports(config, dest)
        return copied + [dest / r for r in REPORTS if r != "benchmark.yaml"]
    if not copied:  # nothing finished yet: no kept folder of empty reports
        return copied
    for report in REPORTS:
        if (out / report).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / report, dest / report)
            copied.append(dest / report)
    return copied


def _with_new_arms(kept: Any, sitting: Any) -> Any:
    """The kept study configuration with the arms (and comparisons) that this sitting's
    configuration adds: a later stage of the study runs arms the first stages had not, and
    their finished runs are kept like the others'."""
    labels = set(kept.labels())
    added = [s for s, label in zip(sitting.strategies, sitting.labels(), strict=True)
             if label not in labels]  # fmt: skip
    comparisons = list(kept.comparisons or [])
    comparisons += [c for c in sitting.comparisons or [] if c not in comparisons]
    if not added and comparisons == list(kept.comparisons or []):
        return kept
    return kept.model_copy(
        update={"strategies": [*kept.strategies, *added], "comparisons": comparisons}
    )


def _write_config(config: Any, path: Path) -> None:
    import yaml

    from cryoal.io.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False),
                      overwrite=True)  # fmt: skip


def restore(name: str, out: Path) -> list[Path]:
    """Copy the kept states of ``name`` into ``out`` (never over a state already there)."""
    src = KEPT / name
    if not src.is_dir():
        raise SystemExit(
            f"keep.py: {src} does not exist; kept studies: "
            f"{', '.join(p.name for p in KEPT.iterdir()) if KEPT.is_dir() else 'none'}"
        )
    restored = []
    for record in sorted(src.glob("encoders/*/encoder.json")):
        target = out / record.parent.relative_to(src)
        if not (target / "encoder.json").exists():
            target.mkdir(parents=True, exist_ok=True)
            for name in ENCODER_FILES:
                shutil.copyfile(record.parent / name, target / name)
                restored.append(target / name)
    for state in sorted(src.glob("runs/*/seed_*/state.json")):
        target = out / state.relative_to(src)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(state, target)
            restored.append(target)
    return restored


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("save", "restore"):
        print(__doc__.split("Usage")[1].strip(), file=sys.stderr)
        return 2
    act, a, b = argv
    done = save(Path(a), b) if act == "save" else restore(a, Path(b))
    print(f"{argv[0]}: {len(done)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
