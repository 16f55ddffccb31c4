"""The model's masks for a segment round's queue (``rounds/NNN/proposals.npz``).

When ``cryoal suggest`` ranks a segment project's candidates, the round's teacher also
segments every candidate it queued: ``mask/<id>`` is the teacher's arg-max mask (uint8,
the mask encoding: 0 background, class k + 1) and ``uncertainty/<id>`` the KT-MSE map, the
voxel-wise squared difference of teacher and student probabilities (float16, 0 without a
student). The viewer opens each crop with its proposal, so the expert corrects the model's
mask instead of painting from scratch, and reads it from this file (no model in the
viewer, no inference on the key press). Written atomically, once per queue.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.io.atomic import atomic_write_bytes

#: File name inside ``rounds/NNN/``.
PROPOSALS_NAME = "proposals.npz"


def write_proposals(
    directory: str | os.PathLike,
    ids: list[str],
    rows: np.ndarray,
    store: Any,
    run: Any,
    *,
    device: str = "cpu",
    batch_size: int = 16,
) -> Path:
    """Segment the queued candidates with the round's teacher (and student) and write
    ``directory/proposals.npz``.

    Parameters
    ----------
    ids, rows
        The queued candidates' ids and their rows in ``store`` (the candidate cache).
    run
        The round's :class:`cryoal.train.checkpoint.LoadedRun` (segmentation models).
    """
    import torch

    from cryoal.train.losses import transfer_distance

    arrays: dict[str, Any] = {}
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            part = np.asarray(rows[start : start + batch_size], dtype=np.int64)
            x = torch.from_numpy(store.subtomograms(part)[:, None]).to(device)
            t = run.teacher(x).float()
            masks = t.argmax(1).to(torch.uint8).cpu().numpy()
            if run.student is not None:
                s = run.student(x).float()
                maps = transfer_distance(t, s, task="segment", per_voxel=True).cpu().numpy()
            else:
                maps = np.zeros(masks.shape, np.float32)
            for k, cid in enumerate(ids[start : start + batch_size]):
                arrays[f"mask/{cid}"] = masks[k]
                arrays[f"uncertainty/{cid}"] = maps[k].astype(np.float16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(directory) / PROPOSALS_NAME
    atomic_write_bytes(path, buf.getvalue(), overwrite=True)
    return path


class Proposals:
    """The proposals of one round, read lazily (``None`` for a candidate without one)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        path = Path(directory) / PROPOSALS_NAME
        self._npz = np.load(path) if path.is_file() else None

    def mask(self, candidate_id: str) -> np.ndarray | None:
        """``(b, b, b)`` uint8 arg-max mask, or None."""
        key = f"mask/{candidate_id}"
        if self._npz is None or key not in self._npz.files:
            return None
        return np.asarray(self._npz[key])

    def uncertainty(self, candidate_id: str) -> np.ndarray | None:
        """``(b, b, b)`` float32 KT-MSE map, or None."""
        key = f"uncertainty/{candidate_id}"
        if self._npz is None or key not in self._npz.files:
            return None
        return np.asarray(self._npz[key], dtype=np.float32)
