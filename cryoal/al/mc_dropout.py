"""MC-dropout masks keyed by candidate: the same masks however the candidates are batched.

BALD runs ``T`` stochastic forward passes with dropout active. With torch's own dropout a
sample's mask depends on where the sample sits in its micro-batch and on the draws before
it, so a candidate scored in another micro-batch or shard would get other masks. Here every
dropout module of the models draws each sample's mask from its own generator, seeded from
``(seed, candidate id, module, call)``; the ``call``-th call of a module within a
micro-batch is MC pass ``call`` (each pass calls every dropout module once). A candidate's
masks are then a function of the candidate, the seed and the pass only, whatever the other
candidates of its micro-batch: sharded scoring reproduces the single-process scores bit for
bit whatever the shard boundaries (with the same micro-batch size; another size gives the
same masks, but the convolutions may round differently, ~1e-10). ``seed`` is the acquisition's MC
seed (:func:`cryoal.al.acquire.score_candidates` derives it from the acquisition seed,
which the AL engine derives per round; ``cryoal suggest`` uses ``--seed`` in every round).

Supported: ``nn.Dropout`` (one mask per element) and ``nn.Dropout1d/2d/3d`` (one per
channel), the modules MONAI's and cryoal's networks use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

_CHANNELWISE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def candidate_key(seed: int, candidate_id: str) -> int:
    """A 64-bit key of ``(seed, candidate id)`` (SHA-256 of the id through a SeedSequence)."""
    digest = hashlib.sha256(str(candidate_id).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in (0, 4, 8, 12)]
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 11, *words]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def sample_seed(key: int, module: int, call: int) -> int:
    """The torch seed of one sample's mask in call ``call`` of dropout module ``module``;
    ``key`` from :func:`candidate_key`."""
    return _splitmix64(key ^ _splitmix64(int(module) << 32 | int(call)))


class KeyedDropout:
    """Replace the forward of every dropout module of ``models`` by keyed per-sample masks.

    Use as a context manager; :meth:`start_batch` names the candidates of the next
    micro-batch (in batch order) and restarts the call counts.
    """

    def __init__(self, models: Sequence[nn.Module], seed: int) -> None:
        self.seed = int(seed)
        self.keys: list[int] = []
        self.modules: list[nn.modules.dropout._DropoutNd] = []
        for model in models:
            for m in model.modules():
                if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
                    if type(m) is not nn.Dropout and not isinstance(m, _CHANNELWISE):
                        raise ValueError(
                            f"MC dropout with per-candidate masks supports nn.Dropout and "
                            f"nn.Dropout1d/2d/3d, not {type(m).__name__}; use another "
                            "strategy than bald for this model"
                        )
                    self.modules.append(m)
        self.calls = [0] * len(self.modules)

    def start_batch(self, ids: Sequence[str]) -> None:
        """The candidates of the next micro-batch (padding rows repeat the last one)."""
        self.keys = [candidate_key(self.seed, i) for i in ids]
        self.calls = [0] * len(self.modules)

    def _forward(
        self, k: int, module: nn.modules.dropout._DropoutNd, x: torch.Tensor
    ) -> torch.Tensor:
        if not module.training:
            return x
        call = self.calls[k]
        self.calls[k] += 1
        keep = 1.0 - module.p
        shape = (
            (x.shape[1],) + (1,) * (x.dim() - 2)
            if isinstance(module, _CHANNELWISE)
            else x.shape[1:]
        )
        masks = []
        gen = torch.Generator()
        for row in range(x.shape[0]):
            gen.manual_seed(sample_seed(self.keys[min(row, len(self.keys) - 1)], k, call))
            masks.append(torch.rand(shape, generator=gen) < keep)
        mask = torch.stack(masks).to(device=x.device, dtype=x.dtype)
        return x * mask / keep

    def __enter__(self) -> KeyedDropout:
        for k, m in enumerate(self.modules):
            m.forward = lambda x, k=k, m=m: self._forward(k, m, x)
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.modules:
            m.__dict__.pop("forward", None)


def keyed_stream(
    stream: Generator[Any, None, None],
    models: Sequence[nn.Module],
    ids: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    seed: int,
) -> Generator[Any, None, None]:
    """Wrap :func:`cryoal.train.predict.stream_outputs` (MC passes) with keyed masks.

    ``stream`` must be the not yet started stream of store rows ``indices`` in micro-batches
    of ``batch_size``; ``ids`` maps store rows to candidate ids. The stream computes a batch
    when asked for it, so the batch's candidates are named just before each ``next``.

    Yields
    ------
    The stream's batch outputs, unchanged.
    """
    try:
        with KeyedDropout(models, seed) as keyed:
            for start in range(0, indices.size, batch_size):
                rows = indices[start : start + batch_size]
                keyed.start_batch(ids[rows].tolist())
                batch = next(stream)
                if not np.array_equal(batch.indices, rows):
                    raise RuntimeError("MC-dropout stream out of step with its micro-batches")
                yield batch
            if next(stream, None) is not None:  # runs the stream's clean-up
                raise RuntimeError("MC-dropout stream has more batches than expected")
    finally:
        stream.close()
