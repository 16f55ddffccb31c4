"""What the labelling widget shows, computed without Qt: the crop view's pixels, the
current candidate's line, the 3D box's edges, the 3D view's projection and contrast, and
the epochs a Train job will run.

The widget (:mod:`cryoal_napari._widget`) only puts these on screen; everything here is
tested without a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cryoal.project.session import Candidate

#: Width (pixels) of the crop view's three slices side by side.
CROP_WIDTH = 360
#: Pixels between the three slices of the crop view.
CROP_GAP = 2


def crop_zoom(box: int) -> int:
    """Screen pixels per voxel so that three slices of ``box`` voxels fit ``CROP_WIDTH``."""
    return max(1, CROP_WIDTH // (3 * box + 2 * CROP_GAP))


def contrast(slices: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """1st-99.5th percentile of the three slices: the particle's own contrast."""
    values = np.concatenate([s[np.isfinite(s)].ravel() for s in slices.values()])
    lo, hi = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def projection_display(volume: np.ndarray, polarity: str) -> tuple[str, tuple[float, float]]:
    """How to show a tomogram in 3D: napari's ``rendering`` and contrast limits.

    A maximum-intensity projection drawn with the 2D slice's contrast saturates (the
    maximum along a ray of noise lies far above a slice's percentiles), so the limits are
    the 1st-99.5th percentiles of the projection itself, along z as the 3D view first
    looks. Dense particles are bright (``mip``) or dark (``minip``, e.g. raw cryo-ET).

    Parameters
    ----------
    volume
        ``(z, y, x)`` voxels as the 3D view draws them (napari's coarsest level of a
        multiscale tomogram).
    polarity
        ``"bright"`` or ``"dark"`` particles.
    """
    data = np.asarray(volume, dtype=np.float32)
    bright = polarity == "bright"
    projection = np.nanmax(data, axis=0) if bright else np.nanmin(data, axis=0)
    values = projection[np.isfinite(projection)]
    if values.size == 0:
        return ("mip" if bright else "minip"), (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.5]))
    return ("mip" if bright else "minip"), (lo, hi if hi > lo else lo + 1.0)


def crop_pixels(slices: Mapping[str, np.ndarray], box: int) -> np.ndarray:
    """The crop view: the central XY, XZ and YZ slices side by side (white gaps), at their
    shared contrast, each voxel ``crop_zoom(box)`` pixels wide.

    Parameters
    ----------
    slices
        ``{"xy", "xz", "yz"}``: ``(box, box)`` float planes (NaN outside the tomogram).
    box
        Edge of the candidate's box, voxels.

    Returns
    -------
    np.ndarray
        ``(box * zoom, (3 * box + 2 * CROP_GAP) * zoom)`` uint8, C-contiguous.
    """
    lo, hi = contrast(slices)
    canvas = np.full((box, 3 * box + 2 * CROP_GAP), 255, dtype=np.uint8)
    for i, name in enumerate(("xy", "xz", "yz")):
        plane = np.nan_to_num(slices[name], nan=lo)
        scaled = np.clip((plane - lo) / (hi - lo), 0.0, 1.0) * 255.0
        start = i * (box + CROP_GAP)
        canvas[:, start : start + box] = scaled.astype(np.uint8)
    zoom = crop_zoom(box)
    return np.ascontiguousarray(np.kron(canvas, np.ones((zoom, zoom), np.uint8)))


def candidate_line(current: Candidate, probabilities: Mapping[str, float] | None) -> str:
    """The current candidate in two lines (rich text): id, rank, score and label; then the
    model's three most probable classes (or its predicted class)."""
    score = "-" if np.isnan(current.score) else f"{current.score:.3g}"
    model = (
        "model: " + " · ".join(f"{name} {p:.2f}" for name, p in list(probabilities.items())[:3])
        if probabilities
        else f"predicted {current.predicted_class or '-'}"
    )
    return (
        f"<b>{current.candidate_id}</b>  rank {current.rank}  score {score}  "
        f"label <b>{current.label or '-'}</b><br>{model}"
    )


def cube_edges(lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """The 12 edges of the box with corners ``lo`` and ``hi`` (zyx): ``(2, 3)`` each."""
    pick = np.array([[z, y, x] for z in (0, 1) for y in (0, 1) for x in (0, 1)], bool)
    corners = np.where(pick, np.asarray(hi, float), np.asarray(lo, float))
    return [
        np.stack([corners[i], corners[j]])
        for i in range(8)
        for j in range(i + 1, 8)
        if np.count_nonzero(pick[i] != pick[j]) == 1
    ]


def train_epochs(defaults_train: Mapping[str, Any]) -> int:
    """Epochs ``cryoal train PROJECT`` will run with ``defaults.train`` (0 when the mapping
    is not a valid training configuration: the bar then shows the job's own count)."""
    from cryoal.train.config import TrainConfig

    try:
        cfg = TrainConfig.from_dict(dict(defaults_train), source="project.yaml defaults.train")
    except ValueError:
        return 0
    return int(cfg.epochs)
