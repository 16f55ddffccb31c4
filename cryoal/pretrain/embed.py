"""The frozen embedding of store rows under a pretrained encoder."""

from __future__ import annotations

import numpy as np
import torch

from cryoal.io.store import SubtomogramStore
from cryoal.pretrain.encoder import Encoder
from cryoal.progress import CountCallback
from cryoal.train.distributed import resolve_device


@torch.no_grad()
def embed_rows(
    encoder: Encoder,
    store: SubtomogramStore,
    rows: np.ndarray,
    *,
    batch_size: int = 128,
    device: str = "cpu",
    progress: CountCallback | None = None,
) -> np.ndarray:
    """Encoder features of store rows, ``(n, F)`` float32, in the order of ``rows``.

    Reads ``batch_size`` rows at a time (bounded memory); the encoder runs in eval mode.
    """
    dev = resolve_device(device)
    model = encoder.build(dev)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.empty((rows.size, int(model.num_features)), dtype=np.float32)
    for lo in range(0, rows.size, batch_size):
        part = rows[lo : lo + batch_size]
        x = torch.from_numpy(store.subtomograms(part)).unsqueeze(1).to(dev)
        out[lo : lo + part.size] = model.forward_features(x).float().cpu().numpy()
        if progress is not None:
            progress(int(part.size))
    return out
