"""``cryoal clean [DIR]``: list or remove the partial files that killed runs left behind."""

from __future__ import annotations

from pathlib import Path

import typer


def _size(n_bytes: int) -> str:
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def clean(
    directory: Path = typer.Argument(
        Path("."), help="Folder searched (with its sub-folders) [default: current folder]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
) -> None:
    """Remove the temporary '.NAME.cryoal-partial-*' files of interrupted runs.

    Only partials of processes that are no longer running on this machine are removed;
    those of running jobs, and those written on another machine, are listed and kept.
    """
    from cryoal.io.atomic import find_partials, remove_partial, this_host

    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a folder; pass the folder to clean")
    found = find_partials(directory)
    removable = [p for p in found if p.stale]
    total = 0
    for part in found:
        size = part.size_bytes
        if part.stale:
            total += size
            verb = "would remove" if dry_run else "removed"
            if not dry_run:
                remove_partial(part)
            typer.echo(f"{verb} {part.path} ({_size(size)}; partial {part.final.name})")
        elif part.host == this_host():
            typer.echo(f"kept {part.path} (process {part.pid} is still running)")
        else:
            typer.echo(
                f"kept {part.path} (written on host {part.host!r}; remove it by hand once "
                "no job runs there)"
            )
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(removable)} partial file(s), {_size(total)}, under {directory}")


def register(app: typer.Typer) -> None:
    """Add the ``clean`` command."""
    app.command("clean")(clean)
