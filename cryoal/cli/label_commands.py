"""``cryoal label PROJECT``: label the suggestion queue in napari."""

from __future__ import annotations

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
    """
    from cryoal.project.session import LabellingSession

    # a wrong folder or tomogram id fails here with one line, before a window opens
    LabellingSession(directory, tomo_id=tomo_id).close()
    try:
        import napari
        from cryoal_napari._widget import open_project
    except ImportError as exc:
        raise ValueError(
            f"napari is not installed ({exc}); install the viewer with "
            "'pip install -e \".[napari]\"' (or 'bash scripts/setup.sh test,napari')"
        ) from exc
    viewer = napari.Viewer(show=True, title=f"cryoal label {directory}")
    widget = open_project(viewer, directory, tomo_id=tomo_id)
    if widget.session is None:
        viewer.close()
        raise ValueError(f"{directory}: could not open the project for labelling")
    napari.run()


def register(app: typer.Typer) -> None:
    app.command("label")(label_cmd)
