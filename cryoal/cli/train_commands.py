"""``cryoal train`` and ``cryoal predict``: thin shells over :mod:`cryoal.train`.

Every hyper-parameter lives in :class:`cryoal.train.config.TrainConfig` (YAML via
``--config``); the options below override single fields, ``--set key=value`` any field.
The same ``cryoal train`` runs as one process or under ``torchrun --nproc_per_node N``
(rank 0 prints progress and the summary). SIGUSR1 makes training checkpoint at the next
step and exit with code 75 (after ``scontrol requeue`` inside a SLURM job).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import typer

from cryoal.cli.progress import CountProgress, TrainProgress
from cryoal.io.suffixes import MRC_SUFFIXES, STORE_SUFFIXES
from cryoal.train.config import TrainConfig  # pydantic only: the defaults shown in --help

#: Exit code of a training stopped by SIGUSR1 after its checkpoint (EX_TEMPFAIL).
EXIT_PREEMPTED = 75

#: cryoal.train.distributed.AMP_MODES (tests/cli/test_options.py checks that they agree).
AmpMode = Literal["auto", "bf16", "fp16", "off"]
_AMP_HELP = "Mixed precision (fp16 needs CUDA; scores and losses stay float32)."


def _d(field: str) -> str:
    """`` [default: V]`` for a TrainConfig field (a --config file or --set overrides it)."""
    return f" [default: {TrainConfig.model_fields[field].default}]"


def _parse_sets(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set tau=2")
        import yaml

        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ValueError(
                f"--set {item!r}: {problem}; give a plain YAML value (number, string, "
                "true/false, [list]), e.g. --set tau=2"
            ) from None
    return out


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    final = result.metrics
    val = final.get("val")
    info = result.info
    console.print(
        f"trained {info['task']} teacher '{result.config.teacher_preset}' "
        f"({info['models']['teacher']['parameters']:,} parameters) on {final['n_train']} "
        f"samples, {final['epochs']} epochs, {final['train_time_s']:.1f} s"
    )
    if val:
        table = Table("model", "accuracy" if info["task"] == "classify" else "mean Dice",
                      "macro-F1" if info["task"] == "classify" else "mean IoU")  # fmt: skip
        for name in ("teacher", "student"):
            m = val.get(name)
            if m is None:
                continue
            if info["task"] == "classify":
                table.add_row(name, _fmt(m["accuracy"]), _fmt(m["macro_f1"]))
            else:
                table.add_row(name, _fmt(m["mean_dice"]), _fmt(m["mean_iou"]))
        console.print(f"validation ({val['n']} samples):")
        console.print(table)
        if "agreement" in val:
            console.print(
                f"teacher–student agreement {_fmt(val['agreement'])}, "
                f"mean distance {_fmt(val['distance'])}"
            )
    if result.out_dir is not None:
        console.print(f"run: {result.out_dir} (metrics.json, train.yaml, *.safetensors)")


def train_cmd(
    data: Path = typer.Argument(
        ..., help="Subtomogram store (.h5), or a project folder.", show_default=False
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run folder to create (store input).", show_default=False
    ),
    task: Literal["classify", "segment"] | None = typer.Option(
        None, "--task", help="Task." + _d("task")
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="Teacher network preset." + _d("teacher_preset")
    ),
    student_preset: str | None = typer.Option(
        None, "--student-preset", help="Student network preset." + _d("student_preset")
    ),
    student: Literal["trained", "ema", "none"] | None = typer.Option(
        None, "--student", help="Student kind (none: task-only baseline)." + _d("student")
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="TrainConfig YAML file."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Training epochs." + _d("epochs")
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=2, help="Labeled samples per step." + _d("batch_size")
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate." + _d("lr")),
    seed: int | None = typer.Option(None, "--seed", help="Seed of everything random." + _d("seed")),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N or auto." + _d("device")
    ),
    val_fraction: float | None = typer.Option(
        None,
        "--val-fraction",
        min=0.0,
        help="Held-out labeled fraction, below 1." + _d("val_fraction"),
    ),
    checkpoint_every: int | None = typer.Option(
        None,
        "--checkpoint-every",
        min=0,
        help="Also checkpoint every N steps (0: per epoch)." + _d("checkpoint_every_steps"),
    ),
    num_workers: int | None = typer.Option(
        None, "--num-workers", min=0, help="DataLoader worker processes." + _d("num_workers")
    ),
    amp: AmpMode | None = typer.Option(None, "--amp", help=_AMP_HELP + _d("amp")),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="channels_last_3d memory format."
    ),
    sets: list[str] | None = typer.Option(
        None, "--set", help="Any config field, KEY=VALUE (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest valid checkpoint."
    ),
    encoder: Path | None = typer.Option(
        None,
        "--encoder",
        help="Pretrained encoder folder ('cryoal pretrain') the teacher starts from.",
        show_default=False,
    ),
    pretrain: bool = typer.Option(
        True,
        "--pretrain/--no-pretrain",
        help="Project: start the teacher from the project's pretrained encoder, pretraining "
        "one on its candidates first when there is none (self-supervised, no labels).",
    ),
    quiet: bool = typer.Option(False, "--no-progress", "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a teacher and its student on a subtomogram store (or a project).

    Runs as one process or under torchrun (DDP; --batch-size is the global batch).
    Progress: a bar on a terminal, one line per epoch in a log.
    """
    from cryoal.train.fit import TrainingPreempted

    sets_given = _parse_sets(sets)  # refuse a bad --set before the slow imports
    from cryoal.train.perf import tune_cpu_allocator
    from cryoal.train.run import load_config, train_store

    tune_cpu_allocator()

    overrides: dict[str, Any] = {
        "task": task, "teacher_preset": preset, "student_preset": student_preset,
        "student": student, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "device": device, "val_fraction": val_fraction, "checkpoint_every_steps": checkpoint_every,
        "num_workers": num_workers, "amp": amp, "channels_last": channels_last,
        "encoder": None if encoder is None else str(encoder),
    }  # fmt: skip
    overrides.update(sets_given)
    main = int(os.environ.get("RANK", "0")) == 0  # one report under torchrun
    try:
        with TrainProgress(enabled=main and not quiet) as bar:
            if data.is_dir():
                _train_project(data, out, config, overrides, bar, main, pretrain)
                return
            if out is None:
                raise ValueError(
                    f"{data}: pass --out RUN_FOLDER for the trained models and metrics"
                )
            cfg = load_config(config, overrides)
            result = train_store(data, out, cfg, resume=resume, callback=bar, stop_on_sigusr1=True)
    except TrainingPreempted as exc:
        if main:
            print(f"cryoal: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_PREEMPTED) from None
    if main:
        _summary(result)


def _train_project(
    data: Path,
    out: Path | None,
    config: Path | None,
    overrides: dict[str, Any],
    bar: TrainProgress,
    main: bool,
    pretrain: bool,
) -> None:
    from cryoal.project.layout import is_project

    if not is_project(data):
        raise ValueError(
            f"{data}: a folder but not a cryoal project (no project.yaml); pass a store .h5 "
            "or create a project with 'cryoal project init'"
        )
    if out is not None:
        raise ValueError(f"{data}: a project trains into its own rounds/ folder; drop --out")
    from cryoal.project.training import train_project

    with (
        CountProgress("extracting subtomograms", None, enabled=bar.enabled) as cut,
        TrainProgress(enabled=bar.enabled, label="pretrain") as pre,
    ):
        res = train_project(
            data,
            config=config,
            overrides={k: v for k, v in overrides.items() if v is not None},
            progress=cut,
            callback=bar,
            stop_on_sigusr1=True,
            pretrain=pretrain,
            pretrain_callback=pre,
        )
    if main:
        if res.info.encoder is not None:
            typer.echo(f"the teacher started from the pretrained encoder {res.info.encoder}")
        typer.echo(res.pool_note)
        _summary(res.fit_result)
        from cryoal.project.rounds import model_summary

        typer.echo(model_summary(data, res.info))


def predict_cmd(
    run: Path = typer.Argument(
        ...,
        help="Run folder written by 'cryoal train', a project round (rounds/NNN) or a project "
        "(its newest trained round).",
        show_default=False,
    ),
    input: Path = typer.Argument(
        ..., help="Subtomogram store (.h5) or tomogram (.mrc).", show_default=False
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="OUT.h5 / OUT.csv (store) or OUT.mrc (tomogram).",
        show_default=False,
    ),
    # defaults = cryoal.train.predict_to_files.predict_path's (tests/cli/test_options.py checks them)
    batch_size: int = typer.Option(
        64, "--batch-size", min=1, help="Samples (windows x 8) per forward pass."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    mc_passes: int = typer.Option(
        0, "--mc-passes", min=0, help="MC-dropout passes (needs dropout)."
    ),
    features: bool = typer.Option(
        True, "--features/--no-features", help="Write penultimate features."
    ),
    overlap: float = typer.Option(
        0.25, "--overlap", min=0.0, help="Sliding-window overlap (tomograms), below 1."
    ),
    amp: AmpMode = typer.Option("off", "--amp", help=_AMP_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    quiet: bool = typer.Option(False, "--no-progress", "--quiet", "-q", help="No progress bar."),
) -> None:
    """Predict a store (probabilities, features, KT distance) or segment a tomogram."""
    from cryoal.project.rounds import model_run_folder
    from cryoal.train.perf import tune_cpu_allocator
    from cryoal.train.predict_to_files import predict_path

    tune_cpu_allocator()
    run = model_run_folder(run)

    given: dict[str, Any] = {  # options the user gave (None: predict_path's default)
        "batch_size": batch_size, "device": device, "mc_passes": mc_passes,
        "features": features, "overlap": overlap, "amp": amp,
    }  # fmt: skip
    total = _count_items(input)
    with CountProgress("predicting", total, enabled=not quiet and total > 0) as bar:
        path = predict_path(
            run, input, out, overwrite=overwrite, on_batch=bar,
            **{k: v for k, v in given.items() if v is not None},
        )  # fmt: skip
    typer.echo(f"wrote {path}")


def _count_items(path: Path) -> int:
    """The progress bar's total: samples of a store, z-planes of a tomogram (0: unknown)."""
    if not path.is_file():
        return 0
    suffix = path.suffix.lower()
    if suffix in STORE_SUFFIXES:
        from cryoal.io.store import SubtomogramStore

        return len(SubtomogramStore(path))
    if suffix in MRC_SUFFIXES:
        from cryoal.io.mrc import open_tomogram

        with open_tomogram(path) as tomo:
            return int(tomo.shape[0])
    return 0


def device_bench_cmd(
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    preset: str = typer.Option("teacher", "--preset", help="Classification preset."),
    box: int = typer.Option(32, "--box", min=4, help="Box edge in voxels."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Samples per step."),
    amp: AmpMode = typer.Option(
        "auto", "--amp", help="Mode compared with float32 (fp16 needs CUDA; auto is off on CPU)."
    ),
    channels_last: bool = typer.Option(
        False, "--channels-last/--no-channels-last", help="channels_last_3d memory format."
    ),
) -> None:
    """Measure this machine's device: training samples/s (fp32 and AMP), inference, copies."""
    from cryoal.train.devicebench import device_benchmark
    from cryoal.train.perf import tune_cpu_allocator

    tune_cpu_allocator()
    r = device_benchmark(
        device, preset=preset, box=box, batch_size=batch_size, amp=amp,
        channels_last=channels_last,
    )  # fmt: skip
    info = r["info"]
    typer.echo(" ".join(f"{k}={v}" for k, v in info.items()))
    typer.echo(f"preset {preset}, box {box}, batch {batch_size}")
    for mode, rate in r["train_samples_per_s"].items():
        typer.echo(f"train {mode}: {rate:.1f} samples/s")
    if "amp_speedup" in r:
        typer.echo(f"AMP ({r['amp_mode']}) speed-up: {r['amp_speedup']:.2f}x")
        if info["device"] == "cpu":
            typer.echo(
                "note: speed only; bf16 training on CPU can turn weights into NaN with this "
                "torch build (oneDNN conv3d backward), so train on CPU with --amp off"
            )
    typer.echo(f"inference fp32: {r['infer_samples_per_s']:.1f} samples/s")
    if "h2d_GB_per_s" in r:
        typer.echo(f"host->device (pinned): {r['h2d_GB_per_s']:.1f} GB/s")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict`` and ``device-bench`` to the ``cryoal`` app."""
    app.command("train")(train_cmd)
    app.command("predict")(predict_cmd)
    app.command("device-bench")(device_bench_cmd)
