"""Simulated cryo-ET data with ground truth: templates, CTF, missing wedge, noise.

Public API::

    simulate_subtomograms(out_h5, templates=None, n_classes=10, per_class=..., snr=...)
    simulate_tomogram(out_dir, shape_zyx=..., n_particles=..., snr=...)
    merge_shards(out_h5, shards)
    Simulator(templates, SubtomogramParams(...), seed).generate(indices)
    load_templates(None | folder | [Template], voxel_size_A), phantom_templates(n)
    write_preview(png, simulator)

See docs/simulation.md for the physics and the conventions.
"""

from __future__ import annotations

from cryoal.sim.imaging import ImagingParams
from cryoal.sim.preview import write_preview
from cryoal.sim.subtomograms import (
    SimBatch,
    Simulator,
    SubtomogramParams,
    merge_shards,
    simulate_subtomograms,
)
from cryoal.sim.templates import (
    Template,
    density_from_model,
    load_map,
    load_templates,
    make_template,
    phantom_templates,
)
from cryoal.sim.tomograms import SimulatedTomogram, simulate_tomogram

__all__ = [
    "ImagingParams",
    "SimBatch",
    "SimulatedTomogram",
    "Simulator",
    "SubtomogramParams",
    "Template",
    "density_from_model",
    "load_map",
    "load_templates",
    "make_template",
    "merge_shards",
    "phantom_templates",
    "simulate_subtomograms",
    "simulate_tomogram",
    "write_preview",
]
