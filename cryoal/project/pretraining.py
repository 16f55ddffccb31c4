"""``cryoal pretrain DIR``: pretrain the teacher's encoder on every candidate of a project.

The pool is the project's candidate store (``cache/candidates-*.h5``, every candidate,
labelled or not; :func:`cryoal.project.extraction.candidate_store`). The encoder lands in
``cache/encoders/<key>/``, keyed by the pool's content and the settings, and
``cache/encoders/current.json`` names it, so ``cryoal train DIR`` starts the teacher from
it. Adding tomograms or candidates later leaves the current encoder in use (it was learnt
from an earlier pool) until ``cryoal pretrain DIR`` runs again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from cryoal.io.atomic import atomic_write_text
from cryoal.pretrain.config import PretrainConfig
from cryoal.pretrain.encoder import Encoder, is_encoder, load_encoder
from cryoal.pretrain.run import PretrainCallback, pretrain_cached
from cryoal.progress import CountCallback
from cryoal.project.layout import CACHE_DIR, CURRENT_ENCODER_NAME, ENCODERS_DIR
from cryoal.project.project import Project

log = logging.getLogger(__name__)


def encoders_dir(project: Project) -> Path:
    """``PROJECT/cache/encoders``."""
    return project.root / CACHE_DIR / ENCODERS_DIR


def project_pretrain_config(
    project: Project, overrides: dict[str, Any] | None = None
) -> PretrainConfig:
    """``defaults.pretrain`` over the teacher's preset, norm and device, then ``overrides``."""
    from cryoal.train.config import TrainConfig

    train = TrainConfig.from_dict(
        project.config.defaults.train, source="project.yaml defaults.train"
    )
    base: dict[str, Any] = {
        "preset": train.teacher_preset,
        "norm": "batch" if train.norm == "syncbatch" else train.norm,
        "device": train.device,
        "seed": project.config.defaults.seed,
    }
    base.update(project.config.defaults.pretrain)
    cfg = PretrainConfig.from_dict(base, source="project.yaml defaults.pretrain")
    return cfg.updated(**(overrides or {}))


def pretrain_project(
    project: Project | str | os.PathLike,
    *,
    overrides: dict[str, Any] | None = None,
    progress: CountCallback | None = None,
    callback: PretrainCallback | None = None,
    table: pd.DataFrame | None = None,
) -> Encoder:
    """Pretrain (or resume, or reuse) the encoder of the project's candidates and make it
    the one training starts from.

    Parameters
    ----------
    project
        An open project or its folder.
    overrides
        :class:`~cryoal.pretrain.config.PretrainConfig` fields (CLI options).
    progress
        Called with the number of candidates extracted into the candidate store.
    callback
        Called with every :class:`~cryoal.pretrain.run.PretrainEvent`.
    table
        The candidate table to pretrain on (a round's frozen ``candidates.csv``, so that a
        training job never opens the label store); default: the label store's.
    """
    from cryoal.project.extraction import candidate_store

    if not isinstance(project, Project):
        project = Project.open(project, check_labels=False)
    cfg = project_pretrain_config(project, overrides)
    store = candidate_store(project, progress=progress, table=table)
    enc = pretrain_cached(cfg, store, None, encoders_dir(project), callback=callback)
    pointer = {"encoder": enc.path.name, "n_candidates": enc.info["n_samples"]}
    atomic_write_text(encoders_dir(project) / CURRENT_ENCODER_NAME, json.dumps(pointer, indent=1))
    log.info("project encoder: %s", enc.path)
    return enc


def current_encoder(project: Project) -> Encoder | None:
    """The encoder ``cryoal pretrain DIR`` made current, or None when there is none.

    Raises
    ------
    ValueError
        ``current.json`` names an encoder that is missing or damaged (the fix is in the
        message).
    """
    pointer = encoders_dir(project) / CURRENT_ENCODER_NAME
    if not pointer.is_file():
        return None
    try:
        name = str(json.loads(pointer.read_text(encoding="utf-8"))["encoder"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"{pointer}: unreadable; delete it and run 'cryoal pretrain {project.root}' again"
        ) from None
    folder = encoders_dir(project) / name
    if not is_encoder(folder):
        raise ValueError(
            f"{pointer}: names encoder {name}, which is missing or unfinished; run "
            f"'cryoal pretrain {project.root}' again"
        )
    return load_encoder(folder)
