"""Simulated datasets in the store: determinism, shards, workers, masks, crowding, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoal.cli.main import run
from cryoal.io.store import SubtomogramStore
from cryoal.sim.imaging import ImagingParams
from cryoal.sim.subtomograms import (
    Simulator,
    SubtomogramParams,
    merge_shards,
    simulate_subtomograms,
)
from cryoal.sim.templates import phantom_templates

SMALL = {"n_classes": 3, "per_class": 6, "box": 24, "snr": 0.1}


def _read(path: Path) -> tuple[np.ndarray, ...]:
    with SubtomogramStore(path) as s:
        return s.subtomograms(slice(None)), s.labels, np.asarray(s.ids), s.meta("quaternion_xyzw")


def test_store_holds_labels_classes_and_ground_truth(tmp_path: Path) -> None:
    out = simulate_subtomograms(tmp_path / "a.h5", seed=2, masks=True, **SMALL)
    with SubtomogramStore(out) as s:
        assert len(s) == 18 and s.box == 24 and s.voxel_size_A == 10.0
        assert s.class_names == ["ring", "barrel", "dumbbell"]
        assert np.bincount(s.labels).tolist() == [6, 6, 6]
        assert s.ids[0] == "sim2:0000000" and len(set(s.ids)) == 18
        assert s.meta("quaternion_xyzw").shape == (18, 4)
        np.testing.assert_allclose(np.linalg.norm(s.meta("quaternion_xyzw"), axis=1), 1.0)
        assert s.meta("shift_zyx").shape == (18, 3) and np.abs(s.meta("shift_zyx")).max() <= 0.5
        assert ((s.meta("defocus_um") >= 2) & (s.meta("defocus_um") <= 5)).all()
        assert (s.meta("snr") == np.float32(0.1)).all()
        assert s.extra_attrs["sim_seed"] == 2 and s.extra_attrs["sim_path"] == "fourier"
        data = s.subtomograms(slice(None))
        np.testing.assert_allclose(data.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
        np.testing.assert_allclose(data.std(axis=(1, 2, 3)), 1.0, rtol=1e-3)
        masks = s.masks(slice(None))
        for m, label in zip(masks, s.labels, strict=True):
            assert set(np.unique(m)) == {0, label + 1}


def test_masks_are_the_rotated_template_support() -> None:
    templates = phantom_templates(3)
    sim = Simulator(templates, SubtomogramParams(snr=None, normalise=False), seed=0)
    batch = sim.generate(np.arange(9), masks=True, stages=True)
    for m, dens, label in zip(batch.masks, batch.particles, batch.labels, strict=True):
        t = templates[label]
        support_voxels = int((t.density > t.support_level).sum())
        assert (m > 0).sum() == pytest.approx(support_voxels, rel=0.1)  # rotation keeps the volume
        assert dens[m > 0].min() > t.support_level * 0.999


def test_same_seed_same_data_and_any_grouping_of_indices_gives_the_same_samples() -> None:
    sim = Simulator(phantom_templates(4), SubtomogramParams(box=24), seed=5)
    full = sim.generate(np.arange(12), masks=True)
    part = sim.generate([7, 3, 10], masks=True)
    np.testing.assert_array_equal(part.data, full.data[[7, 3, 10]])
    np.testing.assert_array_equal(part.masks, full.masks[[7, 3, 10]])
    other = Simulator(phantom_templates(4), SubtomogramParams(box=24), seed=6).generate(
        np.arange(12)
    )
    assert not np.allclose(other.data, full.data)


def test_shards_merge_into_exactly_the_unsharded_store(tmp_path: Path) -> None:
    whole = simulate_subtomograms(tmp_path / "whole.h5", seed=1, batch_size=5, **SMALL)
    shards = [
        simulate_subtomograms(tmp_path / f"s{k}.h5", seed=1, shard=f"{k}/3", batch_size=4, **SMALL)
        for k in (2, 0, 1)
    ]
    merged = merge_shards(tmp_path / "merged.h5", shards)
    for a, b in zip(_read(whole), _read(merged), strict=True):
        np.testing.assert_array_equal(a, b)
    s2, s0, _ = shards
    with pytest.raises(ValueError, match="gap"):
        merge_shards(tmp_path / "bad.h5", [s0, s2])
    with pytest.raises(ValueError, match="overlap"):
        merge_shards(tmp_path / "bad.h5", [s0, s0])
    other_seed = simulate_subtomograms(tmp_path / "other.h5", seed=2, shard="1/3", **SMALL)
    with pytest.raises(ValueError, match="different settings"):
        merge_shards(tmp_path / "bad.h5", [s0, other_seed])


def test_worker_processes_write_the_same_store(tmp_path: Path) -> None:
    one = simulate_subtomograms(tmp_path / "one.h5", seed=4, **SMALL)
    two = simulate_subtomograms(tmp_path / "two.h5", seed=4, workers=2, batch_size=4, **SMALL)
    for a, b in zip(_read(one), _read(two), strict=True):
        np.testing.assert_array_equal(a, b)


def test_crowding_adds_neighbours_without_changing_the_central_particle() -> None:
    templates = phantom_templates(4)
    base = SubtomogramParams(
        snr=None, normalise=False, imaging=ImagingParams(ctf=False, wedge=False)
    )
    crowded = SubtomogramParams(snr=None, normalise=False, crowding=2, imaging=base.imaging)
    a = Simulator(templates, base, seed=9).generate(np.arange(8), masks=True)
    b = Simulator(templates, crowded, seed=9).generate(np.arange(8), masks=True)
    extra = b.data - a.data
    assert (
        extra.min() > -1e-4
        and (extra.sum(axis=(1, 2, 3)) > 0.05 * a.data.sum(axis=(1, 2, 3))).all()
    )
    np.testing.assert_array_equal(a.meta["quaternion_xyzw"], b.meta["quaternion_xyzw"])
    # The central particle's mask is untouched; neighbours add their own class labels.
    central = a.masks > 0
    np.testing.assert_array_equal(b.masks[central], a.masks[central])
    assert (b.masks[~central] > 0).any()


def test_start_index_gives_a_disjoint_test_set(tmp_path: Path) -> None:
    train = simulate_subtomograms(tmp_path / "train.h5", seed=0, **SMALL)
    test = simulate_subtomograms(tmp_path / "test.h5", seed=0, start_index=18, **SMALL)
    with SubtomogramStore(train) as a, SubtomogramStore(test) as b:
        assert not set(a.ids) & set(b.ids)
        assert np.bincount(b.labels).tolist() == [6, 6, 6]


def test_invalid_settings_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SNR"):
        simulate_subtomograms(
            tmp_path / "x.h5", snr=-1, **{k: v for k, v in SMALL.items() if k != "snr"}
        )
    with pytest.raises(ValueError, match="tilt range"):
        simulate_subtomograms(tmp_path / "x.h5", tilt_range=(60, -60), **SMALL)
    with pytest.raises(ValueError, match="shard"):
        simulate_subtomograms(tmp_path / "x.h5", shard="3/3", **SMALL)
    (tmp_path / "exists.h5").write_bytes(b"")
    with pytest.raises(FileExistsError):
        simulate_subtomograms(tmp_path / "exists.h5", **SMALL)
    assert not (tmp_path / "x.h5").exists()


def test_cli_simulates_with_preview_and_reports_errors_in_one_line(tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "cli.h5", tmp_path / "preview.png"
    code = run(
        [
            "simulate",
            "subtomograms",
            str(out),
            "--classes",
            "3",
            "--per-class",
            "4",
            "--box",
            "24",
            "--snr",
            "0.1",
            "--tilt-range",
            "-50",
            "55",
            "--seed",
            "3",
            "--preview",
            str(png),
            "--masks",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "wrote 12 subtomograms" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with SubtomogramStore(out) as s:
        assert len(s) == 12 and s.has_masks
        assert s.extra_attrs["sim_tilt_min_deg"] == -50 and s.extra_attrs["sim_tilt_max_deg"] == 55
    assert run(["simulate", "subtomograms", str(out), "--classes", "3", "--per-class", "4"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("cryoal: error:")
        and "already exists" in err
        and len(err.strip().splitlines()) == 1
    )
    assert run(["simulate", "subtomograms", str(tmp_path / "y.h5"), "--path", "radon"]) == 2
    assert "'fourier', 'backprojection'" in capsys.readouterr().err  # refused by the parser


def test_half_pairs_average_to_the_sample_with_independent_noise_at_half_the_snr(
    tmp_path: Path,
) -> None:
    """What pretraining's noise pairs rely on: the same particle, independent noise."""
    raw = Simulator(phantom_templates(3), SubtomogramParams(box=24, snr=0.1, normalise=False), 3)
    batch = raw.generate(np.arange(6), halves=True, stages=True)
    plain = raw.generate(np.arange(6))
    np.testing.assert_array_equal(batch.data, plain.data)  # the samples do not change
    assert batch.halves is not None and batch.halves.shape == (6, 2, 24, 24, 24)
    np.testing.assert_allclose(batch.halves.mean(axis=1), batch.data, atol=1e-5)
    noise = batch.halves - batch.signal[:, None]
    for n in noise:
        assert abs(np.corrcoef(n[0].ravel(), n[1].ravel())[0, 1]) < 1e-3
    snr_half = batch.signal.var(axis=(1, 2, 3)) / noise[:, 0].var(axis=(1, 2, 3))
    np.testing.assert_allclose(snr_half, 0.05, rtol=0.05)
    # in a store: normalised each on its own, shards merge them like the samples
    whole = simulate_subtomograms(tmp_path / "w.h5", seed=1, halves=True, **SMALL)
    shards = [
        simulate_subtomograms(tmp_path / f"s{k}.h5", seed=1, halves=True, shard=f"{k}/2", **SMALL)
        for k in (0, 1)
    ]
    merged = merge_shards(tmp_path / "m.h5", shards)
    with SubtomogramStore(whole) as a, SubtomogramStore(merged) as b:
        assert a.has_halves and b.has_halves
        h = a.halves(slice(None))
        np.testing.assert_allclose(h.mean(axis=(2, 3, 4)), 0, atol=1e-5)
        np.testing.assert_allclose(h.std(axis=(2, 3, 4)), 1, atol=1e-4)
        np.testing.assert_array_equal(h, b.halves(slice(None)))
    plain_shard = simulate_subtomograms(tmp_path / "p.h5", seed=1, shard="1/2", **SMALL)
    with pytest.raises(ValueError, match="different settings"):
        merge_shards(tmp_path / "bad.h5", [shards[0], plain_shard])
