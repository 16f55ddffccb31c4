"""A cryoal project folder as layers: its tomograms and their candidates in Å.

A plain reader: it reads ``project.yaml`` and the label store once and returns layer data
tuples (no Qt, no napari). The labelling widget builds its queue on top of these layers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoal_napari._layers import LayerData, points_layer
from cryoal_napari._tomogram import read_tomogram


def read_project(path: str | os.PathLike, multiscale_bytes: int | None = None) -> list[LayerData]:
    """Every tomogram of a project as an image, and its candidates as points in Å.

    For each tomogram (in ``project.yaml`` order; only the first one visible): the image
    layer named by the tomogram id, then a Points layer ``candidates <tomo id>`` whose
    features are ``candidate_id``, ``tomo_id``, ``label`` (the current label: a class
    name, ``unsure``, ``not-a-particle``, or "" when unlabelled), ``rank`` and ``score``
    in the newest round's queue (-1 and NaN when not suggested), coloured by label with
    the colours of ``project.yaml``. Point diameter: the project's box.

    ``multiscale_bytes`` is passed to :func:`~cryoal_napari._tomogram.read_tomogram`.

    Raises
    ------
    FileNotFoundError, ValueError
        Not a project, or a tomogram file that cannot be opened.
    """
    from cryoal.project.project import Project

    root = Path(path)
    with Project.open(root) as project:
        config = project.config
        store = project.labels
        candidates = store.candidates()
        current = store.current_labels()
        queue = store.queue(include_labelled=True)
        latest = store.latest_round()
        paths = {t.id: project.tomogram_path(t.id) for t in config.tomograms}
    colours = {c.name: c.colour for c in config.classes}
    label_of = {
        str(cid): (str(name) if kind == "class" else str(kind))
        for cid, kind, name in zip(
            current["candidate_id"], current["kind"], current["class_name"], strict=True
        )
    }
    rank_of = {str(c): int(r) for c, r in zip(queue["candidate_id"], queue["rank"], strict=True)}
    score_of = {
        str(c): float(s) if s is not None else float("nan")
        for c, s in zip(queue["candidate_id"], queue["score"], strict=True)
    }
    layers: list[LayerData] = []
    for k, spec in enumerate(config.tomograms):
        data, kwargs, kind = read_tomogram(paths[spec.id], multiscale_bytes=multiscale_bytes)
        kwargs["name"] = spec.id
        kwargs["visible"] = k == 0
        kwargs["metadata"]["cryoal"].update(tomo_id=spec.id, project=str(root.resolve()))
        layers.append((data, kwargs, kind))
        rows = candidates[candidates["tomo_id"] == spec.id]
        ids = rows["candidate_id"].astype(str).tolist()
        vs = spec.voxel_size_A
        features: dict[str, list[Any]] = {
            "candidate_id": ids,
            "tomo_id": [spec.id] * len(ids),
            "label": [label_of.get(i, "") for i in ids],
            "rank": [rank_of.get(i, -1) for i in ids],
            "score": [score_of.get(i, float("nan")) for i in ids],
        }
        points = points_layer(
            rows[["z", "y", "x"]].to_numpy(np.float64) * vs,
            features,
            name=f"candidates {spec.id}",
            label_column="label",
            colours=colours,
            size_A=config.box * vs,
            voxel_size_A=vs,
            metadata={
                "kind": "candidates",
                "project": str(root.resolve()),
                "tomo_id": spec.id,
                "voxel_size_A": vs,
                "round": latest,
                "class_colours": colours,
            },
        )
        points[1]["visible"] = k == 0
        layers.append(points)
    return layers
