"""A project's pretrained encoder: ``cryoal pretrain DIR``, and ``cryoal train DIR`` starting
from it (or pretraining first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cryoal.cli.main import run
from cryoal.project.layout import CACHE_DIR, CURRENT_ENCODER_NAME, ENCODERS_DIR


def _with_defaults(proj: Path, **defaults: dict) -> dict:
    """Set ``project.yaml``'s ``defaults`` sections (``train``, ``pretrain``); the config."""
    cfg = yaml.safe_load((proj / "project.yaml").read_text())
    cfg["defaults"].update(defaults)
    (proj / "project.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_round0_labelled_project) -> Path:  # noqa: ANN001
    proj = make_round0_labelled_project(tmp_path_factory.mktemp("pre"), seed=4)
    _with_defaults(
        proj,
        train={"teacher_preset": "tiny", "student_preset": "tiny", "epochs": 2},
        pretrain={"epochs": 2, "batch_size": 16},
    )
    return proj


def _newest_round(proj: Path) -> dict:
    found = sorted((proj / "rounds").glob("*/round.json"))
    return json.loads(found[-1].read_text())


def test_the_first_training_makes_the_encoder_and_starts_from_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["train", str(project), "--no-progress"]) == 0  # pretrains by default
    out = capsys.readouterr().out
    pointer = project / CACHE_DIR / ENCODERS_DIR / CURRENT_ENCODER_NAME
    current = json.loads(pointer.read_text())
    folder = project / CACHE_DIR / ENCODERS_DIR / current["encoder"]
    enc = json.loads((folder / "encoder.json").read_text())
    # the teacher's preset, 30 candidates (every pick, labelled or not), the project's epochs
    assert (enc["preset"], enc["n_samples"], len(enc["history"])) == ("tiny", 30, 2)
    assert _newest_round(project)["encoder"] == str(folder)
    assert f"started from the pretrained encoder {folder}" in out

    # cryoal pretrain again: the same pool and settings reuse it, nothing is retrained
    before = (folder / "encoder.safetensors").stat().st_mtime_ns
    assert run(["pretrain", str(project), "--no-progress"]) == 0
    assert (folder / "encoder.safetensors").stat().st_mtime_ns == before
    assert str(folder) in capsys.readouterr().out

    # --no-pretrain trains from random weights and records no encoder
    assert run(["project", "snapshot", str(project)]) == 0
    assert run(["train", str(project), "--no-pretrain", "--no-progress"]) == 0
    assert _newest_round(project)["encoder"] is None


def test_other_settings_make_another_encoder_and_another_teacher_preset_gets_its_own(
    project: Path,
) -> None:
    enc_dir = project / CACHE_DIR / ENCODERS_DIR
    assert run(["pretrain", str(project), "--epochs", "1", "--seed", "7", "--no-progress"]) == 0
    assert len([p for p in enc_dir.iterdir() if p.is_dir()]) == 2
    # a teacher of another preset: an encoder for it is pretrained first and used
    assert run(["project", "snapshot", str(project)]) == 0
    assert run(["train", str(project), "--preset", "student", "--no-progress"]) == 0
    used = _newest_round(project)["encoder"]
    assert json.loads((Path(used) / "encoder.json").read_text())["preset"] == "student"
    assert len([p for p in enc_dir.iterdir() if p.is_dir()]) == 3


def test_a_store_pretrains_into_out_and_trains_from_it(
    class_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["pretrain", str(class_store)]) == 2
    assert "pass --out ENCODER_FOLDER" in capsys.readouterr().err
    enc = tmp_path / "enc"
    args = ["--preset", "tiny", "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert run(["pretrain", str(class_store), "--out", str(enc), *args]) == 0
    assert (enc / "encoder.json").is_file()
    assert run(["train", str(class_store), "--out", str(tmp_path / "run"), "--preset", "tiny",
                "--student", "none", "--epochs", "1", "--encoder", str(enc),
                "--no-progress"]) == 0  # fmt: skip
    train_yaml = yaml.safe_load((tmp_path / "run" / "train.yaml").read_text())
    assert train_yaml["encoder"] == str(enc)
    assert run(["train", str(class_store), "--out", str(tmp_path / "run2"), "--preset",
                "student", "--epochs", "1", "--encoder", str(enc), "--no-progress"]) == 2  # fmt: skip
    assert "pretrained for preset 'tiny'" in capsys.readouterr().err


def test_a_typical_round_zero_picks_in_the_pretrained_embedding(
    tmp_path: Path,
    make_round0_labelled_project,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    import numpy as np
    import pandas as pd

    from cryoal.al.round import initial_round
    from cryoal.pretrain.embed import embed_rows
    from cryoal.project.extraction import candidate_store
    from cryoal.project.pretraining import current_encoder
    from cryoal.project.project import Project

    proj = make_round0_labelled_project(tmp_path, seed=5)
    _with_defaults(proj, train={"teacher_preset": "tiny"}, pretrain={"epochs": 1, "batch_size": 16})
    queue = proj / "rounds/000/suggestions.csv"
    before = queue.read_bytes()
    capsys.readouterr()
    # no encoder yet: one line naming the command that makes it, and the queue untouched
    args = ["suggest", str(proj), "--strategy", "typical", "--k", "5", "--replace", "--seed", "2"]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run 'cryoal pretrain {proj}' first" in err
    assert queue.read_bytes() == before
    # the default round 0 (auto) is a random draw while there is no encoder ...
    default = ["suggest", str(proj), "--k", "5", "--replace", "--seed", "2"]
    assert run(default) == 0
    assert set(pd.read_csv(queue)["strategy"]) == {"random"}
    assert run(["pretrain", str(proj), "--no-progress"]) == 0
    assert run(args) == 0
    picked = pd.read_csv(queue)["candidate_id"].astype(str).tolist()
    # ... and TypiClust in the encoder's embedding once there is one: the same picks
    assert run(default) == 0
    table = pd.read_csv(queue)
    assert set(table["strategy"]) == {"typical"}
    assert table["candidate_id"].astype(str).tolist() == picked
    # the same picks as the engine's round 0: TypiClust on the encoder's embedding of the pool
    project = Project.open(proj)
    labelled = set(project.labels.current_labels()["candidate_id"])
    candidates = project.labels.candidates()
    pool = candidates[~candidates["candidate_id"].isin(labelled)]
    ids = pool["candidate_id"].astype(str).to_numpy()
    store = candidate_store(project, table=candidates)
    feats = embed_rows(current_encoder(project), store, store.index_of(ids.tolist()))
    expected = ids[initial_round("typical", ids, 5, 2, features=feats)]
    project.close()
    assert sorted(picked) == sorted(expected.tolist()) and len(np.unique(picked)) == 5


def test_odd_even_halves_go_into_the_candidate_cache_and_pretraining_pairs_them(
    tmp_path: Path,
    make_round0_labelled_project,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    import numpy as np
    import pandas as pd

    from cryoal.data.extract import extract_subtomograms
    from cryoal.io.mrc import read_volume, write_mrc
    from cryoal.io.store import SubtomogramStore
    from cryoal.project.extraction import candidate_store
    from cryoal.project.project import Project

    proj = make_round0_labelled_project(tmp_path, seed=6)
    cfg = _with_defaults(proj, pretrain={"preset": "tiny", "epochs": 1, "batch_size": 16})
    tomo_path = proj / cfg["tomograms"][0]["path"]
    volume, vs = read_volume(tomo_path)
    rng = np.random.default_rng(0)
    split = rng.normal(scale=volume.std(), size=volume.shape).astype(np.float32)
    odd = write_mrc(tmp_path / "odd.mrc", volume + split, vs)
    even = write_mrc(tmp_path / "even.mrc", volume - split, vs)
    small = write_mrc(tmp_path / "small.mrc", volume[:32], vs)

    # a half of another shape, or the tomogram itself: one line, nothing recorded
    assert run(["project", "add-halves", str(proj), "sim_tomo", str(small), str(even)]) == 2
    err = capsys.readouterr().err
    assert "small.mrc" in err and "reconstructed like it" in err and len(err.splitlines()) == 1
    assert run(["project", "add-halves", str(proj), "sim_tomo", str(tomo_path), str(even)]) == 2
    assert "two files other than the tomogram" in capsys.readouterr().err
    assert "halves" not in yaml.safe_load((proj / "project.yaml").read_text())["tomograms"][0]

    with Project.open(proj) as project:
        plain = candidate_store(project)
        assert not plain.has_halves
        plain_subtomograms = plain.subtomograms(slice(None))
    assert run(["project", "add-halves", str(proj), "sim_tomo", str(odd), str(even)]) == 0
    with Project.open(proj) as project:
        store = candidate_store(project)  # the recipe changed: extracted again, with halves
        assert store.path != plain.path and store.has_halves
        # the samples are the tomogram's as before; each half is its box of that half,
        # normalised like the sample
        np.testing.assert_allclose(store.subtomograms(slice(None)), plain_subtomograms, atol=1e-5)
        pairs = store.halves(slice(None))
        assert pairs.shape == (30, 2, 16, 16, 16)
        for k, half in enumerate((volume + split, volume - split)):
            boxes, _ = extract_subtomograms(half, store.centres_zyx, 16, normalise=True)
            np.testing.assert_allclose(pairs[:, k], boxes, atol=1e-4)
        # a candidate added by hand: the others' half pairs are copied, its own are cut
        added = pd.DataFrame({"candidate_id": ["sim_tomo:manual"], "tomo_id": ["sim_tomo"],
                              "z": [32.0], "y": [64.0], "x": [64.0]})  # fmt: skip
        project.labels.add_candidates(added, source="manual")
        updated = candidate_store(project)
        assert len(updated) == 31 and updated.has_halves
        rows = updated.index_of(store.ids)
        np.testing.assert_array_equal(updated.halves(rows), pairs)
    assert run(["pretrain", str(proj), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "views from their half pairs" in out
    with SubtomogramStore(next((proj / CACHE_DIR).glob("candidates-*.h5"))) as cached:
        assert cached.has_halves
    # a tomogram added with its halves at once; one half alone is refused
    second = write_mrc(tmp_path / "second.mrc", volume * 0.5, vs)
    add = ["project", "add-tomogram", str(proj), str(second), "--tomo-id", "second"]
    assert run([*add, "--odd", str(odd)]) == 2
    assert "give both --odd and --even" in capsys.readouterr().err
    assert run([*add, "--odd", str(odd), "--even", str(even)]) == 0
    assert "with its odd/even halves" in capsys.readouterr().out
    entry = yaml.safe_load((proj / "project.yaml").read_text())["tomograms"][1]
    assert entry["halves"] == [str(odd.resolve()), str(even.resolve())]
