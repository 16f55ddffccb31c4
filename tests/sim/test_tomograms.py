"""Whole simulated tomograms: files, ground truth that reads back, labels, SNR, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.io.coords import read_coords
from cryoal.io.mrc import open_tomogram
from cryoal.sim.tomograms import box_signal_variance, simulate_tomogram

SHAPE = (40, 96, 96)


@pytest.fixture(scope="module")
def tomo(tmp_path_factory: pytest.TempPathFactory):
    return simulate_tomogram(
        tmp_path_factory.mktemp("tomo") / "t",
        shape_zyx=SHAPE,
        n_particles=8,
        n_classes=4,
        snr=0.1,
        seed=3,
    )


def test_outputs_have_voxel_size_and_ground_truth_reads_back(tomo) -> None:
    with open_tomogram(tomo.tomogram) as t:
        assert t.shape == SHAPE and t.voxel_size_A == 10.0
    star = read_coords(
        tomo.star, voxel_size_A=10.0, class_names=["ring", "barrel", "dumbbell", "tetrahedron"]
    )
    csv = read_coords(tomo.csv, unit="angstrom", voxel_size_A=10.0)
    for table in (star, csv):
        np.testing.assert_allclose(
            table[["z", "y", "x"]].to_numpy(), tomo.picks[["z", "y", "x"]].to_numpy(), atol=1e-4
        )
        assert list(table["candidate_id"]) == [f"sim_tomo:{k:06d}" for k in range(8)]
        assert list(table["class_name"]) == list(tomo.picks["class_name"])
    assert tomo.picks["class_name"].value_counts().tolist() == [2, 2, 2, 2]
    truth = pd.read_csv(tomo.ground_truth)
    np.testing.assert_allclose(
        np.linalg.norm(truth[["qx", "qy", "qz", "qw"]].to_numpy(), axis=1), 1.0, atol=1e-5
    )
    settings = json.loads(Path(tomo.settings).read_text())
    assert settings["class_names"] == ["ring", "barrel", "dumbbell", "tetrahedron"]
    assert 2.0 <= settings["defocus_um"] <= 5.0


def test_label_volume_marks_each_particle_with_its_class_and_particles_do_not_overlap(tomo) -> None:
    labels = mrcfile.read(tomo.labels)
    classes = {n: i for i, n in enumerate(["ring", "barrel", "dumbbell", "tetrahedron"])}
    grid = np.indices(SHAPE).reshape(3, -1).T
    owner = np.full(len(grid), -1)
    for k, row in tomo.picks.iterrows():
        dist = np.linalg.norm(grid - row[["z", "y", "x"]].to_numpy(dtype=float), axis=1)
        near = dist < 13
        assert (owner[near & (labels.ravel() > 0)] == -1).all()  # supports never overlap
        owner[near] = k
        values = set(np.unique(labels.ravel()[near])) - {0}
        assert values == {classes[row["class_name"]] + 1}
    assert (labels.ravel()[owner == -1] == 0).all()  # nothing labelled away from particles


def test_noise_is_added_at_the_requested_box_snr_and_runs_are_reproducible(tmp_path: Path) -> None:
    kw = {"shape_zyx": SHAPE, "n_particles": 6, "n_classes": 3, "seed": 8, "normalise": False}
    clean = simulate_tomogram(tmp_path / "clean", snr=None, **kw)
    noisy = simulate_tomogram(tmp_path / "noisy", snr=0.2, **kw)
    again = simulate_tomogram(tmp_path / "again", snr=0.2, **kw)
    s = mrcfile.read(clean.tomogram).astype(np.float64)
    x = mrcfile.read(noisy.tomogram).astype(np.float64)
    np.testing.assert_array_equal(mrcfile.read(again.tomogram), mrcfile.read(noisy.tomogram))
    np.testing.assert_array_equal(mrcfile.read(clean.labels), mrcfile.read(noisy.labels))
    centres = noisy.picks[["z", "y", "x"]].to_numpy()
    snr = box_signal_variance(s, centres, 32) / (x - s).var()
    assert snr == pytest.approx(0.2, rel=0.10)


def test_cli_writes_a_tomogram_and_refuses_an_overfull_one(tmp_path: Path, capsys) -> None:
    code = run(
        [
            "simulate",
            "tomogram",
            str(tmp_path / "cli"),
            "--shape",
            "32",
            "80",
            "80",
            "--particles",
            "4",
            "--classes",
            "2",
            "--snr",
            "0.1",
            "--seed",
            "1",
            "--path",
            "backprojection",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "4 particles" in capsys.readouterr().out
    assert (tmp_path / "cli" / "labels.mrc").exists() and (
        tmp_path / "cli" / "particles.star"
    ).exists()
    code = run(
        [
            "simulate",
            "tomogram",
            str(tmp_path / "full"),
            "--shape",
            "32",
            "48",
            "48",
            "--particles",
            "60",
        ]
    )
    assert code == 2
    assert "fewer --particles" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "TS:01", "a b", "", "-x"])
def test_unsafe_tomo_ids_are_refused_before_anything_is_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """The id becomes candidate ids and copick run (folder) names: refused at the source."""
    with pytest.raises(ValueError, match=f"tomogram id {bad!r} must start with a letter"):
        simulate_tomogram(tmp_path / "lib", shape_zyx=(16, 32, 32), n_particles=1, tomo_id=bad)
    assert list(tmp_path.iterdir()) == []
    capsys.readouterr()
    assert run(["simulate", "tomogram", str(tmp_path / "cli"), "--tomo-id", bad]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: tomogram id"), lines
    assert "--tomo-id" in lines[0]
    assert list(tmp_path.iterdir()) == []
