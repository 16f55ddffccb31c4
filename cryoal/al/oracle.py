"""Oracles: whoever answers "which class is this subtomogram?".

The AL engine only talks to the :class:`Oracle` protocol, so a simulated oracle (ground
truth from a simulated dataset) and a human one (the project's label store, filled from
napari) are interchangeable. An oracle may answer only some of the ids it is asked about
(a person has not reached them yet); the engine keeps the rest pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from cryoal.io.store import SubtomogramStore


@runtime_checkable
class Oracle(Protocol):
    """Anything that labels candidates by id."""

    def label(self, ids: Sequence[str]) -> dict[str, int]:
        """Class index for each id it can answer (an id may be missing: no answer yet)."""
        ...


class SimulatedOracle:
    """Answers from the ground-truth labels of a subtomogram store.

    Parameters
    ----------
    store
        A :class:`~cryoal.io.store.SubtomogramStore` (or a path to one) whose ``labels``
        hold the true class of every sample (-1 = unknown: no answer for that id).

    Raises
    ------
    KeyError
        From :meth:`label`, for an id that is not in the store.
    """

    def __init__(self, store: SubtomogramStore | str) -> None:
        self.store = store if isinstance(store, SubtomogramStore) else SubtomogramStore(store)
        self._lookup = {str(i): k for k, i in enumerate(self.store.ids)}
        self.n_queries = 0

    def label(self, ids: Sequence[str]) -> dict[str, int]:
        """Ground-truth class of each id; ids whose true label is -1 are left out."""
        out: dict[str, int] = {}
        for i in ids:
            key = str(i)
            if key not in self._lookup:
                raise KeyError(f"{self.store.path}: oracle asked about unknown id {key!r}")
            lab = int(self.store.labels[self._lookup[key]])
            if lab >= 0:
                out[key] = lab
        self.n_queries += len(ids)
        return out

    def true_labels(self, ids: Sequence[str]) -> np.ndarray:
        """``(n,)`` int64 ground truth (-1 = unknown), for evaluation only."""
        return np.array([int(self.store.labels[self._lookup[str(i)]]) for i in ids], np.int64)
