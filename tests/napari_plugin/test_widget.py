"""The labelling widget in a real napari window (Qt, under Xvfb in CI): real button clicks
and key presses, checked against the label store."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import Qt  # noqa: E402

from cryoal.project.jobfiles import ProjectFiles  # noqa: E402
from cryoal.project.labels import LabelStore  # noqa: E402

IDS = [f"TS_01:{i:06d}" for i in range(6)]


def _current_labels(root: Path) -> dict[str, str]:
    with LabelStore(root / "labels.sqlite") as store:
        table = store.current_labels()
    names = table["class_name"].where(table["kind"] == "class", table["kind"])
    return dict(zip(table["candidate_id"], names, strict=True))


@pytest.fixture
def widget(make_napari_viewer, qtbot, label_project: Path):
    from cryoal_napari._widget import open_project

    viewer = make_napari_viewer(show=True)
    w = open_project(viewer, label_project)
    w.annotator_edit.setText("alice")
    w.annotator_edit.editingFinished.emit()
    yield w
    w.close()


def _press(widget, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    from qtpy.QtTest import QTest

    canvas = widget.viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    QTest.keyClick(canvas, key, modifier)


def test_buttons_and_keys_label_navigate_and_undo(widget, qtbot, label_project: Path) -> None:
    viewer = widget.viewer
    assert [layer.name for layer in viewer.layers] == [
        "TS_01", "candidates", "current box", "current box 3D"
    ]  # fmt: skip
    assert widget.counter_label.text() == "0 / 6 labelled this round"

    qtbot.mouseClick(widget.label_buttons["barrel"], Qt.MouseButton.LeftButton)
    # whichever layer is selected, the keys label: napari's own layer keys use 1-6 too
    viewer.layers.selection.active = widget.scene.points_layer
    _press(widget, Qt.Key.Key_1)  # the first class in project.yaml: ring
    _press(widget, Qt.Key.Key_U)
    _press(widget, Qt.Key.Key_N)  # skip IDS[3]
    _press(widget, Qt.Key.Key_X)  # IDS[4]: not a particle
    assert _current_labels(label_project) == {
        IDS[0]: "barrel", IDS[1]: "ring", IDS[2]: "unsure", IDS[4]: "not-a-particle"
    }  # fmt: skip
    with LabelStore(label_project / "labels.sqlite") as store:
        assert set(store.current_labels()["annotator"]) == {"alice"}

    # labelling moves on to the next unlabelled candidate
    assert widget.session.current.candidate_id == IDS[5]
    assert widget.counter_label.text() == "4 / 6 labelled this round"
    _press(widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo: IDS[4] unlabelled
    assert IDS[4] not in _current_labels(label_project)
    assert widget.session.current.candidate_id == IDS[4]
    # Left / Right stay napari's: one slice down and up, the candidate stays
    z = viewer.dims.point[0]
    _press(widget, Qt.Key.Key_Left)
    assert viewer.dims.point[0] == pytest.approx(z - 10.0)
    _press(widget, Qt.Key.Key_Right)
    assert viewer.dims.point[0] == pytest.approx(z)
    assert widget.session.current.candidate_id == IDS[4]
    _press(widget, Qt.Key.Key_P)
    _press(widget, Qt.Key.Key_P)
    assert widget.session.current.candidate_id == IDS[2]
    assert widget.keys_label.text().startswith("keys: 1 ring · 2 barrel · Enter confirm")
    assert not widget.confirm_button.isEnabled()  # round 0: no model, nothing to confirm
    # napari's status bar names cryoal's keys, also after a layer's mode changed
    short = (
        "cryoal keys: 1 ring · 2 barrel · Enter · u · x · n · p · Ctrl+Z · e (listed in the widget)"
    )
    assert viewer.help == short
    widget.scene.points_layer.mode = "add"
    assert widget.scene.points_layer.help == short
    widget.scene.points_layer.mode = "pan_zoom"
    qtbot.keyClicks(widget.jump_edit, IDS[0])  # typed into the field, not labelling
    qtbot.keyClick(widget.jump_edit, Qt.Key.Key_Return)
    assert widget.session.current.candidate_id == IDS[0]
    qtbot.mouseClick(widget.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=widget.table.visualItemRect(widget.table.item(2, 1)).center())  # fmt: skip
    assert widget.session.current.candidate_id == IDS[2]

    # the camera, slice and box follow the candidate (zyx voxels × 10 Å)
    expected = np.array([12.0, 50.0, 45.0]) * 10.0 + np.asarray(widget.scene.image_layer.translate)
    [box] = widget.scene.box_layer.data[
        widget.scene.box_layer.shown
    ]  # only the current box is shown
    np.testing.assert_allclose(widget.scene.box_layer.data_to_world(box), expected)
    # every layer lives in the image's world (voxels at its scale), so z steps one slice
    for layer in (widget.scene.points_layer, widget.scene.box_layer, widget.scene.cube_layer):
        np.testing.assert_allclose(layer.scale, widget.scene.image_layer.scale)
    assert viewer.dims.range[0].step == pytest.approx(10.0)
    assert viewer.dims.point[0] == pytest.approx(expected[0], abs=10.0)
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], expected[1:])
    assert widget.table.currentRow() == 2
    assert widget.table.item(0, 4).text() == "barrel"
    assert widget.crop_view.pixmap() is not None and not widget.crop_view.pixmap().isNull()

    slice_limits = tuple(widget.scene.image_layer.contrast_limits)
    viewer.dims.ndisplay = 3  # the keys work in 3D as well; the box becomes a cube
    assert widget.scene.cube_layer.visible and not widget.scene.box_layer.visible
    image = np.asarray(widget.scene.image_layer.extent.world)

    def around(world_zyx: np.ndarray) -> None:
        """The cube encloses the candidate and stays inside the tomogram (the sliders'
        range is the tomogram's)."""
        lo, hi = np.asarray(widget.scene.cube_layer.extent.world)
        assert np.all(lo <= world_zyx) and np.all(world_zyx <= hi)
        assert np.all(lo >= image[0] - 1e-6) and np.all(hi <= image[1] + 1e-6)

    around(expected)
    # the tomogram as a projection (dark particles by default: minimum intensity) at the
    # projection's own contrast, and the slice contrast back in 2D
    projection = widget.scene.image_layer.data.min(axis=0)
    assert widget.scene.image_layer.rendering == "minip"
    np.testing.assert_allclose(
        widget.scene.image_layer.contrast_limits, np.percentile(projection, [1.0, 99.5]), rtol=1e-5
    )
    _press(widget, Qt.Key.Key_2)  # barrel for IDS[2], which was unsure
    assert _current_labels(label_project)[IDS[2]] == "barrel"
    around(widget.session.current.zyx * 10.0 + np.asarray(widget.scene.image_layer.translate))
    assert viewer.dims.range[0].start == pytest.approx(image[0][0])
    viewer.dims.ndisplay = 2
    assert tuple(widget.scene.image_layer.contrast_limits) == slice_limits

    # a label written by another program shows up without touching the widget
    with LabelStore(label_project / "labels.sqlite") as cli:
        cli.add_label(IDS[5], "ring", "bob")
    qtbot.waitUntil(lambda: widget.table.item(5, 4).text() == "ring", timeout=5000)
    assert widget.counter_label.text() == "4 / 6 labelled this round"

    widget.close()  # a closed widget gives the keys back to napari
    before = _current_labels(label_project)
    _press(widget, Qt.Key.Key_1)
    assert _current_labels(label_project) == before
    # and no longer follows the viewer: a 3D switch after closing reads no closed project
    widget.viewer.dims.ndisplay = 3
    widget.viewer.dims.ndisplay = 2
    assert widget.scene.session is None


def test_screenshot_shows_tomogram_and_highlighted_candidate(widget) -> None:
    viewer = widget.viewer
    widget.session.jump(IDS[2])
    widget._redraw()
    viewer.scene.camera.zoom = 0.6  # screen pixels per Å: the 160 Å box is ~96 pixels wide
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    h, w = shot.shape[:2]
    grey = shot.mean(axis=2)
    # the tomogram fills the canvas: most pixels are neither black background nor saturated
    assert ((grey > 20) & (grey < 250)).mean() > 0.5
    # the current box is drawn in cyan around the centre of the view
    cyan = (shot[..., 0] < 80) & (shot[..., 1] > 180) & (shot[..., 2] > 180)
    assert cyan.mean() > 0.002
    ys, xs = np.nonzero(cyan)
    assert abs(ys.mean() - h / 2) < 0.1 * h and abs(xs.mean() - w / 2) < 0.1 * w
    # inside the box the candidate's particle is brighter than the tomogram around it
    centre = grey[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8]
    assert centre.mean() > np.median(grey) + 30


def test_the_last_label_of_a_round_says_the_round_is_complete(widget, qtbot) -> None:
    for name in ("ring", "barrel", "ring", "barrel", "ring"):
        qtbot.mouseClick(widget.label_buttons[name], Qt.MouseButton.LeftButton)
    assert widget.counter_label.text() == "5 / 6 labelled this round"
    qtbot.mouseClick(widget.label_buttons["barrel"], Qt.MouseButton.LeftButton)
    assert widget.counter_label.text() == (
        "round 0 complete: all 6 labelled. Train next (n / p review)"
    )


@pytest.mark.timeout(180)
def test_training_runs_in_background_and_cancel_restores_the_project(
    widget, qtbot, label_project: Path
) -> None:
    for name in ("ring", "barrel", "ring", "barrel"):
        qtbot.mouseClick(widget.label_buttons[name], Qt.MouseButton.LeftButton)
    files_before = ProjectFiles.capture(label_project)

    qtbot.mouseClick(widget.train_button, Qt.MouseButton.LeftButton)
    assert widget.job is not None and widget.job.is_running()
    assert widget.job.arguments[-2:] == ["train", str(label_project)]
    # the bar follows the epochs of the real training (15 by default) ...
    with qtbot.waitSignal(
        widget.job.progress, timeout=90000, check_params_cb=lambda done, total: done >= 1
    ) as epoch:
        pass
    assert epoch.args[1] == 15 and widget.progress.maximum() == 15
    assert (label_project / "rounds" / "001" / "snapshot.csv").is_file()
    _press(widget, Qt.Key.Key_U)  # ... while labelling goes on
    labels_before = _current_labels(label_project)
    with qtbot.waitSignal(widget.job.finished, timeout=20000) as finished:
        t0 = time.perf_counter()
        qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
        # Cancel gives control back at once: the job ends in the background
        assert time.perf_counter() - t0 < 0.5
        assert not widget.cancel_button.isEnabled()
        assert widget.job_label.text() == "cancelling train …"
        _press(widget, Qt.Key.Key_N)  # keys still work while the job winds down
    assert finished.args[0].cancelled
    assert not widget.job.is_running()
    assert ProjectFiles.capture(label_project).paths == files_before.paths
    assert _current_labels(label_project) == labels_before
    assert widget.train_button.isEnabled() and not widget.cancel_button.isEnabled()


@pytest.mark.timeout(120)
def test_suggest_job_reloads_the_queue_and_errors_are_one_line(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_label_project
) -> None:
    import cryoal_napari._widget as widget_module

    errors: list[str] = []
    monkeypatch.setattr(widget_module, "_show_error", errors.append)
    root = make_label_project(tmp_path, queue=False)
    widget = widget_module.open_project(make_napari_viewer(show=True), root)
    assert widget.table.rowCount() == 0 and widget.counter_label.text() == "no queue yet"

    with qtbot.waitSignal(widget.job_finished, timeout=60000):
        qtbot.mouseClick(widget.suggest_button, Qt.MouseButton.LeftButton)
    # the round-0 queue written by 'cryoal suggest' is shown without reopening anything
    assert widget.table.rowCount() == 6 and widget.session.round == 0
    assert widget.counter_label.text() == "0 / 6 labelled this round"
    assert not errors

    with qtbot.waitSignal(widget.job_finished, timeout=60000):
        qtbot.mouseClick(widget.suggest_button, Qt.MouseButton.LeftButton)
    [message] = errors  # the CLI's error, as one line, no traceback
    assert "round 0 already has suggestions" in message and "\n" not in message
    assert "Traceback" not in message
    widget.close()


def test_a_train_job_shows_pretraining_then_training_in_its_bar(qtbot, label_project: Path) -> None:
    import io
    from types import SimpleNamespace

    from cryoal_napari._jobs import ProjectJob

    from cryoal.cli.progress import CountProgress, TrainProgress, use_json_events

    # the JSON-lines events 'cryoal --events json train' writes while it extracts,
    # pretrains, then trains (made by the CLI's own progress classes)
    out = io.StringIO()
    use_json_events(out)
    try:
        with CountProgress("extracting subtomograms", None) as cut:
            cut(40)
        epoch = {"kind": "epoch", "step": 10, "total_steps": 150, "loss": 1.2,
                 "samples_per_s": 30.0, "eta_s": 65.0}  # fmt: skip
        TrainProgress(label="pretrain")(SimpleNamespace(**epoch, epoch=3, epochs=30))
        TrainProgress()(SimpleNamespace(**epoch, epoch=2, epochs=15, accuracy=0.75))
    finally:
        use_json_events(None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3

    job = ProjectJob("train", label_project, total_epochs=15)
    shown: list[str] = []
    job.line.connect(shown.append)
    with qtbot.waitSignal(job.progress) as signal:
        job._handle(lines[0])
    assert signal.args == [0, 0] and job.stage == "extracting subtomograms"  # busy bar
    with qtbot.waitSignal(job.progress) as signal:
        job._handle(lines[1])
    assert signal.args == [3, 30] and job.stage == "pretraining the encoder"
    with qtbot.waitSignal(job.progress) as signal:
        job._handle(lines[2])
    assert signal.args == [2, 15] and job.stage == "training"
    assert shown[-1] == "training: epoch 2/15, validation accuracy 0.750, about 1m05s left"
    # other libraries' log lines never reach the widget; the job's error does
    job._handle("DEBUG matplotlib.font_manager: findfont: score(FontEntry(...)) = 10.05")
    assert len(shown) == 3
    job._handle("cryoal: error: rounds/001: disk full")
    assert shown[-1] == "cryoal: error: rounds/001: disk full"


def test_keys_come_from_project_yaml(make_napari_viewer, qtbot, label_project: Path) -> None:
    import yaml
    from cryoal_napari._widget import open_project

    config = yaml.safe_load((label_project / "project.yaml").read_text())
    config["keys"] = {"next": "j", "classes": ["a", "s"]}
    (label_project / "project.yaml").write_text(yaml.safe_dump(config))
    widget = open_project(make_napari_viewer(show=True), label_project)
    first = widget.session.current.candidate_id
    _press(widget, Qt.Key.Key_N)  # no longer bound: nothing happens
    assert widget.session.current.candidate_id == first
    _press(widget, Qt.Key.Key_J)
    second = widget.session.current.candidate_id
    assert second != first
    _press(widget, Qt.Key.Key_S)  # the second class
    assert _current_labels(label_project) == {second: "barrel"}
    assert widget.next_button.text() == "next (j) ▶"
    assert widget.label_buttons["ring"].text() == "a  ring"
    widget.close()


def test_the_confirm_key_records_the_models_prediction(
    make_napari_viewer, qtbot, label_project: Path, write_model_round
) -> None:
    from cryoal_napari._widget import open_project

    write_model_round(label_project, [IDS[5], IDS[4]], {"ring": [0.25, 0.7], "barrel": [0.75, 0.3]})
    widget = open_project(make_napari_viewer(show=True), label_project)
    assert widget.confirm_button.text() == "✓ confirm prediction (Enter)"
    assert "model: barrel 0.75 · ring 0.25" in widget.current_label.text()
    _press(widget, Qt.Key.Key_Return)
    with LabelStore(label_project / "labels.sqlite") as store:
        row = store.current_label(IDS[5])
    assert (row.class_name, row.source) == ("barrel", "confirmed")
    assert widget.session.current.candidate_id == IDS[4]
    qtbot.mouseClick(widget.confirm_button, Qt.MouseButton.LeftButton)
    assert _current_labels(label_project)[IDS[4]] == "ring"
    widget.close()


def test_the_queue_view_filters_and_sorts_and_keys_move_within_it(widget, qtbot) -> None:
    for name in ("ring", "barrel"):  # IDS[0], IDS[1]
        qtbot.mouseClick(widget.label_buttons[name], Qt.MouseButton.LeftButton)

    def choose(combo, text: str) -> None:
        combo.setCurrentIndex(combo.findText(text))
        combo.activated.emit(combo.currentIndex())

    choose(widget.show_combo, "show: unlabelled")
    assert widget.table.rowCount() == 4
    assert widget.table.item(0, 1).text() == IDS[2]
    assert widget.session.current.candidate_id == IDS[2]
    _press(widget, Qt.Key.Key_N)  # the keys still work (focus back on the canvas)
    assert widget.session.current.candidate_id == IDS[3]
    assert widget.counter_label.text() == "2 / 6 labelled this round"  # the whole round
    assert widget.totals_label.text() == "project: ring 1 · barrel 1\nTS_01: ring 1 · barrel 1"
    choose(widget.show_combo, "show: labelled")
    assert [widget.table.item(i, 1).text() for i in range(2)] == IDS[:2]
    choose(widget.tomo_combo, "TS_01")
    assert widget.table.rowCount() == 2
    choose(widget.show_combo, "show: not-a-particle")
    assert widget.table.rowCount() == 0
    assert widget.current_label.text() == "nothing in this view of the queue"
    choose(widget.show_combo, "show: all")
    assert widget.table.rowCount() == 6
    # an earlier round can be reviewed from the round list
    with LabelStore(widget.session.project.root / "labels.sqlite") as cli:
        cli.write_suggestions(1, [IDS[5], IDS[4]], [0.9, 0.8], "kt", model_version="r001-x")
    widget.session.refresh()
    widget._fill_round_choices()
    choose(widget.round_combo, "newest round")
    assert widget.table.rowCount() == 2 and widget.session.round == 1
    choose(widget.round_combo, "round 0")
    assert widget.table.rowCount() == 6 and widget.session.round == 0


def _canvas_pixel(widget, world_yx: np.ndarray):
    """The canvas pixel (a QPoint) showing world position ``world_yx`` (Å) in 2D."""
    from qtpy.QtCore import QPoint

    camera = widget.viewer.scene.camera
    native = widget.viewer.window._qt_viewer.canvas.native
    centre = np.array([native.width(), native.height()]) / 2.0  # the camera's centre
    offset = (np.asarray(world_yx)[::-1] - np.asarray(camera.center[-2:])[::-1]) * camera.zoom
    x, y = centre + offset
    return QPoint(int(round(x)), int(round(y)))


def test_candidates_are_added_and_deleted_with_the_mouse_and_keys(
    widget, qtbot, label_project: Path
) -> None:
    from qtpy.QtTest import QTest

    native = widget.viewer.window._qt_viewer.canvas.native
    layer = widget.scene.points_layer
    translate = np.asarray(widget.scene.image_layer.translate)[-3:]
    _press(widget, Qt.Key.Key_E)  # the candidate layer, in napari's add mode
    assert widget.viewer.layers.selection.active is layer and layer.mode == "add"
    assert widget.edit_button.isChecked()
    # a missed particle: a click at (y, x) = (60, 30) voxels on the current slice
    z = widget.session.current.z
    target = np.array([60.0, 30.0])
    QTest.mouseClick(
        native, Qt.MouseButton.LeftButton, pos=_canvas_pixel(widget, target * 10 + translate[1:])
    )
    qtbot.waitUntil(lambda: widget.session.current.candidate_id == "TS_01:000006", timeout=3000)
    with LabelStore(label_project / "labels.sqlite") as store:
        added = store.candidates().set_index("candidate_id").loc["TS_01:000006"]
        edits = store.candidate_edits()
    np.testing.assert_allclose(added[["z", "y", "x"]].to_numpy(float), [z, *target], atol=1.0)
    assert added["source"] == "manual:alice"
    assert edits[["candidate_id", "action", "annotator"]].values.tolist() == [
        ["TS_01:000006", "added", "alice"]
    ]
    _press(widget, Qt.Key.Key_2)  # the added particle is queued and current: label it
    assert _current_labels(label_project)["TS_01:000006"] == "barrel"
    # a click on top of an existing candidate adds nothing (the message names it)
    before = len(layer.data)
    first = np.array([20.0, 20.0])  # TS_01:000000 at z 16
    widget.viewer.dims.set_point(0, 16 * 10 + translate[0])
    QTest.mouseClick(
        native, Qt.MouseButton.LeftButton, pos=_canvas_pixel(widget, first * 10 + translate[1:])
    )
    qtbot.wait(100)
    assert len(layer.data) == before

    # select mode (napari's s): click a candidate, Delete deletes it, kept in the history
    QTest.keyClick(native, Qt.Key.Key_S)
    assert layer.mode == "select"
    QTest.mouseClick(
        native, Qt.MouseButton.LeftButton, pos=_canvas_pixel(widget, first * 10 + translate[1:])
    )
    assert len(layer.selected_data) == 1
    QTest.keyClick(native, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: "TS_01:000000" not in widget.scene.point_index, timeout=3000)
    with LabelStore(label_project / "labels.sqlite") as store:
        assert store.deleted_ids() == ["TS_01:000000"]
        assert store.candidate_edits()["action"].tolist() == ["added", "deleted"]
    assert "TS_01:000000" not in set(widget.session.queue["candidate_id"])

    _press(widget, Qt.Key.Key_E)  # back to labelling
    assert layer.mode == "pan_zoom" and not widget.edit_button.isChecked()
    assert widget.viewer.layers.selection.active is widget.scene.image_layer


def test_a_dragged_candidate_is_recentred_once_on_release(
    widget, qtbot, label_project: Path
) -> None:
    """napari's select-mode drag moves the point on every mouse move; the store gets one
    edit, with the position at release."""
    from types import SimpleNamespace

    layer = widget.scene.points_layer
    widget.toggle_candidate_editing()
    layer.mode = "select"
    i = widget.scene.point_index["TS_01:000002"]
    layer.selected_data = {i}
    events = iter(["mouse_move", "mouse_move", "mouse_release"])
    event = SimpleNamespace(type="mouse_press")
    drag = widget.editor._on_drag(layer, event)
    next(drag)  # the press
    for step, kind in enumerate(events):
        layer._move({i}, layer.data[i] + np.array([0.0, 1.0 + step, 0.0]))
        event.type = kind
        next(drag, None)
    qtbot.waitUntil(
        lambda: len(LabelStore(label_project / "labels.sqlite").candidate_edits()) == 1,
        timeout=3000,
    )
    with LabelStore(label_project / "labels.sqlite") as store:
        edits = store.candidate_edits()
        moved = store.candidates().set_index("candidate_id").loc["TS_01:000002"]
    assert edits["action"].tolist() == ["moved"]
    assert (edits["from_z"][0], edits["from_y"][0], edits["from_x"][0]) == (12.0, 50.0, 45.0)
    np.testing.assert_allclose(moved[["z", "y", "x"]].to_numpy(float), layer.data[i], atol=1e-6)
    assert moved["y"] > 50.0


def test_a_segment_crop_is_painted_autosaved_and_committed_with_real_keys(
    make_napari_viewer, qtbot, tmp_path: Path, make_segment_project
) -> None:
    from cryoal_napari._widget import open_project
    from qtpy.QtTest import QTest

    root = make_segment_project(tmp_path, masked=False)
    with LabelStore(root / "labels.sqlite") as store:
        store.write_suggestions(0, ["TS_01:000000", "TS_01:000001"], None, "random")
    widget = open_project(make_napari_viewer(show=True), root)
    widget.annotator_edit.setText("alice")
    widget.annotator_edit.editingFinished.emit()
    layer = widget.masks.layer
    assert layer is not None and layer.data.shape == (16, 16, 16)
    assert not layer.data.any()  # no model yet: the crop starts as background
    # the mask is the selected layer, in paint mode: the mouse paints without a key first
    assert widget.viewer.layers.selection.active is layer and layer.mode == "paint"
    np.testing.assert_allclose(layer.scale, widget.scene.image_layer.scale)
    assert "Enter commit the mask" in widget.keys_label.text()
    _press(widget, Qt.Key.Key_2)  # paint with the second class ("large", value 2)
    assert layer.selected_label == 2 and layer.mode == "paint"
    # a real click on the candidate's centre paints a dab of the brush on its slice
    native = widget.viewer.window._qt_viewer.canvas.native
    centre = np.array([16.0, 16.0]) * 10 + np.asarray(widget.scene.image_layer.translate)[-2:]
    QTest.mouseClick(native, Qt.MouseButton.LeftButton, pos=_canvas_pixel(widget, centre))
    painted = int((layer.data == 2).sum())
    assert painted > 0

    # the stroke is autosaved as a draft within a moment
    def drafted() -> bool:
        with LabelStore(root / "labels.sqlite") as store:
            return store.draft("TS_01:000000", "alice") is not None

    qtbot.waitUntil(drafted, timeout=3000)
    _press(widget, Qt.Key.Key_Return)  # commit: durable before the next crop shows
    assert widget.session.current.candidate_id == "TS_01:000001"
    with LabelStore(root / "labels.sqlite") as store:
        stored = store.current_mask("TS_01:000000")
        assert store.draft("TS_01:000000", "alice") is None
    assert stored.source == "painted" and stored.voxels_changed == painted
    assert int((stored.mask == 2).sum()) == painted and stored.slices_touched == 1
    assert not layer.data.any()  # the next crop opened
    _press(widget, Qt.Key.Key_U)  # the next crop unsure
    with LabelStore(root / "labels.sqlite") as store:
        assert store.current_label("TS_01:000001").kind == "unsure"
    widget.close()


def test_after_enter_the_frame_shows_the_next_crops_mask_and_its_uncertainty_overlay(
    make_napari_viewer, tmp_path: Path, make_segment_project
) -> None:
    """What the expert sees after Enter: the next crop drawn with the model's mask over it
    (whether the slice moves or not), and, ticked, its KT-MSE map."""
    import io

    from cryoal_napari._widget import open_project

    from cryoal.project.proposals import PROPOSALS_NAME

    root = make_segment_project(tmp_path, masked=False)
    queue = ["TS_01:000004", "TS_01:000000", "TS_01:000001"]  # z 20, then z 12 twice
    with LabelStore(root / "labels.sqlite") as store:
        store.write_suggestions(1, queue, [0.9, 0.8, 0.7], "kt", model_version="test")
    cube = np.zeros((16, 16, 16), np.uint8)
    cube[4:12, 4:12, 4:12] = 2  # the model's "large" in the middle of the box
    hot = np.zeros((16, 16, 16), np.float16)
    hot[4:12, 4:12, 8:12] = 1.0  # it doubts the right half of the cube
    arrays = {f"mask/{cid}": cube for cid in queue[1:]} | {f"mask/{queue[0]}": 0 * cube}
    arrays |= {f"uncertainty/{cid}": hot for cid in queue}
    (root / "rounds" / "001").mkdir(parents=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (root / "rounds" / "001" / PROPOSALS_NAME).write_bytes(buf.getvalue())
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)  # a canvas wider than the box
    widget = open_project(viewer, root)
    widget.annotator_edit.setText("alice")
    widget.annotator_edit.editingFinished.emit()
    viewer.scene.camera.zoom = 1.0  # screen pixels per Å: the 160 Å box is 160 pixels wide

    def shot() -> np.ndarray:
        return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)

    for expected in queue[1:]:
        _press(widget, Qt.Key.Key_Return)  # commit this crop: the next one opens
        assert widget.session.current.candidate_id == expected
        assert viewer.dims.point[0] == 12 * 10.0 + float(widget.scene.image_layer.translate[0])
        masked = shot()
        widget.masks.layer.visible = False
        bare = shot()
        widget.masks.layer.visible = True
        h, w = bare.shape[:2]
        change = np.abs(masked - bare).sum(axis=2)
        # the 80 Å cube is painted at the centre of the view, nothing outside the box
        assert change[h // 2 - 35 : h // 2 + 35, w // 2 - 35 : w // 2 + 35].mean() > 30
        assert change[: h // 2 - 100].mean() < 1 and change[:, : w // 2 - 100].mean() < 1
    # the uncertainty overlay, ticked, lights the doubted half (x > centre) only
    widget.masks.uncertainty_layer.visible = True
    glow = np.abs(shot() - masked).sum(axis=2)
    right = glow[h // 2 - 35 : h // 2 + 35, w // 2 + 5 : w // 2 + 35].mean()
    left = glow[h // 2 - 35 : h // 2 + 35, w // 2 - 35 : w // 2 - 5].mean()
    assert right > 30 and left < 10, (right, left)  # inferno's zero adds a trace of blue
    widget.close()


def test_a_label_key_recolours_the_candidate_in_the_next_frame(widget) -> None:
    """The next candidate is on the same slice: its frame shows the labelled one's ring in
    the class colour."""
    from qtpy.QtGui import QColor

    viewer = widget.viewer
    viewer.window._qt_window.resize(1400, 900)
    viewer.scene.camera.zoom = 0.8  # screen pixels per Å: the two candidates 400 px apart
    ring = np.array(QColor(widget.session.colour("ring")).getRgb()[:3], dtype=float)
    world = np.array([20.0, 20.0]) * 10 + np.asarray(widget.scene.image_layer.translate)[-2:]

    def ring_pixels() -> int:
        shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
        point = _canvas_pixel(widget, world)
        x, y = point.x(), point.y()
        near = shot[max(y - 60, 0) : y + 60, max(x - 60, 0) : x + 60]
        return int((np.abs(near - ring).max(axis=2) < 40).sum())

    assert widget.session.current.candidate_id == IDS[0]
    assert ring_pixels() == 0  # unlabelled: grey
    _press(widget, Qt.Key.Key_1)  # "ring"; the next candidate, IDS[1], is on the same slice
    assert widget.session.current.candidate_id == IDS[1] and viewer.dims.point[0] == 160 + float(
        widget.scene.image_layer.translate[0]
    )
    assert ring_pixels() > 20
