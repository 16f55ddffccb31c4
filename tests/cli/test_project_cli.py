"""The project commands through the CLI: the user's path, and bad input in one clear line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from cryoal.cli.main import run
from cryoal.io.coords import read_coords
from cryoal.io.mrc import write_mrc
from cryoal.project.labels import LabelStore

#: Tests whose files go through the copick library (CI installs it with the test extra).
requires_copick = pytest.mark.skipif(
    importlib.util.find_spec("copick") is None,
    reason='copick is not installed: pip install "cryoal[copick]"',
)


def _tomogram(path: Path, voxel_size: float, shape=(32, 48, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 1, shape).astype(np.float32)
    for z, y, x in [(16, 12, 12), (16, 30, 30), (10, 20, 36)]:
        vol[z - 3 : z + 4, y - 3 : y + 4, x - 3 : x + 4] -= 3.0
    return write_mrc(path, vol, voxel_size)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command that must fail; return its single stderr line."""
    capsys.readouterr()
    assert run(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: "), lines
    return lines[0]


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    proj = tmp_path / "proj"
    tomo = _tomogram(tmp_path / "TS_01.mrc", 10.0)
    assert (
        run(["project", "init", str(proj), "--classes", "ribosome,proteasome", "--box", "16"]) == 0
    )
    assert run(["project", "add-tomogram", str(proj), str(tomo)]) == 0
    picks = tmp_path / "picks.csv"
    picks.write_text(
        "tomo_id,x,y,z,class_name\n"
        "TS_01,120,120,160,ribosome\nTS_01,300,300,160,proteasome\nTS_01,360,200,100,ribosome\n"
    )
    assert run(["project", "import-picks", str(proj), str(picks), "--coords-unit", "angstrom"]) == 0
    capsys.readouterr()
    return proj


def test_the_labelling_commands_work_together(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["project", "detect", str(project), "--radius-A", "30", "--n", "5"]) == 0
    assert run(["suggest", str(project), "--strategy", "stratified", "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "round 0: 4 suggestions (stratified)" in out
    queue = pd.read_csv(project / "rounds" / "000" / "suggestions.csv")
    assert len(queue) == 4 and queue["candidate_id"].str.startswith("TS_01:").all()

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "candidate_id,label\nTS_01:000000,ribosome\nTS_01:000001,proteasome\n"
        "TS_01:000003,not-a-particle\n"
    )
    assert run(["labels", "import", str(project), str(labels)]) == 0
    assert (
        run(["labels", "add", str(project), "TS_01:000002", "ribosome", "--annotator", "eve"]) == 0
    )
    assert run(["project", "snapshot", str(project)]) == 0
    assert (project / "rounds" / "001" / "snapshot.csv").is_file()
    assert run(["status", str(project)]) == 0
    status = capsys.readouterr().out
    assert "ribosome" in status and "not-a-particle" in status and "snapshots: 1" in status
    assert "interrupted" not in status
    # a training killed after it started (model folder, no round.json) is named as such
    (project / "rounds" / "001" / "model").mkdir()
    assert run(["status", str(project)]) == 0
    status = capsys.readouterr().out
    assert f"round 1: training interrupted (a killed job); 'cryoal train {project}'" in status

    star = tmp_path / "out.star"
    assert run(["labels", "export", str(project), "--format", "star", "--out", str(star)]) == 0
    back = read_coords(star, voxel_size_A=10.0).sort_values("candidate_id")
    assert back["candidate_id"].tolist() == ["TS_01:000000", "TS_01:000001", "TS_01:000002"]
    np.testing.assert_allclose(back[["z", "y", "x"]].to_numpy()[0], [16, 12, 12])
    assert _error(
        capsys, ["labels", "export", str(project), "--format", "star", "--out", str(star)]
    )


def test_unknown_class_is_a_one_line_error(project: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("candidate_id,label\nTS_01:000000,ribosom\n")
    line = _error(capsys, ["labels", "import", str(project), str(bad)])
    assert "unknown class 'ribosom'" in line and "ribosome" in line and "not-a-particle" in line
    line = _error(capsys, ["labels", "add", str(project), "TS_01:000000", "lysosome"])
    assert "unknown class 'lysosome'" in line
    line = _error(capsys, ["project", "init", str(tmp_path / "p2"), "--classes", "a,unsure"])
    assert "reserved" in line


def test_label_for_unknown_candidate_changes_nothing(project: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("candidate_id,label\nTS_01:000000,ribosome\nTS_07:000004,ribosome\n")
    line = _error(capsys, ["labels", "import", str(project), str(bad)])
    assert "unknown candidate 'TS_07:000004'" in line and "candidates.csv" in line
    with LabelStore(project / "labels.sqlite") as store:
        assert store.current_labels().empty  # the good row was not written either


def test_tomogram_already_added(project: Path, tmp_path: Path, capsys) -> None:
    line = _error(capsys, ["project", "add-tomogram", str(project), str(tmp_path / "TS_01.mrc")])
    assert "tomogram 'TS_01' is already in the project" in line and "--tomo-id" in line
    line = _error(
        capsys,
        ["project", "add-tomogram", str(project), str(tmp_path / "TS_01.mrc"), "--tomo-id", "B"],
    )
    assert "already in the project as tomogram 'TS_01'" in line


def test_picks_for_unknown_tomogram(project: Path, tmp_path: Path, capsys) -> None:
    picks = tmp_path / "other.csv"
    picks.write_text("tomo_id,x,y,z\nTS_09,100,100,100\n")
    line = _error(
        capsys, ["project", "import-picks", str(project), str(picks), "--coords-unit", "angstrom"]
    )
    assert "TS_09" in line and "add-tomogram" in line and "TS_01" in line
    line = _error(capsys, ["project", "detect", str(project), "--tomo-id", "TS_09"])
    assert "unknown tomogram 'TS_09'" in line


def test_voxel_size_mismatch_says_how_to_rescale(project: Path, tmp_path: Path, capsys) -> None:
    other = _tomogram(tmp_path / "TS_02.mrc", 5.0, seed=1)
    line = _error(capsys, ["project", "add-tomogram", str(project), str(other)])
    assert "voxel size 5 Å differs from the project's 10 Å" in line
    assert "squeezevol -f 2" in line and "--rescale_angpix 10" in line
    # a wrong header can be overridden explicitly
    assert run(["project", "add-tomogram", str(project), str(other), "--voxel-size", "10"]) == 0


def test_model_strategy_before_training_is_explained(project: Path, capsys) -> None:
    line = _error(capsys, ["suggest", str(project), "--strategy", "kt"])
    assert "needs a trained model" in line and "random or stratified" in line


def test_an_unknown_strategy_is_refused_before_the_project_is_read(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "nowhere")
    for argv in (["suggest", missing], ["score", missing], ["merge-scores", missing]):
        line = _error(capsys, [*argv, "--strategy", "margin+div"])
        assert line.startswith("cryoal: error: invalid strategy 'margin+div'")
        assert "recipes are margin+div+cap" in line


def test_missing_project_is_explained(tmp_path: Path, capsys) -> None:
    line = _error(capsys, ["status", str(tmp_path / "nowhere")])
    assert "project init" in line


# -- issue 14: exports and messages -----------------------------------------------------
def _label_two(project: Path) -> None:
    assert run(["labels", "add", str(project), "TS_01:000000", "ribosome"]) == 0
    assert run(["labels", "add", str(project), "TS_01:000001", "proteasome"]) == 0


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("option", "value"),
    [("--user-id", "../../evil"), ("--session-id", "a/b"), ("--user-id", "a_b")],
)
def test_copick_ids_are_checked_as_copick_does(
    project: Path, tmp_path: Path, capsys, option: str, value: str
) -> None:
    _label_two(project)
    before = _files(tmp_path)
    out = tmp_path / "copick"
    line = _error(
        capsys, ["labels", "export", str(project), "--format", "copick", "--out", str(out),
                 option, value],
    )  # fmt: skip
    assert repr(value) in line and "not a valid copick name" in line and option in line
    assert _files(tmp_path) == before  # nothing written, inside or outside --out


@requires_copick
def test_copick_export_writes_a_config_copick_can_open(project: Path, tmp_path: Path) -> None:
    _label_two(project)
    out = tmp_path / "copick"
    assert run(["labels", "export", str(project), "--format", "copick", "--out", str(out),
                "--user-id", "alice", "--session-id", "7"]) == 0  # fmt: skip
    config = json.loads((out / "copick_config.json").read_text())
    assert config["config_type"] == "filesystem"
    assert config["overlay_root"] == "local://" + str(out.resolve())
    objects = {o["name"]: o for o in config["pickable_objects"]}
    shown = {k: objects["ribosome"][k] for k in ("name", "is_particle", "label", "color", "radius")}
    assert shown == {"name": "ribosome", "is_particle": True, "label": 1,
                     "color": [31, 119, 180, 255], "radius": 16 * 10.0 / 3}  # fmt: skip
    assert objects["proteasome"]["label"] == 2
    # copick itself opens the folder and reads the picks (the filesystem backend)
    import copick

    root = copick.from_file(str(out / "copick_config.json"))
    assert sorted(o.name for o in root.pickable_objects) == ["proteasome", "ribosome"]
    picks = root.get_run("TS_01").get_picks(object_name="ribosome", user_id="alice")
    assert len(picks) == 1 and picks[0].session_id == "7"
    np.testing.assert_allclose(picks[0].full_positions(), [[120.0, 120.0, 160.0]])
    ribosome = out / "ExperimentRuns" / "TS_01" / "Picks" / "alice_7_ribosome.json"
    assert len(read_coords(ribosome, voxel_size_A=10.0)) == 1


@requires_copick
def test_copick_export_for_a_second_user_keeps_the_config(project: Path, tmp_path: Path) -> None:
    _label_two(project)
    out = tmp_path / "copick"
    argv = ["labels", "export", str(project), "--format", "copick", "--out", str(out)]
    assert run(argv) == 0
    assert run([*argv, "--user-id", "bob"]) == 0  # same config: no --overwrite needed
    picks = sorted(p.name for p in (out / "ExperimentRuns" / "TS_01" / "Picks").iterdir())
    assert picks == ["bob_0_proteasome.json", "bob_0_ribosome.json",
                     "cryoal_0_proteasome.json", "cryoal_0_ribosome.json"]  # fmt: skip
    assert run(argv) == 2  # the same user's picks again: refused without --overwrite


def test_star5_export_states_the_tilt_series_pixel_size(project: Path, tmp_path: Path) -> None:
    _label_two(project)
    star = tmp_path / "p5.star"
    assert run(["labels", "export", str(project), "--format", "star", "--star-version", "5",
                "--out", str(star), "--out-pixel-size", "2.5"]) == 0  # fmt: skip
    blocks = starfile.read(star)
    assert blocks["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [2.5]
    assert blocks["particles"]["rlnTomoSizeX"].tolist() == [192, 192]  # 48 voxels x binning 4
    back = read_coords(star, voxel_size_A=10.0).sort_values("candidate_id")
    np.testing.assert_allclose(back[["z", "y", "x"]].to_numpy()[0], [16, 12, 12], atol=1e-5)


def test_csv_export_imports_as_picks_without_flags(project: Path, tmp_path: Path) -> None:
    _label_two(project)
    out = tmp_path / "labels.csv"
    assert run(["labels", "export", str(project), "--out", str(out)]) == 0
    other = tmp_path / "other"
    assert run(["project", "init", str(other), "--classes", "ribosome,proteasome"]) == 0
    assert run(["project", "add-tomogram", str(other), str(tmp_path / "TS_01.mrc")]) == 0
    assert run(["project", "import-picks", str(other), str(out)]) == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--classes", "a b"], "--classes: class name 'a b' must start"),
        (["--classes", "a", "--box", "2"], "--box: Input should be greater than or equal to 4 (got 2)"),
        (["--classes", "a", "--voxel-size", "-1"], "--voxel-size: Input should be greater than 0 (got -1.0)"),
        (["--classes", "a,a"], "class names ['a', 'a'] contain duplicates"),
    ],
)  # fmt: skip
def test_project_init_errors_are_one_clean_line(tmp_path: Path, capsys, argv, expected) -> None:
    line = _error(capsys, ["project", "init", str(tmp_path / "p"), *argv])
    assert expected in line
    assert "pydantic" not in line and "http" not in line and "validation error for" not in line
    assert not (tmp_path / "p").exists()


def test_messages_name_the_file_and_the_cli_fix(project: Path, tmp_path: Path, capsys) -> None:
    line = _error(capsys, ["labels", "add", str(project), "TS_01:000000", "0"])
    assert "unknown class '0'" in line and "ids 0.." not in line and "ribosome" in line
    yaml_file = project / "project.yaml"
    yaml_file.write_bytes(yaml_file.read_bytes() + b"# caf\xe9\n")
    line = _error(capsys, ["status", str(project)])
    assert str(yaml_file) in line and "not UTF-8" in line


def test_copick_export_refuses_class_names_copick_cannot_hold(tmp_path: Path, capsys) -> None:
    proj = tmp_path / "proj"
    assert run(["project", "init", str(proj), "--classes", "fatty_acid_synthase"]) == 0
    assert (
        run(["project", "add-tomogram", str(proj), str(_tomogram(tmp_path / "TS_01.mrc", 10.0))])
        == 0
    )
    picks = tmp_path / "picks.csv"
    picks.write_text("tomo_id,x_A,y_A,z_A\nTS_01,120,120,160\n")
    assert run(["project", "import-picks", str(proj), str(picks)]) == 0
    assert run(["labels", "add", str(proj), "TS_01:000000", "fatty_acid_synthase"]) == 0
    out = tmp_path / "copick"
    line = _error(capsys, ["labels", "export", str(proj), "--format", "copick", "--out", str(out)])
    assert "'fatty_acid_synthase' is not a valid copick name ('_')" in line
    assert not out.exists()


def test_import_relion5_picks_with_tomograms_star(project: Path, tmp_path: Path) -> None:
    star = tmp_path / "r5.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\nTS_01 0 0 0\n"
    )
    tomos = tmp_path / "tomograms.star"  # TS_01 is 48 x 48 x 32 voxels of 10 Å, binned 4
    tomos.write_text(
        "data_global\n\nloop_\n_rlnTomoName\n_rlnTomoTiltSeriesPixelSize\n_rlnTomoSizeX\n"
        "_rlnTomoSizeY\n_rlnTomoSizeZ\nTS_01 2.5 193 190 127\n"
    )
    argv = ["project", "import-picks", str(project), str(star), "--tomograms-star", str(tomos)]
    assert run(argv) == 0
    with LabelStore(project / "labels.sqlite") as store:
        cands = store.candidates()
    new = cands[cands["source"].astype(str).str.contains("r5.star")]
    # RELION's centre: 193 * 2.5 / 2 = 241.25 Å = 24.125 voxels (not the binned 24.0)
    np.testing.assert_allclose(new[["z", "y", "x"]].to_numpy(), [[15.875, 23.75, 24.125]])


def test_a_snapshot_with_special_labels_restores_into_a_new_project(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the recovery path the damaged-store message gives: import the newest snapshot
    ids = sorted(LabelStore(project / "labels.sqlite").candidates()["candidate_id"])
    for cid, label in zip(ids, ["ribosome", "unsure", "not-a-particle"], strict=True):
        assert run(["labels", "add", str(project), cid, label]) == 0
    assert run(["project", "snapshot", str(project)]) == 0
    snapshot = next((project / "rounds").glob("*/snapshot.csv"))
    fresh = tmp_path / "fresh"
    tomo = tmp_path / "TS_01.mrc"
    assert (
        run(["project", "init", str(fresh), "--classes", "ribosome,proteasome", "--box", "16"]) == 0
    )
    assert run(["project", "add-tomogram", str(fresh), str(tomo)]) == 0
    picks = tmp_path / "picks.csv"
    assert (
        run(["project", "import-picks", str(fresh), str(picks), "--coords-unit", "angstrom"]) == 0
    )
    assert run(["labels", "import", str(fresh), str(snapshot)]) == 0
    restored = LabelStore(fresh / "labels.sqlite").current_labels(include_special=True)
    assert dict(zip(restored["candidate_id"], restored["kind"], strict=True)) == {
        ids[0]: "class",
        ids[1]: "unsure",
        ids[2]: "not-a-particle",
    }


def test_candidates_are_fixed_by_hand_and_a_tomogram_removed(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = str(project)
    assert (
        run(["project", "add-candidate", p, "TS_01", "--xyz", "40,8,24", "--annotator", "ann"]) == 0
    )
    assert "added candidate TS_01:000003" in capsys.readouterr().out
    # Å as well; on top of an existing one it is refused and nothing is written
    says = _error(capsys, ["project", "add-candidate", p, "TS_01", "--xyz", "400,80,240",
                           "--coords-unit", "angstrom"])  # fmt: skip
    assert "already at 0.0 voxels" in says and "TS_01:000003" in says
    says = _error(capsys, ["project", "add-candidate", p, "TS_01", "--xyz", "40,8"])
    assert "--xyz '40,8': give three numbers x,y,z" in says
    says = _error(capsys, ["project", "add-candidate", p, "TS_01", "--xyz", "40,80,24"])
    assert "lies outside tomogram 'TS_01' (shape (32, 48, 48))" in says
    assert run(["project", "move-candidate", p, "TS_01:000003", "--xyz", "41,9,24"]) == 0
    table = pd.read_csv(project / "candidates.csv").set_index("candidate_id")
    assert table.loc["TS_01:000003", ["x", "y", "z"]].tolist() == [41.0, 9.0, 24.0]

    assert run(["labels", "add", p, "TS_01:000000", "ribosome"]) == 0
    assert run(["project", "delete-candidates", p, "TS_01:000000", "TS_01:000001"]) == 0
    assert "deleted 2 candidate(s)" in capsys.readouterr().out
    assert set(pd.read_csv(project / "candidates.csv")["candidate_id"]) == {
        "TS_01:000002", "TS_01:000003"
    }  # fmt: skip
    says = _error(capsys, ["labels", "add", p, "TS_01:000001", "ribosome"])
    assert "was deleted" in says and f"restore-candidates {project} TS_01:000001" in says
    assert run(["project", "restore-candidates", p, "TS_01:000000"]) == 0

    # a tomogram with labelled candidates is removed only when told
    says = _error(capsys, ["project", "remove-tomogram", p, "TS_01"])
    assert "has 1 labelled candidates" in says and "--force" in says
    assert "TS_01" in (project / "project.yaml").read_text()
    assert run(["project", "remove-tomogram", p, "TS_01", "--force"]) == 0
    out = capsys.readouterr().out
    assert "removed tomogram TS_01: 3 candidates deleted; 1 labels left out of training" in out
    with LabelStore(project / "labels.sqlite") as store:
        assert store.n_candidates() == 0 and store.current_labels().empty
        assert len(store.label_history()) == 1  # the label stays in the history
    says = _error(capsys, ["project", "restore-candidates", p, "TS_01:000000"])
    assert "its tomogram 'TS_01' was removed" in says
    # added again under its id, its candidates can come back with their labels
    assert run(["project", "add-tomogram", p, str(tmp_path / "TS_01.mrc")]) == 0
    assert run(["project", "restore-candidates", p, "TS_01:000000"]) == 0
    with LabelStore(project / "labels.sqlite") as store:
        assert store.current_label("TS_01:000000").class_name == "ribosome"
