"""Membranes in simulated tomograms: bilayer density and masks, clearances, bound particles."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoal.cli.main import run
from cryoal.sim.membranes import MembraneParams, MembraneSet, Sheet, Vesicle
from cryoal.sim.tomograms import simulate_tomogram

SHAPE = (48, 112, 112)
N_CLASSES = 3
MEMBRANES = MembraneParams(
    vesicles=1, sheets=1, vesicle_radius_A=(150.0, 220.0), bound_fraction=0.5
)


def _geometry(settings: dict) -> list[Vesicle | Sheet]:
    out: list[Vesicle | Sheet] = []
    for m in settings["membranes"]["membranes"]:
        kind = m.pop("kind")
        out.append(Vesicle(**m) if kind == "vesicle" else Sheet(**m))
    return out


def _distances(geometry: list[Vesicle | Sheet]) -> np.ndarray:
    """(n_membranes, *SHAPE) signed distance of every voxel to each mid-surface."""
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij"), axis=-1)
    return np.stack([m.distance(grid) for m in geometry])


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    """Noise-, CTF- and wedge-free, unnormalised: the density as rendered."""
    return simulate_tomogram(
        tmp_path_factory.mktemp("mem") / "t",
        shape_zyx=SHAPE,
        n_particles=8,
        n_classes=N_CLASSES,
        snr=None,
        ctf=False,
        wedge=False,
        normalise=False,
        seed=5,
        membranes=MEMBRANES,
    )


def test_membrane_label_covers_the_bilayer_and_only_it(clean) -> None:
    settings = json.loads(Path(clean.settings).read_text())
    assert settings["label_names"] == [*settings["class_names"], "membrane"]
    kinds = [m["kind"] for m in settings["membranes"]["membranes"]]
    assert sorted(kinds) == ["sheet", "vesicle"]
    d = np.abs(_distances(_geometry(settings))).min(axis=0)
    labels = mrcfile.read(clean.labels)
    membrane = labels == N_CLASSES + 1
    half = 0.5 * MEMBRANES.thickness_A / 10.0
    assert membrane.sum() > 1000
    assert d[membrane].max() <= half + 1e-4  # nothing labelled membrane off the bilayer
    # every bilayer voxel not taken by a particle is labelled membrane
    assert (membrane | (labels > 0))[d <= half - 1e-4].all()


def test_bilayer_density_has_two_leaflets_about_4_nm_apart(clean) -> None:
    settings = json.loads(Path(clean.settings).read_text())
    vesicle = next(m for m in _geometry(settings) if isinstance(m, Vesicle))
    volume = mrcfile.read(clean.tomogram).astype(np.float64)
    d = _distances([vesicle])[0]
    labels = mrcfile.read(clean.labels)
    free = labels != np.arange(1, N_CLASSES + 1)[:, None, None, None]  # away from particles
    free = free.all(axis=0)
    profile = {
        round(t, 1): volume[free & (np.abs(d - t) < 0.3)].mean() for t in np.arange(-4, 4.1, 0.5)
    }
    inner = max((t for t in profile if t < 0), key=profile.__getitem__)
    outer = max((t for t in profile if t > 0), key=profile.__getitem__)
    assert [-inner, outer] == pytest.approx([1.9, 1.9], abs=0.6)  # 38 Å / 2 in voxels
    assert profile[0.0] < 0.6 * max(profile.values())  # the hydrophobic core is lighter
    assert profile[4.0] < 0.05 * max(profile.values())  # and nothing beyond the bilayer


def test_particles_keep_clear_and_bound_ones_sit_on_their_membrane(clean) -> None:
    settings = json.loads(Path(clean.settings).read_text())
    geometry = _geometry(settings)
    truth = pd.read_csv(clean.ground_truth)
    assert (truth["membrane"] >= 0).sum() == 4  # bound_fraction 0.5 of 8
    labels = mrcfile.read(clean.labels)
    centres = truth[["z", "y", "x"]].to_numpy()
    dist = np.abs(_distances(geometry)).min(axis=0)
    for (k, row), c in zip(truth.iterrows(), centres, strict=True):
        d = np.abs([float(m.distance(c)) for m in geometry])
        own = labels == row["class_index"] + 1
        if row["membrane"] >= 0:  # against its membrane: nearer to it than to the others
            assert int(np.argmin(d)) == row["membrane"], k
        # the particle's support never reaches into a bilayer
        assert dist[own].min() > 0.5 * MEMBRANES.thickness_A / 10.0
    bound = centres[truth["membrane"] >= 0]
    free = centres[truth["membrane"] < 0]
    gap = lambda cs: np.array([min(abs(float(m.distance(c))) for m in geometry) for c in cs])  # noqa: E731
    assert np.median(gap(bound)) < np.median(gap(free))


def test_same_seed_same_membranes_and_no_membranes_leaves_the_output_unchanged(
    tmp_path: Path,
) -> None:
    kw = {"shape_zyx": (40, 96, 96), "n_particles": 3, "n_classes": 2, "seed": 2, "snr": 0.5}
    small = MembraneParams(vesicles=1, sheets=1, vesicle_radius_A=(120.0, 150.0))
    a = simulate_tomogram(tmp_path / "a", membranes=small, **kw)
    b = simulate_tomogram(tmp_path / "b", membranes=small, **kw)
    np.testing.assert_array_equal(mrcfile.read(a.tomogram), mrcfile.read(b.tomogram))
    plain = simulate_tomogram(tmp_path / "plain", **kw)
    assert "membrane" not in pd.read_csv(plain.ground_truth).columns
    assert "membranes" not in json.loads(Path(plain.settings).read_text())
    assert mrcfile.read(plain.labels).max() <= 2
    assert mrcfile.read(a.labels).max() == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (MembraneParams(vesicles=0, sheets=0, bound_fraction=0.2), "needs at least one"),
        (MembraneParams(vesicle_radius_A=(300.0, 100.0)), "0 < MIN <= MAX"),
        (MembraneParams(sheet_max_tilt_deg=120.0), "sheet_max_tilt_deg"),
        (MembraneParams(vesicles=1, sheets=0, vesicle_radius_A=(900.0, 900.0)), "does not fit"),
    ],
)
def test_impossible_membranes_are_refused_with_the_setting(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        MembraneSet(params, (32, 64, 64), 10.0, np.random.default_rng(0))


def test_cli_adds_membranes_and_refuses_a_vesicle_too_large(tmp_path: Path, capsys) -> None:
    base = ["simulate", "tomogram", "--particles", "3", "--classes", "2", "--seed", "1"]
    code = run([*base, str(tmp_path / "ok"), "--shape", "32", "80", "80", "--vesicles", "1",
                "--sheets", "1", "--vesicle-radius", "120", "150"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "membranes: 1 vesicles, 1 sheets" in out and "label 3 in labels.mrc" in out
    code = run([*base, str(tmp_path / "big"), "--shape", "32", "48", "48", "--vesicles", "1",
                "--vesicle-radius", "400", "400"])  # fmt: skip
    assert code == 2
    assert "--vesicle-radius" in capsys.readouterr().err
    assert not (tmp_path / "big").exists()
