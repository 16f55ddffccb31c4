"""Submit a project's sbatch scripts through submitit (``pip install 'cryoal[cluster]'``).

Each rendered script (:mod:`cryoal.cluster.sbatch`, written to ``DIR/slurm/<job>.sbatch``)
is submitted with a :class:`submitit.SlurmExecutor` whose sbatch file carries the script's
own ``#SBATCH`` options (:func:`~cryoal.cluster.sbatch.sbatch_options`: nodes, GPUs, time,
partition, account, ``--requeue``, ``--signal=USR1@300``, the log file; ``--array`` through
submitit's job arrays; ``--dependency=afterok:JOBID`` on the previous job) and runs the
script itself, ``bash DIR/slurm/<job>.sbatch``, as a
:class:`submitit.helpers.CommandFunction`. submitit pickles that command line (a list of
strings, no cryoal code) and, when the job ends, its output or error under
``DIR/slurm/submitit/<job id>/``.

The runner runs in the batch shell (``use_srun=False``), not as a job step, so SLURM's
SIGUSR1 (sent to job steps only) reaches the script's ``srun torchrun`` step and the
trainer's checkpoint-and-requeue, never submitit's own handlers; a requeued job runs the
same pickled command, hence the same script, again. A script that fails makes the runner
fail, so ``afterok`` holds the dependent jobs back.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryoal.cluster.sbatch import SlurmOptions, sbatch_options

log = logging.getLogger(__name__)

#: Where submitit keeps its job files, inside the project (``%j``: one folder per job).
SUBMITIT_DIR = "submitit"


@dataclass(frozen=True)
class Submitted:
    """One submitted job: its name (``train``, ``score``, ``merge``), SLURM id and script."""

    name: str
    job_id: str
    script: Path


def import_submitit() -> Any:
    """The submitit module, or a one-line ``ValueError`` naming the extra and --dry-run."""
    try:
        import submitit
        import submitit.helpers
    except ImportError as exc:
        raise ValueError(
            f"submitting needs submitit ({exc}): pip install 'cryoal[cluster]', or pass "
            "--dry-run to print the scripts and submit them with sbatch yourself"
        ) from exc
    return submitit


def check_submission() -> Any:
    """submitit, after checking that ``sbatch`` and ``srun`` are on PATH (one-line errors)."""
    submitit = import_submitit()
    for tool in ("sbatch", "srun"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(
                f"{tool} not found on PATH; submit from a SLURM login node, or pass --dry-run "
                "to print the scripts"
            )
    return submitit


def submit(
    jobs: list[tuple[str, str]], scripts: list[Path], project: Path, opts: SlurmOptions
) -> list[Submitted]:
    """Submit the written scripts in order, each after the previous one succeeds.

    Parameters
    ----------
    jobs
        ``render(kind, project, opts)``: ``[(job name, script text), ...]``.
    scripts
        The same scripts as written by ``write_scripts`` (what the jobs run).
    project
        The project folder.
    opts
        The options the scripts were rendered with.

    Returns
    -------
    list of Submitted
        One per job; a scoring array's id is the array's job id.

    Raises
    ------
    ValueError
        submitit is not installed, or SLURM refused a job (its message).
    FileNotFoundError
        ``sbatch`` or ``srun`` is not on PATH (not a SLURM login node).
    """
    submitit = check_submission()
    project = Path(project).resolve()
    folder = project / "slurm" / SUBMITIT_DIR / "%j"
    done: list[Submitted] = []
    for (name, _), script in zip(jobs, scripts, strict=True):
        options: dict[str, Any] = dict(sbatch_options(name, project, opts))
        array = options.pop("array", None)
        options.pop("open_mode")  # submitit writes --open-mode=append itself
        if done:
            options["dependency"] = f"afterok:{done[-1].job_id}"
        executor = submitit.SlurmExecutor(folder=folder, python=shlex.quote(opts.python))
        executor.update_parameters(
            setup=list(opts.setup), use_srun=False, stderr_to_stdout=True,
            additional_parameters=options,
        )  # fmt: skip
        command = submitit.helpers.CommandFunction(["bash", str(script)], verbose=True)
        try:
            if array and opts.shards > 1:
                with executor.batch():
                    tasks = [executor.submit(command) for _ in range(opts.shards)]
                job_id = str(tasks[0].job_id).split("_")[0]
            else:
                job_id = str(executor.submit(command).job_id)
        except (
            submitit.core.utils.FailedJobError,
            submitit.core.utils.FailedSubmissionError,
        ) as exc:
            raise ValueError(f"{script}: sbatch failed: {' '.join(str(exc).split())}") from None
        log.info("submitted %s as job %s", script, job_id)
        done.append(Submitted(name, job_id, script))
    return done
