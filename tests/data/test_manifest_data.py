"""Bundled public manifests, served by a loopback mirror with stand-in files at their paths,
turn into projects whose candidates are the picks files' rows: EMPIAR-10045's ``.coords``
(x y z -> z y x) and the portal's ndjson (one file per class)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.data.fetch import fetch_dataset, verify_dataset
from cryoal.data.manifest_data import read_picks
from cryoal.io.manifest import bundled_manifest_dir, load_manifest
from cryoal.io.mrc import write_mrc
from cryoal.project.from_manifest import project_from_manifest


def _mrc_bytes(tmp_path: Path, shape: tuple[int, int, int], voxel: float, seed: int) -> bytes:
    path = tmp_path / f"stand-in-{seed}.mrc"
    write_mrc(path, np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32), voxel)
    return path.read_bytes()


def test_empiar_10045_manifest_imports_its_coords(file_server, tmp_path: Path) -> None:
    manifest = load_manifest(bundled_manifest_dir() / "empiar-10045.yaml")
    tomo = manifest.files_of("tomogram")[0]
    picks = manifest.files_of("picks")[0]
    template = manifest.files_of("template")[0]
    assert picks.convention == "coords-pixel" and picks.tomo_id == tomo.tomo_id
    # small stand-ins at the manifest's paths (the real files are GBs and need the internet)
    coords = np.array([[10.0, 20.0, 5.0], [40.5, 8.0, 12.0], [3.0, 3.0, 3.0]])  # x y z
    text = io.StringIO()
    np.savetxt(text, coords, fmt="%.2f", delimiter="\t")
    file_server.files = {
        tomo.path: _mrc_bytes(tmp_path, (16, 32, 48), manifest.voxel_size_A or 1.0, 0),
        picks.path: text.getvalue().encode(),
        template.path: _mrc_bytes(tmp_path, (8, 8, 8), 4.0, 1),
    }
    data = tmp_path / "data"
    res = fetch_dataset(manifest, data, mirror=file_server.url)
    assert sorted(res.fetched) == sorted(f.path for f in manifest.files)
    # nothing was published, so every checksum was recorded and now verifies
    assert all(c.status == "ok" for c in verify_dataset(manifest, data))

    table = read_picks(manifest, data)
    np.testing.assert_allclose(table[["z", "y", "x"]].to_numpy(), coords[:, ::-1])
    assert set(table["class_name"]) == {"ribosome"}

    result = project_from_manifest(manifest, data, tmp_path / "proj", box=8, as_labels=True)
    assert result.classes == ["ribosome", "other"] and result.candidates == {tomo.tomo_id: 3}
    cands = pd.read_csv(tmp_path / "proj" / "candidates.csv")
    got = np.sort(cands[["z", "y", "x"]].to_numpy(), axis=0)
    np.testing.assert_allclose(got, np.sort(coords[:, ::-1], axis=0), atol=1e-6)


@pytest.mark.parametrize("name", ["portal-10000-ts043", "czii-10441-sim-subset"])
def test_portal_manifest_imports_its_ndjson(name: str, file_server, tmp_path: Path) -> None:
    bundled = load_manifest(bundled_manifest_dir() / f"{name}.yaml")
    assert {f.convention for f in bundled.files_of("picks")} == {"portal-ndjson"}
    # stand-ins are smaller than the published sizes, so this copy drops the sizes
    manifest = bundled.model_copy(
        update={"files": [f.model_copy(update={"size": None}) for f in bundled.files]}
    )
    tomo = manifest.files_of("tomogram")[0]
    rng = np.random.default_rng(2)
    points = {f.path: rng.uniform(0, 15, (4 + i, 3)).round(2) for i, f in enumerate(manifest.files_of("picks"))}  # fmt: skip
    voxel = bundled.voxel_size_A or 1.0
    file_server.files = {tomo.path: _mrc_bytes(tmp_path, (16, 16, 16), voxel, 3)}
    for path, xyz in points.items():
        lines = [f'{{"type": "point", "location": {{"x": {x}, "y": {y}, "z": {z}}}}}' for x, y, z in xyz]  # fmt: skip
        file_server.files[path] = ("\n".join(lines) + "\n").encode()
    data = tmp_path / "data"
    fetch_dataset(manifest, data, mirror=file_server.url)
    table = read_picks(manifest, data)
    for entry in manifest.files_of("picks"):
        rows = table[table["source_file"] == entry.path]
        np.testing.assert_allclose(rows[["x", "y", "z"]].to_numpy(), points[entry.path])
        assert set(rows["class_name"]) == {entry.class_name}
    result = project_from_manifest(manifest, data, tmp_path / "proj", box=8)
    assert result.classes == bundled.class_names
    assert result.n_candidates == sum(len(v) for v in points.values())
