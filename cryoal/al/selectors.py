"""Selectors: turn scores (or points in a space) into a batch of ``k`` samples.

Every selector takes the samples' string ids and returns *positions* into the arrays it
was given, in the order the samples were picked. Results are deterministic given the
``seed`` and do not depend on the order of the pool or on the block size used
internally: each selector first sorts the pool by id (the canonical order), draws its
random numbers in that order, and breaks ties by the smaller id.

* :func:`top_k` — the ``k`` highest scores, ties broken by id.
* :func:`random_subset` — a uniform random subset of the pool (pre-subset before scoring).
* :func:`stochastic_top_k` — ``k`` samples without replacement with probability
  proportional to ``score^beta`` (``power``), ``exp(beta * score)`` (``softmax``) or
  ``rank^-beta`` (``rank``); the Gumbel-top-k trick makes it one sort.
* :func:`kcenter_greedy` — greedy k-center (Sener & Savarese), distances computed in
  blocks so a pool of 10^6 points needs memory linear in the pool.
* :func:`kmeanspp` — k-means++ seeding (BADGE), on dense points or on outer-product
  gradient embeddings ``g_i ⊗ h_i`` without forming them.
* :func:`apply_class_cap` — at most ``cap`` samples per (predicted) class in a batch.
* :func:`typiclust` — TypiClust cold start: the most typical sample (smallest mean
  distance to its nearest neighbours) of each of the largest k-means clusters that hold no
  labeled sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Weighting = Literal["power", "softmax", "rank"]
Metric = Literal["l2", "cosine"]

#: Rows per block for distance computations.
DEFAULT_BLOCK_ROWS = 65536
#: Upper bound of the temporary arrays of one distance block, bytes.
BLOCK_BYTES = 32 * 2**20


# --------------------------------------------------------------------------- helpers
def _ids_array(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    arr = np.asarray([str(i) for i in ids]) if not isinstance(ids, np.ndarray) else ids
    arr = arr.astype(str) if arr.dtype.kind != "U" else arr
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional; got shape {arr.shape}")
    return arr


def canonical_order(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Positions that sort ``ids`` (ascending, stable); raises on duplicate ids."""
    arr = _ids_array(ids)
    order = np.argsort(arr, kind="stable")
    if arr.size > 1:
        srt = arr[order]
        same = srt[1:] == srt[:-1]
        if same.any():
            raise ValueError(
                f"pool ids must be unique; {srt[1:][same][0]!r} appears more than once"
            )
    return order


def _check_k(k: int, n: int) -> int:
    k = int(k)
    if k < 0:
        raise ValueError(f"k={k} must be >= 0")
    if k > n:
        raise ValueError(f"cannot select k={k} samples from a pool of {n}; lower k")
    return k


def _check_scores(scores: np.ndarray, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != n:
        raise ValueError(f"{s.shape[0]} scores for {n} ids")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; check the model outputs")
    return s


def rank_by_score(ids: Sequence[str] | np.ndarray, scores: np.ndarray) -> np.ndarray:
    """All positions sorted by ``(-score, id)`` (descending score, ties by id)."""
    arr = _ids_array(ids)
    s = _check_scores(scores, arr.size)
    canonical_order(arr)  # validates uniqueness
    return np.lexsort((arr, -s))


def top_k(ids: Sequence[str] | np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, ordered by ``(-score, id)``.

    Parameters
    ----------
    ids
        ``(N,)`` unique string ids.
    scores
        ``(N,)`` scores, higher = more informative (``-inf`` allowed, NaN not).
    k
        Batch size, ``0 <= k <= N``.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` int64 positions into ``ids``/``scores``.
    """
    arr = _ids_array(ids)
    s = _check_scores(scores, arr.size)
    k = _check_k(k, arr.size)
    canonical_order(arr)
    if k == 0:
        return np.empty(0, np.int64)
    if k < arr.size:
        # only samples scoring at least the k-th best can be in the batch
        kth = np.partition(-s, k - 1)[k - 1]
        cand = np.flatnonzero(-s <= kth)
    else:
        cand = np.arange(arr.size)
    order = np.lexsort((arr[cand], -s[cand]))
    return cand[order[:k]].astype(np.int64)


def resolve_size(size: int | float | None, n: int, name: str = "subset_size") -> int:
    """An absolute count from ``size``: an int count, a float fraction in (0, 1], or None = n."""
    if size is None:
        return n
    if isinstance(size, float):
        if not 0.0 < size <= 1.0:
            raise ValueError(
                f"{name}={size} as a fraction must be in (0, 1]; give a count as an integer"
            )
        return max(1, int(round(size * n)))
    m = int(size)
    if m <= 0:
        raise ValueError(f"{name}={size} must be a positive count or a fraction in (0, 1]")
    return min(m, n)


def random_subset(
    ids: Sequence[str] | np.ndarray, size: int | float | None, seed: int
) -> np.ndarray:
    """Positions of a uniform random subset of the pool, sorted ascending.

    Parameters
    ----------
    ids
        ``(N,)`` unique ids.
    size
        Count (int), fraction of the pool (float in (0, 1]), or ``None`` for the whole pool.
    seed
        Seed of ``numpy.random.default_rng``; the draw is made in id order, so the subset
        does not depend on the order of ``ids``.
    """
    arr = _ids_array(ids)
    order = canonical_order(arr)
    m = resolve_size(size, arr.size)
    if m >= arr.size:
        return np.arange(arr.size, dtype=np.int64)
    pick = np.random.default_rng(seed).choice(arr.size, size=m, replace=False)
    return np.sort(order[pick]).astype(np.int64)


def stochastic_top_k(
    ids: Sequence[str] | np.ndarray,
    scores: np.ndarray,
    k: int,
    seed: int,
    beta: float = 1.0,
    weighting: Weighting = "power",
) -> np.ndarray:
    """Sample ``k`` positions without replacement, probability increasing with the score.

    Stochastic batch acquisition (Kirsch et al., TMLR 2023): ``power`` weights
    ``score^beta`` (scores must be >= 0), ``softmax`` weights ``exp(beta * score)``,
    ``rank`` weights ``rank^-beta`` (rank 1 = highest score). Sequential sampling without
    replacement is done in one sort with Gumbel keys ``log w + G``.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` positions, in sampled order.
    """
    arr = _ids_array(ids)
    s = _check_scores(scores, arr.size)
    k = _check_k(k, arr.size)
    if beta < 0:
        raise ValueError(f"beta={beta} must be >= 0 (0 = uniform random)")
    order = canonical_order(arr)
    sc = s[order]
    with np.errstate(divide="ignore"):
        if weighting == "power":
            if (sc < 0).any():
                raise ValueError(
                    "power weighting needs scores >= 0; use weighting='softmax' or 'rank' for this strategy"
                )
            logw = beta * np.log(sc) if beta > 0 else np.zeros_like(sc)
        elif weighting == "softmax":
            logw = beta * sc
        elif weighting == "rank":
            ranks = np.empty(sc.size)
            ranks[np.lexsort((arr[order], -sc))] = np.arange(1, sc.size + 1)
            logw = -beta * np.log(ranks)
        else:
            raise ValueError(f"unknown weighting {weighting!r}; use 'power', 'softmax' or 'rank'")
    gumbel = -np.log(-np.log(np.random.default_rng(seed).random(sc.size).clip(1e-300, None)))
    keys = np.where(np.isneginf(logw), -np.inf, logw + gumbel)
    # candidates with weight 0 come last, in id order
    pos = top_k(arr[order], keys, k)
    return order[pos].astype(np.int64)


def apply_class_cap(order: np.ndarray, classes: np.ndarray, k: int, cap: int) -> np.ndarray:
    """Take ``k`` positions from ``order`` with at most ``cap`` per class.

    Walks ``order`` (positions in preference order) and skips a sample whose class
    already has ``cap`` picks; if fewer than ``k`` remain that way, the skipped samples
    fill the batch in preference order (the cap is relaxed rather than returning fewer).

    Parameters
    ----------
    order
        ``(M,)`` candidate positions, most preferred first.
    classes
        ``(N,)`` class of every position (e.g. the teacher's predicted class).
    k
        Batch size (``<= M``).
    cap
        Maximum number per class (>= 1).
    """
    order = np.asarray(order, np.int64)
    k = _check_k(k, order.size)
    if cap < 1:
        raise ValueError(f"class cap {cap} must be >= 1")
    cls = np.asarray(classes)[order]
    # running count of each class along the order
    seen: dict[object, int] = {}
    within = np.empty(order.size, np.int64)
    for i, c in enumerate(cls.tolist()):
        within[i] = seen.get(c, 0)
        seen[c] = within[i] + 1
    ok = within < cap
    chosen = order[ok][:k]
    if chosen.size < k:
        chosen = np.concatenate([chosen, order[~ok][: k - chosen.size]])
    return chosen


# --------------------------------------------------------------------------- point sets
class DensePoints:
    """Rows of a dense ``(N, D)`` array; ``cosine`` metric = L2 on unit-normalised rows.

    Squared distances are computed element-wise per pair (no ``|x|^2 + |c|^2 - 2 x.c``
    shortcut), so each distance is bit-identical whatever the block size; temporaries are
    bounded by :data:`BLOCK_BYTES`.
    """

    def __init__(self, x: np.ndarray, metric: Metric = "l2") -> None:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"points must be (N, D); got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("points contain NaN or Inf")
        if metric == "cosine":
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            arr = arr / np.where(norms > 0, norms, 1.0)
        elif metric != "l2":
            raise ValueError(f"unknown metric {metric!r}; use 'l2' or 'cosine'")
        self.x = np.ascontiguousarray(arr)
        self.metric = metric

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, positions: np.ndarray) -> DensePoints:
        out = DensePoints.__new__(DensePoints)
        out.x = self.x[np.asarray(positions, np.int64)]
        out.metric = self.metric
        return out

    def sq_norms(self) -> np.ndarray:
        return (self.x * self.x).sum(1)

    def min_sq_dist(self, centres: np.ndarray, block_rows: int) -> np.ndarray:
        """``(N,)`` squared distance of every row to the nearest of ``centres`` ``(M, D)``."""
        n, d = self.x.shape
        out = np.full(n, np.inf)
        m = centres.shape[0]
        if m == 0:
            return out
        rows = max(1, min(block_rows, BLOCK_BYTES // (8 * d * m) or 1))
        cb = max(1, min(m, BLOCK_BYTES // (8 * d * rows)))
        for r0 in range(0, n, rows):
            xb = self.x[r0 : r0 + rows]
            best = out[r0 : r0 + xb.shape[0]]
            for c0 in range(0, m, cb):
                diff = xb[:, None, :] - centres[None, c0 : c0 + cb, :]
                np.minimum(best, np.einsum("rcd,rcd->rc", diff, diff).min(axis=1), out=best)
        return out

    def sq_dist_to(self, j: int, block_rows: int) -> np.ndarray:
        """``(N,)`` squared distances to row ``j``."""
        return self.min_sq_dist(self.x[j : j + 1], block_rows)


class OuterProductPoints:
    """Rows ``g_i ⊗ h_i`` (BADGE gradient embeddings) without forming the ``C*F`` vectors.

    ``||g_i ⊗ h_i - g_j ⊗ h_j||^2 = |g_i|^2 |h_i|^2 + |g_j|^2 |h_j|^2 - 2 (g_i.g_j)(h_i.h_j)``,
    so memory is ``N * (C + F)`` instead of ``N * C * F``.
    """

    def __init__(self, g: np.ndarray, h: np.ndarray) -> None:
        g = np.asarray(g, np.float64)
        h = np.asarray(h, np.float64)
        if g.ndim != 2 or h.ndim != 2 or g.shape[0] != h.shape[0]:
            raise ValueError(f"g (N, C) and h (N, F) must share N; got {g.shape} and {h.shape}")
        if not (np.isfinite(g).all() and np.isfinite(h).all()):
            raise ValueError("gradient embeddings contain NaN or Inf")
        self.g = np.ascontiguousarray(g)
        self.h = np.ascontiguousarray(h)
        self._sq = (self.g * self.g).sum(1) * (self.h * self.h).sum(1)

    def __len__(self) -> int:
        return int(self.g.shape[0])

    def take(self, positions: np.ndarray) -> OuterProductPoints:
        idx = np.asarray(positions, np.int64)
        return OuterProductPoints(self.g[idx], self.h[idx])

    def sq_norms(self) -> np.ndarray:
        return self._sq.copy()

    def sq_dist_to(self, j: int, block_rows: int) -> np.ndarray:
        n = len(self)
        out = np.empty(n)
        gj, hj = self.g[j], self.h[j]
        for r0 in range(0, n, block_rows):
            sl = slice(r0, min(n, r0 + block_rows))
            cross = (self.g[sl] * gj).sum(1) * (self.h[sl] * hj).sum(1)
            out[sl] = np.maximum(self._sq[sl] + self._sq[j] - 2.0 * cross, 0.0)
        out[j] = 0.0
        return out


# --------------------------------------------------------------------------- k-center
def kcenter_greedy(
    points: np.ndarray | DensePoints,
    k: int,
    ids: Sequence[str] | np.ndarray,
    *,
    centres: np.ndarray | None = None,
    metric: Metric = "l2",
    seed: int = 0,
    groups: np.ndarray | None = None,
    cap: int | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: repeatedly pick the point farthest from all centres.

    Memory is linear in the pool: the points (float64), one ``(N,)`` array of distances
    to the nearest centre, and a block of ``block_rows`` distances at a time. Each pick
    costs one pass over the pool.

    Parameters
    ----------
    points
        ``(N, D)`` array (probabilities for PCoreSet, features for coreset) or a
        :class:`DensePoints`.
    k
        Number of picks.
    ids
        ``(N,)`` unique ids; ties are broken by the smaller id.
    centres
        ``(M, D)`` initial centres (the labeled set's points); if ``None`` or empty, the
        first pick is uniform at random (``seed``).
    metric
        ``"l2"`` or ``"cosine"`` (used when ``points`` is an array).
    groups, cap
        Optional ``(N,)`` group (predicted class) per point and the maximum picks per
        group; the cap is relaxed when no eligible point remains.
    block_rows
        Rows per distance block; the result does not depend on it.

    Returns
    -------
    positions, distances
        ``(k,)`` positions in pick order and each pick's distance to the nearest centre
        at the time it was picked (``inf`` for a first pick without centres).
    """
    pts = points if isinstance(points, DensePoints) else DensePoints(points, metric)
    arr = _ids_array(ids)
    n = len(pts)
    if arr.size != n:
        raise ValueError(f"{arr.size} ids for {n} points")
    k = _check_k(k, n)
    if block_rows < 1:
        raise ValueError(f"block_rows={block_rows} must be >= 1")
    order = canonical_order(arr)
    pts = pts.take(order)
    grp = None if groups is None else np.asarray(groups)[order]
    if cap is not None and grp is None:
        raise ValueError("a per-group cap needs groups (the predicted class of each point)")
    if centres is not None and len(centres):
        c = np.asarray(centres, np.float64)
        if c.ndim != 2 or c.shape[1] != pts.x.shape[1]:
            raise ValueError(f"centres must be (M, {pts.x.shape[1]}); got {c.shape}")
        mind = pts.min_sq_dist(DensePoints(c, pts.metric).x, block_rows)
    else:
        mind = np.full(n, np.inf)
    picked = np.zeros(n, bool)
    counts: dict[object, int] = {}
    out_pos = np.empty(k, np.int64)
    out_dist = np.empty(k)
    rng = np.random.default_rng(seed)
    blocked = np.zeros(n, bool)
    for t in range(k):
        avail = ~picked
        if cap is not None and (avail & ~blocked).any():
            avail &= ~blocked
        if np.isinf(mind[avail]).all():
            cand = np.flatnonzero(avail)
            j = int(cand[rng.integers(cand.size)])
        else:
            d = np.where(avail, mind, -1.0)
            j = int(np.argmax(d))  # first maximum = smallest id in canonical order
        out_pos[t] = j
        out_dist[t] = np.sqrt(mind[j])
        picked[j] = True
        if grp is not None:
            counts[grp[j]] = counts.get(grp[j], 0) + 1
            if cap is not None and counts[grp[j]] >= cap:
                blocked |= grp == grp[j]
        if t + 1 < k:
            mind = np.minimum(mind, pts.sq_dist_to(j, block_rows))
    return order[out_pos], out_dist


# --------------------------------------------------------------------------- k-means++
def kmeanspp(
    points: np.ndarray | DensePoints | OuterProductPoints,
    k: int,
    ids: Sequence[str] | np.ndarray,
    *,
    seed: int = 0,
    first: Literal["max_norm", "random"] = "max_norm",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> np.ndarray:
    """k-means++ seeding: each next point sampled with probability ∝ D^2.

    BADGE (Ash et al., ICLR 2020) runs this on gradient embeddings, starting from the
    point with the largest norm (``first="max_norm"``, as in the authors' code).

    Parameters
    ----------
    points
        ``(N, D)`` array, :class:`DensePoints` or :class:`OuterProductPoints`.
    k
        Number of picks.
    ids
        ``(N,)`` unique ids (canonical order for the random draws; ties by id).
    seed
        Seed for the D^2 sampling.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` positions in pick order.
    """
    pts = points if isinstance(points, (DensePoints, OuterProductPoints)) else DensePoints(points)
    arr = _ids_array(ids)
    n = len(pts)
    if arr.size != n:
        raise ValueError(f"{arr.size} ids for {n} points")
    k = _check_k(k, n)
    order = canonical_order(arr)
    pts = pts.take(order)
    rng = np.random.default_rng(seed)
    out = np.empty(k, np.int64)
    if k == 0:
        return out
    picked = np.zeros(n, bool)
    if first == "max_norm":
        j = int(np.argmax(pts.sq_norms()))
    elif first == "random":
        j = int(rng.integers(n))
    else:
        raise ValueError(f"unknown first-centre rule {first!r}; use 'max_norm' or 'random'")
    mind = np.full(n, np.inf)
    for t in range(k):
        out[t] = j
        picked[j] = True
        if t + 1 == k:
            break
        mind = np.minimum(mind, pts.sq_dist_to(j, block_rows))
        w = np.where(picked, 0.0, mind)
        total = w.sum()
        if total > 0:
            cdf = np.cumsum(w)
            j = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            # round-off can land on cdf[-1]: fall back to the last point with weight
            j = min(j, int(np.flatnonzero(w > 0)[-1]))
        else:  # every remaining point coincides with a centre: take them in id order
            j = int(np.flatnonzero(~picked)[0])
    return order[out]


# --------------------------------------------------------------------------- typicality
def kmeans(
    x: np.ndarray,
    n_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = 100,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> np.ndarray:
    """Lloyd's k-means from a k-means++ seeding; returns the ``(N,)`` cluster of every row.

    Rows are taken in the order given (callers sort them by id first). The seeding is
    :func:`kmeanspp` with a random first centre; each iteration assigns every row to its
    nearest centre (ties: the lower cluster index) and moves each centre to its members'
    mean (an emptied cluster keeps its centre). It stops when no assignment changes or after
    ``max_iter`` iterations. Deterministic given ``seed``.

    Parameters
    ----------
    x
        ``(N, D)`` points.
    n_clusters
        ``1 <= n_clusters <= N``.
    """
    pts = DensePoints(x)
    n = len(pts)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the {n} points")
    width = len(str(n))
    positional = np.char.zfill(np.arange(n).astype(str), width)  # sorts like 0..n-1
    centres = pts.x[kmeanspp(pts, n_clusters, positional, seed=seed, first="random")]
    sq = pts.sq_norms()
    assign = np.full(n, -1, np.int64)
    rows = max(1, min(block_rows, BLOCK_BYTES // (8 * n_clusters)))
    for _ in range(max(1, max_iter)):
        new = np.empty(n, np.int64)
        csq = (centres * centres).sum(1)
        for r0 in range(0, n, rows):
            xb = pts.x[r0 : r0 + rows]
            d = sq[r0 : r0 + xb.shape[0], None] + csq[None, :] - 2.0 * (xb @ centres.T)
            new[r0 : r0 + xb.shape[0]] = np.argmin(d, axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=n_clusters)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, pts.x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return assign


def mean_knn_distance(
    x: np.ndarray, n_neighbors: int, block_rows: int = DEFAULT_BLOCK_ROWS
) -> np.ndarray:
    """``(N,)`` mean Euclidean distance of every row to its ``n_neighbors`` nearest other rows.

    ``n_neighbors`` is capped at ``N - 1``; a single row gets ``inf``. Distances are computed
    in blocks of rows (temporaries bounded by :data:`BLOCK_BYTES`).
    """
    arr = np.asarray(x, np.float64)
    n = arr.shape[0]
    kk = min(int(n_neighbors), n - 1)
    if kk < 1:
        return np.full(n, np.inf)
    sq = (arr * arr).sum(1)
    out = np.empty(n)
    rows = max(1, min(block_rows, BLOCK_BYTES // (8 * n)))
    for r0 in range(0, n, rows):
        xb = arr[r0 : r0 + rows]
        nb = xb.shape[0]
        d2 = np.maximum(sq[r0 : r0 + nb, None] + sq[None, :] - 2.0 * (xb @ arr.T), 0.0)
        d2[np.arange(nb), np.arange(r0, r0 + nb)] = np.inf  # not its own neighbour
        near = np.partition(d2, kk - 1, axis=1)[:, :kk]
        out[r0 : r0 + nb] = np.sqrt(near).mean(axis=1)
    return out


def typiclust(
    points: np.ndarray,
    k: int,
    ids: Sequence[str] | np.ndarray,
    *,
    labeled: np.ndarray | None = None,
    metric: Metric = "l2",
    seed: int = 0,
    n_neighbors: int = 20,
    max_clusters: int = 500,
    small_cluster: int = 5,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): the most typical sample of each of
    the ``k`` largest clusters that hold no labeled sample.

    The candidates and the labeled samples are clustered together by k-means (:func:`kmeans`)
    into ``min(n_labeled + k, max_clusters)`` clusters. Clusters are visited in the order
    (holds at most ``small_cluster`` samples, labeled samples it holds, larger first, smallest
    member id), so with enough clusters the batch takes one sample from each of the ``k``
    largest clusters without a labeled sample; when the clusters run out they are visited
    again round-robin (as in the authors' code, which drops the small clusters altogether).
    In a cluster, the pick is the unpicked candidate of highest typicality
    ``1 / mean distance to its K nearest neighbours`` among the cluster's unpicked
    candidates, ``K = min(n_neighbors, members - 1)`` (the paper's definition; the authors'
    code averages squared distances). Labeled samples are never picked.

    Parameters
    ----------
    points
        ``(N, D)`` candidate points (e.g. the teacher's penultimate features).
    k
        Number of picks.
    ids
        ``(N,)`` unique candidate ids; the result is independent of their order and ties go
        to the smaller id.
    labeled
        ``(M, D)`` points of the labeled samples (may be None or empty).
    metric
        ``"l2"``, or ``"cosine"`` (L2 on unit-normalised points).
    seed
        Seed of the k-means++ seeding.
    n_neighbors
        ``K`` of the typicality (20 in the paper).
    max_clusters
        Upper bound on the number of clusters (500 in the authors' code).
    small_cluster
        Clusters of at most this many samples are visited after all the others.

    Returns
    -------
    positions, typicality
        ``(k,)`` positions into ``points`` in pick order, and each pick's typicality when
        picked (0 for the only candidate of a cluster, ``inf`` for an exact duplicate).
    """
    cand = DensePoints(points, metric)
    arr = _ids_array(ids)
    n = len(cand)
    if arr.size != n:
        raise ValueError(f"{arr.size} ids for {n} points")
    k = _check_k(k, n)
    if n_neighbors < 1 or max_clusters < 1:
        raise ValueError(f"n_neighbors={n_neighbors} and max_clusters={max_clusters} must be >= 1")
    order = canonical_order(arr)
    x = cand.x[order]
    lab = np.empty((0, x.shape[1]))
    if labeled is not None and len(labeled):
        lab_arr = np.asarray(labeled, np.float64)
        if lab_arr.ndim != 2 or lab_arr.shape[1] != x.shape[1]:
            raise ValueError(f"labeled points must be (M, {x.shape[1]}); got {lab_arr.shape}")
        lab = DensePoints(lab_arr, metric).x
    if k == 0:
        return np.empty(0, np.int64), np.empty(0)
    n_clusters = min(lab.shape[0] + k, max_clusters, n + lab.shape[0])
    assign = kmeans(np.vstack([x, lab]), n_clusters, seed=seed, block_rows=block_rows)
    cand_cluster, lab_cluster = assign[:n], assign[n:]
    size = np.bincount(assign, minlength=n_clusters)
    n_lab = np.bincount(lab_cluster, minlength=n_clusters)
    first = np.full(n_clusters, n)
    np.minimum.at(first, cand_cluster, np.arange(n))
    visit = [
        c
        for c in np.lexsort((first, -size, n_lab, size <= small_cluster))
        if first[c] < n  # a cluster of labeled samples only has nothing to give
    ]
    picked = np.zeros(n, bool)
    out_pos = np.empty(k, np.int64)
    out_typ = np.empty(k)
    t = 0
    while t < k:
        for c in visit:
            if t == k:
                break
            members = np.flatnonzero((cand_cluster == c) & ~picked)
            if members.size == 0:
                continue
            dist = mean_knn_distance(x[members], n_neighbors, block_rows)
            j = int(np.argmin(dist))  # first minimum = smallest id
            with np.errstate(divide="ignore"):
                out_typ[t] = 0.0 if np.isinf(dist[j]) else 1.0 / dist[j]
            out_pos[t] = members[j]
            picked[members[j]] = True
            t += 1
    return order[out_pos], out_typ
