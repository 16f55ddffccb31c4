"""sbatch scripts: valid bash, requeue and signal lines, a round chained by dependencies."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from cryoal.cli.main import run
from cryoal.cluster.sbatch import SlurmOptions, render, submit, write_scripts


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    assert run(["project", "init", str(tmp_path / "proj"), "--classes", "a,b", "--box", "16"]) == 0
    return tmp_path / "proj"


def test_rendered_scripts_are_valid_bash_with_requeue_and_signal_lines(project: Path) -> None:
    opts = SlurmOptions(gpus=4, nodes=2, partition="gpu", account="lab", shards=3,
                        setup=["module load cuda/12.4"], train_args=["--epochs", "30"])  # fmt: skip
    jobs = dict(render("round", project, opts))
    assert list(jobs) == ["train", "score", "merge"]
    for name, text in jobs.items():
        done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
        assert "#SBATCH --partition=gpu" in text and "#SBATCH --account=lab" in text
    train = jobs["train"]
    assert "#SBATCH --requeue" in train and "#SBATCH --signal=USR1@300" in train
    assert "#SBATCH --nodes=2" in train and "#SBATCH --gpus-per-node=4" in train
    assert "#SBATCH --ntasks-per-node=1" in train and "--nproc-per-node=4" in train
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in train
    assert f"-m cryoal train {project.resolve()} --device cuda --epochs 30" in train
    assert "module load cuda/12.4" in train
    assert train.index("-m cryoal train") < train.index(f"score {project.resolve()} --prepare")
    assert "export CRYOAL_DIST_TIMEOUT_S=${CRYOAL_DIST_TIMEOUT_S:-1800}" in train
    assert "#SBATCH --array=0-2" in jobs["score"]
    assert '--shard "$SLURM_ARRAY_TASK_ID/3"' in jobs["score"]
    assert "merge-scores" in jobs["merge"] and "--gpus-per-node" not in jobs["merge"]


def test_round_dry_run_prints_train_then_array_then_merge_with_dependencies(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["slurm", "round", str(project), "--dry-run", "--gpus", "2", "--shards", "5"]) == 0
    out = capsys.readouterr().out
    train, score, merge = (out.index(f"# --- job {i}/3: {n} ---")
                           for i, n in ((1, "train"), (2, "score"), (3, "merge")))  # fmt: skip
    assert train < score < merge
    assert "--dependency=afterok:$TRAIN_JOB" in out[score:merge]
    assert "--dependency=afterok:$SCORE_JOB" in out[merge:]
    assert "#SBATCH --array=0-4" in out[score:merge]
    assert not (project / "slurm").exists()  # a dry run writes nothing


def test_submit_chains_each_job_after_the_previous(project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "sbatch"
    fake.write_text(
        f'#!/bin/bash\necho "$@" >> {calls}\necho $(( 1000 + $(wc -l < {calls}) ))";cluster"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    paths = write_scripts(render("round", project, SlurmOptions()), project / "slurm")
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{env_path}"
    try:
        ids = submit(paths)
    finally:
        os.environ["PATH"] = env_path
    assert ids == ["1001", "1002", "1003"]
    lines = calls.read_text().splitlines()
    assert lines[0] == f"--parsable {paths[0]}"
    assert lines[1] == f"--parsable --dependency=afterok:1001 {paths[1]}"
    assert lines[2] == f"--parsable --dependency=afterok:1002 {paths[2]}"
    assert (project / "slurm" / "logs").is_dir()


def test_bad_options_are_one_line_errors(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["slurm", "train", str(project), "--time", "4h", "--dry-run"]) == 2
    assert "--time '4h': use HH:MM:SS" in capsys.readouterr().err
    assert run(["slurm", "train", str(tmp_path), "--dry-run"]) == 2
    assert "not a cryoal project" in capsys.readouterr().err
