"""Template-free candidate detection: difference of Gaussians + non-maximum suppression.

For tomograms that come without picks. A blob of radius ``r`` responds most strongly to a
Laplacian-of-Gaussian (approximated by a difference of Gaussians) at ``sigma = r / sqrt(3)``;
local maxima of that response, at least ``min_distance`` apart, ranked by response, are
the candidates. It finds compact densities of roughly the right size, real particles and
junk alike: the expert (``not-a-particle``) and the classifier sort them out.

The tomogram is processed in blocks with a halo wide enough for both filters, so memory
stays bounded on a large memory-mapped tomogram and the result is exactly the one a
whole-volume computation gives. Filtering uses ``scipy.ndimage``. Each block is copied out
of the memory map a few planes at a time and the map's pages are released after each
(``PlaneWindow``), so the resident memory is the working set of one block, not the part
of the file scanned so far.
A block holding NaN/Inf stops the detection with the count and the first position.

Polarity: the DoG response is linear, so the candidates the other polarity would give are
the local minima of the same response. When those are much stronger than the requested
ones, the tomogram's particles probably have the other contrast, and a warning says so.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from cryoal.io.volume import PlaneWindow
from cryoal.progress import CountCallback

log = logging.getLogger(__name__)

#: Ratio of the two Gaussians' sigmas (1.6 approximates the Laplacian of Gaussian well).
DOG_RATIO = 1.6
#: Gaussian kernels are cut at this many sigmas (scipy's default).
TRUNCATE = 4.0
#: Working-set budget per block (bytes) when the caller gives none.
DEFAULT_MAX_MEMORY = 512 * 2**20
#: float32 arrays alive per block voxel: input, two blurs / response, maximum filter.
_ARRAYS_PER_VOXEL = 4
#: Warn about the polarity when the other polarity's top responses are this much stronger.
POLARITY_WARNING_RATIO = 1.5
#: Top responses compared for the polarity check (the strongest few: real particles).
_POLARITY_TOP = 10


@dataclass(frozen=True)
class Detections:
    """Detected candidates, best first.

    Attributes
    ----------
    positions_zyx
        ``(m, 3)`` float64 voxel positions (integer voxel centres).
    scores
        ``(m,)`` float64 DoG responses (higher = more blob-like), descending.
    """

    positions_zyx: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def detect_blobs(
    volume: np.ndarray,
    radius_px: float,
    n: int,
    *,
    polarity: str = "dark",
    min_distance_px: float | None = None,
    exclude_border_px: float | None = None,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY,
    progress: CountCallback | None = None,
    source: str = "<volume>",
) -> Detections:
    """Find up to ``n`` blob-like candidates of radius ``radius_px`` in a tomogram.

    Parameters
    ----------
    volume
        ``(z, y, x)`` tomogram, typically a read-only memory map; read block by block.
    radius_px
        Particle radius in voxels (> 0.5).
    n
        Maximum number of candidates returned (the best-scoring ones).
    polarity
        ``"dark"``: particles darker than the background (most reconstructions);
        ``"bright"``: brighter (e.g. simulated density).
    min_distance_px
        Candidates are at least this far apart (voxels); default ``radius_px``.
    exclude_border_px
        Drop candidates closer than this to a face of the volume; default ``radius_px``.
    max_memory_bytes
        Working-memory budget that sets the block size.
    progress
        Called with 1 after every block of the volume is searched.
    source
        The tomogram's file, for messages.

    Returns
    -------
    Detections
        Positions ``(m, 3)`` zyx voxels and scores ``(m,)``, ``m <= n``, sorted by
        descending score, ties by position.

    Raises
    ------
    ValueError
        Not a 3-D volume, a radius too small or too large for it, ``n < 1``, an unknown
        polarity, or NaN/Inf voxels.

    Warns
    -----
    UserWarning
        The other polarity's strongest responses are :data:`POLARITY_WARNING_RATIO` times
        stronger than the requested polarity's: the particles probably have the other
        contrast.
    """
    if volume.ndim != 3:
        raise ValueError(f"expected a (z, y, x) volume, got shape {volume.shape}")
    if not (radius_px >= 0.5) or radius_px * 2 > min(volume.shape):
        raise ValueError(
            f"particle radius {radius_px:.3g} voxels does not fit a volume of shape "
            f"{volume.shape}; give the radius in Å (--radius-A) matching the voxel size"
        )
    if n < 1:
        raise ValueError(f"number of candidates n={n} must be >= 1")
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity {polarity!r} must be 'dark' or 'bright'")
    d = float(radius_px if min_distance_px is None else min_distance_px)
    border = float(radius_px if exclude_border_px is None else exclude_border_px)
    sigma1 = radius_px / math.sqrt(3.0)
    sigma2 = sigma1 * DOG_RATIO
    d_int = max(1, int(math.ceil(d)))
    halo = int(TRUNCATE * sigma2 + 0.5) + d_int
    blocks = _blocks(volume.shape, halo, max_memory_bytes)

    best_pos = np.empty((0, 3), dtype=np.int64)
    best_score = np.empty((0,), dtype=np.float64)
    other_top = np.empty((0,), dtype=np.float64)
    window = PlaneWindow(volume)
    try:
        for core in blocks:
            pos, score, other = _block_peaks(
                volume, core, halo, sigma1, sigma2, d_int, border, polarity, source, window
            )
            best_pos = np.concatenate([best_pos, pos])
            best_score = np.concatenate([best_score, score])
            keep = _top(best_pos, best_score, n * 4)  # slack for the suppression below
            best_pos, best_score = best_pos[keep], best_score[keep]
            other_top = np.sort(np.concatenate([other_top, other]))[-_POLARITY_TOP:]
            if progress is not None:
                progress(1)
    finally:
        window.release_all()
    _check_polarity(best_score, other_top, polarity, source)

    order = _rank(best_pos, best_score)
    best_pos, best_score = best_pos[order], best_score[order]
    keep = _suppress(best_pos, d)
    best_pos, best_score = best_pos[keep][:n], best_score[keep][:n]
    log.info(
        "detected %d candidates (radius %.3g px, %d blocks)",
        len(best_score),
        radius_px,
        len(blocks),
    )
    return Detections(positions_zyx=best_pos.astype(np.float64), scores=best_score)


def _blocks(
    shape: tuple[int, ...], halo: int, max_memory_bytes: int
) -> list[tuple[slice, slice, slice]]:
    """Core regions (z, y, x slices) tiling the volume, each small enough that the core
    plus a ``halo`` on every side fits the memory budget.

    The core edge is at least ``2 * halo`` (beyond that the halo would cost more than
    the core; the budget is then exceeded and a message is logged).
    """
    budget_voxels = max(1, int(max_memory_bytes) // (4 * _ARRAYS_PER_VOXEL))
    side = int(round(budget_voxels ** (1.0 / 3.0))) - 2 * halo
    if side < 2 * halo:
        log.info("memory budget %d bytes is below a %d-voxel block; using it anyway",
                 max_memory_bytes, 4 * halo)  # fmt: skip
        side = 2 * halo
    # grow the core along x, then y, then z while the budget allows (fewer, longer reads)
    core = [min(side, s) for s in shape]
    for axis in (2, 1, 0):
        others = math.prod(
            min(c + 2 * halo, s)
            for i, (c, s) in enumerate(zip(core, shape, strict=True))
            if i != axis
        )
        room = budget_voxels // max(1, others) - 2 * halo
        core[axis] = max(core[axis], min(shape[axis], room))
    starts = [range(0, s, c) for s, c in zip(shape, core, strict=True)]
    return [
        (slice(z, min(z + core[0], shape[0])), slice(y, min(y + core[1], shape[1])),
         slice(x, min(x + core[2], shape[2])))
        for z in starts[0] for y in starts[1] for x in starts[2]
    ]  # fmt: skip


def _block_peaks(
    volume: np.ndarray,
    core: tuple[slice, slice, slice],
    halo: int,
    sigma1: float,
    sigma2: float,
    d: int,
    border: float,
    polarity: str,
    source: str = "<volume>",
    window: PlaneWindow | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of the DoG response with centres inside the ``core`` block.

    The block is read with a ``halo`` on each side (clipped at the volume's faces, where
    the filters reflect exactly as on the whole volume), so every response value the
    maximum filter sees inside the core equals the whole-volume value. Also returns the
    strongest responses of the other polarity (local minima), for :func:`_check_polarity`.
    """
    shape = volume.shape
    lo = [max(0, c.start - halo) for c in core]
    hi = [min(s, c.stop + halo) for s, c in zip(shape, core, strict=True)]
    block = _read_block(volume, lo, hi, window)
    bad = ~np.isfinite(block)
    if bad.any():
        first = np.argwhere(bad)[0] + np.array(lo)
        raise ValueError(
            f"{source}: {int(bad.sum())} NaN/Inf voxels in the block z {lo[0]}..{hi[0] - 1}, "
            f"y {lo[1]}..{hi[1] - 1}, x {lo[2]}..{hi[2] - 1} (first at zyx "
            f"{[int(v) for v in first]}); replace them (e.g. numpy.nan_to_num) or re-run the "
            "reconstruction"
        )
    if polarity == "dark":
        block = -block
    response = ndimage.gaussian_filter(block, sigma1, mode="reflect", truncate=TRUNCATE)
    response -= ndimage.gaussian_filter(block, sigma2, mode="reflect", truncate=TRUNCATE)
    del block
    peak_max = ndimage.maximum_filter(response, size=2 * d + 1, mode="nearest")
    inner = tuple(slice(c.start - o, c.stop - o) for c, o in zip(core, lo, strict=True))
    r_core = response[inner]
    is_peak = (r_core == peak_max[inner]) & (r_core > 0)
    del peak_max
    trough_min = ndimage.minimum_filter(response, size=2 * d + 1, mode="nearest")
    is_trough = (r_core == trough_min[inner]) & (r_core < 0)
    del trough_min
    origin = np.array([c.start for c in core])
    upper = np.array(shape) - 1 - border
    idx = np.argwhere(is_peak) + origin
    scores = r_core[is_peak].astype(np.float64)
    inside = np.all(idx >= border, axis=1) & np.all(idx <= upper, axis=1)
    t_idx = np.argwhere(is_trough) + origin
    t_inside = np.all(t_idx >= border, axis=1) & np.all(t_idx <= upper, axis=1)
    other = np.sort(-r_core[is_trough][t_inside].astype(np.float64))[-_POLARITY_TOP:]
    return idx[inside].astype(np.int64), scores[inside], other


#: Bytes of whole planes mapped at a time while a block is copied out of a memory map.
_READ_CHUNK_BYTES = 16 * 2**20


def _read_block(
    volume: np.ndarray, lo: list[int], hi: list[int], window: PlaneWindow | None
) -> np.ndarray:
    """Copy ``volume[lo:hi]`` into a new float32 array, a few planes at a time.

    Reading part of a plane from a memory map maps whole pages (2 MiB folios on current
    kernels), so a block of a tall slab would map nearly all its planes at once; the
    planes are unmapped after each chunk instead, and resident memory stays near
    :data:`_READ_CHUNK_BYTES` plus the block itself.
    """
    out = np.empty([h - low for low, h in zip(lo, hi, strict=True)], dtype=np.float32)
    plane_bytes = max(1, volume[0].nbytes)
    step = max(1, _READ_CHUNK_BYTES // plane_bytes)
    for z in range(lo[0], hi[0], step):
        z1 = min(z + step, hi[0])
        out[z - lo[0] : z1 - lo[0]] = volume[z:z1, lo[1] : hi[1], lo[2] : hi[2]]
        if window is not None:
            window.release_all()
    return out


def _check_polarity(scores: np.ndarray, other: np.ndarray, polarity: str, source: str) -> None:
    """Warn when the other polarity's strongest blobs are much stronger than ours."""
    k = min(_POLARITY_TOP, len(other))
    if k == 0:
        return
    ours = float(np.mean(np.sort(scores)[-k:])) if len(scores) else 0.0
    theirs = float(np.mean(np.sort(other)[-k:]))
    if theirs > POLARITY_WARNING_RATIO * ours:
        opposite = "bright" if polarity == "dark" else "dark"
        strength = (
            f"no {polarity} blobs respond at all, {opposite} ones do"
            if ours <= 0
            else f"{opposite} blobs respond {theirs / ours:.1f} times more strongly than the "
            f"{polarity} ones detected"
        )
        warnings.warn(
            f"{source}: {strength}: the particles are probably {opposite} in this tomogram "
            f"(simulated tomograms are bright, most reconstructions dark); re-run with "
            f"--polarity {opposite}, or set 'polarity: {opposite}' for this tomogram in "
            "project.yaml",
            stacklevel=3,
        )


def _rank(pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Order by descending score, ties by (z, y, x): deterministic."""
    return np.lexsort((pos[:, 2], pos[:, 1], pos[:, 0], -score))


def _top(pos: np.ndarray, score: np.ndarray, m: int) -> np.ndarray:
    if len(score) <= m:
        return np.arange(len(score))
    return _rank(pos, score)[:m]


def _suppress(pos: np.ndarray, d: float) -> np.ndarray:
    """Greedy non-maximum suppression of ranked points closer than ``d`` (plateau ties)."""
    if len(pos) == 0:
        return np.arange(0)
    tree = cKDTree(pos)
    suppressed = np.zeros(len(pos), dtype=bool)
    keep = []
    for i in range(len(pos)):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in tree.query_ball_point(pos[i], r=d - 1e-6):
            suppressed[j] = True
    return np.asarray(keep, dtype=np.int64)


def recall(found_zyx: np.ndarray, true_zyx: np.ndarray, tolerance_px: float) -> float:
    """Fraction of true particles with a found position within ``tolerance_px`` voxels.

    Parameters
    ----------
    found_zyx
        ``(m, 3)`` detected positions, voxels.
    true_zyx
        ``(k, 3)`` true particle centres, voxels.
    tolerance_px
        Match radius (voxels), typically half the particle radius.
    """
    true_zyx = np.asarray(true_zyx, dtype=np.float64).reshape(-1, 3)
    found_zyx = np.asarray(found_zyx, dtype=np.float64).reshape(-1, 3)
    if len(true_zyx) == 0:
        raise ValueError("no true particles to measure recall against")
    if len(found_zyx) == 0:
        return 0.0
    dist, _ = cKDTree(found_zyx).query(true_zyx, k=1)
    return float(np.mean(dist <= tolerance_px))
