"""The human oracle: answers from the project's label store (filled from napari or CSV).

It implements ``cryoal.al.oracle.Oracle``, so the AL engine can drive a real project the
same way it drives a simulation: ids the expert has not labelled yet (or marked ``unsure``
/ ``not-a-particle``) are simply not in the answer and stay pending.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryoal.project.labels import LabelStore

#: SQLite host parameters per query (the default limit is 999 on old builds).
_CHUNK = 500


class LabelStoreOracle:
    """Class index of each candidate's current label, from a :class:`LabelStore`.

    Parameters
    ----------
    store
        An open store, or the path of ``labels.sqlite``.
    """

    def __init__(self, store: LabelStore | str | os.PathLike) -> None:
        self.store = store if isinstance(store, LabelStore) else LabelStore(store)

    @property
    def class_names(self) -> list[str]:
        """Class names in index order (the indices :meth:`label` returns)."""
        return self.store.class_names

    def label(self, ids: Sequence[str]) -> dict[str, int]:
        """``{candidate_id: class index}`` for the ids whose current label is a class.

        Unlabelled ids, ``unsure`` and ``not-a-particle`` are left out (no answer).
        Unknown ids are left out as well: a person cannot label what does not exist.
        """
        ids = [str(i) for i in ids]
        out: dict[str, int] = {}
        with self.store.consistent_read() as conn:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    "SELECT candidate_id, class_id FROM current_labels "
                    f"WHERE kind = 'class' AND candidate_id IN ({marks})",
                    part,
                ).fetchall()
                out.update({cid: int(cls) for cid, cls in rows})
        return {i: out[i] for i in ids if i in out}
