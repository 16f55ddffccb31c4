"""Dataset manifests: every bundled one validates; a bad one fails in one line with the fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cryoal.io.manifest import (
    MANIFESTS_ENV,
    bundled_manifest_dir,
    find_manifest,
    load_manifest,
    manifest_paths,
)

BUNDLED = sorted(bundled_manifest_dir().glob("*.yaml"))

GOOD = {
    "name": "toy",
    "title": "toy",
    "description": "a test dataset",
    "licence": "CC0",
    "citation": "none",
    "source": {"kind": "http", "base_url": "https://example.org/data"},
    "voxel_size_A": 10.0,
    "classes": [
        {"id": 0, "name": "ribosome", "aliases": ["80S"]},
        {"id": 1, "name": "apoferritin"},
    ],
    "split": {"train": ["TS_01"], "test": []},
    "files": [
        {
            "path": "TS_01.mrc",
            "kind": "tomogram",
            "tomo_id": "TS_01",
            "size": 10,
            "sha256": "a" * 64,
        },
        {
            "path": "picks/ribosome.json",
            "kind": "picks",
            "convention": "copick",
            "tomo_id": "TS_01",
            "class_name": "80S",
            "sha256": None,
            "checksum_note": "the portal publishes no checksums",
        },
    ],
}


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_bundled_folder_has_the_issue_datasets() -> None:
    names = {p.stem for p in BUNDLED}
    assert {
        "demo-sim",
        "shrec-templates",
        "shrec2021",
        "czii-10440-subset",
        "empiar-10045",
        "portal-10000-ts043",
        "czii-10441-sim-subset",
    } <= names


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_every_bundled_manifest_validates(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.name == path.stem
    for f in manifest.files:
        # a file without a published checksum says why
        assert f.sha256 is not None or f.checksum_note
    # picks name their tomogram and the class map covers every per-file class
    for f in manifest.files_of("picks"):
        assert f.class_name is None or manifest.class_for(f.class_name) is not None


def test_a_good_manifest_loads(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, GOOD))
    assert m.class_names == ["ribosome", "apoferritin"]
    assert m.class_for("80S") == "ribosome"
    assert m.total_size is None  # the picks size is not known
    assert [f.path for f in m.files_of("picks")] == ["picks/ribosome.json"]


def _bad(tmp_path: Path, change) -> str:
    doc = copy.deepcopy(GOOD)
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ValueError) as info:
        load_manifest(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert "errors.pydantic.dev" not in msg and "For further information" not in msg
    return msg


def test_bad_checksum_names_the_file_field_and_the_fix(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][0].update(sha256="abc"))
    assert "files[0] (TS_01.mrc).sha256" in msg
    assert "64 hexadecimal digits" in msg


def test_missing_field(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d.pop("licence"))
    assert "licence: field required; add this field" in msg


def test_unknown_field(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d.update(licnce="CC0"))
    assert "licnce" in msg and "remove it or check its spelling" in msg


def test_null_checksum_needs_a_note(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][0].update(sha256=None))
    assert "files[0] (TS_01.mrc)" in msg and "checksum_note" in msg


def test_picks_need_a_known_convention(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][1].update(convention="relion-6"))
    assert "files[1] (picks/ribosome.json).convention" in msg and "'relion-5'" in msg
    msg = _bad(tmp_path, lambda d: d["files"][1].pop("convention"))
    assert "needs convention" in msg


def test_convention_must_match_the_file_suffix(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][1].update(convention="portal-ndjson"))
    assert "files[1] (picks/ribosome.json)" in msg
    assert "convention portal-ndjson is read from a .ndjson file" in msg


def test_pixel_size_only_for_pixel_picks(tmp_path: Path) -> None:
    # copick locations are Å: a pixel size would be ignored, so it is refused
    msg = _bad(tmp_path, lambda d: d["files"][1].update(voxel_size_A=5.0))
    assert "copick coordinates carry their own unit, so remove it" in msg

    def ndjson(d: dict) -> None:
        d["files"][1].update(
            path="ribosome-1.0_point.ndjson", convention="portal-ndjson", voxel_size_A=4.99
        )

    doc = copy.deepcopy(GOOD)
    ndjson(doc)
    picks = load_manifest(_write(tmp_path, doc)).files_of("picks")[0]
    assert picks.convention == "portal-ndjson" and picks.voxel_size_A == 4.99


def test_class_outside_the_class_map(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][1].update(class_name="proteasome"))
    assert "'proteasome' is not in the class map" in msg and "alias" in msg


def test_paths_must_stay_inside_the_dataset(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][0].update(path="../etc/passwd"))
    assert "files[0] (../etc/passwd).path" in msg and "no '..'" in msg


def test_split_names_a_tomogram(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["split"].update(test=["TS_99"]))
    assert "split.test: 'TS_99'" in msg


def test_http_source_needs_a_url(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["source"].pop("base_url"))
    assert "source: an http source needs base_url" in msg


def test_find_by_name_and_unknown_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, path = find_manifest("demo-sim")
    assert manifest.name == "demo-sim" and path.parent == bundled_manifest_dir()
    with pytest.raises(FileNotFoundError, match="known datasets: .*demo-sim"):
        find_manifest("no-such-dataset")
    # $CRYOAL_MANIFESTS adds folders, searched first
    _write(tmp_path, GOOD)
    monkeypatch.setenv(MANIFESTS_ENV, str(tmp_path))
    assert manifest_paths()["toy"] == tmp_path / "toy.yaml"
    assert find_manifest("toy")[0].name == "toy"
    (tmp_path / "toy.yaml").rename(tmp_path / "other.yaml")
    with pytest.raises(ValueError, match="differs from the file name"):
        find_manifest("other")


def test_a_file_listed_twice(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"].append(dict(d["files"][0])))
    assert msg.endswith("files: path 'TS_01.mrc' is listed twice; list each file once")


def _generated(*commands: list[str]) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc["source"] = {"kind": "generated", "commands": list(commands)}

    return change


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["simulate", "tomogram", "/some/user/folder", "--overwrite"], "is absolute"),
        (["simulate", "tomogram", "../../ESCAPED"], "contains '..'"),
        (["convert-coords", "a.star", "b.star", "--overwrite"], "is not allowed"),
        (["simulate", "tomogram", "sim", "--templates", "/etc"], "option '--templates'"),
    ],
)
def test_a_generated_source_runs_only_allowed_commands(
    tmp_path: Path, command: list[str], expected: str
) -> None:
    """Refused when the manifest is loaded: the file, the command's index, the command, the
    offending argument and the fix, in one line."""
    ok = ["simulate", "tomogram", "sim", "--seed", "3"]
    msg = _bad(tmp_path, _generated(ok, command))
    assert msg.startswith(f"{tmp_path / 'toy.yaml'}: source.commands[1]: command 'cryoal ")
    assert expected in msg and " ".join(command) in msg
    doc = copy.deepcopy(GOOD)
    _generated(ok)(doc)
    assert load_manifest(_write(tmp_path, doc)).source.commands == [ok]


def test_tomo_ids_follow_the_tomogram_id_rule(tmp_path: Path) -> None:
    msg = _bad(tmp_path, lambda d: d["files"][0].update(tomo_id="../../evil"))
    assert "files[0] (TS_01.mrc).tomo_id" in msg and "tomogram id '../../evil'" in msg


def test_a_tomo_id_names_one_tomogram(tmp_path: Path) -> None:
    def twice(doc: dict) -> None:
        doc["files"].append({**doc["files"][0], "path": "TS_01_copy.mrc"})

    msg = _bad(tmp_path, twice)
    assert "tomo_id 'TS_01' names two tomogram files" in msg


def test_picks_that_name_no_tomogram_need_a_tomo_id(tmp_path: Path) -> None:
    def unnamed(doc: dict) -> None:
        doc["files"][1].update(path="ribosome.coords", convention="coords-pixel")
        doc["files"][1].pop("tomo_id")

    msg = _bad(tmp_path, unnamed)
    assert "'ribosome.coords' needs tomo_id: coords-pixel files do not name" in msg


def test_fetch_argument_is_the_name_only_where_the_name_finds_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hints say 'cryoal data fetch ARG': a manifest outside the search path is named by its
    file (its name is not a dataset cryoal knows)."""
    assert find_manifest("demo-sim")[0].fetch_argument() == "demo-sim"
    path = _write(tmp_path, GOOD)
    assert load_manifest(path).fetch_argument() == str(path)
    spaced = tmp_path / "my data" / "toy.yaml"
    spaced.parent.mkdir()
    spaced.write_text(path.read_text())
    assert load_manifest(spaced).fetch_argument() == f"'{spaced}'"
    monkeypatch.setenv(MANIFESTS_ENV, str(tmp_path))
    assert load_manifest(path).fetch_argument() == "toy"
