"""Render the labelling widget on a simulated project to PNGs for the README.

Usage (needs a display; on a headless machine run it under Xvfb)::

    xvfb-run -a .venv/bin/python scripts/render_widget.py [--out docs/images]

Builds a project in a temporary folder exactly as a lab would (a simulated 64×160×160
tomogram at 10 Å with 40 particles of 2 classes, its picks as candidates, a random round 0
labelled from the simulation's truth, tiny teacher + student trained for 5 epochs, a ``kt``
round 1), then opens it with ``cryoal_napari._widget.open_project``, labels three
candidates through the widget, narrows the queue to the unlabelled ones sorted by the
model's confidence and saves the whole window in 2D (``label_2d.png``; the model's class
probabilities, the queue's filters and the label counts on screen) and 3D
(``label_3d.png``); then a segment project (masks of round 0 cut from the simulation's
label volume, a tiny segmenter, a KT-MSE round 1) with its first crop's proposed mask open
for correction (``label_mask.png``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]


def build_project(tmp: Path) -> Path:
    """A simulated project with a trained round 1 queue; returns its folder."""
    from cryoal.project.candidates import import_picks
    from cryoal.project.project import Project
    from cryoal.project.suggest import suggest
    from cryoal.project.training import train_project
    from cryoal.sim.tomograms import simulate_tomogram

    sim = simulate_tomogram(
        tmp / "sim", shape_zyx=(64, 160, 160), n_particles=40, n_classes=2, snr=0.5, seed=3
    )
    truth = pd.read_csv(sim.ground_truth)
    names = sorted(set(truth["class_name"]))
    root = tmp / "myproj"
    project = Project.init(root, names, box=24)
    project.add_tomogram(sim.tomogram, "sim_tomo")
    import_picks(project, sim.star)
    first = suggest(project, strategy="random", k=16, seed=1)
    tree = cKDTree(truth[["z", "y", "x"]].to_numpy())
    queue = project.labels.queue(first.round, include_labelled=True)
    _, nearest = tree.query(queue[["z", "y", "x"]].to_numpy())
    project.labels.add_labels(
        queue["candidate_id"].tolist(), truth["class_name"].to_numpy()[nearest].tolist(), "expert"
    )
    overrides = {"teacher_preset": "tiny", "student_preset": "tiny", "epochs": 5}
    train_project(project, overrides=overrides)
    suggest(project, strategy="kt", k=12)
    project.close()
    return root


def build_segment_project(tmp: Path) -> Path:
    """A simulated segment project: the same kind of tomogram, masks of a random round 0
    cut from the simulation's label volume, a tiny segmenter trained on them (60 epochs) and a KT-MSE
    round 1 with the model's proposals; returns its folder."""
    import mrcfile

    from cryoal.project.candidates import import_picks
    from cryoal.project.project import Project
    from cryoal.project.suggest import suggest
    from cryoal.project.training import train_project
    from cryoal.sim.tomograms import simulate_tomogram

    sim = simulate_tomogram(
        tmp / "simseg", shape_zyx=(64, 160, 160), n_particles=40, n_classes=2, snr=0.5, seed=4
    )
    names = sorted(set(pd.read_csv(sim.ground_truth)["class_name"]))
    root = tmp / "myseg"
    box = 24
    project = Project.init(root, names, box=box, task="segment")
    project.add_tomogram(sim.tomogram, "sim_tomo")
    import_picks(project, sim.star)
    first = suggest(project, strategy="random", k=16, seed=1)
    with mrcfile.open(sim.labels, permissive=True) as mrc:
        labels = np.asarray(mrc.data)
    pad = np.pad(labels, box, constant_values=0)
    for row in project.labels.queue(first.round).itertuples():
        z, y, x = (int(round(v)) + box - box // 2 for v in (row.z, row.y, row.x))
        project.labels.add_mask(row.candidate_id, pad[z : z + box, y : y + box, x : x + box],
                                "expert")  # fmt: skip
    overrides = {"teacher_preset": "tiny", "student_preset": "tiny", "epochs": 60,
                 "batch_size": 4}  # fmt: skip
    train_project(project, overrides=overrides)
    suggest(project, strategy="kt", k=12)
    project.close()
    return root


def render_segment(root: Path, out: Path) -> Path:
    """The mask of a crop being corrected (``label_mask.png``)."""
    import napari
    from cryoal_napari._widget import open_project
    from napari.settings import get_settings
    from PIL import Image

    get_settings().application.gui_notification_level = "none"
    viewer = napari.Viewer(show=True, title="cryoal label myseg")
    viewer.window._qt_window.resize(1500, 950)
    widget = open_project(viewer, root)
    current = widget.session.current
    widget.masks.choose_label(1)
    viewer.scene.camera.zoom = 3.0  # the crop fills the view
    viewer.scene.camera.center = tuple(
        float(v)
        for v in current.zyx * widget.session.voxel_size_A
        + np.asarray(widget.scene.image_layer.translate)
    )
    _close_notifications(viewer)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "label_mask.png"
    Image.fromarray(np.asarray(viewer.screenshot(canvas_only=False, flash=False))).save(path)
    widget.close()
    viewer.close()
    return path


def render(root: Path, out: Path) -> list[Path]:
    import napari
    from cryoal_napari._widget import open_project
    from napari.settings import get_settings
    from PIL import Image

    get_settings().application.gui_notification_level = "none"
    viewer = napari.Viewer(show=True, title="cryoal label myproj")
    viewer.window._qt_window.resize(1500, 950)
    widget = open_project(viewer, root)
    widget.annotator_edit.setText("alice")
    widget.annotator_edit.editingFinished.emit()
    names = widget.session.class_names
    for value in (names[0], names[1], "unsure"):  # three decisions through the widget
        widget.label(value)
    # the queue narrowed to what is left, the model's least sure first
    for combo, text in ((widget.show_combo, "show: unlabelled"),
                        (widget.sort_combo, "sort: confidence")):  # fmt: skip
        combo.setCurrentIndex(combo.findText(text))
        combo.activated.emit(combo.currentIndex())
    widget.session.jump(widget.session.queue["candidate_id"].iloc[1])
    widget._redraw()
    viewer.scene.camera.zoom = 1.0  # screen pixels per Å
    _close_notifications(viewer)
    written = []
    out.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    written.append(out / "label_2d.png")
    Image.fromarray(np.asarray(shot)).save(written[-1])
    viewer.dims.ndisplay = 3
    widget._redraw()
    viewer.scene.camera.angles = (0.0, 35.0, 60.0)
    viewer.scene.camera.zoom = 0.45
    shot = viewer.screenshot(canvas_only=False, flash=False)
    written.append(out / "label_3d.png")
    Image.fromarray(np.asarray(shot)).save(written[-1])
    widget.close()
    viewer.close()
    return written


def _close_notifications(viewer) -> None:  # noqa: ANN001
    """Close napari's start-up toasts so they do not cover the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = build_project(Path(tmp))
        for path in render(root, args.out):
            print(f"wrote {path}")
        print(f"wrote {render_segment(build_segment_project(Path(tmp)), args.out)}")


if __name__ == "__main__":
    main()
