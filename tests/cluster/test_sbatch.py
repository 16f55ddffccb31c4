"""sbatch scripts: valid bash, requeue and signal lines, a round chained by dependencies."""

from __future__ import annotations

import os
import pickletools
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cryoal.cli.main import run
from cryoal.cluster.sbatch import SlurmOptions, render, write_scripts
from cryoal.cluster.submit import submit


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
    assert '--shard "${SLURM_ARRAY_TASK_ID:-0}/3"' in jobs["score"]
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


def _fake_slurm(tmp_path: Path) -> tuple[Path, Path]:
    """``sbatch`` recording its arguments and the submitted file, and an idle ``srun``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    calls.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/bash\n"
        f"n=$(( $(ls {calls} | grep -c args) + 1 ))\n"
        f'echo "$@" > {calls}/$n.args\n'
        f'cat "${{@: -1}}" > {calls}/$n.sh\n'
        'echo "Submitted batch job $(( 1000 + n ))"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/bash\nexit 0\n")
    for tool in ("sbatch", "srun"):
        path = bin_dir / tool
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir, calls


def test_submission_goes_through_submitit_with_requeue_signal_array_and_dependencies(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, calls = _fake_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    opts = SlurmOptions(gpus=2, nodes=2, shards=3, partition="gpu", setup=["module load cuda"])
    jobs = render("round", project, opts)
    paths = write_scripts(jobs, project / "slurm")
    done = submit(jobs, paths, project, opts)
    assert [(j.name, j.job_id) for j in done] == [("train", "1001"), ("score", "1002"),
                                                  ("merge", "1003")]  # fmt: skip
    train, score, merge = ((calls / f"{n}.sh").read_text() for n in (1, 2, 3))
    for text, path in zip((train, score, merge), paths, strict=True):
        # submitit's sbatch file runs the rendered script itself, from the batch shell
        assert "submitit.core._submit" in text and "srun --unbuffered" not in text
        assert "#SBATCH --partition=gpu" in text and "module load cuda" in text
        assert (calls / "1.args").read_text().startswith(str(project / "slurm" / "submitit"))
        assert path.is_file()
    assert "#SBATCH --requeue" in train and "#SBATCH --signal=USR1@300" in train
    assert "#SBATCH --nodes=2" in train and "#SBATCH --gpus-per-node=2" in train
    assert "#SBATCH --time=04:00:00" in train and "--dependency" not in train
    assert f"#SBATCH --output={project.resolve()}/slurm/logs/%x-%j.out" in train
    assert "#SBATCH --array=0-2%3" in score and "#SBATCH --requeue" in score
    assert "#SBATCH --dependency=afterok:1001" in score
    assert "#SBATCH --dependency=afterok:1002" in merge and "--gpus-per-node" not in merge
    # what each job runs: bash on the rendered script (submitit's pickle holds only that)
    pickles = sorted((project / "slurm" / "submitit").rglob("*_submitted.pkl"))
    assert len(pickles) == 5  # train, 3 shards, merge
    for p in pickles:  # read the opcodes only, nothing is unpickled
        ops = list(pickletools.genops(p.read_bytes()))
        strings = [arg for _, arg, _ in ops if isinstance(arg, str)]
        assert "CommandFunction" in strings and "bash" in strings
        assert not [x for x in strings if x.startswith("cryoal.")]  # no cryoal code inside


def test_cli_submits_and_names_the_import_step(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bin_dir, calls = _fake_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # the jobs read frozen files only: submission needs the round's snapshot first
    assert run(["slurm", "round", str(project)]) == 2
    assert "no untrained snapshot; take one where labels.sqlite lives" in capsys.readouterr().err
    assert run(["slurm", "suggest", str(project)]) == 2
    assert "no trained round to score" in capsys.readouterr().err
    assert not (project / "slurm").exists() and not list(calls.iterdir())
    assert run(["project", "snapshot", str(project)]) == 0
    assert run(["slurm", "round", str(project), "--shards", "1", "--gpus", "0"]) == 0
    out = capsys.readouterr().out
    assert "round 1: jobs read its snapshot and candidate table, not labels.sqlite" in out
    assert "submitted score: job 1002" in out and "submitted merge: job 1003" in out
    assert f"cryoal suggest {project} --import" in out
    assert "--array" not in (calls / "2.sh").read_text()  # one shard: a plain job, shard 0/1


def test_submission_without_submitit_or_sbatch_is_a_one_line_error(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    assert run(["slurm", "round", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'cryoal[cluster]'" in err and "--dry-run" in err
    assert not (project / "slurm").exists()
    monkeypatch.undo()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert run(["slurm", "train", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch not found on PATH" in err
    assert not (project / "slurm").exists()


def test_bad_options_are_one_line_errors(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["slurm", "train", str(project), "--time", "4h", "--dry-run"]) == 2
    assert "--time '4h': use HH:MM:SS" in capsys.readouterr().err
    assert run(["slurm", "train", str(tmp_path), "--dry-run"]) == 2
    assert "not a cryoal project" in capsys.readouterr().err
