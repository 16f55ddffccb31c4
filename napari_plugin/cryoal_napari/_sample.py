"""Sample data: a small simulated project, generated on demand (nothing is downloaded).

A 64 × 128 × 128 tomogram at 10 Å with 36 particles of two phantom classes (SNR 1,
seed 0) from :func:`cryoal.sim.tomograms.simulate_tomogram`, made into a project with
the ground-truth picks as candidates and a random round-0 queue of 16 suggestions. It is
written once under the system's temporary folder (``cryoal_napari_sample/``) and reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from cryoal.project.layout import is_project
from cryoal_napari._layers import LayerData

log = logging.getLogger(__name__)

#: Settings of the sample; part of the folder name, so a change makes a new sample.
SAMPLE_SEED = 0
SAMPLE_SHAPE = (64, 128, 128)
SAMPLE_PARTICLES = 36
SAMPLE_VERSION = 1


def sample_root() -> Path:
    """Where the sample project lives: ``<tmp>/cryoal_napari_sample/project_v<N>_seed<S>``."""
    base = Path(tempfile.gettempdir()) / "cryoal_napari_sample"
    return base / f"project_v{SAMPLE_VERSION}_seed{SAMPLE_SEED}"


def make_sample_project(root: str | os.PathLike | None = None) -> Path:
    """Create the sample project at ``root`` (default :func:`sample_root`) unless it exists.

    The project is built in a temporary folder beside ``root`` and renamed into place
    when complete, so an interrupted run never leaves a half-made project.

    Returns
    -------
    Path
        The project folder (holds ``project.yaml``, ``labels.sqlite``, ``sim/``,
        ``rounds/000/suggestions.csv``).
    """
    from cryoal.project.candidates import import_picks
    from cryoal.project.project import Project
    from cryoal.project.suggest import suggest
    from cryoal.sim.tomograms import simulate_tomogram

    root = Path(root) if root is not None else sample_root()
    if is_project(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        sim = simulate_tomogram(
            work / "sim",
            shape_zyx=SAMPLE_SHAPE,
            n_particles=SAMPLE_PARTICLES,
            n_classes=2,
            snr=1.0,
            seed=SAMPLE_SEED,
        )
        classes = json.loads(sim.settings.read_text())["class_names"]
        with Project.init(work, classes, box=24, name="cryoal_sample") as project:
            project.add_tomogram(sim.tomogram, "sim_tomo")
            import_picks(project, sim.star)
            suggest(project, strategy="random", k=16, seed=SAMPLE_SEED)
        os.replace(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if is_project(root):  # another process finished it first
            return root
        raise
    log.info("sample project written to %s", root)
    return root


def sample_project() -> list[LayerData]:
    """napari sample data: the sample project's tomogram and candidates (see module doc)."""
    from cryoal_napari._project import read_project
    from cryoal_napari._viewer import install_on_current_viewer

    install_on_current_viewer()
    return read_project(make_sample_project())
