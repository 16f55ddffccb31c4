"""``cryoal simulate ...``: registered lazily (the simulator imports torch and scipy).

The commands live in :mod:`cryoal.cli.simulate`, imported only when ``cryoal simulate``
runs, so the rest of the CLI starts without the simulator's libraries.
"""

from __future__ import annotations

import typer

from cryoal.cli.lazy import lazy_group


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command group."""
    group = lazy_group(
        "cryoal.cli.simulate:build",
        help="Simulate cryo-ET data with ground truth (CTF, missing wedge, noise).",
    )
    app.add_typer(group, name="simulate")
