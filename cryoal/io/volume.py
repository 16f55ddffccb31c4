"""Reading values from memory-mapped tomograms with bounded memory.

A memory map reads only the pages that are touched, but every touched page stays mapped
into the process and counts towards its resident set size (RSS) until the mapping is
closed. On current Linux kernels the page cache often maps a file in 2 MiB folios, so
touching 32 rows of a plane can map megabytes. Code that walks a tomogram plane by plane
therefore tells the kernel, with ``madvise(MADV_DONTNEED)``, that planes it has finished
with may be unmapped. The data stay in the page cache (a later read is still fast); only
this process's mapping is dropped, so RSS stays near the size of the planes in use.
"""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryoal.io.suffixes import MRC_SUFFIXES

log = logging.getLogger(__name__)

#: Bytes read at a time by :func:`volume_stats`.
STATS_SLAB_BYTES = 64 * 2**20
#: Planes sampled by :func:`estimate_mean` when the header holds no valid mean.
MEAN_SAMPLE_PLANES = 16
#: Granularity of releases: the largest folio the page cache maps at once (x86-64 PMD).
_RELEASE_ALIGN = 2 * 2**20


def _find_mmap(array: np.ndarray) -> mmap.mmap | None:
    base: object = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base if isinstance(base, mmap.mmap) else None


class PlaneWindow:
    """Tell the kernel which planes of a memory-mapped ``(z, y, x)`` volume are in use.

    For code that walks a volume in increasing z: :meth:`prefetch_to` starts reading the
    planes ahead in the background (``MADV_WILLNEED``: large sequential reads on a cold
    page cache instead of one small read per page fault), and :meth:`release_below`
    unmaps planes the walk has passed (``MADV_DONTNEED``). Both are hints: a no-op for
    in-memory arrays, non-contiguous views and platforms without ``madvise``, and a
    released plane that is touched again is simply mapped again.

    Parameters
    ----------
    volume
        ``(z, y, x)`` array, typically ``Tomogram.data``.
    """

    def __init__(self, volume: np.ndarray) -> None:
        self._mm = _find_mmap(volume)
        self._released_to = 0  # byte offset inside the mapping already released
        self._prefetched_to = 0  # planes [0, this) already asked for
        self._start = 0
        self._plane_bytes = 0
        if self._mm is None or not hasattr(self._mm, "madvise") or volume.ndim != 3:
            self._mm = None
            return
        if not volume.flags["C_CONTIGUOUS"]:
            self._mm = None
            return
        map_address = np.frombuffer(self._mm, dtype=np.uint8).ctypes.data
        self._start = volume.ctypes.data - map_address
        self._plane_bytes = int(volume.strides[0])
        self._released_to = self._start - self._start % mmap.PAGESIZE

    @property
    def active(self) -> bool:
        """Whether releasing has any effect for this volume."""
        return self._mm is not None

    def release_below(self, z: int) -> None:
        """Unmap every whole page that lies before plane ``z``."""
        if self._mm is None:
            return
        end = self._start + int(z) * self._plane_bytes
        # Whole 2 MiB blocks only: the page cache maps large folios with one page-table
        # entry, and releasing part of one would split it (slower faults afterwards).
        end -= end % _RELEASE_ALIGN
        if end <= self._released_to:
            return
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, self._released_to, end - self._released_to)
        except (OSError, ValueError) as exc:  # unsupported here; stop trying
            log.debug("madvise failed (%s); page release disabled", exc)
            self._mm = None
            return
        self._released_to = end

    def prefetch_to(self, z: int) -> None:
        """Ask for planes up to (not including) ``z`` to be read ahead."""
        if self._mm is None or z <= self._prefetched_to:
            return
        start = self._start + self._prefetched_to * self._plane_bytes
        start -= start % mmap.PAGESIZE
        end = min(self._start + int(z) * self._plane_bytes, len(self._mm))
        if end > start:
            try:
                self._mm.madvise(mmap.MADV_WILLNEED, start, end - start)
            except (OSError, ValueError) as exc:
                log.debug("madvise(WILLNEED) failed (%s)", exc)
        self._prefetched_to = int(z)

    def release_all(self) -> None:
        """Unmap the whole mapping (the next access maps pages again)."""
        if self._mm is None:
            return
        try:
            self._mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError) as exc:
            log.debug("madvise failed (%s)", exc)
        self._released_to = self._start - self._start % mmap.PAGESIZE


@dataclass(frozen=True)
class VolumeStats:
    """Summary statistics of a volume, accumulated in float64."""

    min: float
    max: float
    mean: float
    std: float
    n_nonfinite: int


def volume_stats(volume: np.ndarray, slab_bytes: int = STATS_SLAB_BYTES) -> VolumeStats:
    """Min, max, mean and standard deviation of a ``(z, y, x)`` volume, slab by slab.

    Reads ``slab_bytes`` at a time and unmaps finished planes, so memory stays bounded
    for tomograms larger than RAM. Non-finite voxels are counted and left out.

    Parameters
    ----------
    volume
        ``(z, y, x)`` array or memory map.
    slab_bytes
        Bytes per slab read.
    """
    release = PlaneWindow(volume)
    plane = max(1, volume[0].nbytes) if volume.shape[0] else 1
    step = max(1, slab_bytes // plane)
    lo, hi = np.inf, -np.inf
    total, total_sq, count, bad = 0.0, 0.0, 0, 0
    for z0 in range(0, volume.shape[0], step):
        release.prefetch_to(z0 + 2 * step)
        block = np.asarray(volume[z0 : z0 + step], dtype=np.float64)
        finite = np.isfinite(block)
        if not finite.all():
            bad += int(block.size - finite.sum())
            block = block[finite]
        if block.size:
            lo = min(lo, float(block.min()))
            hi = max(hi, float(block.max()))
            total += float(block.sum())
            total_sq += float(np.square(block).sum())
            count += block.size
        release.release_below(z0 + step)
    release.release_all()
    if count == 0:
        return VolumeStats(float("nan"), float("nan"), float("nan"), float("nan"), bad)
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return VolumeStats(lo, hi, mean, float(np.sqrt(var)), bad)


def header_mean(path: str | os.PathLike) -> float | None:
    """The mean stored in an MRC header, or ``None`` when the header marks it unknown.

    MRC2014 marks statistics as not determined with ``dmax < dmin``, ``dmean < min(dmin,
    dmax)`` or ``rms < 0``; many writers also leave all of them at 0.
    """
    try:
        with mrcfile.open(str(path), mode="r", permissive=True, header_only=True) as m:
            h = m.header
            dmin, dmax, dmean, rms = (float(h.dmin), float(h.dmax), float(h.dmean), float(h.rms))
    except (OSError, ValueError):
        return None
    values = (dmin, dmax, dmean, rms)
    if not all(np.isfinite(values)) or dmax < dmin or rms < 0:
        return None
    if not dmin <= dmean <= dmax:
        return None
    if dmin == dmax == dmean == rms == 0.0:
        return None
    return dmean


def estimate_mean(volume: np.ndarray, path: str | os.PathLike | None = None) -> float:
    """A cheap estimate of a tomogram's mean value (used to pad subtomograms at edges).

    Uses the header's ``dmean`` when ``path`` is an MRC whose header statistics are
    valid; otherwise the mean of :data:`MEAN_SAMPLE_PLANES` evenly spaced z-planes (a
    strided sample: at most 16 planes are read, whatever the tomogram's depth).
    Non-finite voxels are ignored.
    """
    if path is not None and Path(path).suffix.lower() in MRC_SUFFIXES:
        value = header_mean(path)
        if value is not None:
            return value
    nz = volume.shape[0]
    planes = np.unique(np.linspace(0, nz - 1, num=min(MEAN_SAMPLE_PLANES, nz)).round().astype(int))
    release = PlaneWindow(volume)
    sums, count = 0.0, 0
    for z in planes:
        plane = np.asarray(volume[int(z)], dtype=np.float64)
        finite = plane[np.isfinite(plane)]
        sums += float(finite.sum())
        count += finite.size
        release.release_below(int(z) + 1)
    release.release_all()
    return sums / count if count else 0.0
