"""``cryoal label PROJECT``: label the suggestion queue in napari."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import typer


def label_cmd(
    directory: Path = typer.Argument(..., help="Project folder.", show_default=False),
    tomo_id: str = typer.Option(
        None, "--tomo-id", help="Only this tomogram's candidates (default: the whole queue)."
    ),
) -> None:
    """Open napari with the project's tomogram, its candidates and the labelling widget.

    Keys: 1-9 classes (project.yaml order), u unsure, x not a particle, n/p or Right/Left
    next/previous, Ctrl+Z undo. Every decision is saved in labels.sqlite when it is made.
    Needs a display with OpenGL; on a machine without one: xvfb-run -a cryoal label PROJECT.
    """
    from cryoal.project.session import LabellingSession

    # a wrong folder, tomogram id or a moved tomogram fails here with one line, and a
    # missing display or OpenGL below: all before a window is built
    with contextlib.closing(LabellingSession(directory, tomo_id=tomo_id)) as session:
        session.tomogram_paths()
    try:
        import napari
        from cryoal_napari._display import check_display
        from cryoal_napari._widget import open_project
    except ImportError as exc:
        raise ValueError(
            f"napari is not installed ({exc}); install the viewer with "
            "'pip install -e \".[napari]\"' (or 'bash scripts/setup.sh test,napari')"
        ) from exc
    check_display(shlex.join(["cryoal", "label", str(directory)] + _tomo_option(tomo_id)))
    viewer = napari.Viewer(show=True, title=f"cryoal label {directory}")
    widget = open_project(viewer, directory, tomo_id=tomo_id)
    if widget.session is None:
        viewer.close()
        raise ValueError(f"{directory}: could not open the project for labelling")
    napari.run()


def _tomo_option(tomo_id: str | None) -> list[str]:
    return [] if tomo_id is None else ["--tomo-id", tomo_id]


def register(app: typer.Typer) -> None:
    app.command("label")(label_cmd)
