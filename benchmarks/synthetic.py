"""Synthetic inputs shared by the benchmarks (imported from ``benchmarks/``, not installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_noise_tomogram(
    path: Path, shape: tuple[int, int, int], *, seed: int = 0, voxel_size_A: float = 10.0
) -> int:
    """Write Gaussian noise as a float32 MRC through a memory map, 8 planes at a time.

    Parameters
    ----------
    path
        The MRC to (over)write.
    shape
        ``(z, y, x)`` voxels; 200 × 1024 × 1024 is an 800 MiB tomogram.
    seed
        Seed of the noise.
    voxel_size_A
        Voxel size written to the header, Å.

    Returns
    -------
    int
        Bytes of voxel data written.
    """
    import mrcfile

    rng = np.random.default_rng(seed)
    with mrcfile.new_mmap(str(path), shape=shape, mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = voxel_size_A
        for z in range(0, shape[0], 8):
            n = min(8, shape[0] - z)
            mrc.data[z : z + n] = rng.standard_normal((n, *shape[1:]), dtype=np.float32)
        mrc.update_header_stats()
    return int(np.prod(shape)) * 4
