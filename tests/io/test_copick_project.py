"""copick files and projects through the copick library, checked against copick itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.io.atomic import find_partials
from cryoal.io.coords import read_coords, scan_coords, write_copick_picks
from cryoal.io.copick_project import (
    OverlayPicks,
    copick_config_text,
    open_copick_project,
    write_overlay_picks,
)

copick = pytest.importorskip("copick")  # CI installs it (the test extra includes cryoal[copick])
from copick.models import CopickLocation, CopickPicksFile, CopickPoint  # noqa: E402

OBJECTS = [
    {"name": "ribosome", "is_particle": True, "label": 1, "color": [31, 119, 180, 255]},
    {"name": "proteasome", "is_particle": True, "label": 2, "radius": 60.0},
]


def _picks_file(path: Path, points: list[CopickPoint], **fields: object) -> Path:
    """A picks JSON written with copick's model, as copick's store() writes it."""
    doc = {"pickable_object_name": "ribosome", "user_id": "alice", "session_id": "1",
           "run_name": "TS_01", "points": points, **fields}  # fmt: skip
    path.write_text(json.dumps(CopickPicksFile(**doc).model_dump(), indent=4))
    return path


def test_read_takes_copicks_particle_centre(tmp_path: Path) -> None:
    shifted = CopickPoint(location=CopickLocation(x=100.0, y=50.0, z=20.0))
    shifted.transformation_ = [[1, 0, 0, 10.0], [0, 1, 0, 0], [0, 0, 1, -10.0], [0, 0, 0, 1]]
    plain = CopickPoint(location=CopickLocation(x=30.0, y=40.0, z=50.0))
    path = _picks_file(tmp_path / "p.json", [shifted, plain])
    table = read_coords(path, voxel_size_A=10.0)
    # copick's full_positions: location + transformation translation
    np.testing.assert_allclose(table[["z", "y", "x"]].to_numpy(), [[1.0, 5.0, 11.0], [5, 4, 3]])
    assert table["tomo_id"].tolist() == ["TS_01", "TS_01"]
    assert table["class_name"].tolist() == ["ribosome", "ribosome"]


@pytest.mark.parametrize(
    ("reader", "text", "expected"),
    [
        (scan_coords, "{not json", "not valid JSON"),
        (scan_coords, '{"points": []}', "not a copick picks file (pickable_object_name: Field required)"),
        (scan_coords, '{"pickable_object_name": "r", "user_id": "u", "session_id": "0", "unit": "nm"}',
         "copick unit 'nm' is not supported"),
        (scan_coords, '{"pickable_object_name": "r", "user_id": "u", "session_id": "0", "points": '
         '[{"location": {"x": 1, "y": 2}}]}', "points.0.location.z: Field required"),
        (scan_coords, '{"pickable_object_name": "r", "user_id": "u", "session_id": "0", "points": '
         '[{"location": {"x": 1, "y": 2, "z": NaN}}]}', "non-finite copick point location"),
        (open_copick_project, "[1, 2", "not valid JSON"),
        (open_copick_project, '{"config_type": "filesystem", "pickable_objects": []}',
         "not a copick configuration (overlay_root: Field required)"),
        (open_copick_project, '{"config_type": "ftp", "pickable_objects": []}',
         "Unknown config_type: ftp"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line(tmp_path: Path, reader, text: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        reader(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_written_file_is_copicks_model(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"candidate_id": ["a", "b"], "tomo_id": ["TS_01"] * 2, "z": [1.0, 2.0], "y": [3.0, 4.0],
         "x": [5.0, 6.0]}
    )  # fmt: skip
    path = write_copick_picks(table, tmp_path / "p.json", voxel_size_A=10.0,
                              object_name="ribosome", user_id="alice", session_id="1")  # fmt: skip
    model = CopickPicksFile.model_validate_json(path.read_text())
    assert (model.run_name, model.voxel_spacing, model.trust_orientation) == ("TS_01", 10.0, False)
    xyz = [[p.location.x, p.location.y, p.location.z] for p in model.points]
    np.testing.assert_allclose(xyz, [[50.0, 30.0, 10.0], [60.0, 40.0, 20.0]])


def test_without_copick_the_error_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    path = _picks_file(tmp_path / "p.json", [])
    monkeypatch.setitem(sys.modules, "copick", None)  # import copick raises ImportError
    with pytest.raises(ValueError, match=r"p\.json: reading copick picks needs the copick"):
        read_coords(path, voxel_size_A=10.0)
    with pytest.raises(ValueError, match=r'install it with pip install "cryoal\[copick\]"'):
        open_copick_project(tmp_path / "p.json")
    table = pd.DataFrame(
        {"candidate_id": ["a"], "tomo_id": ["T"], "z": [1.0], "y": [1.0], "x": [1.0]}
    )
    with pytest.raises(ValueError, match=r"out\.json: writing copick picks needs the copick"):
        write_copick_picks(table, tmp_path / "out.json", voxel_size_A=10.0, object_name="r",
                           user_id="u", session_id="0")  # fmt: skip
    with pytest.raises(ValueError, match=r"overlay: writing copick picks needs the copick"):
        write_overlay_picks(tmp_path / "overlay", "{}", [], user_id="u", session_id="0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]  # nothing written


def _overlay_write(out: Path, user: str = "alice", overwrite: bool = False) -> list[Path]:
    sets = [
        OverlayPicks("TS_01", "ribosome", np.array([[10.0, 20.0, 30.0]]), voxel_spacing=10.0),
        OverlayPicks("TS_01", "proteasome", np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])),
        OverlayPicks("TS_02", "ribosome", np.zeros((0, 3))),
    ]
    config = copick_config_text(name="p", description="d", objects=OBJECTS, overlay=out)
    (out / "copick_config.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "copick_config.json").write_text(config)
    return write_overlay_picks(out, config, sets, user_id=user, session_id="3",
                               overwrite=overwrite)  # fmt: skip


def test_overlay_picks_are_written_by_copick_and_read_by_copick(tmp_path: Path) -> None:
    out = tmp_path / "overlay"
    paths = _overlay_write(out)
    assert [p.relative_to(out).as_posix() for p in paths] == [
        "ExperimentRuns/TS_01/Picks/alice_3_ribosome.json",
        "ExperimentRuns/TS_01/Picks/alice_3_proteasome.json",
        "ExperimentRuns/TS_02/Picks/alice_3_ribosome.json",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["ExperimentRuns", "copick_config.json"]
    assert find_partials(tmp_path) == []  # the staging overlay is gone
    assert (out / "ExperimentRuns" / "TS_01" / ".meta").is_file()  # copick's run record
    root = open_copick_project(out / "copick_config.json")
    assert sorted(r.name for r in root.runs) == ["TS_01", "TS_02"]
    picks = root.get_run("TS_01").get_picks(object_name="proteasome", user_id="alice")
    np.testing.assert_allclose(picks[0].full_positions(), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (ribosome,) = root.get_run("TS_01").get_picks(object_name="ribosome")
    np.testing.assert_allclose(ribosome.numpy()[0], [[10.0, 20.0, 30.0]])
    assert ribosome.meta.voxel_spacing == 10.0 and ribosome.session_id == "3"
    assert root.get_run("TS_02").get_picks()[0].points == []


def test_existing_picks_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "overlay"
    _overlay_write(out)
    target = out / "ExperimentRuns" / "TS_01" / "Picks" / "alice_3_proteasome.json"
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match=r"alice_3_ribosome\.json: output already exists"):
        _overlay_write(out)
    assert target.read_bytes() == before and find_partials(tmp_path) == []
    _overlay_write(out, user="bob")  # another user's picks sit beside
    _overlay_write(out, overwrite=True)
    assert len(list((out / "ExperimentRuns" / "TS_01" / "Picks").iterdir())) == 4


def test_importing_copick_leaves_the_programs_logging_as_it_was() -> None:
    """copick's modules run logging.basicConfig(force=True) at INFO when first imported;
    cryoal commands would then print every INFO line of every library. A fresh process,
    since this one has imported copick already."""
    import subprocess
    import sys

    pytest.importorskip("copick")
    code = (
        "import logging\n"
        "root = logging.getLogger(); handler = logging.NullHandler(); root.addHandler(handler)\n"
        "from cryoal.io.coords.copick_model import import_copick\n"
        "import_copick('test')\n"
        "import copick.impl.cryoet_data_portal, copick.impl.overlay  # imported afterwards\n"
        "assert root.handlers == [handler] and root.level == logging.WARNING, root.handlers\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
