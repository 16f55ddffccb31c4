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
