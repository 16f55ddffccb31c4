"""``cryoal project ...``, ``cryoal labels ...``, ``cryoal suggest`` and ``cryoal status``.

Thin commands: each parses its options, calls one ``cryoal.project`` function and prints
a short summary. Defaults that are not given on the command line come from the project's
``project.yaml`` (``defaults:``).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

project_app = typer.Typer(
    help="Create a labelling project and fill it with tomograms and candidates.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
labels_app = typer.Typer(
    help="Label, import and export a project's labels.", no_args_is_help=True, rich_markup_mode=None
)

_DIR = typer.Argument(..., help="Project folder.", show_default=False)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _text(value: object) -> str:
    """A table cell: '-' for None/NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return str(value)


def _default_annotator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- cryoal project ----------------------------------------------------------------------
@project_app.command("init")
def init_cmd(
    directory: Path = _DIR,
    classes: str = typer.Option(
        ..., "--classes", help="Comma-separated class names, in class-id order: ribosome,proteasome"
    ),
    voxel_size: float = typer.Option(
        None,
        "--voxel-size",
        help="Voxel size (Å) of the project's tomograms [default: the first tomogram's].",
    ),
    box: int = typer.Option(32, "--box", min=1, help="Subtomogram edge length, voxels."),
    task: Literal["classify", "segment"] = typer.Option(
        "classify", "--task", help="classify (a class per candidate) or segment (voxel masks)."
    ),
) -> None:
    """Create a project: project.yaml and an empty label store."""
    from cryoal.project.project import Project, parse_class_list

    project = Project.init(
        directory, parse_class_list(classes), voxel_size_A=voxel_size, box=box, task=task
    )
    names = ", ".join(f"{c.id}={c.name}" for c in project.config.classes)
    _console().print(f"created project {directory} (classes {names}; box {box} voxels)")
    project.close()


@project_app.command("add-tomogram")
def add_tomogram_cmd(
    directory: Path = _DIR,
    tomogram: Path = typer.Argument(..., help="Tomogram (.mrc/.rec).", show_default=False),
    tomo_id: str = typer.Option(
        None, "--tomo-id", help="Tomogram id [default: file name without extension]."
    ),
    voxel_size: float = typer.Option(
        None,
        "--voxel-size",
        help="Override the header voxel size (Å) when it is wrong or 0 [default: the header's].",
    ),
    odd: Path = typer.Option(
        None,
        "--odd",
        help="Its odd half tomogram (with --even; same shape): pretraining makes the two "
        "views of a candidate from the two halves.",
        show_default=False,
    ),
    even: Path = typer.Option(None, "--even", help="Its even half tomogram.", show_default=False),
) -> None:
    """Add a tomogram; its voxel size must match the project's."""
    from cryoal.project.project import Project

    if (odd is None) != (even is None):
        raise typer.BadParameter("give both --odd and --even (the two half tomograms), or neither")
    pair = None if odd is None else (odd, even)
    with Project.open(directory) as project:
        spec = project.add_tomogram(tomogram, tomo_id, voxel_size_A=voxel_size, halves=pair)
    shape = " x ".join(str(s) for s in spec.shape_zyx)
    _console().print(
        f"added tomogram {spec.id}: {shape} voxels (z, y, x) at {spec.voxel_size_A:g} Å"
        + (" with its odd/even halves" if spec.halves else "")
    )


@project_app.command("add-halves")
def add_halves_cmd(
    directory: Path = _DIR,
    tomo_id: str = typer.Argument(..., help="Tomogram id, e.g. TS_01.", show_default=False),
    odd: Path = typer.Argument(..., help="Odd half tomogram (.mrc/.rec).", show_default=False),
    even: Path = typer.Argument(..., help="Even half tomogram.", show_default=False),
    voxel_size: float = typer.Option(
        None,
        "--voxel-size",
        help="Override the halves' header voxel size (Å) when it is wrong or 0.",
    ),
) -> None:
    """Record a tomogram's odd/even half tomograms: pretraining then makes the two views of
    each candidate from them (the same particle under independent noise)."""
    from cryoal.project.project import Project

    with Project.open(directory, check_labels=False) as project:
        spec = project.add_halves(tomo_id, odd, even, voxel_size_A=voxel_size)
    assert spec.halves is not None
    _console().print(f"tomogram {spec.id}: halves {spec.halves[0]}, {spec.halves[1]}")


@project_app.command("relocate-tomogram")
def relocate_tomogram_cmd(
    directory: Path = _DIR,
    tomo_id: str = typer.Argument(..., help="Tomogram id, e.g. TS_01.", show_default=False),
    tomogram: Path = typer.Argument(
        ..., help="Where the tomogram file is now.", show_default=False
    ),
    voxel_size: float = typer.Option(
        None,
        "--voxel-size",
        help="Override the header voxel size (Å) when it is wrong or 0 [default: the header's].",
    ),
) -> None:
    """Record the new place of a tomogram file that was moved (same shape and voxel size)."""
    from cryoal.project.project import Project

    with Project.open(directory, check_labels=False) as project:
        spec = project.relocate_tomogram(tomo_id, tomogram, voxel_size_A=voxel_size)
    _console().print(f"tomogram {spec.id}: now {project.resolve_path(spec.path)}")


@project_app.command("rebuild-labels")
def rebuild_labels_cmd(directory: Path = _DIR) -> None:
    """Make a missing labels.sqlite again from the newest snapshot and the project's tables."""
    from cryoal.project.rebuild import rebuild_label_store

    res = rebuild_label_store(directory)
    if res.snapshot is not None:
        labels = f"{res.n_labels} labels from {res.snapshot} (labels made after it are lost)"
    else:
        labels = "no labels (the project has no snapshot, rounds/NNN/snapshot.csv)"
    text = f"rebuilt {res.path}: {res.n_candidates} candidates; {labels}"
    if res.queues:
        text += f"; suggestion queues of rounds {', '.join(map(str, res.queues))}"
    if res.skipped_queues:
        skipped = ", ".join(map(str, res.skipped_queues))
        text += f"; queues of rounds {skipped} not restored (candidates no file holds)"
    _console().print(text)


@project_app.command("import-picks")
def import_picks_cmd(
    directory: Path = _DIR,
    files: list[Path] = typer.Argument(
        ...,
        help="Picks: RELION .star, .csv, copick .json, portal .ndjson or .coords.",
        show_default=False,
    ),
    tomo_id: str = typer.Option(
        None,
        "--tomo-id",
        help="Tomogram id for files that name none [default: the names in the file].",
    ),
    unit: Literal["angstrom", "pixel"] | None = typer.Option(
        None,
        "--coords-unit",
        help="Unit of CSV x, y, z [default: from the column names, x_A or x_px].",
    ),
    class_name: str = typer.Option(None, "--class", help="Class of every pick (prior class)."),
    as_labels: bool = typer.Option(
        False, "--as-labels", help="Also record the picks' classes as labels."
    ),
    annotator: str = typer.Option(
        None, "--annotator", help="Annotator for --as-labels [default: import:FILE]."
    ),
    tomograms_star: Path | None = typer.Option(
        None,
        "--tomograms-star",
        help="RELION 5 tomograms.star: tomogram sizes for centred coordinates.",
    ),
) -> None:
    """Create candidates from existing picks (duplicates of existing candidates are skipped)."""
    from cryoal.io.coords import read_tomograms_star
    from cryoal.project.candidates import import_picks
    from cryoal.project.project import Project

    sizes = read_tomograms_star(tomograms_star) if tomograms_star else None
    console = _console()
    with Project.open(directory) as project:
        for path in files:
            res = import_picks(
                project, path, tomo_id=tomo_id, unit=unit, class_name=class_name,
                as_labels=as_labels, annotator=annotator, tomogram_sizes_A=sizes,
            )  # fmt: skip
            per = ", ".join(f"{t}: {n}" for t, n in res.added.items())
            extra = f"; {res.duplicates} duplicates skipped" if res.duplicates else ""
            extra += f"; {res.outside} outside the tomogram skipped" if res.outside else ""
            extra += f"; {res.labelled} labelled" if res.labelled else ""
            console.print(f"{path}: {res.n_added} candidates ({per}){extra}")


@project_app.command("detect")
def detect_cmd(
    directory: Path = _DIR,
    tomo_id: str = typer.Option(None, "--tomo-id", help="Only this tomogram [default: all]."),
    radius: float = typer.Option(
        None, "--radius-A", help="Particle radius, Å [default: project defaults, else box/3]."
    ),
    n: int = typer.Option(
        None, "--n", min=1, help="Candidates per tomogram [default: project defaults]."
    ),
    polarity: Literal["dark", "bright"] | None = typer.Option(
        None, "--polarity", help="Particle contrast [default: project defaults]."
    ),
) -> None:
    """Find candidates without picks (difference of Gaussians + non-maximum suppression)."""
    from cryoal.cli.progress import CountProgress
    from cryoal.project.candidates import detect_candidates
    from cryoal.project.project import Project

    with Project.open(directory) as project, CountProgress("detecting: blocks", None) as bar:
        res = detect_candidates(
            project, tomo_id=tomo_id, radius_A=radius, n=n, polarity=polarity, progress=bar
        )
    per = ", ".join(f"{t}: {k}" for t, k in res.added.items())
    _console().print(f"detected {res.n_added} new candidates ({per})")


@project_app.command("snapshot")
def snapshot_cmd(directory: Path = _DIR) -> None:
    """Freeze the current labels into rounds/NNN/snapshot.csv (hashed, read-only)."""
    from cryoal.project.project import Project
    from cryoal.project.snapshot import write_snapshot

    with Project.open(directory) as project:
        snap = write_snapshot(project.labels, project.root)
    _console().print(
        f"snapshot of {snap.n_labels} labels: {snap.path} (round {snap.round}, sha256 {snap.sha256[:16]}...)"
    )


# -- cryoal labels -----------------------------------------------------------------------
@labels_app.command("add")
def labels_add_cmd(
    directory: Path = _DIR,
    candidate_id: str = typer.Argument(
        ..., help="Candidate id, e.g. TS_01:000123.", show_default=False
    ),
    label: str = typer.Argument(
        ..., help="Class name, unsure or not-a-particle.", show_default=False
    ),
    annotator: str = typer.Option(
        None, "--annotator", help="Who labels [default: your user name]."
    ),
) -> None:
    """Label one candidate (committed at once)."""
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        rec = project.labels.add_label(candidate_id, label, annotator or _default_annotator())
    where = f" (round {rec.round})" if rec.round is not None else ""
    _console().print(f"{rec.candidate_id}: {rec.class_name or rec.kind}{where}")


@labels_app.command("import")
def labels_import_cmd(
    directory: Path = _DIR,
    csv: Path = typer.Argument(
        ..., help="CSV with candidate_id and label columns.", show_default=False
    ),
    annotator: str = typer.Option(
        None, "--annotator", help="Annotator for rows without one [default: import:FILE]."
    ),
) -> None:
    """Import labels from a CSV (all rows or none)."""
    from cryoal.project.labelio import import_labels_csv
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        n = import_labels_csv(project, csv, annotator=annotator)
        counts = project.labels.counts()
    _console().print(f"{csv}: {n} labels recorded; {counts['unlabelled']} candidates unlabelled")


@labels_app.command("export")
def labels_export_cmd(
    directory: Path = _DIR,
    fmt: Literal["csv", "star", "copick", "masks"] = typer.Option(
        "csv",
        "--format",
        help="csv, star (RELION), copick (picks; a segment project: its masks as copick segmentations), or masks (segmentation, MRC).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output file (copick, masks: a folder).", show_default=False
    ),
    star_version: int = typer.Option(
        4, "--star-version", min=4, max=5, help="RELION STAR version: 4 (pixels) or 5 (centred Å)."
    ),
    out_pixel_size: float | None = typer.Option(
        None,
        "--out-pixel-size",
        min=0.0,
        help="STAR: unbinned tilt-series pixel size (Å), written as rlnTomoTiltSeriesPixelSize "
        "(tomogram binning = voxel size / it) [default: the tomogram voxel size].",
    ),
    include_special: bool = typer.Option(
        False, "--include-special", help="CSV: also unsure / not-a-particle."
    ),
    user: str = typer.Option("cryoal", "--user-id", help="copick user id."),
    session: str = typer.Option("0", "--session-id", help="copick session id."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
) -> None:
    """Export the current labels with coordinates, or the segmentation masks as MRC."""
    from cryoal.project.labelio import export_labels, export_masks
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        if fmt == "masks":
            res = export_masks(project, out, overwrite=overwrite)
            _console().print(f"exported {res.n_labels} masks to {out} (index: masks.csv)")
            return
        res = export_labels(
            project, fmt, out, include_special=include_special, star_version=star_version,  # type: ignore[arg-type]
            tilt_series_pixel_size_A=out_pixel_size, user_id=user, session_id=session,
            overwrite=overwrite,
        )  # fmt: skip
    _console().print(f"exported {res.n_labels} labels to {len(res.paths)} file(s) under {out}")


@labels_app.command("queue")
def labels_queue_cmd(
    directory: Path = _DIR,
    round: int = typer.Option(None, "--round", min=0, help="Round [default: newest]."),
    limit: int = typer.Option(20, "--limit", min=0, help="Rows to show."),
) -> None:
    """Show the suggestions still waiting for a label."""
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        q = project.labels.queue(round)
    table = Table("rank", "candidate", "tomogram", "z", "y", "x", "score")
    for row in q.head(limit).itertuples():
        score = "" if _text(row.score) == "-" else f"{row.score:.4g}"
        table.add_row(str(row.rank), row.candidate_id, row.tomo_id, f"{row.z:.1f}",
                      f"{row.y:.1f}", f"{row.x:.1f}", score)  # fmt: skip
    console = _console()
    console.print(table)
    console.print(f"{len(q)} suggestions waiting")


# -- cryoal suggest / status -------------------------------------------------------------
def suggest_cmd(
    directory: Path = _DIR,
    strategy: str = typer.Option(
        None,
        "--strategy",
        help="random, stratified or typical (no model needed; typical: TypiClust in the "
        "embedding 'cryoal pretrain DIR' made), or a strategy or recipe ranked by the "
        "newest trained round: margin+div+cap, badge, kt, entropy, ... "
        "[default: project defaults: margin+div+cap once a model exists; before, typical "
        "when the project has an encoder, else random].",
    ),
    k: int = typer.Option(None, "--k", min=1, help="Suggestions [default: project defaults]."),
    seed: int = typer.Option(None, "--seed", help="Seed [default: project defaults]."),
    replace: bool = typer.Option(False, "--replace", help="Replace this round's existing queue."),
    device: str = typer.Option("cpu", "--device", help="Torch device for scoring."),
    import_: bool = typer.Option(
        False,
        "--import",
        help="Score nothing: write the queue merged from cluster score shards "
        "('cryoal merge-scores') into the label store.",
    ),
) -> None:
    """Write the next suggestion queue (round 0 without a model, then the newest model's round)."""
    from cryoal.project.project import Project
    from cryoal.project.suggest import import_suggestions, parse_strategy, suggest

    if import_:
        if strategy is not None or k is not None or seed is not None:
            raise ValueError(
                "--import takes the merged queue as the merge wrote it; drop --strategy, --k "
                "and --seed (they belong to 'cryoal score' and 'cryoal merge-scores')"
            )
        with Project.open(directory) as project:
            got = import_suggestions(project, replace=replace)
        done = "already in the label store" if got.already else "imported into the label store"
        _console().print(
            f"round {got.round}: {len(got.ids)} merged suggestions ({got.strategy} by model "
            f"{got.model_version}) {done}"
        )
        return
    from cryoal.cli.progress import CountProgress

    parsed = None if strategy is None else parse_strategy(strategy)  # once, before any work
    with Project.open(directory) as project:
        pool = len(project.labels.unlabelled_ids())
        with (
            CountProgress("extracting candidates", None) as cut,
            CountProgress("scoring candidates", pool) as scored,
        ):
            res = suggest(
                project, strategy=parsed, k=k, seed=seed, replace=replace, device=device,
                progress=cut, on_batch=scored,
            )  # fmt: skip
    model = f" by model {res.model_version}" if res.model_version else ""
    _console().print(
        f"round {res.round}: {len(res.ids)} suggestions ({res.strategy}{model}) -> {res.csv_path}"
    )


def status_cmd(directory: Path = _DIR) -> None:
    """Counts per class, tomogram and round, and the newest model's metrics."""
    from cryoal.project.project import Project
    from cryoal.project.status import project_status

    with Project.open(directory) as project:
        st = project_status(project)
    console = _console()
    vs = f"{st.voxel_size_A:g} Å" if st.voxel_size_A else "not set"
    console.print(f"[bold]{st.name}[/bold]: voxel size {vs}, box {st.box} voxels")
    labels = Table("label", "count")
    for name, count in st.counts.items():
        labels.add_row(name, str(count))
    console.print(labels)
    if not st.tomograms.empty:
        tomos = Table("tomogram", "candidates", "labelled", "unlabelled")
        for row in st.tomograms.itertuples():
            tomos.add_row(row.tomo_id, str(row.candidates), str(row.labelled), str(row.unlabelled))
        console.print(tomos)
    if not st.rounds.empty:
        rounds = Table("round", "strategy", "model", "suggested", "answered", "labels")
        for row in st.rounds.itertuples():
            rounds.add_row(str(row.round), _text(row.strategy), _text(row.model_version),
                           str(row.suggested), str(row.answered), str(row.labels))  # fmt: skip
        console.print(rounds)
    console.print(f"snapshots: {', '.join(map(str, st.snapshots)) or 'none'}")
    for r in st.interrupted:
        console.print(
            f"round {r}: training interrupted (a killed job); 'cryoal train {directory}' resumes it"
        )
    model = st.latest_model
    if model is None:
        console.print("model: none trained yet ('cryoal train DIR')")
    else:
        keys = ("val_teacher_accuracy", "val_teacher_macro_f1", "val_student_accuracy",
                "val_agreement")  # fmt: skip
        shown = {k.removeprefix("val_"): model.metrics[k] for k in keys if k in model.metrics}
        summary = ", ".join(f"{k} {v:.3f}" for k, v in shown.items()) or "no validation metrics"
        console.print(
            f"model {model.model_version} (round {model.round}, {model.n_train} train / "
            f"{model.n_val} val labels): {summary}"
        )


# -- cryoal project from-manifest (public datasets, data_manifests/) ----------------------
@project_app.command("from-manifest")
def from_manifest_cmd(
    dataset: str = typer.Argument(
        ..., help="Dataset name (cryoal data list) or manifest .yaml file.", show_default=False
    ),
    directory: Path = _DIR,
    data_dir: Path = typer.Option(
        None, "--data", help="Folder the dataset was fetched into [default: its default folder]."
    ),
    box: int = typer.Option(
        None, "--box", help="Subtomogram edge, voxels [default: the manifest's, else 32]."
    ),
    as_labels: bool = typer.Option(
        False, "--as-labels", help="Also record the picks' classes as labels (ground truth)."
    ),
) -> None:
    """Create a project from a fetched dataset: its classes, tomograms and picks."""
    from cryoal.data.fetch import default_data_dir
    from cryoal.io.manifest import find_manifest
    from cryoal.project.from_manifest import project_from_manifest

    manifest, _ = find_manifest(dataset)
    data = data_dir if data_dir is not None else default_data_dir(manifest.name)
    res = project_from_manifest(manifest, data, directory, box=box, as_labels=as_labels)
    per = ", ".join(f"{t}: {n}" for t, n in res.candidates.items())
    extra = f"; {res.duplicates} repeated picks skipped" if res.duplicates else ""
    extra += f"; {res.labelled} labelled" if res.labelled else ""
    if not manifest.files_of("picks"):
        extra += (
            f"; the dataset has no picks: find candidates with 'cryoal project detect {directory}'"
        )
    _console().print(
        f"created project {directory} from {manifest.name}: classes {', '.join(res.classes)}; "
        f"{len(res.tomograms)} tomogram(s); {res.n_candidates} candidates ({per}){extra}"
    )


# -- cryoal project from-copick (a copick project's runs, tomograms and picks) ------------
@project_app.command("from-copick")
def from_copick_cmd(
    config: Path = typer.Argument(
        ..., help="copick configuration JSON (e.g. copick_config.json).", show_default=False
    ),
    directory: Path = _DIR,
    run_names: list[str] = typer.Option(
        [], "--run", help="Use only this copick run (repeat) [default: all runs]."
    ),
    voxel_size: float | None = typer.Option(
        None,
        "--voxel-size",
        min=0.0,
        help="copick voxel spacing (Å) of the tomograms [default: the only one the runs have].",
    ),
    tomo_type: str | None = typer.Option(
        None,
        "--tomo-type",
        help="copick tomogram type, e.g. wbp or denoised [default: the only one].",
    ),
    object_names: list[str] = typer.Option(
        [],
        "--object-name",
        help="copick pickable object that becomes a class (repeat; in class-id order) "
        "[default: every particle object].",
    ),
    user_id: str | None = typer.Option(
        None, "--user-id", help="Import only this copick user's picks [default: all users]."
    ),
    session_id: str | None = typer.Option(
        None, "--session-id", help="Import only this copick session's picks [default: all]."
    ),
    box: int = typer.Option(None, "--box", min=1, help="Subtomogram edge, voxels [default: 32]."),
    as_labels: bool = typer.Option(
        False, "--as-labels", help="Also record the picks' objects as labels."
    ),
) -> None:
    """Create a project from a copick project: its objects, runs' tomograms and picks."""
    from cryoal.project.from_copick import project_from_copick

    res = project_from_copick(
        config, directory, runs=run_names, voxel_size_A=voxel_size, tomo_type=tomo_type,
        objects=object_names, user_id=user_id, session_id=session_id, box=box,
        as_labels=as_labels,
    )  # fmt: skip
    got = res.imported
    per = ", ".join(f"{t}: {n}" for t, n in got.added.items()) or "none"
    extra = f"; {got.duplicates} repeated picks skipped" if got.duplicates else ""
    extra += f"; {got.outside} outside the tomogram skipped" if got.outside else ""
    extra += f"; {got.labelled} labelled" if got.labelled else ""
    if res.converted:
        extra += f"; OME-Zarr converted to MRC for {', '.join(res.converted)} (tomograms/)"
    if not res.picks_sets:
        extra += f"; no picks: find candidates with 'cryoal project detect {directory}'"
    _console().print(
        f"created project {directory} from {config}: classes {', '.join(res.classes)}; "
        f"{len(res.tomograms)} tomogram(s) ({res.tomo_type} at {res.voxel_size_A:g} Å); "
        f"{got.n_added} candidates ({per}) from {res.picks_sets} picks set(s){extra}"
    )


def register(app: typer.Typer) -> None:
    """Add the project commands to the ``cryoal`` app."""
    app.add_typer(project_app, name="project")
    app.add_typer(labels_app, name="labels")
    app.command("suggest")(suggest_cmd)
    app.command("status")(status_cmd)
