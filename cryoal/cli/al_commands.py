"""``cryoal benchmark`` (strategies x seeds, learning curves and a paired summary) and
``cryoal benchmark-calibrate`` (how much test accuracy moves with the training seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

#: cryoal.benchmark.PRESETS, spelled out so that the CLI starts without torch
#: (tests/cli/test_options.py checks that they agree).
Preset = Literal["smoke", "cpu", "paper", "smoke-seg", "cpu-seg"]


def _csv(value: str, cast: type = str) -> list[Any]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [cast(v) for v in items]
    except ValueError:
        raise ValueError(
            f"cannot read {value!r} as a comma-separated list of {cast.__name__}"
        ) from None


def benchmark(
    out: Path = typer.Option(..., "--out", help="Output folder (re-running with it resumes)."),
    preset: Preset = typer.Option("smoke", "--preset", help="Starting configuration."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="YAML with keys of the benchmark config, applied over the preset "
        "(data, strategies, seeds, initial, per_cycle, n_cycles, warm_start, train, device).",
    ),
    templates: Path | None = typer.Option(
        None,
        "--templates",
        help="Folder of template maps to simulate from (cpu preset: the 10 SHREC maps at 10 Å).",
    ),
    store: Path | None = typer.Option(
        None, "--store", help="Use this labelled HDF5 store instead of simulating."
    ),
    strategies: str | None = typer.Option(
        None, "--strategies", help="Comma-separated strategy names [default: the preset's]."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2 [default: the preset's]."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N or auto [default: the preset's]."
    ),
    manifest: str | None = typer.Option(
        None,
        "--manifest",
        help="Dataset name or manifest .yaml (cryoal data list): benchmark on its labelled "
        "picks (subtomograms cut into OUT/data/) or, for a template set, simulate from it.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data", help="Folder the --manifest dataset was fetched into [default: its own]."
    ),
    jobs: int = typer.Option(
        1, "--jobs", min=1, help="Runs at once, one process each (results do not depend on it)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run strategies x seeds with a simulated oracle; write curves.csv, summary.md, curves.png."""
    from cryoal.benchmark import load_benchmark_config, run_benchmark
    from cryoal.cli.progress import CountProgress

    overrides: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if templates is not None:
        data["templates"] = str(templates)
    if store is not None:
        data["store"] = str(store)
    if data:
        overrides["data"] = data
    if strategies is not None:
        overrides["strategies"] = _csv(strategies)
    if seeds is not None:
        overrides["seeds"] = _csv(seeds, int)
    if device is not None:
        overrides["device"] = device
        overrides["train"] = {"device": device}
    cfg = load_benchmark_config(preset, config, overrides)
    if manifest is not None:
        from cryoal.data.manifest_data import benchmark_data

        if store is not None or templates is not None:
            raise ValueError("--manifest chooses the data itself; drop --store / --templates")
        with CountProgress("extracting picks", None, enabled=progress) as cut:
            update = benchmark_data(manifest, data_dir, out, box=cfg.data.box, progress=cut)
        cfg.data = cfg.data.model_copy(update=update)
    with _StepProgress("benchmark", enabled=progress) as show:
        result = run_benchmark(cfg, out, jobs=jobs, on_progress=show)
    typer.echo(f"curves:     {result.curves_csv}")
    typer.echo(f"selections: {result.selections_csv}")
    typer.echo(f"summary:    {result.summary_md}")
    typer.echo(f"plots:      {result.curves_png}, {result.selections_png}")


class _StepProgress:
    """Turns :class:`cryoal.benchmark.BenchmarkProgress` reports into a CLI progress display."""

    def __init__(self, description: str, enabled: bool) -> None:
        from cryoal.cli.progress import CountProgress

        self._count: CountProgress | None = None
        self._make = lambda total: CountProgress(description, total, enabled=enabled)
        self._done = 0

    def __enter__(self) -> _StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._count is not None:
            self._count.__exit__(*exc)

    def __call__(self, report: Any) -> None:
        if self._count is None:
            self._count = self._make(report.total).__enter__()
        self._count.description = report.text
        self._count(report.done - self._done)
        self._done = report.done


def calibrate(
    out: Path = typer.Option(..., "--out", help="Output folder (re-running with it resumes)."),
    preset: Preset = typer.Option("cpu", "--preset", help="Benchmark configuration to calibrate."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML of benchmark config keys applied over the preset."
    ),
    templates: Path | None = typer.Option(
        None, "--templates", help="Folder of template maps to simulate from."
    ),
    budgets: str = typer.Option(
        "100,600", "--budgets", help="Comma-separated labeled-set sizes (smallest and largest)."
    ),
    steps: str | None = typer.Option(
        None,
        "--steps",
        help="Comma-separated training lengths in optimizer steps [default: the preset's steps].",
    ),
    train_seeds: str = typer.Option(
        "0,1,2,3,4", "--train-seeds", help="Comma-separated training seeds."
    ),
    warm_steps: str | None = typer.Option(
        None,
        "--warm-steps",
        help="Comma-separated steps per warm-started budget: train one chain through the "
        "budgets per seed (the first from scratch for --steps, each next warm-started from "
        "the previous model on a nested set), as a warm_start benchmark run trains.",
    ),
    jobs: int = typer.Option(
        1, "--jobs", min=1, help="Trainings (or chains) at once, one process each."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """Train the teacher on fixed labeled sets with several seeds; write calibration.md/.csv/.png."""
    from cryoal.benchmark import load_benchmark_config
    from cryoal.benchmark.calibrate import calibrate as run_calibration
    from cryoal.cli.progress import CountProgress

    overrides: dict[str, Any] = {}
    if templates is not None:
        overrides["data"] = {"templates": str(templates)}
    cfg = load_benchmark_config(preset, config, overrides)
    lengths = _csv(steps, int) if steps else [cfg.train.steps or cfg.train.epochs]
    if not cfg.train.steps and not steps:
        raise ValueError("the configuration trains by epochs; give --steps N[,M...]")
    b, seeds = _csv(budgets, int), _csv(train_seeds, int)
    warm = _csv(warm_steps, int) if warm_steps else []
    total = len(lengths) * len(seeds) * (len(warm) if warm else len(b))
    what = "calibration chains" if warm else "calibration trainings"
    with CountProgress(what, total, enabled=progress) as show:
        run_calibration(
            cfg, out, b, lengths, seeds, warm_steps=warm, jobs=jobs, on_done=lambda *_: show(1)
        )
    typer.echo(f"table: {out / 'calibration.md'}")
    typer.echo(f"rows:  {out / 'calibration.csv'}")
    typer.echo(f"plot:  {out / 'calibration.png'}")


def register(app: typer.Typer) -> None:
    """Add ``cryoal benchmark`` and ``cryoal benchmark-calibrate`` to the CLI."""
    app.command("benchmark")(benchmark)
    app.command("benchmark-calibrate")(calibrate)
