"""What a round reads from the labels so far: one interface over the benchmark engine's
JSON state and a project's round files, and the one cold-start rule that reads it.

A :class:`Ledger` answers two questions: which candidates carry which class
(:meth:`Ledger.labelled`, what a round trains on) and what happened in each earlier round
(:meth:`Ledger.rounds`, what the cold start reads). :class:`EngineLedger` reads
``state.json`` of :class:`cryoal.al.engine.ALEngine`; :class:`ProjectLedger` reads a
project round's frozen files (``rounds/NNN/snapshot.csv``, the labels the round's model was
trained on, and each earlier round's ``suggestions.csv``), so cluster jobs that never open
the live label store see the same ledger as the viewer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cryoal.al.strategies import StrategyConfig

#: Prefix of the recorded strategy of a round selected by the cold-start strategy.
COLD_PREFIX = "cold:"


@dataclass(frozen=True)
class LabelledRound:
    """One earlier round as the cold start sees it.

    Attributes
    ----------
    round
        The round number (0 = the model-free first round).
    cold
        It was selected by the cold-start strategy.
    teacher_accuracy
        Share of its labelled picks whose class the proposing teacher predicted; None
        when no teacher predicted them (round 0, random picks) or none is labelled yet.
    """

    round: int
    cold: bool
    teacher_accuracy: float | None


class Ledger(Protocol):
    """The labels an active-learning loop has gathered."""

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, classes)``: candidate ids (str, sorted) and their class indices (int64)."""
        ...

    def rounds(self) -> list[LabelledRound]:
        """Every earlier round, in round order."""
        ...


def in_cold_start(
    strategy: StrategyConfig, round: int, rounds: Sequence[LabelledRound], n_classes: int
) -> bool:
    """Whether round ``round`` runs ``strategy``'s cold-start strategy (the one rule of the
    engine and of projects).

    Rounds ``1 .. cold_start_cycles`` are cold (round 1 at least, when only
    ``cold_start_margin`` is set). After them, with ``cold_start_margin``, the cold start
    goes on while the previous round was cold and its teacher's accuracy on that round's
    labels is not above chance (``1 / n_classes``) + margin; without a margin it ends.
    Round 0 is never cold (it has its own, model-free rule).
    """
    margin = strategy.cold_start_margin
    if round < 1 or (strategy.cold_start_cycles == 0 and margin is None):
        return False
    if round <= max(strategy.cold_start_cycles, 1):
        return True
    if margin is None:
        return False
    previous = next((r for r in rounds if r.round == round - 1), None)
    if previous is None or not previous.cold:
        return False
    acc = previous.teacher_accuracy
    return not (acc is not None and acc > 1.0 / n_classes + margin)


def round_name(strategy: StrategyConfig, cold: bool) -> str:
    """The name a round records for its queue (``cold:<strategy>`` during the cold start)."""
    return f"{COLD_PREFIX}{strategy.cold_start_strategy().name}" if cold else strategy.display_name


class EngineLedger:
    """The ledger of an :class:`~cryoal.al.engine.ALEngine` run (its ``state.json``)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        ids = sorted(self.state["labels"])
        classes = [self.state["labels"][i][0] for i in ids]
        return np.asarray(ids, dtype=str), np.asarray(classes, dtype=np.int64)

    def rounds(self) -> list[LabelledRound]:
        return [
            LabelledRound(
                int(b["round"]), str(b["strategy"]).startswith(COLD_PREFIX), b["teacher_accuracy"]
            )
            for b in self.state["batches"]
        ]


class ProjectLedger:
    """The ledger of project round ``round`` from its frozen files: the labels of its
    snapshot (what its model was trained on) and the queues of rounds ``0 .. round - 1``.

    Parameters
    ----------
    root
        The project folder.
    round
        A round with a snapshot (``rounds/NNN/snapshot.csv``).
    class_names
        The project's classes (class index = position).
    """

    def __init__(self, root: str | os.PathLike, round: int, class_names: Sequence[str]) -> None:
        self.root, self.round, self.class_names = Path(root), int(round), list(class_names)
        self._table: Any = None

    def _snapshot(self) -> Any:
        from cryoal.project.layout import round_dir
        from cryoal.project.snapshot import read_snapshot

        if self._table is None:
            table = read_snapshot(round_dir(self.root, self.round))
            self._table = table[table["kind"] == "class"]
        return self._table

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        table = self._snapshot().sort_values("candidate_id")
        return (
            table["candidate_id"].astype(str).to_numpy(),
            table["class_id"].to_numpy(dtype=np.int64),
        )

    def rounds(self) -> list[LabelledRound]:
        import pandas as pd

        from cryoal.project.layout import SUGGESTIONS_NAME, round_dir

        truth = dict(
            zip(
                self._snapshot()["candidate_id"].astype(str),
                self._snapshot()["class_name"].astype(str),
                strict=True,
            )
        )
        out = []
        for q in range(self.round):
            path = round_dir(self.root, q) / SUGGESTIONS_NAME
            if not path.is_file():
                continue
            queue = pd.read_csv(path, dtype={"candidate_id": str})
            name = str(queue["strategy"].iloc[0]) if len(queue) else ""
            acc = None
            if "predicted_class" in queue.columns:
                pairs = [
                    (str(p), truth[c])
                    for c, p in zip(queue["candidate_id"], queue["predicted_class"], strict=True)
                    if c in truth and isinstance(p, str) and p
                ]
                acc = float(np.mean([p == t for p, t in pairs])) if pairs else None
            out.append(LabelledRound(q, name.startswith(COLD_PREFIX), acc))
        return out
