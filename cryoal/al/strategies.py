"""Strategy configuration: which heuristic, and how a batch is chosen from its scores.

A :class:`StrategyConfig` names one acquisition strategy (methods.md §1–4) and the
options every strategy can combine with (methods.md §7): a random pre-subset of the pool,
stochastic batch acquisition, a top-M diversity stage, a per-class cap and a cold start.
It is a pydantic model, so it loads from YAML/JSON and rejects unknown keys. What each
strategy needs and how it scores is declared once, in :mod:`cryoal.al.registry`; the names
accepted here are the registry's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cryoal.al.registry import RECIPES, REGISTRY, Needs, Strategy, cold_start_strategies

#: Every strategy name, in the order the docs list them (the registry's order).
STRATEGIES: tuple[str, ...] = tuple(REGISTRY)

if TYPE_CHECKING:
    StrategyName = str
else:
    #: ``Literal`` of every registered name (pydantic and the CLI parser offer these choices).
    StrategyName = Literal[STRATEGIES]

#: ``cold_start_method`` -> the strategy it runs (declared by the strategies).
COLD_START_STRATEGY: dict[str, str] = cold_start_strategies()

if TYPE_CHECKING:
    ColdStartMethod = str
else:
    ColdStartMethod = Literal[tuple(COLD_START_STRATEGY)]


class StrategyConfig(BaseModel):
    """One acquisition strategy and its options (defaults first, as in methods.md).

    Scores are always "higher = more informative"; ties are broken by candidate id.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: StrategyName = Field("kt", description="acquisition strategy")
    label: str | None = Field(
        None, description="display name in benchmark tables (default: derived from the options)"
    )

    # -- teacher–student distance (§1) -------------------------------------------------
    tau: float | None = Field(
        None,
        gt=0.0,
        description="kt: softmax temperature of the score (default: the training's transfer "
        "temperature, 1 when unknown)",
    )
    kl_direction: Literal["teacher_student", "student_teacher"] | None = Field(
        None,
        description="kt: KL(p_T||p_S) or KL(p_S||p_T) (default: the training's direction, "
        "KL(p_T||p_S) when unknown); kt-ema default KL(p_EMA||p_T)",
    )

    # -- gradient norm (§2) --------------------------------------------------------------
    gradnorm_scope: Literal["all", "last_layer"] = Field(
        "all", description="gradnorm: all trainable parameters (released code) or the last layer"
    )
    gradnorm_norm: Literal["sum_of_tensor_norms", "global"] = Field(
        "sum_of_tensor_norms",
        description="gradnorm: sum of per-tensor L2 norms (released code) or the global L2 norm",
    )

    # -- coresets (§3, §4) ---------------------------------------------------------------
    pcoreset_source: Literal["student", "teacher"] = Field(
        "student", description="pcoreset: whose probabilities span the space"
    )
    coreset_metric: Literal["l2", "cosine"] = Field(
        "l2", description="coreset, typiclust: feature distance"
    )

    # -- typicality (TypiClust) ------------------------------------------------------------
    typicality_neighbors: int = Field(
        20,
        ge=1,
        description="typiclust: K of typicality = 1 / mean distance to the K nearest "
        "neighbours in the cluster (capped by the cluster size)",
    )
    typicality_max_clusters: int = Field(
        500,
        ge=1,
        description="typiclust: at most this many k-means clusters (n_labeled + k otherwise); "
        "when fewer than k, clusters are visited again round-robin",
    )

    # -- BALD ------------------------------------------------------------------------------
    mc_passes: int = Field(10, ge=2, description="bald: MC-dropout passes T")

    # -- segmentation ----------------------------------------------------------------------
    seg_reduction: Literal["mean", "max", "top_quantile", "foreground"] = Field(
        "mean",
        description="segmentation: voxel scores -> one score per subtomogram (foreground: "
        "the mean of score x the teacher's foreground probability)",
    )
    seg_quantile: float = Field(0.9, ge=0.0, lt=1.0, description="top_quantile reduction: q")

    # -- pool and batch (§7) ---------------------------------------------------------------
    subset_size: int | float | None = Field(
        None,
        description="random pre-subset of the unlabeled pool before scoring: a count, a "
        "fraction in (0, 1], or null for the whole pool",
    )
    selection: Literal["top_k", "stochastic", "diverse"] = Field(
        "top_k",
        description="score-based strategies: top-k, stochastic (p ∝ weight(score)), or "
        "diverse (top-M by score, then k-center / k-means++)",
    )
    beta: float = Field(1.0, ge=0.0, description="stochastic: exponent / inverse temperature")
    weighting: Literal["power", "softmax", "rank"] = Field(
        "power", description="stochastic: score^beta, exp(beta*score) or rank^-beta"
    )
    diversity_factor: float = Field(4.0, ge=1.0, description="diverse: M = factor * k candidates")
    diversity_method: Literal["kcenter", "kmeanspp"] = Field(
        "kcenter", description="diverse: selector applied to the top-M"
    )
    diversity_space: Literal["teacher_probs", "student_probs", "features"] = Field(
        "teacher_probs", description="diverse: space of the k-center / k-means++ distances"
    )
    class_cap: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="at most ceil(class_cap * k) picks per predicted class (relaxed if needed)",
    )
    explore: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of each batch (at least one pick when > 0) chosen by TypiClust in "
        "feature space (the encoder's with embedding: encoder) among the clusters that hold "
        "no labelled or already picked sample, so regions the model never predicts, such as "
        "a rare class it has no label of, still get labels; the rest by the strategy",
    )

    # -- the embedding of feature-space steps -------------------------------------------
    embedding: Literal["teacher", "encoder", "auto"] = Field(
        "teacher",
        description="features read by feature-space steps (diversity_space features, "
        "coreset, typiclust, the typicality cold start, round0 typical): the trained "
        "teacher's penultimate features, the frozen self-supervised encoder the teacher "
        "started from (needs a training with an encoder; the same space in every round), or "
        "auto: the encoder when the training started from one, else the teacher's",
    )
    round0: Literal["random", "typical"] = Field(
        "random",
        description="engine: round 0 without a model: a random draw, or TypiClust in the "
        "frozen encoder's embedding (typical: needs a training with an encoder)",
    )

    # -- cold start (§7) -------------------------------------------------------------------
    cold_start_cycles: int = Field(
        0, ge=0, description="engine: the first N acquisitions use cold_start_method"
    )
    cold_start_margin: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="engine: keep the cold start until the teacher's accuracy on the last "
        "cold-start batch exceeds chance + margin (checked after cold_start_cycles)",
    )
    cold_start_method: ColdStartMethod = Field(
        "random",
        description="engine: strategy used during the cold start (typicality = the typiclust "
        "strategy: the most typical sample of each of the largest k-means clusters of the "
        "teacher's features that hold no labeled sample)",
    )

    @model_validator(mode="after")
    def _check(self) -> StrategyConfig:
        if isinstance(self.subset_size, float) and not 0.0 < self.subset_size <= 1.0:
            raise ValueError(f"subset_size {self.subset_size} as a fraction must be in (0, 1]")
        if isinstance(self.subset_size, int) and self.subset_size <= 0:
            raise ValueError(f"subset_size {self.subset_size} must be a positive count")
        spec = self.spec
        if self.explore and (spec.native or not self.needs.model):
            raise ValueError(
                f"explore is for strategies ranked by a score; {self.name} chooses its batch "
                "itself (use typiclust or coreset on their own)"
            )
        if self.class_cap is not None and not spec.class_cap:
            raise ValueError(f"class_cap is not available with {self.name} ({spec.no_cap_reason})")
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def spec(self) -> Strategy:
        """The registered :class:`~cryoal.al.registry.Strategy` of ``name``."""
        return REGISTRY[self.name]

    @property
    def needs(self) -> Needs:
        """What the strategy needs from the models under these options."""
        return self.spec.needs_for(self)

    @property
    def direction(self) -> str:
        """KL direction actually used."""
        if self.kl_direction is not None:
            return self.kl_direction
        return self.spec.kl_direction

    @property
    def score_tau(self) -> float:
        """Temperature actually used by the ``kt`` score."""
        return 1.0 if self.tau is None else float(self.tau)

    def linked_to_training(self, tau: float, direction: str) -> StrategyConfig:
        """This strategy with the ``kt`` score's temperature and KL direction taken from the
        training that made the models (the distance the student was trained to minimise).

        Options set explicitly are kept; one that differs from the training's is reported
        with a ``UserWarning``, because the score then ranks by another distance than the
        one the student learnt. Only ``kt`` is linked (an EMA student is not trained on a
        distance).
        """
        if not self.spec.linked_to_training:
            return self
        for option, mine, theirs in (
            ("tau", self.tau, float(tau)),
            ("kl_direction", self.kl_direction, direction),
        ):
            if mine is not None and mine != theirs:
                warnings.warn(
                    f"strategy {self.name}: {option}={mine} differs from the training's "
                    f"{option}={theirs}; the score ranks by another distance than the student "
                    f"learnt (leave {option} unset to use the training's)",
                    UserWarning,
                    stacklevel=2,
                )
        return self.model_copy(
            update={
                "tau": float(tau) if self.tau is None else self.tau,
                "kl_direction": direction if self.kl_direction is None else self.kl_direction,
            }
        )

    @property
    def student_mode(self) -> Literal["trained", "ema", "none"]:
        """The ``TrainConfig.student`` setting this strategy needs (its own, that of its
        selection space, then that of its cold start)."""
        needs = self.needs
        if needs.student != "none":
            return needs.student
        if needs.space == "student_probs":
            return "trained"
        if self.selection == "diverse" and self.diversity_space == "student_probs":
            return "trained"
        if self.cold_start_cycles > 0 or self.cold_start_margin is not None:
            return self.cold_start_strategy().student_mode
        return "none"

    @property
    def selection_space(self) -> str | None:
        """The space selection computes points in: the native selector's, the diversity
        stage's (``selection: diverse``), or None."""
        if self.spec.native:
            return self.needs.space
        return self.diversity_space if self.selection == "diverse" else None

    def cold_start_strategy(self) -> StrategyConfig:
        """The strategy the engine runs during the cold start (``cold_start_method``), with
        this strategy's pre-subset and the options of the cold-start method."""
        return StrategyConfig(
            name=COLD_START_STRATEGY[self.cold_start_method],
            embedding=self.embedding,
            subset_size=self.subset_size,
            pcoreset_source=self.pcoreset_source,
            coreset_metric=self.coreset_metric,
            typicality_neighbors=self.typicality_neighbors,
            typicality_max_clusters=self.typicality_max_clusters,
        )

    @property
    def needs_student(self) -> bool:
        return self.student_mode != "none"

    @property
    def display_name(self) -> str:
        """Short name for tables: the label, or the name plus non-default options."""
        if self.label:
            return self.label
        parts = [self.name]
        if self.subset_size is not None:
            parts.append(f"sub{self.subset_size}")
        if not self.spec.native:
            if self.selection == "stochastic":
                parts.append(f"stoch-{self.weighting}{self.beta:g}")
            elif self.selection == "diverse":
                parts.append(f"div-{self.diversity_method}-{self.diversity_space}")
        if self.class_cap is not None:
            parts.append(f"cap{self.class_cap:g}")
        if self.explore:
            parts.append(f"explore{self.explore:g}")
        if self.cold_start_cycles or self.cold_start_margin is not None:
            parts.append(f"cold-{self.cold_start_method}")
        if self.round0 == "typical":
            parts.append(f"round0-{self.round0}")
        if self.embedding != "teacher":
            parts.append(f"in-{self.embedding}")
        if self.spec.label_parts is not None:
            parts.extend(self.spec.label_parts(self))
        return "+".join(parts)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | StrategyConfig) -> StrategyConfig:
        """A config from a strategy name, a mapping of options, or a config (returned as is).

        Raises
        ------
        ValueError
            Unknown strategy or option (one line naming it).
        """
        if isinstance(value, StrategyConfig):
            return value
        data = recipe_or_name(value) if isinstance(value, str) else dict(value)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            msgs = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "strategy"
                msgs.append(
                    f"{loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
                )
            raise ValueError(
                f"invalid strategy {data.get('name', value)!r}: {'; '.join(msgs)}; strategies are "
                f"{', '.join(STRATEGIES)}; recipes are {', '.join(RECIPES)}"
            ) from None


def recipe_or_name(value: str) -> dict[str, Any]:
    """The options of recipe ``value`` (labelled with its name), or ``{"name": value}``."""
    if value in RECIPES:
        return {**RECIPES[value], "label": value}
    return {"name": value}


def _with_defaults(test: Callable[[StrategyConfig], bool]) -> frozenset[str]:
    return frozenset(n for n in STRATEGIES if test(StrategyConfig(name=n)))


#: Strategies whose batch comes from a diversity selector rather than from scores (with
#: their default options).
DIVERSITY_NATIVE: frozenset[str] = _with_defaults(lambda c: c.spec.native and c.needs.model)

#: Native selectors that read the teacher's penultimate features (with default options).
NEEDS_FEATURES: frozenset[str] = _with_defaults(
    lambda c: c.spec.native and (c.needs.space == "features" or "features" in c.needs.keep)
)
