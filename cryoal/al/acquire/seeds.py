"""Seeds of an acquisition's random draws, derived from its one seed.

:func:`subseed` gives each draw (the pre-subset, the selection, the MC-dropout masks) and
each caller (the AL engine, rounds, the benchmark) its own independent seed.
"""

from __future__ import annotations

import numpy as np


def subseed(seed: int, *tags: int) -> int:
    """An independent 32-bit seed derived from ``seed`` and integer ``tags``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *tags]).generate_state(1)[0])
