"""The simulated annotator's edit cost of a segmentation label, in voxels.

Two ways an expert makes a crop's mask (methods.md §9), each with its cost:

``scratch``
    painting it from nothing: the crop's foreground voxels in the true mask;
``correct``
    correcting the mask the model proposed: the voxels where the proposal (the arg-max
    mask of the teacher that selected the crop) differs from the true mask.

Voxels marked 255 (not annotated, e.g. outside the tomogram) cost nothing in either mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cryoal.io.store import MASK_IGNORE, SubtomogramStore

if TYPE_CHECKING:
    from torch import nn

#: The two cost modes, in the order reports list them.
COST_MODES: tuple[str, ...] = ("scratch", "correct")


def scratch_cost(masks: np.ndarray) -> np.ndarray:
    """Voxels an annotator paints to make each mask from nothing.

    Parameters
    ----------
    masks
        ``(n, d, h, w)`` uint8 true masks (0 background, class + 1, 255 not annotated).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64: foreground voxels (values 1..254) of each mask.
    """
    m = np.asarray(masks)
    fg = (m > 0) & (m != MASK_IGNORE)
    return fg.reshape(len(m), -1).sum(axis=1).astype(np.int64)


def correction_cost(proposed: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Voxels an annotator changes to turn each proposed mask into the true one.

    Parameters
    ----------
    proposed
        ``(n, d, h, w)`` integer arg-max masks of the proposing model (0 background,
        class + 1).
    masks
        ``(n, d, h, w)`` uint8 true masks; voxels marked 255 are not counted.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64: voxels where ``proposed`` and ``masks`` differ.

    Raises
    ------
    ValueError
        The two arrays differ in shape.
    """
    p, m = np.asarray(proposed), np.asarray(masks)
    if p.shape != m.shape:
        raise ValueError(f"proposed masks {p.shape} and true masks {m.shape} differ in shape")
    changed = (p.astype(np.int64) != m.astype(np.int64)) & (m != MASK_IGNORE)
    return changed.reshape(len(m), -1).sum(axis=1).astype(np.int64)


def proposal_changes(
    teacher: nn.Module,
    store: SubtomogramStore,
    rows: Sequence[int] | np.ndarray,
    *,
    batch_size: int = 64,
    device: str = "cpu",
) -> np.ndarray:
    """:func:`correction_cost` of the teacher's arg-max masks on store ``rows`` against the
    store's masks: ``(n,)`` int64 voxels to change, in the order of ``rows``."""
    from cryoal.train.predict import stream_outputs

    idx = np.asarray(rows, np.int64).reshape(-1)
    position = {int(r): k for k, r in enumerate(idx)}
    out = np.zeros(idx.size, np.int64)
    for batch in stream_outputs(
        {"teacher": teacher},
        store,
        idx,
        batch_size=batch_size,
        device=device,
    ):
        pred = batch.logits["teacher"].argmax(dim=1).cpu().numpy()
        cost = correction_cost(pred, store.masks(batch.indices))
        out[[position[int(r)] for r in batch.indices]] = cost  # whatever order batches come in
    return out
