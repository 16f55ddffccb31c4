"""``cryoal simulate ...``: synthetic subtomogram datasets and tomograms with ground truth.

Imported on first use of ``cryoal simulate`` (see :mod:`cryoal.cli.sim_commands`): the
option defaults are read from the simulator, which imports torch and scipy.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import typer

from cryoal.sim.imaging import ImagingParams
from cryoal.sim.membranes import MembraneParams
from cryoal.sim.subtomograms import SubtomogramParams, merge_shards, simulate_subtomograms
from cryoal.sim.tomograms import simulate_tomogram

#: Imaging paths and storage dtypes (= cryoal.sim.imaging.PATHS; tests/cli/test_options.py).
ImagingPath = Literal["fourier", "backprojection"]
Dtype = Literal["float32", "float16"]

_IMG = ImagingParams()
_SUB = SubtomogramParams()
_MEM = MembraneParams()


def _default(func: Any, name: str) -> Any:
    """A library function's default for ``name`` (so the CLI hard-codes none)."""
    return inspect.signature(func).parameters[name].default


def subtomograms(
    out: Path = typer.Argument(..., help="Output HDF5 store (.h5)."),
    templates: Path | None = typer.Option(
        None,
        "--templates",
        help="Folder of density maps (.mrc/.map) and/or atomic models "
        "(.pdb/.cif), one class per file. Default: generated phantoms.",
    ),
    classes: int | None = typer.Option(
        None,
        "--classes",
        min=1,
        help="Number of classes (phantoms: default 10; with --templates: the "
        "first N files by name).",
    ),
    per_class: int = typer.Option(
        _default(simulate_subtomograms, "per_class"),
        "--per-class",
        min=1,
        help="Samples per class.",
    ),
    box: int = typer.Option(_SUB.box, "--box", min=1, help="Subtomogram edge, voxels."),
    voxel_size: float = typer.Option(_SUB.voxel_size_A, "--voxel-size", help="Voxel size, Å."),
    snr: float = typer.Option(
        _SUB.snr, "--snr", help="Signal variance / noise variance in the box ('inf': no noise)."
    ),
    tilt_range: tuple[float, float] = typer.Option(
        _IMG.tilt_range_deg, "--tilt-range", help="MIN MAX tilt about y, degrees."
    ),
    seed: int = typer.Option(
        _default(simulate_subtomograms, "seed"), "--seed", min=0, help="Dataset seed."
    ),
    preview: Path | None = typer.Option(
        None,
        "--preview",
        help="Also write a PNG montage, clean beside noisy, one column per class.",
    ),
    masks: bool = typer.Option(
        False, "--masks", help="Store segmentation masks (0 background, class index + 1)."
    ),
    halves: bool = typer.Option(
        False,
        "--halves",
        help="Also store two half reconstructions per sample (two noise draws whose mean is "
        "the sample, like odd/even half tomograms): the noise pairs 'cryoal pretrain' uses.",
    ),
    path: ImagingPath = typer.Option(_IMG.path, "--path", help="Imaging path."),
    defocus_range: tuple[float, float] = typer.Option(
        _IMG.defocus_range_um, "--defocus-range", help="MIN MAX defocus, µm underfocus."
    ),
    no_ctf: bool = typer.Option(False, "--no-ctf", help="Switch the CTF off."),
    phase_flip: bool = typer.Option(
        _IMG.phase_flip, "--phase-flip", help="Phase-flipped CTF (|CTF|)."
    ),
    no_wedge: bool = typer.Option(False, "--no-wedge", help="Switch the missing wedge off."),
    tilt_step: float = typer.Option(
        _IMG.tilt_step_deg,
        "--tilt-step",
        help="Tilt increment of the back-projection path, degrees.",
    ),
    max_shift: float = typer.Option(
        _SUB.max_shift_voxels, "--max-shift", help="Largest random shift per axis, voxels."
    ),
    crowding: int = typer.Option(
        _SUB.crowding,
        "--crowding",
        min=0,
        help="Neighbouring particles per sample (partly in the box).",
    ),
    no_normalise: bool = typer.Option(
        False,
        "--no-normalise",
        help="Keep signal + noise as is (no per-sample zero mean, unit std).",
    ),
    start_index: int = typer.Option(
        _default(simulate_subtomograms, "start_index"),
        "--start-index",
        min=0,
        help="First sample index (use a disjoint range for a test set).",
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="K/N: write only part K of N (join with 'cryoal simulate merge')."
    ),
    workers: int = typer.Option(
        _default(simulate_subtomograms, "workers"), "--workers", min=1, help="Generator processes."
    ),
    dtype: Dtype = typer.Option(
        _default(simulate_subtomograms, "dtype"), "--dtype", help="Storage dtype."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Simulate a labelled subtomogram dataset (HDF5 store) with CTF, missing wedge and noise."""
    from cryoal.cli.progress import CountProgress

    t0 = time.perf_counter()
    with CountProgress(f"simulating {out.name}", None) as bar:
        result = simulate_subtomograms(
            out,
            templates=templates,
            n_classes=classes,
            per_class=per_class,
            box=box,
            voxel_size_A=voxel_size,
            snr=snr,
            tilt_range=tilt_range,
            seed=seed,
            ctf=not no_ctf,
            defocus_range_um=defocus_range,
            phase_flip=phase_flip,
            wedge=not no_wedge,
            path=path,
            tilt_step_deg=tilt_step,
            max_shift_voxels=max_shift,
            crowding=crowding,
            normalise=not no_normalise,
            masks=masks,
            halves=halves,
            start_index=start_index,
            shard=shard,
            workers=workers,
            dtype=dtype,
            preview=preview,
            overwrite=overwrite,
            progress=bar,
        )
    from cryoal.io.store import SubtomogramStore

    with SubtomogramStore(result) as store:
        n, names = len(store), store.class_names
    dt = time.perf_counter() - t0
    typer.echo(
        f"wrote {n} subtomograms ({len(names)} classes: {', '.join(names)}) to {result} "
        f"in {dt:.1f} s ({n / max(dt, 1e-9):.0f}/s)"
    )
    if preview is not None:
        typer.echo(f"preview: {preview}")


def tomogram(
    out_dir: Path = typer.Argument(
        ..., help="Output folder (tomogram.mrc, labels.mrc, particles.star/.csv, ...)."
    ),
    shape: tuple[int, int, int] = typer.Option(
        _default(simulate_tomogram, "shape_zyx"), "--shape", help="Z Y X size, voxels."
    ),
    particles: int = typer.Option(
        _default(simulate_tomogram, "n_particles"),
        "--particles",
        min=1,
        help="Number of particles.",
    ),
    templates: Path | None = typer.Option(
        None, "--templates", help="Folder of maps / models (default: phantoms)."
    ),
    classes: int | None = typer.Option(
        None, "--classes", min=1, help="Number of classes (see 'simulate subtomograms')."
    ),
    voxel_size: float = typer.Option(
        _default(simulate_tomogram, "voxel_size_A"), "--voxel-size", help="Voxel size, Å."
    ),
    snr: float = typer.Option(
        _default(simulate_tomogram, "snr"),
        "--snr",
        help="SNR in boxes around the particles ('inf': no noise).",
    ),
    snr_box: int = typer.Option(
        _default(simulate_tomogram, "snr_box"),
        "--snr-box",
        min=1,
        help="Box edge over which the SNR is defined, voxels.",
    ),
    seed: int = typer.Option(_default(simulate_tomogram, "seed"), "--seed", min=0, help="Seed."),
    tilt_range: tuple[float, float] = typer.Option(
        _IMG.tilt_range_deg, "--tilt-range", help="MIN MAX tilt about y, degrees."
    ),
    path: ImagingPath = typer.Option(_IMG.path, "--path", help="Imaging path."),
    defocus_range: tuple[float, float] = typer.Option(
        _IMG.defocus_range_um, "--defocus-range", help="MIN MAX defocus, µm underfocus."
    ),
    no_ctf: bool = typer.Option(False, "--no-ctf", help="Switch the CTF off."),
    phase_flip: bool = typer.Option(
        _IMG.phase_flip, "--phase-flip", help="Phase-flipped CTF (|CTF|)."
    ),
    no_wedge: bool = typer.Option(False, "--no-wedge", help="Switch the missing wedge off."),
    tilt_step: float = typer.Option(
        _IMG.tilt_step_deg,
        "--tilt-step",
        help="Tilt increment of the back-projection path, degrees.",
    ),
    tomo_id: str = typer.Option(
        _default(simulate_tomogram, "tomo_id"), "--tomo-id", help="Tomogram id in the pick files."
    ),
    vesicles: int = typer.Option(
        0,
        "--vesicles",
        min=0,
        help="Spherical lipid vesicles to add (0: none).",
    ),
    sheets: int = typer.Option(
        0, "--sheets", min=0, help="Curved lipid membrane sheets crossing the tomogram (0: none)."
    ),
    vesicle_radius: tuple[float, float] = typer.Option(
        _MEM.vesicle_radius_A, "--vesicle-radius", help="MIN MAX vesicle radius, Å."
    ),
    bound_fraction: float = typer.Option(
        _MEM.bound_fraction,
        "--bound-fraction",
        min=0.0,
        max=1.0,
        help="Share of particles placed against a membrane (with membranes).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Simulate a tomogram with non-overlapping particles, ground-truth picks and a label volume
    (optionally with membranes: vesicles and curved sheets of lipid bilayer)."""
    t0 = time.perf_counter()
    membranes = (
        MembraneParams(
            vesicles=vesicles,
            sheets=sheets,
            vesicle_radius_A=vesicle_radius,
            bound_fraction=bound_fraction,
        )
        if vesicles + sheets
        else None
    )
    res = simulate_tomogram(
        out_dir,
        shape_zyx=shape,
        n_particles=particles,
        templates=templates,
        n_classes=classes,
        voxel_size_A=voxel_size,
        snr=snr,
        seed=seed,
        tilt_range=tilt_range,
        ctf=not no_ctf,
        defocus_range_um=defocus_range,
        phase_flip=phase_flip,
        wedge=not no_wedge,
        path=path,
        tilt_step_deg=tilt_step,
        snr_box=snr_box,
        tomo_id=tomo_id,
        membranes=membranes,
        overwrite=overwrite,
    )
    counts = res.picks["class_name"].value_counts().sort_index()
    typer.echo(
        f"wrote {res.tomogram} ({' x '.join(map(str, shape))} voxels, {len(res.picks)} particles: "
        f"{', '.join(f'{k} {v}' for k, v in counts.items())}) in {time.perf_counter() - t0:.1f} s"
    )
    if membranes is not None:
        n_bound = int((pd.read_csv(res.ground_truth)["membrane"] >= 0).sum())
        label = len(json.loads(res.settings.read_text())["label_names"])
        typer.echo(
            f"membranes: {vesicles} vesicles, {sheets} sheets, {n_bound} particles against one; "
            f"label {label} in {res.labels.name}"
        )
    typer.echo(f"labels: {res.labels}; picks: {res.star}, {res.csv}; truth: {res.ground_truth}")


def merge(
    out: Path = typer.Argument(..., help="Output HDF5 store."),
    shards: list[Path] = typer.Argument(..., help="Shard stores written with --shard K/N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Join the shards of one 'simulate subtomograms --shard' run into one store."""
    result = merge_shards(out, shards, overwrite=overwrite)
    typer.echo(f"merged {len(shards)} shards into {result}")


def build() -> typer.Typer:
    """The ``simulate`` commands (defaults read from the simulator)."""
    sim = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    sim.command("subtomograms")(subtomograms)
    sim.command("tomogram")(tomogram)
    sim.command("merge")(merge)
    return sim
