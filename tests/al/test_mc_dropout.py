"""MC-dropout masks keyed by (seed, candidate id, pass): independent of the micro-batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cryoal.al.acquire import candidate_rows, score_candidates
from cryoal.al.mc_dropout import KeyedDropout
from cryoal.al.strategies import StrategyConfig
from cryoal.models import build_model


def _passes(model: nn.Module, keyed: KeyedDropout, ids: list[str], x: torch.Tensor, n: int):
    keyed.start_batch(ids)
    return [model(x) for _ in range(n)]


def test_a_candidates_masks_depend_on_its_id_and_pass_not_on_its_batch() -> None:
    model = nn.Sequential(nn.Dropout(0.5)).train()
    with KeyedDropout([model], seed=7) as keyed:
        abc = _passes(model, keyed, ["a", "b", "c"], torch.ones(3, 200), 3)
        ca = _passes(model, keyed, ["c", "a"], torch.ones(2, 200), 3)
    for t in range(3):
        assert torch.equal(abc[t][0], ca[t][1]) and torch.equal(abc[t][2], ca[t][0])
    assert not torch.equal(abc[0][0], abc[1][0])  # another pass, another mask
    assert not torch.equal(abc[0][0], abc[0][1])  # another candidate, another mask
    kept = torch.stack(abc) > 0
    assert 0.4 < kept.float().mean() < 0.6 and set(torch.stack(abc).unique().tolist()) <= {0, 2}
    with KeyedDropout([model], seed=8) as keyed:
        assert not torch.equal(_passes(model, keyed, ["a"], torch.ones(1, 200), 1)[0][0], abc[0][0])
    assert "forward" not in model[0].__dict__  # the module is restored


def test_channel_dropout_masks_whole_channels_and_eval_mode_is_untouched() -> None:
    model = nn.Sequential(nn.Dropout3d(0.5)).train()
    x = torch.ones(2, 16, 3, 3, 3)
    with KeyedDropout([model], seed=1) as keyed:
        (y,) = _passes(model, keyed, ["a", "b"], x, 1)
        flat = y.reshape(2, 16, -1)
        assert torch.equal(flat.amin(2), flat.amax(2))  # one value per channel
        model.eval()
        assert torch.equal(model(x), x)
    with pytest.raises(ValueError, match="not AlphaDropout; use another strategy"):
        KeyedDropout([nn.Sequential(nn.AlphaDropout(0.2))], seed=1)


def test_bald_scores_do_not_depend_on_the_micro_batches(noise_store) -> None:
    teacher = build_model("classify", "tiny", 3, dropout=0.3, seed=1).eval()
    cfg = StrategyConfig.parse("bald")
    rows, ids = candidate_rows(cfg, noise_store, np.arange(10, 60), 6, 4)

    def scores(r: np.ndarray, i: np.ndarray, batch: int) -> np.ndarray:
        table = score_candidates(cfg, teacher, None, noise_store, r, i, seed=4, batch_size=batch)
        return table.scores

    full = scores(rows, ids, 8)
    # every third candidate: each shares its micro-batch with other candidates than before
    assert scores(rows[::3], ids[::3], 8).tobytes() == full[::3].tobytes()
    # other micro-batch sizes: the same masks (the forward passes may round differently)
    np.testing.assert_allclose(scores(rows, ids, 5), full, rtol=1e-6, atol=1e-9)
    assert not np.array_equal(
        score_candidates(cfg, teacher, None, noise_store, rows, ids, seed=5, batch_size=8).scores,
        full,
    )
