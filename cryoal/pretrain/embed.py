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


class EncoderEmbedding:
    """``rows -> (n, F)`` float32 features under a frozen encoder, each row computed once.

    The feature space of selection steps that read ``embedding: encoder``: the embedding
    the teacher started from, which does not change between rounds (so a row embedded in
    one round is reused in the next). Rows are store rows of ``store``.
    """

    def __init__(
        self,
        encoder: Encoder,
        store: SubtomogramStore,
        *,
        batch_size: int = 128,
        device: str = "cpu",
    ) -> None:
        self.encoder, self.store = encoder, store
        self.batch_size, self.device = batch_size, device
        self._rows: dict[int, np.ndarray] = {}

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        missing = np.unique([r for r in rows.tolist() if r not in self._rows]).astype(np.int64)
        if missing.size:
            feats = embed_rows(
                self.encoder, self.store, missing, batch_size=self.batch_size, device=self.device
            )
            self._rows.update(zip(missing.tolist(), feats, strict=True))
        if rows.size == 0:
            return np.empty((0, int(self.encoder.build("cpu").num_features)), np.float32)
        return np.stack([self._rows[r] for r in rows.tolist()])


_EMBEDDINGS: dict[tuple[str, str], EncoderEmbedding] = {}


def encoder_embedding(
    folder: str, store: SubtomogramStore, *, batch_size: int = 128, device: str = "cpu"
) -> EncoderEmbedding:
    """The :class:`EncoderEmbedding` of the encoder in ``folder`` over ``store``, shared by
    every round of this process (an engine run embeds each pool row once)."""
    from pathlib import Path

    from cryoal.pretrain.encoder import load_encoder

    key = (str(Path(folder).resolve()), str(Path(store.path).resolve()))
    if key not in _EMBEDDINGS:
        _EMBEDDINGS.clear()  # one encoder at a time: a process runs one pool
        _EMBEDDINGS[key] = EncoderEmbedding(
            load_encoder(folder), store, batch_size=batch_size, device=device
        )
    return _EMBEDDINGS[key]
