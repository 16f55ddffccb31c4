"""Per-purpose seeds of a training run.

Initialisation, batch order, augmentation and dropout derive from ``config.seed``:
:func:`derive_seed` gives each purpose (``"teacher"``, ``"student"``, ``"ema"``,
``"dropout"``, ``"loader<epoch>"``, ...) its own 31-bit seed, so the same seed reproduces a
run exactly.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, purpose: str) -> int:
    """A 31-bit seed for one purpose (``"teacher"``, ``"student"``, ...) from the run seed."""
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
