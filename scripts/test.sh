#!/usr/bin/env bash
# Set up ./.venv (test extras), run the linters and the type checker, then the whole test
# suite. Any lint, format or type error fails the run before the tests start. Extra args go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# One OpenMP thread per process: the suite starts several processes at once (kill/resume,
# torchrun, workers), and two spinning threads each on 2 cores slow everything down.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Lint (ruff rules in pyproject.toml), formatting and types (mypy over cryoal/).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest exits 5 when it collected no tests: that is a failure here, as any non-zero code.
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
