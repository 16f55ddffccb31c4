"""Selectors: known answers, determinism, and invariance to pool order and block size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoal.al import selectors as S


def _ids(n: int) -> np.ndarray:
    return np.array([f"TS_01:{i:05d}" for i in range(n)])


def test_top_k_orders_by_score_then_id():
    ids = np.array(["b", "a", "c", "d"])
    scores = np.array([1.0, 1.0, 0.5, 2.0])
    pos = S.top_k(ids, scores, 3)
    assert list(ids[pos]) == ["d", "a", "b"]
    with pytest.raises(ValueError, match="k=5"):
        S.top_k(ids, scores, 5)
    with pytest.raises(ValueError, match="unique"):
        S.top_k(np.array(["a", "a"]), np.array([1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="NaN"):
        S.top_k(ids, np.array([1.0, np.nan, 0, 0]), 1)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=60),
    st.integers(0, 60),
    st.randoms(use_true_random=False),
    st.integers(0, 2**31 - 1),
)
def test_selection_is_k_distinct_ids_and_independent_of_pool_order(values, k, rnd, seed):
    scores = np.round(np.array(values), 1)  # rounding creates ties
    n = scores.size
    k = min(k, n)
    ids = _ids(n)
    perm = list(range(n))
    rnd.shuffle(perm)
    nonneg = scores - scores.min()
    points = np.stack([np.sin(scores * 3), np.cos(scores)], 1)
    runs = {
        "top_k": lambda i, s, p: S.top_k(i, s, k),
        "stochastic": lambda i, s, p: S.stochastic_top_k(i, s - s.min(), k, seed, beta=2.0),
        "rank": lambda i, s, p: S.stochastic_top_k(i, s, k, seed, weighting="rank"),
        "kcenter": lambda i, s, p: S.kcenter_greedy(p, k, i, seed=seed, block_rows=7)[0],
        "kmeanspp": lambda i, s, p: S.kmeanspp(p, k, i, seed=seed, block_rows=5),
    }
    for name, fn in runs.items():
        pos = fn(ids, nonneg if name == "stochastic" else scores, points)
        assert len(pos) == k and len(set(ids[pos])) == k, name
        shuffled = fn(ids[perm], (nonneg if name == "stochastic" else scores)[perm], points[perm])
        assert list(ids[perm][shuffled]) == list(ids[pos]), name


def test_random_subset_deterministic_sized_and_order_free():
    ids = _ids(100)
    a = S.random_subset(ids, 0.25, seed=1)
    assert len(a) == 25 and len(set(a)) == 25
    np.testing.assert_array_equal(a, S.random_subset(ids, 25, seed=1))
    assert not np.array_equal(a, S.random_subset(ids, 25, seed=2))
    rev = S.random_subset(ids[::-1], 25, seed=1)
    assert set(ids[::-1][rev]) == set(ids[a])
    assert len(S.random_subset(ids, None, seed=0)) == 100
    with pytest.raises(ValueError, match="fraction"):
        S.random_subset(ids, 1.5, seed=0)


def test_stochastic_acquisition_follows_score_power():
    ids = _ids(3)
    scores = np.array([1.0, 2.0, 5.0])
    firsts = np.array([S.stochastic_top_k(ids, scores, 1, seed=s)[0] for s in range(3000)])
    freq = np.bincount(firsts, minlength=3) / firsts.size
    np.testing.assert_allclose(freq, scores / scores.sum(), atol=0.03)
    # beta large -> deterministic top-k; beta 0 -> uniform
    assert list(S.stochastic_top_k(ids, scores, 2, seed=0, beta=200.0)) == [2, 1]
    firsts0 = [S.stochastic_top_k(ids, scores, 1, seed=s, beta=0.0)[0] for s in range(1500)]
    np.testing.assert_allclose(np.bincount(firsts0, minlength=3) / 1500, [1 / 3] * 3, atol=0.05)
    with pytest.raises(ValueError, match="scores >= 0"):
        S.stochastic_top_k(ids, -scores, 1, seed=0)


def test_apply_class_cap_relaxes_when_needed():
    order = np.array([0, 1, 2, 3, 4])
    classes = np.array([7, 7, 7, 8, 7])
    assert list(S.apply_class_cap(order, classes, 3, cap=2)) == [0, 1, 3]
    assert list(S.apply_class_cap(order, classes, 4, cap=1)) == [0, 3, 1, 2]


def test_kcenter_known_answer_on_a_line():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [10.5]])
    ids = np.array(["a", "b", "c", "d", "e"])
    pos, dist = S.kcenter_greedy(x, 2, ids, centres=np.array([[0.0]]))
    assert list(ids[pos]) == ["e", "c"]
    np.testing.assert_allclose(dist, [10.5, 2.0])
    # with a per-class cap of 1, the second pick cannot come from e's class
    pos, _ = S.kcenter_greedy(
        x, 2, ids, centres=np.array([[0.0]]), groups=np.array([0, 0, 0, 1, 1]), cap=1
    )
    assert list(ids[pos]) == ["e", "c"]
    pos, _ = S.kcenter_greedy(
        x, 2, ids, centres=np.array([[0.0]]), groups=np.array([0, 0, 1, 1, 1]), cap=1
    )
    assert list(ids[pos]) == ["e", "b"]


def test_kcenter_cosine_ignores_scale():
    x = np.array([[1.0, 0.0], [100.0, 1.0], [0.0, 3.0]])
    pos, _ = S.kcenter_greedy(
        x, 1, ["a", "b", "c"], centres=np.array([[5.0, 0.0]]), metric="cosine"
    )
    assert pos[0] == 2
    pos, _ = S.kcenter_greedy(x, 1, ["a", "b", "c"], centres=np.array([[5.0, 0.0]]), metric="l2")
    assert pos[0] == 1


def _brute_kcenter(x, k, centres):
    chosen = []
    c = list(centres)
    for _ in range(k):
        d = np.array([min(np.sum((xi - cj) ** 2) for cj in c) for xi in x])
        d[chosen] = -1
        j = int(np.argmax(d))
        chosen.append(j)
        c.append(x[j])
    return chosen


def test_kcenter_matches_brute_force_and_block_size():
    rng = np.random.default_rng(0)
    x = rng.random((200, 4))
    ids = _ids(200)
    centres = rng.random((5, 4))
    a, _ = S.kcenter_greedy(x, 12, ids, centres=centres, block_rows=13)
    b, _ = S.kcenter_greedy(x, 12, ids, centres=centres, block_rows=100000)
    np.testing.assert_array_equal(a, b)
    assert list(a) == _brute_kcenter(x, 12, centres)


def test_outer_product_points_match_dense_embeddings():
    rng = np.random.default_rng(1)
    g, h = rng.normal(size=(30, 3)), rng.normal(size=(30, 5))
    dense = np.einsum("nc,nf->ncf", g, h).reshape(30, -1)
    op = S.OuterProductPoints(g, h)
    np.testing.assert_allclose(op.sq_dist_to(4, 7), ((dense - dense[4]) ** 2).sum(1), atol=1e-10)
    np.testing.assert_allclose(op.sq_norms(), (dense**2).sum(1))
    ids = _ids(30)
    a = S.kmeanspp(op, 6, ids, seed=3)
    b = S.kmeanspp(dense, 6, ids, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a[0] == int(np.argmax((dense**2).sum(1)))  # BADGE starts at the largest norm


def test_kmeanspp_never_repeats_and_handles_duplicates():
    x = np.zeros((6, 2))
    x[0] = [1.0, 0.0]
    pos = S.kmeanspp(x, 4, _ids(6), seed=0)
    assert len(set(pos)) == 4 and pos[0] == 0
    # after one zero point is picked the rest coincide with it: taken in id order
    rest = [i for i in range(1, 6) if i != pos[1]]
    assert list(pos[2:]) == rest[:2]


def _blobs(sizes, dim=8, spread=12.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * spread
    x = np.concatenate([c + rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)])
    blob = np.repeat(np.arange(len(sizes)), sizes)
    return x, blob, _ids(x.shape[0])


def test_typiclust_takes_the_most_typical_sample_of_every_blob():
    x, blob, ids = _blobs([40, 30, 50, 25, 35])
    pos, typ = S.typiclust(x, 5, ids, seed=3)
    assert sorted(blob[pos]) == [0, 1, 2, 3, 4]  # one pick per blob = distinct clusters
    assert list(blob[pos]) == [2, 0, 4, 1, 3]  # largest cluster first
    for p, t in zip(pos, typ, strict=True):  # the densest point of its blob
        members = np.flatnonzero(blob == blob[p])
        dist = S.mean_knn_distance(x[members], 20)
        assert members[np.argmin(dist)] == p
        assert t == pytest.approx(1.0 / dist.min())
    # fewer picks than blobs: blobs merge into 3 clusters, one pick from each
    pos3, _ = S.typiclust(x, 3, ids, seed=3)
    assert len(set(blob[pos3])) == 3


def test_typiclust_is_deterministic_and_independent_of_pool_order():
    x, _, ids = _blobs([30, 30, 30, 30], seed=1)
    a, ta = S.typiclust(x, 6, ids, seed=5)
    b, tb = S.typiclust(x, 6, ids, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    perm = np.random.default_rng(2).permutation(len(ids))
    c, tc = S.typiclust(x[perm], 6, ids[perm], seed=5, block_rows=7)
    assert list(ids[perm][c]) == list(ids[a])
    np.testing.assert_allclose(tc, ta, rtol=1e-12)


def test_typiclust_avoids_clusters_of_labeled_samples_and_revisits_when_clusters_run_out():
    x, blob, ids = _blobs([40, 40, 40, 40, 40], seed=2)
    labeled = np.array([5, 130])  # one labeled sample in blobs 0 and 3: 2 + 3 clusters
    pool = np.setdiff1d(np.arange(len(ids)), labeled)
    pos, _ = S.typiclust(x[pool], 3, ids[pool], labeled=x[labeled], seed=0)
    assert sorted(blob[pool][pos]) == [1, 2, 4]
    assert not set(ids[pool][pos]) & set(ids[labeled])
    # two clusters at most for four picks: two distinct picks from each
    pos, _ = S.typiclust(x[blob < 2], 4, ids[blob < 2], max_clusters=2, seed=0)
    assert sorted(blob[pos]) == [0, 0, 1, 1] and len(set(pos)) == 4
    with pytest.raises(ValueError, match="labeled points must be"):
        S.typiclust(x, 2, ids, labeled=np.zeros((3, 2)))
