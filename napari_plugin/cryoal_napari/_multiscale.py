"""Lazy binned levels of a memory-mapped tomogram: a multiscale pyramid in bounded memory.

napari draws a multiscale image's coarsest level in 3D and picks a level by zoom in 2D.
:class:`BinnedLevel` computes a level on request from the full-resolution memory map,
``factor`` planes at a time, and tells the kernel to unmap the planes it has read
(:class:`cryoal.io.volume.PlaneWindow`), so switching a 800 MB tomogram to 3D reads the
file once and keeps only the small binned result in memory.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from cryoal.io.volume import PlaneWindow

#: A level is added (binning by 2 more) while the coarsest one is larger than this.
COARSEST_LEVEL_BYTES = 32 * 2**20
#: Results of this many distinct requests are kept (napari asks for the same ones again).
_CACHE_ENTRIES = 4
#: Requests larger than this are not cached.
_CACHE_MAX_BYTES = 64 * 2**20


def _as_range(key: object, size: int) -> tuple[int, int, bool]:
    """``(start, stop, squeeze)`` for an int or a unit-step slice along an axis of ``size``."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step != 1:
            raise IndexError("step")
        return start, max(start, stop), False
    if isinstance(key, (int, np.integer)):
        i = int(key) + (size if int(key) < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"index {int(key)} out of range for size {size}")
        return i, i + 1, True
    raise IndexError("unsupported")


class BinnedLevel:
    """One level of a pyramid: ``source`` binned by ``factor`` along z, y and x.

    Behaves as a read-only ``(z, y, x)`` array for napari (``shape``, ``dtype``, ``ndim``,
    ``size``, ``__getitem__``, ``__array__``); values are computed when indexed.

    Parameters
    ----------
    source
        ``(Z, Y, X)`` array, typically a read-only memory map.
    factor
        Bin size, >= 2. The level's shape is ``(Z, Y, X) // factor``; a partial block at
        the far edge is left out.
    reduce
        ``"mean"``: block means (float32, for density); ``"nearest"``: the first voxel of
        each block (keeps integer label values).
    """

    def __init__(self, source: np.ndarray, factor: int, reduce: str = "mean") -> None:
        if factor < 2:
            raise ValueError(f"bin factor {factor} must be >= 2")
        if reduce not in ("mean", "nearest"):
            raise ValueError(f"reduce {reduce!r} must be 'mean' or 'nearest'")
        if any(s < factor for s in source.shape):
            raise ValueError(f"volume {source.shape} is smaller than the bin factor {factor}")
        self.source = source
        self.factor = int(factor)
        self.reduce = reduce
        self.shape: tuple[int, int, int] = tuple(int(s) // self.factor for s in source.shape)  # type: ignore[assignment]
        self.dtype = np.dtype(np.float32) if reduce == "mean" else np.dtype(source.dtype)
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"BinnedLevel(shape={self.shape}, factor={self.factor}, reduce={self.reduce!r})"

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: object = None) -> np.ndarray:
        out = self[:, :, :]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: object) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        try:
            ranges = [_as_range(k, s) for k, s in zip(key, self.shape, strict=True)]
        except (IndexError, ValueError, TypeError):
            # Fancy or strided indexing: compute the whole level, then index it.
            return np.asarray(self)[key]
        cache_key = tuple(r[:2] for r in ranges)
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is None:
                hit = self._compute(*(r[:2] for r in ranges))
                if hit.nbytes <= _CACHE_MAX_BYTES:
                    self._cache[cache_key] = hit
                    while len(self._cache) > _CACHE_ENTRIES:
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(cache_key)
        squeeze = tuple(i for i, r in enumerate(ranges) if r[2])
        return hit.squeeze(axis=squeeze) if squeeze else hit

    def _compute(self, zr: tuple[int, int], yr: tuple[int, int], xr: tuple[int, int]) -> np.ndarray:
        f = self.factor
        (z0, z1), (y0, y1), (x0, x1) = zr, yr, xr
        out = np.empty((z1 - z0, y1 - y0, x1 - x0), dtype=self.dtype)
        window = PlaneWindow(self.source)
        ys, xs = slice(y0 * f, y1 * f), slice(x0 * f, x1 * f)
        for k, z in enumerate(range(z0, z1)):
            window.prefetch_to((z + 2) * f)
            if self.reduce == "nearest":
                out[k] = self.source[z * f, ys.start : ys.stop : f, xs.start : xs.stop : f]
            else:
                # Sum the f planes, then the f x f in-plane offsets: strided adds are much
                # faster than a mean over the axes of a (f, ny, f, nx, f) reshape.
                acc = np.zeros(((y1 - y0) * f, (x1 - x0) * f), dtype=np.float32)
                for dz in range(f):
                    np.add(acc, self.source[z * f + dz, ys, xs], out=acc, casting="unsafe")
                plane = out[k]
                plane[...] = 0.0
                for i in range(f):
                    for j in range(f):
                        plane += acc[i::f, j::f]
                plane *= np.float32(1.0 / f**3)
            if window.active:
                window.release_below((z + 1) * f)
        window.release_all()
        return out


def pyramid(
    source: np.ndarray, reduce: str = "mean", coarsest_bytes: int | None = None
) -> list[np.ndarray | BinnedLevel]:
    """``[source, bin 2, bin 4, ...]`` until the coarsest level holds <= ``coarsest_bytes``.

    Parameters
    ----------
    source
        ``(z, y, x)`` full-resolution array (a memory map; never copied).
    reduce
        See :class:`BinnedLevel`.
    coarsest_bytes
        Size (bytes, at the level's dtype) the coarsest level must fit in; default
        :data:`COARSEST_LEVEL_BYTES`.
    """
    limit = COARSEST_LEVEL_BYTES if coarsest_bytes is None else coarsest_bytes
    levels: list[np.ndarray | BinnedLevel] = [source]
    factor = 2
    while True:
        if any(s < factor for s in source.shape):
            break
        level = BinnedLevel(source, factor, reduce=reduce)
        levels.append(level)
        if level.nbytes <= limit:
            break
        factor *= 2
    return levels
