"""Projects: configuration, the live label store, snapshots, candidates, the labelling loop.

A project is a folder (``project.yaml``, ``labels.sqlite``, ``candidates.csv``,
``rounds/NNN/``); see ``docs/projects.md``. The napari plugin and the CLI both call
``Project`` and ``LabelStore``.
"""

from __future__ import annotations

from cryoal.project.config import SPECIAL_LABELS, ProjectConfig, load_config
from cryoal.project.labels import Label, LabelStore
from cryoal.project.project import Project

__all__ = ["SPECIAL_LABELS", "Label", "LabelStore", "Project", "ProjectConfig", "load_config"]
