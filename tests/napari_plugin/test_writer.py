"""Points writers: STAR and CSV in Å, read back to the same places, ids and classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryoal_napari import get_reader
from cryoal_napari._writer import write_points_csv, write_points_star

from cryoal.io.coords import read_coords

Points = pytest.importorskip("napari.layers").Points


def _layer(**kwargs) -> Points:
    zyx_A = np.array([[105.0, 230.0, 412.5], [40.0, 80.0, 120.0], [300.0, 10.0, 0.0]])
    defaults = {
        "features": {
            "candidate_id": ["TS_01:000004", "TS_01:000007", "TS_01:000009"],
            "tomo_id": ["TS_01"] * 3,
            "class_name": ["ribosome", "proteasome", "ribosome"],
        },
        "units": ("angstrom",) * 3,
        "metadata": {
            "cryoal": {
                "voxel_size_A": 10.0,
                "class_colours": {"ribosome": "#1f77b4", "proteasome": "#ff7f0e"},
            }
        },
    }
    return Points(zyx_A, **{**defaults, **kwargs})


def _state(layer: Points) -> tuple[np.ndarray, dict]:
    data, state, _ = layer.as_layer_data_tuple()
    return data, state


@pytest.mark.parametrize("suffix", [".csv", ".star"])
def test_round_trip_keeps_angstrom_positions_ids_and_classes(tmp_path: Path, suffix: str) -> None:
    layer = _layer()
    path = tmp_path / f"picks{suffix}"
    writer = write_points_csv if suffix == ".csv" else write_points_star
    assert writer(str(path), *_state(layer)) == [str(path)]

    [(points, kwargs, kind)] = get_reader(str(path))(str(path))  # type: ignore[misc]
    assert kind == "points"
    world = np.asarray(points) * np.asarray(kwargs["scale"])  # Å, whatever the layer's unit
    np.testing.assert_allclose(world, layer.data, atol=1e-4)
    assert kwargs["features"]["candidate_id"] == ["TS_01:000004", "TS_01:000007", "TS_01:000009"]
    assert kwargs["features"]["tomo_id"] == ["TS_01"] * 3
    if suffix == ".csv":
        assert kwargs["features"]["class_name"] == ["ribosome", "proteasome", "ribosome"]
    else:  # RELION numbers classes in the project's order
        assert kwargs["features"]["class_name"] == ["1", "2", "1"]
        table = read_coords(path, voxel_size_A=10.0, class_names=["ribosome", "proteasome"])
        assert table["class_name"].tolist() == ["ribosome", "proteasome", "ribosome"]
        np.testing.assert_allclose(table[["z", "y", "x"]].to_numpy() * 10.0, layer.data, atol=1e-4)


def test_scale_translate_and_nm_units_become_angstrom(tmp_path: Path) -> None:
    layer = _layer(scale=(2.0, 2.0, 2.0), translate=(1.0, 0.0, 0.5), units=("nm",) * 3)
    write_points_csv(str(tmp_path / "p.csv"), *_state(layer))
    table = pd.read_csv(tmp_path / "p.csv")
    expected = (layer.data * 2.0 + np.array([1.0, 0.0, 0.5])) * 10.0  # nm -> Å
    np.testing.assert_allclose(table[["z_A", "y_A", "x_A"]].to_numpy(), expected, atol=1e-4)


def test_points_added_in_the_viewer_get_new_unique_ids(tmp_path: Path) -> None:
    layer = _layer()
    layer.add([[50.0, 50.0, 50.0]])  # napari copies the last features onto a new point
    layer.add([[60.0, 60.0, 60.0]])
    write_points_star(str(tmp_path / "p.star"), *_state(layer))
    table = read_coords(tmp_path / "p.star", voxel_size_A=10.0)
    assert table["candidate_id"].tolist() == [
        "TS_01:000004", "TS_01:000007", "TS_01:000009", "TS_01:000010", "TS_01:000011",
    ]  # fmt: skip


def test_unlabelled_points_and_unknown_units_or_voxel_size(tmp_path: Path) -> None:
    bare = Points(np.array([[1.0, 2.0, 3.0]]))  # pixel units, no cryoal metadata
    with pytest.raises(ValueError, match="not lengths; points are written in Å"):
        write_points_csv(str(tmp_path / "a.csv"), *_state(bare))
    in_A = Points(np.array([[1.0, 2.0, 3.0]]), units=("angstrom",) * 3, name="clicks")
    write_points_csv(str(tmp_path / "a.csv"), *_state(in_A))
    table = pd.read_csv(tmp_path / "a.csv")
    assert table.columns.tolist() == ["candidate_id", "tomo_id", "x_A", "y_A", "z_A"]
    assert table["candidate_id"].tolist() == ["clicks:000000"]
    with pytest.raises(ValueError, match="voxel size of layer 'clicks' is unknown"):
        write_points_star(str(tmp_path / "a.star"), *_state(in_A))
    assert not (tmp_path / "a.star").exists()


def test_a_points_layer_made_from_a_tomogram_layer_writes_star(tmp_path: Path) -> None:
    # napari's "New points layer" copies the active layer's scale and units
    layer = Points(ndim=3, scale=(10.0, 10.0, 10.0), units=("angstrom",) * 3, name="TS_01 - Points")
    layer.add([[3.0, 4.0, 5.0]])  # data coordinates: voxels
    write_points_star(str(tmp_path / "new.star"), *_state(layer))
    table = read_coords(tmp_path / "new.star", voxel_size_A=10.0)
    np.testing.assert_allclose(table[["z", "y", "x"]].to_numpy(), [[3.0, 4.0, 5.0]])
    assert table["candidate_id"].tolist() == ["TS_01:000000"]
    assert table["tomo_id"].tolist() == ["TS_01"]


def test_rotated_layers_are_refused(tmp_path: Path) -> None:
    layer = _layer(rotate=30.0)
    with pytest.raises(ValueError, match="rotated, sheared or has an affine"):
        write_points_csv(str(tmp_path / "r.csv"), *_state(layer))
    assert not (tmp_path / "r.csv").exists()
