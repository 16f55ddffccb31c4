"""acquire(): every strategy through real models and a store; invariances; errors."""

from __future__ import annotations

import numpy as np
import pytest

from cryoal.al import StrategyConfig, acquire
from cryoal.al.strategies import STRATEGIES
from cryoal.models import build_model

POOL = np.arange(10, 60)
LABELED = np.arange(0, 10)


def _run(store, teacher, student, strategy, pool=POOL, k=6, seed=3, batch_size=16):
    return acquire(
        strategy,
        teacher=teacher,
        student=student,
        store=store,
        pool_indices=pool,
        labeled_indices=LABELED,
        k=k,
        seed=seed,
        batch_size=batch_size,
    )


@pytest.fixture(scope="module")
def dropout_teacher():
    return build_model("classify", "tiny", 3, dropout=0.3, seed=1).eval()


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_returns_k_distinct_pool_ids_independent_of_order_and_batching(
    name, noise_store, teacher, student, dropout_teacher
):
    t = dropout_teacher if name == "bald" else teacher
    if name == "foreground-fraction":  # segmenters only (class 0 = background)
        t = build_model("segment", "tiny", 3, seed=1).eval()
    a = _run(noise_store, t, student, name)
    pool_ids = set(noise_store.ids[POOL])
    assert len(a.ids) == 6 and len(set(a.ids)) == 6 and set(a.ids) <= pool_ids
    np.testing.assert_array_equal(noise_store.ids[a.indices], a.ids)
    assert np.isfinite(a.scores).all() or name in ("pcoreset", "coreset")
    assert a.scored_ids.size == POOL.size
    shuffled = np.random.default_rng(0).permutation(POOL)
    # MC-dropout masks are drawn per batch, so BALD is compared at the same batch size
    b = _run(noise_store, t, student, name, pool=shuffled, batch_size=16 if name == "bald" else 7)
    assert list(b.ids) == list(a.ids), name
    # the same candidate gets the same score whatever the pool order and batch size
    sa = dict(zip(a.scored_ids, a.scored_scores, strict=True))
    sb = dict(zip(b.scored_ids, b.scored_scores, strict=True))
    np.testing.assert_allclose([sb[i] for i in sa], list(sa.values()), rtol=1e-4, atol=1e-7)


def test_kt_ranks_by_teacher_student_kl(noise_store, teacher, student):
    from cryoal.al.heuristics import kt
    from cryoal.train.predict import predict

    a = _run(noise_store, teacher, student, "kt", k=5)
    pt = predict(teacher, noise_store, POOL).probs
    ps = predict(student, noise_store, POOL).probs
    ref = kt(np.log(pt), np.log(ps))
    best = np.lexsort((noise_store.ids[POOL].astype(str), -ref))[:5]
    assert list(a.ids) == list(noise_store.ids[POOL][best])
    # the same teacher as student: no disagreement anywhere
    same = _run(noise_store, teacher, teacher, "kt")
    np.testing.assert_allclose(same.scored_scores, 0.0, atol=1e-6)


def test_subset_stochastic_diverse_and_class_cap(noise_store, teacher, student):
    sub = _run(noise_store, teacher, student, {"name": "entropy", "subset_size": 0.5})
    assert sub.scored_ids.size == 25 and set(sub.ids) <= set(sub.scored_ids)
    again = _run(noise_store, teacher, student, {"name": "entropy", "subset_size": 0.5}, seed=4)
    assert set(again.scored_ids) != set(sub.scored_ids)
    top = _run(noise_store, teacher, student, "entropy", k=10)
    stoch = _run(
        noise_store, teacher, student, {"name": "entropy", "selection": "stochastic"}, k=10
    )
    assert set(stoch.ids) != set(top.ids)
    for space in ("teacher_probs", "student_probs", "features"):
        div = _run(
            noise_store,
            teacher,
            student,
            {"name": "kt", "selection": "diverse", "diversity_space": space},
            k=5,
        )
        top20 = set(_run(noise_store, teacher, student, "kt", k=20).ids)
        assert set(div.ids) <= top20
    capped = _run(noise_store, teacher, student, {"name": "entropy", "class_cap": 0.34}, k=6)
    counts = np.bincount(capped.predicted, minlength=3)
    # the cap, ceil(0.34 * 6) = 3 per predicted class, holds whenever the pool allows it
    available = np.bincount(_predicted_pool(noise_store, teacher), minlength=3)
    if np.minimum(available, 3).sum() >= 6:
        assert counts.max() <= 3
    uncapped = np.bincount(top.predicted[:6], minlength=3)
    assert counts.max() <= uncapped.max()


def test_typiclust_clusters_the_teachers_features_with_the_labeled_set(noise_store, teacher):
    from cryoal.al import selectors as sel
    from cryoal.al.acquire import subseed
    from cryoal.train.predict import predict

    a = _run(noise_store, teacher, None, "typiclust", k=5)
    assert not set(a.indices) & set(LABELED)
    feats = predict(teacher, noise_store, POOL, features=True).features
    lab = predict(teacher, noise_store, LABELED, features=True).features
    pos, typ = sel.typiclust(feats, 5, noise_store.ids[POOL], labeled=lab, seed=subseed(3, 2))
    assert list(a.ids) == list(noise_store.ids[POOL][pos])
    np.testing.assert_allclose(a.scores, typ, rtol=1e-5)
    with pytest.raises(ValueError, match="class_cap is not available with typiclust"):
        StrategyConfig(name="typiclust", class_cap=0.5)


def test_an_embedding_replaces_the_teachers_features_in_feature_space_selection(
    noise_store, teacher
):
    from cryoal.al import selectors as sel
    from cryoal.al.acquire import subseed

    rng = np.random.default_rng(0)
    table = rng.normal(size=(len(noise_store), 4)).astype(np.float32)
    calls: list[np.ndarray] = []

    def embed(rows: np.ndarray) -> np.ndarray:
        calls.append(np.asarray(rows))
        return table[rows]

    a = acquire(
        "typiclust", teacher=teacher, student=None, store=noise_store, pool_indices=POOL,
        labeled_indices=LABELED, k=5, seed=3, embed=embed,
    )  # fmt: skip
    pos, _ = sel.typiclust(
        table[POOL], 5, noise_store.ids[POOL], labeled=table[LABELED], seed=subseed(3, 2)
    )
    assert list(a.ids) == list(noise_store.ids[POOL][pos])
    assert {frozenset(c.tolist()) for c in calls} == {
        frozenset(POOL.tolist()),
        frozenset(LABELED.tolist()),
    }
    # the teacher's own features pick otherwise on this embedding
    plain = _run(noise_store, teacher, None, "typiclust", k=5)
    assert list(plain.ids) != list(a.ids)


def _predicted_pool(store, teacher):
    from cryoal.train.predict import predict

    return predict(teacher, store, POOL).probs.argmax(1)


def test_errors_name_the_fix(noise_store, teacher, student):
    with pytest.raises(ValueError, match="student"):
        _run(noise_store, teacher, None, "kt")
    with pytest.raises(ValueError, match="between 1 and the pool size"):
        _run(noise_store, teacher, student, "entropy", k=51)
    with pytest.raises(ValueError, match="overlap"):
        acquire(
            "entropy",
            teacher=teacher,
            student=None,
            store=noise_store,
            pool_indices=POOL,
            labeled_indices=[10],
            k=2,
            seed=0,
        )
    with pytest.raises(ValueError, match="dropout"):
        _run(noise_store, teacher, student, "bald")
    with pytest.raises(ValueError, match="invalid strategy 'nope'"):
        _run(noise_store, teacher, student, "nope")
    with pytest.raises(ValueError, match="subset_size"):
        StrategyConfig(name="kt", subset_size=1.5)


def test_explore_labels_a_region_the_model_never_asks_about() -> None:
    import torch

    from cryoal.al.acquire.scoring import ScoreTable
    from cryoal.al.acquire.selection import exploration_picks, select_scored

    rng = np.random.default_rng(0)
    # two labelled classes near each other (A, B) and a rare third one (C) far away that
    # the teacher calls A with confidence: margin sampling never asks about C
    centres = {"A": (0.0, 0.0), "B": (1.0, 0.0), "C": (10.0, 10.0)}
    groups = ["A"] * 40 + ["B"] * 40 + ["C"] * 10
    feats = np.array([centres[g] for g in groups]) + rng.normal(0, 0.1, (len(groups), 2))
    scores = np.array([0.9 if g != "C" else 0.01 for g in groups]) + rng.uniform(0, 0.05, 90)
    labelled = np.array([0, 1, 40, 41])  # store rows 0..89 = the points above
    pool = np.setdiff1d(np.arange(90), labelled)
    table = ScoreTable(
        ids=np.array([f"c{r:03d}" for r in pool]), rows=pool,
        predicted=np.array([0 if groups[r] != "B" else 1 for r in pool]), scores=scores[pool],
    )  # fmt: skip

    def picks(**options) -> list[str]:
        cfg = StrategyConfig(name="margin", **options)
        got = select_scored(cfg, table, k=8, seed=0, teacher=torch.nn.Identity(), student=None,
                            store=None, labeled_indices=labelled, embed=lambda r: feats[r])  # fmt: skip
        return [groups[r] for r in got.indices]

    assert "C" not in picks()
    explored = picks(explore=0.25)
    # 2 of the 8 by TypiClust among uncovered clusters: C is one of them
    assert len(explored) == 8 and exploration_picks(0.25, 8) == 2 and "C" in explored[6:]
    assert explored[:6] == picks()[:6]  # the rest is the strategy's own ranking
    assert StrategyConfig(name="margin", explore=0.25).display_name == "margin+explore0.25"
    with pytest.raises(ValueError, match="explore is for strategies ranked by a score"):
        StrategyConfig(name="typiclust", explore=0.2)
