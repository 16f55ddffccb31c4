"""``cryoal score`` and ``cryoal merge-scores``: sharded scoring of a project's candidates.

``cryoal score DIR --shard I/N`` scores one slice of the newest trained round's candidates
and writes ``rounds/NNN/scores/shard-III-of-NNN.h5``; ``cryoal merge-scores DIR`` checks
that the shards cover every candidate exactly once and writes the queue exactly as
``cryoal suggest DIR`` would have (same strategy, k, seed and batch size) to
``rounds/NNN/suggestions.csv`` and ``suggestions.json``. Neither opens ``labels.sqlite``:
they read the round's frozen ``candidates.csv`` and ``snapshot.csv``. ``cryoal suggest DIR
--import``, run where the label store lives, then makes the merged queue the project's.
A SLURM round runs the shards as a job array and the merge as a dependent job
(``cryoal slurm round``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cryoal.cli.progress import CountProgress

_DIR = typer.Argument(..., help="Project folder.", show_default=False)


def _strategy() -> str | None:
    return typer.Option(None, "--strategy", help="Strategy (default: project defaults).")


def score_cmd(
    directory: Path = _DIR,
    shard: str = typer.Option(
        "0/1", "--shard", help="I/N: score slice I (0-based) of N.", show_default=True
    ),
    strategy: str | None = _strategy(),
    k: int | None = typer.Option(None, "--k", help="Queue length (default: project defaults)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: project defaults)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | auto."),
    batch_size: int = typer.Option(64, "--batch-size", help="Fixed micro-batch size."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    prepare: bool = typer.Option(
        False, "--prepare", help="Only extract the candidate cache the shards read, once."
    ),
) -> None:
    """Score one shard of the candidates with the newest model (a SLURM array task)."""
    from cryoal.al.shards import parse_shard
    from cryoal.project.project import Project
    from cryoal.project.suggest import parse_strategy, prepare_scoring, score_shard

    if prepare:
        with (
            Project.open(directory, check_labels=False) as project,
            CountProgress("extracting candidates", None, enabled=not quiet) as cut,
        ):
            path = prepare_scoring(project, progress=cut)
        typer.echo(f"candidate cache: {path}")
        return
    part = parse_shard(shard)
    parsed = None if strategy is None else parse_strategy(strategy)  # once, before any work
    with (
        Project.open(directory, check_labels=False) as project,
        CountProgress("extracting candidates", None, enabled=not quiet) as cut,
        CountProgress(f"scoring shard {shard}", None, enabled=not quiet) as bar,
    ):
        path = score_shard(
            project, part, strategy=parsed, k=k, seed=seed, device=device,
            batch_size=batch_size, progress=cut, on_batch=bar,
        )  # fmt: skip
    typer.echo(f"scored {bar.done} candidates -> {path}")


def merge_scores_cmd(
    directory: Path = _DIR,
    strategy: str | None = _strategy(),
    k: int | None = typer.Option(None, "--k", help="Queue length (default: project defaults)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: project defaults)."),
    device: str = typer.Option("cpu", "--device", help="Device (coreset places labels)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Micro-batch size of the shards."),
    replace: bool = typer.Option(
        False, "--replace", help="Replace this round's earlier merged queue."
    ),
) -> None:
    """Merge the score shards into the round's queue files (import: 'cryoal suggest --import')."""
    from cryoal.project.project import Project
    from cryoal.project.suggest import parse_strategy, suggest

    parsed = None if strategy is None else parse_strategy(strategy)  # once, before any work
    with Project.open(directory, check_labels=False) as project:
        res = suggest(
            project, strategy=parsed, k=k, seed=seed, replace=replace, device=device,
            batch_size=batch_size, from_shards=True,
        )  # fmt: skip
    typer.echo(
        f"round {res.round}: {len(res.ids)} suggestions ({res.strategy} by model "
        f"{res.model_version}, from score shards) -> {res.csv_path}; import them where "
        "labels.sqlite lives with 'cryoal suggest DIR --import'"
    )


def register(app: typer.Typer) -> None:
    """Add ``score`` and ``merge-scores`` to the ``cryoal`` app."""
    app.command("score")(score_cmd)
    app.command("merge-scores")(merge_scores_cmd)
