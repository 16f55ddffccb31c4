"""The napari readers, headless: layer data and kwargs, Å world, picks on particles, manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
from cryoal_napari import get_reader
from cryoal_napari._multiscale import BinnedLevel
from cryoal_napari._tomogram import read_tomogram

from cryoal.io.mrc import open_tomogram, write_mrc
from cryoal.io.store import StoreWriter
from cryoal.sim.tomograms import simulate_tomogram

MANIFEST = Path(__file__).resolve().parents[2] / "napari_plugin" / "cryoal_napari" / "napari.yaml"


def read(path: Path) -> list[tuple]:
    reader = get_reader(str(path))
    assert reader is not None, f"no cryoal reader for {path}"
    return reader(str(path))


def test_manifest_is_valid_npe2_and_contributes_readers_writers_sample() -> None:
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "cryoal"
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # and as napari finds it: the installed plugin, by name
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "cryoal"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    contrib = manifest.contributions
    patterns = {p for r in contrib.readers for p in r.filename_patterns}
    assert {"*.mrc", "*.h5", "*.star", "*.csv"} <= patterns
    assert any(r.accepts_directories for r in contrib.readers)
    assert {tuple(w.filename_extensions) for w in contrib.writers} >= {(".star",), (".csv",)}
    assert [s.key for s in contrib.sample_data] == ["project"]
    # every command resolves to a real function
    for command in contrib.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.id


def test_tomogram_layer_is_in_angstrom_with_zyx_labels_and_no_origin_shift(
    tmp_path: Path,
) -> None:
    volume = np.random.default_rng(0).normal(size=(12, 20, 24)).astype(np.float32)
    volume[3, 4, 5] = 40.0  # one outlier must not stretch the contrast limits
    path = tmp_path / "TS_01.rec"
    write_mrc(path, volume, voxel_size_A=13.48, origin_zyx_A=(100.0, 5.0, 10.0))

    [(data, kwargs, layer_type)] = read(path)

    assert layer_type == "image"
    assert isinstance(data, np.memmap)
    np.testing.assert_array_equal(np.asarray(data), volume)
    assert kwargs["scale"] == pytest.approx((13.48, 13.48, 13.48))
    assert kwargs["units"] == ("angstrom", "angstrom", "angstrom")
    assert kwargs["axis_labels"] == ("z", "y", "x")
    # cryoal's coordinates ignore the header origin (voxel i at i * voxel size), so does the layer
    assert kwargs["translate"] == (0.0, 0.0, 0.0)
    meta = kwargs["metadata"]["cryoal"]
    assert meta["header_origin_zyx_A"] == [100.0, 5.0, 10.0]
    lo, hi = kwargs["contrast_limits"]
    assert np.percentile(volume, 0.1) < lo < np.percentile(volume, 2)
    assert np.percentile(volume, 98) < hi < np.percentile(volume, 99.9) < 40.0
    slider_lo, slider_hi = meta["contrast_limits_range"]
    assert slider_lo < volume.min() and slider_hi >= 40.0


def test_label_volume_opens_as_labels_and_float_or_many_valued_as_image(tmp_path: Path) -> None:
    labels = np.zeros((8, 16, 16), dtype=np.int8)
    labels[2:5, 3:8, 3:8] = 1
    labels[5:7, 10:14, 9:12] = 2
    write_mrc(tmp_path / "labels.mrc", labels, voxel_size_A=10.0)
    [(data, kwargs, layer_type)] = read(tmp_path / "labels.mrc")
    assert layer_type == "labels"
    np.testing.assert_array_equal(np.asarray(data), labels)
    assert kwargs["units"] == ("angstrom",) * 3 and kwargs["scale"] == (10.0, 10.0, 10.0)
    assert "contrast_limits" not in kwargs
    # no class names known: still one distinct colour per value, background transparent
    assert kwargs["colormap"][0] == "transparent"
    assert kwargs["colormap"][1] != kwargs["colormap"][2]

    counts = np.random.default_rng(1).integers(0, 3000, size=(8, 16, 16)).astype(np.int16)
    write_mrc(tmp_path / "counts.mrc", counts, voxel_size_A=10.0)
    assert read(tmp_path / "counts.mrc")[0][2] == "image"


def _write_large(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """A float32 MRC written through a memory map (what a big reconstruction looks like)."""
    with mrcfile.new_mmap(str(path), shape=shape, mrc_mode=2, overwrite=True) as m:
        m.voxel_size = 8.0
        ramp = np.arange(shape[0], dtype=np.float32)[:, None, None]
        m.data[:] = ramp + np.random.default_rng(2).normal(size=shape).astype(np.float32)
        return np.array(m.data)


def test_large_tomogram_opens_as_lazy_multiscale_with_exact_bins(tmp_path: Path) -> None:
    path = tmp_path / "big.mrc"
    volume = _write_large(path, (40, 64, 96))  # 983 kB

    data, kwargs, kind = read_tomogram(path, multiscale_bytes=volume.nbytes - 1)
    assert kind == "image" and kwargs["multiscale"] is True
    assert isinstance(data, list) and isinstance(data[0], np.memmap)
    assert [tuple(level.shape) for level in data] == [(40, 64, 96), (20, 32, 48)]
    level = data[1]
    assert isinstance(level, BinnedLevel) and level.dtype == np.float32
    expected = volume.reshape(20, 2, 32, 2, 48, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(np.asarray(level), expected, rtol=1e-5, atol=1e-5)
    # the 2-D requests napari makes: one plane, a window of it
    np.testing.assert_allclose(level[7], expected[7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(level[3, 5:20, 10:30], expected[3, 5:20, 10:30], atol=1e-5)
    np.testing.assert_allclose(level[..., 4], expected[..., 4], atol=1e-5)
    assert kwargs["metadata"]["cryoal"]["bin_factors"] == [1, 2]
    # under the threshold: the plain memory map
    small, small_kwargs, _ = read_tomogram(path)
    assert isinstance(small, np.memmap) and "multiscale" not in small_kwargs


def test_store_layer_carries_ids_classes_and_captions(tmp_path: Path) -> None:
    path = tmp_path / "subtomos.h5"
    rng = np.random.default_rng(0)
    with StoreWriter(path, box=8, voxel_size_A=10.0, class_names=["ribosome", "empty"]) as w:
        w.append(
            rng.normal(size=(3, 8, 8, 8)),
            ["TS_01:000000", "TS_01:000001", "TS_01:000002"],
            labels=[0, 1, -1],
        )
    [(data, kwargs, layer_type)] = read(path)
    assert layer_type == "image" and data.shape == (3, 8, 8, 8)
    assert kwargs["scale"] == (1.0, 10.0, 10.0, 10.0)
    assert kwargs["axis_labels"] == ("sample", "z", "y", "x")
    assert kwargs["units"][1:] == ("angstrom",) * 3
    meta = kwargs["metadata"]["cryoal"]
    assert meta["labels"] == [0, 1, -1]
    assert meta["captions"] == [
        "TS_01:000000 · ribosome",
        "TS_01:000001 · empty",
        "TS_01:000002 · unlabelled",
    ]
    assert kwargs["name"] == "subtomos (3 samples)"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sim")
    return simulate_tomogram(
        out, shape_zyx=(32, 96, 96), n_particles=16, n_classes=2, snr=2.0, seed=4
    )


def test_imported_picks_sit_on_their_particles(sim, tmp_path: Path) -> None:
    # A reconstruction whose header carries an origin, as IMOD and Warp write: cryoal's
    # coordinates do not apply it, so the viewer must not either.
    for name in ("tomogram.mrc", "labels.mrc"):
        with open_tomogram(sim.out_dir / name) as t:
            write_mrc(
                tmp_path / name,
                np.asarray(t.data),
                t.voxel_size_A,
                origin_zyx_A=(-160.0, 480.0, 320.0),
            )
    [(tomo, tkw, _)] = read(tmp_path / "tomogram.mrc")
    (tmp_path / "simulation.json").write_text((sim.out_dir / "simulation.json").read_text())
    [(labels, lkw, ltype)] = read(tmp_path / "labels.mrc")
    assert ltype == "labels"
    # coloured and named by class (value k = class k - 1, from simulation.json)
    names = json.loads((sim.out_dir / "simulation.json").read_text())["class_names"]
    assert lkw["features"]["class_name"] == ["background", *names]
    assert lkw["colormap"][1] == "#1f77b4" and lkw["colormap"][2] == "#ff7f0e"
    # the simulator names the values in the header too: a copy on its own is still named
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "labels.mrc").write_bytes((sim.out_dir / "labels.mrc").read_bytes())
    [(_, akw, _)] = read(alone / "labels.mrc")
    assert akw["features"]["class_name"] == ["background", *names]
    truth = pd.read_csv(sim.ground_truth)

    for picks_file in (sim.star, sim.csv):
        [(points, pkw, ptype)] = read(picks_file)
        assert ptype == "points" and pkw["units"] == ("angstrom",) * 3
        # where the file gives the voxel size (STAR), voxel data at the tomogram's scale:
        # the same world, and z steps one slice; a CSV in Å outside a project stays in Å
        assert pkw["scale"] == (tkw["scale"] if picks_file == sim.star else (1.0, 1.0, 1.0))
        points = _world(points, pkw)
        ids = pkw["features"]["candidate_id"]
        assert ids == truth["candidate_id"].tolist()
        # napari world (Å) -> voxel of each layer, exactly as napari maps it
        index = np.rint((points - np.asarray(tkw["translate"])) / np.asarray(tkw["scale"])).astype(
            int
        )
        lindex = np.rint((points - np.asarray(lkw["translate"])) / np.asarray(lkw["scale"])).astype(
            int
        )
        np.testing.assert_array_equal(index, lindex)
        # phantoms can be hollow at the centre: look at the voxels within 3 of the pick
        label_volume = np.asarray(labels)
        for (z, y, x), cls in zip(lindex, truth["class_index"], strict=True):
            near = _box(label_volume, z, y, x, 3)
            assert set(np.unique(near[near > 0])) == {cls + 1}
            assert (near == cls + 1).sum() > 100  # of 343: the particle, not a neighbour's edge
        # RELION has class numbers (class index + 1), the CSV has names
        expected = (
            (truth["class_index"] + 1).astype(str)
            if picks_file == sim.star
            else truth["class_name"]
        )
        assert pkw["features"]["class_name"] == expected.tolist()

        volume = np.asarray(tomo)
        at_picks = np.array([_box(volume, *i, 2).mean() for i in index])
        rng = np.random.default_rng(0)
        elsewhere = rng.uniform(2, np.array(volume.shape) - 3, size=(200, 3)).astype(int)
        at_random = np.array([_box(volume, *i, 2).mean() for i in elsewhere])
        sem = at_random.std() / np.sqrt(len(at_picks))
        assert abs(at_picks.mean() - at_random.mean()) > 4 * sem

    # had the viewer applied the header origin, the picks would miss their particles
    origin = np.asarray(tkw["metadata"]["cryoal"]["header_origin_zyx_A"])
    shifted = np.rint((points - origin) / np.asarray(tkw["scale"])).astype(int)
    inside = np.all((shifted >= 0) & (shifted < label_volume.shape), axis=1)
    hits = [
        (_box(label_volume, *i, 3) == c + 1).sum() > 100
        for i, c in zip(shifted[inside], truth["class_index"][inside], strict=True)
    ]
    assert sum(hits) <= len(points) // 4


def _world(data: np.ndarray, kwargs: dict) -> np.ndarray:
    """A layer's data in napari world coordinates (Å): data × scale + translate."""
    scale = np.asarray(kwargs.get("scale", (1.0, 1.0, 1.0)))
    return np.asarray(data) * scale + np.asarray(kwargs.get("translate", (0.0, 0.0, 0.0)))


def _box(volume: np.ndarray, z: int, y: int, x: int, r: int) -> np.ndarray:
    return volume[max(z - r, 0) : z + r + 1, max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1]


def test_project_tables_use_the_project_voxel_size(tmp_path: Path) -> None:
    from cryoal_napari._sample import make_sample_project

    root = make_sample_project(tmp_path / "proj")
    candidates = pd.read_csv(root / "candidates.csv")
    [(cand, ckw, _)] = read(root / "candidates.csv")
    np.testing.assert_allclose(_world(cand, ckw), candidates[["z", "y", "x"]].to_numpy() * 10.0)
    [(sugg, skw, _)] = read(root / "rounds" / "000" / "suggestions.csv")
    queue = pd.read_csv(root / "rounds" / "000" / "suggestions.csv")
    np.testing.assert_allclose(_world(sugg, skw), queue[["z", "y", "x"]].to_numpy() * 10.0)
    assert skw["features"]["rank"] == list(range(16))
    assert skw["size"] * skw["scale"][0] == 24 * 10.0  # the project's box, in Å

    # outside its project, a voxel table cannot be placed: one clear error
    lost = tmp_path / "elsewhere"
    lost.mkdir()
    (lost / "suggestions.csv").write_text((root / "rounds/000/suggestions.csv").read_text())
    with pytest.raises(ValueError, match="open the file inside its project folder"):
        read(lost / "suggestions.csv")


def test_project_folder_opens_tomogram_and_labelled_candidates(tmp_path: Path) -> None:
    from cryoal_napari._sample import make_sample_project

    from cryoal.project.project import Project

    root = make_sample_project(tmp_path / "proj")
    with Project.open(root) as project:
        queue = project.labels.queue()
        first, second = queue["candidate_id"].iloc[:2]
        cls = project.config.classes[1]
        project.labels.add_label(first, cls.name, "tester")
        project.labels.add_label(second, "unsure", "tester")

    layers = read(root)
    assert [t for _, _, t in layers] == ["image", "points"]
    (tomo, tkw, _), (points, pkw, _) = layers
    assert tkw["name"] == "sim_tomo" and tkw["units"] == ("angstrom",) * 3
    features = pd.DataFrame(pkw["features"])
    assert len(features) == 36 and len(points) == 36
    row = features.index[features["candidate_id"] == first][0]
    assert features.loc[row, "label"] == cls.name
    assert features.loc[row, "rank"] == 0
    colour = "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in pkw["border_color"][row][:3]))
    assert colour == cls.colour
    assert features.loc[features["candidate_id"] == second, "label"].item() == "unsure"
    assert (features["label"] == "").sum() == 34
    assert (features["rank"] >= 0).sum() == 16


def test_unsupported_paths_are_declined(tmp_path: Path) -> None:
    (tmp_path / "curves.csv").write_text("labels,accuracy\n200,0.5\n")
    assert get_reader(str(tmp_path / "curves.csv")) is None  # a CSV without coordinates
    assert get_reader("notes.txt") is None
    assert get_reader(["a.mrc", "b.txt"]) is None
    assert get_reader(str(tmp_path)) is None  # a folder without project.yaml


def test_relion5_picks_are_placed_with_the_tomogram_beside_them(sim, tmp_path: Path) -> None:
    from cryoal.io.coords import TomogramGeometry, write_star

    truth = pd.read_csv(sim.ground_truth)
    table = truth.assign(tomo_id="sim_tomo")[["candidate_id", "tomo_id", "z", "y", "x"]]
    geometry = TomogramGeometry((32, 96, 96), 10.0)
    write_star(
        table, tmp_path / "r5.star", voxel_size_A=10.0, version=5, tomograms={"sim_tomo": geometry}
    )
    # cryoal writes the tomogram's size (rlnTomoSizeX/Y/Z): the file places itself
    [(points, pkw, _)] = read(tmp_path / "r5.star")
    np.testing.assert_allclose(
        _world(points, pkw), truth[["z", "y", "x"]].to_numpy() * 10.0, atol=1e-3
    )
    # RELION 5 files without the size need the tomogram beside them
    import starfile

    blocks = starfile.read(tmp_path / "r5.star", always_dict=True)
    for name, block in blocks.items():
        blocks[name] = block.drop(columns=[c for c in block.columns if "TomoSize" in c])
    starfile.write(blocks, tmp_path / "r5.star", overwrite=True)
    with pytest.raises(ValueError, match="RELION 5 centred coordinates"):
        read(tmp_path / "r5.star")  # the size of the tomogram is needed, and not known
    (tmp_path / "sim_tomo.mrc").symlink_to(sim.tomogram)
    [(points, pkw, _)] = read(tmp_path / "r5.star")
    np.testing.assert_allclose(
        _world(points, pkw), truth[["z", "y", "x"]].to_numpy() * 10.0, atol=1e-3
    )


def test_star_without_tomogram_names_belongs_to_the_tomogram_named_like_it(
    sim, tmp_path: Path
) -> None:
    import starfile

    truth = pd.read_csv(sim.ground_truth)
    # RELION 3.0 style: one block, pixel coordinates of the tomogram, no names, no optics
    starfile.write(
        pd.DataFrame(
            {
                "rlnCoordinateX": truth["x"],
                "rlnCoordinateY": truth["y"],
                "rlnCoordinateZ": truth["z"],
            }
        ),
        tmp_path / "TS_07.star",
    )
    with pytest.raises(ValueError, match="pixel coordinates with no pixel size"):
        read(tmp_path / "TS_07.star")
    (tmp_path / "TS_07.mrc").symlink_to(sim.tomogram)
    [(points, kwargs, _)] = read(tmp_path / "TS_07.star")
    np.testing.assert_allclose(
        _world(points, kwargs), truth[["z", "y", "x"]].to_numpy() * 10.0, atol=1e-3
    )
    assert set(kwargs["features"]["tomo_id"]) == {"TS_07"}
