"""The kt score's temperature and KL direction follow the training that made the models."""

from __future__ import annotations

import warnings

import pytest

from cryoal.al.strategies import StrategyConfig


def test_kt_takes_the_training_tau_and_direction_when_unset() -> None:
    linked = StrategyConfig(name="kt").linked_to_training(2.0, "student_teacher")
    assert linked.score_tau == 2.0 and linked.direction == "student_teacher"
    assert StrategyConfig(name="kt").score_tau == 1.0  # no training known: tau 1


def test_an_explicit_option_that_differs_from_training_is_kept_and_warned() -> None:
    with pytest.warns(UserWarning, match="tau=1.0 differs from the training's tau=2.0"):
        linked = StrategyConfig(name="kt", tau=1.0).linked_to_training(2.0, "teacher_student")
    assert linked.score_tau == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same values: no warning
        StrategyConfig(name="kt", tau=2.0).linked_to_training(2.0, "teacher_student")


def test_other_strategies_are_not_linked() -> None:
    ema = StrategyConfig(name="kt-ema")
    assert ema.linked_to_training(2.0, "teacher_student") is ema
    assert ema.direction == "student_teacher"
