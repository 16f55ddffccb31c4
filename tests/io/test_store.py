"""cryoal.io.store: the HDF5 subtomogram store (layout, atomic writing, worker safety)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cryoal.io.store import FORMAT_VERSION, StoreWriter, SubtomogramStore

BOX = 8


def _batch(rng: np.random.Generator, n: int, start: int) -> dict:
    return {
        "subtomograms": rng.standard_normal((n, BOX, BOX, BOX)).astype(np.float32),
        "ids": [f"TS_01:{k:06d}" for k in range(start, start + n)],
        "labels": rng.integers(-1, 3, n),
        "centres_zyx": rng.uniform(0, 100, (n, 3)),
        "tomo_ids": ["TS_01"] * n,
        "masks": rng.integers(0, 3, (n, BOX, BOX, BOX)).astype(np.uint8),
        "meta": {"snr": rng.uniform(0, 1, n), "rotation": rng.uniform(-1, 1, (n, 3, 3))},
    }


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[dict]]:
    rng = np.random.default_rng(0)
    batches = [_batch(rng, 5, 0), _batch(rng, 3, 5)]
    path = tmp_path / "s.h5"
    with StoreWriter(
        path,
        BOX,
        10.0,
        ["ribosome", "proteasome", "tric"],
        with_masks=True,
        extra_attrs={"snr": 0.05},
    ) as w:
        for b in batches:
            w.append(**b)
    return path, batches


def _cat(batches: list[dict], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(b[key]) for b in batches])


def test_round_trip(written: tuple[Path, list[dict]]) -> None:
    path, batches = written
    s = SubtomogramStore(path)
    assert len(s) == 8 and s.box == BOX and s.voxel_size_A == 10.0
    assert s.class_names == ["ribosome", "proteasome", "tric"]
    assert s.has_masks and s.extra_attrs["snr"] == 0.05
    np.testing.assert_array_equal(s.ids, _cat(batches, "ids"))
    np.testing.assert_array_equal(s.labels, _cat(batches, "labels"))
    np.testing.assert_allclose(s.centres_zyx, _cat(batches, "centres_zyx"))
    np.testing.assert_array_equal(s.subtomograms(slice(None)), _cat(batches, "subtomograms"))
    np.testing.assert_array_equal(s.masks([7, 0]), _cat(batches, "masks")[[7, 0]])
    # any order, repeats allowed
    np.testing.assert_array_equal(
        s.subtomograms([6, 1, 6]), _cat(batches, "subtomograms")[[6, 1, 6]]
    )
    assert s.meta_names == ["rotation", "snr"]
    np.testing.assert_allclose(
        s.meta("rotation"), np.concatenate([b["meta"]["rotation"] for b in batches])
    )
    np.testing.assert_array_equal(s.index_of(["TS_01:000006", "TS_01:000000"]), [6, 0])
    with pytest.raises(KeyError, match="TS_01:999999"):
        s.index_of(["TS_01:999999"])
    with pytest.raises(IndexError):
        s.subtomograms([8])


def test_layout_is_readable_with_plain_h5py(written: tuple[Path, list[dict]]) -> None:
    path, batches = written
    with h5py.File(path, "r") as f:
        assert f["subtomograms"].shape == (8, BOX, BOX, BOX)
        assert f["subtomograms"].chunks == (1, BOX, BOX, BOX)
        assert f["subtomograms"].compression == "gzip"
        assert list(f["ids"].asstr()[:3]) == ["TS_01:000000", "TS_01:000001", "TS_01:000002"]
        assert f["labels"].dtype == np.int64 and f["masks"].dtype == np.uint8
        assert f["centres_zyx"].shape == (8, 3)
        assert json.loads(f.attrs["class_names"]) == ["ribosome", "proteasome", "tric"]
        assert int(f.attrs["format_version"]) == FORMAT_VERSION
        assert float(f.attrs["voxel_size_A"]) == 10.0 and int(f.attrs["box"]) == BOX


def test_exception_while_writing_leaves_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with (
        pytest.raises(RuntimeError, match="simulated crash"),
        StoreWriter(tmp_path / "s.h5", BOX, 10.0, ["a", "b", "c"]) as w,
    ):
        b = _batch(rng, 4, 0)
        w.append(b["subtomograms"], b["ids"], labels=b["labels"])
        raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []  # neither the store nor its .partial file


def test_invalid_append_aborts_cleanly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    b = _batch(rng, 3, 0)
    with (
        pytest.raises(ValueError, match="duplicate sample ids"),
        StoreWriter(tmp_path / "s.h5", BOX, 10.0, ["a", "b", "c"]) as w,
    ):
        w.append(b["subtomograms"], b["ids"])
        w.append(b["subtomograms"], b["ids"])
    with (
        pytest.raises(ValueError, match="label 7 out of range"),
        StoreWriter(tmp_path / "s.h5", BOX, 10.0, ["a", "b", "c"]) as w,
    ):
        w.append(b["subtomograms"], b["ids"], labels=[0, 7, 1])
    bad = b["subtomograms"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"), StoreWriter(tmp_path / "s.h5", BOX, 10.0) as w:
        w.append(bad, b["ids"])
    assert list(tmp_path.iterdir()) == []


def test_existing_store_is_not_overwritten(written: tuple[Path, list[dict]]) -> None:
    path, _ = written
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"), StoreWriter(path, BOX, 10.0):
        pass
    assert path.read_bytes() == before


def test_truncated_store_is_reported(written: tuple[Path, list[dict]]) -> None:
    path, _ = written
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"s\.h5: .*truncated"):
        SubtomogramStore(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        SubtomogramStore(path.with_name("missing.h5"))


def test_float16_storage_reads_back_as_float32(tmp_path: Path) -> None:
    x = np.random.default_rng(3).standard_normal((2, BOX, BOX, BOX)).astype(np.float32)
    with StoreWriter(tmp_path / "h.h5", BOX, 5.0, dtype="float16") as w:
        w.append(x, ["a", "b"])
    s = SubtomogramStore(tmp_path / "h.h5")
    assert s.dtype == np.float16
    out = s.subtomograms([0, 1])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x, atol=2e-3, rtol=1e-3)
    assert (s.labels == -1).all() and s.class_names == []


class _StoreDataset(Dataset):
    def __init__(self, store: SubtomogramStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = self.store.subtomograms([i])[0]
        return torch.from_numpy(x)[None], int(self.store.labels[i]), i


def test_store_pickles_and_feeds_dataloader_workers(written: tuple[Path, list[dict]]) -> None:
    path, batches = written
    store = SubtomogramStore(path)
    store.subtomograms([0])  # open a handle in this process first
    clone = pickle.loads(pickle.dumps(store))  # the h5py handle is not pickled
    assert clone._file is None
    np.testing.assert_array_equal(clone.subtomograms([3]), store.subtomograms([3]))

    loader = DataLoader(_StoreDataset(store), batch_size=3, num_workers=2, shuffle=False)
    seen = {}
    for x, y, idx in loader:
        assert x.shape[1:] == (1, BOX, BOX, BOX)
        for k in range(len(idx)):
            seen[int(idx[k])] = (x[k, 0].numpy(), int(y[k]))
    expected = _cat(batches, "subtomograms")
    labels = _cat(batches, "labels")
    assert sorted(seen) == list(range(8))
    for i, (x, y) in seen.items():
        np.testing.assert_array_equal(x, expected[i])
        assert y == labels[i]


@pytest.mark.parametrize("level", [1, 0])  # the chunks copied as they are; decoded and rewritten
def test_copy_rows_appends_samples_of_another_store_unchanged(tmp_path: Path, level: int) -> None:
    rng = np.random.default_rng(0)
    sub = rng.normal(size=(5, 4, 4, 4)).astype(np.float32)
    masks = rng.integers(0, 3, size=(5, 4, 4, 4)).astype(np.uint8)
    with StoreWriter(tmp_path / "a.h5", 4, 10.0, ["x", "y"], with_masks=True,
                     compression_level=level) as w:  # fmt: skip
        w.append(sub, [f"s{i}" for i in range(5)], labels=[0, 1, -1, 1, 0],
                 centres_zyx=rng.uniform(size=(5, 3)), tomo_ids=["T1"] * 3 + ["T2"] * 2,
                 masks=masks)  # fmt: skip
    with StoreWriter(tmp_path / "b.h5", 4, 10.0, ["x", "y"], with_masks=True) as w:
        w.copy_rows(tmp_path / "a.h5", [3, 0])
        w.append(sub[:1] * 2, ["new"], masks=masks[:1])
        with pytest.raises(ValueError, match="duplicate sample ids"):
            w.copy_rows(tmp_path / "a.h5", [0])
    src, out = SubtomogramStore(tmp_path / "a.h5"), SubtomogramStore(tmp_path / "b.h5")
    assert list(out.ids) == ["s3", "s0", "new"] and list(out.labels) == [1, 0, -1]
    np.testing.assert_array_equal(out.subtomograms([0, 1]), sub[[3, 0]])
    np.testing.assert_array_equal(out.masks([0, 1]), masks[[3, 0]])
    np.testing.assert_array_equal(out.centres_zyx[:2], src.centres_zyx[[3, 0]])
    assert list(out.tomo_ids[:2]) == ["T2", "T1"]


@pytest.mark.parametrize("level", [1, 0])
def test_half_pairs_are_stored_checked_and_copied_with_their_samples(
    tmp_path: Path, level: int
) -> None:
    rng = np.random.default_rng(1)
    sub = rng.normal(size=(4, 4, 4, 4)).astype(np.float32)
    halves = rng.normal(size=(4, 2, 4, 4, 4)).astype(np.float32)
    ids = [f"s{i}" for i in range(4)]
    with StoreWriter(tmp_path / "a.h5", 4, 10.0, with_halves=True, compression_level=level) as w:
        with pytest.raises(ValueError, match="with_halves=True"):
            w.append(sub, ids)
        with pytest.raises(ValueError, match=r"halves must be \(4, 2, 4, 4, 4\)"):
            w.append(sub, ids, halves=halves[:, :1])
        w.append(sub, ids, halves=halves)
    with SubtomogramStore(tmp_path / "a.h5") as s:
        assert s.has_halves
        np.testing.assert_array_equal(s.halves([2, 0]), halves[[2, 0]])
    with StoreWriter(tmp_path / "b.h5", 4, 10.0, with_halves=True) as w:
        w.copy_rows(tmp_path / "a.h5", [3, 1])
    with SubtomogramStore(tmp_path / "b.h5") as s:
        np.testing.assert_array_equal(s.halves(slice(None)), halves[[3, 1]])
        np.testing.assert_array_equal(s.subtomograms(slice(None)), sub[[3, 1]])
    with StoreWriter(tmp_path / "c.h5", 4, 10.0) as w:  # without halves: refused, one line
        with pytest.raises(ValueError, match="half pairs"):
            w.copy_rows(tmp_path / "a.h5", [0])
        w.append(sub, ids)
    with SubtomogramStore(tmp_path / "c.h5") as s:
        assert not s.has_halves
        with pytest.raises(ValueError, match="no /halves"):
            s.halves([0])
