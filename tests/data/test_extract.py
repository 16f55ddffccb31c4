"""cryoal.data.extract: subtomograms from (memory-mapped) tomograms."""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoal.data.extract import (
    centre_indices,
    extract_subtomograms,
    extract_to_store,
    iter_subtomograms,
)
from cryoal.io.mrc import open_tomogram, write_mrc
from cryoal.io.store import SubtomogramStore
from cryoal.io.volume import estimate_mean

SHAPE = (30, 40, 50)


@pytest.fixture
def ramp() -> np.ndarray:
    """Each voxel holds its own linear index, so any box tells where it came from."""
    return np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


def _table(centres: np.ndarray, tomo: str = "T", classes=None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "candidate_id": [f"{tomo}:{i:06d}" for i in range(len(centres))],
            "tomo_id": tomo,
            "z": centres[:, 0],
            "y": centres[:, 1],
            "x": centres[:, 2],
        }
    )
    if classes is not None:
        df["class_name"] = classes
    return df


def test_rounding_convention_centre_lands_at_box_half(ramp: np.ndarray) -> None:
    assert centre_indices(np.array([[10.5, 10.49, -0.5]])).tolist() == [[11, 10, 0]]
    for box in (8, 9):
        centres = np.array([[10.5, 12.49, 20.0], [15.2, 20.0, 24.7]])
        subs, kept = extract_subtomograms(ramp, centres, box)
        h = box // 2
        # (10.5, 12.49, 20) -> voxel (11, 12, 20); it sits at [h, h, h]
        assert subs[0, h, h, h] == ramp[11, 12, 20]
        assert subs[1, h, h, h] == ramp[15, 20, 25]
        np.testing.assert_array_equal(
            subs[0], ramp[11 - h : 11 - h + box, 12 - h : 12 - h + box, 20 - h : 20 - h + box]
        )
        assert kept.tolist() == [0, 1]


def test_matches_plain_slicing_and_keeps_input_order(ramp: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    box = 10
    centres = np.stack([rng.uniform(5, s - 5, 200) for s in SHAPE], 1)
    subs, kept = extract_subtomograms(ramp, centres, box)
    assert subs.shape == (200, box, box, box) and subs.dtype == np.float32
    for i in range(0, 200, 17):
        s = centre_indices(centres[i]) - box // 2
        np.testing.assert_array_equal(
            subs[i], ramp[s[0] : s[0] + box, s[1] : s[1] + box, s[2] : s[2] + box]
        )
    # iterating yields every row once, walking the volume in z order
    rows, firsts = [], []
    for batch in iter_subtomograms(ramp, centres, box, batch_size=64):
        rows.extend(batch.rows.tolist())
        firsts.extend((centre_indices(centres[batch.rows])[:, 0]).tolist())
    assert sorted(rows) == list(range(200)) and firsts == sorted(firsts)


class _RecordingVolume:
    """A (z, y, x) volume that records every region read from it."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.shape, self.ndim, self.dtype = data.shape, data.ndim, data.dtype
        self.touched = np.zeros(data.shape, dtype=bool)

    def __getitem__(self, key):
        self.touched[key] = True
        return self._data[key]


def test_reads_only_the_boxes(ramp: np.ndarray) -> None:
    vol = _RecordingVolume(ramp)
    centres = np.array([[8.0, 9.0, 10.0], [20.0, 30.0, 40.0]])
    subs, _ = extract_subtomograms(vol, centres, 6, pad_value=0.0)
    expected = np.zeros(SHAPE, dtype=bool)
    for c in centre_indices(centres):
        s = c - 3
        expected[s[0] : s[0] + 6, s[1] : s[1] + 6, s[2] : s[2] + 6] = True
    np.testing.assert_array_equal(vol.touched, expected)
    assert vol.touched.sum() == 2 * 6**3


def test_pad_uses_the_given_value_and_keeps_the_inside(ramp: np.ndarray) -> None:
    box = 8
    subs, kept = extract_subtomograms(ramp, np.array([[1.0, 2.0, 48.0]]), box, pad_value=-7.0)
    # start = (1 - 4, 2 - 4, 48 - 4) = (-3, -2, 44): rows z < 3, y < 2, x >= 6 are outside
    assert (
        (subs[0, :3] == -7).all()
        and (subs[0, :, :2] == -7).all()
        and (subs[0, :, :, 6:] == -7).all()
    )
    np.testing.assert_array_equal(subs[0, 3:, 2:, :6], ramp[0:5, 0:6, 44:50])
    # default fill is the volume's mean estimated from sampled planes
    subs, _ = extract_subtomograms(ramp, np.array([[0.0, 0.0, 0.0]]), box)
    assert subs[0, 0, 0, 0] == pytest.approx(estimate_mean(ramp))
    assert estimate_mean(ramp) == pytest.approx(ramp.mean(), rel=1e-6)  # all planes sampled here


def test_skip_drops_edge_boxes_with_a_warning(ramp: np.ndarray) -> None:
    centres = np.array([[1.0, 20.0, 25.0], [15.0, 20.0, 25.0], [15.0, 39.0, 25.0]])
    with pytest.warns(UserWarning, match="skipped 2 of 3"):
        subs, kept = extract_subtomograms(ramp, centres, 8, edge="skip")
    assert kept.tolist() == [1] and subs.shape == (1, 8, 8, 8)


def test_error_policy_and_bad_requests(ramp: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"tomo\.mrc: 1 of 2 boxes of 8 voxels do not fit.*row 1"):
        extract_subtomograms(
            ramp, np.array([[15.0, 20, 25], [15.0, 20, 47]]), 8, edge="error", source="tomo.mrc"
        )
    with pytest.raises(
        ValueError, match=r"box 31 is larger than the tomogram \(z, y, x\) = \(30, 40, 50\)"
    ):
        extract_subtomograms(ramp, np.array([[15.0, 20, 25]]), 31)
    with pytest.raises(ValueError, match="centres lie outside the tomogram"):
        extract_subtomograms(ramp, np.array([[15.0, 20, 60]]), 8)  # pad cannot invent a box
    with pytest.raises(ValueError, match="non-finite centre"):
        extract_subtomograms(ramp, np.array([[np.nan, 20, 25]]), 8)
    with pytest.raises(ValueError, match="edge policy 'wrap'"):
        extract_subtomograms(ramp, np.array([[15.0, 20, 25]]), 8, edge="wrap")


def test_normalise_per_subtomogram(ramp: np.ndarray) -> None:
    subs, _ = extract_subtomograms(
        ramp, np.array([[10.0, 10, 10], [20.0, 30, 30]]), 8, normalise=True
    )
    np.testing.assert_allclose(subs.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(subs.std(axis=(1, 2, 3)), 1.0, rtol=1e-4)
    flat, _ = extract_subtomograms(
        np.ones(SHAPE, np.float32), np.array([[10.0, 10, 10]]), 8, normalise=True
    )
    assert (flat == 0).all()  # a constant box is only centred, never divided by 0


def test_memory_mapped_tomogram_and_integer_modes(tmp_path: Path, ramp: np.ndarray) -> None:
    path = write_mrc(tmp_path / "t.mrc", (ramp % 100).astype(np.int16), 10.0)
    with open_tomogram(path) as t:
        subs, _ = extract_subtomograms(t.data, np.array([[10.0, 10, 10]]), 6)
        assert subs.dtype == np.float32
        np.testing.assert_array_equal(subs[0], (ramp % 100)[7:13, 7:13, 7:13])


def test_extract_to_store_round_trip(tmp_path: Path, ramp: np.ndarray) -> None:
    write_mrc(tmp_path / "T.mrc", ramp, 12.0)
    rng = np.random.default_rng(1)
    centres = np.stack([rng.uniform(4, s - 4, 40) for s in SHAPE], 1)
    classes = ["b", "a", ""] * 13 + ["a"]
    out = extract_to_store(
        tmp_path / "T.mrc",
        _table(centres, classes=classes),
        tmp_path / "s.h5",
        8,
        normalise=False,
    )
    s = SubtomogramStore(out)
    assert len(s) == 40 and s.box == 8 and s.voxel_size_A == 12.0
    assert s.class_names == ["a", "b"]  # sorted distinct names; "" = unlabeled
    rows = s.index_of([f"T:{i:06d}" for i in range(40)])
    expected, _ = extract_subtomograms(ramp, centres, 8)
    np.testing.assert_array_equal(s.subtomograms(rows), expected)
    np.testing.assert_allclose(s.centres_zyx[rows], centres)
    assert s.labels[rows].tolist() == [{"a": 0, "b": 1, "": -1}[c] for c in classes]
    assert set(s.tomo_ids) == {"T"} and s.extra_attrs["edge"] == "pad"


def test_extract_to_store_two_tomograms_and_voxel_size_mismatch(
    tmp_path: Path, ramp: np.ndarray
) -> None:
    write_mrc(tmp_path / "A.mrc", ramp, 10.0)
    write_mrc(tmp_path / "B.mrc", -ramp, 10.0)
    write_mrc(tmp_path / "C.mrc", ramp, 20.0)
    c = np.array([[10.0, 10, 10], [12.0, 15, 20]])
    table = pd.concat([_table(c, "A"), _table(c, "B")], ignore_index=True)
    out = extract_to_store(
        {"A": tmp_path / "A.mrc", "B": tmp_path / "B.mrc"},
        table,
        tmp_path / "s.h5",
        6,
        normalise=False,
    )
    s = SubtomogramStore(out)
    np.testing.assert_array_equal(
        s.subtomograms(s.index_of(["B:000001"]))[0], -ramp[9:15, 12:18, 17:23]
    )
    with pytest.raises(ValueError, match="cover 2 tomograms"):
        extract_to_store(tmp_path / "A.mrc", table, tmp_path / "x.h5", 6)
    with pytest.raises(ValueError, match=r"C\.mrc: voxel size 20 Å differs from 10 Å"):
        extract_to_store(
            {"A": tmp_path / "A.mrc", "B": tmp_path / "C.mrc"},
            table,
            tmp_path / "x.h5",
            6,
        )
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_extract_to_store_stops_on_nan_and_leaves_nothing(tmp_path: Path, ramp: np.ndarray) -> None:
    ramp = ramp.copy()
    ramp[20, 20, 20] = np.nan
    write_mrc(tmp_path / "T.mrc", ramp, 10.0)
    table = _table(np.array([[5.0, 5, 5], [20.0, 21, 19]]))
    with pytest.raises(
        ValueError, match=r"T\.mrc: the subtomogram of candidate 'T:000001'.*NaN/Inf"
    ):
        extract_to_store(tmp_path / "T.mrc", table, tmp_path / "s.h5", 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.mrc"]


def test_real_map_is_found_at_its_centre(tmp_path: Path, shared_structures: Path) -> None:
    """Paste a real 10 Å density map into a tomogram and cut it back out at its centre."""
    with mrcfile.open(shared_structures / "maps_10A" / "1bxn.mrc") as m:
        density = np.asarray(m.data, dtype=np.float32)
    b = min(density.shape)
    if b % 2:
        b -= 1
    density = density[:b, :b, :b]
    tomo = np.random.default_rng(0).normal(0, 0.01, (80, 96, 112)).astype(np.float32)
    corner = np.array([20, 30, 40])
    tomo[corner[0] : corner[0] + b, corner[1] : corner[1] + b, corner[2] : corner[2] + b] += density
    write_mrc(tmp_path / "t.mrc", tomo, 10.0)
    # The paste's box centre is corner + b/2 (index b//2 of the pasted box).
    table = _table((corner + b // 2)[None].astype(float) + np.array([[0.3, -0.2, 0.4]]))
    out = extract_to_store(tmp_path / "t.mrc", table, tmp_path / "s.h5", b, normalise=False)
    got = SubtomogramStore(out).subtomograms([0])[0]
    np.testing.assert_allclose(
        got, tomo[corner[0] : corner[0] + b, corner[1] : corner[1] + b, corner[2] : corner[2] + b]
    )
    # one voxel off would correlate clearly worse
    shifted, _ = extract_subtomograms(
        tomo, (corner + b // 2 + np.array([0, 0, 1]))[None].astype(float), b
    )
    cc = lambda a, c: float(np.corrcoef(a.ravel(), c.ravel())[0, 1])  # noqa: E731
    assert cc(got, density) > 0.99 > cc(shifted[0], density)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about on a clean run
        extract_to_store(tmp_path / "t.mrc", table, tmp_path / "s.h5", b, overwrite=True)


def test_cli_extract_cuts_each_box_from_the_odd_and_even_halves_too(
    tmp_path: Path, ramp: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryoal.cli.main import run

    write_mrc(tmp_path / "T.mrc", ramp, 12.0)
    write_mrc(tmp_path / "odd.mrc", ramp + 1.0, 12.0)
    write_mrc(tmp_path / "even.mrc", -ramp, 12.0)
    write_mrc(tmp_path / "small.mrc", ramp[:20], 12.0)
    rng = np.random.default_rng(2)
    centres = np.stack([rng.uniform(4, s - 4, 12) for s in SHAPE], 1)
    _table(centres).to_csv(tmp_path / "picks.csv", index=False)
    args = ["extract", str(tmp_path / "T.mrc"), str(tmp_path / "picks.csv"), "--box", "8",
            "--coords-unit", "pixel", "--no-normalise", "--no-progress"]  # fmt: skip
    assert run([*args, str(tmp_path / "s.h5"), "--odd", str(tmp_path / "odd.mrc")]) == 2
    assert "give both --odd and --even" in capsys.readouterr().err
    bad = [*args, str(tmp_path / "bad.h5"), "--odd", str(tmp_path / "small.mrc"),
           "--even", str(tmp_path / "even.mrc")]  # fmt: skip
    assert run(bad) == 2
    assert "small.mrc: shape (20, 40, 50) differs" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()
    halves = ["--odd", str(tmp_path / "odd.mrc"), "--even", str(tmp_path / "even.mrc")]
    assert run([*args, str(tmp_path / "s.h5"), *halves]) == 0
    with SubtomogramStore(tmp_path / "s.h5") as s:
        rows = s.index_of([f"T:{i:06d}" for i in range(12)])
        boxes, _ = extract_subtomograms(ramp, centres, 8)
        np.testing.assert_array_equal(s.subtomograms(rows), boxes)
        np.testing.assert_array_equal(s.halves(rows)[:, 0], boxes + 1.0)
        np.testing.assert_array_equal(s.halves(rows)[:, 1], -boxes)
