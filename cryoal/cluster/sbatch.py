"""sbatch scripts for a project's training, sharded scoring and a whole round.

A round on SLURM is three jobs, each waiting for the previous one to succeed::

    train   (1 job, N nodes x G GPUs: one task per node running torchrun; DDP)
      -> score  (job array of S tasks: ``cryoal score DIR --shard $SLURM_ARRAY_TASK_ID/S``)
        -> merge  (1 small job: ``cryoal merge-scores DIR`` writes the queue)

Pre-emption and time limits: the training script asks for ``--requeue`` and
``--signal=USR1@300``. SLURM then sends SIGUSR1 to the job step (srun's task: torchrun)
300 s before the time limit; torchrun (``--signals-to-handle ...,SIGUSR1``) forwards it to
every rank; the ranks agree to stop at the next step boundary, rank 0 writes a checkpoint
and runs ``scontrol requeue $SLURM_JOB_ID``. The requeued job runs the same script;
``cryoal train DIR`` trains the same snapshot again and resumes from the newest valid
checkpoint. (``--signal=B:USR1@300`` would signal only the batch shell, not torchrun.)
Scoring tasks are requeue-safe too: a shard file is written atomically, and a task that
runs again rewrites it. None of the jobs opens ``labels.sqlite``: training reads the
round's snapshot, scoring and merge its frozen ``candidates.csv`` (see
:mod:`cryoal.project.pool`); the merged queue is imported where the store lives
(``cryoal suggest DIR --import``).

:func:`render` returns the script texts and :func:`sbatch_options` their ``#SBATCH``
options; :mod:`cryoal.cluster.submit` submits the scripts through submitit.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryoal.io.atomic import atomic_write_text
from cryoal.project.layout import is_project

#: Seconds before the time limit at which SLURM sends SIGUSR1 to the training step.
SIGNAL_LEAD_S = 300
#: Port of torchrun's c10d rendezvous on the first node.
RDZV_PORT = 29500

#: SLURM time limits: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
#: days-hours:minutes, days-hours:minutes:seconds.
_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2})$")
_TIME_FORMATS = "minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]] (e.g. 04:00:00, 1-12:00:00, 90)"
#: SLURM memory per node: a whole number of megabytes, or with a unit K, M, G or T.
_MEM = re.compile(r"^\d+[KMGTkmgt]?$")
#: A SLURM partition or account name (a partition list is comma-separated): no blanks,
#: control characters, quotes, backslashes or ``#``, which sbatch would read differently.
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f\"'\\#]+$")
#: ``#SBATCH`` values written without quotes (everything else is double-quoted).
_BARE = re.compile(r"^[A-Za-z0-9_.,:@%+=/-]+$")


def _control_characters(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


@dataclass
class SlurmOptions:
    """Resources and environment of the jobs.

    Attributes
    ----------
    gpus
        GPUs per node for training (0: CPU training, one process per node, gloo).
    nodes
        Nodes for training.
    time
        Wall-time limit of each training job (SLURM's formats: minutes, ``MM:SS``,
        ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``).
    partition, account
        Passed as ``--partition`` / ``--account`` when given.
    cpus_per_task
        CPU cores per task (data loading; default 8 per GPU, 4 on CPU).
    mem
        Memory per node: megabytes, or with a unit ``K``/``M``/``G``/``T`` (e.g. ``"64G"``);
        default: the partition's.
    shards
        Tasks of the scoring array.
    score_gpus
        GPUs per scoring task (default 1 when training uses GPUs, else 0).
    score_time, merge_time
        Wall-time limits of a scoring task and of the merge.
    python
        The Python that runs cryoal on the nodes (default: this one; the environment must
        be on a filesystem the nodes see).
    setup
        Shell lines run before cryoal (``module load ...``, ``source venv/bin/activate``).
    train_args
        Extra ``cryoal train`` arguments (e.g. ``["--epochs", "30"]``).
    score_args
        Extra ``cryoal score`` / ``merge-scores`` arguments (``--strategy``, ``--k``, ...).
    """

    gpus: int = 1
    nodes: int = 1
    time: str = "04:00:00"
    partition: str | None = None
    account: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    shards: int = 4
    score_gpus: int | None = None
    score_time: str = "01:00:00"
    merge_time: str = "00:30:00"
    python: str = field(default_factory=lambda: sys.executable)
    setup: list[str] = field(default_factory=list)
    train_args: list[str] = field(default_factory=list)
    score_args: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise ``ValueError`` (one line naming the option, the value and the valid format)
        for a value SLURM would refuse, or that would break the ``#SBATCH`` header."""
        for name, minimum in _COUNTS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < minimum):  # fmt: skip
                raise ValueError(f"{_flag(name)} {value!r}: use a whole number >= {minimum}")
        for name in ("time", "score_time", "merge_time"):
            value = getattr(self, name)
            if not _TIME.match(value):
                raise ValueError(f"{_flag(name)} {value!r}: use {_TIME_FORMATS}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise ValueError(
                f"--mem {self.mem!r}: use a whole number of megabytes, or one with a unit K, "
                "M, G or T (e.g. 16G, 500M, 16000)"
            )
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and not _NAME.match(value):
                raise ValueError(
                    f"{_flag(name)} {value!r}: use a SLURM {name} name, without blanks, "
                    "quotes, backslashes, '#' or control characters (e.g. "
                    f"{'gpu or gpu,gpu-long' if name == 'partition' else 'mylab'})"
                )


#: Count options and their least valid value (``None``: not given, SLURM's default).
_COUNTS = (("gpus", 0), ("nodes", 1), ("shards", 1), ("cpus_per_task", 1), ("score_gpus", 0))


#: Fields set only through the Python API (no ``cryoal slurm`` option): named as fields.
_API_ONLY = frozenset({"merge_time", "score_gpus"})


def _flag(name: str) -> str:
    return f"SlurmOptions.{name}" if name in _API_ONLY else "--" + name.replace("_", "-")


def sbatch_value(value: str) -> str:
    """``value`` written so that sbatch reads it back as one word from a ``#SBATCH`` line.

    sbatch splits the options of a ``#SBATCH`` line at unquoted blanks, honours double and
    single quotes and backslash escapes, and ends the line at an unquoted ``#``. A value of
    only letters, digits and ``_.,:@%+=/-`` stays bare; any other is put in double quotes
    with ``\\`` and ``"`` escaped, which sbatch and a POSIX shell split alike.
    """
    if _BARE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _log_pattern(project: Path, array: bool) -> str:
    """``--output`` of a job: ``PROJECT/slurm/logs/%x-%j.out`` (``%x-%A_%a.out`` for an
    array), with a ``%`` of the project path doubled so that SLURM keeps it literal."""
    text = str(project)
    if _control_characters(text):
        raise ValueError(
            f"{text!r}: the project path holds a control character (a newline, tab, ...), "
            "which would end the #SBATCH header; move the project to a path without one"
        )
    if "\\" in text:
        raise ValueError(
            f"{text}: the project path holds a backslash, which makes SLURM ignore the %x/%j "
            "patterns of the log file name; move the project to a path without one"
        )
    logs = str(project / "slurm" / "logs").replace("%", "%%")
    return f"{logs}/{'%x-%A_%a.out' if array else '%x-%j.out'}"


def _score_gpus(opts: SlurmOptions) -> int:
    return opts.score_gpus if opts.score_gpus is not None else (1 if opts.gpus else 0)


def _cpus(opts: SlurmOptions, gpus: int) -> int:
    if opts.cpus_per_task is not None:
        return opts.cpus_per_task
    return 8 * gpus if gpus else 4


def sbatch_options(name: str, project: Path, opts: SlurmOptions) -> dict[str, str | bool]:
    """The ``#SBATCH`` options of job ``name`` (``train``, ``score`` or ``merge``).

    Keys are sbatch long options with ``_`` for ``-`` (``gpus_per_node``); ``True`` is a
    flag without value (``requeue``). The same options go into the rendered script's header
    and, on submission, into submitit's sbatch file (:mod:`cryoal.cluster.submit`).
    """
    project = Path(project).resolve()
    nodes, gpus, time = {
        "train": (opts.nodes, opts.gpus, opts.time),
        "score": (1, _score_gpus(opts), opts.score_time),
        "merge": (1, 0, opts.merge_time),
    }[name]
    array = opts.shards if name == "score" else None
    out: dict[str, str | bool] = {
        "job_name": f"cryoal-{name}-{project.name}",
        "nodes": str(nodes),
        "ntasks_per_node": "1",
        "cpus_per_task": str(_cpus(opts, gpus)),
        "time": time,
        "output": _log_pattern(project, bool(array)),
        "open_mode": "append",
    }
    if gpus:
        out["gpus_per_node"] = str(gpus)
    if opts.mem:
        out["mem"] = opts.mem
    if opts.partition:
        out["partition"] = opts.partition
    if opts.account:
        out["account"] = opts.account
    if array:
        out["array"] = f"0-{array - 1}"
    if name in ("train", "score"):
        out["requeue"] = True
    if name == "train":
        out["signal"] = f"USR1@{SIGNAL_LEAD_S}"
    return out


def _header(opts: SlurmOptions, name: str, project: Path) -> list[str]:
    options = sbatch_options(name, project, opts)
    lines = ["#!/bin/bash"]
    for key, value in options.items():
        flag = key.replace("_", "-")
        if value is True:
            lines.append(f"#SBATCH --{flag}")
        else:
            lines.append(f"#SBATCH --{flag}={sbatch_value(str(value))}")
    cpus = int(options["cpus_per_task"])
    lines += ["", "set -euo pipefail", *opts.setup,
              "export PYTHONUNBUFFERED=1  # progress lines reach the log as they happen",
              f"export OMP_NUM_THREADS={min(cpus, 8)}", ""]  # fmt: skip
    return lines


def _cryoal(opts: SlurmOptions) -> str:
    return f"{shlex.quote(opts.python)} -m cryoal"


def render_train(project: Path, opts: SlurmOptions) -> str:
    """The training job: one task per node, each running torchrun over the node's GPUs."""
    opts.check()
    procs = max(1, opts.gpus)
    device = "cuda" if opts.gpus else "cpu"
    lines = _header(opts, "train", project)
    train = " ".join(shlex.quote(a) for a in ["--device", device, *opts.train_args])
    lines += [
        "# rank 0 may extract the round's training store while the other ranks wait",
        "export CRYOAL_DIST_TIMEOUT_S=${CRYOAL_DIST_TIMEOUT_S:-1800}",
        "# rendezvous on the first node of the allocation (SLURM sets the node list)",
        'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f'echo "cryoal train: $SLURM_JOB_NUM_NODES node(s) x {procs} process(es), '
        'restart ${SLURM_RESTART_COUNT:-0}"',
        "# torchrun forwards SIGUSR1 (sent 300 s before the time limit) to every rank; the",
        "# ranks checkpoint at the next step and rank 0 requeues this job, which then resumes",
        "srun --kill-on-bad-exit=1 --ntasks-per-node=1 \\",
        f"  {shlex.quote(opts.python)} -m torch.distributed.run \\",
        f'  --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node={procs} \\',
        f'  --rdzv-backend=c10d --rdzv-endpoint="$head_node:{RDZV_PORT}" '
        '--rdzv-id="$SLURM_JOB_ID" \\',
        "  --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout=240 \\",
        f"  -m cryoal train {shlex.quote(str(project))} {train}",
        "# extract the candidate cache once here, not in every task of the scoring array",
        f"srun --nodes=1 --ntasks=1 {_cryoal(opts)} score {shlex.quote(str(project))} --prepare",
        "",
    ]
    return "\n".join(lines)


def render_score(project: Path, opts: SlurmOptions) -> str:
    """The scoring job array: task ``i`` scores shard ``i`` of ``opts.shards``."""
    opts.check()
    gpus = _score_gpus(opts)
    lines = _header(opts, "score", project)
    args = " ".join(
        shlex.quote(a) for a in ["--device", "cuda" if gpus else "cpu", *opts.score_args]
    )
    lines += [
        f"{_cryoal(opts)} score {shlex.quote(str(project))} "
        f'--shard "${{SLURM_ARRAY_TASK_ID:-0}}/{opts.shards}" {args}',
        "",
    ]
    return "\n".join(lines)


def render_merge(project: Path, opts: SlurmOptions) -> str:
    """The merge job: check the shards, select, write the queue (CPU)."""
    opts.check()
    lines = _header(opts, "merge", project)
    args = " ".join(shlex.quote(a) for a in ["--replace", *opts.score_args])
    lines += [f"{_cryoal(opts)} merge-scores {shlex.quote(str(project))} {args}", ""]
    return "\n".join(lines)


#: Which scripts each ``cryoal slurm`` kind submits, in dependency order.
KINDS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "suggest": ("score", "merge"),
    "round": ("train", "score", "merge"),
}


def render(kind: str, project: Path, opts: SlurmOptions) -> list[tuple[str, str]]:
    """``[(job name, script text), ...]`` of ``kind`` in dependency order."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; use one of {list(KINDS)}")
    project = Path(project).resolve()
    if not is_project(project):
        raise ValueError(f"{project}: not a cryoal project (no project.yaml)")
    makers = {"train": render_train, "score": render_score, "merge": render_merge}
    return [(name, makers[name](project, opts)) for name in KINDS[kind]]


def dry_run_text(jobs: list[tuple[str, str]], folder: Path) -> str:
    """The scripts and the sbatch commands that would chain them, as one text."""
    parts = []
    prev = None
    for i, (name, text) in enumerate(jobs, 1):
        dep = f"--dependency=afterok:${prev.upper()}_JOB " if prev else ""
        parts.append(
            f"# --- job {i}/{len(jobs)}: {name} ---\n"
            f"# {name.upper()}_JOB=$(sbatch --parsable {dep}"
            f"{shlex.quote(str(folder / (name + '.sbatch')))})\n"
            f"{text}"
        )
        prev = name
    return "\n".join(parts)


def write_scripts(jobs: list[tuple[str, str]], folder: Path) -> list[Path]:
    """Write each script atomically as ``FOLDER/<name>.sbatch``; create the log folder."""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in jobs:
        path = folder / f"{name}.sbatch"
        atomic_write_text(path, text)
        os.chmod(path, 0o755)
        paths.append(path)
    return paths
