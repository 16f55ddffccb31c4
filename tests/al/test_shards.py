"""Sharded scoring: 1, 2 and 3 shards give bitwise the same scores, and the merge selects
exactly what a single-process acquisition selects."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cryoal.al.acquire import ScoreTable, acquire, candidate_rows, score_candidates, select_scored
from cryoal.al.shards import (
    candidates_sha256,
    merge_shards,
    parse_shard,
    shard_name,
    write_shard,
)
from cryoal.al.strategies import StrategyConfig
from cryoal.models import build_model

POOL = np.arange(10, 60)  # 50 candidates: 7 micro-batches of 8 (the last one short)
LABELED = np.arange(10)
BATCH = 8


@pytest.fixture(scope="module")
def dropout_teacher():
    return build_model("classify", "tiny", 3, dropout=0.3, seed=1).eval()


def _shards(tmp: Path, cfg, models, store, n_shards: int, seed: int = 4) -> list[Path]:
    rows, ids = candidate_rows(cfg, store, POOL, 6, seed)
    meta = {"n_shards": n_shards, "n_candidates": int(ids.size), "strategy": cfg.name,
            "candidates_sha256": candidates_sha256(ids), "seed": seed, "batch_size": BATCH,
            "model_version": "r1"}  # fmt: skip
    paths = []
    for i in range(n_shards):
        table = score_candidates(cfg, *models, store, rows, ids, seed=seed, batch_size=BATCH,
                                 shard=(i, n_shards))  # fmt: skip
        paths.append(write_shard(tmp / shard_name(i, n_shards), table, meta | {"shard": i}))
    return paths


@pytest.mark.parametrize("name", ["kt", "bald", "coreset", "badge", "entropy-gradnorm"])
def test_one_two_and_three_shards_are_bitwise_identical_and_select_the_same(
    name, tmp_path, noise_store, teacher, student, dropout_teacher
) -> None:
    cfg = StrategyConfig.parse(name)
    models = (dropout_teacher if name == "bald" else teacher, student)
    rows, ids = candidate_rows(cfg, noise_store, POOL, 6, 4)
    merged = {}
    for n in (1, 2, 3):
        paths = _shards(tmp_path / str(n), cfg, models, noise_store, n)
        merged[n] = merge_shards(paths, ids, candidates_sha256(ids))
    for n in (2, 3):
        for field in ("ids", "rows", *ScoreTable.ARRAYS):
            a, b = getattr(merged[1], field), getattr(merged[n], field)
            assert (a is None) == (b is None), field
            if a is not None:
                assert a.dtype == b.dtype and np.array_equal(a, b), f"{field} with {n} shards"
                assert a.tobytes() == b.tobytes()  # bitwise, not just equal values
    single = acquire(cfg, teacher=models[0], student=models[1], store=noise_store,
                     pool_indices=POOL, labeled_indices=LABELED, k=6, seed=4,
                     batch_size=BATCH)  # fmt: skip
    for n in (1, 2, 3):
        res = select_scored(cfg, merged[n], k=6, seed=4, teacher=models[0], student=models[1],
                            store=noise_store, labeled_indices=LABELED,
                            batch_size=BATCH)  # fmt: skip
        assert res.ids.tolist() == single.ids.tolist()
        assert np.array_equal(res.scores, single.scores)


def test_the_merge_names_missing_and_duplicated_ids_and_shard_files(
    tmp_path, noise_store, teacher, student
) -> None:
    cfg = StrategyConfig.parse("entropy")
    _, ids = candidate_rows(cfg, noise_store, POOL, 6, 4)
    sha = candidates_sha256(ids)
    paths = _shards(tmp_path, cfg, (teacher, student), noise_store, 3)
    with pytest.raises(ValueError, match=r"have no score: .*missing shard files: shard-001-of-003"):
        merge_shards([paths[0], paths[2]], ids, sha)
    other = _shards(tmp_path / "two", cfg, (teacher, student), noise_store, 2)
    (tmp_path / "two" / shard_name(0, 2)).rename(tmp_path / "dup.h5")
    with pytest.raises(ValueError, match="differs from .* in n_shards"):
        merge_shards([*paths, tmp_path / "dup.h5"], ids, sha)
    with pytest.raises(ValueError, match="appear in more than one shard"):
        merge_shards([*paths, Path(shutil.copy(paths[0], tmp_path / "copy.h5"))], ids, sha)
    with pytest.raises(ValueError, match="another candidate list"):
        merge_shards(other[1:], ids[1:], candidates_sha256(ids[1:]))
    with pytest.raises(ValueError, match="expected I/N"):
        parse_shard("3/3")
    assert parse_shard("2/4") == (2, 4)
