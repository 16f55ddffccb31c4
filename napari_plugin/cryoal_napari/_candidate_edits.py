"""Fixing candidates in the viewer: the labelling widget's ``candidates`` Points layer made
editable, each change committed through :class:`cryoal.project.session.LabellingSession`.

napari's own Points tools do the editing; this module turns their data events into label
store edits (with the widget's annotator and the time):

* add mode, a click: a particle the detector missed (``session.add_candidate``); it joins
  the round's queue and becomes the current candidate, so the next key labels it;
* select mode, a drag: re-centres the dragged candidates, committed once on release
  (``session.move_candidate``), not on every mouse move;
* select mode, Delete / Backspace: deletes the selected candidates (kept in the history;
  ``cryoal project restore-candidates`` brings them back).

Commits run on the next turn of Qt's event loop, after napari finished its own change; the
layer is then redrawn from the store, so what is shown is what was saved. A refused edit
(on top of another candidate, outside the tomogram) is undone on screen with its message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

log = logging.getLogger(__name__)


class CandidateEditor:
    """Commits the edits made on a ``candidates`` Points layer.

    Parameters
    ----------
    session_of
        Returns the widget's current session (None before a project is open).
    redraw
        Redraws the widget's layers, table and counters from the session.
    report
        Shows a one-line error to the user.
    """

    def __init__(
        self,
        session_of: Callable[[], Any],
        redraw: Callable[[], None],
        report: Callable[[str], None],
    ) -> None:
        self._session_of = session_of
        self._redraw = redraw
        self._report = report
        self.layer: Any = None
        #: True while the widget itself sets the layer's data (not a person's edit)
        self.filling = False
        self._dragging = False
        self._moved: set[str] = set()
        self._removing: list[str] = []

    # -- attaching -------------------------------------------------------------------
    def attach(self, layer: Any) -> None:
        """Listen to ``layer`` (once; a new layer object replaces the old one)."""
        if layer is self.layer:
            return
        if self.layer is not None:
            self.detach()
        self.layer = layer
        layer.events.data.connect(self._on_data)
        layer.mouse_drag_callbacks.append(self._on_drag)

    def detach(self) -> None:
        if self.layer is None:
            return
        self.layer.events.data.disconnect(self._on_data)
        if self._on_drag in self.layer.mouse_drag_callbacks:
            self.layer.mouse_drag_callbacks.remove(self._on_drag)
        self.layer = None

    @property
    def editing(self) -> bool:
        """Whether the layer is in an editing mode (add or select)."""
        return self.layer is not None and str(self.layer.mode) in ("add", "select")

    # -- napari's events -------------------------------------------------------------
    def _ids(self, indices: tuple[int, ...]) -> list[str]:
        ids = self.layer.features["candidate_id"].astype(str).to_numpy()
        return [ids[i] for i in indices if -len(ids) <= i < len(ids) and ids[i]]

    def _on_data(self, event: Any) -> None:
        if self.filling or self._session_of() is None:
            return
        action = str(event.action)
        indices = tuple(int(i) for i in event.data_indices)
        if action == "adding":
            return
        if action == "added":
            zyx = np.asarray(self.layer.data[indices[-1]], dtype=np.float64)
            QTimer.singleShot(0, lambda: self._commit_add(zyx))
        elif action == "removing":
            self._removing = self._ids(indices)
        elif action == "removed":
            ids, self._removing = self._removing, []
            if ids:
                QTimer.singleShot(0, lambda: self._commit_delete(ids))
        elif action == "changed" and len(indices) < len(self.layer.data):
            self._moved.update(self._ids(indices))
            if not self._dragging:  # moved some other way than by the mouse
                QTimer.singleShot(0, self._commit_moves)

    def _on_drag(self, layer: Any, event: Any) -> Generator[None, None, None]:
        """A mouse drag on the layer: commit the candidates it moved once, on release."""
        self._dragging = True
        try:
            yield
            while event.type == "mouse_move":
                yield
        finally:
            self._dragging = False
        if self._moved:
            QTimer.singleShot(0, self._commit_moves)

    # -- commits ---------------------------------------------------------------------
    def _commit_add(self, zyx: np.ndarray) -> None:
        session = self._session_of()
        try:
            cid = session.add_candidate(zyx)
            log.info("added candidate %s at z, y, x = %s voxels", cid, np.round(zyx, 1))
        except (ValueError, OSError) as exc:
            self._report(str(exc))
        self._redraw()

    def _commit_delete(self, ids: list[str]) -> None:
        try:
            self._session_of().delete_candidates(ids)
        except (ValueError, OSError) as exc:
            self._report(str(exc))
        self._redraw()

    def _commit_moves(self) -> None:
        moved, self._moved = sorted(self._moved), set()
        if not moved:
            return
        session = self._session_of()
        positions = dict(
            zip(self.layer.features["candidate_id"].astype(str), self.layer.data, strict=True)
        )
        try:
            for cid in moved:
                session.move_candidate(cid, np.asarray(positions[cid], dtype=np.float64))
        except (ValueError, OSError) as exc:
            self._report(str(exc))
        self._redraw()
