"""The acquisition strategies, one declaration each, registered by name.

A :class:`Strategy` declares what it needs from the models (:class:`Needs`: a teacher, a
trained or EMA student, penultimate features, MC-dropout passes, exact gradient norms) and
how it chooses, in one of two ways:

* a **score** function from one micro-batch of collected arrays (:class:`BatchArrays`) to
  one score per candidate (higher = more informative). :func:`cryoal.al.acquire.acquire`
  then combines the scores with any selection of :class:`~cryoal.al.strategies.
  StrategyConfig` (top-k, stochastic, diverse, per-class cap, random pre-subset);
* a **native selector** that chooses the batch itself from the candidates' points
  (:class:`SelectInputs`): k-center (``coreset``, ``pcoreset``), k-means++ (``badge``),
  typicality clusters (``typiclust``), or uniform draws (``random``, which needs no model).

:data:`REGISTRY` maps every name to its strategy, in the order the docs list them;
``StrategyConfig``, ``acquire``, ``score_candidates`` and ``select_scored`` read it, so a new
strategy is one :func:`register` call in this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cryoal.al import heuristics as H
from cryoal.al import selectors as sel

if TYPE_CHECKING:
    from cryoal.al.strategies import StrategyConfig

Space = Literal["teacher_probs", "student_probs", "features"]
StudentMode = Literal["trained", "ema", "none"]


@dataclass(frozen=True)
class Needs:
    """What a strategy needs from the models, for one configuration.

    Attributes
    ----------
    model
        A trained teacher (False only for ``random``).
    student
        ``"trained"`` (``TrainConfig.student: trained``), ``"ema"`` or ``"none"``.
    features
        The score reads the teacher's penultimate features of each micro-batch.
    mc_passes
        MC-dropout passes of the teacher (0: one deterministic pass); the teacher must have
        dropout.
    gradients
        Exact all-parameter gradient norms of this surrogate loss (``"entropy"`` or
        ``"expected"``), which need a backward pass; None: no gradients.
    space
        Native selectors: the space they choose in (the candidates' and the labeled set's
        points are computed in it).
    keep
        Further per-candidate arrays a native selector reads: ``"teacher_logits"``,
        ``"features"``.
    """

    model: bool = True
    student: StudentMode = "none"
    features: bool = False
    mc_passes: int = 0
    gradients: Literal["entropy", "expected"] | None = None
    space: Space | None = None
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BatchArrays:
    """One micro-batch of model outputs, as a score function receives it.

    Attributes
    ----------
    teacher
        ``(b, C)`` teacher logits; ``(b, C, T)`` with ``T`` MC-dropout passes;
        ``(b, C, *spatial)`` for segmentation.
    student
        Student logits of the same shape (without ``T``), when the strategy needs a student.
    features
        ``(b, F)`` teacher penultimate features, when ``Needs.features``.
    gradnorms
        ``(b,)`` exact gradient norms, when ``Needs.gradients``.
    head_bias
        Whether the teacher's final linear layer has a bias.
    """

    teacher: np.ndarray
    student: np.ndarray | None = None
    features: np.ndarray | None = None
    gradnorms: np.ndarray | None = None
    head_bias: bool = True


@dataclass(frozen=True)
class SelectInputs:
    """What a native selector chooses from (candidates sorted by id).

    Attributes
    ----------
    ids
        ``(n,)`` candidate ids.
    k
        Batch size.
    seed
        Selection seed.
    points
        Returns the ``(n, D)`` candidate points in ``Needs.space``.
    centres
        Returns the labeled set's ``(M, D)`` points in ``Needs.space`` (None if unlabeled).
    teacher_logits, features
        ``(n, C)`` / ``(n, F)`` per-candidate arrays kept for ``Needs.keep``.
    predicted
        ``(n,)`` the teacher's predicted class (-1 without a model).
    cap
        Most picks per predicted class, or None.
    """

    ids: np.ndarray
    k: int
    seed: int
    points: Callable[[], np.ndarray]
    centres: Callable[[], np.ndarray | None]
    teacher_logits: np.ndarray | None
    features: np.ndarray | None
    predicted: np.ndarray
    cap: int | None


#: ``(positions in pick order, the picks' scores, a score per candidate or NaN)``.
Selected = tuple[np.ndarray, np.ndarray, np.ndarray]
ScoreFn = Callable[["StrategyConfig", BatchArrays], np.ndarray]
SelectFn = Callable[["StrategyConfig", SelectInputs], Selected]


@dataclass(frozen=True)
class Strategy:
    """One acquisition strategy.

    Attributes
    ----------
    name
        Registry name (``StrategyConfig.name``).
    summary
        One line: what it scores or how it selects.
    needs
        :class:`Needs`, or a function of the configuration returning them.
    score
        Per-batch score function (score-based strategies), or None.
    select
        Native selector, or None.
    class_cap
        Whether ``class_cap`` applies; when not, ``no_cap_reason`` says why.
    kl_direction
        Default KL direction of a teacher–student score.
    linked_to_training
        The score is the distance the student was trained on, so its ``tau`` and KL
        direction follow the training's (``StrategyConfig.linked_to_training``).
    label_parts
        Extra parts of the display name for non-default options.
    cold_start
        The ``cold_start_method`` value that runs this strategy during the engine's cold
        start, or None if it is not offered there.
    """

    name: str
    summary: str
    needs: Needs | Callable[[StrategyConfig], Needs] = field(default_factory=Needs)
    score: ScoreFn | None = None
    select: SelectFn | None = None
    class_cap: bool = True
    no_cap_reason: str = ""
    kl_direction: H.KLDirection = "teacher_student"
    linked_to_training: bool = False
    label_parts: Callable[[StrategyConfig], list[str]] | None = None
    cold_start: str | None = None

    def __post_init__(self) -> None:
        if (self.score is None) == (self.select is None):
            raise ValueError(f"strategy {self.name!r}: give exactly one of score and select")

    def needs_for(self, cfg: StrategyConfig) -> Needs:
        """The needs under configuration ``cfg``."""
        return self.needs(cfg) if callable(self.needs) else self.needs

    @property
    def native(self) -> bool:
        """Chooses its batch itself (selection options other than the cap do not apply)."""
        return self.select is not None


#: Every strategy by name, in the order the docs list them.
REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to :data:`REGISTRY` (names are unique)."""
    if strategy.name in REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is registered twice")
    REGISTRY[strategy.name] = strategy
    return strategy


def cold_start_strategies() -> dict[str, str]:
    """``cold_start_method`` value -> strategy name, for every strategy offered there."""
    return {s.cold_start: n for n, s in REGISTRY.items() if s.cold_start is not None}


def get(name: str) -> Strategy:
    """The registered strategy ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; strategies are {', '.join(REGISTRY)}"
        ) from None


# --------------------------------------------------------------------------- scores
def _red(cfg: StrategyConfig) -> dict:
    return {"reduction": cfg.seg_reduction, "quantile": cfg.seg_quantile}


def _kt(cfg: StrategyConfig, a: BatchArrays) -> np.ndarray:
    if a.student is None:
        raise ValueError(f"strategy {cfg.name!r} needs student logits")
    return H.kt(a.teacher, a.student, tau=cfg.score_tau, direction=cfg.direction, **_red(cfg))  # type: ignore[arg-type]


def _probs_score(fn: Callable[..., np.ndarray]) -> ScoreFn:
    def score(cfg: StrategyConfig, a: BatchArrays) -> np.ndarray:
        return fn(H.softmax(a.teacher, axis=1), **_red(cfg))

    return score


def _gradnorm(surrogate: Literal["entropy", "expected"]) -> tuple[ScoreFn, Callable]:
    def needs(cfg: StrategyConfig) -> Needs:
        if cfg.gradnorm_scope == "all":
            return Needs(gradients=surrogate)
        return Needs(features=True)

    def score(cfg: StrategyConfig, a: BatchArrays) -> np.ndarray:
        if a.gradnorms is not None:
            return a.gradnorms
        if a.features is None or a.teacher.ndim != 2:
            raise ValueError(
                "gradnorm with scope last_layer needs a classifier (features and a Linear head)"
            )
        from cryoal.al import gradnorm as gn

        return gn.last_layer_gradnorm(
            H.softmax(a.teacher, 1),
            a.features,
            surrogate=surrogate,
            norm=cfg.gradnorm_norm,
            bias=a.head_bias,
        )

    return score, needs


def _gradnorm_label(cfg: StrategyConfig) -> list[str]:
    return ["last"] if cfg.gradnorm_scope == "last_layer" else []


# --------------------------------------------------------------------------- selectors
def _random(cfg: StrategyConfig, s: SelectInputs) -> Selected:
    scores = H.random_scores(s.ids.size, s.seed)  # candidates are in id order
    pos = sel.top_k(s.ids, scores, s.k)
    return pos, scores[pos], scores


def _kcenter(cfg: StrategyConfig, s: SelectInputs) -> Selected:
    metric = cfg.coreset_metric if cfg.name == "coreset" else "l2"
    pos, dist = sel.kcenter_greedy(
        s.points(),
        s.k,
        s.ids,
        centres=s.centres(),
        metric=metric,
        seed=s.seed,
        groups=s.predicted if s.cap else None,
        cap=s.cap,
    )
    scores = np.full(s.ids.size, np.nan)
    scores[pos] = dist
    return pos, dist, scores


def _badge(cfg: StrategyConfig, s: SelectInputs) -> Selected:
    if s.teacher_logits is None or s.teacher_logits.ndim != 2 or s.features is None:
        raise ValueError("badge needs a classifier (features and class probabilities)")
    p = H.softmax(s.teacher_logits.astype(np.float64), 1)
    g = p - np.eye(p.shape[1])[p.argmax(1)]
    points = sel.OuterProductPoints(g, s.features)
    pos = sel.kmeanspp(points, s.k, s.ids, seed=s.seed)
    scores = np.sqrt(points.sq_norms())
    return pos, scores[pos], scores


def _typiclust(cfg: StrategyConfig, s: SelectInputs) -> Selected:
    pos, typ = sel.typiclust(
        s.points(),
        s.k,
        s.ids,
        labeled=s.centres(),
        metric=cfg.coreset_metric,
        seed=s.seed,
        n_neighbors=cfg.typicality_neighbors,
        max_clusters=cfg.typicality_max_clusters,
    )
    scores = np.full(s.ids.size, np.nan)
    scores[pos] = typ
    return pos, typ, scores


def _pcoreset_needs(cfg: StrategyConfig) -> Needs:
    return Needs(space="student_probs" if cfg.pcoreset_source == "student" else "teacher_probs")


# --------------------------------------------------------------------------- the strategies
_entropy_gn, _entropy_gn_needs = _gradnorm("entropy")
_expected_gn, _expected_gn_needs = _gradnorm("expected")

register(Strategy(
    "kt", "tau² KL(p_T ‖ p_S) between the teacher and a trained student (methods.md §1)",
    needs=Needs(student="trained"), score=_kt, linked_to_training=True,
))  # fmt: skip
register(Strategy(
    "kt-ema", "KL(p_EMA ‖ p_T), the student being an EMA of the teacher",
    needs=Needs(student="ema"), score=_kt, kl_direction="student_teacher",
))  # fmt: skip
register(Strategy(
    "entropy-gradnorm", "‖∇θ H(p)‖ with p not detached (methods.md §2)",
    needs=_entropy_gn_needs, score=_entropy_gn, label_parts=_gradnorm_label,
))  # fmt: skip
register(Strategy(
    "expected-gradnorm", "Σ_c p_c ‖∇θ CE(f(x), c)‖ (norm inside the expectation)",
    needs=_expected_gn_needs, score=_expected_gn, label_parts=_gradnorm_label,
))  # fmt: skip
register(Strategy(
    "pcoreset", "greedy k-center in the student's (or teacher's) probability simplex",
    needs=_pcoreset_needs, select=_kcenter, cold_start="pcoreset",
))  # fmt: skip
register(Strategy(
    "coreset", "greedy k-center on the teacher's penultimate features",
    needs=Needs(space="features"), select=_kcenter, cold_start="coreset",
))  # fmt: skip
register(Strategy(
    "badge", "k-means++ seeding on gradient embeddings (p − onehot(argmax p)) ⊗ h",
    needs=Needs(keep=frozenset({"teacher_logits", "features"})), select=_badge,
    class_cap=False, no_cap_reason="k-means++ sampling",
))  # fmt: skip
register(Strategy(
    "typiclust",
    "TypiClust: the most typical sample of each of the largest k-means clusters of the "
    "teacher's features that hold no labeled sample",
    needs=Needs(space="features"), select=_typiclust,
    class_cap=False, no_cap_reason="its clusters spread the batch", cold_start="typicality",
))  # fmt: skip
register(Strategy(
    "bald", "mutual information over MC-dropout passes",
    needs=lambda cfg: Needs(mc_passes=cfg.mc_passes),
    score=lambda cfg, a: H.bald(H.softmax(a.teacher, axis=1), **_red(cfg)),
))  # fmt: skip
register(Strategy("entropy", "−Σ p log p", score=_probs_score(H.entropy)))
register(Strategy("margin", "1 − (p₁ − p₂)", score=_probs_score(H.margin)))
register(Strategy("least-confidence", "1 − max p", score=_probs_score(H.least_confidence)))
register(Strategy(
    "foreground-fraction",
    "mean predicted foreground probability of the crop, 1 − p_background (segmentation); "
    "the weight of random_foreground",
    score=lambda cfg, a: H.foreground(H.softmax(a.teacher, axis=1)),
))  # fmt: skip
register(Strategy(
    "random", "uniform", needs=Needs(model=False), select=_random, cold_start="random",
))  # fmt: skip


#: Named recipes: a strategy together with the options the label-efficiency study
#: (``cryoal benchmark --preset cpu``) measured, usable wherever a strategy name is
#: (``cryoal suggest --strategy NAME``, ``defaults.strategy`` in project.yaml, benchmark
#: configs). The recipe's name becomes its display label.
RECIPES: dict[str, dict[str, Any]] = {
    "margin+div+cap": {"name": "margin", "selection": "diverse", "class_cap": 0.2},
    # the label-efficiency study's A1 with exploration: the diversity stage in the pretrained
    # encoder's embedding (the teacher's features without one), a fifth of each batch by
    # TypiClust among the clusters without a label (projects' default)
    "margin+div-emb+cap+explore": {
        "name": "margin",
        "selection": "diverse",
        "diversity_space": "features",
        "embedding": "auto",
        "class_cap": 0.2,
        "explore": 0.2,
    },
    "margin+stoch+cap": {
        "name": "margin",
        "selection": "stochastic",
        "weighting": "power",
        "beta": 1.0,
        "class_cap": 0.2,
    },
    # random sampling weighted by the predicted foreground (segmentation; nnActive's
    # strongest baseline): p(pick) ∝ foreground fraction, without replacement
    "random_foreground": {
        "name": "foreground-fraction",
        "selection": "stochastic",
        "weighting": "power",
        "beta": 1.0,
    },
    "typiclust-cold+margin+div+cap": {
        "name": "margin",
        "selection": "diverse",
        "class_cap": 0.2,
        "cold_start_cycles": 2,
        "cold_start_method": "typicality",
    },
}
