"""``cryoal info / extract / convert-coords`` and the bad-input corpus (issue 2, item 9)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from cryoal.cli.main import run
from cryoal.io.mrc import write_mrc
from cryoal.io.store import SubtomogramStore

SHAPE = (24, 40, 48)
VS = 10.0


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """``in/`` holds inputs (a tomogram and coordinates); ``out/`` starts empty."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    rng = np.random.default_rng(0)
    write_mrc(tmp_path / "in" / "TS_01.mrc", rng.standard_normal(SHAPE).astype(np.float32), VS)
    # x, y, z in Å -> zyx voxels (12, 20, 24), (10, 15, 30), (12, 22, 20)
    (tmp_path / "in" / "picks.csv").write_text(
        "x,y,z,class_name\n240,200,120,ribosome\n300,150,100,proteasome\n200,220,120,ribosome\n"
    )
    return tmp_path


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    code = run([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_extract_then_info(work: Path, capsys: pytest.CaptureFixture) -> None:
    out = work / "out" / "s.h5"
    code, stdout, err = _run(
        capsys,
        [
            "extract",
            work / "in" / "TS_01.mrc",
            work / "in" / "picks.csv",
            out,
            "--box",
            "8",
            "--coords-unit",
            "angstrom",
            "--no-progress",
        ],
    )
    assert code == 0, err
    assert "wrote 3 subtomograms (8^3 at 10 Å) of tomogram 'TS_01'" in stdout
    s = SubtomogramStore(out)
    rows = s.index_of(["TS_01:000000", "TS_01:000001", "TS_01:000002"])
    assert s.class_names == ["proteasome", "ribosome"] and s.labels[rows].tolist() == [1, 0, 1]
    np.testing.assert_allclose(s.centres_zyx[s.index_of(["TS_01:000001"])], [[10.0, 15.0, 30.0]])
    np.testing.assert_allclose(s.subtomograms(slice(None)).mean(axis=(1, 2, 3)), 0, atol=1e-5)

    code, stdout, _ = _run(capsys, ["info", out])
    assert code == 0
    assert "samples: 3   box: 8^3   voxel size: 10 Å" in stdout
    assert "proteasome: 1" in stdout and "ribosome: 2" in stdout and "unlabeled: 0" in stdout
    assert "masks: no" in stdout

    code, stdout, _ = _run(capsys, ["info", work / "in" / "TS_01.mrc"])
    assert code == 0
    assert "shape (z, y, x): 24 x 40 x 48 voxels" in stdout and "voxel size: 10 Å" in stdout
    assert "dtype: float32" in stdout and "mean " in stdout and "std " in stdout

    code, stdout, _ = _run(capsys, ["info", work / "in" / "picks.csv"])
    assert code == 0
    assert (
        "csv coordinates, 3 rows" in stdout
        and "(unnamed): 3  (proteasome: 1, ribosome: 2)" in stdout
    )


def test_extract_names_relion_class_numbers(tmp_path: Path, capsys) -> None:
    from cryoal.sim import simulate_tomogram

    simulate_tomogram(
        tmp_path / "sim", shape_zyx=(48, 96, 96), n_particles=6, n_classes=2, snr=1.0, seed=0
    )
    out = tmp_path / "p.h5"
    args = ["extract", tmp_path / "sim" / "tomogram.mrc", tmp_path / "sim" / "particles.star", out]
    code, _, err = _run(
        capsys, [*args, "--box", "16", "--classes", "first,second", "--no-progress"]
    )
    assert code == 0, err
    with SubtomogramStore(out) as store:
        assert store.class_names == ["first", "second"]
        # rlnClassNumber k is the k-th name: label k - 1
        star = starfile.read(args[2])
        table = star["particles"] if isinstance(star, dict) else star
        truth = {int(k) for k in table["rlnClassNumber"]}
        assert set(store.labels.tolist()) == {k - 1 for k in truth}


def test_extract_refuses_existing_output_then_overwrites(work: Path, capsys) -> None:
    args = [
        "extract",
        work / "in" / "TS_01.mrc",
        work / "in" / "picks.csv",
        work / "out" / "s.h5",
        "--box",
        "8",
        "--coords-unit",
        "angstrom",
        "--no-progress",
    ]
    assert _run(capsys, args)[0] == 0
    code, _, err = _run(capsys, args)
    assert code == 2 and "s.h5: output already exists" in err and "--overwrite" in err
    assert _run(capsys, [*args, "--overwrite", "--edge", "skip"])[0] == 0


def test_convert_coords_relion5_round_trip(work: Path, capsys) -> None:
    tomo = work / "in" / "TS_01.mrc"
    star5 = work / "out" / "p5.star"
    code, stdout, err = _run(
        capsys,
        [
            "convert-coords",
            work / "in" / "picks.csv",
            star5,
            "--to",
            "star5",
            "--coords-unit",
            "angstrom",
            "--tomogram",
            tomo,
        ],
    )
    assert code == 0, err
    # (x, y, z) = (240, 200, 120) Å in a 48 x 40 x 24 tomogram at 10 Å: centre (240, 200, 120) Å
    text = star5.read_text()
    assert "rlnCenteredCoordinateXAngst" in text and "0.000000\t0.000000\t0.000000" in text
    back = work / "out" / "back.csv"
    code, _, err = _run(capsys, ["convert-coords", star5, back, "--tomogram", tomo])
    assert code == 0, err
    lines = back.read_text().splitlines()
    assert lines[1].startswith("TS_01:000000,TS_01,240.000000,200.000000,120.000000")


def test_cli_subprocess_entry_point(work: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cryoal",
            "extract",
            str(work / "in" / "TS_01.mrc"),
            str(work / "in" / "picks.csv"),
            str(work / "out" / "s.h5"),
            "--box",
            "40",
            "--coords-unit",
            "angstrom",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cryoal: error: {work / 'in' / 'TS_01.mrc'}: box 40 is larger than the tomogram "
        "(z, y, x) = (24, 40, 48); choose a box of at most 24 voxels (--box)"
    ]
    assert list((work / "out").iterdir()) == []


# -- the bad-input corpus -------------------------------------------------------------------
def _truncated_mrc(work: Path) -> list:
    p = work / "in" / "TS_01.mrc"
    p.write_bytes(p.read_bytes()[:-4096])
    return [p, "truncated"]


def _corrupt_header(work: Path) -> list:
    p = work / "in" / "TS_01.mrc"
    raw = bytearray(p.read_bytes())
    raw[208:212] = b"XXXX"
    p.write_bytes(bytes(raw))
    return [p, "XXXX"]


def _two_d(work: Path) -> list:
    p = work / "in" / "TS_01.mrc"
    with mrcfile.new(p, overwrite=True) as m:
        m.set_data(np.zeros((40, 48), np.float32))
        m.voxel_size = VS
    return [p, "2-D with shape (40, 48)"]


def _nan_voxels(work: Path) -> list:
    p = work / "in" / "TS_01.mrc"
    with mrcfile.open(p, mode="r+") as m:
        m.data[17, 3, 4] = np.nan
    return [p, "first at z=17"]


def _voxel_size_zero(work: Path) -> list:
    p = work / "in" / "TS_01.mrc"
    with mrcfile.open(p, mode="r+") as m:
        m.voxel_size = 0.0
    return [p, "0.0 Å"]


def _missing(work: Path) -> list:
    (work / "in" / "TS_01.mrc").unlink()
    return [work / "in" / "TS_01.mrc", "not found"]


def _no_columns(work: Path) -> list:
    p = work / "in" / "picks.star"
    p.write_text("data_particles\n\nloop_\n_rlnTomoName #1\n_rlnAngleRot #2\nTS_01 12.5\n")
    return [p, "rlnAngleRot"]


def _outside(work: Path) -> list:
    (work / "in" / "picks.csv").write_text("x,y,z\n240,200,120\n10,200,120\n")
    return [work / "in" / "TS_01.mrc", "'TS_01:000001' at zyx [12.0, 20.0, 1.0]"]


EXTRACT = "extract {tomo} {picks} {out} --box 8 --coords-unit angstrom --no-progress"
CASES: dict[str, tuple[Callable[[Path], list], str]] = {
    "truncated MRC": (_truncated_mrc, EXTRACT),
    "corrupt header": (_corrupt_header, EXTRACT),
    "2D MRC": (_two_d, EXTRACT),
    "NaN voxels": (_nan_voxels, EXTRACT + " --check-finite"),
    "voxel size 0": (_voxel_size_zero, EXTRACT),
    "missing file": (_missing, EXTRACT),
    "STAR without coordinates": (_no_columns, "extract {tomo} {star} {out} --box 8 --no-progress"),
    "outside, edge=error": (_outside, EXTRACT + " --edge error"),
    "box larger than tomogram": (
        lambda w: [w / "in" / "TS_01.mrc", "box 25"],
        EXTRACT.replace("8", "25"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_line_and_no_output(work: Path, capsys, case: str) -> None:
    make, template = CASES[case]
    named, value = make(work)
    argv = template.format(
        tomo=work / "in" / "TS_01.mrc",
        picks=work / "in" / "picks.csv",
        star=work / "in" / "picks.star",
        out=work / "out" / "s.h5",
    ).split()
    code, stdout, err = _run(capsys, argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: "), err
    assert str(named) in lines[0] and value in lines[0], lines[0]
    assert "Traceback" not in err
    assert list((work / "out").iterdir()) == []  # neither the store nor a temp file


def test_voxel_size_zero_is_fixed_by_the_option(work: Path, capsys) -> None:
    _voxel_size_zero(work)
    argv = EXTRACT.format(
        tomo=work / "in" / "TS_01.mrc", picks=work / "in" / "picks.csv", out=work / "out" / "s.h5"
    ).split()
    code, _, err = _run(capsys, argv)
    assert code == 2 and "--voxel-size" in err
    code, stdout, err = _run(capsys, [*argv, "--voxel-size", "10"])
    assert code == 0, err
    assert SubtomogramStore(work / "out" / "s.h5").voxel_size_A == 10.0


def test_relion5_without_tomogram_size(work: Path, capsys) -> None:
    star = work / "in" / "r5.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\nTS_01 0 0 0\n"
    )
    code, _, err = _run(
        capsys, ["convert-coords", star, work / "out" / "p.csv", "--voxel-size", "10"]
    )
    assert code == 2
    line = err.strip()
    assert (
        "\n" not in line
        and str(star) in line
        and "tomogram 'TS_01'" in line
        and "TS_01.mrc" in line
        and "=" not in line  # no Python keyword arguments
    )
    assert list((work / "out").iterdir()) == []


def test_truncated_store_info(work: Path, capsys) -> None:
    args = [
        "extract",
        work / "in" / "TS_01.mrc",
        work / "in" / "picks.csv",
        work / "out" / "s.h5",
        "--box",
        "8",
        "--coords-unit",
        "angstrom",
        "--no-progress",
    ]
    assert _run(capsys, args)[0] == 0
    store = work / "out" / "s.h5"
    store.write_bytes(store.read_bytes()[:3000])
    code, stdout, err = _run(capsys, ["info", store])
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(store) in lines[0] and "truncated" in lines[0]


def test_csv_without_unit_and_missing_coordinates(work: Path, capsys) -> None:
    argv = [
        "extract",
        work / "in" / "TS_01.mrc",
        work / "in" / "picks.csv",
        work / "out" / "s.h5",
        "--box",
        "8",
    ]
    code, _, err = _run(capsys, argv)
    assert code == 2 and "picks.csv: the unit of x, y, z is not stated" in err
    code, _, err = _run(capsys, [*argv[:2], work / "in" / "nope.csv", *argv[3:]])
    assert code == 2 and "nope.csv: coordinate file not found" in err
    assert list((work / "out").iterdir()) == []


# -- issue 14: field conventions at the command line ----------------------------------
def test_cryoal_reads_its_own_csv_without_flags(work: Path, capsys) -> None:
    own = work / "out" / "own.csv"
    args = ["convert-coords", work / "in" / "picks.csv", own, "--coords-unit", "angstrom",
            "--tomo-id", "TS_01", "--voxel-size", "10"]  # fmt: skip
    assert _run(capsys, args)[0] == 0
    assert own.read_text().splitlines()[0] == "candidate_id,tomo_id,x_A,y_A,z_A,class_name"
    code, stdout, _ = _run(capsys, ["info", own])
    assert code == 0 and "unit: Å (corner origin)" in stdout
    out = work / "out" / "s.h5"
    code, stdout, err = _run(
        capsys, ["extract", work / "in" / "TS_01.mrc", own, out, "--box", "8", "--no-progress"]
    )
    assert code == 0, err
    assert "wrote 3 subtomograms" in stdout and err == ""


def _star4(path: Path, tomo_name: str) -> Path:
    path.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
        f"_rlnCoordinateZ #4\n{tomo_name} 24 20 12\n{tomo_name} 30 15 10\n"
    )
    return path


def test_picks_of_another_tomogram_are_named_in_a_warning(work: Path, capsys) -> None:
    star = _star4(work / "in" / "picks.star", "TS_07")
    out = work / "out" / "s.h5"
    argv = ["extract", work / "in" / "TS_01.mrc", star, out, "--box", "8", "--no-progress"]
    code, _, err = _run(capsys, argv)
    assert code == 0
    line = err.strip()
    assert line.startswith("cryoal: warning: ") and "\n" not in line
    assert "tomogram 'TS_07'" in line and "TS_01.mrc" in line and "--tomo-id TS_07" in line
    # saying that they belong together silences it
    code, _, err = _run(capsys, [*argv[:3], work / "out" / "t.h5", *argv[4:], "--tomo-id", "TS_07"])
    assert code == 0 and err == ""


def test_relion5_picks_with_another_tomogram_size_warn_and_keep_centres(work: Path, capsys) -> None:
    star5 = work / "out" / "p5.star"
    args = ["convert-coords", work / "in" / "picks.csv", star5, "--format", "star5",
            "--coords-unit", "angstrom", "--tomogram", work / "in" / "TS_01.mrc"]  # fmt: skip
    assert _run(capsys, args)[0] == 0
    # the same tomogram id, reconstructed one voxel narrower in x
    (work / "b").mkdir()
    rng = np.random.default_rng(1)
    shape = (SHAPE[0], SHAPE[1], SHAPE[2] - 1)
    write_mrc(work / "b" / "TS_01.mrc", rng.standard_normal(shape).astype(np.float32), VS)
    back = work / "out" / "back.csv"
    code, _, err = _run(
        capsys, ["convert-coords", star5, back, "--tomogram", work / "b" / "TS_01.mrc"]
    )
    assert code == 0
    assert "cryoal: warning:" in err and "480 x 400 x 240 Å" in err and "470 x 400 x 240 Å" in err
    xyz = pd.read_csv(back)[["x_A", "y_A", "z_A"]].to_numpy()
    np.testing.assert_allclose(xyz, [[240, 200, 120], [300, 150, 100], [200, 220, 120]], atol=1e-4)


def test_batch_size_zero_is_refused_by_the_parser(work: Path, capsys) -> None:
    code, _, err = _run(
        capsys,
        ["extract", work / "in" / "TS_01.mrc", work / "in" / "picks.csv", work / "out" / "s.h5",
         "--box", "8", "--batch-size", "0"],
    )  # fmt: skip
    assert code == 2 and "--batch-size" in err and "range()" not in err
    assert list((work / "out").iterdir()) == []


def test_relion5_with_tomograms_star_needs_no_tomogram(work: Path, capsys) -> None:
    star = work / "in" / "r5.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\nTS_01 0 0 0\n"
    )
    tomos = work / "in" / "tomograms.star"
    tomos.write_text(
        "data_global\n\nloop_\n_rlnTomoName\n_rlnTomoTiltSeriesPixelSize\n_rlnTomoSizeX\n"
        "_rlnTomoSizeY\n_rlnTomoSizeZ\nTS_01 2.5 193 160 96\n"
    )
    out = work / "out" / "p.csv"
    code, _, err = _run(
        capsys,
        ["convert-coords", star, out, "--tomograms-star", tomos, "--voxel-size", "10"],
    )
    assert code == 0, err
    xyz = pd.read_csv(out)[["x_A", "y_A", "z_A"]].to_numpy()
    np.testing.assert_allclose(xyz, [[241.25, 200.0, 120.0]])  # RELION's centre, size * 2.5 / 2


_EMPTY_TABLES = {
    "header.csv": "x_A,y_A,z_A\n",
    "header.star": "data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n",
    "points.json": '{"pickable_object_name": "a", "user_id": "u", "session_id": "0", '
    '"run_name": "TS_01", "points": []}',
}


@pytest.mark.parametrize("name", sorted(_EMPTY_TABLES))
def test_extract_names_a_coordinate_file_without_rows(work: Path, capsys, name: str) -> None:
    coords = work / "in" / name
    coords.write_text(_EMPTY_TABLES[name])
    out = work / "out" / "s.h5"
    code, _, err = _run(capsys, ["extract", work / "in" / "TS_01.mrc", coords, out, "--box", "8"])
    assert code == 2
    assert err.splitlines() == [
        f"cryoal: error: {coords}: the file holds no coordinates; nothing to extract; check "
        "that it is the picks file you meant (a header without rows is empty)"
    ]
    assert not any((work / "out").iterdir())
