"""``cryoal slurm train|suggest|round DIR``: sbatch scripts for a project, submitted or printed.

``train`` is one training job (torchrun on every node, requeued on pre-emption and resumed
from the newest checkpoint); ``suggest`` a scoring job array plus a dependent merge job;
``round`` all three, chained with ``--dependency=afterok``. ``--dry-run`` prints the scripts
and the sbatch commands; otherwise they are written to ``DIR/slurm/`` and submitted through
submitit (the ``cluster`` extra). Templates: :mod:`cryoal.cluster.sbatch`; submission:
:mod:`cryoal.cluster.submit`.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import typer

slurm_app = typer.Typer(
    name="slurm",
    help="Run a project's training, scoring or whole round as SLURM jobs.",
    no_args_is_help=True,
)

_DIR = typer.Argument(..., help="Project folder (on a filesystem the nodes see).")


def _command(kind: str, doc: str) -> Callable[..., None]:
    """The command function of one job kind (the same options for all three)."""

    def command(
        directory: Path = _DIR,
        gpus: int = typer.Option(1, "--gpus", min=0, help="GPUs per node for training (0: CPU)."),
        nodes: int = typer.Option(1, "--nodes", min=1, help="Nodes for training."),
        time: str = typer.Option(
            "04:00:00", "--time", help="Training time limit (HH:MM:SS, D-HH:MM:SS, minutes)."
        ),
        partition: str | None = typer.Option(None, "--partition", help="SLURM partition."),
        account: str | None = typer.Option(None, "--account", help="SLURM account."),
        cpus_per_task: int | None = typer.Option(
            None,
            "--cpus-per-task",
            min=1,
            help="CPU cores per task (default: 8 per GPU, 4 on CPU).",
        ),
        mem: str | None = typer.Option(
            None, "--mem", help="Memory per node: megabytes, or with K/M/G/T, e.g. 64G."
        ),
        shards: int = typer.Option(4, "--shards", min=1, help="Tasks of the scoring job array."),
        score_time: str = typer.Option("01:00:00", "--score-time", help="Time limit per shard."),
        setup: list[str] | None = typer.Option(
            None, "--setup", help="Shell line run first, e.g. 'module load cuda' (repeatable)."
        ),
        python: str | None = typer.Option(
            None, "--python", help="Python on the nodes (default: this one)."
        ),
        train_arg: list[str] | None = typer.Option(
            None, "--train-arg", help="Extra 'cryoal train' argument (repeatable)."
        ),
        score_arg: list[str] | None = typer.Option(
            None, "--score-arg", help="Extra 'cryoal score'/'merge-scores' argument (repeatable)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the scripts; submit nothing (no submitit needed)."
        ),
    ) -> None:
        _run(kind, directory, dict(locals()))

    command.__doc__ = doc
    command.__name__ = f"slurm_{kind}"
    return command


def _run(kind: str, directory: Path, o: dict) -> None:
    from cryoal.cluster.sbatch import SlurmOptions, dry_run_text, render, write_scripts

    o.pop("directory", None)
    dry = o.pop("dry_run")
    opts = SlurmOptions(
        gpus=o["gpus"], nodes=o["nodes"], time=o["time"], partition=o["partition"],
        account=o["account"], cpus_per_task=o["cpus_per_task"], mem=o["mem"],
        shards=o["shards"], score_time=o["score_time"], setup=list(o["setup"] or []),
        train_args=list(o["train_arg"] or []), score_args=list(o["score_arg"] or []),
    )  # fmt: skip
    if o["python"]:
        opts.python = o["python"]
    jobs = render(kind, directory, opts)
    folder = directory.resolve() / "slurm"
    if dry:
        typer.echo(dry_run_text(jobs, folder))
        return
    from cryoal.cluster.submit import check_submission, submit
    from cryoal.project.pool import cluster_round

    check_submission()  # no submitit, sbatch or srun: reported before anything is written
    number = cluster_round(directory, train=kind != "suggest")  # the jobs' frozen inputs
    typer.echo(f"round {number}: jobs read its snapshot and candidate table, not labels.sqlite")
    paths = write_scripts(jobs, folder)
    for job in submit(jobs, paths, directory, opts):
        typer.echo(f"submitted {job.name}: job {job.job_id} ({job.script})")
    if kind != "train":
        typer.echo(
            "when the merge job has finished, import its queue where labels.sqlite lives: "
            f"cryoal suggest {shlex.quote(str(directory))} --import"
        )


def register(app: typer.Typer) -> None:
    """Add ``slurm train|suggest|round`` to the ``cryoal`` app."""
    docs = {
        "train": "Train the next round on N nodes x G GPUs (requeued and resumed on pre-emption).",
        "suggest": "Score the candidates in a job array, then merge them into the round's "
        "queue files (dependent); import with 'cryoal suggest DIR --import'.",
        "round": "A whole round: train -> scoring array -> merge, each after the previous; "
        "import the queue with 'cryoal suggest DIR --import'.",
    }
    for kind, doc in docs.items():
        slurm_app.command(kind)(_command(kind, doc))
    app.add_typer(slurm_app, name="slurm")
