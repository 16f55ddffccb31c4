"""CZ cryoET Data Portal point ndjson and ``.coords`` files read into the canonical table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryoal.io.coords import read_coords, scan_coords
from cryoal.io.point_text import object_from_ndjson_name


def _write_ndjson(path: Path, xyz: np.ndarray, *, oriented: bool = False) -> Path:
    lines = []
    for x, y, z in xyz:
        doc: dict[str, object] = {"type": "point", "location": {"x": x, "y": y, "z": z}}
        if oriented:
            doc["type"] = "orientedPoint"
            doc["xyz_rotation_matrix"] = np.eye(3).tolist()
        lines.append(json.dumps(doc))
    path.write_text("\n".join(lines) + "\n\n")  # the portal's files end in a newline
    return path


def test_portal_points_become_zyx_voxels_of_the_tomogram(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    xyz = rng.uniform(0, 200, (7, 3)).round(3)
    path = _write_ndjson(tmp_path / "cytosolic_ribosome-1.0_point.ndjson", xyz)
    table = read_coords(path, tomo_id="TS_5_4", voxel_size_A=10.012)
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), xyz)
    assert list(table["tomo_id"].unique()) == ["TS_5_4"]
    # the class comes from the portal's file name <object>-<version>_point.ndjson
    assert set(table["class_name"]) == {"cytosolic_ribosome"}
    assert table["candidate_id"].is_unique


def test_points_at_another_voxel_spacing_are_scaled(tmp_path: Path) -> None:
    # annotation at 4.99 Å per voxel, tomogram at 9.98 Å: voxel indices halve
    xyz = np.array([[100.0, 50.0, 20.0], [8.0, 6.0, 4.0]])
    path = _write_ndjson(tmp_path / "pp7_vlp-1.0_orientedpoint.ndjson", xyz, oriented=True)
    table = read_coords(path, tomo_id="TS", voxel_size_A=9.98, coords_pixel_size_A=4.99)
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), xyz / 2)
    assert set(table["class_name"]) == {"pp7_vlp"}


def test_ndjson_agrees_with_copick_angstrom(tmp_path: Path) -> None:
    # copick's portal reader multiplies the ndjson locations by the voxel spacing
    spacing = 10.012
    vox = np.array([[12.5, 300.25, 90.0], [600.0, 1.0, 170.5]])
    ndjson = _write_ndjson(tmp_path / "ferritin_complex-1.0_point.ndjson", vox)
    models = pytest.importorskip("copick.models")  # the copick file through copick's model
    copick = tmp_path / "apo-ferritin.json"
    picks = models.CopickPicksFile(
        pickable_object_name="apo-ferritin",
        user_id="curation",
        session_id="0",
        run_name="TS_5_4",
        points=[
            models.CopickPoint(
                location=models.CopickLocation(**dict(zip("xyz", p * spacing, strict=True)))
            )
            for p in vox
        ],
    )
    copick.write_text(json.dumps(picks.model_dump()))
    a = read_coords(ndjson, tomo_id="TS_5_4", voxel_size_A=spacing)
    b = read_coords(copick, voxel_size_A=spacing)
    np.testing.assert_allclose(a[["z", "y", "x"]].to_numpy(), b[["z", "y", "x"]].to_numpy())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2 is not JSON"),
        ('{"type": "point", "location": {"x": 1, "y": 2}}', "line 2 lacks a numeric location"),
        ('{"type": "segmentationMask", "location": {"x": 1, "y": 2, "z": 3}}', "type 'segm"),
        ('{"type": "point", "location": {"x": 1, "y": 2, "z": NaN}}', "line 2: non-finite"),
        ("[1, 2, 3]", "line 2 is not a JSON object"),
    ],
)
def test_bad_ndjson_line_is_named(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text('{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}\n' + line + "\n")
    with pytest.raises(ValueError, match=expected) as info:
        read_coords(path, tomo_id="T", voxel_size_A=10.0)
    assert str(path) in str(info.value)


def test_ndjson_without_a_tomogram_id_asks_for_one(tmp_path: Path) -> None:
    path = _write_ndjson(tmp_path / "a.ndjson", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="give the tomogram id"):
        read_coords(path, voxel_size_A=10.0)


def test_coords_text_is_x_y_z_voxels(tmp_path: Path) -> None:
    path = tmp_path / "IS002_291013_008.coords"
    path.write_text("# picked in IMOD\n 1058\t 1543  101\n\n  12.5 7 3.25 \n")
    raw = scan_coords(path)
    assert raw.format == "coords" and raw.kind == "pixel" and raw.class_names is None
    table = read_coords(path, tomo_id="IS002_291013_008", voxel_size_A=2.2764)
    np.testing.assert_allclose(
        table[["z", "y", "x"]].to_numpy(), [[101.0, 1543.0, 1058.0], [3.25, 7.0, 12.5]]
    )


@pytest.mark.parametrize("line", ["1 2", "1 2 3 4", "1 two 3"])
def test_bad_coords_line_is_named(tmp_path: Path, line: str) -> None:
    path = tmp_path / "t.coords"
    path.write_text(f"1 2 3\n{line}\n")
    with pytest.raises(ValueError, match=r"line 2 .* is not 'x y z'"):
        read_coords(path, tomo_id="t")


def test_portal_file_names() -> None:
    assert object_from_ndjson_name("a/b/beta_galactosidase-2.0_point.ndjson") == (
        "beta_galactosidase"
    )
    assert object_from_ndjson_name("thyroglobulin-1.0_orientedpoint.ndjson") == "thyroglobulin"
    assert object_from_ndjson_name("picks.ndjson") is None
    assert object_from_ndjson_name("ribosome-final_point.ndjson") is None
