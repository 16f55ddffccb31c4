"""cryoal project from-copick: a copick project (made here with copick's own API) as a source."""

from __future__ import annotations

import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryoal.cli.main import run
from cryoal.io.mrc import open_tomogram
from cryoal.project.from_copick import project_from_copick
from cryoal.project.project import Project

copick = pytest.importorskip("copick")  # CI installs it (the test extra includes cryoal[copick])
from copick.models import PickableObject  # noqa: E402

SHAPE = (32, 32, 32)


def _copick_project(tmp_path: Path, *, spacings=(10.0,), types=("wbp",)) -> Path:
    """A copick project made with copick's API: config JSON + overlay folder.

    Objects ribosome (label 2), apo-ferritin (label 1), membrane (not a particle). Runs
    TS_01 (tomograms only as OME-Zarr) and TS_02 (an MRC beside its Zarr, as the CZ
    cryoET Data Portal ships them). Picks: alice/1 ribosome on TS_01, the tool pytom/0
    apo-ferritin on TS_02 (its second point shifted by its transformation).
    """
    config = tmp_path / "copick_config.json"
    root = copick.new_config(
        str(config),
        overlay_root=str(tmp_path / "overlay"),
        pickable_objects=[
            PickableObject(name="ribosome", is_particle=True, label=2, radius=60),
            PickableObject(name="apo-ferritin", is_particle=True, label=1, radius=60),
            PickableObject(name="membrane", is_particle=False, label=3),
        ],
    )
    rng = np.random.default_rng(0)
    for name in ("TS_01", "TS_02"):
        run_ = root.new_run(name)
        for spacing in spacings:
            vs = run_.new_voxel_spacing(spacing)
            for tomo_type in types:
                tomo = vs.new_tomogram(tomo_type)
                tomo.from_numpy(rng.normal(size=SHAPE).astype(np.float32), levels=1)
                if name == "TS_02":
                    with mrcfile.new(tomo.overlay_stem + ".mrc") as mrc:
                        mrc.set_data(tomo.numpy())
                        mrc.voxel_size = spacing
    root.get_run("TS_01").new_picks("ribosome", "1", "alice").from_numpy(
        np.array([[100.0, 150.0, 200.0], [50.0, 60.0, 70.0]])
    )
    shifts = np.tile(np.eye(4), (2, 1, 1))
    shifts[1, :3, 3] = [10.0, 0.0, -10.0]
    root.get_run("TS_02").new_picks("apo-ferritin", "0", "pytom").from_numpy(
        np.array([[100.0, 150.0, 200.0], [50.0, 60.0, 70.0]]), transforms=shifts
    )
    return config


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert run(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: "), lines
    return lines[0]


def test_a_copick_project_becomes_a_cryoal_project(tmp_path: Path, capsys) -> None:
    config = _copick_project(tmp_path)
    proj = tmp_path / "proj"
    assert run(["project", "from-copick", str(config), str(proj)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "classes apo-ferritin, ribosome" in out and "4 candidates" in out
    assert "converted to MRC for TS_01" in out
    with Project.open(proj) as project:
        # classes: the particle objects in copick label order (membrane is not a particle)
        assert project.config.class_names == ["apo-ferritin", "ribosome"]
        assert project.voxel_size_A == 10.0
        converted = project.tomogram_path("TS_01")
        assert converted == (proj / "tomograms" / "TS_01.mrc").resolve()
        root = copick.from_file(str(config))
        zarr = root.get_run("TS_01").get_voxel_spacing(10.0).get_tomograms("wbp")[0]
        with open_tomogram(converted) as t:
            assert t.voxel_size_A == 10.0
            np.testing.assert_array_equal(np.asarray(t.data), zarr.numpy())
        beside = tmp_path / "overlay" / "ExperimentRuns" / "TS_02" / "VoxelSpacing10.000"
        assert project.tomogram_path("TS_02") == (beside / "wbp.mrc").resolve()  # used as is
        cands = project.labels.candidates().set_index("candidate_id")
    # copick's Å (location + transformation translation) / voxel spacing, as zyx
    expected = {
        "TS_01:000000": ([20.0, 15.0, 10.0], "ribosome"),
        "TS_01:000001": ([7.0, 6.0, 5.0], "ribosome"),
        "TS_02:000000": ([20.0, 15.0, 10.0], "apo-ferritin"),
        "TS_02:000001": ([6.0, 6.0, 6.0], "apo-ferritin"),
    }
    assert sorted(cands.index) == sorted(expected)
    for cid, (zyx, cls) in expected.items():
        np.testing.assert_allclose(cands.loc[cid, ["z", "y", "x"]].to_numpy(float), zyx)
        assert cands.loc[cid, "prior_class"] == cls
    assert sorted(p.name for p in (proj / "imports").iterdir()) == [
        "copick__TS_01__alice_1_ribosome.csv",
        "copick__TS_02__pytom_0_apo-ferritin.csv",
    ]


def test_filters_choose_objects_users_and_runs(tmp_path: Path) -> None:
    config = _copick_project(tmp_path)
    res = project_from_copick(
        config, tmp_path / "a", objects=["ribosome"], user_id="alice", as_labels=True
    )
    assert res.classes == ["ribosome"] and res.imported.added == {"TS_01": 2}
    assert res.imported.labelled == 2
    with Project.open(tmp_path / "a") as project:
        labels = project.labels.current_labels()
    assert set(labels["annotator"]) == {"copick:alice/1"}
    assert set(labels["class_name"]) == {"ribosome"}
    res = project_from_copick(config, tmp_path / "b", runs=["TS_02"], session_id="0")
    assert list(res.tomograms) == ["TS_02"] and res.imported.added == {"TS_02": 2}
    assert res.converted == []


def test_the_export_reopens_through_copick(tmp_path: Path) -> None:
    config = _copick_project(tmp_path)
    project_from_copick(config, tmp_path / "proj", as_labels=True)
    out = tmp_path / "export"
    argv = ["labels", "export", str(tmp_path / "proj"), "--format", "copick", "--out", str(out)]
    assert run([*argv, "--user-id", "bob", "--session-id", "2"]) == 0
    root = copick.from_file(str(out / "copick_config.json"))
    picks = root.get_run("TS_02").get_picks(object_name="apo-ferritin", user_id="bob")
    assert len(picks) == 1 and picks[0].session_id == "2"
    np.testing.assert_allclose(  # the shifted centre comes back as a location
        sorted(picks[0].full_positions().tolist()), [[60.0, 60.0, 60.0], [100.0, 150.0, 200.0]]
    )
    assert picks[0].trust_orientation is False  # loaded with the points
    assert sorted(p.name for p in out.iterdir()) == ["ExperimentRuns", "copick_config.json"]


def _two_spacings(tmp_path: Path) -> Path:
    return _copick_project(tmp_path, spacings=(10.0, 20.0))


def _two_types(tmp_path: Path) -> Path:
    return _copick_project(tmp_path, types=("wbp", "denoised"))


def _run_without_tomograms(tmp_path: Path) -> Path:
    config = _copick_project(tmp_path)
    copick.from_file(str(config)).new_run("TS_03")
    return config


def _not_a_config(tmp_path: Path) -> Path:
    path = tmp_path / "copick_config.json"
    path.write_text('{"name": "x"}')
    return path


@pytest.mark.parametrize(
    ("make", "options", "expected"),
    [
        (_two_spacings, [], "voxel spacings [10.0, 20.0] Å; choose one (--voxel-size A)"),
        (_copick_project, ["--voxel-size", "7"], "no tomograms at voxel spacing 7 Å; the runs have [10.0] Å"),
        (_two_types, [], "tomogram types ['denoised', 'wbp']; choose one (--tomo-type TYPE)"),
        (_copick_project, ["--tomo-type", "isonet"], "no tomograms of type 'isonet'"),
        (_copick_project, ["--run", "TS_09"], "no copick run 'TS_09'; the project has ['TS_01', 'TS_02'] (--run)"),
        (_copick_project, ["--object-name", "lysosome"], "no pickable object 'lysosome' in the copick project"),
        (_run_without_tomograms, [], "run 'TS_03' has no tomograms at voxel spacing 10 Å (it has [] Å); choose the runs (--run NAME)"),
        (_not_a_config, [], "not a copick configuration (pickable_objects: Field required)"),
    ],
)  # fmt: skip
def test_bad_choices_are_one_line_before_anything_is_written(
    tmp_path: Path, capsys, make, options: list[str], expected: str
) -> None:
    config = make(tmp_path)
    proj = tmp_path / "proj"
    line = _error(capsys, ["project", "from-copick", str(config), str(proj), *options])
    assert expected in line and str(config) in line
    assert not proj.exists()


def test_a_second_spacing_is_chosen_by_option(tmp_path: Path) -> None:
    res = project_from_copick(_two_spacings(tmp_path), tmp_path / "p", voxel_size_A=20.0)
    assert res.voxel_size_A == 20.0 and res.imported.added == {"TS_01": 2, "TS_02": 2}
    with Project.open(tmp_path / "p") as project:
        zyx = project.labels.candidates().set_index("candidate_id").loc["TS_01:000000"]
    np.testing.assert_allclose(zyx[["z", "y", "x"]].to_numpy(float), [10.0, 7.5, 5.0])


def test_missing_config_and_existing_project_are_refused(tmp_path: Path, capsys) -> None:
    line = _error(
        capsys, ["project", "from-copick", str(tmp_path / "no.json"), str(tmp_path / "p")]
    )
    assert "no.json: copick configuration not found" in line
    config = _copick_project(tmp_path)
    assert run(["project", "from-copick", str(config), str(tmp_path / "p")]) == 0
    line = _error(capsys, ["project", "from-copick", str(config), str(tmp_path / "p")])
    assert "a project already exists here" in line


def test_without_copick_the_error_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    config = _copick_project(tmp_path)
    monkeypatch.setitem(sys.modules, "copick", None)  # import copick raises ImportError
    line = _error(capsys, ["project", "from-copick", str(config), str(tmp_path / "p")])
    assert str(config) in line and 'pip install "cryoal[copick]"' in line
    assert not (tmp_path / "p").exists()


def test_a_failure_after_creation_removes_what_was_made(tmp_path: Path, monkeypatch) -> None:
    config = _copick_project(tmp_path)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "notes.txt").write_text("mine")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cryoal.project.from_copick.import_picks", broken)
    with pytest.raises(OSError):
        project_from_copick(config, proj)
    assert sorted(p.name for p in proj.iterdir()) == ["notes.txt"]  # the user's file stays


def test_an_mrc_header_that_disagrees_is_warned_about(tmp_path: Path, capsys) -> None:
    config = _copick_project(tmp_path)
    beside = tmp_path / "overlay" / "ExperimentRuns" / "TS_02" / "VoxelSpacing10.000" / "wbp.mrc"
    with mrcfile.open(beside, mode="r+") as mrc:
        mrc.voxel_size = 10.5
    assert run(["project", "from-copick", str(config), str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "header voxel size 10.5 Å differs from copick's voxel spacing 10 Å of run 'TS_02'" in err
    with Project.open(tmp_path / "p") as project:
        assert project.config.tomogram("TS_02").voxel_size_A == 10.0
