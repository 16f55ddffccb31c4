"""Project folder, configuration, candidates, suggestions round 0, oracle, export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cryoal.al.oracle import Oracle
from cryoal.al.round import initial_selection
from cryoal.io.mrc import write_mrc
from cryoal.project.candidates import import_picks
from cryoal.project.config import ProjectConfig, load_config
from cryoal.project.labelio import export_labels, import_labels_csv
from cryoal.project.oracle import LabelStoreOracle
from cryoal.project.project import Project
from cryoal.project.suggest import suggest


@pytest.fixture
def project(tmp_path: Path) -> Project:
    rng = np.random.default_rng(0)
    p = Project.init(tmp_path / "proj", ["ribosome", "proteasome", "background"], box=16)
    for name in ("TS_01", "TS_02"):
        write_mrc(tmp_path / f"{name}.mrc", rng.normal(size=(24, 40, 40)).astype(np.float32), 8.0)
        p.add_tomogram(tmp_path / f"{name}.mrc")
    yield p
    p.close()


def _picks(path: Path, rows: list[tuple[str, float, float, float, str]]) -> Path:
    pd.DataFrame(rows, columns=["tomo_id", "x", "y", "z", "class_name"]).to_csv(path, index=False)
    return path


def test_project_yaml_is_validated_and_human_readable(project: Project) -> None:
    data = yaml.safe_load(project.config_path.read_text())
    assert [c["id"] for c in data["classes"]] == [0, 1, 2]
    assert data["voxel_size_A"] == 8.0  # taken from the first tomogram
    assert data["tomograms"][0] == {
        "id": "TS_01", "path": str((project.root.parent / "TS_01.mrc").resolve()),
        "voxel_size_A": 8.0, "shape_zyx": [24, 40, 40],
    }  # fmt: skip
    data["classes"][1]["id"] = 5
    bad = project.root / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"bad.yaml: .*class ids \[0, 5, 2\]"):
        load_config(bad)
    data["classes"][1]["id"] = 1
    data["defaults"]["stratgy"] = "kt"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="defaults.stratgy"):
        load_config(bad)


def test_reopening_checks_classes_against_the_label_store(project: Project) -> None:
    config = load_config(project.config_path)
    config.classes[0].name = "ribo"
    project.config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    with pytest.raises(ValueError, match="differ from those of"):
        Project.open(project.root)


def test_init_refuses_an_existing_project(project: Project) -> None:
    with pytest.raises(FileExistsError, match="already exists"):
        Project.init(project.root, ["a"])


def test_candidate_ids_are_stable_and_duplicates_skipped(project: Project, tmp_path: Path) -> None:
    picks = _picks(tmp_path / "a.csv", [("TS_01", 80, 80, 80, "ribosome"),
                                         ("TS_01", 160, 160, 80, "proteasome"),
                                         ("TS_02", 80, 80, 80, "ribosome")])  # fmt: skip
    res = import_picks(project, picks, unit="angstrom")
    assert res.added == {"TS_01": 2, "TS_02": 1}
    assert res.ids == ["TS_01:000000", "TS_01:000001", "TS_02:000000"]
    more = _picks(tmp_path / "b.csv", [("TS_01", 80.5, 80, 80, "ribosome"),  # same particle
                                        ("TS_01", 240, 240, 120, "ribosome")])  # fmt: skip
    res = import_picks(project, more, unit="angstrom")
    assert res.ids == ["TS_01:000002"] and res.duplicates == 1
    table = pd.read_csv(project.candidates_path)
    assert len(table) == 4
    row = table.set_index("candidate_id").loc["TS_01:000002"]
    assert (row["z"], row["y"], row["x"]) == (15.0, 30.0, 30.0)
    assert (row["x_A"], row["z_A"]) == (240.0, 120.0)
    assert row["prior_class"] == "ribosome"
    with pytest.warns(UserWarning, match="outside tomogram 'TS_01'"):
        res = import_picks(project, _picks(tmp_path / "c.csv", [("TS_01", 9000, 0, 0, "x")]),
                           unit="angstrom")  # fmt: skip
    assert res.outside == 1 and res.n_added == 0


def test_import_picks_as_labels(project: Project, tmp_path: Path) -> None:
    picks = _picks(tmp_path / "a.csv", [("TS_01", 80, 80, 80, "ribosome"),
                                         ("TS_01", 160, 160, 80, "background")])  # fmt: skip
    res = import_picks(project, picks, unit="angstrom", as_labels=True, annotator="template-match")
    assert res.labelled == 2
    labels = project.labels.current_labels()
    assert labels["class_name"].tolist() == ["ribosome", "background"]
    assert set(labels["annotator"]) == {"template-match"}
    with pytest.raises(ValueError, match="unknown class 'lysosome'"):
        import_picks(project, _picks(tmp_path / "b.csv", [("TS_02", 80, 80, 80, "lysosome")]),
                     unit="angstrom", as_labels=True)  # fmt: skip


def test_stratified_round_zero_is_balanced_and_deterministic() -> None:
    groups = np.array(["a"] * 50 + ["b"] * 5 + ["c"] * 20)
    ids = np.array([f"T:{i:06d}" for i in range(75)])
    picked = initial_selection("stratified", ids, 12, 3, groups=groups)
    assert len(set(picked.tolist())) == 12
    counts = pd.Series(groups[picked]).value_counts().to_dict()
    assert counts == {"a": 4, "b": 4, "c": 4}
    # a different row order of the same candidates gives the same ids
    perm = np.random.default_rng(0).permutation(75)
    again = initial_selection("stratified", ids[perm], 12, 3, groups=groups[perm])
    assert sorted(ids[perm][again]) == sorted(ids[picked])


def test_round_zero_suggestions_skip_labelled(project: Project, tmp_path: Path) -> None:
    rows = [
        ("TS_01", 40 + 16 * i, 160, 80, "ribosome" if i % 2 else "proteasome") for i in range(12)
    ]
    import_picks(project, _picks(tmp_path / "a.csv", rows), unit="angstrom")
    project.labels.add_label("TS_01:000000", "proteasome", "alice")
    res = suggest(project, strategy="stratified", k=6, seed=1)
    assert res.round == 0 and len(res.ids) == 6 and "TS_01:000000" not in res.ids
    priors = project.labels.candidates().set_index("candidate_id").loc[res.ids, "prior_class"]
    assert priors.value_counts().to_dict() == {"proteasome": 3, "ribosome": 3}
    with pytest.raises(ValueError, match="round 0 already has suggestions"):
        suggest(project, strategy="random", k=3)
    res2 = suggest(project, strategy="random", k=3, seed=5, replace=True)
    assert project.labels.queue(0)["candidate_id"].tolist() == res2.ids
    assert pd.read_csv(res2.csv_path)["candidate_id"].tolist() == res2.ids


def test_label_store_oracle_answers_only_class_labels(project: Project, tmp_path: Path) -> None:
    rows = [("TS_01", 40 + 16 * i, 160, 80, "ribosome") for i in range(4)]
    import_picks(project, _picks(tmp_path / "a.csv", rows), unit="angstrom")
    store = project.labels
    store.add_label("TS_01:000000", "proteasome", "a")
    store.add_label("TS_01:000001", "unsure", "a")
    store.add_label("TS_01:000002", "not-a-particle", "a")
    oracle = LabelStoreOracle(store)
    assert isinstance(oracle, Oracle)
    ids = ["TS_01:000000", "TS_01:000001", "TS_01:000002", "TS_01:000003", "nope"]
    assert oracle.label(ids) == {"TS_01:000000": 1}
    store.add_label("TS_01:000003", "background", "a")
    assert oracle.label(ids) == {"TS_01:000000": 1, "TS_01:000003": 2}


def test_csv_export_reimports_into_another_project(project: Project, tmp_path: Path) -> None:
    rows = [("TS_01", 40 + 16 * i, 160, 80, "ribosome") for i in range(3)]
    import_picks(project, _picks(tmp_path / "a.csv", rows), unit="angstrom")
    project.labels.add_label("TS_01:000000", "proteasome", "alice")
    project.labels.add_label("TS_01:000001", "unsure", "bob")
    out = tmp_path / "labels.csv"
    res = export_labels(project, "csv", out, include_special=True)
    table = pd.read_csv(out)
    assert res.n_labels == 2
    assert table["class_name"].tolist() == ["proteasome", "unsure"]
    assert table.loc[0, ["x_A", "y_A", "z_A"]].tolist() == [40.0, 160.0, 80.0]  # Å, xyz
    assert table["annotator"].tolist() == ["alice", "bob"]
    # a copy of the project with the same candidates takes the labels back
    other = Project.init(tmp_path / "copy", project.config.class_names, box=16)
    other.add_tomogram(tmp_path / "TS_01.mrc")
    import_picks(other, tmp_path / "a.csv", unit="angstrom")
    assert import_labels_csv(other, out) == 2
    again = other.labels.current_labels()
    assert again["kind"].tolist() == ["class", "unsure"] and again["annotator"].tolist() == [
        "alice", "bob"]  # fmt: skip
    other.close()
    with pytest.raises(ValueError, match="include-special works with --format csv only"):
        export_labels(project, "star", tmp_path / "x.star", include_special=True)


def test_config_rejects_bad_values() -> None:
    base = {"name": "p", "classes": [{"id": 0, "name": "a"}]}
    ProjectConfig.model_validate(base)
    for bad in ({"box": 2}, {"voxel_size_A": -1}, {"classes": []},
                {"classes": [{"id": 0, "name": "a b"}]},
                {"classes": [{"id": 0, "name": "a", "colour": "red"}]},
                {"format_version": 99}):  # fmt: skip
        with pytest.raises(ValueError):
            ProjectConfig.model_validate({**base, **bad})
    assert json.loads(ProjectConfig.model_validate(base).model_dump_json())["box"] == 32


def test_viewer_keys_are_configurable_and_leave_napari_navigation_alone() -> None:
    base = {"name": "p", "classes": [{"id": 0, "name": "ring"}, {"id": 1, "name": "barrel"}]}
    keys = ProjectConfig.model_validate(
        {**base, "keys": {"next": "j", "previous": "k", "classes": ["a", "s"]}}
    ).keys
    assert ("j", "next") in keys.bindings() and ("s", "class:1") in keys.bindings()
    assert keys.help_text(["ring", "barrel"]) == (
        "keys: a ring · s barrel · Enter confirm the prediction · u unsure · x not a particle "
        "· j next · k previous · Ctrl+Z undo · e edit candidates (click adds; in select mode "
        "a drag re-centres, Delete deletes) · Left/Right: slices (napari)"
    )
    for bad, says in (({"next": "Right"}, "napari's navigation"),
                      ({"next": "u"}, "bound to both"),
                      ({"classes": ["1", "1"]}, "bound to both"),
                      ({"undo": ""}, "napari key name"),
                      ({"skip": "s"}, "skip")):  # fmt: skip
        with pytest.raises(ValueError, match=says):
            ProjectConfig.model_validate({**base, "keys": bad})


def test_concurrent_config_changes_are_not_lost(project: Project, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = [f"T{i}" for i in range(4)]
    for name in names:
        write_mrc(tmp_path / f"{name}.mrc", rng.normal(size=(16, 16, 16)).astype(np.float32), 8.0)
    pids = []
    for name in names:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                with Project.open(project.root) as p:
                    p.add_tomogram(tmp_path / f"{name}.mrc")
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    ids = [t.id for t in load_config(project.config_path).tomograms]
    assert sorted(ids) == ["T0", "T1", "T2", "T3", "TS_01", "TS_02"]


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "TS:01", "a b", ".."])
def test_unsafe_tomogram_ids_are_refused_before_the_file_is_read(
    project: Project, tmp_path: Path, bad: str
) -> None:
    before = (project.root / "project.yaml").read_text()
    # the file is not even there: the id is checked first
    with pytest.raises(ValueError, match=f"tomogram id {bad!r} must start with a letter"):
        project.add_tomogram(tmp_path / "missing.mrc", bad)
    assert (project.root / "project.yaml").read_text() == before


def test_round_training_is_seeded_by_the_project_seed_unless_the_config_sets_one(
    project: Project, tmp_path: Path
) -> None:
    from cryoal.project.training import project_train_config

    assert project_train_config(project).seed == 0
    data = yaml.safe_load(project.config_path.read_text())
    data["defaults"]["seed"] = 5
    project.config_path.write_text(yaml.safe_dump(data))
    (tmp_path / "train.yaml").write_text("epochs: 3\n")
    with Project.open(project.root) as again:
        assert project_train_config(again).seed == 5
        assert project_train_config(again, tmp_path / "train.yaml").seed == 5
        assert project_train_config(again, overrides={"seed": 9}).seed == 9
    data["defaults"]["train"] = {"seed": 2}
    project.config_path.write_text(yaml.safe_dump(data))
    (tmp_path / "train.yaml").write_text("seed: 3\n")
    with Project.open(project.root) as again:
        assert project_train_config(again).seed == 2
        assert project_train_config(again, tmp_path / "train.yaml").seed == 3


def test_semi_supervised_project_training_reads_the_pool_and_writes_no_label(
    tmp_path: Path,
    make_round0_labelled_project,  # noqa: ANN001
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json
    import sqlite3

    from cryoal.cli.main import run
    from cryoal.io.store import SubtomogramStore

    proj = make_round0_labelled_project(tmp_path, seed=5)

    def history() -> list[tuple]:
        with sqlite3.connect(proj / "labels.sqlite") as conn:
            return conn.execute("SELECT * FROM labels ORDER BY label_id").fetchall()

    before = history()
    args = ["train", str(proj), "--preset", "tiny", "--student-preset", "tiny", "--epochs",
            "2", "--batch-size", "8", "--no-pretrain", "--no-progress",
            "--set", "semi_supervised=fixmatch", "--set", "pseudo_threshold=0.5"]  # fmt: skip
    capsys.readouterr()
    assert run(args) == 0
    # pseudo-labels never reach the label store: its history is exactly as it was
    assert history() == before
    said = capsys.readouterr().out
    project = Project.open(proj)
    labelled = set(project.labels.current_labels(include_special=True)["candidate_id"])
    every = set(project.labels.candidates()["candidate_id"])
    project.close()
    # the round's store holds the labelled candidates with their classes and every
    # unlabelled candidate of the round with -1
    store = SubtomogramStore(proj / "rounds/001/train.h5")
    ids = [str(i) for i in store.ids]
    assert set(ids) == every
    unlabelled = np.array([i not in labelled for i in ids])
    assert unlabelled.any() and (np.asarray(store.labels)[unlabelled] == -1).all()
    assert (np.asarray(store.labels)[~unlabelled] >= 0).all()
    metrics = json.loads((proj / "rounds/001/model/metrics.json").read_text())
    assert metrics["epochs"][-1]["pseudo_labels"]["coverage"] >= 0.0
    assert "pseudo_fraction" in metrics["epochs"][-1]["train"]
    n_pool = int(unlabelled.sum())
    assert (f"semi-supervised (fixmatch): the teacher also learns from pseudo-labels of "
            f"{n_pool} unlabelled candidates of the round (never stored)") in said  # fmt: skip


def test_training_says_what_it_does_with_the_unlabelled_candidates() -> None:
    from cryoal.project.training import pool_note
    from cryoal.train.config import TrainConfig

    off = pool_note(TrainConfig(), 0)
    assert off.startswith("semi-supervised rounds: off") and "semi_supervised=fixmatch" in off
    student = pool_note(TrainConfig(student_data="labeled+unlabeled"), 40)
    assert student == "the student also reads 40 unlabelled candidates of the round"
    assert "classify only" in pool_note(TrainConfig(task="segment"), 0)
