"""cryoal.io.coords: RELION 3/4/5 STAR, CSV and copick <-> the canonical zyx-voxel table."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoal.io.coords import (
    TomogramGeometry,
    check_copick_name,
    read_coords,
    read_copick_picks,
    read_tomograms_star,
    relion_euler_matrix,
    scan_coords,
    summarize_coords,
    write_copick_picks,
    write_csv,
    write_star,
    xyz_A_to_zyx_voxels,
    zyx_voxels_to_xyz_A,
)


def _star(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "candidate_id": ["TS_01:000000", "TS_01:000001", "TS_02:000000"],
            "tomo_id": ["TS_01", "TS_01", "TS_02"],
            "z": [10.0, 0.0, 49.5],
            "y": [20.25, 99.0, 3.0],
            "x": [30.5, 0.0, 199.0],
            "class_name": ["ribosome", "proteasome", "ribosome"],
        }
    )


@pytest.fixture
def geoms() -> dict[str, TomogramGeometry]:
    return {
        "TS_01": TomogramGeometry((50, 100, 200), 10.0),
        "TS_02": TomogramGeometry((51, 101, 201), 10.0),
    }


# -- the one conversion --------------------------------------------------------------------
def test_conversion_hand_computed_both_ways() -> None:
    # x = 250 Å, y = 100 Å, z = 35 Å at 10 Å/voxel -> (z, y, x) = (3.5, 10, 25) voxels
    zyx = xyz_A_to_zyx_voxels(np.array([[250.0, 100.0, 35.0]]), 10.0)
    np.testing.assert_allclose(zyx, [[3.5, 10.0, 25.0]])
    np.testing.assert_allclose(zyx_voxels_to_xyz_A(zyx, 10.0), [[250.0, 100.0, 35.0]])
    # per-row voxel sizes
    np.testing.assert_allclose(
        xyz_A_to_zyx_voxels(np.array([[10.0, 20.0, 30.0]] * 2), np.array([10.0, 5.0])),
        [[3.0, 2.0, 1.0], [6.0, 4.0, 2.0]],
    )
    with pytest.raises(ValueError, match="positive"):
        xyz_A_to_zyx_voxels(np.zeros((1, 3)), 0.0)


def test_relion_euler_matrix_matches_hand_computed() -> None:
    # rot = 90°, tilt = psi = 0: RELION's A = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]
    np.testing.assert_allclose(
        relion_euler_matrix([90.0], [0.0], [0.0])[0], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12
    )
    # tilt = 90°: A = [[0, 0, -1], [0, 1, 0], [1, 0, 0]]
    np.testing.assert_allclose(
        relion_euler_matrix([0.0], [90.0], [0.0])[0], [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12
    )
    m = relion_euler_matrix(*np.random.default_rng(0).uniform(-180, 180, (3, 5)))
    np.testing.assert_allclose(
        m @ m.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12
    )


# -- RELION 3/4 ------------------------------------------------------------------------------
RELION4 = """
# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnTomoTiltSeriesPixelSize #3
1 opticsGroup1 2.5
2 opticsGroup2 1.25

# version 30001

data_particles

loop_
_rlnTomoName #1
_rlnCoordinateX #2
_rlnCoordinateY #3
_rlnCoordinateZ #4
_rlnOriginXAngst #5
_rlnOriginYAngst #6
_rlnOriginZAngst #7
_rlnOpticsGroup #8
_rlnClassNumber #9
TS_01 100.0 40.0 8.0 5.0 0.0 -10.0 1 2
TS_01 16.0 16.0 16.0 0.0 0.0 0.0 2 1
TS_02 4.0 8.0 12.0 0.0 0.0 0.0 1 1
"""


def test_relion4_hand_computed(tmp_path: Path) -> None:
    path = _star(tmp_path / "r4.star", RELION4)
    df = read_coords(path, voxel_size_A=10.0, class_names=["ribosome", "proteasome"])
    # RELION: position_A = coord * rlnTomoTiltSeriesPixelSize - origin_A; voxel = position / 10 Å
    # row 0: x = 100*2.5 - 5 = 245 Å -> 24.5; y = 40*2.5 - 0 = 100 Å -> 10; z = 8*2.5 + 10 = 30 Å -> 3
    # row 1 (optics group 2, 1.25 Å): 16*1.25 = 20 Å -> 2 voxels on every axis
    # row 2: x = 4*2.5 = 10 Å -> 1, y = 20 Å -> 2, z = 30 Å -> 3
    np.testing.assert_allclose(
        df[["z", "y", "x"]], [[3.0, 10.0, 24.5], [2.0, 2.0, 2.0], [3.0, 2.0, 1.0]]
    )
    assert df["tomo_id"].tolist() == ["TS_01", "TS_01", "TS_02"]
    # no rlnTomoParticleName: ids are "<tomo>:<rank within tomogram>"
    assert df["candidate_id"].tolist() == ["TS_01:000000", "TS_01:000001", "TS_02:000000"]
    assert df["class_name"].tolist() == ["proteasome", "ribosome", "ribosome"]
    only = read_coords(path, voxel_size_A=10.0, tomo_id="TS_02")
    assert only["candidate_id"].tolist() == ["TS_02:000000"]  # ids stable under selection
    assert only["class_name"].tolist() == ["1"]  # rlnClassNumber without names


def test_relion4_needs_target_voxel_size(tmp_path: Path) -> None:
    path = _star(tmp_path / "r4.star", RELION4)
    with pytest.raises(ValueError, match=r"pixels of \[1\.25, 2\.5\] Å.*--voxel-size"):
        read_coords(path)


def test_relion4_subtomogram_rotation_applies_to_origin(tmp_path: Path) -> None:
    path = _star(
        tmp_path / "rot.star",
        """data_optics
loop_
_rlnOpticsGroup
_rlnTomoTiltSeriesPixelSize
1 10.0
data_particles
loop_
_rlnTomoName
_rlnCoordinateX
_rlnCoordinateY
_rlnCoordinateZ
_rlnOriginXAngst
_rlnOriginYAngst
_rlnOriginZAngst
_rlnTomoSubtomogramRot
_rlnTomoSubtomogramTilt
_rlnTomoSubtomogramPsi
_rlnOpticsGroup
T 10 10 10 5.0 0.0 0.0 90 0 0 1
""",
    )
    df = read_coords(path, voxel_size_A=10.0)
    # A(rot=90) @ (5, 0, 0) = (0, -5, 0) Å; position = 100 Å - A·o -> x = 100, y = 105, z = 100 Å
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy()[0], [10.0, 10.5, 10.0])


def test_relion3_single_block_micrograph_name_and_pixel_origin(tmp_path: Path) -> None:
    path = _star(
        tmp_path / "r3.star",
        """
data_

loop_
_rlnMicrographName #1
_rlnCoordinateX #2
_rlnCoordinateY #3
_rlnCoordinateZ #4
_rlnOriginX #5
_rlnOriginY #6
_rlnOriginZ #7
Tomograms/TS_07.mrc 30.0 20.0 10.0 1.0 -2.0 0.5
Tomograms/TS_07.mrc 3.0 2.0 1.0 0.0 0.0 0.0
""",
    )
    df = read_coords(path)  # no pixel size anywhere: the pixels are the tomogram's voxels
    # RELION 3.0 pixel origins subtract: (30 - 1, 20 + 2, 10 - 0.5) -> zyx (9.5, 22, 29)
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy()[0], [9.5, 22.0, 29.0])
    assert set(df["tomo_id"]) == {"TS_07"}  # stem of rlnMicrographName
    # With the tomogram's voxel size known the result is the same (pixel = voxel).
    np.testing.assert_allclose(
        read_coords(path, voxel_size_A=7.0)[["z", "y", "x"]], df[["z", "y", "x"]]
    )
    # Picks made on a 4x finer grid: --coords-pixel-size scales them.
    fine = read_coords(path, voxel_size_A=8.0, coords_pixel_size_A=2.0)
    np.testing.assert_allclose(fine[["z", "y", "x"]].to_numpy()[1], [0.25, 0.5, 0.75])


# -- RELION 5 --------------------------------------------------------------------------------
RELION5 = """
data_general

_rlnTomoSubTomosAre2DStacks 1

data_optics

loop_
_rlnOpticsGroup
_rlnTomoTiltSeriesPixelSize
1 2.5

data_particles

loop_
_rlnTomoName
_rlnTomoParticleName
_rlnCenteredCoordinateXAngst
_rlnCenteredCoordinateYAngst
_rlnCenteredCoordinateZAngst
_rlnOriginXAngst
_rlnOriginYAngst
_rlnOriginZAngst
_rlnOpticsGroup
TS_01 TS_01/1 0.0 0.0 0.0 0.0 0.0 0.0 1
TS_01 TS_01/2 -995.0 -500.0 230.0 0.0 0.0 0.0 1
TS_02 TS_02/1 100.0 0.0 -5.0 20.0 0.0 -5.0 1
"""


def test_relion5_hand_computed(tmp_path: Path, geoms: dict[str, TomogramGeometry]) -> None:
    path = _star(tmp_path / "r5.star", RELION5)
    df = read_coords(path, tomograms=geoms)
    # RELION 5: pixel = centred_A / pixel_size + size / 2 (float division, no (size - 1) / 2)
    # TS_01 is (z, y, x) = (50, 100, 200) at 10 Å:
    #   row 0: centre -> (25, 50, 100)
    #   row 1: x = -995/10 + 100 = 0.5; y = -500/10 + 50 = 0; z = 230/10 + 25 = 48
    # TS_02 is (51, 101, 201) (odd sizes: size/2 = 25.5, 50.5, 100.5):
    #   row 2: x = (100 - 20)/10 + 100.5 = 108.5; y = 50.5; z = (-5 + 5)/10 + 25.5 = 25.5
    np.testing.assert_allclose(
        df[["z", "y", "x"]], [[25.0, 50.0, 100.0], [48.0, 0.0, 0.5], [25.5, 50.5, 108.5]]
    )
    assert df["candidate_id"].tolist() == ["TS_01/1", "TS_01/2", "TS_02/1"]


def test_relion5_binned_tomogram_uses_its_own_geometry(tmp_path: Path) -> None:
    path = _star(tmp_path / "r5.star", RELION5)
    # The same particles in a 2x binned TS_01 of (25, 50, 100) at 20 Å: row 1 lands at
    # x = -995/20 + 50 = 0.25, y = -500/20 + 25 = 0, z = 230/20 + 12.5 = 24.
    df = read_coords(
        path, tomo_id="TS_01", tomograms={"TS_01": TomogramGeometry((25, 50, 100), 20.0)}
    )
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy()[1], [24.0, 0.0, 0.25])


def test_relion5_without_tomogram_size_is_an_error(tmp_path: Path, geoms) -> None:
    path = _star(tmp_path / "r5.star", RELION5)
    with pytest.raises(
        ValueError, match=r"r5\.star: RELION 5 centred coordinates of tomogram 'TS_02'"
    ):
        read_coords(path, tomograms={"TS_01": geoms["TS_01"]})
    with pytest.raises(ValueError, match="need its size.*TS_01.mrc"):
        read_coords(path, voxel_size_A=10.0)  # a voxel size alone is not enough


def test_relion5_file_round_trip_keeps_values(tmp_path: Path, geoms) -> None:
    src = _star(tmp_path / "r5.star", RELION5.replace("20.0 0.0 -5.0", "0.0 0.0 0.0"))
    out = write_star(
        read_coords(src, tomograms=geoms),
        tmp_path / "out.star",
        voxel_size_A=None,
        version=5,
        tomograms=geoms,
    )
    a = starfile.read(src)["particles"]
    b = starfile.read(out)["particles"]
    cols = [
        "rlnCenteredCoordinateXAngst",
        "rlnCenteredCoordinateYAngst",
        "rlnCenteredCoordinateZAngst",
    ]
    np.testing.assert_allclose(b[cols].to_numpy(), a[cols].to_numpy(), atol=1e-6)
    assert b["rlnTomoParticleName"].tolist() == a["rlnTomoParticleName"].tolist()


# -- table -> file -> table -----------------------------------------------------------------
def test_star4_round_trip(tmp_path: Path, table: pd.DataFrame) -> None:
    path = write_star(table, tmp_path / "p.star", voxel_size_A=10.0)
    back = read_coords(path, voxel_size_A=10.0, class_names=["proteasome", "ribosome"])
    pd.testing.assert_frame_equal(back, table)
    # With the tilt-series pixel size stated, coordinates are written in those pixels.
    path = write_star(
        table, tmp_path / "ts.star", voxel_size_A=10.0, coords_pixel_size_A=2.5, overwrite=True
    )
    raw = starfile.read(path)["particles"]
    assert raw["rlnCoordinateX"].iloc[0] == pytest.approx(30.5 * 10 / 2.5)
    back = read_coords(path, voxel_size_A=10.0, class_names=["proteasome", "ribosome"])
    np.testing.assert_allclose(back[["z", "y", "x"]], table[["z", "y", "x"]], atol=1e-5)


def test_star5_round_trip(tmp_path: Path, table: pd.DataFrame, geoms) -> None:
    path = write_star(table, tmp_path / "p5.star", voxel_size_A=None, version=5, tomograms=geoms)
    raw = starfile.read(path)["particles"]
    # hand check: TS_01 row 0 x = 30.5 voxels -> (30.5 - 200/2) * 10 = -695 Å
    assert raw["rlnCenteredCoordinateXAngst"].iloc[0] == pytest.approx(-695.0)
    back = read_coords(path, tomograms=geoms, class_names=["proteasome", "ribosome"])
    pd.testing.assert_frame_equal(back, table)
    with pytest.raises(ValueError, match="size of tomogram 'TS_02'"):
        write_star(
            table,
            tmp_path / "x.star",
            voxel_size_A=10.0,
            version=5,
            tomograms={"TS_01": geoms["TS_01"]},
        )
    assert not (tmp_path / "x.star").exists()


@pytest.mark.parametrize("unit", ["angstrom", "pixel"])
def test_csv_round_trip(tmp_path: Path, table: pd.DataFrame, unit: str) -> None:
    path = write_csv(table, tmp_path / "p.csv", unit=unit, voxel_size_A=10.0)
    text = path.read_text().splitlines()
    cols = "x_A,y_A,z_A" if unit == "angstrom" else "x_px,y_px,z_px"
    assert text[0] == f"candidate_id,tomo_id,{cols},class_name"
    assert text[1].split(",")[2] == ("305.000000" if unit == "angstrom" else "30.500000")
    back = read_coords(path, voxel_size_A=10.0)  # the columns carry the unit
    pd.testing.assert_frame_equal(back, table)
    pd.testing.assert_frame_equal(read_coords(path, unit=unit, voxel_size_A=10.0), table)
    other = "pixel" if unit == "angstrom" else "angstrom"
    with pytest.raises(ValueError, match=f"p\\.csv: csv coordinates are in {unit} by its column"):
        read_coords(path, unit=other, voxel_size_A=10.0)


def test_copick_round_trip(tmp_path: Path, table: pd.DataFrame) -> None:
    pytest.importorskip("copick")  # copick files go through copick's model; CI installs it
    one = table[table["tomo_id"] == "TS_01"].reset_index(drop=True)
    path = write_copick_picks(
        one,
        tmp_path / "p.json",
        voxel_size_A=10.0,
        object_name="ribosome",
        user_id="alice",
        session_id="0",
    )
    doc = json.loads(path.read_text())
    assert doc["run_name"] == "TS_01" and doc["unit"] == "angstrom"
    assert doc["points"][0]["location"] == {"x": 305.0, "y": 202.5, "z": 100.0}
    back = read_copick_picks(path, voxel_size_A=10.0)
    np.testing.assert_allclose(back[["z", "y", "x"]], one[["z", "y", "x"]])
    assert set(back["class_name"]) == {"ribosome"} and set(back["tomo_id"]) == {"TS_01"}
    with pytest.raises(ValueError, match="one run"):
        write_copick_picks(
            table,
            tmp_path / "all.json",
            voxel_size_A=10.0,
            object_name="r",
            user_id="a",
            session_id="0",
        )


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 400)] * 3),
    vs=st.floats(0.5, 40.0),
    frac=st.lists(st.tuples(*[st.floats(0.0, 1.0)] * 3), min_size=1, max_size=6),
)
def test_star5_round_trip_property(tmp_path_factory, shape, vs, frac) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    zyx = np.array(frac) * (np.array(shape) - 1)
    df = pd.DataFrame(
        {
            "candidate_id": [f"T:{i}" for i in range(len(zyx))],
            "tomo_id": "T",
            "z": zyx[:, 0],
            "y": zyx[:, 1],
            "x": zyx[:, 2],
        }
    )
    g = {"T": TomogramGeometry(shape, vs)}
    back = read_coords(
        write_star(df, tmp / "p.star", voxel_size_A=None, version=5, tomograms=g), tomograms=g
    )
    np.testing.assert_allclose(back[["z", "y", "x"]], zyx, atol=1e-6 * max(shape) + 1e-5)


# -- errors ---------------------------------------------------------------------------------
def test_csv_unit_is_never_guessed(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("x,y,z,tomo_id\n1,2,3,T\n")
    with pytest.raises(
        ValueError, match=r"c\.csv: the unit of x, y, z is not stated.*--coords-unit"
    ):
        read_coords(path, voxel_size_A=10.0)
    with pytest.raises(ValueError, match="need the voxel size of tomogram 'T'"):
        read_coords(path, unit="angstrom")
    np.testing.assert_allclose(read_coords(path, unit="pixel")[["z", "y", "x"]], [[3, 2, 1]])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.star: coordinate file not found"):
        read_coords(tmp_path / "nope.star")
    bad = _star(tmp_path / "bad.star", "data_particles\nloop_\n_rlnTomoName\n_rlnAngleRot\nT 1\n")
    with pytest.raises(ValueError, match=r"bad\.star: no particle coordinates.*rlnAngleRot"):
        read_coords(bad)
    empty = _star(tmp_path / "empty.star", "just text\n")
    with pytest.raises(ValueError, match="no data blocks"):
        read_coords(empty)
    (tmp_path / "c.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="unknown coordinate format '.txt'"):
        read_coords(tmp_path / "c.txt")
    nocol = tmp_path / "n.csv"
    nocol.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"lacks coordinate columns; expected x_A, y_A, z_A"):
        read_coords(nocol, unit="pixel", tomo_id="T")
    text = tmp_path / "t.csv"
    text.write_text("x,y,z\n1,two,3\n")
    with pytest.raises(ValueError, match="non-numeric"):
        read_coords(text, unit="pixel", tomo_id="T")
    dup = tmp_path / "d.csv"
    dup.write_text("candidate_id,x,y,z\na,1,2,3\na,4,5,6\n")
    with pytest.raises(ValueError, match="candidate id 'a' occurs more than once"):
        read_coords(dup, unit="pixel", tomo_id="T")
    with pytest.raises(ValueError, match="does not name tomograms"):
        read_coords(dup, unit="pixel")


def test_unknown_tomo_id_lists_available(tmp_path: Path) -> None:
    path = _star(tmp_path / "r4.star", RELION4)
    with pytest.raises(
        ValueError, match=r"no coordinates for tomogram 'TS_09'.*\['TS_01', 'TS_02'\]"
    ):
        read_coords(path, voxel_size_A=10.0, tomo_id="TS_09")


def test_wrong_unit_for_format_is_rejected(tmp_path: Path, geoms) -> None:
    path = _star(tmp_path / "r5.star", RELION5)
    with pytest.raises(ValueError, match="by the format's definition"):
        read_coords(path, unit="pixel", tomograms=geoms)


def test_coordinates_outside_the_tomogram_warn(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("x,y,z\n1000,2,3\n1,2,3\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_coords(
            path, unit="pixel", tomo_id="T", tomograms={"T": TomogramGeometry((10, 10, 10), 5.0)}
        )
    assert any("1 of 2 coordinates lie outside tomogram 'T'" in str(w.message) for w in caught)


def test_writers_refuse_to_overwrite(tmp_path: Path, table: pd.DataFrame) -> None:
    path = write_csv(table, tmp_path / "p.csv", voxel_size_A=10.0)
    with pytest.raises(FileExistsError):
        write_csv(table, path, voxel_size_A=10.0)
    with pytest.raises(ValueError, match="voxel size of tomogram 'TS_01' unknown"):
        write_star(table, tmp_path / "q.star", voxel_size_A=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


def test_scan_and_summary(tmp_path: Path) -> None:
    raw = scan_coords(_star(tmp_path / "r4.star", RELION4))
    assert raw.format == "relion-3/4" and raw.kind == "pixel"
    np.testing.assert_allclose(raw.pixel_size_A, [2.5, 1.25, 2.5])
    counts = summarize_coords(raw)
    assert counts.to_dict("records") == [
        {"tomo_id": "TS_01", "class_name": "1", "count": 1},
        {"tomo_id": "TS_01", "class_name": "2", "count": 1},
        {"tomo_id": "TS_02", "class_name": "1", "count": 1},
    ]


# -- CSV unit in the column names (issue 14, item 14) -----------------------------------
def test_csv_unit_columns_are_read_without_a_unit(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("tomo_id,X_A,Y_A,Z_A\nTS_01,305,202.5,100\n")  # any case
    back = read_coords(path, voxel_size_A=10.0)
    np.testing.assert_allclose(back[["z", "y", "x"]].to_numpy(), [[10.0, 20.25, 30.5]])
    path.write_text("tomo_id,z_px,y_px,x_px\nTS_01,10,20.25,30.5\n")  # any column order
    back = read_coords(path, voxel_size_A=10.0)
    np.testing.assert_allclose(back[["z", "y", "x"]].to_numpy(), [[10.0, 20.25, 30.5]])
    # cryoal's own candidates.csv has voxel z, y, x beside x_A, y_A, z_A: Å columns win
    path.write_text("candidate_id,tomo_id,z,y,x,x_A,y_A,z_A\nTS_01:0,TS_01,1,2,3,30,20,10\n")
    np.testing.assert_allclose(read_coords(path, voxel_size_A=10.0)[["z", "y", "x"]], [[1, 2, 3]])
    path.write_text("tomo_id,x_A,y_A\nTS_01,1,2\n")
    with pytest.raises(ValueError, match=r"c\.csv: CSV has \['x_A', 'y_A'\] but lacks \['z_A'\]"):
        read_coords(path, voxel_size_A=10.0)


# -- RELION 5: the picks' own tomogram size (issue 14, item 8) -------------------------
def test_relion5_written_by_cryoal_carries_the_tomogram_size(tmp_path: Path, table, geoms) -> None:
    path = write_star(table, tmp_path / "p.star", voxel_size_A=None, version=5, tomograms=geoms,
                      coords_pixel_size_A=5.0)  # fmt: skip
    part = starfile.read(path)["particles"]
    assert part["rlnTomoSizeX"].tolist() == [400, 400, 402]  # unbinned pixels of 5 Å
    assert starfile.read(path)["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [5.0]
    # read back without any tomogram: the file states where the centre is
    back = read_coords(path, voxel_size_A=10.0, class_names=["proteasome", "ribosome"])
    pd.testing.assert_frame_equal(back, table, check_exact=False, atol=1e-5)


def test_relion5_picks_with_a_tomogram_of_another_size_warn_and_keep_centres(
    tmp_path: Path, table, geoms
) -> None:
    path = write_star(table, tmp_path / "p.star", voxel_size_A=None, version=5, tomograms=geoms)
    other = {"TS_01": TomogramGeometry((50, 100, 199), 10.0), "TS_02": geoms["TS_02"]}
    with pytest.warns(UserWarning) as caught:
        back = read_coords(path, tomograms=other, class_names=["proteasome", "ribosome"])
    text = " ".join(str(w.message) for w in caught)
    assert "p.star" in text and "tomogram 'TS_01'" in text
    assert "2000 x 1000 x 500 Å" in text and "1990 x 1000 x 500 Å" in text  # both sizes
    # no half-voxel shift: the centres are the ones the picks were made with
    pd.testing.assert_frame_equal(back, table, check_exact=False, atol=1e-5)


# -- copick names (issue 14, item 13) --------------------------------------------------
@pytest.mark.parametrize("bad", ["../up", "a/b", "a_b", "a b", "", "-a", "..", "x\\y"])
def test_copick_names_follow_copick_rules(tmp_path: Path, table, bad: str) -> None:
    one = table[table["tomo_id"] == "TS_01"]
    with pytest.raises(ValueError, match="copick user id .*not a valid copick name"):
        write_copick_picks(one, tmp_path / "p.json", voxel_size_A=10.0, object_name="ribosome",
                           user_id=bad, session_id="0")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    assert check_copick_name("alice-2.b", "user id") == "alice-2.b"


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "..", "a b"])
def test_copick_run_names_follow_the_tomogram_id_rule(tmp_path: Path, table, bad: str) -> None:
    """copick makes the run name a folder (ExperimentRuns/<run>/): never a path."""
    one = table[table["tomo_id"] == "TS_01"].assign(tomo_id=bad)
    with pytest.raises(ValueError, match=f"p.json: tomogram id {bad!r} must start"):
        write_copick_picks(one, tmp_path / "p.json", voxel_size_A=10.0, object_name="ribosome",
                           user_id="cryoal", session_id="0")  # fmt: skip
    with pytest.raises(ValueError, match="copick run name"):
        write_copick_picks(one.assign(tomo_id="TS_01"), tmp_path / "p.json", voxel_size_A=10.0,
                           object_name="ribosome", user_id="cryoal", session_id="0",
                           run_name=bad)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_copick_names_agree_with_copick() -> None:
    escape = pytest.importorskip("copick.util.escape")  # test-only oracle, when installed
    names = ["cryoal", "0", "a.b", "a-b", "a_b", "../x", "a b", "-a", "a-", "a:b", "a|b", "é"]
    for name in names:
        try:
            ours = check_copick_name(name, "name") == name
        except ValueError:
            ours = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = escape.sanitize_name(name) == name
        assert ours == theirs, name


TOMOGRAMS_STAR = """
data_global

loop_
_rlnTomoName
_rlnTomoTiltSeriesPixelSize
_rlnTomoTomogramBinning
_rlnTomoSizeX
_rlnTomoSizeY
_rlnTomoSizeZ
TS_01 2.5 4.0 801 400 200
TS_02 2.5 4.0 804 404 204
"""


def test_relion5_centre_from_tomograms_star(tmp_path: Path) -> None:
    path = _star(tmp_path / "r5.star", RELION5)
    sizes = read_tomograms_star(_star(tmp_path / "tomograms.star", TOMOGRAMS_STAR))
    np.testing.assert_allclose(sizes["TS_01"], [2002.5, 1000.0, 500.0])
    # RELION's centre of TS_01 is 801/2 unbinned pixels = 1001.25 Å in x; the binned
    # tomogram (4 x 2.5 = 10 Å) was rounded to 200 voxels (2000 Å): less than a voxel off,
    # so no warning, and the centre is RELION's, not 1000 Å.
    binned = {"TS_01": TomogramGeometry((50, 100, 200), 10.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_coords(path, tomo_id="TS_01", tomograms=binned, tomogram_sizes_A=sizes)
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy()[0], [25.0, 50.0, 100.125])
    # with tomograms.star, a voxel size is enough
    df = read_coords(path, voxel_size_A=10.0, tomogram_sizes_A=sizes)
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy()[2], [25.5, 50.5, 108.5])
    with pytest.raises(ValueError, match=r"t\.star: not a RELION 5 tomograms\.star"):
        read_tomograms_star(_star(tmp_path / "t.star", RELION5))
