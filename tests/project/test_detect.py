"""The difference-of-Gaussians candidate detector."""

from __future__ import annotations

import numpy as np
import pytest

from cryoal.project.detect import detect_blobs, recall


def _blob_tomogram(
    shape: tuple[int, int, int], n: int, radius: int, contrast: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Noise (sigma 1) plus ``n`` non-overlapping balls of value ``contrast``; returns
    the volume and the ball centres (zyx voxels)."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0.0, 1.0, shape).astype(np.float32)
    centres: list[np.ndarray] = []
    while len(centres) < n:
        c = np.round(rng.uniform(radius + 2, np.array(shape) - radius - 3))
        if all(np.linalg.norm(c - o) > 2.5 * radius for o in centres):
            centres.append(c)
    grid = np.indices((2 * radius + 1,) * 3) - radius
    ball = (grid**2).sum(axis=0) <= radius**2
    for c in centres:
        sl = tuple(slice(int(c[i]) - radius, int(c[i]) + radius + 1) for i in range(3))
        vol[sl][ball] += contrast
    return vol, np.array(centres)


def test_finds_dark_particles_with_high_recall() -> None:
    vol, truth = _blob_tomogram((48, 96, 96), n=25, radius=4, contrast=-1.0, seed=1)
    det = detect_blobs(vol, radius_px=4, n=50, polarity="dark")
    assert len(det) == 50
    assert recall(det.positions_zyx[:25], truth, tolerance_px=2) >= 0.9
    assert recall(det.positions_zyx, truth, tolerance_px=2) >= 0.95
    # the wrong polarity finds (almost) none of them: the sign convention matters
    wrong = detect_blobs(vol, radius_px=4, n=25, polarity="bright")
    assert recall(wrong.positions_zyx, truth, tolerance_px=2) < 0.3


def test_blocks_give_exactly_the_whole_volume_result() -> None:
    vol, _ = _blob_tomogram((40, 64, 64), n=12, radius=3, contrast=1.5, seed=2)
    whole = detect_blobs(vol, radius_px=3, n=30, polarity="bright")
    # 1 byte: the smallest blocks (seams along z, y and x); 4 MiB: two z-slabs
    for budget in (1, 4 * 2**20):
        other = detect_blobs(vol, radius_px=3, n=30, polarity="bright", max_memory_bytes=budget)
        np.testing.assert_array_equal(whole.positions_zyx, other.positions_zyx)
        np.testing.assert_allclose(whole.scores, other.scores, rtol=1e-5)


def test_candidates_respect_distance_border_and_order() -> None:
    vol, _ = _blob_tomogram((40, 64, 64), n=15, radius=3, contrast=-1.0, seed=3)
    det = detect_blobs(vol, radius_px=3, n=100, min_distance_px=5, exclude_border_px=4)
    pos = det.positions_zyx
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
    assert d.min() >= 5
    assert pos.min() >= 4 and np.all(pos <= np.array(vol.shape) - 1 - 4)
    assert np.all(np.diff(det.scores) <= 0)
    # deterministic: same input, same output
    again = detect_blobs(vol, radius_px=3, n=100, min_distance_px=5, exclude_border_px=4)
    np.testing.assert_array_equal(pos, again.positions_zyx)


def test_works_on_a_read_only_memmap(tmp_path) -> None:
    vol, truth = _blob_tomogram((32, 48, 48), n=6, radius=3, contrast=-1.5, seed=4)
    path = tmp_path / "vol.npy"
    np.save(path, vol)
    mm = np.load(path, mmap_mode="r")
    det = detect_blobs(mm, radius_px=3, n=12, max_memory_bytes=48 * 48 * 16 * 20)
    assert recall(det.positions_zyx, truth, tolerance_px=2) == 1.0


def test_bad_parameters_are_explained() -> None:
    vol = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(ValueError, match="radius .* does not fit"):
        detect_blobs(vol, radius_px=20, n=5)
    with pytest.raises(ValueError, match="polarity"):
        detect_blobs(vol, radius_px=2, n=5, polarity="grey")
    with pytest.raises(ValueError, match="n=0"):
        detect_blobs(vol, radius_px=2, n=0)


# -- issue 14: polarity, NaN voxels, bounded memory -------------------------------------------
def test_simulated_tomogram_is_detected_with_default_options(tmp_path, capsys) -> None:
    """The README's path on cryoal's own simulated tomogram: the recorded polarity (bright)
    is picked up by add-tomogram, and detect finds the particles without --polarity."""
    import pandas as pd

    from cryoal.cli.main import run
    from cryoal.io.mrc import read_polarity
    from cryoal.project.project import Project

    sim = tmp_path / "sim"
    assert run(["simulate", "tomogram", str(sim), "--shape", "48", "128", "128",
                "--particles", "12", "--snr", "1", "--seed", "3"]) == 0  # fmt: skip
    assert read_polarity(sim / "tomogram.mrc") == "bright"
    proj = tmp_path / "proj"
    assert run(["project", "init", str(proj), "--classes", "a,b", "--box", "24"]) == 0
    assert run(["project", "add-tomogram", str(proj), str(sim / "tomogram.mrc")]) == 0
    assert run(["project", "detect", str(proj), "--radius-A", "60", "--n", "30"]) == 0
    err = capsys.readouterr().err
    assert "polarity" not in err  # no warning: the right polarity was used
    with Project.open(proj) as project:
        assert project.config.tomograms[0].polarity == "bright"
        found = project.labels.candidates()[["z", "y", "x"]].to_numpy()
    truth = pd.read_csv(sim / "ground_truth.csv")[["z", "y", "x"]].to_numpy()
    assert recall(found, truth, tolerance_px=3.0) >= 0.6  # "dark" (the old default) gives 0.0
    capsys.readouterr()
    proj2 = tmp_path / "proj2"
    assert run(["project", "init", str(proj2), "--classes", "a,b", "--box", "24"]) == 0
    assert run(["project", "add-tomogram", str(proj2), str(sim / "tomogram.mrc")]) == 0
    assert run(["project", "detect", str(proj2), "--radius-A", "60", "--polarity", "dark"]) == 0
    err = capsys.readouterr().err
    assert "cryoal: warning: " in err and "particles are probably bright" in err, err


def test_the_wrong_polarity_is_warned_about() -> None:
    vol = _volume_with_blobs(sign=+1.0)  # bright particles
    with pytest.warns(UserWarning, match="particles are probably bright.*--polarity bright"):
        detect_blobs(vol, 3.0, 10, polarity="dark", source="t.mrc")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect_blobs(vol, 3.0, 10, polarity="bright")


def test_nan_voxels_stop_detection_with_count_and_position() -> None:
    vol = _volume_with_blobs(sign=-1.0)
    vol[20, 5, 7] = np.nan
    vol[21, 5, 7] = np.inf
    with pytest.raises(ValueError, match=r"t.mrc: 2 NaN/Inf voxels .*first at zyx \[20, 5, 7\]"):
        detect_blobs(vol, 3.0, 10, source="t.mrc")


def test_add_tomogram_refuses_nan_voxels(tmp_path, capsys) -> None:
    from cryoal.cli.main import run
    from cryoal.io.mrc import write_mrc

    vol = np.zeros((16, 20, 24), np.float32)
    vol[9, 3, 4] = np.nan
    tomo = write_mrc(tmp_path / "nan.mrc", vol, 10.0)
    proj = tmp_path / "proj"
    assert run(["project", "init", str(proj), "--classes", "a"]) == 0
    before = (proj / "project.yaml").read_text()
    capsys.readouterr()
    assert run(["project", "add-tomogram", str(proj), str(tomo)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("cryoal: error: ") and "\n" not in line
    assert str(tomo) in line and "NaN/Inf" in line and "z=9" in line and "nan_to_num" in line
    assert (proj / "project.yaml").read_text() == before


def _volume_with_blobs(sign: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 0.3, (40, 48, 48)).astype(np.float32)
    z, y, x = np.indices(vol.shape)
    for c in [(12, 12, 12), (28, 30, 20), (20, 20, 36), (30, 12, 36)]:
        r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
        vol += sign * 2.0 * np.exp(-r2 / (2 * 2.0**2)).astype(np.float32)
    return vol


_RSS_CHILD = """
import resource, sys, numpy as np
from cryoal.io.mrc import open_tomogram
from cryoal.project.detect import detect_blobs
with open_tomogram(sys.argv[1]) as t:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    detect_blobs(t.data, 4.0, 50, max_memory_bytes=int(sys.argv[2]))
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_detect_memory_stays_bounded_on_a_large_memmap(tmp_path) -> None:
    """Peak RSS of detect on a 256 MiB tomogram: under 25 % of the file on top of the
    interpreter (issue 14: it was 140 %, scanned pages were never released)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import mrcfile

    shape = (256, 512, 512)  # 256 MiB float32
    path = tmp_path / "big.mrc"
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2) as m:
        m.voxel_size = 10.0
        rng = np.random.default_rng(0)
        for z in range(0, shape[0], 32):  # real data, not a sparse file
            m.data[z : z + 32] = rng.standard_normal((32, *shape[1:]), dtype=np.float32)
    size_kib = path.stat().st_size / 1024
    budget = 32 * 2**20
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(budget)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    base_kib, peak_kib = (int(v) for v in res.stdout.split())
    assert peak_kib - base_kib < 0.25 * size_kib, (base_kib, peak_kib, size_kib)
