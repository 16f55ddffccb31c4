"""sbatch scripts: valid bash, requeue and signal lines, a round chained by dependencies."""

from __future__ import annotations

import json
import os
import pickletools
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cryoal.cli.main import run
from cryoal.cluster.sbatch import SlurmOptions, dry_run_text, render, write_scripts
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
    assert "--time '4h': use minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]" in capsys.readouterr().err
    assert run(["slurm", "train", str(tmp_path), "--dry-run"]) == 2
    assert "not a cryoal project" in capsys.readouterr().err


#: A project folder name that breaks unquoted #SBATCH values and shell words: blanks,
#: non-ASCII, double quotes, a shell variable, an sbatch comment sign and a SLURM pattern.
ODD_NAME = 'my proj ü "q" $HOME #1 100%x'


@pytest.fixture()
def odd_project(tmp_path: Path) -> Path:
    path = tmp_path / "dir with space" / ODD_NAME
    path.parent.mkdir()
    assert run(["project", "init", str(path), "--classes", "a,b", "--box", "16"]) == 0
    return path


def sbatch_header(text: str) -> tuple[list[str], list[str]]:
    """What sbatch reads from a script: the ``#SBATCH`` lines before the first command line,
    each split like a shell (quotes, escapes, an unquoted ``#`` ends it), and the
    ``#SBATCH`` lines it ignores because they come after that command line."""
    args: list[str] = []
    ignored: list[str] = []
    in_header = True
    for line in text.splitlines():
        if line.startswith("#SBATCH"):
            if in_header:
                args += shlex.split(line[len("#SBATCH") :], comments=True)
            else:
                ignored.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            in_header = False
    return args, ignored


def _options(args: list[str]) -> dict[str, str | bool]:
    out: dict[str, str | bool] = {}
    for arg in args:
        assert arg.startswith("--"), arg
        key, eq, value = arg[2:].partition("=")
        out[key] = value if eq else True
    return out


def test_sbatch_reads_odd_project_paths_and_names_as_one_value_each(odd_project: Path) -> None:
    opts = SlurmOptions(gpus=2, nodes=2, shards=3, partition="gpu,gpu-long", account="lab",
                        mem="64G", cpus_per_task=6)  # fmt: skip
    logs = str(odd_project.resolve() / "slurm" / "logs").replace("%", "%%")
    for name, text in render("round", odd_project, opts):
        args, ignored = sbatch_header(text)
        assert not ignored
        got = _options(args)
        assert got["job-name"] == f"cryoal-{name}-{ODD_NAME}"
        pattern = "%x-%A_%a.out" if name == "score" else "%x-%j.out"
        assert got["output"] == f"{logs}/{pattern}"
        assert got["partition"] == "gpu,gpu-long" and got["account"] == "lab"
        assert got["mem"] == "64G" and got["cpus-per-task"] == "6"
        assert got["time"] == {"train": "04:00:00", "score": "01:00:00", "merge": "00:30:00"}[name]
        assert len(args) == sum(line.startswith("#SBATCH") for line in text.splitlines())
        done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"


def test_printed_sbatch_commands_are_shell_quoted(odd_project: Path) -> None:
    folder = odd_project.resolve() / "slurm"
    text = dry_run_text(render("round", odd_project, SlurmOptions()), folder)
    commands = [line[2:] for line in text.splitlines() if "=$(sbatch " in line]
    assert len(commands) == 3
    for command, name in zip(commands, ("train", "score", "merge"), strict=True):
        inner = command[command.index("$(") + 2 : command.rindex(")")]
        assert shlex.split(inner)[-1] == str(folder / f"{name}.sbatch")


def _runnable_slurm(tmp_path: Path) -> tuple[Path, Path]:
    """An ``srun`` that runs its command, a ``scontrol`` naming one node, and a "python" (in a
    folder with a blank) that records its arguments, one JSON list a line."""
    bin_dir = tmp_path / "fake bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n'
    )
    (bin_dir / "scontrol").write_text("#!/bin/bash\necho node1\n")
    python = bin_dir / "python ü"
    python.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['ARGV_LOG'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    for path in bin_dir.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir, python


def test_script_bodies_pass_odd_paths_as_one_argument(odd_project: Path, tmp_path: Path) -> None:
    bin_dir, python = _runnable_slurm(tmp_path)
    log = tmp_path / "argv.jsonl"
    opts = SlurmOptions(gpus=0, shards=2, python=str(python), train_args=["--epochs", "3"],
                        score_args=["--k", "5"])  # fmt: skip
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                        "ARGV_LOG": str(log), "SLURM_JOB_NODELIST": "node1",
                        "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_ID": "7",
                        "SLURM_ARRAY_TASK_ID": "1"}  # fmt: skip
    paths = write_scripts(render("round", odd_project, opts), odd_project.resolve() / "slurm")
    for path in paths:
        done = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    proj = str(odd_project.resolve())
    train = calls[0]
    assert train[:2] == ["-m", "torch.distributed.run"]
    assert train[train.index("cryoal") :] == ["cryoal", "train", proj, "--device", "cpu",
                                              "--epochs", "3"]  # fmt: skip
    assert calls[1:] == [
        ["-m", "cryoal", "score", proj, "--prepare"],
        ["-m", "cryoal", "score", proj, "--shard", "1/2", "--device", "cpu", "--k", "5"],
        ["-m", "cryoal", "merge-scores", proj, "--replace", "--k", "5"],
    ]


def test_submitit_sbatch_files_read_odd_paths_as_one_value(
    odd_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, calls = _fake_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    opts = SlurmOptions(gpus=1, shards=2, partition="gpu", mem="500M")
    jobs = render("round", odd_project, opts)
    submit(jobs, write_scripts(jobs, odd_project.resolve() / "slurm"), odd_project, opts)
    logs = str(odd_project.resolve() / "slurm" / "logs").replace("%", "%%")
    for n, name in enumerate(("train", "score", "merge"), 1):
        args, ignored = sbatch_header((calls / f"{n}.sh").read_text())
        got = _options(args)
        assert not ignored
        assert got["job-name"] == f"cryoal-{name}-{ODD_NAME}"
        assert got["output"] == f"{logs}/{'%x-%A_%a.out' if name == 'score' else '%x-%j.out'}"
        assert got["mem"] == "500M" and got["partition"] == "gpu"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mem", "abc"], "--mem 'abc': use a whole number of megabytes, or one with a unit K"),
        (["--mem", "16G\necho hi"], "--mem '16G\\necho hi': use a whole number of megabytes"),
        (["--partition", "gpu\n#SBATCH --x"], "--partition 'gpu\\n#SBATCH --x': use a SLURM "
         "partition name, without blanks, quotes, backslashes, '#' or control characters"),
        (["--account", "lab\nrm -rf x"], "--account 'lab\\nrm -rf x': use a SLURM account"),
        (["--partition", "gpu a100"], "--partition 'gpu a100': use a SLURM partition name"),
        (["--time", "4h"], "--time '4h': use minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]"),
        (["--score-time", "1:00:00\nx"], "--score-time '1:00:00\\nx': use minutes, MM:SS"),
        (["--cpus-per-task", "0"], "Invalid value for '--cpus-per-task'"),
        (["--nodes", "0"], "Invalid value for '--nodes'"),
        (["--shards", "0"], "Invalid value for '--shards'"),
        (["--gpus", "-1"], "Invalid value for '--gpus'"),
    ],
)  # fmt: skip
def test_bad_sbatch_values_are_refused_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(["slurm", "round", str(project), "--dry-run", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("cryoal: error: ") and captured.err.count("\n") == 1
    assert message in captured.err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpus_per_task", 0, "--cpus-per-task 0: use a whole number >= 1"),
        ("score_gpus", -1, "SlurmOptions.score_gpus -1: use a whole number >= 0"),
        ("merge_time", "", "SlurmOptions.merge_time '': use minutes"),
        ("partition", "", "--partition '': use a SLURM partition name"),
    ],
)
def test_options_refused_by_the_library(
    project: Path, field: str, value: object, message: str
) -> None:
    opts = SlurmOptions(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^" + message.replace("-", "\\-")):
        render("round", project, opts)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--time", "90"), ("--time", "90:30"), ("--time", "12:00:00"), ("--time", "1-12"),
     ("--time", "1-12:30"), ("--time", "2-00:00:00"), ("--mem", "500M"), ("--mem", "16000"),
     ("--mem", "16g"), ("--cpus-per-task", "2")],
)  # fmt: skip
def test_valid_sbatch_values_reach_the_header_unchanged(
    project: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    assert run(["slurm", "train", str(project), "--dry-run", option, value]) == 0
    args, _ = sbatch_header(capsys.readouterr().out)
    assert _options(args)[option[2:]] == value


def test_project_paths_sbatch_cannot_carry_are_refused(tmp_path: Path) -> None:
    for bad in ("new\nline", "back\\slash"):
        path = tmp_path / bad
        assert run(["project", "init", str(path), "--classes", "a,b", "--box", "16"]) == 0
        with pytest.raises(ValueError) as info:
            render("train", path, SlurmOptions())
        message = str(info.value)
        assert "\n" not in message and "move the project to a path without one" in message
        assert not (path / "slurm").exists()
