"""Labels per class over the project and per tomogram, as the viewer shows them after each
key: counted from the store once, then kept up to date by the session's own writes.

Counting from the store is a pass over every current label (tens of milliseconds for a
project with thousands), too slow to repeat on every key; a write the session makes
changes one candidate's label, so the totals move by one. Anything else (another
program's labels, a new round, candidate edits) makes the session call
:meth:`LabelTotals.invalidate`, and the next read counts again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence


class LabelTotals:
    """Current labels per name (a class's name, ``unsure``, ``not-a-particle``) per tomogram.

    Parameters
    ----------
    count
        Reads the store's ``(name, tomo_id, count)`` rows
        (:meth:`cryoal.project.labels.LabelStore.count_labels`).
    """

    def __init__(self, count: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._count = count
        self._by_tomo: dict[str, Counter[str]] | None = None

    def invalidate(self) -> None:
        """Count from the store again at the next read."""
        self._by_tomo = None

    def move(self, tomo_id: str | None, was: str | None, now: str | None) -> None:
        """One candidate of ``tomo_id`` went from label ``was`` to ``now`` (None:
        unlabelled); an unknown tomogram makes the next read count again."""
        if self._by_tomo is None:
            return
        if tomo_id is None:
            self.invalidate()
            return
        here = self._by_tomo.setdefault(tomo_id, Counter())
        if was is not None:
            here[was] -= 1
        if now is not None:
            here[now] += 1

    def counts(
        self, names: Sequence[str], tomo_id: str | None = None
    ) -> tuple[dict[str, int], dict[str, int]]:
        """``names``' counts over the project, and over ``tomo_id`` (empty without one)."""
        if self._by_tomo is None:
            by_tomo: dict[str, Counter[str]] = {}
            for name, tomo, n in self._count():
                by_tomo.setdefault(tomo, Counter())[name] += n
            self._by_tomo = by_tomo
        everywhere = {name: sum(c[name] for c in self._by_tomo.values()) for name in names}
        if tomo_id is None:
            return everywhere, {}
        here = self._by_tomo.get(tomo_id, Counter())
        return everywhere, {name: here[name] for name in names}
