"""The segmentation benchmark: smoke-seg end to end, Dice/IoU and edit-cost arithmetic, the
tomogram split and the simulator call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from cryoal.al.edit_cost import correction_cost, proposal_changes, scratch_cost
from cryoal.benchmark import load_benchmark_config, run_benchmark
from cryoal.benchmark.report import paired_alc_over, paired_differences
from cryoal.benchmark.seg_report import CURVE_COLUMNS, _versus
from cryoal.benchmark.stats import mean_over_range
from cryoal.benchmark.tomograms import simulate_one, tomogram_split
from cryoal.io.store import MASK_IGNORE, StoreWriter, SubtomogramStore
from cryoal.train.metrics import ConfusionCounter, segmentation_metrics


def test_smoke_segment_benchmark_runs_records_dice_and_costs_and_resumes(tmp_path: Path) -> None:
    from cryoal.train.checkpoint import load_run

    cfg = load_benchmark_config("smoke-seg")
    assert cfg.task == "segment" and cfg.data.tomograms is not None
    out = tmp_path / "bench"
    res = run_benchmark(cfg, out)
    curves = pd.read_csv(res.curves_csv)
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert len(curves) == len(cfg.strategies) * len(cfg.seeds) * cfg.n_cycles
    assert sorted(curves["n_labeled"].unique()) == [4, 8, 12]
    for col in ("mean_dice", "worst_dice", "mean_iou", "worst_iou"):
        assert curves[col].between(0, 1).all(), col
    assert (curves["worst_dice"] <= curves["mean_dice"] + 1e-12).all()
    assert (curves["mean_iou"] < curves["mean_dice"]).all()  # IoU = D / (2 - D) < D

    # the pool and the test crops come from different tomograms, as split.json records
    store = SubtomogramStore(out / "data" / "dataset.h5")
    assert store.has_masks
    split = json.loads((out / "data" / "split.json").read_text())
    assert split["by"] == "tomogram" and split["test_tomograms"] == ["tomo_02"]
    state = json.loads((out / "runs" / "kt" / "seed_0" / "state.json").read_text())
    pool_ids = set(state["labels"])
    tomos = dict(zip(store.ids.tolist(), store.tomo_ids.tolist(), strict=True))
    assert {tomos[i] for i in pool_ids} <= set(split["pool_tomograms"])
    assert split["pool_crops"] + split["test_crops"] == len(store)
    # masks are multi-object: some crop holds a neighbour of another class than its own
    masks = store.masks(np.arange(len(store)))
    own = store.labels + 1
    assert any(
        set(np.unique(m)) - {0, int(o), MASK_IGNORE} for m, o in zip(masks, own, strict=True)
    )

    # costs: cumulative per cycle; round 0 costs its scratch cost in both modes; the
    # correction cost of round 1 is what the cycle-0 teacher's masks differ from the truth
    run = out / "runs" / "kt" / "seed_0"
    history, batches = state["history"], state["batches"]
    row = {i: k for k, i in enumerate(store.ids.tolist())}
    first = [i for i, (_, r) in state["labels"].items() if r == 0]
    first_scratch = int(scratch_cost(store.masks([row[i] for i in first])).sum())
    assert history[0]["cost"] == {"scratch": first_scratch, "correct": first_scratch}
    second = [i for i, (_, r) in state["labels"].items() if r == 1]
    teacher = load_run(run / "cycles" / "cycle_00").teacher
    changed = int(proposal_changes(teacher, store, [row[i] for i in second]).sum())
    assert batches[1]["cost"]["correct"] == changed
    assert history[1]["cost"]["correct"] == first_scratch + changed
    for mode in ("scratch", "correct"):
        assert [h["cost"][mode] for h in history] == list(
            np.cumsum([b["cost"][mode] for b in batches])
        )
    assert set(history[-1]["dice"]) == set(store.class_names)  # foreground classes only

    summary = res.summary_md.read_text()
    for text in ("Test mean Dice", "Against random", "crops to reach", "correction cost to reach"):
        assert text in summary
    assert res.curves_png.read_bytes()[:4] == b"\x89PNG"

    # a second call skips the finished runs: no state is rewritten, the curves are the same
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("state.json")}
    run_benchmark(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(res.curves_csv), curves)


def test_dice_and_iou_come_from_summed_counts_known_values() -> None:
    names = ["background", "a", "b"]
    counter = ConfusionCounter(3)
    # crop 1: a is found once of twice, b three times of four (one b voxel called a)
    counter.update(np.array([0, 1, 1, 2, 2, 2, 2, MASK_IGNORE]), np.array([0, 1, 0, 2, 2, 2, 1, 2]))
    # crop 2: one a voxel, called b; a not-annotated voxel is never counted
    counter.update(np.array([1, 0, MASK_IGNORE]), np.array([2, 0, 1]))
    m = segmentation_metrics(counter.matrix, names)
    # a: TP 1, FP 1, FN 2 -> Dice 2/5, IoU 1/4; b: TP 3, FP 1, FN 1 -> Dice 6/8, IoU 3/5
    assert m["dice"]["a"] == pytest.approx(2 / 5) and m["iou"]["a"] == pytest.approx(1 / 4)
    assert m["dice"]["b"] == pytest.approx(3 / 4) and m["iou"]["b"] == pytest.approx(3 / 5)
    assert m["mean_dice"] == pytest.approx((2 / 5 + 3 / 4) / 2)
    assert m["worst_dice"] == pytest.approx(2 / 5)
    assert m["mean_iou"] == pytest.approx((1 / 4 + 3 / 5) / 2)
    assert m["worst_iou"] == pytest.approx(1 / 4)
    assert m["n_voxels"] == 9


def test_dice_against_cost_compares_seeds_over_the_cost_range_both_runs_cover() -> None:
    # the same Dice per crop, but the arm's crops cost half as much to paint: level on the
    # crop axis, ahead on the cost axis (the curve is read where both runs have spent)
    assert mean_over_range([0, 10], [0.0, 1.0], 0, 10) == pytest.approx(0.5)
    assert mean_over_range([0, 10, 20], [0.0, 1.0, 1.0], 5, 15) == pytest.approx((3.75 + 5.0) / 10)
    with pytest.raises(ValueError, match="not inside"):
        mean_over_range([0, 10], [0.0, 1.0], 0, 11)
    n = np.array([10, 20, 40])
    dice = {seed: np.array([0.30, 0.40, 0.50]) + 0.02 * seed for seed in range(3)}
    complete = {}
    for seed, d in dice.items():
        complete["random", seed] = pd.DataFrame(
            {
                "n_labeled": n,
                "mean_dice": d,
                "worst_dice": d - 0.1,
                "cost_scratch": n * 2000.0,
                "cost_correct": n * 1000.0,
            }  # fmt: skip
        )
        complete["cheap", seed] = pd.DataFrame(
            {
                "n_labeled": n,
                "mean_dice": d,
                "worst_dice": d - 0.1,
                "cost_scratch": n * 1000.0,
                "cost_correct": n * 1000.0,
            }  # fmt: skip
        )
    assert paired_differences("cheap", "random", complete, metric="mean_dice")[1] == [0.0] * 3
    ahead = paired_alc_over("cheap", "random", complete, metric="mean_dice", x="cost_scratch")
    assert len(ahead) == 3 and min(ahead) > 0.03
    level = paired_alc_over("cheap", "random", complete, metric="mean_dice", x="cost_correct")
    assert level == pytest.approx([0.0] * 3)
    table = "\n".join(_versus(["cheap"], "random", complete))
    row = next(line for line in table.splitlines() if line.startswith("| cheap "))
    assert "beats random (scratch cost)" in row and "(crops" not in row
    two = {key: v for key, v in complete.items() if key[1] < 2}
    row = next(line for line in _versus(["cheap"], "random", two) if line.startswith("| cheap "))
    assert "beats" not in row and "too few seeds (2 of at least 3)" in row


def test_edit_costs_count_foreground_and_changed_voxels() -> None:
    truth = np.zeros((2, 4, 4, 4), np.uint8)
    truth[0, :2, :2, :2] = 1  # 8 voxels of class 0
    truth[0, 3, 3, :] = 2  # 4 of class 1
    truth[0, 0, 3, :] = MASK_IGNORE  # 4 not annotated
    truth[1, 1:3, 1:3, 1:3] = 2  # 8
    proposed = np.zeros((2, 4, 4, 4), np.int64)
    proposed[0, :2, :2, :2] = 1  # right
    proposed[0, 3, 3, :2] = 1  # 2 voxels of class 1 called class 0, 2 missed
    proposed[0, 0, 3, :] = 2  # not annotated: free
    proposed[1, 1:3, 1:3, 1:3] = 2  # right ...
    proposed[1, 0, 0, 0] = 1  # ... plus one false voxel
    assert scratch_cost(truth).tolist() == [12, 8]
    assert correction_cost(proposed, truth).tolist() == [4, 1]
    assert correction_cost(truth, truth).tolist() == [0, 0]
    with pytest.raises(ValueError, match="differ in shape"):
        correction_cost(proposed[:, :2], truth)


class _Background(nn.Module):
    """A segmenter that calls every voxel background: (B, 1, D, H, W) -> (B, 3, D, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.ones_like(x), torch.zeros_like(x), torch.zeros_like(x)], dim=1)


def _crop_store(path: Path, tomo_ids: list[str], box: int = 8) -> SubtomogramStore:
    rng = np.random.default_rng(0)
    n = len(tomo_ids)
    masks = rng.choice(np.array([0, 0, 1, 2, MASK_IGNORE], np.uint8), size=(n, box, box, box))
    with StoreWriter(path, box, 10.0, ["a", "b"], with_masks=True) as w:
        w.append(
            rng.standard_normal((n, box, box, box)).astype(np.float32),
            [f"{t}:{k:06d}" for k, t in enumerate(tomo_ids)],
            labels=np.arange(n) % 2,
            tomo_ids=tomo_ids,
            masks=masks,
        )
    return SubtomogramStore(path)


def test_proposal_changes_of_an_all_background_teacher_are_the_scratch_costs(tmp_path):
    store = _crop_store(tmp_path / "s.h5", ["t0"] * 5)
    rows = [4, 0, 2]
    got = proposal_changes(_Background(), store, rows, batch_size=2)
    assert got.tolist() == scratch_cost(store.masks(rows)).tolist()
    assert got.min() > 0


def test_tomogram_split_holds_whole_tomograms_out_and_records_them(tmp_path):
    store = _crop_store(tmp_path / "s.h5", ["t1", "t0", "t2", "t1", "t2", "t0"])
    pool, test = tomogram_split(store, 1, tmp_path / "split.json")
    assert set(store.tomo_ids[test]) == {"t2"} and set(store.tomo_ids[pool]) == {"t0", "t1"}
    assert not set(pool) & set(test) and len(pool) + len(test) == len(store)
    record = json.loads((tmp_path / "split.json").read_text())
    assert record["test_tomograms"] == ["t2"] and record["pool_crops"] == 4
    with pytest.raises(ValueError, match="leaves no pool"):
        tomogram_split(store, 3)


def test_membranes_reach_the_simulator_only_when_the_config_sets_them(tmp_path) -> None:
    import json

    import mrcfile

    cfg = load_benchmark_config("smoke-seg")
    simulate_one(cfg.data, tmp_path / "plain", 1)
    assert "membranes" not in json.loads((tmp_path / "plain" / "simulation.json").read_text())
    membranes = {"vesicles": 1, "sheets": 1, "vesicle_radius_A": [120.0, 150.0]}
    with_membranes = load_benchmark_config(
        "smoke-seg", overrides={"data": {"tomograms": {"particles": 6, "membranes": membranes}}}
    )
    simulate_one(with_membranes.data, tmp_path / "mem", 1)
    settings = json.loads((tmp_path / "mem" / "simulation.json").read_text())
    assert settings["label_names"][-1] == "membrane"
    assert mrcfile.read(tmp_path / "mem" / "labels.mrc").max() == len(settings["label_names"])
    for bad in ({"nope": 1}, {"vesicles": -1}):
        cfg = load_benchmark_config(
            "smoke-seg", overrides={"data": {"tomograms": {"membranes": bad}}}
        )
        with pytest.raises(ValueError, match="data.tomograms.membranes"):
            simulate_one(cfg.data, tmp_path / "bad", 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": {"test_size": 10}}, "data.test_size does not apply to data.tomograms"),
        ({"data": {"tomograms": None}}, "train.task segment needs crops with masks"),
        ({"data": {"tomograms": {"count": 2, "test": 2}}}, "leaves no pool"),
        ({"strategies": [{"name": "kt", "train": {"task": "classify"}}]}, "sets train.task"),
    ],
)
def test_segment_config_errors_name_the_field(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_benchmark_config("smoke-seg", overrides=overrides)


@pytest.mark.parametrize("name", ["seg_snr01", "seg_snr005"])
def test_study_configs_load_over_the_cpu_seg_preset(name) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "study" / f"{name}.yaml"
    cfg = load_benchmark_config("cpu-seg", path)
    assert cfg.task == "segment" and len(cfg.seeds) == 5
    assert {"random", "random_foreground", "kt-mean", "kt-foreground", "entropy"} <= set(
        cfg.labels()
    )


def test_the_resolved_benchmark_yaml_of_a_segment_benchmark_loads_back(tmp_path: Path) -> None:
    """``OUT/benchmark.yaml`` lists every key, the subtomogram-only ones at their defaults;
    reports are rebuilt from it (benchmarks/study/keep.py)."""
    import yaml

    cfg = load_benchmark_config("cpu-seg")
    path = tmp_path / "benchmark.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    assert load_benchmark_config(None, path) == cfg
