"""Independent random streams per (seed, sample index, purpose).

Every simulated sample is a pure function of ``(seed, index)``: its parameters (class
orientation, shift, defocus), its neighbours (crowding), its noise and its half pair's
second noise draw each come from their own ``numpy.random.Generator``, seeded with
``SeedSequence(seed, spawn_key=(index, stream))``.
Changing the SNR, or switching crowding on, therefore changes nothing but the noise (or the
neighbours), and any subset of indices can be generated anywhere (shards, workers) with
identical results.
"""

from __future__ import annotations

import numpy as np

#: Stream numbers; never renumber (that would change every dataset ever simulated).
STREAMS = {
    "params": 0,
    "noise": 1,
    "crowding": 2,
    "placement": 3,
    "membranes": 4,
    "noise-half": 5,
}


def check_seed(seed: int) -> int:
    """Return ``seed`` as int; raise ``ValueError`` unless it is a non-negative integer."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed {seed!r} must be a non-negative integer (e.g. 0)")
    return int(seed)


def sample_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """The generator for one sample's ``stream`` (one of :data:`STREAMS`)."""
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=(int(index), STREAMS[stream]))
    )
