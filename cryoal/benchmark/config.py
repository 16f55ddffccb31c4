"""The label-efficiency benchmark's configuration: data, strategies, schedule, presets.

A :class:`BenchmarkConfig` is a preset (:func:`preset_config`), updated by a YAML file,
updated by command-line overrides (:func:`load_benchmark_config`).
"""

from __future__ import annotations

import copy
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

from cryoal.al.engine import Schedule
from cryoal.al.strategies import StrategyConfig, recipe_or_name
from cryoal.pretrain.config import PretrainConfig
from cryoal.train.config import TrainConfig

PRESETS: tuple[str, ...] = ("smoke", "cpu", "paper", "smoke-seg", "cpu-seg")

#: Environment variable naming a folder of template maps for the ``cpu`` preset.
TEMPLATES_ENV = "CRYOAL_TEMPLATES"


class TomogramsConfig(BaseModel):
    """Crops around the particles of simulated tomograms (the segmentation benchmark's data).

    ``count`` tomograms are simulated (:func:`cryoal.sim.tomograms.simulate_tomogram`,
    particles placed at random without overlap, ``particles`` of them per tomogram: raise it
    towards the packing limit for crowding); one crop of ``data.box`` voxels is cut around
    every particle, its mask the matching crop of ``labels.mrc``, so neighbours that reach
    into the box are in the mask too. The last ``test`` tomograms are the test set.
    """

    model_config = ConfigDict(extra="forbid")

    count: int = Field(10, ge=2, description="tomograms simulated")
    test: int = Field(
        2, ge=1, description="the last of them held out: their crops are the test set"
    )
    shape_zyx: tuple[int, int, int] = Field((48, 128, 128), description="tomogram shape, voxels")
    particles: int = Field(40, ge=1, description="particles per tomogram (crowding)")
    min_gap_voxels: float = Field(1.0, ge=0.0, description="least gap between particle supports")
    membranes: dict[str, Any] | None = Field(
        None,
        description="MembraneParams fields (cryoal.sim.membranes) of the simulated membranes; "
        "null: no membranes",
    )

    @model_validator(mode="after")
    def _test_leaves_a_pool(self) -> TomogramsConfig:
        if self.test >= self.count:
            raise ValueError(
                f"test {self.test} of count {self.count} tomograms leaves no pool; hold out fewer"
            )
        return self


#: DataConfig keys of a subtomogram simulation or store that a tomogram simulation does
#: not read (its pool and test set are the crops of whole tomograms).
_SUBTOMOGRAM_ONLY = ("per_class", "test_size", "pool_size", "pool_imbalance", "halves")


class DataConfig(BaseModel):
    """The dataset: an existing labelled store, or a simulation to run once (subtomograms,
    or with ``tomograms`` crops of simulated tomograms)."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(None, description="existing labelled HDF5 store (skips simulation)")
    templates: str | None = Field(
        None, description="folder of template maps/models; null = generated phantoms"
    )
    n_classes: int | None = Field(None, ge=2, description="classes (phantoms / first N templates)")
    per_class: int = Field(300, ge=1, description="simulated samples per class")
    box: int = Field(32, ge=8, description="subtomogram edge, voxels")
    voxel_size_A: float = Field(10.0, gt=0, description="voxel size, Å")
    snr: float = Field(0.1, gt=0, description="signal-to-noise ratio")
    tilt_range: tuple[float, float] = Field((-60.0, 60.0), description="tilt range, degrees")
    seed: int = Field(0, description="seed of the simulation and of the pool/test split")
    test_size: int | float = Field(1000, description="held-out test samples (count or fraction)")
    pool_size: int | None = Field(None, ge=1, description="unlabeled pool size (default: the rest)")
    pool_imbalance: float = Field(
        1.0,
        ge=1.0,
        description="ratio of the pool's most to least frequent class, shares falling "
        "exponentially with the class index (long-tailed, like real tomograms); 1 = balanced. "
        "The test set keeps the store's proportions (balanced for a simulation)",
    )
    halves: bool = Field(
        False,
        description="also simulate two half reconstructions per sample (two noise draws "
        "whose mean is the sample, like odd/even half tomograms); pretraining then makes its "
        "two views from them. The samples themselves are the same as without",
    )
    tomograms: TomogramsConfig | None = Field(
        None,
        description="simulate tomograms and cut crops with masks around their particles "
        "(the segmentation benchmark) instead of single subtomograms",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.tomograms is None:
            return self
        if self.store is not None:
            raise ValueError("data.store and data.tomograms are both set; keep one of them")
        # set to another value than the default (a resolved benchmark.yaml lists every key)
        unused = [
            k
            for k in _SUBTOMOGRAM_ONLY
            if k in self.model_fields_set and getattr(self, k) != type(self).model_fields[k].default
        ]
        if unused:
            raise ValueError(
                f"data.{unused[0]} does not apply to data.tomograms (the pool and the test set "
                "are the crops of whole tomograms: set tomograms.count and tomograms.test); "
                f"remove data.{unused[0]}"
            )
        return self


class BenchmarkStrategy(StrategyConfig):
    """A strategy plus optional training overrides for its runs (e.g. dropout for BALD)."""

    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig overrides")
    pretrained: bool = Field(
        False,
        description="the teacher of every cycle starts from the encoder pretrained on the pool "
        "(self-supervised, once per pool; settings in the benchmark's pretrain key)",
    )
    evaluate: Literal["teacher", "student"] = Field(
        "teacher",
        description="whose test accuracy the runs record: the teacher's, or the trained "
        "student's (an ActiveKD arm, where the student is the model kept)",
    )


class BenchmarkConfig(Schedule):
    """Everything one benchmark needs (YAML: these keys, all optional over a preset)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("custom", description="preset the configuration started from")
    data: DataConfig = Field(default_factory=DataConfig)
    strategies: list[BenchmarkStrategy] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    warm_start: bool = Field(False, description="warm-start each cycle from the previous one")
    warm_start_steps: int | None = Field(
        None,
        ge=1,
        description="warm_start: optimizer steps of each warm-started cycle; default: train.steps",
    )
    stratified_initial: bool = Field(
        True,
        description="round 0: a class-stratified random sample of the pool (the same for every "
        "strategy with the same seed); false: a plain random sample",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: dict[str, Any] = Field(
        default_factory=dict,
        description="PretrainConfig overrides of the pool's pretraining (for pretrained "
        "strategies); preset and norm default to the teacher's",
    )
    batch_size: int = Field(64, ge=1, description="scoring batch size")
    device: str = Field("cpu", description="cpu, cuda or auto")
    comparisons: list[tuple[str, str]] = Field(
        default_factory=list,
        description="[strategy, reference] label pairs the summary compares, paired by seed "
        "(default: every strategy against random)",
    )

    @field_validator("strategies", mode="before")
    @classmethod
    def _names_to_configs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [recipe_or_name(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _one_task(self) -> BenchmarkConfig:
        for s in self.strategies:
            if "task" in s.train:
                raise ValueError(
                    f"strategy {s.display_name!r} sets train.task; every arm has the "
                    "benchmark's task: set train.task once, outside the strategies"
                )
            if s.train.get("encoder_frozen") and not s.pretrained:
                raise ValueError(
                    f"strategy {s.display_name!r} sets train.encoder_frozen without an encoder; "
                    "add pretrained: true (the encoder pretrained on the pool)"
                )
        if self.task == "segment" and self.data.store is None and self.data.tomograms is None:
            raise ValueError(
                "train.task segment needs crops with masks: set data.tomograms (simulated "
                "tomograms, e.g. {count: 10, test: 2}) or data.store (a store with /masks)"
            )
        return self

    @property
    def task(self) -> str:
        """``classify`` or ``segment``: the one place that decides is ``train.task``."""
        return self.train.task

    def schedule_text(self) -> str:
        """The labelling schedule in words, for reports."""
        if self.budgets is not None:
            return f"labelled-set sizes {', '.join(str(b) for b in self.budgets)}"
        return f"initial {self.initial}, +{self.per_cycle} per cycle, {self.n_cycles} cycles"

    def pretrain_config(self) -> PretrainConfig:
        """The pool's pretraining: the teacher's preset and norm, then ``pretrain``."""
        base: dict[str, Any] = {
            "preset": self.train.teacher_preset,
            "norm": "batch" if self.train.norm == "syncbatch" else self.train.norm,
            "device": self.device,
        }
        return PretrainConfig.from_dict({**base, **self.pretrain}, source="benchmark pretrain")

    def labels(self) -> list[str]:
        """Display names of the strategies (unique)."""
        names = [s.display_name for s in self.strategies]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"strategies {sorted(dup)} appear twice; give them distinct 'label's")
        unknown = [n for pair in self.comparisons for n in pair if n not in names]
        if unknown:
            raise ValueError(
                f"comparisons name {unknown[0]!r}, which is not a strategy label; labels are "
                f"{', '.join(names)}"
            )
        return names


# --------------------------------------------------------------------------- presets
#: The ``cpu`` preset's arms: random against the recipes of the label-efficiency study
#: (:data:`cryoal.al.registry.RECIPES`), BADGE, and ``kt`` with the diversity stage and the
#: class cap, its student as large as the teacher and tau 2 in training and scoring.
CPU_STRATEGIES: list[str | dict[str, Any]] = [
    "random", "margin+div+cap", "typiclust-cold+margin+div+cap", "badge", "margin+stoch+cap",
    {"name": "kt", "selection": "diverse", "class_cap": 0.2, "label": "kt-eq-tau2+div+cap",
     "train": {"student_preset": "teacher", "tau": 2.0}},
]  # fmt: skip


#: The ``cpu-seg`` preset's arms: random, foreground-aware random (crops drawn in
#: proportion to the teacher's predicted foreground), KT-MSE reduced by the voxel mean, by
#: the foreground-weighted mean and by the mean of the top 10 % of voxels, entropy and
#: entropy-gradnorm (methods.md §9).
SEG_STRATEGIES: list[str | dict[str, Any]] = [
    "random", "random_foreground",
    {"name": "kt", "seg_reduction": "mean", "label": "kt-mean"},
    {"name": "kt", "seg_reduction": "foreground", "label": "kt-foreground"},
    {"name": "kt", "seg_reduction": "top_quantile", "seg_quantile": 0.9, "label": "kt-top10"},
    "entropy", "entropy-gradnorm",
]  # fmt: skip


def _default_templates() -> str | None:
    env = os.environ.get(TEMPLATES_ENV)
    if env:
        return env
    repo_shared = Path(__file__).resolve().parents[2].parent / "shared" / "structures" / "maps_10A"
    return str(repo_shared) if repo_shared.is_dir() else None


def preset_config(name: str) -> dict[str, Any]:
    """The configuration mapping of a named preset (``smoke``, ``cpu`` or ``paper``).

    * ``smoke`` — 4 phantom classes, 24^3, SNR 1, a pool of 120 and a test set of 120;
      16 -> 48 labels over 3 cycles; tiny networks, 40 epochs at lr 0.01, batch 8; random,
      kt and entropy-gradnorm, 2 seeds. About a minute on 2 cores. The final test accuracy
      ends well above chance (0.25): 0.8–0.95 on the preset's data.
    * ``cpu`` — the label-efficiency protocol on 2 CPU cores: 10 template maps
      (``--templates``, ``$CRYOAL_TEMPLATES`` or the repository's shared maps), 32^3, SNR 0.1,
      ±60° wedge, pool 2,000, test 3,000; a class-stratified initial 100 shared by every
      strategy of a seed, +100 per cycle, 6 cycles (100 -> 600); the stride-2 teacher and
      student trained from scratch for a fixed 500 optimizer steps at every budget, batch 32,
      class-balanced sampling, evaluated with EMA-averaged weights; the arms of
      :data:`CPU_STRATEGIES`, 5 paired seeds.
    * ``smoke-seg`` — the segmentation benchmark in seconds: 3 simulated tomograms of
      32×96×96 voxels (2 pool, 1 test) with 12 phantom particles of 3 classes each, SNR 1,
      24^3 crops; 4 -> 12 crops over 3 cycles; tiny U-Nets, 8 optimizer steps of batch 4;
      random and kt, 2 seeds.
    * ``cpu-seg`` — the segmentation label-efficiency protocol on 2 CPU cores: 10 tomograms
      of 64×128×128 voxels at 10 Å (8 pool, 2 test) with 22 particles each of the first 4
      template maps, a vesicle and a curved membrane sheet (30 % of the particles against a
      membrane; 5 foreground classes with the membrane), SNR 0.1, ±60° wedge, 32^3 crops
      around the particles (176 pool, 44 test); labelled-set sizes 10, 20, 40, 60, 80, 100
      crops; a ``student``-sized U-Net teacher and a ``tiny`` student, 800 optimizer steps
      of batch 8 at lr 0.003 at every budget; the arms of :data:`SEG_STRATEGIES`, 5 paired
      seeds. Calibrated on random (one seed, one thread beside other jobs): with 300 steps
      the test mean Dice was flat (0.345 / 0.308 / 0.312 at 20 / 80 / 176 crops), with 800
      it rises from 0.406 at 20 crops to 0.579 at 80 and stays there at 176 (0.569; worst
      class 0.175 / 0.366 / 0.420, membrane 0.73–0.79), so the budgets up to 100 crops
      cover the part of the curve where strategies can differ; 243–377 s per cycle.
    * ``paper`` — methods.md §5 (GPU): 50 classes (phantoms unless ``--templates``) at SNR
      0.05, 24,000 pool + 1,000 test, 3D ResNet-18 with SGD 0.1, 100 epochs, step at 80 %,
      batch 128, a random 12,000 of the pool scored, every strategy, 3 seeds.
    """
    if name == "smoke":
        return {
            "preset": "smoke",
            "data": {"templates": None, "n_classes": 4, "per_class": 60, "box": 24, "snr": 1.0,
                     "test_size": 120, "seed": 0},
            "strategies": ["random", "kt", "entropy-gradnorm"],
            "seeds": [0, 1],
            "initial": 16, "per_cycle": 16, "n_cycles": 3,
            "train": {"teacher_preset": "tiny", "student_preset": "tiny", "epochs": 40,
                      "batch_size": 8, "lr": 0.01},
            "batch_size": 32,
        }  # fmt: skip
    if name == "cpu":
        return {
            "preset": "cpu",
            "data": {"templates": _default_templates(), "per_class": 500, "box": 32, "snr": 0.1,
                     "test_size": 3000, "pool_size": 2000, "seed": 0},
            "strategies": CPU_STRATEGIES,
            "seeds": [0, 1, 2, 3, 4],
            "initial": 100, "per_cycle": 100, "n_cycles": 6,
            "train": {"teacher_preset": "teacher", "student_preset": "student", "steps": 500,
                      "batch_size": 32, "class_balance": "balanced_sampler", "average": "ema"},
            "batch_size": 64,
        }  # fmt: skip
    if name == "paper":
        sub = {"subset_size": 12000}
        return {
            "preset": "paper",
            "data": {"templates": None, "n_classes": 50, "per_class": 500, "box": 32,
                     "snr": 0.05, "test_size": 1000, "seed": 0},
            "strategies": [
                {"name": "random"}, {"name": "entropy", **sub}, {"name": "margin", **sub},
                {"name": "least-confidence", **sub},
                {"name": "bald", **sub, "train": {"dropout": 0.3}},
                {"name": "coreset", **sub}, {"name": "badge", **sub}, {"name": "kt", **sub},
                {"name": "kt-ema", **sub}, {"name": "entropy-gradnorm", **sub},
                {"name": "expected-gradnorm", **sub}, {"name": "pcoreset", **sub},
            ],
            "seeds": [0, 1, 2],
            "initial": 0.1, "per_cycle": 0.05, "n_cycles": 7,
            "train": {"teacher_preset": "resnet18", "student_preset": "student",
                      "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                      "epochs": 100, "schedule": "step", "step_milestones": [0.8],
                      "batch_size": 128, "device": "auto", "amp": True},
            "batch_size": 256, "device": "auto",
        }  # fmt: skip
    if name == "smoke-seg":
        return {
            "preset": "smoke-seg",
            "data": {"templates": None, "n_classes": 3, "box": 24, "snr": 1.0, "seed": 0,
                     "tomograms": {"count": 3, "test": 1, "shape_zyx": [32, 96, 96],
                                   "particles": 12}},
            "strategies": ["random", "kt"],
            "seeds": [0, 1],
            "initial": 4, "per_cycle": 4, "n_cycles": 3,
            "train": {"task": "segment", "teacher_preset": "tiny", "student_preset": "tiny",
                      "steps": 8, "batch_size": 4, "lr": 0.01},
            "batch_size": 16,
        }  # fmt: skip
    if name == "cpu-seg":
        return {
            "preset": "cpu-seg",
            "data": {"templates": _default_templates(), "n_classes": 4, "box": 32, "snr": 0.1,
                     "seed": 0,
                     "tomograms": {"count": 10, "test": 2, "shape_zyx": [64, 128, 128],
                                   "particles": 22,
                                   "membranes": {"vesicles": 1, "sheets": 1,
                                                 "vesicle_radius_A": [150.0, 300.0]}}},
            "strategies": SEG_STRATEGIES,
            "seeds": [0, 1, 2, 3, 4],
            "budgets": [10, 20, 40, 60, 80, 100],
            "train": {"task": "segment", "teacher_preset": "student", "student_preset": "tiny",
                      "steps": 800, "batch_size": 8, "lr": 0.003, "average": "ema"},
            "batch_size": 32,
        }  # fmt: skip
    raise ValueError(f"unknown benchmark preset {name!r}; choose one of {', '.join(PRESETS)}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key in ("data", "train") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_benchmark_config(
    preset: str | None = None,
    config_path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> BenchmarkConfig:
    """A preset, updated by a YAML file, updated by ``overrides`` (``data``/``train`` merge).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, bad YAML, unknown key or invalid value (one line naming it).
    """
    data: dict[str, Any] = preset_config(preset) if preset else {}
    source = f"preset {preset}" if preset else "benchmark config"
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: benchmark config not found; check the path")
        try:
            extra = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
        if not isinstance(extra, dict):
            raise ValueError(f"{path}: a benchmark config must be a YAML mapping")
        data = _merge(data, extra)
        source = str(path)
    data = _merge(data, overrides or {})
    try:
        cfg = BenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ValueError(
            f"{source}: {loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
        ) from None
    if not cfg.strategies:
        raise ValueError(f"{source}: no strategies given; list them under 'strategies:'")
    cfg.labels()
    return cfg
