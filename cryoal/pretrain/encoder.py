"""A pretrained encoder on disk, the pool's content hash, and loading into a teacher.

An encoder folder::

    ENC/
      encoder.safetensors   the classification network's weights without its head
                            (``backbone.*``; the per-sample standardisation has none)
      encoder.json          preset, norm, objective, box, voxel size, the pool's content
                            hash and size, the configuration, per-epoch losses, wall time,
                            SHA-256 of the weights; written last, so a folder without it
                            is an unfinished pretraining (``checkpoints/`` resumes it)
      checkpoints/          as for training runs (:mod:`cryoal.train.checkpoint`)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from cryoal.io.atomic import atomic_path, atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.models.classifier import Classifier
from cryoal.train.checkpoint import (
    CheckpointTamperedError,
    load_state_dict_file,
    sha256_file,
)

ENCODER_FORMAT = 1
#: Prefix of the encoder's keys in a :class:`~cryoal.models.classifier.Classifier` state dict.
ENCODER_PREFIX = "backbone."


@dataclass
class Encoder:
    """A finished pretraining: weights and what they were learnt from.

    Attributes
    ----------
    path
        The encoder folder.
    info
        ``encoder.json`` (``preset``, ``norm``, ``objective``, ``box``, ``voxel_size_A``,
        ``pool_hash``, ``n_samples``, ``config``, ``history``, ``elapsed_s``).
    state
        ``{"backbone.<name>": tensor}``.
    """

    path: Path
    info: dict[str, Any]
    state: dict[str, torch.Tensor]

    @property
    def preset(self) -> str:
        return str(self.info["preset"])

    @property
    def norm(self) -> str:
        return str(self.info["norm"])

    def build(self, device: str | torch.device = "cpu") -> Classifier:
        """The encoder as a classification network in eval mode (its head untrained:
        use ``forward_features``, ``(B, 1, D, H, W) -> (B, F)``)."""
        model = build_classifier(self.preset, self.norm, seed=0)
        load_encoder_into(model, self)
        return model.to(device).eval()


def build_classifier(preset: str, norm: str, seed: int) -> Classifier:
    """A classification network of ``preset`` (2 outputs: only its encoder is used here)."""
    from cryoal.models import build_model

    model = build_model("classify", preset, 2, norm=norm, seed=seed)
    if not isinstance(model, Classifier):  # every classification preset is a Classifier
        raise TypeError(f"preset {preset!r} built a {type(model).__name__}, not a Classifier")
    return model


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder part of a classification network's state dict (CPU, contiguous)."""
    return {
        k: v.detach().cpu().contiguous().clone()
        for k, v in model.state_dict().items()
        if k.startswith(ENCODER_PREFIX)
    }


def save_encoder(folder: str | os.PathLike, model: nn.Module, info: dict[str, Any]) -> Path:
    """Write ``encoder.safetensors``, then ``encoder.json`` (both atomic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "encoder.safetensors"
    with atomic_path(target, overwrite=True) as tmp:
        save_file(encoder_state(model), tmp)
    body = dict(info)
    body.update(
        format=ENCODER_FORMAT,
        weights={"sha256": sha256_file(target), "bytes": target.stat().st_size},
    )
    atomic_write_text(folder / "encoder.json", json.dumps(body, indent=1))
    return folder


def is_encoder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a finished encoder."""
    return (Path(folder) / "encoder.json").is_file()


def load_encoder(folder: str | os.PathLike) -> Encoder:
    """Read and verify an encoder folder.

    Raises
    ------
    FileNotFoundError
        No finished encoder there.
    ValueError
        An unreadable ``encoder.json``, or weights changed after they were written.
    """
    folder = Path(folder)
    path = folder / "encoder.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no finished pretrained encoder (encoder.json missing); run "
            "'cryoal pretrain' (it resumes an unfinished one)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path}: unreadable ({type(exc).__name__}); delete {folder} and pretrain again"
        ) from None
    if not isinstance(info, dict) or int(info.get("format", 0)) > ENCODER_FORMAT:
        raise ValueError(f"{path}: not an encoder description this cryoal can read")
    weights = folder / "encoder.safetensors"
    rec = info.get("weights", {})
    if not weights.is_file() or sha256_file(weights) != rec.get("sha256"):
        raise CheckpointTamperedError(
            f"{weights}: missing or changed since it was written; delete {folder} and "
            "pretrain again"
        )
    return Encoder(path=folder, info=info, state=load_state_dict_file(weights))


def load_encoder_into(model: nn.Module, encoder: Encoder, what: str = "teacher") -> None:
    """Copy the encoder's weights into a classification network built from the same preset.

    The head keeps its (random) initialisation.

    Raises
    ------
    ValueError
        The network is not the encoder's preset and norm.
    """
    preset = getattr(model, "preset", None)
    norm = getattr(model, "norm", None)
    norm = "batch" if norm == "syncbatch" else norm  # the same layers until DDP converts them
    if (preset, norm) != (encoder.preset, encoder.norm):
        raise ValueError(
            f"{encoder.path}: the encoder was pretrained for preset {encoder.preset!r} with "
            f"norm {encoder.norm!r}, the {what} is {preset!r} with {norm!r}; pretrain for the "
            f"{what}'s preset and norm, or train without the encoder"
        )
    own = model.state_dict()
    missing = sorted(k for k in own if k.startswith(ENCODER_PREFIX) and k not in encoder.state)
    if missing or any(own[k].shape != v.shape for k, v in encoder.state.items()):
        raise ValueError(
            f"{encoder.path}: the encoder's weights do not fit the {what} ({len(missing)} "
            "missing or of another shape); pretrain again with this cryoal"
        )
    own.update(encoder.state)
    model.load_state_dict(own)


def pool_hash(
    store: SubtomogramStore, rows: np.ndarray, chunk: int = 256, *, halves: bool = False
) -> str:
    """SHA-256 of the pool's content: its ids and subtomogram bytes, in row order, and with
    ``halves`` its half pairs' bytes too (the data pretraining reads).

    ``rows`` are sorted first, so the hash names a set of samples. Reads the rows once,
    ``chunk`` at a time (bounded memory).
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    h = hashlib.sha256()
    h.update(f"box={store.box};n={rows.size};".encode())
    if halves:
        h.update(b"halves;")
    ids = store.ids
    for lo in range(0, rows.size, chunk):
        part = rows[lo : lo + chunk]
        h.update("\n".join(str(i) for i in ids[part]).encode())
        h.update(np.ascontiguousarray(store.subtomograms(part), dtype=np.float32).tobytes())
        if halves:
            h.update(np.ascontiguousarray(store.halves(part), dtype=np.float32).tobytes())
    return h.hexdigest()
