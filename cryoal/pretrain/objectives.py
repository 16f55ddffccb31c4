"""The self-supervised objectives and the projection head they train through.

* ``ntxent`` — SimCLR's normalised-temperature cross-entropy (Chen et al. 2020): each view's
  positive is the other view of its sample, the other ``2B - 2`` views of the batch are its
  negatives. MONAI's :class:`monai.losses.ContrastiveLoss` computes it.
* ``vicreg`` — Bardes, Ponce & LeCun (ICLR 2022): no negatives; the loss is
  ``25 · invariance + 25 · variance + 1 · covariance`` with

      invariance = mean ||z1 - z2||^2
      variance   = mean_d relu(1 - sqrt(Var(z_d) + 1e-4))       (per view, summed)
      covariance = sum_{i != j} Cov(z)_ij^2 / D                  (per view, summed)

  the coefficients of the paper. Neither MONAI nor torch ships it; the formula is short
  enough that cryoal writes it here rather than adding a library that brings torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss
from torch import nn


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, objective: str) -> nn.Module:
    """The MLP between the encoder's features ``(B, in_dim)`` and the loss ``(B, out_dim)``.

    Two layers for ``ntxent`` (SimCLR), three for ``vicreg`` (its expander), batch norm and
    ReLU between them.
    """
    layers: list[nn.Module] = [
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
    ]
    if objective == "vicreg":
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(True)]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    *,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
) -> torch.Tensor:
    """VICReg loss of two views' projections ``(B, D)`` (the paper's coefficients)."""
    inv = F.mse_loss(z1, z2)
    var = z1.new_zeros(())
    cov = z1.new_zeros(())
    b, d = z1.shape
    for z in (z1, z2):
        zc = z - z.mean(dim=0)
        std = torch.sqrt(zc.var(dim=0) + 1e-4)
        var = var + F.relu(1.0 - std).mean()
        c = (zc.T @ zc) / max(1, b - 1)
        off = c - torch.diag(torch.diag(c))
        cov = cov + off.pow(2).sum() / d
    return sim_weight * inv + var_weight * var + cov_weight * cov


class Objective(nn.Module):
    """``loss(z1, z2)`` for the configured objective; ``z`` are projections ``(B, D)``."""

    def __init__(self, objective: str, temperature: float = 0.2) -> None:
        super().__init__()
        if objective not in ("ntxent", "vicreg"):
            raise ValueError(f"objective {objective!r} is not known; use ntxent or vicreg")
        self.objective = objective
        self.ntxent = ContrastiveLoss(temperature=temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if self.objective == "ntxent":
            return self.ntxent(z1, z2)
        return vicreg_loss(z1, z2)
