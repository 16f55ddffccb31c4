"""Warm start of a run's networks from a previous run (``fit(..., init=...)``).

The previous run is a :class:`~cryoal.train.fit.result.FitResult`, a
:class:`~cryoal.train.checkpoint.LoadedRun` or a run folder; its teacher (and student) must
have the same network as the new one, or a one-line ``ValueError`` says what differs.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from cryoal.train.checkpoint import LoadedRun, load_run
from cryoal.train.fit.result import FitResult


def _init_from(init: Any) -> tuple[nn.Module, nn.Module | None]:
    if isinstance(init, FitResult | LoadedRun):
        return init.teacher, init.student
    if isinstance(init, str | os.PathLike):
        run = load_run(init)
        return run.teacher, run.student
    raise ValueError(
        f"init must be a FitResult, a LoadedRun or a run folder; got {type(init).__name__}"
    )


def _warm_start(model: nn.Module, source: nn.Module, what: str) -> None:
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(
            f"warm start of the {what} failed: the previous run's network differs "
            f"({first[1].strip() if len(first) > 1 else first[0]}); use the same preset, norm "
            "and classes, or train from scratch"
        ) from None
