#!/usr/bin/env bash
# Create ./.venv with torch 2.13.0 installed first and pinned, then cryoal with EXTRAS.
# Usage: bash scripts/setup.sh [EXTRAS]      (default: test, which includes napari and the
# GUI test tools; the system libraries they need come from scripts/setup_gui.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
python="${PYTHON:-python3}"

gui=0
case ",${extras}," in *,test,*|*,napari,*|*,dev,*) gui=1 ;; esac
if [ "$gui" = 1 ]; then
    # napari's Qt and the GUI tests (under Xvfb) need a few system libraries on Linux
    bash scripts/setup_gui.sh
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# torch first, pinned: an unpinned torch/monai in an empty venv pulls a newer torch with
# several GB of CUDA wheels. On a GPU machine the same pin resolves to the CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
PIP_CONSTRAINT="$PWD/constraints.txt" .venv/bin/python -m pip install --quiet \
    --disable-pip-version-check -e ".[${extras}]"
if [ "$gui" = 1 ]; then
    bash scripts/setup_gui.sh --check
fi
.venv/bin/python -c "import torch, cryoal; print(f'cryoal {cryoal.__version__} ready (torch {torch.__version__})')"
