"""The AL engine: rounds recorded by id, partial oracle answers, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryoal.al import ALEngine, EngineConfig, SimulatedOracle
from cryoal.io.store import SubtomogramStore
from cryoal.train.config import TrainConfig

TEST_ROWS = np.arange(48, 60)


def _config(**kw) -> EngineConfig:
    base = dict(
        strategy={"name": "kt"},
        train=TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=2, batch_size=8,
                          augment=False),
        initial=12, per_cycle=8, n_cycles=3, seed=5, batch_size=16,
    )  # fmt: skip
    base.update(kw)
    return EngineConfig(**base)


def _comparable(state: dict) -> dict:
    """Everything but wall times."""
    hist = [{k: v for k, v in h.items() if not k.endswith("_s")} for h in state["history"]]
    return {"labels": state["labels"], "history": hist, "batches": state["batches"],
            "phase": state["phase"]}  # fmt: skip


class HalfOracle:
    """Answers only the first half of each request (a person part-way through a queue)."""

    def __init__(self, store: SubtomogramStore) -> None:
        self.truth = SimulatedOracle(store)

    def label(self, ids):
        return self.truth.label(list(ids)[: len(ids) // 2])


def test_rounds_partial_answers_and_config_check(noise_store, tmp_path):
    eng = ALEngine(noise_store, HalfOracle(noise_store), _config(n_cycles=2), tmp_path / "run",
                   test_indices=TEST_ROWS)  # fmt: skip
    eng.run()
    assert eng.phase == "label" and len(eng.state["labels"]) == 6  # waiting for the rest
    on_disk = json.loads((tmp_path / "run" / "state.json").read_text())
    assert on_disk["pending"]["ids"] == eng.state["pending"]["ids"]
    # the person finishes: a new engine on the same folder continues from the saved state
    eng = ALEngine(noise_store, SimulatedOracle(noise_store), _config(n_cycles=2), tmp_path / "run",
                   test_indices=TEST_ROWS)  # fmt: skip
    state = eng.run()
    assert state["phase"] == "done"
    rounds = [r for _, r in state["labels"].values()]
    assert rounds.count(0) == 12 and rounds.count(1) == 8
    assert [h["n_labeled"] for h in state["history"]] == [12, 20]
    assert all(0.0 <= h["accuracy"] <= 1.0 for h in state["history"])
    for i, (c, _) in state["labels"].items():  # labels are the oracle's, keyed by id
        assert noise_store.labels[noise_store.index_of([i])[0]] == c
    assert not set(state["labels"]) & set(noise_store.ids[TEST_ROWS])
    assert (
        state["batches"][1]["strategy"] == "kt"
        and sum(state["batches"][1]["class_counts"].values()) == 8
    )
    with pytest.raises(ValueError, match="different configuration"):
        ALEngine(noise_store, SimulatedOracle(noise_store), _config(n_cycles=3), tmp_path / "run",
                 test_indices=TEST_ROWS)  # fmt: skip


def test_cold_start_uses_random_then_switches(noise_store, tmp_path):
    cfg = _config(strategy={"name": "entropy", "cold_start_cycles": 1}, n_cycles=3)
    state = ALEngine(
        noise_store, SimulatedOracle(noise_store), cfg, tmp_path / "cold", test_indices=TEST_ROWS
    ).run()
    assert [b["strategy"] for b in state["batches"]] == [
        "initial-random",
        "cold:random",
        "entropy+cold-random",
    ]
    # with a margin, the switch waits until the teacher beats chance on a cold batch
    cfg = _config(strategy={"name": "entropy", "cold_start_margin": 0.0}, n_cycles=3)
    state = ALEngine(
        noise_store, SimulatedOracle(noise_store), cfg, tmp_path / "margin", test_indices=TEST_ROWS
    ).run()
    first_cold = state["batches"][1]
    assert first_cold["strategy"] == "cold:random"
    acc = first_cold["teacher_accuracy"]
    assert acc is not None  # the teacher's guesses for random picks are checked against labels
    expected = "entropy+cold-random" if acc > 1 / 3 else "cold:random"
    assert state["batches"][2]["strategy"] == expected


def test_typicality_cold_start_runs_typiclust_on_the_cycle_model(noise_store, tmp_path):
    from cryoal.al import acquire
    from cryoal.al.acquire import subseed
    from cryoal.train.checkpoint import load_run

    strategy = {"name": "entropy", "cold_start_cycles": 1, "cold_start_method": "typicality"}
    cfg = _config(strategy=strategy, n_cycles=2)
    eng = ALEngine(
        noise_store, SimulatedOracle(noise_store), cfg, tmp_path / "typ", test_indices=TEST_ROWS
    )
    eng.run(max_steps=3)  # label, train, select
    pending = eng.state["pending"]
    assert pending["strategy"] == "cold:typiclust" and len(pending["ids"]) == 8
    rows, _ = eng.labeled()
    pool = np.setdiff1d(np.arange(48), rows)
    again = acquire(
        "typiclust", teacher=load_run(tmp_path / "typ" / "cycles" / "cycle_00").teacher,
        student=None, store=noise_store, pool_indices=pool, labeled_indices=rows, k=8,
        seed=subseed(5, 1000), batch_size=16,
    )  # fmt: skip
    assert pending["ids"] == list(again.ids)
    assert not set(pending["ids"]) & set(eng.state["labels"])
    # the cycle's full score table: every unlabeled candidate, the picks in order
    from cryoal.al.score_table import read_scores

    table = read_scores(tmp_path / "typ" / "cycles" / "cycle_00" / "scores.csv")
    assert sorted(table["candidate_id"]) == sorted(noise_store.ids[pool])
    assert list(table[table["pick"] >= 0].sort_values("pick")["candidate_id"]) == pending["ids"]
    np.testing.assert_allclose(table[["p_s", "p_m", "p_l"]].sum(axis=1), 1.0, atol=1e-5)


_WORKER = """
import json, os, signal, sys, threading, time
import numpy as np
from cryoal.al import ALEngine, EngineConfig, SimulatedOracle
from cryoal.io.store import SubtomogramStore

state_file = os.path.join(sys.argv[3], "state.json")


def kill_when_cycle_1_trains():
    # SIGKILL this process as soon as the training of cycle 1 has started
    while True:
        try:
            with open(state_file) as fh:
                st = json.load(fh)
            started = os.path.exists(os.path.join(sys.argv[3], "cycles/cycle_01/train.yaml"))
            if st["cycle"] == 1 and st["phase"] == "train" and started:
                os.kill(os.getpid(), signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.001)


threading.Thread(target=kill_when_cycle_1_trains, daemon=True).start()
store = SubtomogramStore(sys.argv[1])
cfg = EngineConfig.model_validate_json(open(sys.argv[2]).read())
ALEngine(store, SimulatedOracle(store), cfg, sys.argv[3], test_indices=np.arange(48, 60)).run()
"""


def test_resume_after_sigkill_gives_the_same_result(noise_store, tmp_path):
    cfg = _config()
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.model_dump_json())
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, str(noise_store.path), str(cfg_file), str(killed)],
        env=env,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    mid = json.loads((killed / "state.json").read_text())
    assert (mid["cycle"], mid["phase"]) == (1, "train")
    cut = killed / "cycles" / "cycle_01"
    assert (cut / "train.yaml").exists() and not (cut / "model.json").exists()  # mid-training
    resumed = ALEngine(noise_store, SimulatedOracle(noise_store), cfg, killed,
                       test_indices=TEST_ROWS).run()  # fmt: skip
    straight = ALEngine(noise_store, SimulatedOracle(noise_store), cfg, tmp_path / "straight",
                        test_indices=TEST_ROWS).run()  # fmt: skip
    assert resumed["phase"] == "done"
    assert _comparable(resumed) == _comparable(straight)


def test_warm_started_cycles_train_warm_start_steps(noise_store, tmp_path):
    train = TrainConfig(teacher_preset="tiny", student="none", steps=12, batch_size=8,
                        augment=False)  # fmt: skip
    cfg = _config(strategy={"name": "random"}, train=train, warm_start=True, warm_start_steps=3)
    out = tmp_path / "warm"
    state = ALEngine(noise_store, SimulatedOracle(noise_store), cfg, out,
                     test_indices=TEST_ROWS).run()  # fmt: skip
    steps = []
    for h in state["history"]:
        metrics = json.loads((out / h["run_dir"] / "metrics.json").read_text())
        steps.append(metrics["epochs"][-1]["step"])
    # cycle 0 from scratch for >= 12 steps; the warm-started ones for >= 3 (whole epochs)
    assert steps[0] >= 12 and all(3 <= s < 12 for s in steps[1:]), steps


def test_an_arm_that_keeps_the_student_records_the_students_test_accuracy(class_store, tmp_path):
    from cryoal.train.checkpoint import load_run
    from cryoal.train.evaluate import evaluate

    store = SubtomogramStore(class_store)
    test = np.arange(80, 96)
    # a teacher that learns the two classes; a student held at its initialisation (lr ~0)
    train = TrainConfig(
        teacher_preset="tiny",
        student_preset="tiny",
        steps=30,
        batch_size=8,
        lr=1e-2,
        student_lr=1e-9,
        student_data="labeled+unlabeled",
        tau=2.0,
    )
    cfg = _config(n_cycles=1, initial=24, evaluate="student", train=train)
    state = ALEngine(store, SimulatedOracle(store), cfg, tmp_path / "run", pool_indices=np.arange(80),
                     test_indices=test).run()  # fmt: skip
    run = load_run(tmp_path / "run" / state["history"][0]["run_dir"])

    def accuracy(model) -> float:  # noqa: ANN001
        got = evaluate(model, None, store, test, task="classify",
                       class_names=run.info["class_names"])  # fmt: skip
        return got["teacher"]["accuracy"]

    assert accuracy(run.teacher) - accuracy(run.student) > 0.1
    assert state["history"][0]["accuracy"] == pytest.approx(accuracy(run.student))
    with pytest.raises(ValueError, match="evaluate: student needs a trained student"):
        _config(evaluate="student", train=train.updated(student="none"))


def test_a_semi_supervised_cycle_records_its_pseudo_labels_and_the_share_used(
    class_store, tmp_path
):
    """The benchmark's pseudo-label table reads these: the pool's held pseudo-labels and the
    share of unlabelled samples the last epoch's loss pseudo-labelled, as training logged."""
    store = SubtomogramStore(class_store)
    train = TrainConfig(teacher_preset="tiny", student_preset="tiny", steps=6, batch_size=8,
                        semi_supervised="fixmatch",
                        pseudo_threshold=0.5)  # fmt: skip
    cfg = _config(strategy={"name": "random"}, n_cycles=1, initial=16, train=train)
    state = ALEngine(store, SimulatedOracle(store), cfg, tmp_path / "run", pool_indices=np.arange(80),
                     test_indices=np.arange(80, 96)).run()  # fmt: skip
    h = state["history"][0]
    last = json.loads((tmp_path / "run" / h["run_dir"] / "metrics.json").read_text())["epochs"][-1]
    assert h["pseudo_labels"]["used_fraction"] == last["train"]["pseudo_fraction"]
    # two classes: every weak view's top class has probability >= 0.5, so all pass
    assert h["pseudo_labels"]["used_fraction"] == 1.0
    assert h["pseudo_labels"]["coverage"] == last["pseudo_labels"]["coverage"]
