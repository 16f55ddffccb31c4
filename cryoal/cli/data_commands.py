"""``cryoal data list|info|fetch|verify``: public datasets described by data_manifests/*.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

data_app = typer.Typer(
    help="Public cryo-ET datasets: list, describe, fetch (resumable, verified) and verify.",
    no_args_is_help=True,
)

_DATASET = typer.Argument(
    ..., help="Dataset name (see 'cryoal data list') or a manifest .yaml file.", show_default=False
)


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


@data_app.command("list")
def list_cmd() -> None:
    """List the datasets cryoal has manifests for."""
    from rich.console import Console
    from rich.table import Table

    from cryoal.io.manifest import load_manifest, manifest_paths

    table = Table(box=None)
    paths = sorted(manifest_paths().items())
    # the name is what users type: never wrapped or cut, whatever the terminal width
    table.add_column("name", no_wrap=True, min_width=max((len(n) for n, _ in paths), default=4))
    for header in ("what", "size", "source", "licence"):
        table.add_column(header)
    for name, path in paths:
        m = load_manifest(path)
        table.add_row(name, m.title, _size(m.total_size), m.source.kind, m.licence)
    Console(highlight=False, soft_wrap=True).print(table)


@data_app.command("info")
def info_cmd(dataset: str = _DATASET) -> None:
    """Describe one dataset: source, licence, classes, split and every file."""
    from rich.console import Console
    from rich.table import Table

    from cryoal.data.fetch import default_data_dir
    from cryoal.io.manifest import find_manifest

    m, path = find_manifest(dataset)
    con = Console(highlight=False, soft_wrap=True)
    con.print(f"[bold]{m.name}[/bold]: {m.title}  ({path})")
    con.print(" ".join(m.description.split()))
    con.print(f"licence: {' '.join(m.licence.split())}")
    con.print(f"cite: {' '.join(m.citation.split())}")
    src = m.source
    where = src.base_url or src.root or "; ".join("cryoal " + " ".join(c) for c in src.commands)
    if src.kind == "manual":
        where = f"download by hand from {src.landing_page}, then 'cryoal data fetch {m.fetch_argument()}'"
    con.print(f"source ({src.kind}): {where}")
    for key in ("doi", "portal_id", "landing_page"):
        if getattr(src, key):
            con.print(f"  {key}: {getattr(src, key)}")
    if m.voxel_size_A:
        con.print(f"voxel size: {m.voxel_size_A:g} Å; arrays {m.axis_order}")
    if m.classes:
        con.print("classes: " + ", ".join(
            f"{c.id}={c.name}" + (f" ({c.pdb_id})" if c.pdb_id else "") for c in m.classes
        ))  # fmt: skip
    if m.split.train or m.split.test:
        con.print(
            f"split: train {', '.join(m.split.train) or '-'}; test {', '.join(m.split.test) or '-'}"
        )
    con.print(f"default folder: {default_data_dir(m.name)}; total {_size(m.total_size)}")
    table = Table("file", "kind", "size", "sha256", box=None)
    for f in m.files:
        extra = f" [{f.convention}]" if f.convention else ""
        table.add_row(
            f.path,
            f.kind + extra,
            _size(f.size),
            f.sha256[:12] + "…" if f.sha256 else "not published",
        )
    con.print(table)


@data_app.command("fetch")
def fetch_cmd(
    dataset: str = _DATASET,
    to: Path = typer.Option(
        None,
        "--to",
        help="Folder to fetch into [default: $CRYOAL_DATA/NAME or ~/.cache/cryoal/datasets/NAME].",
    ),
    mirror: str = typer.Option(
        None, "--mirror", help="Base URL (or folder) that replaces the manifest's source."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Download (or generate) a dataset: resumable, SHA-256 verified, placed atomically."""
    from rich.console import Console

    from cryoal.data.fetch import default_data_dir, fetch_dataset
    from cryoal.io.manifest import find_manifest

    m, path = find_manifest(dataset)
    dest = to if to is not None else default_data_dir(m.name)
    show = progress and sys.stderr.isatty()
    if show:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )  # fmt: skip

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def on_progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        with bar:
            result = fetch_dataset(m, dest, manifest_path=path, mirror=mirror, progress=on_progress)
    else:
        result = fetch_dataset(m, dest, manifest_path=path, mirror=mirror)
    con = Console(highlight=False, soft_wrap=True)
    con.print(
        f"{m.name}: {len(result.fetched)} fetched, {len(result.present)} already present and "
        f"verified, in {result.directory}"
    )
    if result.recorded:
        con.print(
            f"recorded the checksums of {len(result.recorded)} file(s) the source does not publish "
            f"in {result.directory / '.cryoal-checksums.json'}"
        )


@data_app.command("verify")
def verify_cmd(
    target: str = typer.Argument(
        ...,
        help="Dataset name or manifest (checks its folder), or a fetched folder.",
        show_default=False,
    ),
    directory: Path = typer.Option(
        None, "--dir", help="Folder of the dataset [default: its default folder]."
    ),
) -> None:
    """Check every file's SHA-256; exit 1 when a file is missing or differs."""
    from rich.console import Console

    from cryoal.data.fetch import default_data_dir, verify_dataset
    from cryoal.io.manifest import find_manifest

    if directory is None and Path(target).is_dir():
        checks = verify_dataset(None, Path(target))
        label = target
    else:
        m, _ = find_manifest(target)
        folder = directory if directory is not None else default_data_dir(m.name)
        checks = verify_dataset(m, folder)
        label = f"{m.name} in {folder}"
    con = Console(highlight=False, soft_wrap=True)
    bad = [c for c in checks if c.status in ("missing", "mismatch")]
    for c in checks:
        if c.status != "ok":
            con.print(f"{c.status:12s} {c.path}: {c.detail}")
    ok = sum(c.status == "ok" for c in checks)
    con.print(
        f"{label}: {ok} of {len(checks)} files verified" + (f", {len(bad)} bad" if bad else "")
    )
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``cryoal data ...`` to the CLI."""
    app.add_typer(data_app, name="data")
