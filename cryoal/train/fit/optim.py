"""Optimisers, learning-rate schedules and exponential moving averages.

The optimiser is AdamW or SGD with momentum (``config.optimizer``). The learning-rate
factor rises linearly over ``warmup_steps``, then follows ``schedule``: cosine decay to
zero, step decay by ``step_gamma`` after each fraction ``step_milestones`` of training, or
constant. :func:`ema_update` moves an averaged copy of a network towards it (the EMA
student, ``student: ema``, and the averaged networks, ``average: ema``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cryoal.train.config import TrainConfig


def _lr_factor(config: TrainConfig, total_steps: int):
    warm = config.warmup_steps
    milestones = [m * total_steps for m in config.step_milestones]

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if config.schedule == "cosine":
            progress = (step - warm) / max(1, total_steps - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if config.schedule == "step":
            return config.step_gamma ** sum(step >= m for m in milestones)
        return 1.0

    return factor


def _optimizer(config: TrainConfig, params: Any, lr: float) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)
