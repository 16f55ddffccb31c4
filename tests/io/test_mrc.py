"""cryoal.io.mrc: memory-mapped reading with strict checks, atomic writing."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryoal.io.mrc import check_finite_voxels, open_tomogram, read_volume, write_mrc


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 7, 8)).astype(np.float32)


def test_round_trip_keeps_data_voxel_size_and_origin(tmp_path: Path, volume: np.ndarray) -> None:
    path = write_mrc(tmp_path / "t.mrc", volume, 13.5, origin_zyx_A=(1.0, 2.0, 3.0))
    with open_tomogram(path) as t:
        assert t.shape == (6, 7, 8)  # zyx, never transposed
        assert t.voxel_size_A == pytest.approx(13.5)
        assert t.origin_zyx_A == (1.0, 2.0, 3.0)
        np.testing.assert_array_equal(t.data, volume)
        assert isinstance(t.data, np.memmap)
        with pytest.raises(ValueError):
            t.data[0, 0, 0] = 1.0  # read-only map
    # Other software reads the same header values (x, y, z order in the header).
    with mrcfile.open(path) as m:
        assert (int(m.header.nx), int(m.header.ny), int(m.header.nz)) == (8, 7, 6)
        assert float(m.voxel_size.x) == pytest.approx(13.5)
        assert float(m.header.origin.x) == 3.0


def test_write_converts_dtypes_without_losing_values(tmp_path: Path) -> None:
    labels = np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4)
    write_mrc(tmp_path / "l.mrc", labels, 10.0)
    with open_tomogram(tmp_path / "l.mrc") as t:
        assert t.dtype == np.int8
        np.testing.assert_array_equal(t.data, labels)
    write_mrc(tmp_path / "d.mrc", labels * 1000.0, 10.0)
    with open_tomogram(tmp_path / "d.mrc") as t:
        assert t.dtype == np.float32
    with pytest.raises(ValueError, match="do not fit"):
        write_mrc(tmp_path / "big.mrc", labels + 2**40, 10.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), None])
def test_write_refuses_missing_voxel_size(tmp_path: Path, volume: np.ndarray, bad) -> None:
    with pytest.raises(ValueError, match="voxel size"):
        write_mrc(tmp_path / "t.mrc", volume, bad)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_does_not_overwrite(tmp_path: Path, volume: np.ndarray) -> None:
    path = write_mrc(tmp_path / "t.mrc", volume, 10.0)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_mrc(path, volume * 2, 10.0)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="cannot be written"):
        write_mrc(tmp_path / "c.mrc", volume.astype(np.complex64), 10.0, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mrc"]  # no temp file left
    write_mrc(path, volume * 2, 10.0, overwrite=True)
    with open_tomogram(path) as t:
        np.testing.assert_array_equal(t.data, volume * 2)


def test_voxel_size_zero_needs_an_explicit_value(tmp_path: Path, volume: np.ndarray) -> None:
    path = tmp_path / "zero.mrc"
    with mrcfile.new(path) as m:
        m.set_data(volume)  # voxel size left at 0
    with pytest.raises(ValueError, match=r"voxel size in the header is 0\.0 Å.*--voxel-size"):
        open_tomogram(path)
    with open_tomogram(path, voxel_size_A=8.0) as t:
        assert t.voxel_size_A == 8.0
    with pytest.raises(ValueError, match="must be > 0"):
        open_tomogram(path, voxel_size_A=0.0)


def test_truncated_file_is_reported_as_truncated(tmp_path: Path, volume: np.ndarray) -> None:
    path = write_mrc(tmp_path / "t.mrc", volume, 10.0)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=rf"t\.mrc: .*truncated: {len(data) - 100} bytes on disk"):
        open_tomogram(path)


def test_corrupt_header_names_the_problem(tmp_path: Path, volume: np.ndarray) -> None:
    path = write_mrc(tmp_path / "t.mrc", volume, 10.0)
    raw = bytearray(path.read_bytes())
    raw[208:212] = b"XXXX"  # the "MAP " id string
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="Map ID string") as err:
        open_tomogram(path)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_short_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.mrc"
    path.write_bytes(b"not an mrc" * 5)
    with pytest.raises(ValueError, match="not a readable MRC") as err:
        open_tomogram(path)
    assert "Traceback" not in str(err.value)


def test_two_dimensional_and_unsupported_mode(tmp_path: Path) -> None:
    with mrcfile.new(tmp_path / "image.mrc") as m:
        m.set_data(np.zeros((5, 6), np.float32))
        m.voxel_size = 10.0
    with pytest.raises(ValueError, match=r"2-D with shape \(5, 6\)"):
        open_tomogram(tmp_path / "image.mrc")
    with mrcfile.new(tmp_path / "complex.mrc") as m:
        m.set_data(np.zeros((2, 3, 4), np.complex64))
        m.voxel_size = 10.0
    with pytest.raises(ValueError, match="mode 4 is not supported"):
        open_tomogram(tmp_path / "complex.mrc")


def test_anisotropic_voxels_rejected(tmp_path: Path, volume: np.ndarray) -> None:
    with mrcfile.new(tmp_path / "a.mrc") as m:
        m.set_data(volume)
        m.voxel_size = (10.0, 10.0, 20.0)
    with pytest.raises(ValueError, match="anisotropic"):
        open_tomogram(tmp_path / "a.mrc")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mrc: tomogram file not found"):
        open_tomogram(tmp_path / "nope.mrc")
    with pytest.raises(IsADirectoryError):
        open_tomogram(tmp_path)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_nan_check_is_on_demand_and_finds_late_slabs(
    tmp_path: Path, volume: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume[5, 2, 3] = np.nan
    path = write_mrc(tmp_path / "nan.mrc", volume, 10.0)
    with open_tomogram(path) as t:  # not checked unless asked
        assert np.isnan(t.data[5, 2, 3])
    with pytest.raises(ValueError, match=r"1 NaN/Inf voxels \(first at z=5, y=2, x=3\)"):
        open_tomogram(path, check_finite=True)
    # The scan goes slab by slab; a value in the last of many slabs is still found.
    import cryoal.io.mrc as mrc_module

    monkeypatch.setattr(mrc_module, "_FINITE_CHECK_SLAB_BYTES", 64 * 64 * 4 * 3)
    big = np.zeros((40, 64, 64), np.float32)
    big[-1, -1, -1] = np.inf
    with pytest.raises(ValueError, match="first at z=39"):
        check_finite_voxels(big, "big")


def test_reads_real_shared_map(shared_structures: Path) -> None:
    path = shared_structures / "maps_10A" / "1bxn.mrc"
    with open_tomogram(path) as t:
        assert t.voxel_size_A == pytest.approx(10.0, rel=1e-3)
        assert len(t.shape) == 3 and min(t.shape) > 8
        assert np.isfinite(np.asarray(t.data)).all()
        assert float(np.asarray(t.data).max()) > 0


# -- issue 14: permuted axes, compressed tomograms --------------------------------------------
@pytest.mark.parametrize("order", [(3, 2, 1), (2, 3, 1), (1, 3, 2), (3, 1, 2)])
def test_permuted_axes_are_read_as_zyx_without_copying(tmp_path: Path, order) -> None:
    """A file whose columns/rows/sections are not x/y/z (mapc, mapr, maps != 1, 2, 3)."""
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((6, 7, 8)).astype(np.float32)  # the true (z, y, x)
    mapc, mapr, maps = order
    letter = {1: 2, 2: 1, 3: 0}  # real axis -> index in (z, y, x)
    stored = vol.transpose(letter[maps], letter[mapr], letter[mapc])  # (section, row, column)
    path = tmp_path / "permuted.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.ascontiguousarray(stored))
        m.header.mapc, m.header.mapr, m.header.maps = mapc, mapr, maps
        m.voxel_size = 10.0
    with open_tomogram(path) as tomo:
        assert tomo.shape == (6, 7, 8)
        np.testing.assert_array_equal(tomo.data, vol)
        assert np.shares_memory(tomo.data, tomo._handle.data)  # a view of the memory map
    data, vs = read_volume(path)
    np.testing.assert_array_equal(data, vol)


def test_invalid_axis_order_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad_axes.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((4, 4, 4), np.float32))
        m.voxel_size = 10.0
    raw = bytearray(path.read_bytes())
    raw[64:76] = np.array([1, 1, 3], "<i4").tobytes()  # mapc, mapr, maps
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"mapc, mapr, maps = \(1, 1, 3\) is not a permutation"):
        open_tomogram(path)


@pytest.mark.parametrize(("compress", "tool"), [("gzip", "gunzip"), ("bz2", "bunzip2")])
def test_a_compressed_tomogram_is_refused_with_the_command(tmp_path: Path, compress, tool) -> None:
    import bz2
    import gzip

    plain = write_mrc(tmp_path / "t.mrc", np.ones((4, 5, 6), np.float32), 10.0)
    module = gzip if compress == "gzip" else bz2
    packed = tmp_path / ("t.mrc.gz" if compress == "gzip" else "t.mrc.bz2")
    packed.write_bytes(module.compress(plain.read_bytes()))
    with pytest.raises(ValueError) as err:
        open_tomogram(packed)
    msg = str(err.value)
    assert "compressed MRC cannot be memory-mapped" in msg and f"'{tool} {packed}'" in msg
    assert "truncated" not in msg
    data, vs = read_volume(packed)  # small maps: read into memory
    assert data.shape == (4, 5, 6) and vs == 10.0


def test_label_map_names_its_values_in_the_header(tmp_path) -> None:
    from cryoal.io.mrc import class_labels, read_class_names

    names = ["background", *(f"complex_{k:02d}" for k in range(20)), "membrane"]
    labels = class_labels(names)
    assert 1 < len(labels) <= 9 and all(len(t) <= 80 for t in labels)
    write_mrc(tmp_path / "l.mrc", np.zeros((2, 4, 4), np.uint8), 10.0, labels=labels)
    assert read_class_names(tmp_path / "l.mrc") == names
    write_mrc(tmp_path / "plain.mrc", np.zeros((2, 4, 4), np.uint8), 10.0)
    assert read_class_names(tmp_path / "plain.mrc") == []
    # names that cannot be written unambiguously, or too many, leave the map unnamed
    assert class_labels(["background", "a,b"]) == []
    assert class_labels([f"c{k:03d}" for k in range(200)]) == []
