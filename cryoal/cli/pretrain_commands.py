"""``cryoal pretrain``: a thin shell over :mod:`cryoal.pretrain` and
:mod:`cryoal.project.pretraining`.

Every hyper-parameter lives in :class:`cryoal.pretrain.config.PretrainConfig`; the options
below override single fields, ``--set key=value`` any field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from cryoal.cli.progress import CountProgress, TrainProgress
from cryoal.cli.train_commands import _parse_sets
from cryoal.pretrain.config import PretrainConfig  # pydantic only: the defaults in --help


def _d(field: str) -> str:
    return f" [default: {PretrainConfig.model_fields[field].default}]"


def pretrain_cmd(
    data: Path = typer.Argument(
        ...,
        help="A project folder (its candidates), or a subtomogram store (.h5).",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Encoder folder to create (store input).", show_default=False
    ),
    objective: Literal["ntxent", "vicreg"] | None = typer.Option(
        None, "--objective", help="Self-supervised objective." + _d("objective")
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Teacher preset whose encoder is learnt (project: the teacher's)." + _d("preset"),
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Passes over the pool." + _d("epochs")
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=4, help="Samples per step (two views each)." + _d("batch_size")
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate." + _d("lr")),
    seed: int | None = typer.Option(None, "--seed", help="Seed of everything random." + _d("seed")),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N or auto." + _d("device")
    ),
    amp: Literal["auto", "bf16", "off"] | None = typer.Option(
        None, "--amp", help="Mixed precision (bf16 autocast)." + _d("amp")
    ),
    sets: list[str] | None = typer.Option(
        None, "--set", help="Any pretraining field, KEY=VALUE (repeatable)."
    ),
    quiet: bool = typer.Option(False, "--no-progress", "--quiet", "-q", help="No progress bar."),
) -> None:
    """Pretrain the teacher's encoder on unlabelled subtomograms (self-supervised).

    A project pretrains on every candidate and training then starts from the encoder; a
    store pretrains on all its rows into --out. An unfinished run resumes; a finished one
    for the same pool and settings is reused.
    """
    overrides: dict[str, Any] = {
        "objective": objective, "preset": preset, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "seed": seed, "device": device, "amp": amp,
    }  # fmt: skip
    overrides.update(_parse_sets(sets))
    from cryoal.pretrain.run import describe
    from cryoal.train.perf import tune_cpu_allocator

    tune_cpu_allocator()
    with TrainProgress(enabled=not quiet, label="pretrain") as bar:
        if data.is_dir():
            enc = _pretrain_project(data, out, overrides, bar)
        else:
            if out is None:
                raise ValueError(f"{data}: pass --out ENCODER_FOLDER for the pretrained encoder")
            from cryoal.pretrain.run import pretrain

            cfg = PretrainConfig.from_dict(
                {k: v for k, v in overrides.items() if v is not None}, source="options"
            )
            enc = pretrain(cfg, data, None, out, callback=bar)
    typer.echo(describe(enc))


def _pretrain_project(data: Path, out: Path | None, overrides: dict[str, Any], bar: Any) -> Any:
    from cryoal.project.layout import is_project

    if not is_project(data):
        raise ValueError(
            f"{data}: a folder but not a cryoal project (no project.yaml); pass a store .h5 "
            "or create a project with 'cryoal project init'"
        )
    if out is not None:
        raise ValueError(f"{data}: a project keeps its encoders in cache/encoders; drop --out")
    from cryoal.project.pretraining import pretrain_project

    with CountProgress("extracting candidates", None, enabled=bar.enabled) as cut:
        return pretrain_project(
            data,
            overrides={k: v for k, v in overrides.items() if v is not None},
            progress=cut,
            callback=bar,
        )


def register(app: typer.Typer) -> None:
    """Add ``pretrain`` to the ``cryoal`` app."""
    app.command("pretrain")(pretrain_cmd)
