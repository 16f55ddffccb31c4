"""The strategy registry: names, declared needs, and rankings fixed across the refactor."""

from __future__ import annotations

import re
import typing
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cryoal.al import StrategyConfig, acquire
from cryoal.al import registry as R
from cryoal.al.strategies import (
    COLD_START_STRATEGY,
    DIVERSITY_NATIVE,
    NEEDS_FEATURES,
    STRATEGIES,
    StrategyName,
)
from cryoal.models import build_model

# Picks of k=6 from store rows 10..59 (rows 0..9 labeled), seed 3, micro-batch 16, untrained
# tiny teacher (seed 1, dropout 0.3 for bald) and student (seed 2), recorded with the code
# before strategies moved into the registry (one string comparison per strategy and place).
BEFORE_REGISTRY = [
    ({"name": "kt"}, ["TS_1:0051", "TS_0:0046", "TS_1:0053", "TS_0:0006", "TS_1:0039", "TS_1:0013"]),
    ({"name": "kt-ema"}, ["TS_1:0051", "TS_0:0046", "TS_1:0053", "TS_0:0006", "TS_1:0039", "TS_1:0013"]),
    ({"name": "entropy-gradnorm"}, ["TS_1:0051", "TS_1:0025", "TS_0:0022", "TS_0:0046", "TS_1:0053", "TS_1:0011"]),
    ({"name": "expected-gradnorm"}, ["TS_1:0055", "TS_1:0025", "TS_1:0051", "TS_1:0031", "TS_0:0006", "TS_1:0053"]),
    ({"name": "pcoreset"}, ["TS_0:0054", "TS_1:0043", "TS_1:0057", "TS_1:0029", "TS_1:0027", "TS_1:0033"]),
    ({"name": "coreset"}, ["TS_1:0051", "TS_0:0046", "TS_1:0025", "TS_1:0015", "TS_0:0026", "TS_0:0002"]),
    ({"name": "badge"}, ["TS_1:0051", "TS_1:0013", "TS_0:0044", "TS_0:0002", "TS_0:0050", "TS_1:0023"]),
    ({"name": "typiclust"}, ["TS_0:0010", "TS_1:0033", "TS_1:0005", "TS_1:0001", "TS_0:0020", "TS_0:0026"]),
    # bald: recorded after its dropout masks were keyed by candidate id (cryoal.al.mc_dropout)
    ({"name": "bald"}, ["TS_1:0051", "TS_1:0053", "TS_0:0046", "TS_1:0039", "TS_0:0006", "TS_1:0013"]),
    ({"name": "entropy"}, ["TS_1:0043", "TS_1:0047", "TS_0:0012", "TS_0:0038", "TS_1:0017", "TS_1:0059"]),
    ({"name": "margin"}, ["TS_1:0033", "TS_1:0001", "TS_1:0005", "TS_1:0041", "TS_0:0054", "TS_0:0024"]),
    ({"name": "least-confidence"}, ["TS_0:0012", "TS_1:0043", "TS_0:0038", "TS_1:0047", "TS_1:0041", "TS_1:0001"]),
    ({"name": "random"}, ["TS_1:0057", "TS_0:0016", "TS_1:0045", "TS_0:0036", "TS_0:0058", "TS_1:0047"]),
    ({"gradnorm_scope": "last_layer", "name": "entropy-gradnorm"}, ["TS_1:0051", "TS_0:0046", "TS_1:0025", "TS_1:0053", "TS_1:0013", "TS_0:0006"]),
    ({"diversity_space": "student_probs", "name": "kt", "selection": "diverse"}, ["TS_1:0029", "TS_1:0019", "TS_1:0027", "TS_0:0016", "TS_0:0046", "TS_1:0009"]),
    ({"class_cap": 0.34, "name": "entropy"}, ["TS_1:0043", "TS_1:0047", "TS_0:0012", "TS_1:0059", "TS_1:0041", "TS_1:0001"]),
    ({"class_cap": 0.34, "coreset_metric": "cosine", "name": "coreset"}, ["TS_1:0009", "TS_0:0036", "TS_0:0020", "TS_1:0033", "TS_1:0037", "TS_0:0008"]),
]  # fmt: skip


@pytest.mark.parametrize(("strategy", "expected"), BEFORE_REGISTRY)
def test_picks_are_those_of_the_code_before_the_registry(noise_store, strategy, expected):
    teacher = build_model("classify", "tiny", 3, dropout=0.3 if strategy["name"] == "bald" else 0.0,
                          seed=1).eval()  # fmt: skip
    student = build_model("classify", "tiny", 3, seed=2).eval()
    a = acquire(
        strategy, teacher=teacher, student=student, store=noise_store,
        pool_indices=np.arange(10, 60), labeled_indices=np.arange(10), k=6, seed=3, batch_size=16,
    )  # fmt: skip
    assert list(a.ids) == expected


def test_every_registered_name_is_a_choice_of_the_config_and_the_parser():
    assert tuple(R.REGISTRY) == STRATEGIES == typing.get_args(StrategyName)
    assert STRATEGIES[:2] == ("kt", "kt-ema") and STRATEGIES[-1] == "random"
    for name in STRATEGIES:
        assert StrategyConfig(name=name).spec is R.REGISTRY[name]
    with pytest.raises(ValueError, match="strategies are kt, kt-ema, .*typiclust"):
        StrategyConfig.parse("nope")
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        R.get("nope")
    assert COLD_START_STRATEGY == {
        "pcoreset": "pcoreset", "coreset": "coreset", "typicality": "typiclust", "random": "random",
    }  # fmt: skip
    with pytest.raises(ValueError, match="cold_start_method"):
        StrategyConfig.parse({"name": "kt", "cold_start_method": "entropy"})


def test_declared_needs_drive_the_config():
    cfg = StrategyConfig.parse
    assert [cfg(n).student_mode for n in ("kt", "kt-ema", "pcoreset", "entropy")] == [
        "trained", "ema", "trained", "none",
    ]  # fmt: skip
    assert cfg({"name": "pcoreset", "pcoreset_source": "teacher"}).student_mode == "none"
    assert cfg({"name": "entropy", "cold_start_cycles": 1, "cold_start_method": "pcoreset"}
               ).student_mode == "trained"  # fmt: skip
    assert cfg({"name": "bald", "mc_passes": 7}).needs.mc_passes == 7
    assert cfg("entropy-gradnorm").needs.gradients == "entropy"
    last = cfg({"name": "expected-gradnorm", "gradnorm_scope": "last_layer"})
    assert last.needs.gradients is None and last.needs.features
    assert last.display_name == "expected-gradnorm+last"
    assert cfg("kt-ema").direction == "student_teacher" and cfg("kt").direction == "teacher_student"
    assert cfg("coreset").selection_space == "features"
    assert cfg({"name": "entropy", "selection": "diverse"}).selection_space == "teacher_probs"
    assert cfg("entropy").selection_space is None
    assert {"pcoreset", "coreset", "badge", "typiclust"} == DIVERSITY_NATIVE
    assert {"coreset", "badge", "typiclust"} == NEEDS_FEATURES
    with pytest.raises(ValueError, match="class_cap is not available with badge"):
        cfg({"name": "badge", "class_cap": 0.5})


def test_a_strategy_declares_one_way_to_choose_and_a_unique_name():
    with pytest.raises(ValueError, match="exactly one of score and select"):
        R.Strategy("both", "x", score=lambda c, a: a.teacher[:, 0], select=lambda c, s: s)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="registered twice"):
        R.register(R.Strategy("kt", "again", score=lambda c, a: a.teacher[:, 0]))


def test_strategy_names_live_in_the_registry_only():
    """acquire, the engine and sharded scoring read the registry; none compares names."""
    root = Path(R.__file__).parent
    quoted = re.compile("|".join(rf'"{re.escape(n)}"' for n in STRATEGIES))
    acquire_modules = sorted((root / "acquire").glob("*.py"))  # the cryoal.al.acquire package
    assert acquire_modules
    for module in (*acquire_modules, root / "engine.py", root / "shards.py"):
        assert not quoted.findall(module.read_text()), module
    # strategies.py names only its defaults (the strategy, the cold-start method) and the
    # round-0 choices (the Literal and its default), never compares a strategy name
    found = Counter(quoted.findall((root / "strategies.py").read_text()))
    assert found == {'"kt"': 1, '"random"': 3}
