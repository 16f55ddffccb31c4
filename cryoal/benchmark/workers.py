"""Worker processes of ``--jobs N``: spawned, one torch thread each unless told otherwise."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def _one_thread() -> None:
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes (configurations go to them as plain JSON data);
    each uses one torch thread unless ``OMP_NUM_THREADS`` is set."""
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=_one_thread
    )
