"""cryoal.io.volume: bounded-memory reading of memory-mapped volumes."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryoal.io.mrc import open_tomogram, write_mrc
from cryoal.io.volume import PlaneWindow, estimate_mean, header_mean, volume_stats


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status RssFile on this platform")


def test_volume_stats_slab_by_slab_with_nan() -> None:
    vol = np.random.default_rng(0).standard_normal((30, 40, 50)).astype(np.float32) * 3 + 1
    vol[3, 3, 3] = np.nan
    finite = vol[np.isfinite(vol)].astype(np.float64)
    stats = volume_stats(vol, slab_bytes=vol[0].nbytes * 4)  # 8 slabs
    assert stats.n_nonfinite == 1
    assert stats.min == finite.min() and stats.max == finite.max()
    assert stats.mean == pytest.approx(finite.mean(), rel=1e-9)
    assert stats.std == pytest.approx(finite.std(), rel=1e-6)


def test_header_mean_valid_and_unknown(tmp_path: Path) -> None:
    path = write_mrc(tmp_path / "c.mrc", np.full((4, 4, 4), 3.0, np.float32), 10.0)
    assert header_mean(path) == 3.0
    with mrcfile.new(tmp_path / "nostats.mrc") as m:
        m.set_data(np.full((4, 4, 4), 2.0, np.float32))
        m.voxel_size = 10.0
        m.header.dmin, m.header.dmax, m.header.dmean, m.header.rms = 0, -1, -2, -1  # "unknown"
    assert header_mean(tmp_path / "nostats.mrc") is None
    with open_tomogram(tmp_path / "nostats.mrc") as t:
        assert estimate_mean(t.data, t.path) == 2.0  # falls back to sampled planes
    ramp = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 3, 3), np.float32)
    # 16 evenly spaced planes of 0..39 (rounded linspace) average to 19.5 like the whole
    assert estimate_mean(ramp) == pytest.approx(19.5)


def test_plane_window_releases_mapped_pages(tmp_path: Path) -> None:
    shape = (64, 512, 512)  # 64 MiB
    path = write_mrc(tmp_path / "big.mrc", np.ones(shape, np.float32), 10.0)
    with open_tomogram(path) as t:
        window = PlaneWindow(t.data)
        assert window.active
        before = _rss_file_kb()
        window.prefetch_to(shape[0])
        assert float(np.asarray(t.data).sum(dtype=np.float64)) == np.prod(shape)
        touched = _rss_file_kb()
        window.release_below(shape[0])
        released = _rss_file_kb()
        assert touched - before > 48 * 1024  # the whole map was resident
        assert touched - released > 48 * 1024  # and is unmapped again
        # released planes read correctly when touched again
        assert float(t.data[10, 5, 5]) == 1.0
    assert not PlaneWindow(np.ones((2, 2, 2))).active  # in-memory arrays: a no-op
