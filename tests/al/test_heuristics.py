"""Known-answer and property tests for the acquisition heuristics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cryoal.al import heuristics as H
from cryoal.al.strategies import recipe_or_name


def test_entropy_known_values_and_ranking():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    s = H.entropy(p)
    np.testing.assert_allclose(s, [0.0, np.log(2), np.log(3)], atol=1e-9)
    assert list(np.argsort(-s)) == [2, 1, 0]


def test_margin_and_least_confidence_known_values():
    p = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(H.margin(p), [1.0, 0.2, 0.7])
    np.testing.assert_allclose(H.least_confidence(p), [0.5, 0.1, 0.4])
    with pytest.raises(ValueError, match="at least 2 classes"):
        H.margin(np.ones((3, 1)))


def test_bald_zero_for_agreeing_passes_and_log2_for_confident_disagreement():
    agree = np.repeat(np.array([[0.7, 0.3]])[:, :, None], 4, axis=2)  # (1, 2, 4)
    disagree = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # (1, C=2, T=2): pass 1 says 0, pass 2 says 1
    s = H.bald(np.concatenate([agree[:, :, :2], disagree], axis=0))
    np.testing.assert_allclose(s, [0.0, np.log(2)], atol=1e-9)


def test_kl_known_value_direction_and_temperature():
    t = np.log(np.array([[0.5, 0.5]]))
    s = np.log(np.array([[0.9, 0.1]]))
    kl_ts = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    kl_st = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    np.testing.assert_allclose(H.kt(t, s), [kl_ts])
    np.testing.assert_allclose(H.kt(t, s, direction="student_teacher"), [kl_st])
    # tau: KL of the softened distributions, times tau^2 (the same number the loss uses)
    pt, ps = H.softmax(t, tau=2.0)[0], H.softmax(s, tau=2.0)[0]
    kl_tau2 = float((pt * np.log(pt / ps)).sum())
    np.testing.assert_allclose(H.kt(t, s, tau=2.0), [4.0 * kl_tau2])
    np.testing.assert_allclose(H.kt(s, s), [0.0], atol=1e-12)
    with pytest.raises(ValueError, match="direction"):
        H.kt(t, s, direction="sideways")


def test_kt_score_is_the_transfer_loss_distance():
    torch = pytest.importorskip("torch")
    from cryoal.train.losses import transfer_distance

    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    for tau, direction in [(1.0, "teacher_student"), (2.0, "student_teacher")]:
        loss_d = transfer_distance(
            torch.from_numpy(t), torch.from_numpy(s), tau=tau, direction=direction
        )
        np.testing.assert_allclose(H.kt(t, s, tau=tau, direction=direction), loss_d.numpy())


def test_kt_segmentation_is_voxel_mean_squared_probability_difference():
    # 1 sample, 2 classes, 2 voxels: probabilities (0.5, 0.5) vs (1, 0) in voxel 0, equal in voxel 1
    t = np.zeros((1, 2, 2))
    s = np.zeros((1, 2, 2))
    s[0, 0, 0] = 50.0
    per_voxel = np.array([((0.5 - 1.0) ** 2 + (0.5 - 0.0) ** 2) / 2, 0.0])
    np.testing.assert_allclose(H.kt(t, s), [per_voxel.mean()], atol=1e-12)
    np.testing.assert_allclose(H.kt(t, s, reduction="max"), [per_voxel.max()], atol=1e-12)


def test_spatial_reductions_known_values():
    v = np.arange(10, dtype=float).reshape(1, 10)  # 0..9
    assert H.reduce_spatial(v, "mean")[0] == pytest.approx(4.5)
    assert H.reduce_spatial(v, "max")[0] == 9.0
    assert H.reduce_spatial(v, "top_quantile", 0.8)[0] == pytest.approx(8.5)  # mean of 8, 9
    assert H.reduce_spatial(v, "top_quantile", 0.0)[0] == pytest.approx(4.5)
    with pytest.raises(ValueError, match="quantile"):
        H.reduce_spatial(v, "top_quantile", 1.0)
    with pytest.raises(ValueError, match="reduction"):
        H.reduce_spatial(v, "median")


def test_the_foreground_reduction_scores_where_the_particle_is():
    v = np.arange(4, dtype=float).reshape(1, 4)  # voxel scores 0, 1, 2, 3
    probs = np.array([[[1.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.5, 1.0]]])  # p_background first
    # foreground probabilities 1 - p_0 = 0, 0, 0.5, 1: (2 * 0.5 + 3 * 1) / 4 voxels
    assert H.reduce_spatial(v, "foreground", probs=probs)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class probabilities"):
        H.reduce_spatial(v, "foreground")
    # a crop that disagrees only on its particle outranks one that disagrees a little over
    # all its background, though the voxel mean says the opposite
    t = np.zeros((2, 2, 10))
    t[:, 0] = 5.0  # background everywhere ...
    t[0, :, 0] = [-5.0, 5.0]  # ... but crop 0 has a one-voxel particle
    s = t.copy()
    s[0, :, 0] = [5.0, -5.0]  # the student misses crop 0's particle
    s[1, 0] = 0.5  # and is less sure of crop 1's background, everywhere
    mean, fg = H.kt(t, s), H.kt(t, s, reduction="foreground")
    assert mean[0] < mean[1] and fg[0] > 100 * fg[1]


def test_segmentation_entropy_reduces_voxels():
    p = np.full((2, 2, 3, 3, 3), 0.5)
    p[1, 0], p[1, 1] = 1.0, 0.0  # sample 1 certain everywhere
    p[1, 0, 0, 0, 0], p[1, 1, 0, 0, 0] = 0.5, 0.5  # except one voxel
    np.testing.assert_allclose(H.entropy(p), [np.log(2), np.log(2) / 27])
    np.testing.assert_allclose(H.entropy(p, reduction="max"), [np.log(2), np.log(2)])


def test_foreground_is_the_mean_predicted_foreground_and_needs_a_segmenter():
    p = np.zeros((3, 2, 2, 2, 2))
    p[:, 0] = 1.0  # all background
    p[1, 0, 0], p[1, 1, 0] = 0.25, 0.75  # crop 1: half its voxels (z = 0) 75 % foreground
    p[2, 0], p[2, 1] = 0.0, 1.0  # crop 2: all foreground
    np.testing.assert_allclose(H.foreground(p), [0.0, 0.375, 1.0])
    with pytest.raises(ValueError, match="segmentation model"):
        H.foreground(np.array([[0.5, 0.5]]))


def test_random_foreground_draws_in_proportion_to_the_foreground():
    from cryoal.al.acquire.selection import _select_by_score
    from cryoal.al.strategies import StrategyConfig

    cfg = StrategyConfig.model_validate(recipe_or_name("random_foreground"))
    assert (cfg.name, cfg.selection, cfg.weighting, cfg.beta) == (
        "foreground-fraction", "stochastic", "power", 1.0,
    )  # fmt: skip
    n = 400
    ids = np.array([f"c{i:04d}" for i in range(n)])
    fg = np.where(np.arange(n) < 100, 0.3, 0.1)  # 100 crops 3x as much foreground as 300
    fg[-50:] = 0.0  # and 50 with none
    counts = np.zeros(n)
    for seed in range(200):
        pos = _select_by_score(
            cfg, ids, fg, 20, seed, np.zeros(n, np.int64), None, lambda: None, lambda: None
        )
        counts[pos] += 1
    assert counts[-50:].sum() == 0  # no foreground, never drawn while others are left
    # p ∝ foreground: a 0.3 crop is drawn about 3x as often as a 0.1 crop (k << n)
    ratio = counts[:100].mean() / counts[100:350].mean()
    assert 2.4 < ratio < 3.6


def test_nan_input_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        H.entropy(np.array([[np.nan, 1.0]]))


def test_random_scores_deterministic():
    np.testing.assert_array_equal(H.random_scores(5, 3), H.random_scores(5, 3))
    assert not np.array_equal(H.random_scores(5, 3), H.random_scores(5, 4))


logit_arrays = arrays(
    np.float64,
    st.tuples(st.integers(1, 20), st.integers(2, 6)),
    elements=st.floats(-30, 30, allow_nan=False),
)


@settings(max_examples=40, deadline=None)
@given(logit_arrays, st.integers(1, 7), st.randoms(use_true_random=False))
def test_scores_finite_nonnegative_and_chunk_and_order_invariant(logits, chunk, rnd):
    student = logits[::-1].copy() * 0.5
    p = H.softmax(logits)
    fns = {
        "entropy": lambda a, b: H.entropy(H.softmax(a)),
        "margin": lambda a, b: H.margin(H.softmax(a)),
        "lc": lambda a, b: H.least_confidence(H.softmax(a)),
        "kt": lambda a, b: H.kt(a, b, tau=2.0),
    }
    perm = list(range(len(p)))
    rnd.shuffle(perm)
    for name, fn in fns.items():
        whole = fn(logits, student)
        assert np.isfinite(whole).all() and (whole >= 0).all(), name
        parts = np.concatenate(
            [fn(logits[i : i + chunk], student[i : i + chunk]) for i in range(0, len(p), chunk)]
        )
        np.testing.assert_array_equal(parts, whole)
        np.testing.assert_array_equal(fn(logits[perm], student[perm]), whole[perm])
