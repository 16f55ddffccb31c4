"""Every training hyper-parameter in one validated, YAML-loadable configuration.

``cryoal train`` reads a YAML file into :class:`TrainConfig`, applies command-line
overrides, and writes the resolved configuration to ``RUN/train.yaml``; the same object is
what the Python API (:func:`cryoal.train.fit.fit`) takes. Unknown keys are errors, so a typo
in a YAML file never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cryoal.io.atomic import atomic_write_text

#: Fields that do not change the numbers a run produces; they may differ on ``--resume``.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {
        "device",
        "num_workers",
        "preload_max_gb",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "predict_batch_size",
    }
)


class TrainConfig(BaseModel):
    """Joint teacher–student training configuration (methods.md §1).

    Defaults are the CPU recipe of methods.md §5/§7 (stride-2 teacher, flips, cosine decay
    to zero). The paper's GPU protocol is ``teacher_preset="resnet18"``, ``optimizer="sgd"``,
    ``lr=0.1``, ``schedule="step"``, ``step_milestones=[0.8]``, ``epochs=100``,
    ``batch_size=128``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- task and networks --------------------------------------------------------------
    task: Literal["classify", "segment"] = Field(
        "classify", description="classify subtomograms, or segment voxels (background = class 0)"
    )
    teacher_preset: str = Field("teacher", description="teacher network preset (cryoal.models)")
    student_preset: str = Field("student", description="student network preset (student=trained)")
    num_classes: int | None = Field(
        None,
        ge=2,
        description="number of outputs; default: the store's classes (+1 background for segment)",
    )
    norm: Literal["batch", "instance", "group", "syncbatch"] = Field(
        "batch",
        description="normalisation layers; under torchrun use group or instance (per sample), "
        "or syncbatch (batch statistics over all GPUs), so N processes match one",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability (MC dropout)")
    encoder: str | None = Field(
        None,
        description="folder of a pretrained encoder (cryoal pretrain) the teacher starts from "
        "instead of random weights; its preset and norm must be the teacher's",
    )
    encoder_lr_scale: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="learning rate of the pretrained encoder's layers, as a fraction of lr",
    )
    encoder_frozen: bool = Field(
        False,
        description="keep the pretrained encoder's weights and normalisation statistics as "
        "pretrained: only the teacher's head learns (a linear probe of the encoder's "
        "embedding, refit each round); needs encoder",
    )

    # -- knowledge transfer (methods.md §1) --------------------------------------------
    student: Literal["trained", "ema", "none"] = Field(
        "trained",
        description="trained: a student network learns from the teacher (KT); ema: the student "
        "is an exponential moving average of the teacher (KT-EMA); none: task-only baseline",
    )
    tau: float = Field(1.0, gt=0.0, description="softmax temperature of the transfer loss")
    kl_direction: Literal["teacher_student", "student_teacher"] = Field(
        "teacher_student", description="transfer loss KL(p_T||p_S) or KL(p_S||p_T)"
    )
    detach_teacher: bool = Field(
        True, description="stop gradients of the transfer loss into the teacher"
    )
    transfer_weight: float = Field(
        0.0,
        ge=0.0,
        description="lambda: weight of the transfer loss in the teacher's loss (needs "
        "detach_teacher: false)",
    )
    student_data: Literal["labeled", "labeled+unlabeled"] = Field(
        "labeled", description="batches the student learns from"
    )
    unlabeled_batch_size: int | None = Field(
        None, ge=1, description="unlabeled samples per step (default: batch_size)"
    )
    # -- semi-supervised (cryoal.train.semi) -------------------------------------------
    semi_supervised: Literal["none", "fixmatch"] = Field(
        "none",
        description="fixmatch: each step the teacher's confident predictions on weak views of "
        "an unlabelled batch (unlabeled_batch_size) become pseudo-labels it learns from on "
        "strong views of the same samples; the student's transfer loss reads the weak views "
        "too. Needs the unlabelled samples (the benchmark passes its pool); classification",
    )
    pseudo_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="fixmatch: confidence a pseudo-label needs"
    )
    pseudo_adaptive: bool = Field(
        False,
        description="fixmatch: FlexMatch class-adaptive thresholds (lower for classes with few "
        "confident predictions yet), with its warm-up, which keeps every threshold near 0 "
        "until a large share of the pool has been predicted confidently: meant for long "
        "schedules; false: pseudo_threshold for every class",
    )
    pseudo_weight: float = Field(
        1.0, ge=0.0, description="fixmatch: weight of the pseudo-label loss (lambda_u)"
    )
    strong_shift: int = Field(
        2, ge=0, description="fixmatch strong view: largest circular shift, voxels per axis"
    )
    strong_noise: float = Field(
        0.5,
        ge=0.0,
        description="fixmatch strong view: largest added noise std, relative to the sample's",
    )
    strong_cutout: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="fixmatch strong view: edge of a zeroed cube, as a fraction of the box",
    )
    ema_decay: float = Field(0.999, gt=0.0, lt=1.0, description="EMA student decay")
    ema_consistency_weight: float = Field(
        0.0,
        ge=0.0,
        description="student=ema: weight of an MSE consistency term between teacher and EMA "
        "probabilities in the teacher's loss (the ICIP-2022 reference used 0.03)",
    )
    ema_warmup: bool = Field(
        True,
        description="use decay min(ema_decay, (1+t)/(10+t)) at step t, so short runs are not "
        "dominated by the random initial weights (mean-teacher ramp)",
    )

    # -- optimisation -------------------------------------------------------------------
    epochs: int = Field(15, ge=1, description="passes over the labeled set")
    steps: int | None = Field(
        None,
        ge=1,
        description="train for at least this many optimizer steps, rounded up to whole epochs "
        "(replaces epochs; the same training length for every labeled-set size)",
    )
    batch_size: int = Field(32, ge=2, description="labeled samples per step")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer of both networks")
    lr: float = Field(1e-3, gt=0.0, description="peak learning rate of the teacher")
    student_lr: float | None = Field(None, gt=0.0, description="student learning rate (default lr)")
    weight_decay: float = Field(5e-4, ge=0.0, description="decoupled (adamw) or L2 (sgd) decay")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    schedule: Literal["cosine", "step", "constant"] = Field(
        "cosine", description="learning-rate schedule over all steps (cosine decays to zero)"
    )
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    step_milestones: list[float] = Field(
        default_factory=lambda: [0.8],
        description="schedule=step: fractions of training after which lr *= step_gamma",
    )
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="schedule=step: decay factor")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="cross-entropy smoothing")
    average: Literal["none", "ema"] = Field(
        "none",
        description="ema: keep an exponential moving average of each trained network's weights "
        "and use it for validation, the saved models and prediction (steadier than the last step)",
    )
    average_decay: float = Field(
        0.99,
        gt=0.0,
        lt=1.0,
        description="average=ema: decay per step, ramped as min(decay, (1+t)/(10+t)) at step t",
    )
    grad_clip: float | None = Field(None, gt=0.0, description="clip gradient norm (per network)")
    dice_weight: float = Field(1.0, ge=0.0, description="segment: weight of Dice in Dice+CE")
    ce_weight: float = Field(1.0, ge=0.0, description="segment: weight of CE in Dice+CE")

    # -- data ---------------------------------------------------------------------------
    augment: bool = Field(True, description="wedge-preserving flips and 180° rotations")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="probability of flipping each axis")
    rotate180_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="probability of a 180° rotation about y (tilt axis)"
    )
    class_balance: Literal["none", "weighted_loss", "balanced_sampler"] = Field(
        "none", description="counter class imbalance by loss weights or by resampling"
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="cryoal train: labeled fraction held out (stratified) for validation",
    )
    seed: int = Field(0, description="seed of initialisation, order, augmentation and split")

    # -- runtime ------------------------------------------------------------------------
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        "off",
        description="mixed precision: bf16 autocast, fp16 autocast with a gradient scaler (CUDA), "
        "auto (CUDA: bf16 where the GPU supports it, else fp16; CPU: off) or off (float32)",
    )
    channels_last: bool = Field(False, description="channels_last_3d memory format")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    preload_max_gb: float = Field(
        2.0, ge=0.0, description="hold the training subtomograms in memory up to this size"
    )
    checkpoint_every_steps: int = Field(
        0, ge=0, description="also checkpoint every N steps (0: at the end of each epoch only)"
    )
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept")
    predict_batch_size: int = Field(64, ge=1, description="batch size of evaluation")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_bool(cls, value: Any) -> Any:
        # configs written before amp took a mode said true / false
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.transfer_weight > 0 and self.detach_teacher:
            raise ValueError(
                f"transfer_weight {self.transfer_weight} > 0 lets the transfer loss train the "
                "teacher; set detach_teacher: false as well (or transfer_weight: 0)"
            )
        if self.semi_supervised != "none" and self.task != "classify":
            raise ValueError(
                f"semi_supervised {self.semi_supervised} trains classifiers; train "
                f"task {self.task} with semi_supervised: none"
            )
        if self.encoder_frozen and self.encoder is None:
            raise ValueError(
                "encoder_frozen: true freezes a pretrained encoder; set encoder (a folder "
                "written by cryoal pretrain) or encoder_frozen: false"
            )
        if any(not 0.0 < m < 1.0 for m in self.step_milestones):
            raise ValueError(
                f"step_milestones {self.step_milestones} must be fractions of training in (0, 1)"
            )
        return self

    # -- I/O ----------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        """Load a YAML mapping of field names to values (missing fields keep defaults).

        Raises
        ------
        FileNotFoundError, ValueError
            Missing file, not a mapping, unknown key or invalid value (one line naming it).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training config not found; check the path")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping of key: value")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Validate a mapping; errors become one ``ValueError`` line naming key and value."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"{source}: {one_line_errors(exc)}") from None

    def updated(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` applied (``None`` values are ignored) and re-validated."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(data, source="options")

    def to_yaml(self) -> str:
        """The full configuration as YAML (every field, documented order)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def write_yaml(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_yaml` atomically."""
        atomic_write_text(path, self.to_yaml(), overwrite=True)

    def training_hash(self) -> str:
        """SHA-256 of the fields that change the numbers (all but :data:`RUNTIME_FIELDS`)."""
        data = {k: v for k, v in self.model_dump(mode="json").items() if k not in RUNTIME_FIELDS}
        # fields added later hash only when set, so older checkpoints keep resuming
        for key, default in _HASHED_WHEN_SET.items():
            if data.get(key) == default:
                data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


#: Fields added after checkpoints were first written, with the defaults that leave them out
#: of :meth:`TrainConfig.training_hash`.
_HASHED_WHEN_SET: dict[str, Any] = {
    "steps": None,
    "average": "none",
    "average_decay": 0.99,
    "encoder": None,
    "encoder_lr_scale": 1.0,
    "encoder_frozen": False,
    "semi_supervised": "none",
    "pseudo_threshold": 0.95,
    "pseudo_adaptive": False,
    "pseudo_weight": 1.0,
    "strong_shift": 2,
    "strong_noise": 0.5,
    "strong_cutout": 0.5,
}


def one_line_errors(exc: ValidationError, docs: str = "docs/training.md") -> str:
    """A pydantic validation error as one line: ``key: message (got value)`` per error;
    an unknown key points to ``docs``, where the valid ones are listed."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # a check across fields: the message names the fields itself
            parts.append(msg)
            continue
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; valid keys are listed in {docs} ({loc}={err['input']!r})"
            parts.append(msg)
            continue
        parts.append(
            f"{loc}: {msg} (got {err.get('input')!r})" if "input" in err else f"{loc}: {msg}"
        )
    return "; ".join(parts)
