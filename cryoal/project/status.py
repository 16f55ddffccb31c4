"""``cryoal status``: where a project stands (counts, rounds, models)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cryoal.project.layout import MODEL_RUN_DIR, round_dir
from cryoal.project.project import Project
from cryoal.project.rounds import ModelInfo, trained_rounds
from cryoal.project.snapshot import snapshot_rounds


@dataclass
class ProjectStatus:
    """A project's state.

    Attributes
    ----------
    counts
        Current labels per class, ``unsure``, ``not-a-particle``, ``unlabelled`` and
        ``candidates`` (total).
    tomograms
        Per tomogram: tomo_id, candidates, labelled, unlabelled.
    rounds
        Per suggestion round: round, strategy, model_version, suggested, answered, labels.
    snapshots
        Rounds that have a snapshot.
    interrupted
        Snapshot rounds whose training started (a model folder) but never finished (no
        ``round.json``): a killed job; ``cryoal train DIR`` resumes it.
    models
        Model records of trained rounds, oldest first.
    """

    name: str
    voxel_size_A: float | None
    box: int
    class_names: list[str]
    counts: dict[str, int]
    tomograms: pd.DataFrame
    rounds: pd.DataFrame
    snapshots: list[int]
    models: list[ModelInfo]
    interrupted: list[int]

    @property
    def latest_model(self) -> ModelInfo | None:
        return self.models[-1] if self.models else None


def project_status(project: Project) -> ProjectStatus:
    """Collect the status of an open project (read-only)."""
    store = project.labels
    with store.consistent_read():
        counts = store.counts()
        candidates = store.candidates()
        labelled = store.current_labels()
        rounds = store.round_progress()
    snapshots = snapshot_rounds(project.root)
    models = trained_rounds(project.root)
    trained = {m.round for m in models}
    per_tomo = []
    for t in project.config.tomograms:
        n = int((candidates["tomo_id"] == t.id).sum())
        k = int((labelled["tomo_id"] == t.id).sum())
        per_tomo.append({"tomo_id": t.id, "candidates": n, "labelled": k, "unlabelled": n - k})
    return ProjectStatus(
        name=project.config.name,
        voxel_size_A=project.config.voxel_size_A,
        box=project.config.box,
        class_names=project.config.class_names,
        counts=counts,
        tomograms=pd.DataFrame(
            per_tomo, columns=["tomo_id", "candidates", "labelled", "unlabelled"]
        ),
        rounds=rounds,
        snapshots=snapshots,
        models=models,
        interrupted=[
            r for r in snapshots
            if r not in trained and (round_dir(project.root, r) / MODEL_RUN_DIR).is_dir()
        ],
    )  # fmt: skip
