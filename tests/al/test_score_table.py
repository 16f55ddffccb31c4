"""The score table of an acquisition: every scored candidate, its pick, class and probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from cryoal.al import acquire
from cryoal.al.score_table import read_scores, score_frame, write_scores
from cryoal.train.predict import predict

POOL = np.arange(10, 60)
NAMES = ["s", "m", "l"]


def _acq(store, teacher, student, strategy, k=6):
    return acquire(
        strategy, teacher=teacher, student=student, store=store, pool_indices=POOL,
        labeled_indices=np.arange(10), k=k, seed=3, batch_size=16,
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["entropy", "kt", "coreset"])
def test_table_holds_every_candidate_and_matches_the_selection(
    noise_store, teacher, student, strategy, tmp_path
):
    a = _acq(noise_store, teacher, student, strategy)
    path = write_scores(tmp_path / "cycle_00" / "scores.csv", a, NAMES)
    table = read_scores(path)
    assert list(table.columns) == ["candidate_id", "score", "pick", "predicted_class",
                                   "p_s", "p_m", "p_l"]  # fmt: skip
    assert sorted(table["candidate_id"]) == sorted(noise_store.ids[POOL])
    picks = table[table["pick"] >= 0].sort_values("pick")
    assert list(picks["candidate_id"]) == list(a.ids)
    np.testing.assert_allclose(picks["score"], a.scores, rtol=1e-12)
    if strategy != "coreset":  # k-center scores only its picks
        assert table["score"].notna().all()
        rank = table.sort_values(["score", "candidate_id"], ascending=[False, True])
        assert list(rank["candidate_id"][:6]) == list(a.ids)  # top-k of the table's scores
    probs = table[["p_s", "p_m", "p_l"]].to_numpy()
    ref = predict(teacher, noise_store, noise_store.index_of(table["candidate_id"].tolist()))
    np.testing.assert_allclose(probs, ref.probs, atol=1e-5)
    assert list(table["predicted_class"]) == [NAMES[c] for c in ref.probs.argmax(1)]


def test_random_predicts_only_its_picks_and_class_names_must_match(noise_store, teacher, student):
    a = _acq(noise_store, teacher, student, "random")
    table = score_frame(a, NAMES)
    picked = table["pick"] >= 0
    assert (table.loc[picked, "predicted_class"] != "").all()
    assert (table.loc[~picked, "predicted_class"] == "").all()
    assert "p_s" not in table.columns and table["score"].notna().all()
    b = _acq(noise_store, teacher, student, "entropy")
    with pytest.raises(ValueError, match="3 class probabilities per candidate but 2 class names"):
        score_frame(b, ["a", "b"])
