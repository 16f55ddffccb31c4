"""``cryoal project add-candidate / move-candidate / delete-candidates / restore-candidates /
remove-tomogram``: fixing candidates by hand from the command line (the viewer's candidate
layer does the same through :mod:`cryoal.project.corrections`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from cryoal.cli.project_commands import _DIR, _console, project_app

_ANNOTATOR = typer.Option(
    None, "--annotator", help="Who made the change [default: your user name]."
)
_UNIT = typer.Option("pixel", "--coords-unit", help="Unit of --xyz: pixel (voxels) or angstrom.")


def _zyx(text: str, unit: str, voxel_size_A: float) -> tuple[float, float, float]:
    """``"x,y,z"`` (in ``unit``) -> zyx voxels."""
    parts = [p.strip() for p in text.split(",")]
    try:
        x, y, z = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"--xyz {text!r}: give three numbers x,y,z, e.g. --xyz 120,88,40"
        ) from None
    scale = 1.0 / voxel_size_A if unit == "angstrom" else 1.0
    return z * scale, y * scale, x * scale


def _who(annotator: str | None) -> str:
    from cryoal.project.session import default_annotator

    return annotator or default_annotator()


@project_app.command("add-candidate")
def add_candidate_cmd(
    directory: Path = _DIR,
    tomo_id: str = typer.Argument(..., help="Tomogram id, e.g. TS_01.", show_default=False),
    xyz: str = typer.Option(
        ..., "--xyz", help="Position x,y,z (see --coords-unit).", show_default=False
    ),
    unit: Literal["pixel", "angstrom"] = _UNIT,
    annotator: str = _ANNOTATOR,
    queue: bool = typer.Option(
        False, "--queue", help="Also append it to the newest round's queue, to label it next."
    ),
) -> None:
    """Add a particle the detector missed (refused on top of an existing candidate)."""
    from cryoal.project.corrections import add_candidate
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        zyx = _zyx(xyz, unit, project.voxel_size_A)
        round_ = project.labels.latest_round() if queue else None
        cid = add_candidate(project, tomo_id, zyx, _who(annotator), queue_round=round_)
    where = f"; queued in round {round_}" if round_ is not None else ""
    _console().print(f"added candidate {cid}{where}")


@project_app.command("move-candidate")
def move_candidate_cmd(
    directory: Path = _DIR,
    candidate_id: str = typer.Argument(
        ..., help="Candidate id, e.g. TS_01:000123.", show_default=False
    ),
    xyz: str = typer.Option(
        ..., "--xyz", help="New centre x,y,z (see --coords-unit).", show_default=False
    ),
    unit: Literal["pixel", "angstrom"] = _UNIT,
    annotator: str = _ANNOTATOR,
) -> None:
    """Re-centre an off-centre candidate; its labels stay with it."""
    from cryoal.project.corrections import move_candidate
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        move_candidate(
            project, candidate_id, _zyx(xyz, unit, project.voxel_size_A), _who(annotator)
        )
    _console().print(f"moved candidate {candidate_id} to x,y,z = {xyz} ({unit})")


@project_app.command("delete-candidates")
def delete_candidates_cmd(
    directory: Path = _DIR,
    candidate_ids: list[str] = typer.Argument(..., help="Candidate ids.", show_default=False),
    annotator: str = _ANNOTATOR,
) -> None:
    """Delete duplicate or wrong candidates (kept in the history; restore-candidates undoes)."""
    from cryoal.project.corrections import delete_candidates
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        n = delete_candidates(project, candidate_ids, _who(annotator))
    _console().print(f"deleted {n} candidate(s); {len(candidate_ids) - n} were deleted already")


@project_app.command("restore-candidates")
def restore_candidates_cmd(
    directory: Path = _DIR,
    candidate_ids: list[str] = typer.Argument(..., help="Candidate ids.", show_default=False),
    annotator: str = _ANNOTATOR,
) -> None:
    """Bring deleted candidates back, with their labels."""
    from cryoal.project.corrections import restore_candidates
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        n = restore_candidates(project, candidate_ids, _who(annotator))
    _console().print(f"restored {n} candidate(s)")


@project_app.command("remove-tomogram")
def remove_tomogram_cmd(
    directory: Path = _DIR,
    tomo_id: str = typer.Argument(..., help="Tomogram id, e.g. TS_01.", show_default=False),
    force: bool = typer.Option(
        False, "--force", help="Remove it even though some of its candidates are labelled."
    ),
    annotator: str = _ANNOTATOR,
) -> None:
    """Remove a tomogram added by mistake; its candidates are deleted (history kept)."""
    from cryoal.project.corrections import remove_tomogram
    from cryoal.project.project import Project

    with Project.open(directory) as project:
        done = remove_tomogram(project, tomo_id, _who(annotator), force=force)
    left = f"; {done.labels} labels left out of training" if done.labels else ""
    _console().print(f"removed tomogram {done.tomo_id}: {done.candidates} candidates deleted{left}")


def register(app: typer.Typer) -> None:
    """The commands live in ``cryoal project`` (added by project_commands.register)."""
