#!/usr/bin/env bash
# Set up ./.venv (test extras) and run the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# One OpenMP thread per process: the suite starts several processes at once (kill/resume,
# torchrun, workers), and two spinning threads each on 2 cores slow everything down.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# pytest exits 5 when it collected no tests: that is a failure here, as any non-zero code.
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
