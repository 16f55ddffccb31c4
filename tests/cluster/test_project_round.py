"""A project round as the cluster runs it: DDP training of the project under torchrun, then
sharded scoring and a merge that writes the same queue as a single-process suggest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cryoal.cli.main import run


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory: pytest.TempPathFactory, make_round0_labelled_project) -> Path:
    tmp = tmp_path_factory.mktemp("cluster_round")
    proj = make_round0_labelled_project(tmp, seed=5)
    # the training job of a SLURM round: torchrun, 2 processes (gloo), group norm
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cryoal", "train", str(proj), "--preset", "tiny", "--student-preset", "tiny",
           "--epochs", "2", "--batch-size", "4", "--val-fraction", "0", "--set", "norm=group",
           "--set", "dropout=0.2"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model version r001-") == 1  # rank 0 reports
    assert done.stderr.count("epoch 2/2") == 1  # one progress line per epoch, from rank 0
    return proj


@pytest.mark.parametrize("strategy", ["kt", "bald", "coreset"])
def test_sharded_scoring_and_merge_write_the_single_process_queue(
    trained_project: Path, strategy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = trained_project
    opts = ["--strategy", strategy, "--k", "5", "--seed", "2"]
    assert run(["suggest", str(proj), *opts, "--replace"]) == 0
    single = pd.read_csv(proj / "rounds/001/suggestions.csv")
    single_table = pd.read_csv(proj / "rounds/001/scores.csv")
    scores = proj / "rounds/001/scores"
    for f in scores.glob("*.h5") if scores.exists() else []:
        f.unlink()
    assert run(["score", str(proj), "--prepare"]) == 0
    assert "candidate cache: " in capsys.readouterr().out
    for i in range(3):
        assert run(["score", str(proj), "--shard", f"{i}/3", *opts, "--batch-size", "8"]) == 0
    # the micro-batch size is part of the scores: the merge must use the shards' size
    assert run(["merge-scores", str(proj), *opts, "--replace"]) == 2
    assert "scored with batch_size 8 but the merge asks for 64" in capsys.readouterr().err
    for f in scores.glob("*.h5"):
        f.unlink()
    for i in range(3):
        assert run(["score", str(proj), "--shard", f"{i}/3", *opts, "-q"]) == 0
    assert run(["merge-scores", str(proj), *opts, "--replace"]) == 0
    merged = pd.read_csv(proj / "rounds/001/suggestions.csv")
    pd.testing.assert_frame_equal(merged, single)
    # the merge writes the same full score table as the single process
    pd.testing.assert_frame_equal(pd.read_csv(proj / "rounds/001/scores.csv"), single_table)
    (scores / "shard-002-of-003.h5").unlink()  # 18 candidates: one micro-batch, in shard 2
    capsys.readouterr()
    assert run(["merge-scores", str(proj), *opts, "--replace"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryoal: error: ") and err.count("\n") == 1
    assert "18 candidate id(s) have no score: " in err
    assert "missing shard files: shard-002-of-003.h5" in err


def test_cluster_scoring_never_opens_the_label_store_and_the_import_gives_the_same_queue(
    trained_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryoal.project.labels import LabelStore

    proj = trained_project
    opts = ["--strategy", "kt", "--k", "5", "--seed", "3"]
    assert run(["suggest", str(proj), *opts, "--replace"]) == 0
    with LabelStore(proj / "labels.sqlite") as store:
        single = store.queue(1, include_labelled=True)
    # another queue in the store, so that the import below has to write the merged one
    assert run(["suggest", str(proj), "--strategy", "random", "--k", "5", "--replace"]) == 0
    scores = proj / "rounds/001/scores"
    for f in scores.glob("*.h5") if scores.exists() else []:
        f.unlink()
    # the jobs run where the label store is not: move labels.sqlite (and its WAL) away
    away = tmp_path / "away"
    away.mkdir()
    moved = list(proj.glob("labels.sqlite*"))
    for p in moved:
        p.rename(away / p.name)
    try:
        assert run(["score", str(proj), "--prepare", "-q"]) == 0
        for i in range(2):
            assert run(["score", str(proj), "--shard", f"{i}/2", *opts, "-q"]) == 0
        assert run(["merge-scores", str(proj), *opts, "--replace"]) == 0
        assert "cryoal suggest DIR --import" in capsys.readouterr().out
        assert not list(proj.glob("labels.sqlite*"))  # nothing opened or created it
        assert (proj / "rounds/001/suggestions.json").is_file()
    finally:
        for p in moved:
            (away / p.name).rename(p)
    assert run(["suggest", str(proj), "--import", "--k", "3"]) == 2
    assert "--import takes the merged queue as the merge wrote it" in capsys.readouterr().err
    assert run(["suggest", str(proj), "--import"]) == 2  # round 1 holds the random queue
    assert "round 1 already has suggestions" in capsys.readouterr().err
    assert run(["suggest", str(proj), "--import", "--replace"]) == 0
    assert "5 merged suggestions (kt by model r001-" in capsys.readouterr().out
    with LabelStore(proj / "labels.sqlite") as store:
        imported = store.queue(1, include_labelled=True)
        rounds = store.rounds().set_index("round")
    pd.testing.assert_frame_equal(imported, single, check_exact=True)
    assert rounds.loc[1, "strategy"] == "kt" and rounds.loc[1, "seed"] == 3
    assert run(["suggest", str(proj), "--import"]) == 0  # again: nothing to change
    assert "already in the label store" in capsys.readouterr().out


def test_import_refuses_a_trained_round_whose_shards_were_never_merged(
    trained_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(trained_project, proj)
    opts = ["--strategy", "kt", "--k", "4", "--seed", "1"]
    scores = proj / "rounds/001/scores"
    shutil.rmtree(scores, ignore_errors=True)
    # round 1 on the cluster: scored, merged and imported
    assert run(["score", str(proj), "--shard", "0/1", *opts, "-q"]) == 0
    assert run(["merge-scores", str(proj), *opts, "--replace"]) == 0
    assert run(["suggest", str(proj), "--import", "--replace"]) == 0
    queue = pd.read_csv(proj / "rounds/001/suggestions.csv")
    answers = pd.DataFrame({"candidate_id": queue["candidate_id"], "label": "not-a-particle"})
    answers.to_csv(tmp_path / "r1.csv", index=False)
    assert run(["labels", "import", str(proj), str(tmp_path / "r1.csv"), "--annotator", "x"]) == 0
    # round 2 trained, its shards never merged
    assert run(["project", "snapshot", str(proj)]) == 0
    assert run(["train", str(proj), "--preset", "tiny", "--student-preset", "tiny", "--epochs",
                "1", "--batch-size", "4", "--val-fraction", "0", "--no-progress"]) == 0  # fmt: skip
    assert (proj / "rounds/002/round.json").is_file()
    capsys.readouterr()
    assert run(["suggest", str(proj), "--import"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("cryoal: error: ") and err.count("\n") == 1 and captured.out == ""
    assert "rounds/002/suggestions.json: round 2 is trained but its score shards were " in err
    assert f"run 'cryoal merge-scores {proj}' once every 'cryoal score {proj} --shard I/N'" in err
    # the commands the message names bring round 2's queue in
    assert run(["score", str(proj), "--shard", "0/1", *opts, "-q"]) == 0
    assert run(["merge-scores", str(proj), *opts]) == 0
    capsys.readouterr()
    assert run(["suggest", str(proj), "--import"]) == 0
    assert "round 2: 4 merged suggestions (kt by model r002-" in capsys.readouterr().out
