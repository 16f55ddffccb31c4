"""A labelling session: the suggestion queue, a cursor and the decisions of one annotator.

This is the headless model behind the napari widget (``cryoal label PROJECT``); it imports
neither Qt nor napari, so everything a button or a key does is one call here and is tested
without a display::

    session = LabellingSession("myproj", annotator="alice")
    session.current.candidate_id        # 'TS_01:000123', best-ranked unlabelled one
    session.label("ribosome")           # committed when it returns; cursor moves on
    session.confirm()                   # the model's predicted class, recorded as confirmed
    session.undo()                      # a new history row restores the previous state
    session.counts().labelled, session.counts().total

The queue is the newest round's suggestions in the label store (``LabelStore.queue``),
labelled ones included so the annotator can go back to them. Every decision is its own
committed transaction (``LabelStore.add_label``) with the round and the model version of
that round as provenance. Writes by anyone else (``cryoal labels``, a second viewer, a
``cryoal suggest`` that writes a new round) are read on ``refresh()``; the session never
rewrites their rows: undo refuses when someone else labelled the candidate after us.
Undo reaches the annotator's decisions of the current round across restarts: the stack is
rebuilt from the store's history (each undo row names the decision it undid), exactly as
the session that made them left it.

Coordinates handed to the viewer (``points``) are zyx in Ångström from the tomogram's
first voxel: voxel index × voxel size, exactly napari's world coordinates of an image layer
with ``scale = (voxel size,) * 3`` and no ``translate``; a viewer that translates the
image by the MRC header origin translates the points by the same amount.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from cryoal.project.config import SPECIAL_LABELS
from cryoal.project.label_totals import LabelTotals
from cryoal.project.labels import KIND_CLASS, KIND_CLEARED, Label
from cryoal.project.layout import SUGGESTIONS_NAME, round_dir
from cryoal.project.project import Project

log = logging.getLogger(__name__)

#: Display colours of the labels that are not classes, and of unlabelled candidates.
SPECIAL_COLOURS = {"unsure": "#ffffff", "not-a-particle": "#5a5a5a", "mask": "#2ca02c"}
UNLABELLED_COLOUR = "#ffff00"

#: Columns of ``LabellingSession.queue``.
QUEUE_COLUMNS = (
    "rank", "candidate_id", "score", "predicted_class", "tomo_id", "z", "y", "x", "label",
)  # fmt: skip


def default_annotator() -> str:
    """The OS user name (``unknown`` when the OS cannot tell)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Candidate:
    """One queue entry.

    ``z, y, x`` are voxels of tomogram ``tomo_id``; ``label`` is a class name, ``unsure``,
    ``not-a-particle`` or None (unlabelled); ``predicted_class`` is the round's model's
    prediction, None for model-free rounds.
    """

    rank: int
    candidate_id: str
    score: float
    predicted_class: str | None
    tomo_id: str
    z: float
    y: float
    x: float
    label: str | None

    @property
    def zyx(self) -> np.ndarray:
        """``(3,)`` position in voxels."""
        return np.array([self.z, self.y, self.x], dtype=np.float64)


@dataclass(frozen=True)
class QueueCounts:
    """Progress through the current round's queue.

    ``labelled`` + ``remaining`` = ``total`` (the queue's length); ``per_label`` counts
    the queue's current labels per class name, ``unsure`` and ``not-a-particle``.
    """

    round: int | None
    labelled: int
    total: int
    per_label: dict[str, int]

    @property
    def remaining(self) -> int:
        return self.total - self.labelled


@dataclass(frozen=True)
class _Decision:
    candidate_id: str
    label_id: int
    previous: Label | None


def _repoint(stack: list[_Decision], undone: _Decision, restored_id: int) -> None:
    """After ``undone`` was undone by the row ``restored_id``: the candidate's earlier
    decision in ``stack`` that the restored row repeats stays undoable, now as that row."""
    for i in range(len(stack) - 1, -1, -1):
        earlier = stack[i]
        if earlier.candidate_id == undone.candidate_id:
            if undone.previous is not None and earlier.label_id == undone.previous.label_id:
                stack[i] = _Decision(earlier.candidate_id, restored_id, earlier.previous)
            break


@dataclass(frozen=True)
class QueueView:
    """What the labelling queue shows and in which order.

    Attributes
    ----------
    status
        ``all``, ``unlabelled``, ``labelled``, ``unsure`` or ``not-a-particle``.
    predicted
        Only candidates the round's model predicted as this class (None: any).
    tomo_id
        Only this tomogram's candidates (None: every tomogram).
    sort
        ``rank`` (the strategy's order), ``score`` (highest first), ``predicted`` (by the
        predicted class, then rank) or ``confidence`` (the model's largest class
        probability, least confident first; rank without a model).
    """

    status: str = "all"
    predicted: str | None = None
    tomo_id: str | None = None
    sort: str = "rank"

    STATUSES: ClassVar[tuple[str, ...]] = ("all", "unlabelled", "labelled", "unsure",
                                           "not-a-particle")  # fmt: skip
    SORTS: ClassVar[tuple[str, ...]] = ("rank", "score", "predicted", "confidence")

    def __post_init__(self) -> None:
        if self.status not in self.STATUSES:
            raise ValueError(f"view status {self.status!r}: choose one of {self.STATUSES}")
        if self.sort not in self.SORTS:
            raise ValueError(f"view sort {self.sort!r}: choose one of {self.SORTS}")


@dataclass(frozen=True)
class CandidatePoints:
    """Candidates of one tomogram as napari points.

    Attributes
    ----------
    positions_A
        ``(n, 3)`` zyx Å from the tomogram's first voxel (voxel index × voxel size).
    features
        ``n`` rows: candidate_id, rank (-1 when not in the queue), score, predicted_class,
        label ("" for none).
    colours
        ``(n,)`` hex colour of each point's label (``UNLABELLED_COLOUR`` when none).
    """

    positions_A: np.ndarray
    features: pd.DataFrame
    colours: np.ndarray


class LabellingSession:
    """The state of one annotator labelling one project's current round.

    Parameters
    ----------
    project
        An open ``Project`` or its folder.
    tomo_id
        Only this tomogram's candidates are queued; default every tomogram of the round.
    annotator
        Name stored with every decision; default the OS user.

    Raises
    ------
    FileNotFoundError, ValueError
        Not a project, or ``tomo_id`` is not one of its tomograms.
    """

    def __init__(
        self,
        project: Project | str | os.PathLike,
        *,
        tomo_id: str | None = None,
        annotator: str | None = None,
    ) -> None:
        self.project = project if isinstance(project, Project) else Project.open(project)
        if tomo_id is not None:
            self.project.config.tomogram(tomo_id)  # unknown id: error naming the known ones
        self.only_tomo_id = tomo_id
        self.annotator = annotator or default_annotator()
        self.round: int | None = None
        self.model_version: str | None = None
        #: the round's whole queue; ``queue`` is the part shown, in the order shown
        self.round_queue = pd.DataFrame(columns=list(QUEUE_COLUMNS))
        self.queue = self.round_queue
        #: what ``queue`` shows of ``round_queue`` (:meth:`set_view`)
        self.view = QueueView()
        #: an earlier round shown instead of the newest (:meth:`review`), or None
        self.reviewing: int | None = None
        self.cursor: int | None = None
        self._undo: list[_Decision] = []
        #: the current round's score table, read once per refresh (round, table)
        self._scores_cache: tuple[int, pd.DataFrame | None] | None = None
        #: the current round's proposals (segment projects), read once per refresh
        self._proposals_cache = None
        self._tomo_cache: tuple[str, object] | None = None
        #: labels per class, counted once, then moved by this session's own writes
        self._totals = LabelTotals(lambda: self.store.count_labels())
        self.refresh()
        self.changed_outside()  # remember the store's version from here on

    # -- project facts ---------------------------------------------------------------
    @property
    def store(self):  # noqa: ANN201 - LabelStore
        return self.project.labels

    @property
    def class_names(self) -> list[str]:
        """Classes in ``project.yaml`` order (the order of keys 1-9)."""
        return [c.name for c in self.project.config.classes]

    @property
    def label_choices(self) -> list[str]:
        """Every value ``label`` accepts: the classes, ``unsure``, ``not-a-particle``."""
        return [*self.class_names, *SPECIAL_LABELS]

    def colour(self, label: str | None) -> str:
        """Hex colour of a label: the class colour from ``project.yaml``, or fixed colours
        for ``unsure`` (white), ``not-a-particle`` (grey), a committed ``mask`` (green) and
        unlabelled (yellow)."""
        if _no_label(label):
            return UNLABELLED_COLOUR
        if label in SPECIAL_COLOURS:
            return SPECIAL_COLOURS[label]
        for c in self.project.config.classes:
            if c.name == label:
                return c.colour
        raise ValueError(f"unknown label {label!r}; choose one of {self.label_choices}")

    @property
    def voxel_size_A(self) -> float:
        return self.project.voxel_size_A

    @property
    def box(self) -> int:
        """Subtomogram edge length (voxels) from ``project.yaml``."""
        return int(self.project.config.box)

    # -- reading the store -----------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the newest round's queue (or the one :meth:`review` chose) and every
        current label from the store.

        Picks up labels written by anyone else and a new round written by ``cryoal
        suggest``. The cursor stays on its candidate when that is still queued; on a new
        round it goes to the best-ranked unlabelled candidate.

        Returns
        -------
        bool
            True when the round changed.
        """
        store = self.store
        current_id = self.current.candidate_id if self.current is not None else None
        with store.consistent_read():
            queue = store.queue(round=self.reviewing, include_labelled=True)
            rounds = store.rounds()
        if queue.empty:
            new_round = None
        else:
            new_round = int(rounds["round"].max()) if self.reviewing is None else self.reviewing
        if self.only_tomo_id is not None:
            queue = queue[queue["tomo_id"] == self.only_tomo_id]
        queue = queue.reset_index(drop=True)
        label = queue["class_name"].where(queue["kind"] == KIND_CLASS, queue["kind"])
        table = pd.DataFrame(
            {
                "rank": queue["rank"].astype(int),
                "candidate_id": queue["candidate_id"].astype(str),
                "score": pd.to_numeric(queue["score"], errors="coerce").astype(float),
                "predicted_class": self._predicted(new_round, queue["candidate_id"]),
                "tomo_id": queue["tomo_id"].astype(str),
                "z": queue["z"].astype(float),
                "y": queue["y"].astype(float),
                "x": queue["x"].astype(float),
                "label": [None if pd.isna(v) else str(v) for v in label],
            },
            columns=list(QUEUE_COLUMNS),
        )
        changed = new_round != self.round
        self._totals.invalidate()  # labels written elsewhere, candidates edited
        self.round = new_round
        self._scores_cache = None  # a new queue may come with a new score table
        self._proposals_cache = None  # ... and new proposals (segment projects)
        self.model_version = None
        if new_round is not None:
            row = rounds.loc[rounds["round"] == new_round, "model_version"]
            value = row.iloc[0] if len(row) else None
            self.model_version = None if value is None or pd.isna(value) else str(value)
        self.round_queue = table
        self.queue = self._viewed(table)
        table = self.queue
        self._position = {cid: i for i, cid in enumerate(table["candidate_id"])}
        if table.empty:
            self.cursor = None
        elif not changed and current_id in self._position:
            self.cursor = self._position[current_id]
        else:
            self.cursor = self._first_unlabelled(0)
        if changed:  # decisions of an older round are not undone from a new queue
            self._undo = self._undo_stack() if new_round is not None else []
        return changed

    def rounds(self) -> list[int]:
        """The rounds that have a queue, oldest first."""
        return [int(r) for r in self.store.rounds()["round"]]

    def review(self, round: int | None) -> None:
        """Show an earlier round's queue (None: the newest again). Labels given meanwhile
        record that round as their provenance, as when its queue was new.

        Raises
        ------
        ValueError
            No such round (the message lists those there are).
        """
        if round is not None and round not in self.rounds():
            raise ValueError(f"round {round} has no queue; rounds: {self.rounds() or 'none'}")
        newest = max(self.rounds(), default=None)
        self.reviewing = None if round == newest else round
        self.refresh()

    def set_view(self, view: QueueView) -> None:
        """Show part of the round's queue, in another order (:class:`QueueView`). The
        cursor stays on its candidate when the view still holds it, else goes to the
        view's first unlabelled one; n / p and labelling then move within the view."""
        current_id = self.current.candidate_id if self.current is not None else None
        self.view = view
        self.queue = self._viewed(self.round_queue)
        self._position = {cid: i for i, cid in enumerate(self.queue["candidate_id"])}
        if self.queue.empty:
            self.cursor = None
        elif current_id in self._position:
            self.cursor = self._position[current_id]
        else:
            self.cursor = self._first_unlabelled(0)

    def _viewed(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``table`` the view shows, in its order (index 0..n-1)."""
        v = self.view
        keep = np.ones(len(table), bool)
        label = table["label"]
        if v.status == "unlabelled":
            keep &= label.isna().to_numpy()
        elif v.status == "labelled":
            keep &= label.notna().to_numpy()
        elif v.status in ("unsure", "not-a-particle"):
            keep &= (label == v.status).to_numpy()
        if v.predicted is not None:
            keep &= (table["predicted_class"] == v.predicted).to_numpy()
        if v.tomo_id is not None:
            keep &= (table["tomo_id"] == v.tomo_id).to_numpy()
        shown = table[keep]
        if v.sort == "score":
            shown = shown.sort_values(["score", "rank"], ascending=[False, True])
        elif v.sort == "predicted":
            shown = shown.sort_values(["predicted_class", "rank"], na_position="last")
        elif v.sort == "confidence":
            confidence = shown["candidate_id"].map(self._confidence)
            shown = shown.assign(_c=confidence).sort_values(["_c", "rank"]).drop(columns="_c")
        return shown.reset_index(drop=True)

    def _confidence(self, candidate_id: str) -> float:
        """The model's largest class probability for a candidate (NaN without one)."""
        probs = self.probabilities(candidate_id)
        return max(probs.values()) if probs else float("nan")

    def changed_outside(self) -> bool:
        """Whether another connection committed to the store since this one last looked
        (SQLite ``PRAGMA data_version``; cheap enough to poll)."""
        with self.store.consistent_read() as conn:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        seen, self._data_version = getattr(self, "_data_version", version), version
        return version != seen

    def _predicted(self, round_: int | None, ids: pd.Series) -> list[str | None]:
        """The round's predicted class per id, from ``rounds/NNN/suggestions.csv`` when
        its model wrote a ``predicted_class`` column; None otherwise."""
        if round_ is None:
            return [None] * len(ids)
        path = round_dir(self.project.root, round_) / SUGGESTIONS_NAME
        if not path.is_file():
            return [None] * len(ids)
        table = pd.read_csv(path, dtype={"candidate_id": str})
        if "predicted_class" not in table:
            return [None] * len(ids)
        lookup = dict(zip(table["candidate_id"], table["predicted_class"], strict=True))
        out = []
        for cid in ids:
            value = lookup.get(cid)
            out.append(None if value is None or pd.isna(value) else str(value))
        return out

    def probabilities(self, candidate_id: str) -> dict[str, float] | None:
        """The round's model's class probabilities for a queued candidate, highest first,
        from the round's score table (``rounds/NNN/scores.csv``); None when the round was
        not scored by a model (round 0) or the table is missing."""
        table = self._scores()
        if table is None or candidate_id not in table.index:
            return None
        row = table.loc[candidate_id]
        probs = {
            c.removeprefix("p_"): float(row[c])
            for c in table.columns
            if c.startswith("p_") and not pd.isna(row[c])
        }
        return dict(sorted(probs.items(), key=lambda kv: -kv[1])) or None

    def _scores(self) -> pd.DataFrame | None:
        """The current round's score table indexed by candidate id (read once per round)."""
        if self.round is None:
            return None
        cached = self._scores_cache
        if cached is not None and cached[0] == self.round:
            return cached[1]
        from cryoal.al.score_table import SCORES_CSV, read_scores

        path = round_dir(self.project.root, self.round) / SCORES_CSV
        table = read_scores(path).set_index("candidate_id") if path.is_file() else None
        self._scores_cache = (self.round, table)
        return table

    def proposals(self):  # noqa: ANN201 - cryoal.project.proposals.Proposals | None
        """The current round's model masks (``rounds/NNN/proposals.npz``; segment
        projects), read once per round; None before round 0."""
        if self.round is None:
            return None
        from cryoal.project.proposals import Proposals

        cached = self._proposals_cache
        if cached is None or cached[0] != self.round:
            cached = (self.round, Proposals(round_dir(self.project.root, self.round)))
            self._proposals_cache = cached
        return cached[1]

    # -- the cursor ------------------------------------------------------------------
    @property
    def current(self) -> Candidate | None:
        """The candidate under the cursor, or None when the queue is empty."""
        if self.cursor is None:
            return None
        return self.entry(self.cursor)

    def entry(self, i: int) -> Candidate:
        """Queue row ``i`` as a ``Candidate``."""
        row = self.queue.iloc[i]
        return Candidate(
            rank=int(row["rank"]),
            candidate_id=str(row["candidate_id"]),
            score=float(row["score"]),
            predicted_class=None if _no_label(row["predicted_class"]) else row["predicted_class"],
            tomo_id=str(row["tomo_id"]),
            z=float(row["z"]),
            y=float(row["y"]),
            x=float(row["x"]),
            label=None if _no_label(row["label"]) else str(row["label"]),
        )

    def next(self) -> Candidate | None:
        """Move to the next queue entry (stays on the last one)."""
        if self.cursor is not None:
            self.cursor = min(self.cursor + 1, len(self.queue) - 1)
        return self.current

    def previous(self) -> Candidate | None:
        """Move to the previous queue entry (stays on the first one)."""
        if self.cursor is not None:
            self.cursor = max(self.cursor - 1, 0)
        return self.current

    def jump(self, candidate_id: str) -> Candidate:
        """Move to ``candidate_id``.

        Raises
        ------
        ValueError
            The candidate is not in the current queue.
        """
        if candidate_id not in self._position:
            raise ValueError(
                f"candidate {candidate_id!r} is not in the queue of round {self.round}; "
                "pick one from the queue table"
            )
        self.cursor = self._position[candidate_id]
        return self.entry(self.cursor)

    def position(self, candidate_id: str) -> int | None:
        """Row of ``candidate_id`` in ``queue`` (None when not queued)."""
        return self._position.get(candidate_id)

    def _first_unlabelled(self, start: int) -> int:
        """First unlabelled entry at or after ``start``, wrapping round; ``start`` when
        every entry is labelled."""
        labels = self.queue["label"].to_numpy(dtype=object)
        n = len(labels)
        for step in range(n):
            i = (start + step) % n
            if _no_label(labels[i]):
                return i
        return min(start, n - 1)

    # -- decisions -------------------------------------------------------------------
    def label(self, value: str | int, *, source: str = "decision") -> Label:
        """Label the current candidate, commit it, and move to the next unlabelled one.

        Parameters
        ----------
        value
            A class name, ``unsure`` or ``not-a-particle``; an int ``k`` means the k-th
            class in ``project.yaml`` order (0-based).
        source
            ``decision`` (the annotator chose it) or ``confirmed`` (:meth:`confirm`).

        Returns
        -------
        Label
            The stored row (durable when this returns).

        Raises
        ------
        ValueError
            Empty queue, unknown label, empty annotator name, or a class for a segment
            project (its labels are masks).
        """
        current = self._require_current()
        name = self._label_name(value)
        if self.project.config.task == "segment" and name not in SPECIAL_LABELS:
            raise ValueError(
                f"{self.project.root} is a segment project: its labels are masks of the "
                "candidate's box: commit the crop's mask (commit_mask; Enter in the viewer), "
                "or label it unsure or not-a-particle"
            )
        previous = self.store.current_label(current.candidate_id)
        stored = self.store.add_label(
            current.candidate_id,
            name,
            self.annotator,
            round=self.round,
            model_version=self.model_version,
            source=source,
        )
        self._undo.append(_Decision(current.candidate_id, stored.label_id, previous))
        self._set_label(
            current.candidate_id, name, None if previous is None else self._name_of(previous)
        )
        assert self.cursor is not None
        self.cursor = self._first_unlabelled((self.cursor + 1) % len(self.queue))
        return stored

    def set_annotator(self, name: str) -> None:
        """Label as ``name`` from now on; undo then reaches ``name``'s decisions."""
        self.annotator = name
        self._undo = self._undo_stack() if self.round is not None else []

    def confirm(self) -> Label:
        """Label the current candidate with the class the round's model predicted for it,
        recorded as ``confirmed`` (so analyses can tell confirmations from independent
        labels); committed, then the cursor moves on as after :meth:`label`.

        Raises
        ------
        ValueError
            No prediction for the candidate (round 0 has no model), or an empty queue.
        """
        current = self._require_current()
        if current.predicted_class is None:
            raise ValueError(
                f"{current.candidate_id}: no prediction to confirm (this round's queue was "
                "not ranked by a model); choose its class"
            )
        return self.label(current.predicted_class, source="confirmed")

    def _undo_stack(self) -> list[_Decision]:
        """This annotator's undoable decisions of the current round, rebuilt from the
        store's history as :meth:`label` and :meth:`undo` keep them in a session."""
        history = self.store.label_history()
        stack: list[_Decision] = []
        last: dict[str, Label | None] = {}
        for row in history.itertuples(index=False):
            cid = str(row.candidate_id)
            label = Label(
                int(row.label_id), cid, str(row.kind),
                None if pd.isna(row.class_id) else int(row.class_id),
                None if pd.isna(row.class_name) else str(row.class_name), str(row.annotator),
                None if pd.isna(row.round) else int(row.round),
                None if pd.isna(row.model_version) else str(row.model_version),
                str(row.created_at), str(row.source),
                None if pd.isna(row.undoes) else int(row.undoes),
            )  # fmt: skip
            if (
                label.source in ("decision", "confirmed")
                and label.annotator == self.annotator
                and label.round == self.round
            ):
                stack.append(_Decision(cid, label.label_id, last.get(cid)))
            elif label.source == "undo" and label.undoes is not None:
                undone = [i for i, d in enumerate(stack) if d.label_id == label.undoes]
                if undone:
                    decision = stack.pop(undone[-1])
                    _repoint(stack, decision, label.label_id)
            last[cid] = None if label.kind == KIND_CLEARED else label
        return stack

    def undo(self) -> Candidate:
        """Undo this session's last decision with a new history row restoring the
        candidate's previous state (its earlier label, or unlabelled); nothing is deleted.
        The cursor goes back to that candidate.

        Raises
        ------
        ValueError
            Nothing to undo, or someone else labelled the candidate after this session's
            decision (their label is kept).
        """
        if not self._undo:
            raise ValueError(f"nothing of yours ({self.annotator}) to undo in round {self.round}")
        decision = self._undo[-1]
        now = self.store.current_label(decision.candidate_id)
        if now is None or now.label_id != decision.label_id:
            self._undo.pop()
            who = (
                "cleared" if now is None else f"labelled {self._name_of(now)!r} by {now.annotator}"
            )
            raise ValueError(
                f"candidate {decision.candidate_id} was {who} after your decision; "
                "not undone (their label is kept)"
            )
        prev = decision.previous
        if prev is None:
            row = self.store.clear_label(
                decision.candidate_id, self.annotator, source="undo", undoes=decision.label_id
            )
            restored: str | None = None
        else:
            restored = self._name_of(prev)
            # the restored row repeats the earlier decision, with its provenance
            row = self.store.add_label(
                decision.candidate_id,
                restored,
                prev.annotator,
                round=prev.round,
                model_version=prev.model_version,
                source="undo",
                undoes=decision.label_id,
            )
        self._undo.pop()
        _repoint(self._undo, decision, row.label_id)
        self._set_label(decision.candidate_id, restored, self._name_of(now))
        if decision.candidate_id in self._position:
            return self.jump(decision.candidate_id)
        return self._require_current()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def counts(self) -> QueueCounts:
        """Labelled / total of the current round's whole queue (whatever the view shows),
        and labels per class."""
        labels = self.round_queue["label"]
        per = {name: int((labels == name).sum()) for name in self.label_choices}
        return QueueCounts(self.round, int(labels.notna().sum()), len(self.round_queue), per)

    def label_counts(self, tomo_id: str | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """Current labels per class (and ``unsure``, ``not-a-particle``), every round
        included: over the whole project, and over ``tomo_id``'s candidates (empty
        without one). Counted from the store once (again after :meth:`refresh`), then
        moved by this session's own labels, undos and masks (:mod:`cryoal.project.label_totals`)."""
        return self._totals.counts(self.label_choices, tomo_id)

    def _require_current(self) -> Candidate:
        current = self.current
        if current is None:
            raise ValueError(
                f"{self.project.root}: the queue is empty; write one with 'cryoal suggest DIR'"
            )
        return current

    def _label_name(self, value: str | int) -> str:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if 0 <= int(value) < len(self.class_names):
                return self.class_names[int(value)]
        elif isinstance(value, str) and value in self.label_choices:
            return value
        raise ValueError(
            f"unknown label {value!r}; choose one of {self.label_choices} "
            f"(or a class number 0..{len(self.class_names) - 1})"
        )

    @staticmethod
    def _name_of(label: Label) -> str:
        return str(label.class_name) if label.kind == KIND_CLASS else label.kind

    def _set_label(self, candidate_id: str, name: str | None, was: str | None) -> None:
        """Show this session's write of ``candidate_id``'s label (``name``; None:
        unlabelled) in the queue and the label totals; ``was``: its label before."""
        i = self._position.get(candidate_id)
        if i is not None:
            self.queue.at[i, "label"] = name
        rows = self.round_queue.index[self.round_queue["candidate_id"] == candidate_id]
        if len(rows):
            self.round_queue.at[rows[0], "label"] = name
        tomo = str(self.round_queue.at[rows[0], "tomo_id"]) if len(rows) else None
        self._totals.move(tomo, was, name)

    # -- masks (segment projects) ----------------------------------------------------
    def mask_crop(self):  # noqa: ANN201 - cryoal.project.masking.MaskCrop
        """The current crop's mask to edit (draft, else the model's proposal, else
        background) with the proposal and its KT-MSE map (:mod:`cryoal.project.masking`)."""
        from cryoal.project.masking import open_crop

        return open_crop(self)

    def commit_mask(
        self,
        mask: np.ndarray,
        *,
        seconds: float | None = None,
        crop=None,  # noqa: ANN001 - the MaskCrop the caller opened, if any
    ) -> int:
        """Commit the current crop's mask (accepted / corrected / painted, with its edit
        cost), durable when it returns; the cursor moves to the next unlabelled crop."""
        from cryoal.project.masking import commit_mask

        return commit_mask(self, mask, seconds=seconds, crop=crop)

    def save_draft(self, mask: np.ndarray) -> None:
        """Autosave the current crop's mask in progress (comes back after a crash)."""
        self.store.save_draft(self._require_current().candidate_id, mask, self.annotator)

    # -- fixing candidates -----------------------------------------------------------
    def add_candidate(self, zyx: Sequence[float], tomo_id: str | None = None) -> str:
        """Add a particle the detector missed at ``zyx`` (voxels) of ``tomo_id`` (default
        the tomogram shown), recorded with this session's annotator. It joins the newest
        round's queue (last rank) unless an earlier round is under review, and the cursor
        moves to it, so the next key labels it. Returns its id.

        Raises
        ------
        ValueError
            Outside the tomogram, or on top of an existing candidate (the message names it).
        """
        from cryoal.project.corrections import add_candidate

        tomo_id = tomo_id or self.tomo_id
        if tomo_id is None:
            raise ValueError(f"{self.project.root}: the project has no tomograms to add to")
        queue_round = self.round if self.reviewing is None else None
        cid = add_candidate(self.project, tomo_id, zyx, self.annotator, queue_round=queue_round)
        self.refresh()
        if cid not in self._position:  # the view hides it (a filter): show the whole queue
            self.set_view(QueueView(sort=self.view.sort))
        if cid in self._position:
            self.jump(cid)
        return cid

    def move_candidate(self, candidate_id: str, zyx: Sequence[float]) -> None:
        """Re-centre a candidate on ``zyx`` (voxels); its label stays with it."""
        from cryoal.project.corrections import move_candidate

        move_candidate(self.project, candidate_id, zyx, self.annotator)
        self.refresh()

    def delete_candidates(self, candidate_ids: Sequence[str]) -> int:
        """Delete candidates (duplicates, wrong picks); they leave the queue and the
        labels, and stay in the history (``cryoal project restore-candidates``). The
        number deleted."""
        from cryoal.project.corrections import delete_candidates

        n = delete_candidates(self.project, list(candidate_ids), self.annotator)
        self.refresh()
        return n

    # -- what the viewer shows -------------------------------------------------------
    @property
    def tomo_id(self) -> str | None:
        """The tomogram shown: the current candidate's (or ``tomo_id`` given)."""
        current = self.current
        if current is not None:
            return current.tomo_id
        if self.only_tomo_id is not None:
            return self.only_tomo_id
        tomos = self.project.config.tomograms
        return tomos[0].id if tomos else None

    def tomogram_path(self, tomo_id: str | None = None) -> Path:
        """The MRC file of ``tomo_id`` (default the one shown)."""
        tomo_id = tomo_id or self.tomo_id
        if tomo_id is None:
            raise ValueError(
                f"{self.project.root}: the project has no tomograms; add one with "
                "'cryoal project add-tomogram DIR TOMO.mrc'"
            )
        return self.project.tomogram_path(tomo_id)

    def tomogram_paths(self) -> dict[str, Path]:
        """The MRC file of every tomogram the session can show: the one shown first and
        those of the queue's candidates.

        Raises
        ------
        FileNotFoundError
            A file is no longer there (the message names the tomogram id, the path and
            how to point the project at its new place).
        """
        ids = [t for t in [self.tomo_id] if t is not None]
        ids += [t for t in dict.fromkeys(self.round_queue["tomo_id"].astype(str)) if t not in ids]
        return {t: self.project.tomogram_path(t) for t in ids}

    def points(self, tomo_id: str | None = None) -> CandidatePoints:
        """Every candidate of the tomogram shown, with queue rank, score, prediction and
        current label; positions zyx Å (voxel index × voxel size)."""
        tomo_id = tomo_id or self.tomo_id
        store = self.store
        with store.consistent_read():
            cands = store.candidates(tomo_id)
            labels = store.current_labels(tomo_id=tomo_id)
        labels = labels.set_index("candidate_id")
        names = labels["class_name"].where(labels["kind"] == KIND_CLASS, labels["kind"])
        ids = cands["candidate_id"].astype(str)
        queued = self.round_queue.set_index("candidate_id")
        rank = ids.map(queued["rank"]).fillna(-1).astype(int)
        score = ids.map(queued["score"]).astype(float)
        predicted = ids.map(queued["predicted_class"]).where(lambda s: s.notna(), "")
        label = ids.map(names).where(lambda s: s.notna(), "")
        features = pd.DataFrame(
            {
                "candidate_id": ids.to_numpy(),
                "rank": rank.to_numpy(),
                "score": score.to_numpy(),
                "predicted_class": predicted.astype(str).to_numpy(),
                "label": label.astype(str).to_numpy(),
            }
        )
        positions = cands[["z", "y", "x"]].to_numpy(dtype=np.float64) * self.voxel_size_A
        colours = np.array([self.colour(v) for v in features["label"]], dtype=object)
        return CandidatePoints(positions.reshape(-1, 3), features, colours)

    def orthoslices(self, candidate: Candidate | None = None) -> dict[str, np.ndarray]:
        """Central slices of the candidate's box (``box`` voxels from ``project.yaml``).

        Returns
        -------
        dict
            ``"xy"``: ``(box, box)`` (y, x) at the centre z; ``"xz"``: ``(box, box)``
            (z, x) at the centre y; ``"yz"``: ``(box, box)`` (z, y) at the centre x.
            float32, read from the memory-mapped tomogram; outside the tomogram NaN.
        """
        candidate = candidate or self._require_current()
        data = self._tomogram(candidate.tomo_id)
        b = self.box
        centre = np.floor(candidate.zyx + 0.5).astype(int)
        lo = centre - b // 2
        out = {}
        for name, axis in (("xy", 0), ("xz", 1), ("yz", 2)):
            index: list[slice | int] = [slice(lo[a], lo[a] + b) for a in range(3)]
            index[axis] = int(centre[axis])
            out[name] = _padded(data, index, axis)
        return out

    def _tomogram(self, tomo_id: str) -> np.ndarray:
        from cryoal.io.mrc import open_tomogram

        if self._tomo_cache is None or self._tomo_cache[0] != tomo_id:
            self._close_tomogram()
            self._tomo_cache = (tomo_id, open_tomogram(self.project.tomogram_path(tomo_id)))
        return self._tomo_cache[1].data  # type: ignore[attr-defined]

    def _close_tomogram(self) -> None:
        if self._tomo_cache is not None:
            self._tomo_cache[1].close()  # type: ignore[attr-defined]
            self._tomo_cache = None

    def close(self) -> None:
        """Close the tomogram and the label store (every decision is already saved)."""
        self._close_tomogram()
        self.project.close()


def _no_label(value: object) -> bool:
    """True for a missing label (None, NaN or "" in a table cell)."""
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def _padded(data: np.ndarray, index: list[slice | int], axis: int) -> np.ndarray:
    """``data[index]`` with out-of-range parts filled with NaN; ``index[axis]`` is an int."""
    shape = data.shape
    if not 0 <= int(index[axis]) < shape[axis]:  # type: ignore[arg-type]
        sizes = [s.stop - s.start for a, s in enumerate(index) if a != axis]  # type: ignore[union-attr]
        return np.full(sizes, np.nan, dtype=np.float32)
    src: list[slice | int] = []
    dst: list[slice] = []
    for a, s in enumerate(index):
        if a == axis:
            src.append(s)
            continue
        assert isinstance(s, slice)
        start, stop = max(s.start, 0), min(s.stop, shape[a])
        src.append(slice(start, max(start, stop)))
        dst.append(slice(start - s.start, start - s.start + max(0, stop - start)))
    sizes = [s.stop - s.start for a, s in enumerate(index) if a != axis]  # type: ignore[union-attr]
    out = np.full(sizes, np.nan, dtype=np.float32)
    out[tuple(dst)] = np.asarray(data[tuple(src)], dtype=np.float32)
    return out
