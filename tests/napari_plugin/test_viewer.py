"""The readers in a real viewer (Qt, under Xvfb): what a person sees after opening files."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from cryoal_napari import _tomogram  # noqa: E402
from cryoal_napari._sample import make_sample_project  # noqa: E402

from cryoal.io.store import StoreWriter  # noqa: E402
from cryoal.project.project import Project  # noqa: E402


def test_project_opens_in_angstrom_with_rings_on_the_slice(
    make_napari_viewer, tmp_path: Path
) -> None:
    root = make_sample_project(tmp_path / "proj")
    viewer = make_napari_viewer(show=True)
    tomo, points = viewer.open(str(root), plugin="cryoal")

    assert viewer.dims.axis_labels == ("z", "y", "x")
    assert [str(u) for u in tomo.units] == ["angstrom"] * 3
    viewer.canvas.overlays["scale_bar"].visible = True
    overlay = viewer.window._qt_viewer.canvas._viewer_overlay_to_visual
    [scale_bar] = [v for k, v in overlay.items() if type(k).__name__ == "ScaleBarOverlay"]
    assert scale_bar[0].node.text.text.endswith("Å")
    # the contrast slider reaches well past the initial limits
    lo, hi = tomo.contrast_limits
    slider_lo, slider_hi = tomo.contrast_limits_range
    assert slider_hi - slider_lo > 2 * (hi - lo)

    # on the z plane through a candidate, its ring is drawn, and on planes a radius away
    z_A = float(points.data_to_world(points.data[0])[0])
    assert points.scale[0] == tomo.scale[0] == viewer.dims.range[0].step  # one slice
    viewer.dims.set_point(0, z_A)
    assert 0 in points._view_indices
    viewer.dims.set_point(0, z_A + 12 * 10.0 * 0.8)  # 0.8 box radius away: smaller ring
    assert 0 in points._view_indices
    viewer.dims.set_point(0, z_A + 12 * 10.0 * 1.5)
    assert 0 not in points._view_indices

    # the simulation's label volume: a Labels layer in the project's class colours
    [labels] = viewer.open(str(root / "sim" / "labels.mrc"), plugin="cryoal")
    assert type(labels).__name__ == "Labels"
    with Project.open(root) as project:
        classes = project.config.classes
    rgba = labels.colormap.map(np.array([1, 2]))
    for colour, cls in zip(rgba, classes, strict=True):
        assert "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in colour[:3])) == cls.colour
    assert labels.features["class_name"].tolist() == ["background", *(c.name for c in classes)]


def test_sample_data_opens_the_sample_project(
    make_napari_viewer, tmp_path: Path, monkeypatch
) -> None:
    root = make_sample_project(tmp_path / "sample")
    monkeypatch.setattr("cryoal_napari._sample.sample_root", lambda: root)
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("cryoal", "project")
    assert [layer.name for layer in viewer.layers] == ["sim_tomo", "candidates sim_tomo"]
    assert viewer.layers["candidates sim_tomo"].metadata["cryoal"]["project"] == str(root.resolve())


def test_store_shows_the_current_sample_id_and_class(make_napari_viewer, tmp_path: Path) -> None:
    path = tmp_path / "subtomos.h5"
    with StoreWriter(path, box=8, voxel_size_A=10.0, class_names=["ribosome", "empty"]) as w:
        w.append(
            np.random.default_rng(0).normal(size=(3, 8, 8, 8)),
            ["a:0", "a:1", "a:2"],
            labels=[0, 1, -1],
        )
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="cryoal")
    viewer.dims.set_point(0, 1)
    assert viewer.canvas.overlays["text"].visible
    assert viewer.canvas.overlays["text"].text.endswith("a:1 · empty")
    viewer.dims.set_point(0, 2)
    assert viewer.canvas.overlays["text"].text.endswith("a:2 · unlabelled")


def test_large_tomogram_shows_its_coarsest_level_in_3d(
    make_napari_viewer, tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "big.mrc"
    with mrcfile.new_mmap(str(path), shape=(32, 128, 128), mrc_mode=2) as m:
        m.voxel_size = 10.0
        m.data[:] = np.random.default_rng(0).normal(size=(32, 128, 128)).astype(np.float32)
    monkeypatch.setattr(_tomogram, "MULTISCALE_BYTES", 1_000_000)  # the file is 2 MB
    monkeypatch.setattr("cryoal_napari._multiscale.COARSEST_LEVEL_BYTES", 40_000)
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(str(path), plugin="cryoal")
    assert layer.multiscale and [tuple(s) for s in layer.level_shapes] == [
        (32, 128, 128), (16, 64, 64), (8, 32, 32),
    ]  # fmt: skip
    viewer.dims.ndisplay = 3
    assert layer.data_level == 2
    shown = np.asarray(layer._slice.image.raw)
    assert shown.shape == (8, 32, 32)
    np.testing.assert_allclose(shown, np.asarray(layer.data[2]), atol=1e-6)
