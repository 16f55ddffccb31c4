"""Every pretraining hyper-parameter in one validated configuration."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cryoal.train.config import one_line_errors

#: Fields that do not change the weights a run produces; they may differ on resume.
RUNTIME_FIELDS: frozenset[str] = frozenset({"device", "preload_max_gb", "keep_checkpoints"})
#: Fields whose effect depends on the pool and is hashed with it (the pool's hash covers
#: its half pairs exactly when they are used), so a pool without half pairs keeps the
#: encoder it had before the field existed.
POOL_FIELDS: frozenset[str] = frozenset({"noise_pairs"})


class PretrainConfig(BaseModel):
    """Self-supervised pretraining of the teacher's encoder (methods.md §8).

    The encoder is the classification preset's network without its head; a projection head
    (a small MLP) is trained with it and discarded. Views keep the missing wedge in place
    (see :mod:`cryoal.pretrain.views`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: str = Field("teacher", description="classification preset whose encoder is learnt")
    norm: Literal["batch", "instance", "group"] = Field(
        "batch", description="normalisation layers (the teacher's must match to fine-tune)"
    )
    objective: Literal["ntxent", "vicreg"] = Field(
        "ntxent",
        description="ntxent: contrastive (SimCLR's NT-Xent, MONAI ContrastiveLoss); vicreg: "
        "variance-invariance-covariance, no negatives",
    )
    # 60: fine-tuned accuracy at 100 labels +0.051 [+0.022, +0.079] over 30 epochs, paired
    # (benchmarks/results/pretrain_length.md); 21 min for a 2,000 pool on 2 cores
    epochs: int = Field(60, ge=1, description="passes over the pool")
    batch_size: int = Field(64, ge=4, description="samples per step (two views each)")
    lr: float = Field(2e-3, gt=0.0, description="peak AdamW learning rate (cosine to zero)")
    weight_decay: float = Field(1e-4, ge=0.0, description="AdamW decoupled weight decay")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up steps")
    temperature: float = Field(0.2, gt=0.0, description="ntxent: softmax temperature")
    projection_dim: int = Field(128, ge=8, description="output width of the projection head")
    hidden_dim: int = Field(256, ge=8, description="hidden width of the projection head")
    max_shift: int = Field(2, ge=0, description="views: random shift per axis, voxels")
    noise_std: float = Field(
        0.5, ge=0.0, description="views: extra Gaussian noise, up to this x the sample's std"
    )
    flip: bool = Field(True, description="views: wedge-safe flips and 180° rotations about y")
    noise_pairs: bool = Field(
        True,
        description="views: when the store holds half pairs (odd/even half tomograms, or two "
        "simulated noise draws), the two views of a sample come from its two halves",
    )
    seed: int = Field(0, description="seed of initialisation, order and views")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    amp: Literal["auto", "bf16", "off"] = Field(
        "off", description="mixed precision: bf16 autocast (auto: on CUDA where supported)"
    )
    preload_max_gb: float = Field(
        2.0, ge=0.0, description="hold the pool in memory up to this size; above, stream it"
    )
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "pretrain config") -> PretrainConfig:
        """Validate a mapping; errors become one ``ValueError`` line naming key and value."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"{source}: {one_line_errors(exc, 'docs/pretraining.md')}") from None

    def updated(self, **overrides: Any) -> PretrainConfig:
        """A copy with ``overrides`` applied (``None`` values are ignored), re-validated."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(data, source="options")

    def training_hash(self) -> str:
        """SHA-256 of the fields that change the weights on any pool (all but
        :data:`RUNTIME_FIELDS` and :data:`POOL_FIELDS`)."""
        skip = RUNTIME_FIELDS | POOL_FIELDS
        data = {k: v for k, v in self.model_dump(mode="json").items() if k not in skip}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
