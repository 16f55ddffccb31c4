"""The labelling dock widget: a thin Qt shell over ``cryoal.project.session``.

Every button and key is one call into ``LabellingSession``; this module draws the Qt
controls, and :class:`cryoal_napari._scene.ProjectScene` the viewer's layers (the tomogram,
its candidates, the current box and a segment project's mask).

Keys (on the viewer and on every layer, so they work whichever layer is selected):
``1``-``9`` the classes in ``project.yaml`` order, ``u`` unsure, ``x`` not a particle,
``Enter`` confirm the prediction, ``n`` next, ``p`` previous, ``Control-Z`` undo, ``e`` edit
candidates; configurable (``keys:`` in ``project.yaml``). Left / Right stay napari's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cryoal.project.config import KeyMap
from cryoal.project.session import (
    Candidate,
    LabellingSession,
    QueueView,
    default_annotator,
)
from cryoal_napari._candidate_edits import CandidateEditor
from cryoal_napari._keys import ViewerKeys
from cryoal_napari._mask_layer import MaskEditor
from cryoal_napari._presentation import (
    CROP_GAP,
    candidate_line,
    crop_pixels,
    crop_zoom,
    train_epochs,
)
from cryoal_napari._scene import ProjectScene

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

#: Milliseconds between checks for writes by other programs (CLI, a second viewer).
POLL_MS = 2000
QUEUE_HEADERS = ("rank", "id", "score", "predicted", "label")


def _show_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(" ".join(str(message).split()))


def _show_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


class LabellingWidget(QWidget):
    """Label a project's suggestion queue with keys and buttons; train and suggest.

    Parameters
    ----------
    napari_viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    """

    #: Emitted with the ``JobOutcome`` once a train/suggest job has ended and the queue
    #: has been reloaded.
    job_finished = Signal(object)

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session: LabellingSession | None = None
        self.job = None
        self.editor = CandidateEditor(
            lambda: self.session, lambda: self._redraw(all_points=True), _show_error
        )
        #: segment projects: the current crop's mask layer
        self.masks = MaskEditor(self.viewer, _show_error)
        #: the viewer's layers of the open project
        self.scene = ProjectScene(self.viewer, self.editor, self.masks)
        self.keys = ViewerKeys(self.viewer)
        self._build()
        self.keys.bind(self._key_actions(), self._key_help)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    # -- layout ----------------------------------------------------------------------
    def _build(self) -> None:
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.project_label = QLabel("no project")
        self.project_label.setWordWrap(True)
        open_button = QPushButton("Open project…")
        open_button.clicked.connect(self._choose_project)
        row.addWidget(self.project_label, 1)
        row.addWidget(open_button)
        layout.addLayout(row)

        row = QHBoxLayout()
        row.addWidget(QLabel("Annotator"))
        self.annotator_edit = QLineEdit(default_annotator())
        self.annotator_edit.editingFinished.connect(self._annotator_changed)
        row.addWidget(self.annotator_edit, 1)
        layout.addLayout(row)

        self.counter_label = QLabel("")
        font = self.counter_label.font()
        font.setPointSize(font.pointSize() + 3)
        font.setBold(True)
        self.counter_label.setFont(font)
        layout.addWidget(self.counter_label)
        self.totals_label = QLabel("")
        self.totals_label.setWordWrap(True)
        self.totals_label.setToolTip("current labels per class, every round included")
        layout.addWidget(self.totals_label)
        self.current_label = QLabel("")
        self.current_label.setWordWrap(True)
        layout.addWidget(self.current_label)
        self.crop_view = QLabel()
        self.crop_view.setToolTip("central XY, XZ and YZ slices of the current subtomogram")
        layout.addWidget(self.crop_view, 0, Qt.AlignmentFlag.AlignHCenter)
        caption = QLabel("XY  ·  XZ  ·  YZ  (central slices of the box)")
        caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(caption)

        self.class_grid = QGridLayout()
        layout.addLayout(self.class_grid)
        self.label_buttons: dict[str, QPushButton] = {}

        row = QHBoxLayout()
        self.prev_button = QPushButton("◀ previous (p)")
        self.next_button = QPushButton("next (n) ▶")
        self.undo_button = QPushButton("undo (Ctrl+Z)")
        self.prev_button.clicked.connect(self.previous)
        self.next_button.clicked.connect(self.next)
        self.undo_button.clicked.connect(self.undo)
        for b in (self.prev_button, self.next_button, self.undo_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(b)
        layout.addLayout(row)
        self.confirm_button = QPushButton("✓ confirm prediction (Enter)")
        self.confirm_button.setToolTip(
            "label with the class the round's model predicted; recorded as a confirmation"
        )
        self.confirm_button.clicked.connect(self.confirm)
        self.edit_button = QPushButton("edit candidates (e)")
        self.edit_button.setCheckable(True)
        self.edit_button.setToolTip(
            "add a missed particle with a click; in select mode drag to re-centre, Delete to "
            "delete (kept in the history); press again to go back to labelling"
        )
        self.edit_button.clicked.connect(self.toggle_candidate_editing)
        row = QHBoxLayout()
        for b in (self.confirm_button, self.edit_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(b)
        layout.addLayout(row)
        self.keys_label = QLabel(KeyMap().help_text([]))
        self.keys_label.setWordWrap(True)
        self.keys_label.setToolTip("keys: 'keys:' in project.yaml")
        layout.addWidget(self.keys_label)
        self.jump_edit = QLineEdit()
        self.jump_edit.setPlaceholderText("go to candidate id (Enter), e.g. TS_01:000123")
        self.jump_edit.returnPressed.connect(self._jump_to_typed_id)
        layout.addWidget(self.jump_edit)

        # the queue's view: which candidates (status or predicted class), which tomogram,
        # in which order; n / p and labelling move within it
        row = QHBoxLayout()
        self.round_combo = QComboBox()
        self.round_combo.setToolTip("the newest round's queue, or an earlier one to review")
        self.round_combo.activated.connect(self._round_chosen)
        row.addWidget(self.round_combo, 1)
        self.show_combo = QComboBox()
        self.tomo_combo = QComboBox()
        self.sort_combo = QComboBox()
        self.sort_combo.addItems([f"sort: {s}" for s in QueueView.SORTS])
        # two per row, so that their choices can be read
        second = QHBoxLayout()
        for combo, tip, where in (
            (self.show_combo, "which candidates of the round the queue shows", row),
            (self.tomo_combo, "only one tomogram's candidates", second),
            (self.sort_combo, "the queue's order (confidence: the model's least sure first)",
             second),
        ):  # fmt: skip
            combo.setToolTip(tip)
            combo.activated.connect(self._view_changed)
            where.addWidget(combo, 1)
        layout.addLayout(row)
        layout.addLayout(second)

        self.table = QTableWidget(0, len(QUEUE_HEADERS))
        self.table.setHorizontalHeaderLabels(list(QUEUE_HEADERS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Interactive, sized once per fill: ResizeToContents re-measures every row on each
        # cell change, which costs milliseconds per label on a long queue
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.cellClicked.connect(self._table_clicked)
        layout.addWidget(self.table, 1)

        row = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.suggest_button = QPushButton("Suggest next round")
        self.cancel_button = QPushButton("Cancel")
        self.train_button.clicked.connect(lambda: self.start_job("train"))
        self.suggest_button.clicked.connect(lambda: self.start_job("suggest"))
        self.cancel_button.clicked.connect(self.cancel_job)
        self.cancel_button.setEnabled(False)
        for b in (self.train_button, self.suggest_button, self.cancel_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(b)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.job_label = QLabel("")
        self.job_label.setWordWrap(True)
        layout.addWidget(self.job_label)
        # wrapped text keeps its lines: the queue table gives up height first
        for label in (self.project_label, self.totals_label, self.current_label,
                      self.keys_label, self.job_label):  # fmt: skip
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        two_lines = 2 * self.fontMetrics().lineSpacing() + 4
        self.totals_label.setMinimumHeight(two_lines)  # project, then the tomogram shown
        self.current_label.setMinimumHeight(two_lines)  # the candidate, then the model
        self._set_enabled(False)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.prev_button, self.next_button, self.undo_button, self.confirm_button,
                  self.edit_button, self.table, self.jump_edit, self.round_combo, self.show_combo, self.tomo_combo,
                  self.sort_combo, self.train_button, self.suggest_button,
                  *self.label_buttons.values()):  # fmt: skip
            w.setEnabled(enabled)

    def _make_label_buttons(self) -> None:
        while self.class_grid.count():
            item = self.class_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.label_buttons = {}
        assert self.session is not None
        names = self.session.class_names
        keys = self._keymap()
        entries = [
            (f"{keys.label_of(f'class:{i}')}  {n}" if i < len(keys.classes) else n, n)
            for i, n in enumerate(names)
        ]
        entries += [(f"{keys.label_of('unsure')}  unsure", "unsure"),
                    (f"{keys.label_of('not-a-particle')}  not a particle", "not-a-particle")]  # fmt: skip
        self.prev_button.setText(f"◀ previous ({keys.label_of('previous')})")
        self.next_button.setText(f"next ({keys.label_of('next')}) ▶")
        self.undo_button.setText(f"undo ({keys.label_of('undo')})")
        confirm = keys.label_of("confirm")
        if self._segment:  # the confirm key commits the crop's mask
            self.confirm_button.setText(f"✓ commit mask ({confirm})")
            self.keys_label.setText(
                keys.help_text(names).replace(f"{confirm} confirm the prediction",
                                              f"{confirm} commit the mask")
                + " · " + SEGMENT_HELP
            )  # fmt: skip
        else:
            self.confirm_button.setText(f"✓ confirm prediction ({confirm})")
            self.keys_label.setText(keys.help_text(names))
        for i, (text, value) in enumerate(entries):
            button = QPushButton(text)
            colour = QColor(self.session.colour(value))
            ink = "#000000" if colour.lightness() > 140 else "#ffffff"
            button.setStyleSheet(
                f"QPushButton {{ background-color: {colour.name()}; color: {ink}; "
                "font-weight: bold; padding: 6px; }"
            )
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keep the keys on the canvas
            button.clicked.connect(lambda _=False, v=value: self.label(v))
            self.class_grid.addWidget(button, i // 2, i % 2)
            self.label_buttons[value] = button

    # -- keys ------------------------------------------------------------------------
    def _keymap(self) -> KeyMap:
        """The open project's keys (``keys:`` in ``project.yaml``), else the defaults."""
        return self.session.project.config.keys if self.session is not None else KeyMap()

    def _key_actions(self) -> dict[str, Callable[[], None]]:
        """Key -> action from the key map; napari's navigation keys are never taken."""
        named: dict[str, Callable[[], None]] = {
            "next": self.next, "previous": self.previous, "undo": self.undo,
            "confirm": self.confirm,
            "edit-candidates": self.toggle_candidate_editing,
            "unsure": lambda: self.label("unsure"),
            "not-a-particle": lambda: self.label("not-a-particle"),
        }  # fmt: skip
        segment = self._segment
        if segment:  # Enter commits the crop's mask; class keys choose the paint class
            named["confirm"] = self.commit_mask
        actions: dict[str, Callable[[], None]] = {}
        for key, action in self._keymap().bindings():
            if action.startswith("class:") and segment:
                actions[key] = lambda k=int(action.split(":")[1]): self.masks.choose_label(k + 1)
            elif action.startswith("class:"):
                actions[key] = lambda k=int(action.split(":")[1]): self._label_number(k)
            else:
                actions[key] = named[action]
        if segment:
            actions.update({key: action for key, action in segment_keys(self).items()
                            if key not in actions})  # fmt: skip
        return actions

    @property
    def _segment(self) -> bool:
        """The open project labels masks (``task: segment``)."""
        return self.session is not None and self.session.project.config.task == "segment"

    def commit_mask(self, accept: bool = False) -> None:
        """Commit the current crop's mask (``accept``: the model's, unchanged) and show the
        next crop."""
        if self.session is None or self.session.current is None:
            return
        done = self.session.current.candidate_id
        try:
            committed = self.masks.commit(accept=accept)
        except (ValueError, OSError) as exc:
            _show_error(str(exc))
            return
        if committed:
            self._show_relabelled(done)

    def _key_help(self) -> str:
        """napari's status-bar hint: the keys in short (the full list is in the widget)."""
        names = self.session.class_names if self.session is not None else []
        return self._keymap().status_text(names)

    def _label_number(self, k: int) -> None:
        if self.session is not None and k < len(self.session.class_names):
            self.label(self.session.class_names[k])

    # -- project ---------------------------------------------------------------------
    def _choose_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a cryoal project folder")
        if path:
            self.load_project(path)

    def load_project(self, path: str | Path, tomo_id: str | None = None) -> None:
        """Open the project folder ``path`` (errors become one-line notifications)."""
        try:
            session = LabellingSession(
                path, tomo_id=tomo_id, annotator=self.annotator_edit.text().strip() or None
            )
        except (ValueError, FileNotFoundError, OSError) as exc:
            _show_error(str(exc))
            return
        if self.session is not None:
            self.session.close()
        self.session = session
        self.scene.open(session)
        self.keys.bind(self._key_actions(), self._key_help)  # the project's key map
        self.project_label.setText(
            f"<b>{session.project.config.name}</b>  ({session.project.root})"
        )
        self._make_label_buttons()
        self._fill_view_choices()
        self._fill_round_choices()
        zoom, b = crop_zoom(session.box), session.box
        self.crop_view.setFixedSize((3 * b + 2 * CROP_GAP) * zoom, b * zoom)
        self._set_enabled(True)
        self._redraw(all_points=True, centre=True)
        if session.current is None:
            _show_info(f"{path}: no suggestion queue yet; press 'Suggest next round'")

    def _annotator_changed(self) -> None:
        if self.session is not None:
            self.session.set_annotator(self.annotator_edit.text().strip() or default_annotator())

    # -- actions ---------------------------------------------------------------------
    def label(self, value: str) -> None:
        """Label the current candidate with ``value`` and show the next one."""
        if self.session is None or self.session.current is None:
            return
        done = self.session.current.candidate_id
        try:
            self.session.label(value)
        except (ValueError, OSError) as exc:
            _show_error(str(exc))
            return
        self._show_relabelled(done)

    def confirm(self) -> None:
        """Label the current candidate with the model's predicted class (as confirmed); in
        a segment project, commit the crop's mask."""
        if self.session is None or self.session.current is None:
            return
        if self._segment:
            self.commit_mask()
            return
        done = self.session.current.candidate_id
        try:
            self.session.confirm()
        except (ValueError, OSError) as exc:
            _show_error(str(exc))
            return
        self._show_relabelled(done)

    def next(self) -> None:
        if self.session is not None and self.session.current is not None:
            self.session.next()
            self._redraw()

    def previous(self) -> None:
        if self.session is not None and self.session.current is not None:
            self.session.previous()
            self._redraw()

    def undo(self) -> None:
        if self.session is None:
            return
        try:
            candidate = self.session.undo()
        except ValueError as exc:
            _show_error(str(exc))
            return
        self._show_relabelled(candidate.candidate_id)

    def toggle_candidate_editing(self) -> None:
        """Candidate layer selected in napari's add mode, or back to labelling (the
        tomogram selected, the candidate layer in pan/zoom)."""
        layer = self.scene.points_layer
        if self.session is None or layer is None or layer not in self.viewer.layers:
            self.edit_button.setChecked(False)
            return
        if self.editor.editing:
            layer.mode = "pan_zoom"
            self.scene.select_image()
        else:
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
        self.edit_button.setChecked(self.editor.editing)
        self._focus_canvas()

    def _jump_to_typed_id(self) -> None:
        if self.session is None:
            return
        try:
            self.session.jump(self.jump_edit.text().strip())
        except ValueError as exc:
            _show_error(str(exc))
            return
        self.jump_edit.clear()
        self._redraw()
        self._focus_canvas()

    def _table_clicked(self, row: int, _column: int) -> None:
        if self.session is not None and row < len(self.session.queue):
            self.session.jump(str(self.session.queue["candidate_id"].iloc[row]))
            self._redraw()
            self._focus_canvas()

    def _fill_view_choices(self) -> None:
        """The view's choices for the open project: statuses and predicted classes,
        tomograms, sort orders."""
        assert self.session is not None
        self.show_combo.clear()
        self.show_combo.addItems(
            [f"show: {s}" for s in QueueView.STATUSES]
            + [f"predicted: {name}" for name in self.session.class_names]
        )
        self.tomo_combo.clear()
        self.tomo_combo.addItems(
            ["all tomograms", *(t.id for t in self.session.project.config.tomograms)]
        )
        self.sort_combo.setCurrentIndex(0)

    def _fill_round_choices(self) -> None:
        """``newest round`` and every round with a queue, newest first."""
        assert self.session is not None
        self.round_combo.clear()
        self.round_combo.addItems(
            ["newest round", *(f"round {r}" for r in reversed(self.session.rounds()))]
        )
        if self.session.reviewing is not None:
            self.round_combo.setCurrentText(f"round {self.session.reviewing}")

    def _round_chosen(self, index: int) -> None:
        """Review the round chosen (or go back to the newest), then give the keys back."""
        if self.session is None:
            return
        text = self.round_combo.currentText()
        try:
            self.session.review(None if index == 0 else int(text.removeprefix("round ")))
        except ValueError as exc:
            _show_error(str(exc))
            return
        self._redraw(all_points=True)
        self._focus_canvas()

    def _view_changed(self, _index: int = 0) -> None:
        """Apply the view chosen in the three lists, then give the keys back."""
        if self.session is None:
            return
        shown = self.show_combo.currentText()
        status, predicted = "all", None
        if shown.startswith("predicted: "):
            predicted = shown.removeprefix("predicted: ")
        else:
            status = shown.removeprefix("show: ")
        tomo = self.tomo_combo.currentText()
        self.session.set_view(
            QueueView(
                status=status,
                predicted=predicted,
                tomo_id=None if self.tomo_combo.currentIndex() == 0 else tomo,
                sort=self.sort_combo.currentText().removeprefix("sort: "),
            )
        )
        self._redraw(all_points=True)
        self._focus_canvas()

    def _focus_canvas(self) -> None:
        """Give the keyboard back to the canvas, where the labelling keys work."""
        self.viewer.window._qt_viewer.canvas.native.setFocus()

    def _poll(self) -> None:
        """Pick up writes by other programs (CLI, another viewer, a suggest job)."""
        if self.session is None:
            return
        try:
            if self.session.changed_outside():
                self.session.refresh()
                self._redraw(all_points=True)
        except (ValueError, OSError) as exc:
            _show_error(str(exc))

    # -- drawing ---------------------------------------------------------------------
    def _show_relabelled(self, candidate_id: str) -> None:
        """Show a candidate's new label (point colour, table row, totals), then the cursor's
        candidate; the points layer is redrawn once, with the move to the next one (the
        colour is written without a redraw of its own: ``ProjectScene.recolour``)."""
        self._refresh_candidate(candidate_id)
        self._redraw(held=[self.scene.points_layer])

    def _redraw(
        self, all_points: bool = False, centre: bool = True, held: Sequence[Any] = ()
    ) -> None:
        """Show the cursor's candidate: layers, camera, crop view, table, counter (``held``:
        layers changed with their refreshes held, refreshed here)."""
        session = self.session
        if session is None:
            return
        if self.scene.needs_tomogram():
            self.scene.show_tomogram()
            all_points = True
        if all_points:
            self.scene.fill_points()
            self._fill_table()
            self._update_totals()
        current = session.current
        self._show_current(current, centre, held)
        self._update_counter()

    def _refresh_candidate(self, candidate_id: str) -> None:
        """Redraw one candidate's point colour and table row after its label changed."""
        self.scene.recolour(candidate_id)
        row = self.session.position(candidate_id) if self.session is not None else None
        if row is not None:
            self._fill_table_row(row)
        self._update_totals()

    def _update_totals(self) -> None:
        """Labels per class over the project and the tomogram shown (one read of the
        store: done when labels or the tomogram change, not on every key)."""
        assert self.session is not None
        tomo = self.session.tomo_id
        everywhere, here = self.session.label_counts(tomo)
        self.totals_label.setText(
            "project: " + _counts_text(everywhere)
            + (f"\n{tomo}: " + _counts_text(here) if tomo else "")
        )  # fmt: skip

    def _show_current(
        self, current: Candidate | None, centre: bool, held: Sequence[Any] = ()
    ) -> None:
        """The cursor's candidate in the viewer (``ProjectScene.show_candidate``) and in the
        widget: its line, crop view and table row."""
        assert self.session is not None
        self.scene.show_candidate(current, centre, held)
        if current is None:
            empty = self.session.round_queue.empty
            self.current_label.setText(
                "the queue is empty" if empty else "nothing in this view of the queue"
            )
            self.crop_view.clear()
            return
        self.confirm_button.setEnabled(current.predicted_class is not None or self._segment)
        probs = self.session.probabilities(current.candidate_id)
        self.current_label.setText(candidate_line(current, probs))
        self._show_crop(current)
        self._select_row(self.session.cursor)

    def _show_crop(self, current: Candidate) -> None:
        assert self.session is not None
        canvas = crop_pixels(self.session.orthoslices(current), self.session.box)
        image = QImage(
            canvas.data, canvas.shape[1], canvas.shape[0], canvas.strides[0],
            QImage.Format.Format_Grayscale8,
        ).copy()  # fmt: skip
        self.crop_view.setPixmap(QPixmap.fromImage(image))

    def _fill_table(self) -> None:
        assert self.session is not None
        self.table.setRowCount(len(self.session.queue))
        for i in range(len(self.session.queue)):
            self._fill_table_row(i)
        self.table.resizeColumnsToContents()
        # the label column fits every label, not only those made so far
        widest = max(
            self.table.fontMetrics().horizontalAdvance(v) for v in self.session.label_choices
        )
        self.table.setColumnWidth(4, max(self.table.columnWidth(4), widest + 16))

    def _fill_table_row(self, i: int) -> None:
        assert self.session is not None
        entry = self.session.entry(i)
        score = "-" if np.isnan(entry.score) else f"{entry.score:.3g}"
        label = entry.label
        cells = (str(entry.rank), entry.candidate_id, score, entry.predicted_class or "-",
                 label or "")  # fmt: skip
        for j, text in enumerate(cells):
            item = self.table.item(i, j)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(i, j, item)
            if item.text() != str(text):
                item.setText(str(text))
            if j == 4:
                colour = QColor(self.session.colour(label)) if label else QColor(0, 0, 0, 0)
                item.setBackground(colour)
                ink = "#000000" if label and colour.lightness() > 140 else "#ffffff"
                item.setForeground(QColor(ink))

    def _select_row(self, i: int | None) -> None:
        if i is None:
            return
        self.table.selectRow(i)
        self.table.scrollToItem(self.table.item(i, 0), QAbstractItemView.ScrollHint.EnsureVisible)

    def _update_counter(self) -> None:
        assert self.session is not None
        c = self.session.counts()
        if c.round is None:
            self.counter_label.setText("no queue yet")
            return
        if c.total and c.labelled == c.total:  # said, not a silent wrap to rank 0
            self.counter_label.setText(
                f"round {c.round} complete: all {c.total} labelled. Train next (n / p review)"
            )
        else:
            self.counter_label.setText(f"{c.labelled} / {c.total} labelled this round")
        per = ", ".join(f"{k} {v}" for k, v in c.per_label.items() if v)
        self.counter_label.setToolTip(
            f"round {c.round}"
            + (f" (model {self.session.model_version})" if self.session.model_version else "")
            + (f": {per}" if per else "")
        )

    # -- background jobs -------------------------------------------------------------
    def start_job(self, kind: str) -> None:
        """Run ``cryoal train`` / ``cryoal suggest`` on the project in a subprocess."""
        from cryoal_napari._jobs import ProjectJob

        if self.session is None:
            _show_error("open a project first")
            return
        if self.job is not None and self.job.is_running():
            _show_error(f"a {self.job.kind} job is running; wait for it or cancel it")
            return
        total = 0
        if kind == "train":
            total = train_epochs(self.session.project.config.defaults.train)
        self.job = ProjectJob(kind, self.session.project.root, total_epochs=total)
        self.job.progress.connect(self._job_progress)
        self.job.line.connect(lambda text: self.job_label.setText(text[-160:]))
        self.job.finished.connect(self._job_finished)
        self.train_button.setEnabled(False)
        self.suggest_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.job_label.setText(f"{kind} running…")
        self.job.start()

    def cancel_job(self) -> None:
        """Ask the running job to stop; returns at once (the job's ``finished`` signal
        reports when it has ended and the project is restored)."""
        if self.job is not None and self.job.is_running():
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.job_label.setText(f"cancelling {self.job.kind} …")

    def _job_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)  # (0, 0): a busy bar
        stage = self.job.stage if self.job is not None else ""
        self.progress.setFormat(f"{stage} %v/%m" if stage else "%v/%m")
        if total:
            self.progress.setValue(done)

    def _job_finished(self, outcome) -> None:  # noqa: ANN001 - JobOutcome
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.train_button.setEnabled(True)
        self.suggest_button.setEnabled(True)
        if outcome.ok and outcome.kind == "train" and self.session is not None:
            from cryoal.project.rounds import model_summary, newest_model

            info = newest_model(self.session.project.root)
            if info is not None:  # what the new model can do, not only that it finished
                outcome = replace(outcome, message=f"{outcome.message}: "
                                  f"{model_summary(self.session.project.root, info)}")  # fmt: skip
        self.job_label.setText(outcome.message)
        if outcome.ok or outcome.cancelled:
            _show_info(outcome.message)
        else:
            _show_error(outcome.message)
        if self.session is not None:
            self.session.refresh()
            self._fill_round_choices()  # a Suggest job adds a round
            self._redraw(all_points=True)
        self.job_finished.emit(outcome)

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        self._timer.stop()
        self.keys.unbind()
        self.scene.close()
        self.editor.detach()
        self.masks.flush()  # a stroke not yet autosaved
        if self.job is not None and self.job.is_running():
            self.job.cancel_and_wait()  # the window is going: undo the job's files now
        if self.session is not None:
            self.session.close()
        super().closeEvent(event)


#: A segment project's extra keys (napari's Labels keys they replace on purpose: none).
SEGMENT_HELP = "0 paint background · a accept the model's mask · r reset to it · d 2D/3D brush"


def segment_keys(widget: LabellingWidget) -> dict[str, Callable[[], None]]:
    """Keys of a segment project besides the key map: ``0`` background, ``a`` accept,
    ``r`` reset, ``d`` the brush's dimensions."""
    return {
        "0": lambda: widget.masks.choose_label(0),
        "a": lambda: widget.commit_mask(accept=True),
        "r": widget.masks.reset,
        "d": widget.masks.toggle_brush,
    }


def _counts_text(counts: dict[str, int]) -> str:
    return " · ".join(f"{name} {n}" for name, n in counts.items() if n) or "no labels"


def open_project(
    viewer: napari.Viewer, path: str | Path, tomo_id: str | None = None
) -> LabellingWidget:
    """Dock a labelling widget in ``viewer`` and open the project folder ``path``.

    The tomogram of the first queued candidate (or ``tomo_id``) is opened with cryoal's
    reader, the candidates are added as points and the viewer jumps to the candidate.
    """
    widget = LabellingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="cryoal labelling", area="right")
    widget.load_project(path, tomo_id=tomo_id)
    return widget
