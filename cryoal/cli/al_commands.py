"""``cryoal benchmark``: active-learning strategies x seeds, learning curves and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

#: cryoal.al.benchmark.PRESETS, spelled out so that the CLI starts without torch
#: (tests/cli/test_options.py checks that they agree).
Preset = Literal["smoke", "cpu", "paper"]


def _csv(value: str | None, cast: type = str) -> list[Any] | None:
    if value is None:
        return None
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
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run strategies x seeds with a simulated oracle; write curves.csv, summary.md, curves.png."""
    from cryoal.al.benchmark import load_benchmark_config, run_benchmark

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
        cfg.data = cfg.data.model_copy(
            update=benchmark_data(manifest, data_dir, out, box=cfg.data.box, progress=progress)
        )
    result = run_benchmark(cfg, out, progress=progress)
    typer.echo(f"curves:     {result.curves_csv}")
    typer.echo(f"selections: {result.selections_csv}")
    typer.echo(f"summary:    {result.summary_md}")
    typer.echo(f"plots:      {result.curves_png}, {result.selections_png}")


def register(app: typer.Typer) -> None:
    """Add ``cryoal benchmark`` to the CLI."""
    app.command("benchmark")(benchmark)
