"""The benchmark: smoke preset end to end through the CLI, and the summary arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.benchmark import BenchmarkConfig, load_benchmark_config
from cryoal.benchmark.data import long_tail_shares, split_pool_test
from cryoal.benchmark.report import picks_table, summarise
from cryoal.benchmark.stats import area_under_curve, labels_to_reach, t_interval
from cryoal.cli.main import run


def test_smoke_benchmark_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    # the smoke preset's strategies, seeds and cycles on a smaller set with fewer epochs
    small = tmp_path / "small.yaml"
    small.write_text("data: {per_class: 40, test_size: 48}\ntrain: {epochs: 3}\n")
    args = ["benchmark", "--preset", "smoke", "--config", str(small), "--out", str(out)]
    assert run([*args, "--no-progress"]) == 0
    cfg = load_benchmark_config("smoke", small)
    assert cfg.train.epochs == 3 and cfg.data.per_class == 40
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == [
        "strategy",
        "seed",
        "cycle",
        "n_labeled",
        "accuracy",
        "macro_f1",
        "train_s",
        "score_s",
    ]
    assert len(curves) == len(cfg.strategies) * len(cfg.seeds) * cfg.n_cycles
    assert set(curves["strategy"]) == set(cfg.labels())
    assert sorted(curves["n_labeled"].unique()) == [16, 32, 48]
    assert curves["accuracy"].between(0, 1).all()
    # same seed -> same initial labeled set and training seed -> same cycle-0 teacher
    first = curves[curves["cycle"] == 0].groupby("seed")["accuracy"].nunique()
    assert (first == 1).all()
    sel = pd.read_csv(out / "selections.csv")
    classes = ["ring", "barrel", "dumbbell", "tetrahedron"]
    assert set(classes) <= set(sel.columns)
    assert (sel[classes].sum(axis=1) == sel["n"]).all()
    summary = (out / "summary.md").read_text()
    for heading in ("Test accuracy", "ALC", "Against random", "What each strategy picked"):
        assert heading in summary
    for png in ("curves.png", "selections.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # round 0 is class-stratified: 16 initial labels on 4 balanced classes, 4 each
    first_batches = sel[sel["round"] == 0]
    assert (first_batches[classes] == 4).all().all()
    assert "95 % Student-t interval" in summary
    # running again resumes: nothing is recomputed and the curves are identical
    assert run([*args, "--no-progress"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "curves.csv"), curves)
    # two runs at once in separate processes give the same numbers as one after another
    out2 = tmp_path / "bench_jobs"
    args2 = ["benchmark", "--preset", "smoke", "--config", str(small), "--out", str(out2)]
    assert run([*args2, "--jobs", "2", "--no-progress"]) == 0
    again = pd.read_csv(out2 / "curves.csv").sort_values(["strategy", "seed", "cycle"])
    ref = curves.sort_values(["strategy", "seed", "cycle"])
    np.testing.assert_array_equal(again["accuracy"].to_numpy(), ref["accuracy"].to_numpy())
    capsys.readouterr()


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = run(["benchmark", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "'huge' is not one of 'smoke', 'cpu', 'paper'" in err and "Traceback" not in err
    assert err.startswith("cryoal: error: ") and err.count("\n") == 1
    code = run(["benchmark", "--strategies", "random,kt,nope", "--out", str(tmp_path / "y")])
    assert code == 2 and "nope" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets: [50, 40]\n")
    code = run(
        ["benchmark", "--preset", "smoke", "--config", str(bad), "--out", str(tmp_path / "z")]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and f"{bad}: budgets: budgets [50, 40] must be positive and strictly increasing, e.g. [50, 100, 200] (got [50, 40])"
        in err
    )
    assert err.count("\n") == 1 and not (tmp_path / "z").exists()


def test_split_is_stratified_disjoint_and_order_free():
    ids = np.array([f"s{i:03d}" for i in range(100)])
    labels = np.repeat(np.arange(4), 25)
    pool, test = split_pool_test(ids, labels, 20, 60, seed=0)
    assert len(test) == 20 and len(pool) == 60 and not set(pool) & set(test)
    assert (np.bincount(labels[test]) == 5).all() and (np.bincount(labels[pool]) == 15).all()
    perm = np.random.default_rng(1).permutation(100)
    pool2, test2 = split_pool_test(ids[perm], labels[perm], 20, 60, seed=0)
    assert set(ids[perm][test2]) == set(ids[test])
    with pytest.raises(ValueError, match="exceed"):
        split_pool_test(ids, labels, 50, 60, seed=0)


def test_long_tailed_pool_follows_the_exponential_profile_and_keeps_the_test_set_balanced():
    ids = np.array([f"s{i:04d}" for i in range(1000)])
    labels = np.repeat(np.arange(5), 200)
    shares = long_tail_shares(5, 10.0)
    assert shares.sum() == pytest.approx(1.0) and shares[0] / shares[-1] == pytest.approx(10.0)
    pool, test = split_pool_test(ids, labels, 250, 300, seed=0, pool_imbalance=10.0)
    assert not set(pool) & set(test) and len(pool) == 300
    assert (np.bincount(labels[test]) == 50).all()
    counts = np.bincount(labels[pool], minlength=5)
    np.testing.assert_allclose(counts, 300 * shares, atol=1)
    assert (np.diff(counts) < 0).all()
    # no pool size: the largest pool whose first class fits in the 150 samples left
    pool, _ = split_pool_test(ids, labels, 250, None, seed=0, pool_imbalance=10.0)
    assert np.bincount(labels[pool])[0] <= 150 and len(pool) == int(150 / shares[0])
    with pytest.raises(ValueError, match=r"class 0 but only 150 .*raise data.per_class"):
        split_pool_test(ids, labels, 250, 600, seed=0, pool_imbalance=10.0)


def test_long_tailed_summary_reports_the_rarer_half_of_the_picks():
    cfg = BenchmarkConfig.model_validate(
        {"data": {"pool_imbalance": 4.0}, "strategies": ["random", "margin"]}
    )
    classes = {"a": 0, "b": 0, "c": 0, "d": 0}
    rows = [
        {"strategy": "random", "seed": 0, "round": 1, "selector": "random", "n": 10,
         **classes, "a": 6, "b": 2, "c": 1, "d": 1},
        {"strategy": "margin", "seed": 0, "round": 1, "selector": "margin", "n": 10,
         **classes, "a": 1, "b": 0, "c": 4, "d": 5},
    ]  # fmt: skip
    lines = picks_table(cfg.labels(), pd.DataFrame(rows), cfg.data.pool_imbalance)
    text = "\n".join(lines)
    pool_share = long_tail_shares(4, 4.0)[2:].sum()
    assert f"(c, d), which hold {pool_share:.0%} of the pool" in text
    assert "| random | 0.60 | a 60%, b 20%, c 10% | – | 20% |" in text
    assert "| margin | 0.50 | d 50%, c 40%, a 10% | b | 90% |" in text
    balanced = "\n".join(picks_table(cfg.labels(), pd.DataFrame(rows)))
    assert "rarer half" not in balanced


def test_long_tailed_summary_compares_the_rarer_classes_paired_by_seed():
    cfg = BenchmarkConfig.model_validate({
        "data": {"pool_imbalance": 10.0}, "strategies": ["random", "margin"], "n_cycles": 2,
        "seeds": [0, 1], "initial": 10, "per_cycle": 10,
    })  # fmt: skip
    rows = []
    for lab, rare_gain in (("random", 0.0), ("margin", 0.1)):
        for seed in (0, 1):
            for cycle, n in enumerate((10, 20)):
                rare = 0.3 + 0.05 * seed + (rare_gain if cycle else 0.0)
                rows.append({"strategy": lab, "seed": seed, "cycle": cycle, "n_labeled": n,
                             "accuracy": 0.5, "macro_f1": 0.5, "train_s": 1.0, "score_s": 0.0,
                             "frequent_half_accuracy": 0.7, "rarer_half_accuracy": rare})  # fmt: skip
    text = summarise(cfg, pd.DataFrame(rows), pd.DataFrame())
    assert "## Frequent and rarer classes (long-tailed pool)" in text
    assert "| random | 0.700 ± 0.000 | 0.325 ± 0.035 | – |" in text
    assert "| margin | 0.700 ± 0.000 | 0.425 ± 0.035 | +0.100 [+0.100, +0.100] |" in text


def test_learning_curve_summaries_known_values():
    n = np.array([100, 200, 300])
    acc = np.array([0.4, 0.6, 0.6])
    assert area_under_curve(n, acc) == pytest.approx((0.5 * 100 + 0.6 * 100) / 200)
    assert labels_to_reach(n, acc, 0.5) == pytest.approx(150.0)
    assert labels_to_reach(n, acc, 0.4) == 100.0
    assert labels_to_reach(n, acc, 0.7) is None


def test_paired_interval_matches_the_t_distribution_and_reads_its_sign():
    ci = t_interval([0.02, 0.03, 0.04, 0.05, 0.06])
    # mean 0.04, sd 0.0158, t(0.975, 4) = 2.776 -> half width 0.0196
    assert ci.mean == pytest.approx(0.04)
    assert ci.high - ci.mean == pytest.approx(2.7764 * 0.015811 / np.sqrt(5), rel=1e-3)
    assert ci.above_zero and not ci.below_zero
    noisy = t_interval([0.05, -0.04, 0.06, -0.03, 0.01])
    assert not noisy.above_zero and not noisy.below_zero
    assert t_interval([0.1]).n == 1 and not t_interval([0.1]).above_zero


def test_calibration_trains_one_labeled_set_with_several_seeds(tmp_path, capsys):
    small = tmp_path / "small.yaml"
    small.write_text("data: {per_class: 20, test_size: 24}\ntrain: {steps: 4}\n")
    out = tmp_path / "calib"
    args = ["benchmark-calibrate", "--preset", "smoke", "--config", str(small), "--out", str(out),
            "--budgets", "8,16", "--train-seeds", "0,1", "--no-progress"]  # fmt: skip
    assert run(args) == 0
    rows = pd.read_csv(out / "calibration.csv")
    assert sorted(rows["budget"].unique()) == [8, 16] and set(rows["steps"]) == {4}
    assert len(rows) == 4 and rows["accuracy"].between(0, 1).all()
    table = (out / "calibration.md").read_text()
    assert (
        "| 8 | 4 steps from scratch | 2 |" in table and "| 16 | 4 steps from scratch | 2 |" in table
    )
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    # a second call resumes: the rows already trained are kept, not retrained
    assert run(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "calibration.csv"), rows)
    capsys.readouterr()


def test_a_calibration_from_a_pretrained_encoder_says_so():
    """With ``train.encoder`` set, every row fine-tunes from that encoder, and the table
    names it so instead of calling the trainings "from scratch"."""
    from cryoal.benchmark.calibrate import calibration_table
    from cryoal.benchmark.config import load_benchmark_config

    frame = pd.DataFrame(
        {"budget": [8, 8], "steps": [4, 4], "warm_steps": [0, 0], "train_seed": [0, 1],
         "accuracy": [0.5, 0.6], "macro_f1": [0.4, 0.5], "train_loss": [1.0, 1.1],
         "train_s": [1.0, 1.0]}
    )  # fmt: skip
    scratch = load_benchmark_config("smoke")
    tuned = load_benchmark_config("smoke", overrides={"train": {"encoder": "/enc"}})
    assert "| 8 | 4 steps from scratch | 2 |" in calibration_table(scratch, frame)
    table = calibration_table(tuned, frame)
    assert "| 8 | 4 steps from the pretrained encoder | 2 |" in table and "scratch" not in table


def test_warm_calibration_trains_one_chain_per_seed_through_nested_sets(tmp_path, capsys):
    from cryoal.benchmark.calibrate import nested_sets
    from cryoal.benchmark.config import load_benchmark_config
    from cryoal.benchmark.data import prepare_data, stratified_initial
    from cryoal.io.store import SubtomogramStore

    small = tmp_path / "small.yaml"
    small.write_text("data: {per_class: 20, test_size: 24}\ntrain: {steps: 4}\n")
    out = tmp_path / "calib"
    args = ["benchmark-calibrate", "--preset", "smoke", "--config", str(small), "--out", str(out),
            "--budgets", "8,16,24", "--train-seeds", "0,1", "--warm-steps", "2",
            "--no-progress"]  # fmt: skip
    assert run(args) == 0
    rows = pd.read_csv(out / "calibration.csv")
    assert len(rows) == 6 and set(rows["warm_steps"]) == {2} and set(rows["steps"]) == {4}
    assert sorted(rows["budget"].unique()) == [8, 16, 24]
    assert (
        "warm chain: 4 steps from scratch, then 2 per budget"
        in (out / "calibration.md").read_text()
    )
    # the sets grow by nesting from the benchmark's stratified initial set
    cfg = load_benchmark_config("smoke", small, {})
    path, pool, _ = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    sets = nested_sets(store, pool, [24, 8, 16], cfg.data.seed)
    assert [s.size for s in sets] == [8, 16, 24]
    assert set(sets[0]) <= set(sets[1]) <= set(sets[2]) and set(sets[2]) <= set(pool)
    with pytest.raises(ValueError, match="larger than the pool"):
        nested_sets(store, pool, [8, pool.size + 1], cfg.data.seed)
    first = set(stratified_initial(store, pool, 8, cfg.data.seed))
    assert {str(i) for i in store.ids[sets[0]].astype(str)} == first
    # resuming retrains nothing; a from-scratch calibration in the same folder adds its rows
    assert run(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "calibration.csv"), rows)
    scratch = [a for a in args if a not in ("--warm-steps", "2")]
    scratch[scratch.index("8,16,24")] = "24"
    assert run(scratch) == 0
    both = pd.read_csv(out / "calibration.csv")
    assert len(both) == 8 and (both["warm_steps"] == 0).sum() == 2
    table = (out / "calibration.md").read_text()  # both schedules, side by side
    assert "| 24 | 4 steps from scratch | 2 |" in table and "| 24 | warm chain" in table
    capsys.readouterr()


def test_pretrained_arms_share_one_encoder_pretrained_on_the_pool(tmp_path):
    import yaml

    out = tmp_path / "bench"
    small = tmp_path / "small.yaml"
    small.write_text(
        "data: {per_class: 40, test_size: 48}\ntrain: {epochs: 2}\nseeds: [0]\n"
        "budgets: [16, 20, 28]\nstratified_initial: false\n"
        "strategies: [random, {name: random, label: random-pre, pretrained: true},\n"
        "             {name: margin, label: margin-pre, pretrained: true, selection: diverse,\n"
        "              diversity_space: features, embedding: encoder, round0: typical}]\n"
        "pretrain: {epochs: 1, batch_size: 16}\n"
    )
    assert run(["benchmark", "--preset", "smoke", "--config", str(small), "--out", str(out),
                "--no-progress"]) == 0  # fmt: skip
    encoders = [p for p in (out / "encoders").iterdir() if (p / "encoder.json").is_file()]
    assert len(encoders) == 1
    info = yaml.safe_load((encoders[0] / "encoder.json").read_text())
    # the pool only (120 of 160 samples), never the test set
    assert info["n_samples"] == 160 - 48 and info["preset"] == "tiny"
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["strategy"]) == {"random", "random-pre", "margin-pre"}
    used = {
        p.parts[-5]: yaml.safe_load(p.read_text()).get("encoder")
        for p in out.glob("runs/*/seed_0/cycles/cycle_00/train.yaml")
    }
    assert used["random"] is None
    assert used["random-pre"] == used["margin-pre"] == str(encoders[0])
    # the budgets are the labelled-set sizes of the trainings
    assert sorted(curves["n_labeled"].unique()) == [16, 20, 28]
    # round 0 of the typical arm: TypiClust in the frozen encoder's embedding of the pool
    import json

    from cryoal.al.round import initial_round
    from cryoal.benchmark.data import prepare_data
    from cryoal.io.store import SubtomogramStore
    from cryoal.pretrain.embed import embed_rows
    from cryoal.pretrain.encoder import load_encoder

    cfg = load_benchmark_config("smoke", small)
    path, pool, _ = prepare_data(cfg, out)
    store = SubtomogramStore(path)
    ids = np.asarray(store.ids[pool]).astype(str)
    feats = embed_rows(load_encoder(encoders[0]), store, pool)
    expected = ids[initial_round("typical", ids, 16, 0, features=feats)]

    def round0(label: str) -> tuple[str, set[str]]:
        state = json.loads((out / "runs" / label / "seed_0" / "state.json").read_text())
        ids = {i for i, (_, r) in state["labels"].items() if r == 0}
        return state["batches"][0]["strategy"], ids

    assert round0("margin-pre") == ("initial-typical", set(expected))
    assert round0("random")[0] == "initial-random" and round0("random")[1] != set(expected)
    # finished runs carried to another folder (state.json only, as benchmarks/study/keep.py
    # keeps them) resume there: reported again, nothing retrained, no encoder pretrained
    import shutil

    moved = tmp_path / "moved"
    for state in out.glob("runs/*/seed_*/state.json"):
        (moved / state.relative_to(out)).parent.mkdir(parents=True)
        shutil.copyfile(state, moved / state.relative_to(out))
    assert run(["benchmark", "--preset", "smoke", "--config", str(small), "--out", str(moved),
                "--no-progress"]) == 0  # fmt: skip
    assert not any(moved.rglob("*.safetensors"))
    again = pd.read_csv(moved / "curves.csv")
    pd.testing.assert_frame_equal(again, curves)


def test_summary_compares_the_pairs_it_is_given_with_the_half_budget_claim():
    cfg = BenchmarkConfig.model_validate({
        "strategies": ["random", {"name": "random", "label": "r1"}, {"name": "margin", "label": "a1"}],
        "budgets": [100, 200, 300, 400], "seeds": [0, 1, 2],
        "comparisons": [["a1", "random"], ["a1", "r1"], ["r1", "random"]],
    })  # fmt: skip
    gain = {"random": 0.0, "r1": 0.2, "a1": 0.25}
    rows = [
        {"strategy": lab, "seed": seed, "cycle": c, "n_labeled": n, "accuracy": 0.1 * c + 0.3
         + g + 0.01 * seed, "macro_f1": 0.5, "train_s": 1.0, "score_s": 0.0}
        for lab, g in gain.items() for seed in (0, 1, 2)
        for c, n in enumerate((100, 200, 300, 400))
    ]  # fmt: skip
    text = summarise(cfg, pd.DataFrame(rows), pd.DataFrame())
    assert "## Against random" in text and "## Against r1" in text
    # a1 at 200 labels (0.65 + seed) minus random at 400 (0.6 + seed): +0.05 on every seed
    assert "| a1 | 3 | +0.250 [+0.250, +0.250] | +0.250 [+0.250, +0.250] |" in text
    assert "| +0.050 [+0.050, +0.050] | none | beats random |" in text
    assert "| a1 | 3 | +0.050 [+0.050, +0.050] |" in text.split("## Against r1")[1]
    # only the pairs asked for: r1 is never the one compared with a1's reference random twice
    assert text.count("| r1 | 3 |") == 1
    # two seeds that differ from random by the same amount give a zero-width interval: no
    # verdict is drawn from them
    two = summarise(cfg.model_copy(update={"seeds": [0, 1]}),
                    pd.DataFrame([r for r in rows if r["seed"] < 2]), pd.DataFrame())  # fmt: skip
    row = next(line for line in two.splitlines() if line.startswith("| a1 | 2 |"))
    assert "+0.250 [+0.250, +0.250]" in row and "beats" not in row
    assert row.endswith("| too few seeds (2 of at least 3) |")
    with pytest.raises(ValueError, match="comparisons name 'b2', which is not a strategy"):
        BenchmarkConfig.model_validate(
            {"strategies": ["random"], "comparisons": [["b2", "random"]]}
        ).labels()


def test_summary_reports_the_pseudo_labels_of_semi_supervised_arms(tmp_path: Path):
    from cryoal.benchmark.report import collect

    cfg = BenchmarkConfig.model_validate({
        "strategies": ["random", {"name": "random", "label": "s1",
                                  "train": {"semi_supervised": "fixmatch"}}],
        "budgets": [100, 200], "seeds": [0, 1],
    })  # fmt: skip
    for label in ("random", "s1"):
        for seed in (0, 1):
            history = []
            for c, n in enumerate((100, 200)):
                h = {"cycle": c, "n_labeled": n, "accuracy": 0.5, "macro_f1": 0.5,
                     "per_class_accuracy": {}, "train_s": 1.0, "score_s": 0.0}  # fmt: skip
                if label == "s1":  # coverage grows with the labels; one class lags
                    h["pseudo_labels"] = {
                        "coverage": 0.2 * (c + 1) + 0.1 * seed, "accuracy": 0.9,
                        "per_class": {"coverage": [0.5, 0.1 * seed, None],
                                      "accuracy": [0.9, 0.8, None]},
                    }  # fmt: skip
                    if c == 0:  # the second cycle as recorded before the used share was kept
                        h["pseudo_labels"]["used_fraction"] = 0.7 + 0.2 * seed
                history.append(h)
            path = tmp_path / "runs" / label / f"seed_{seed}" / "state.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"history": history, "batches": []}))
    curves, selections = collect(cfg, tmp_path)
    assert curves.loc[curves["strategy"] == "random", "pseudo_coverage"].isna().all()
    text = summarise(cfg, curves, selections)
    table = text.split("## Pseudo-labels of the semi-supervised arms")[1]
    # mean over the two seeds: used 0.80 (then not recorded), held 0.25 then 0.45, accuracy
    # 0.9, worst class 0.05
    assert "| s1 | 0.80 / 0.25 / 0.90 / 0.05 | – / 0.45 / 0.90 / 0.05 |" in table
    assert "| random |" not in table.split("##")[0]


def test_a_pool_simulated_with_halves_pretrains_from_them_and_older_folders_still_resume(
    tmp_path,
):
    import json

    from cryoal.benchmark.data import prepare_data
    from cryoal.io.store import SubtomogramStore

    plain = load_benchmark_config("smoke", None)
    plain.data.per_class, plain.data.test_size = 12, 12
    out = tmp_path / "plain"
    path, pool, _ = prepare_data(plain, out)
    assert not SubtomogramStore(path).has_halves
    # a folder made before data.halves existed records no such key: still the same data
    spec = json.loads((out / "data" / "dataset.json").read_text())
    del spec["halves"]
    (out / "data" / "dataset.json").write_text(json.dumps(spec))
    assert prepare_data(plain, out)[0] == path
    paired = plain.model_copy(deep=True)
    paired.data.halves = True
    with pytest.raises(ValueError, match="different data settings"):
        prepare_data(paired, out)
    path2, pool2, _ = prepare_data(paired, tmp_path / "paired")
    with SubtomogramStore(path) as a, SubtomogramStore(path2) as b:
        assert b.has_halves  # the samples themselves are those of the plain pool
        np.testing.assert_array_equal(a.subtomograms(pool), b.subtomograms(pool2))
    with pytest.raises(ValueError, match="data.halves does not apply to data.tomograms"):
        BenchmarkConfig.model_validate(
            {"preset": "smoke", "data": {"halves": True, "tomograms": {}}}
        )
