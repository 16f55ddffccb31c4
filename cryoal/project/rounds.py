"""What each ``rounds/NNN/`` folder holds, and finding the newest trained model.

A round folder ``rounds/NNN`` (N >= 1) holds, in the order they are made::

    snapshot.csv, snapshot.csv.sha256   labels the model was trained on (immutable)
    train.h5                            their subtomograms (extracted from the tomograms)
    model/                              the training run (cryoal.train: weights, metrics.json)
    round.json                          model version, snapshot hash, metrics (written last)
    suggestions.csv                     the queue this model proposed (cryoal suggest)
    scores.csv                          every scored candidate: score, pick, class, probabilities

``rounds/000`` holds only the model-free round-0 ``suggestions.csv``. ``round.json`` is
written last and atomically, so its presence means the model is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryoal.io.atomic import atomic_write_text
from cryoal.io.jsonfile import read_json
from cryoal.project.layout import (
    CONFIG_NAME,
    MODEL_INFO_NAME,
    MODEL_RUN_DIR,
    SNAPSHOT_NAME,
    round_dir,
    round_numbers,
)


@dataclass
class ModelInfo:
    """A trained round's record (``rounds/NNN/round.json``)."""

    round: int
    model_version: str
    snapshot_sha256: str
    preset: str
    class_names: list[str]
    n_train: int
    n_val: int
    created_at: str
    run_dir: str = MODEL_RUN_DIR
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The pretrained encoder the teacher started from (a folder), or None.
    encoder: str | None = None

    def run_path(self, project_root: str | os.PathLike) -> Path:
        """Absolute path of the training run folder."""
        return round_dir(project_root, self.round) / self.run_dir


def write_model_info(project_root: str | os.PathLike, info: ModelInfo) -> Path:
    """Write ``rounds/NNN/round.json`` atomically."""
    path = round_dir(project_root, info.round) / MODEL_INFO_NAME
    atomic_write_text(path, json.dumps(asdict(info), indent=2, default=str) + "\n", overwrite=True)
    return path


def read_model_info(project_root: str | os.PathLike, round: int) -> ModelInfo | None:
    """The model record of ``round``, or None when that round has no finished model."""
    path = round_dir(project_root, round) / MODEL_INFO_NAME
    if not path.is_file():
        return None
    fix = _retrain_hint(Path(project_root), round)
    data = read_json(path, fix)
    try:
        return ModelInfo(**data)
    except TypeError:  # not a mapping, or fields missing / unknown
        raise ValueError(f"{path}: damaged (not a round record); {fix}") from None


def model_run_folder(path: str | os.PathLike) -> Path:
    """The training run folder that ``path`` names: a run folder itself (``model.json``), a
    project round (``rounds/NNN``: its model), or a project (its newest trained round), so
    ``cryoal predict`` takes any of them.

    Raises
    ------
    ValueError
        A project or round without a finished model (the message says how to train one).
    """
    path = Path(path)
    if (path / "model.json").is_file() or not path.is_dir():
        return path
    if (path / MODEL_INFO_NAME).is_file() or (path / SNAPSHOT_NAME).is_file():
        root, round_ = path.parent.parent, int(path.name)
        info = read_model_info(root, round_)
        if info is None:
            raise ValueError(
                f"{path}: round {round_} has no trained model yet; train it with "
                f"'cryoal train {root}'"
            )
        return info.run_path(root)
    if (path / CONFIG_NAME).is_file():
        for round_ in reversed(round_numbers(path)):
            info = read_model_info(path, round_)
            if info is not None:
                return info.run_path(path)
        raise ValueError(f"{path}: no round has a trained model yet; run 'cryoal train {path}'")
    return path


def _retrain_hint(project_root: Path, round: int) -> str:
    """What to do about a damaged ``round.json`` of ``round``: delete it, then finish the
    round's training again from its checkpoints, unless a newer round supersedes it."""
    path = round_dir(project_root, round) / MODEL_INFO_NAME
    newer = [
        r for r in round_numbers(project_root)
        if r > round and (round_dir(project_root, r) / SNAPSHOT_NAME).exists()
    ]  # fmt: skip
    if newer:
        return (
            f"delete it (rm {path}); round {round}'s model is then no longer used, and the "
            f"newer round {newer[-1]} is unaffected"
        )
    config = round_dir(project_root, round) / MODEL_RUN_DIR / "train.yaml"
    again = f" --config {config}" if config.is_file() else ""
    return (
        f"delete it (rm {path}) and train round {round} again, from its checkpoints where "
        f"they are intact: 'cryoal train {project_root}{again}'"
    )


def trained_rounds(project_root: str | os.PathLike) -> list[ModelInfo]:
    """Model records of every trained round, oldest first."""
    infos = (read_model_info(project_root, r) for r in round_numbers(project_root))
    return [i for i in infos if i is not None]


def model_summary(project_root: str | os.PathLike, info: ModelInfo) -> str:
    """One line on a trained round's model: version, labels, validation accuracy and the
    accuracy per class (segmentation: mean Dice and Dice per class; from its
    ``model/metrics.json``), for people (the viewer after Train)."""
    head = (
        f"model version {info.model_version} (round {info.round}, {info.n_train} train / "
        f"{info.n_val} val labels)"
    )
    dice = info.metrics.get("val_teacher_mean_dice")
    acc = info.metrics.get("val_teacher_accuracy")
    if acc is None and dice is None:
        return f"{head}: no validation labels"
    per_class: dict[str, float] = {}
    path = info.run_path(project_root) / "metrics.json"
    try:
        final = json.loads(path.read_text(encoding="utf-8")).get("final") or {}
        teacher = (final.get("val") or {}).get("teacher") or {}
        if dice is not None:  # segmentation: Dice per foreground class
            per_class = {k: v for k, v in (teacher.get("dice") or {}).items()
                         if k != "background" and v is not None}  # fmt: skip
        else:
            per_class = teacher.get("per_class_accuracy") or {}
    except (OSError, ValueError):
        pass  # the line still gives the overall figure
    classes = ", ".join(
        f"{name} {value:.2f}" for name, value in per_class.items() if value == value
    )  # NaN: a class without validation labels
    what = (
        f"validation mean Dice {dice:.3f}" if dice is not None else f"validation accuracy {acc:.3f}"
    )
    return f"{head}: {what}" + (f" ({classes})" if classes else "")


def newest_model(project_root: str | os.PathLike) -> ModelInfo | None:
    """The newest trained round's record, or None before the first training."""
    infos = trained_rounds(project_root)
    return infos[-1] if infos else None
