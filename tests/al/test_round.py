"""One round for benchmarks and projects: the engine and a project train the same models and
pick the same candidates when they run the same strategy on the same labels, pool,
configuration and seed."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.al.engine import ALEngine, EngineConfig
from cryoal.al.ledger import LabelledRound, ProjectLedger, in_cold_start
from cryoal.al.round import (
    initial_selection,
    round_student,
    selection_seed,
    train_round,
)
from cryoal.al.strategies import StrategyConfig
from cryoal.cli.main import run
from cryoal.project.extraction import candidate_store
from cryoal.project.oracle import LabelStoreOracle
from cryoal.project.project import Project
from cryoal.train.config import TrainConfig


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory: pytest.TempPathFactory, make_round0_labelled_project) -> Path:
    """A project whose round-0 queue (seed 1) the expert labelled, trained once (round 1,
    seed 1)."""
    proj = make_round0_labelled_project(tmp_path_factory.mktemp("round_parity"), seed=7)
    assert run(["train", str(proj), "--preset", "tiny", "--student-preset", "tiny", "--epochs",
                "2", "--batch-size", "4", "--val-fraction", "0", "--seed", "1", "-q"]) == 0  # fmt: skip
    return proj


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_round_trains_the_same_model_and_picks_the_same_in_a_benchmark_and_a_project(
    trained_project: Path, tmp_path: Path
) -> None:
    proj = trained_project
    assert run(["suggest", str(proj), "--strategy", "kt", "--k", "5", "--seed", "1",
                "--replace"]) == 0  # fmt: skip
    project_queue = pd.read_csv(proj / "rounds/001/suggestions.csv")["candidate_id"].tolist()

    # the project's first training pretrained an encoder on its candidates and started
    # the teacher from it; the engine is given the same encoder
    encoder = json.loads((proj / "rounds/001/round.json").read_text())["encoder"]
    assert encoder is not None
    # the benchmark engine from scratch over the project's candidates, the label store as
    # its oracle: the same round 0, training 0 and round-1 selection as the project's
    with Project.open(proj) as project:
        round0 = project.labels.queue(0, include_labelled=True)["candidate_id"].tolist()
        config = EngineConfig(
            strategy=StrategyConfig(name="kt"), initial=12, per_cycle=5, n_cycles=2, seed=1,
            train=TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=2,
                              batch_size=4, encoder=encoder),
        )  # fmt: skip
        engine = ALEngine(
            candidate_store(project), LabelStoreOracle(project.labels), config, tmp_path / "e"
        )
        assert engine.state["pending"]["ids"] == sorted(round0)
        engine.run()  # label round 0, train, select round 1; waits for the expert
    assert engine.state["phase"] == "label" and engine.state["cycle"] == 1
    teacher = "teacher.safetensors"
    assert _sha256(tmp_path / "e/cycles/cycle_00" / teacher) == _sha256(
        proj / "rounds/001/model" / teacher
    )
    assert engine.state["pending"]["ids"] == project_queue


# kt ranks deterministically; badge (k-means++) and typiclust (k-means) draw from the seed
@pytest.mark.parametrize("strategy", ["kt", "badge", "typiclust"])
def test_a_project_round_and_a_benchmark_round_pick_the_same_candidates(
    trained_project: Path, tmp_path: Path, strategy: str
) -> None:
    proj = trained_project
    assert run(["suggest", str(proj), "--strategy", strategy, "--k", "5", "--seed", "2",
                "--replace"]) == 0  # fmt: skip
    project_queue = pd.read_csv(proj / "rounds/001/suggestions.csv")["candidate_id"].tolist()

    # the benchmark engine over the same candidates, with the label store as its oracle
    with Project.open(proj) as project:
        store = candidate_store(project)
        labelled = sorted(project.labels.current_labels()["candidate_id"].astype(str))
        oracle = LabelStoreOracle(project.labels)
        config = EngineConfig(
            strategy=StrategyConfig(name=strategy), per_cycle=5, n_cycles=2, seed=2,
            train=TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=1,
                              batch_size=4),
        )  # fmt: skip
        engine = ALEngine(store, oracle, config, tmp_path / "engine", initial_ids=labelled)
        assert engine.step() == "train"  # round 0 answered from the label store
        assert engine.step() == "select"  # the engine's own cycle-0 model ...
        cycle = tmp_path / "engine" / "cycles" / "cycle_00"
        shutil.rmtree(cycle)  # ... replaced by the project's model of round 1
        shutil.copytree(proj / "rounds/001/model", cycle)
        assert engine.step() == "label"
    assert sorted(engine.state["pending"]["ids"]) == sorted(project_queue)


def test_one_suggest_parses_its_strategy_once(
    trained_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = StrategyConfig.parse.__func__  # type: ignore[attr-defined]
    calls: list[object] = []

    def counting(cls: type[StrategyConfig], value: object) -> StrategyConfig:
        calls.append(value)
        return real(cls, value)

    monkeypatch.setattr(StrategyConfig, "parse", classmethod(counting))
    recipe = "typiclust-cold+margin+div+cap"  # a cold start: a second strategy derived
    assert run(["suggest", str(trained_project), "--strategy", recipe, "--k", "5", "--seed",
                "2", "--replace"]) == 0  # fmt: skip
    assert calls == [recipe]


def test_the_auto_default_ranks_with_the_recipe_measured_for_the_model(
    trained_project: Path, noise_store
) -> None:
    from cryoal.al.round import round_embedding
    from cryoal.project.rounds import newest_model
    from cryoal.project.suggest import PRETRAINED_DEFAULT, SCRATCH_DEFAULT, measured_default

    model = newest_model(trained_project)
    assert model is not None and model.encoder  # a project pretrains on its candidates
    assert measured_default(model) == PRETRAINED_DEFAULT
    assert measured_default(replace(model, encoder=None)) == SCRATCH_DEFAULT
    assert run(["suggest", str(trained_project), "--k", "4", "--replace"]) == 0  # defaults: auto
    with Project.open(trained_project) as project:
        queue = project.labels.queue(model.round)
    assert set(queue["strategy"]) == {PRETRAINED_DEFAULT} and len(queue) == 4
    # the pretrained recipe reads the encoder's embedding when there is one, else the teacher's
    pretrained = StrategyConfig.parse(PRETRAINED_DEFAULT)
    assert pretrained.embedding == "auto" and pretrained.explore == 0.2
    assert round_embedding(pretrained, None, noise_store) is None
    with pytest.raises(ValueError, match="no encoder"):
        round_embedding(pretrained.model_copy(update={"embedding": "encoder"}), None, noise_store)


def test_round_seeds_and_round_zero_are_shared_and_deterministic() -> None:
    # round q is selected with the seed the engine has always used for cycle q - 1
    from cryoal.al.acquire import subseed

    assert selection_seed(4, 1) == subseed(4, 1000)
    assert selection_seed(4, 2) != selection_seed(4, 1)
    ids = np.array([f"T:{i:04d}" for i in range(40)])
    first = initial_selection("random", ids, 8, 3)
    perm = np.random.default_rng(0).permutation(40)
    again = initial_selection("random", ids[perm], 8, 3)
    assert sorted(ids[first]) == sorted(ids[perm][again])
    with pytest.raises(ValueError, match="not one of random, stratified, typical"):
        initial_selection("central", ids, 8, 3)
    with pytest.raises(ValueError, match="typical round 0 needs the embedding"):
        initial_selection("typical", ids, 8, 3)
    # typical: one pick per k-means cluster of the embedding, whatever the id order
    feats = np.repeat(np.eye(4) * 10, 10, axis=0) + np.random.default_rng(1).normal(size=(40, 4))
    typical = initial_selection("typical", ids, 4, 3, features=feats)
    assert sorted(int(p) // 10 for p in typical) == [0, 1, 2, 3]
    again = initial_selection("typical", ids[perm], 4, 3, features=feats[perm])
    assert sorted(ids[typical]) == sorted(ids[perm][again])


def test_a_recipe_with_a_cold_start_runs_its_cold_start_strategy_in_a_project(
    trained_project: Path,
) -> None:
    recipe = StrategyConfig.parse("typiclust-cold+margin+div+cap")
    assert recipe.label == "typiclust-cold+margin+div+cap" and recipe.name == "margin"
    assert [in_cold_start(recipe, r, [], 2) for r in (0, 1, 2, 3)] == [False, True, True, False]
    proj, opts = trained_project, ["--k", "5", "--seed", "2", "--replace"]
    queue = proj / "rounds/001/suggestions.csv"
    assert run(["suggest", str(proj), "--strategy", "typiclust", *opts]) == 0
    typical = pd.read_csv(queue)["candidate_id"].tolist()
    assert run(["suggest", str(proj), "--strategy", "typiclust-cold+margin+div+cap", *opts]) == 0
    cold = pd.read_csv(queue)
    assert cold["candidate_id"].tolist() == typical  # round 1 is cold, and recorded as such
    assert set(cold["strategy"]) == {"cold:typiclust"}


def test_one_cold_start_rule_reads_the_ledger_of_a_run_or_a_project(trained_project: Path) -> None:
    margin = StrategyConfig(name="entropy", cold_start_cycles=1, cold_start_margin=0.1)
    sure, unsure = LabelledRound(1, True, 0.9), LabelledRound(1, True, 0.55)
    # round 1 is cold; round 2 stays cold while round 1's teacher is not above 1/2 + 0.1
    assert in_cold_start(margin, 1, [], 2)
    assert not in_cold_start(margin, 2, [sure], 2) and in_cold_start(margin, 2, [unsure], 2)
    assert in_cold_start(margin, 2, [LabelledRound(1, True, None)], 2)  # nothing to judge by
    # a cold start that ended does not come back, and no cold start means never
    assert not in_cold_start(margin, 3, [unsure, LabelledRound(2, False, 0.1)], 2)
    assert not in_cold_start(StrategyConfig(name="entropy"), 1, [], 2)
    # a project's ledger: its snapshot's labels and its queues, read from the round files
    project = Project.open(trained_project)
    names = project.config.class_names
    snapshot_ids = set(
        pd.read_csv(trained_project / "rounds/001/snapshot.csv")["candidate_id"].astype(str)
    )
    project.close()
    ledger = ProjectLedger(trained_project, 1, names)
    ids, classes = ledger.labelled()
    assert list(ids) == sorted(ids) and set(ids) == snapshot_ids
    assert classes.min() >= 0 and classes.max() < len(names)
    assert ledger.rounds() == [LabelledRound(0, False, None)]  # round 0: random, no teacher
    with pytest.raises(ValueError, match="recipes are margin\\+div\\+cap"):
        StrategyConfig.parse("margin+div")


def test_the_round_student_and_what_a_round_cannot_train(noise_store, tmp_path: Path) -> None:
    trained = TrainConfig(teacher_preset="tiny", student="trained")
    assert round_student(trained, StrategyConfig(name="entropy")) == "none"  # a benchmark run
    assert round_student(trained, StrategyConfig(name="kt-ema")) == "ema"
    assert round_student(trained, None) == "trained"  # a project: its configuration's
    both = trained.updated(student_data="labeled+unlabeled")
    with pytest.raises(ValueError, match="needs the unlabelled rows"):
        train_round(both, noise_store, [0, 1, 2], [0, 1, 2], seed=0, training=0,
                    out_dir=tmp_path / "r")  # fmt: skip
    with pytest.raises(ValueError, match="3 labelled rows but 2 labels"):
        train_round(trained, noise_store, [0, 1, 2], [0, 1], seed=0, training=0,
                    out_dir=tmp_path / "r")  # fmt: skip
    assert not (tmp_path / "r").exists()
