"""Simulated subtomogram datasets with ground truth, written to the HDF5 store.

The package's modules, one job each:

* :mod:`cryoal.sim.subtomograms.simulator`: :class:`Simulator`, any sample of a dataset
  as a pure function of ``(seed, index)`` (rotation, shift, defocus, neighbours, CTF and
  missing wedge, noise at the SNR, masks), with its settings :class:`SubtomogramParams`
  and results :class:`SimBatch`; its docstring says what each sample is;
* :mod:`cryoal.sim.subtomograms.batches`: :func:`iter_batches`, a range of samples in
  order, in batches, in worker processes;
* :mod:`cryoal.sim.subtomograms.shards`: the ``K/N`` shards of a dataset and
  :func:`merge_shards`;
* :mod:`cryoal.sim.subtomograms.write`: :func:`simulate_subtomograms`, a dataset (or one
  shard) written to a store.

Every public name is importable from ``cryoal.sim.subtomograms``.
"""

from __future__ import annotations

from cryoal.sim.subtomograms.batches import iter_batches
from cryoal.sim.subtomograms.shards import merge_shards, parse_shard, shard_range
from cryoal.sim.subtomograms.simulator import (
    MASK_CONVENTION,
    SIM_VERSION,
    SimBatch,
    Simulator,
    SubtomogramParams,
    sample_ids,
)
from cryoal.sim.subtomograms.write import simulate_subtomograms

__all__ = [
    "MASK_CONVENTION",
    "SIM_VERSION",
    "SimBatch",
    "Simulator",
    "SubtomogramParams",
    "iter_batches",
    "merge_shards",
    "parse_shard",
    "sample_ids",
    "shard_range",
    "simulate_subtomograms",
]
