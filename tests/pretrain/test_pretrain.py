"""Self-supervised pretraining: views, objectives, the encoder folder, resume and the cache,
and training that starts from a pretrained encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.io.store import SubtomogramStore
from cryoal.pretrain import (
    PretrainConfig,
    embed_rows,
    load_encoder,
    pool_hash,
    pretrain,
    pretrain_cached,
)
from cryoal.pretrain.objectives import vicreg_loss
from cryoal.pretrain.run import describe
from cryoal.pretrain.views import make_view, view_sources

TINY = {"preset": "tiny", "epochs": 2, "batch_size": 16, "warmup_steps": 2}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_encoder(path).state


def test_views_are_wedge_safe_flips_and_shifts_reproducible_from_the_seed() -> None:
    x = torch.randn(6, 1, 8, 8, 8)
    kw = {"flip": True, "max_shift": 1, "noise_std": 0.0}
    a = make_view(x, torch.Generator().manual_seed(3), **kw)
    b = make_view(x, torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a, b)
    # without noise each view is one of the 8 axis flips of the sample, rolled by <= 1 voxel
    for i in range(6):
        candidates = [
            torch.roll(torch.flip(x[i], [d + 1 for d in range(3) if (f >> d) & 1]), s, (1, 2, 3))
            for f in range(8)
            for s in [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        ]
        assert any(torch.equal(a[i], c) for c in candidates)


def test_views_add_noise_up_to_the_configured_share_of_the_sample_std() -> None:
    x = torch.randn(64, 1, 8, 8, 8) * 3.0
    v = make_view(x, torch.Generator().manual_seed(0), flip=False, max_shift=0, noise_std=0.5)
    ratio = (v - x).flatten(1).std(dim=1) / x.flatten(1).std(dim=1)
    assert float(ratio.max()) <= 0.55
    assert float(ratio.mean()) == pytest.approx(0.25, abs=0.06)  # uniform in [0, 0.5]


def test_vicreg_penalises_collapse_and_rewards_agreeing_spread_views() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(128, 32, generator=g)
    spread_agree = vicreg_loss(z, z + 0.01 * torch.randn(128, 32, generator=g))
    collapsed = vicreg_loss(torch.zeros(128, 32), torch.zeros(128, 32))
    disagree = vicreg_loss(z, torch.randn(128, 32, generator=g))
    assert float(spread_agree) < float(disagree)
    assert float(spread_agree) < float(collapsed)
    assert float(collapsed) == pytest.approx(2 * 25.0 * (1 - 1e-2), rel=1e-3)


@pytest.mark.parametrize("objective", ["ntxent", "vicreg"])
def test_pretrain_writes_a_loadable_encoder_whose_embedding_has_the_features(
    class_store: Path, tmp_path: Path, objective: str
) -> None:
    cfg = PretrainConfig(objective=objective, **TINY)
    enc = pretrain(cfg, class_store, None, tmp_path / "enc")
    store = SubtomogramStore(class_store)
    assert enc.info["n_samples"] == len(store)
    assert enc.info["pool_hash"] == pool_hash(store, np.arange(len(store)))
    assert len(enc.info["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in enc.info["history"])
    feats = embed_rows(enc, store, np.arange(10))
    assert feats.shape == (10, int(enc.build().num_features))
    assert np.isfinite(feats).all()


def test_pretraining_interrupted_after_an_epoch_resumes_to_the_same_weights(
    class_store: Path, tmp_path: Path
) -> None:
    cfg = PretrainConfig(**TINY)
    whole = pretrain(cfg, class_store, None, tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill_after_first_epoch(event) -> None:  # noqa: ANN001
        if event.kind == "epoch" and event.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        pretrain(cfg, class_store, None, tmp_path / "cut", callback=kill_after_first_epoch)
    assert not (tmp_path / "cut" / "encoder.json").exists()
    resumed = pretrain(cfg, class_store, None, tmp_path / "cut")
    assert [h["loss"] for h in resumed.info["history"]] == [
        h["loss"] for h in whole.info["history"]
    ]
    for key, value in whole.state.items():
        assert torch.equal(value, resumed.state[key]), key


def test_the_cache_pretrains_a_pool_once_and_keys_it_by_content_and_settings(
    make_store,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    path = make_store(tmp_path / "a.h5")
    cfg = PretrainConfig(**{**TINY, "epochs": 1})
    events: list[str] = []
    first = pretrain_cached(
        cfg, path, None, tmp_path / "cache", callback=lambda e: events.append(e.kind)
    )
    assert events.count("epoch") == 1
    events.clear()
    again = pretrain_cached(
        cfg, path, None, tmp_path / "cache", callback=lambda e: events.append(e.kind)
    )
    assert events == [] and again.path == first.path
    other_rows = pretrain_cached(cfg, path, np.arange(40), tmp_path / "cache")
    other_cfg = pretrain_cached(cfg.updated(seed=1), path, None, tmp_path / "cache")
    other_data = pretrain_cached(
        cfg, make_store(tmp_path / "b.h5", seed=5), None, tmp_path / "cache"
    )
    assert len({first.path, other_rows.path, other_cfg.path, other_data.path}) == 4


def test_a_folder_of_another_pool_is_refused(class_store: Path, tmp_path: Path) -> None:
    cfg = PretrainConfig(**{**TINY, "epochs": 1})
    pretrain(cfg, class_store, None, tmp_path / "enc")
    with pytest.raises(ValueError, match="other samples or settings"):
        pretrain(cfg, class_store, np.arange(30), tmp_path / "enc")


def test_too_few_samples_is_one_line(class_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs >= 16"):
        pretrain(PretrainConfig(**TINY), class_store, np.arange(5), tmp_path / "enc")


def test_training_starts_from_the_encoder_and_refuses_another_preset(
    class_store: Path, tmp_path: Path
) -> None:
    from cryoal.train.config import TrainConfig
    from cryoal.train.fit import fit

    enc = pretrain(PretrainConfig(**TINY), class_store, None, tmp_path / "enc")
    base = {"teacher_preset": "tiny", "student": "none", "steps": 1, "batch_size": 8}
    # an encoder learning rate of ~0 keeps the teacher's encoder at the pretrained weights
    cfg = TrainConfig(**base, encoder=str(enc.path), encoder_lr_scale=1e-9)
    result = fit(cfg, class_store, np.arange(16))
    state = result.teacher.state_dict()
    convs = [k for k in enc.state if k.endswith("weight") and enc.state[k].dim() == 5]
    assert convs
    for key in convs:
        assert torch.allclose(state[key].cpu(), enc.state[key], atol=1e-6), key
    # a trained student of the encoder's preset starts from it too; another preset does not
    same = {**base, "student": "trained", "student_preset": "tiny"}
    both = fit(TrainConfig(**same, encoder=str(enc.path), lr=1e-9), class_store, np.arange(16))
    assert both.student is not None
    student = both.student.state_dict()
    assert all(torch.allclose(student[k].cpu(), enc.state[k], atol=1e-6) for k in convs)
    other = {**same, "student_preset": "student"}
    assert fit(TrainConfig(**other, encoder=str(enc.path)), class_store, np.arange(16)).student
    scratch = fit(TrainConfig(**base), class_store, np.arange(16)).teacher.state_dict()
    assert not torch.allclose(scratch[convs[0]].cpu(), enc.state[convs[0]])
    with pytest.raises(ValueError, match="pretrained for preset 'tiny'"):
        fit(TrainConfig(**{**base, "teacher_preset": "student"}, encoder=str(enc.path)),
            class_store, np.arange(16))  # fmt: skip


def test_a_frozen_encoder_keeps_its_weights_and_statistics_while_the_head_learns(
    class_store: Path, tmp_path: Path
) -> None:
    from cryoal.train.config import TrainConfig
    from cryoal.train.fit import fit

    enc = pretrain(PretrainConfig(**TINY), class_store, None, tmp_path / "enc")
    cfg = TrainConfig(
        teacher_preset="tiny", student_preset="tiny", steps=6, batch_size=8, lr=1e-2,
        encoder=str(enc.path), encoder_frozen=True, student_data="labeled+unlabeled", tau=2.0,
    )  # fmt: skip
    result = fit(cfg, class_store, np.arange(16), unlabeled_indices=np.arange(16, 48))
    state = result.teacher.state_dict()
    # every encoder tensor, the normalisation's running statistics included, as pretrained
    for key, value in enc.state.items():
        assert torch.equal(state[key].cpu(), value), key
    assert any("running_mean" in key for key in enc.state)
    # the head is what learnt (against its initialisation: one step at lr ~0); without the
    # freeze the encoder moves
    start = fit(cfg.updated(steps=1, lr=1e-9), class_store, np.arange(16)).teacher.state_dict()
    assert float((state["head.weight"] - start["head.weight"]).abs().max()) > 1e-3
    moved = fit(cfg.updated(encoder_frozen=False), class_store, np.arange(16),
                unlabeled_indices=np.arange(16, 48)).teacher.state_dict()  # fmt: skip
    assert any(not torch.equal(moved[k].cpu(), v) for k, v in enc.state.items())
    with pytest.raises(ValueError, match="encoder_frozen: true freezes a pretrained encoder"):
        TrainConfig(encoder_frozen=True)


def test_views_of_half_pairs_take_one_half_each_in_either_order() -> None:
    pairs = torch.zeros((64, 2, 4, 4, 4))
    pairs[:, 1] = 1.0  # half 0 all zeros, half 1 all ones
    first, second = view_sources(pairs, torch.Generator().manual_seed(0))
    a, b = first.flatten(1)[:, 0], second.flatten(1)[:, 0]
    assert torch.equal(a + b, torch.ones(64))  # never the same half twice
    assert 10 < int(a.sum()) < 54  # both orders occur
    single = torch.randn(3, 1, 4, 4, 4)
    assert all(v is single for v in view_sources(single, torch.Generator()))


def test_pretraining_on_half_pairs_has_its_own_cache_entry_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    """A pool with half pairs pretrains from them (a new encoder); with noise_pairs off it
    is the pool it was, so the encoder made before half pairs existed is found again."""
    from cryoal.sim.subtomograms import simulate_subtomograms

    common = {"n_classes": 2, "per_class": 16, "box": 24, "snr": 0.5, "seed": 3}
    paired = simulate_subtomograms(tmp_path / "paired.h5", halves=True, **common)
    plain = simulate_subtomograms(tmp_path / "plain.h5", **common)
    cfg = PretrainConfig(**{**TINY, "epochs": 2})
    with_pairs = pretrain_cached(cfg, paired, None, tmp_path / "cache")
    assert with_pairs.info["noise_pairs"] is True
    assert "views from their half pairs" in describe(with_pairs)
    before = pretrain_cached(cfg, plain, None, tmp_path / "cache")
    off = pretrain_cached(cfg.updated(noise_pairs=False), paired, None, tmp_path / "cache")
    assert off.path == before.path != with_pairs.path
    assert before.info["noise_pairs"] is False
    # stopped after its first epoch: resumes to the weights of the uninterrupted run

    def stop_after_first_epoch(event) -> None:  # noqa: ANN001
        if event.kind == "epoch" and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, paired, None, tmp_path / "cut", callback=stop_after_first_epoch)
    resumed = pretrain(cfg, paired, None, tmp_path / "cut")
    for key, value in with_pairs.state.items():
        assert torch.equal(value, resumed.state[key]), key
