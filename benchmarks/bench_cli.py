"""CLI start-up: wall time of light commands against ``import cryoal`` and a bare interpreter.

Each command is run as a fresh process (``python -m cryoal ...``, as a user's shell runs
it) N times, alternating commands so machine load affects all alike; the table reports the
median and the ratio to ``python -c "import cryoal"`` and to ``python -c pass`` measured in
the same run. Inputs (a small MRC tomogram and a project with a few candidates) are made
once in a temporary folder. Whether ``torch`` was imported is checked with ``-X importtime``.

Usage: ``python benchmarks/run.py cli`` (``--runs N``, default 15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _inputs(folder: Path) -> dict[str, str]:
    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    rng = np.random.default_rng(0)
    tomo = folder / "TS_01.mrc"
    write_mrc(tomo, rng.standard_normal((32, 64, 64)).astype(np.float32), 10.0)
    picks = folder / "picks.csv"
    rows = [f"TS_01,{x},{y},{z}" for x, y, z in rng.uniform(100, 300, (20, 3))]
    picks.write_text("tomo_id,x_A,y_A,z_A\n" + "\n".join(rows) + "\n")
    project = folder / "proj"
    Project.init(project, ["ribosome", "proteasome"], box=16).close()
    env = _env()
    for argv in (["project", "add-tomogram", project, tomo], ["project", "import-picks", project, picks],
                 ["suggest", project, "--k", "5"]):  # fmt: skip
        subprocess.run([sys.executable, "-m", "cryoal", *map(str, argv)], env=env, check=True,
                       capture_output=True)  # fmt: skip
    return {"tomo": str(tomo), "project": str(project)}


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _imports_torch(argv: list[str], env: dict[str, str]) -> bool:
    res = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return any(line.rstrip().endswith("| torch") for line in res.stderr.splitlines())


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="bench_cli")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    env = _env()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        paths = _inputs(Path(tmp))
        cases = {
            "python -c pass": [py, "-c", "pass"],
            'python -c "import cryoal"': [py, "-c", "import cryoal"],
            "cryoal --help": [py, "-m", "cryoal", "--help"],
            "cryoal info TS_01.mrc": [py, "-m", "cryoal", "info", paths["tomo"]],
            "cryoal status PROJECT": [py, "-m", "cryoal", "status", paths["project"]],
            "cryoal labels queue PROJECT": [
                py,
                "-m",
                "cryoal",
                "labels",
                "queue",
                paths["project"],
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for cmd in cases.values():  # warm the file cache once
            _time(cmd, env)
        for _ in range(args.runs):
            for name, cmd in cases.items():
                times[name].append(_time(cmd, env))
        torch_loaded = {name: _imports_torch(cmd, env) for name, cmd in cases.items()}
    med = {name: statistics.median(v) for name, v in times.items()}
    bare, pkg = med["python -c pass"], med['python -c "import cryoal"']
    lines = [
        f"Median wall time of {args.runs} fresh processes per command (commands interleaved), "
        "as a multiple of a bare interpreter and of `import cryoal` measured in the same run; "
        "the machine is shared, so absolute times are noisy.",
        "",
        "| command | median (s) | / `python -c pass` | / `import cryoal` | imports torch |",
        "|---|---|---|---|---|",
    ]
    for name in cases:
        lines.append(
            f"| `{name}` | {med[name]:.3f} | {med[name] / bare:.1f} | {med[name] / pkg:.1f} | "
            f"{'yes' if torch_loaded[name] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
