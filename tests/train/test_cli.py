"""``cryoal train``: YAML config, command-line overrides, resolved train.yaml, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cryoal.cli.main import run
from cryoal.train.config import TrainConfig


def test_yaml_config_with_overrides_is_resolved_into_the_run(
    class_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        "teacher_preset: tiny\nstudent_preset: tiny\nepochs: 5\nbatch_size: 16\n"
        "tau: 2.0\nstudent: ema\n"
    )
    out = tmp_path / "run"
    code = run(["train", str(class_store), "--out", str(out), "--config", str(config),
                "--epochs", "1", "--student", "trained", "--set", "kl_direction=student_teacher",
                "--val-fraction", "0.25", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    resolved = yaml.safe_load((out / "train.yaml").read_text())
    assert resolved["epochs"] == 1  # CLI beats YAML
    assert resolved["tau"] == 2.0  # YAML beats default
    assert resolved["student"] == "trained"
    assert resolved["kl_direction"] == "student_teacher"
    assert set(resolved) == set(TrainConfig.model_fields)  # every hyper-parameter written
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1
    final = metrics["final"]["val"]
    assert {"accuracy", "macro_f1", "per_class_accuracy", "confusion_matrix"} <= set(
        final["teacher"]
    )
    assert final["n"] == 24 and 0.0 <= final["agreement"] <= 1.0
    assert "teacher" in capsys.readouterr().out
    split = (out / "split.csv").read_text().splitlines()
    assert split[0] == "id,role" and len(split) == 1 + 96


@pytest.mark.parametrize(
    ("yaml_text", "args", "message"),
    [
        ("epochs: 2\nlearning_rate: 0.1\n", [], "unknown key"),
        ("epochs: -1\n", [], "epochs"),
        ("", ["--set", "tau"], "KEY=VALUE"),
        ("", ["--student", "teacherless"], "student"),
        ("", ["--task", "segment"], "masks"),
    ],
)
def test_bad_configuration_is_one_clear_line(
    class_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture, yaml_text: str,
    args: list[str], message: str,
) -> None:  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text or "{}\n")
    out = tmp_path / "run"
    code = run(["train", str(class_store), "--out", str(out), "-c", str(config), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cryoal: error:") and message in err and err.count("\n") == 1
    assert not (out / "model.json").exists()


def test_train_requires_out_for_a_store(class_store: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", str(class_store)]) == 2
    assert "--out" in capsys.readouterr().err
