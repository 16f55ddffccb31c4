"""Streaming prediction: fixed-size batches, bounded memory, teacher and student together.

:func:`stream_outputs` is the one loop every consumer uses (evaluation during training,
active-learning scoring, ``cryoal predict``): it reads the store batch by batch in a
background thread, pads the last batch to the fixed batch size (stable kernel shapes,
no recompilation) and trims the padding from the outputs, and runs every model on the same
batch. :func:`segment_tomogram` labels a whole MRC tomogram with MONAI's sliding-window
inferer, slab by slab.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cryoal.io.store import SubtomogramStore
from cryoal.models.classifier import Classifier
from cryoal.progress import CountCallback
from cryoal.train.distributed import autocast_context, resolve_device, to_device

log = logging.getLogger(__name__)


@dataclass
class BatchOutput:
    """Outputs of one batch.

    Attributes
    ----------
    indices
        ``(b,)`` int64 store rows of this batch (padding removed).
    logits
        ``{model name: (b, C)}``; ``(b, C, T)`` with ``T`` MC-dropout passes; ``(b, C, D, H,
        W)`` for segmentation. float32, CPU.
    features
        ``{model name: (b, F)}`` penultimate features (classifiers, when requested).
    """

    indices: np.ndarray
    logits: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """Collected outputs of one model.

    Attributes
    ----------
    indices
        ``(N,)`` int64 store rows, in the requested order.
    probs
        ``(N, C)``, ``(N, C, T)`` (MC dropout) or ``(N, C, D, H, W)`` softmax probabilities.
    features
        ``(N, F)`` or None.
    """

    indices: np.ndarray
    probs: np.ndarray
    features: np.ndarray | None = None


def _dropout_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


@contextlib.contextmanager
def _inference_mode(models: Mapping[str, nn.Module], mc: bool) -> Iterator[None]:
    """Eval mode (dropout on for MC passes); restores each module's mode afterwards."""
    saved = [(m, m.training) for model in models.values() for m in model.modules()]
    try:
        for model in models.values():
            model.eval()
            if mc:
                for m in _dropout_modules(model):
                    m.train()
        yield
    finally:
        for m, mode in saved:
            m.training = mode


def _batch_reader(
    store: SubtomogramStore, batches: list[np.ndarray], prefetch: int
) -> Iterator[np.ndarray]:
    """Yield ``store.subtomograms(batch)`` for each batch, read ahead in a thread."""
    if prefetch <= 0:
        for b in batches:
            yield store.subtomograms(b)
        return
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work() -> None:
        try:
            for b in batches:
                if stop.is_set():
                    return
                q.put(store.subtomograms(b))
            q.put(None)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        thread.join(timeout=10)


def stream_outputs(
    models: Mapping[str, nn.Module],
    store: SubtomogramStore,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    mc_passes: int = 0,
    features: bool = False,
    amp: bool | str = "off",
    channels_last: bool = False,
    prefetch: int = 2,
    mc_seed: int | None = None,
    first_batch: int = 0,
) -> Generator[BatchOutput, None, None]:
    """Run models over store rows in fixed-size batches; yield outputs batch by batch.

    Parameters
    ----------
    models
        ``{name: model}`` (e.g. ``{"teacher": T, "student": S}``); each gets the same batch.
        Models stay on their device unless ``device`` differs (then they are moved).
    store
        The subtomogram store.
    indices
        Store rows, any order (outputs follow this order).
    batch_size
        Every forward pass sees exactly this many samples; the last batch is padded by
        repeating its last sample and the padding is trimmed from the outputs.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    mc_passes
        ``T > 0``: MC dropout, ``T`` stochastic passes with dropout active; logits become
        ``(b, C, T)``. For a :class:`~cryoal.models.Classifier` whose backbone has no
        dropout the features are computed once and only the head is sampled.
    features
        Also return penultimate features ``(b, F)`` of classifiers (deterministic, eval).
    amp
        Mixed-precision mode of the forward passes (``auto``/``bf16``/``fp16``/``off``;
        True = auto, see :func:`~cryoal.train.distributed.amp_dtype`). Outputs are always
        returned as float32.
    channels_last
        Use ``torch.channels_last_3d`` for models and inputs.
    prefetch
        Batches read ahead from the store in a background thread (0: none).
    mc_seed
        With ``mc_passes``: torch's global generator is reseeded before each batch from
        ``(mc_seed, batch number)``, so a batch's dropout masks do not depend on the batches
        before it (sharded scoring gets the masks of the single-process run). None: the
        masks continue the caller's generator.
    first_batch
        Number of the first batch (``mc_seed`` only): the position of ``indices[0]`` in the
        full candidate list divided by ``batch_size``.

    Yields
    ------
    BatchOutput
        No gradients, models in eval mode (dropout on only for MC passes); each model's
        train/eval mode is restored when the generator finishes or is closed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be >= 1")
    if mc_passes < 0:
        raise ValueError(f"mc_passes {mc_passes} must be >= 0")
    if not models:
        raise ValueError("stream_outputs needs at least one model")
    dev = resolve_device(device)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(store)):
        raise IndexError(f"{store.path}: index out of range 0..{len(store) - 1}")
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    for model in models.values():
        to_device(model, dev, fmt)
    batches = [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]
    mc = mc_passes > 0
    with _inference_mode(models, mc):
        for b, (rows, data) in enumerate(
            zip(batches, _batch_reader(store, batches, prefetch), strict=True)
        ):
            if mc and mc_seed is not None:
                torch.manual_seed(batch_seed(mc_seed, first_batch + b))
            n = rows.size
            if n < batch_size:
                data = np.concatenate([data, np.repeat(data[-1:], batch_size - n, axis=0)])
            x = torch.from_numpy(data[:, None]).to(dev, non_blocking=True)
            x = x.contiguous(memory_format=fmt)
            out = BatchOutput(indices=rows, logits={}, features={})
            with torch.inference_mode(), autocast_context(dev, amp):
                for name, model in models.items():
                    logits, feats = _forward(model, x, mc_passes, features)
                    out.logits[name] = logits[:n].float().cpu()
                    if feats is not None:
                        out.features[name] = feats[:n].float().cpu()
            yield out


def batch_seed(seed: int, batch: int) -> int:
    """A 63-bit torch seed for micro-batch number ``batch`` of a run seeded ``seed``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7, int(batch)]).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])


def _forward(
    model: nn.Module, x: torch.Tensor, mc_passes: int, want_features: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not isinstance(model, Classifier):
        if mc_passes:
            return torch.stack([model(x) for _ in range(mc_passes)], dim=-1), None
        return model(x), None
    if mc_passes and model.backbone_stochastic:
        logits = torch.stack([model(x) for _ in range(mc_passes)], dim=-1)
        feats = None
        if want_features:
            with _dropout_off(model):
                feats = model.forward_features(x)
        return logits, feats
    feats = model.forward_features(x)
    if mc_passes:
        logits = torch.stack([model.forward_head(feats) for _ in range(mc_passes)], dim=-1)
    else:
        logits = model.forward_head(feats)
    return logits, feats if want_features else None


@contextlib.contextmanager
def _dropout_off(model: nn.Module) -> Iterator[None]:
    mods = _dropout_modules(model)
    modes = [m.training for m in mods]
    try:
        for m in mods:
            m.eval()
        yield
    finally:
        for m, mode in zip(mods, modes, strict=True):
            m.training = mode


def predict(
    model: nn.Module,
    store: SubtomogramStore,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    mc_passes: int = 0,
    features: bool = False,
    amp: bool | str = "off",
) -> Prediction:
    """Softmax probabilities (and features) of one model over ``indices``, collected.

    See :func:`stream_outputs` for the parameters. Holds ``N x C`` (``x T`` / ``x D x H x
    W``) floats in memory; stream instead for segmentation of large sets.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    probs: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    for out in stream_outputs(
        {"model": model},
        store,
        idx,
        batch_size=batch_size,
        device=device,
        mc_passes=mc_passes,
        features=features,
        amp=amp,
    ):
        probs.append(torch.softmax(out.logits["model"], dim=1).numpy())
        if features and "model" in out.features:
            feats.append(out.features["model"].numpy())
    n_cls = getattr(model, "num_classes", 0)
    empty = np.empty((0, n_cls), np.float32)
    return Prediction(
        indices=idx,
        probs=np.concatenate(probs) if probs else empty,
        features=np.concatenate(feats) if feats else None,
    )


def segment_tomogram(
    model: nn.Module,
    tomogram: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    roi_size: int,
    expected_voxel_size_A: float | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 8,
    slab_depth: int | None = None,
    device: str | torch.device = "cpu",
    amp: bool | str = "off",
    overwrite: bool = False,
    progress: CountCallback | None = None,
    class_names: Sequence[str] = (),
) -> Path:
    """Label every voxel of an MRC tomogram and write the label map as MRC.

    The tomogram is processed in z-slabs (each ``slab_depth`` voxels plus a margin of
    ``roi_size // 2`` on each side that is discarded), each slab with MONAI's
    :class:`~monai.inferers.SlidingWindowInferer` (Gaussian blending of overlapping
    ``roi_size^3`` windows), so memory stays bounded by the slab, not the tomogram. Each
    window is standardised by the model itself, as the training subtomograms were.

    Parameters
    ----------
    model
        A segmentation model (logits ``(B, C, D, H, W)``).
    tomogram
        Input ``.mrc``; read memory-mapped.
    out_path
        Output label map ``(z, y, x)`` (0 = background, class ``k`` = the model's class
        ``k``), written atomically with the input's voxel size and origin.
    roi_size
        Window edge in voxels (the training box size).
    expected_voxel_size_A
        The voxel size the model was trained at; a mismatch above 1 % is an error.
    overlap
        Window overlap fraction.
    sw_batch_size
        Windows per forward pass.
    slab_depth
        z-depth per slab (default ``4 * roi_size``).
    device, amp
        As in :func:`stream_outputs`.
    overwrite
        Replace an existing ``out_path``.
    progress
        Called with the z-planes of each finished slab (they add up to the tomogram's depth);
        every slab is also logged.
    class_names
        The model's classes (``[0]`` = background), written to the header
        (:func:`cryoal.io.mrc.class_labels`) so a viewer names and colours the values
        wherever the file goes.

    Returns
    -------
    Path
        ``out_path``.
    """
    from monai.inferers import SlidingWindowInferer

    from cryoal.io.atomic import check_can_write
    from cryoal.io.mrc import class_labels, open_tomogram, write_mrc

    check_can_write(out_path, overwrite)
    n_classes = int(getattr(model, "num_classes", 2))
    if n_classes > 255:
        raise ValueError(f"{n_classes} classes do not fit the uint8 label map (at most 255)")
    dev = resolve_device(device)
    model.to(dev)
    inferer = SlidingWindowInferer(
        roi_size=(roi_size,) * 3,
        sw_batch_size=sw_batch_size,
        overlap=overlap,
        mode="gaussian",
        padding_mode="reflect",
    )
    with open_tomogram(tomogram) as tomo:
        vs = tomo.voxel_size_A
        if expected_voxel_size_A is not None and not np.isclose(
            vs, expected_voxel_size_A, rtol=0.01
        ):
            raise ValueError(
                f"{tomogram}: voxel size {vs:.4g} Å but the model was trained at "
                f"{expected_voxel_size_A:.4g} Å; rescale the tomogram (e.g. IMOD "
                f"'squeezevol -f {vs / expected_voxel_size_A:.4g}') or train at this voxel size"
            )
        depth = tomo.shape[0]
        slab = int(slab_depth or 4 * roi_size)
        margin = roi_size // 2
        labels = np.zeros(tomo.shape, dtype=np.uint8)
        starts = list(range(0, depth, slab))
        with _inference_mode({"m": model}, mc=False), torch.inference_mode():
            for k, z0 in enumerate(starts):
                z1 = min(depth, z0 + slab)
                a, b = max(0, z0 - margin), min(depth, z1 + margin)
                block = np.array(tomo.data[a:b], dtype=np.float32)  # a writable copy of the slab
                x = torch.from_numpy(block)[None, None].to(dev)
                with autocast_context(dev, amp):
                    logits = inferer(x, model)
                if not isinstance(logits, torch.Tensor):  # a segmenter returns one tensor
                    raise TypeError(f"segmentation model returned {type(logits).__name__}")
                pred = logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
                labels[z0:z1] = pred[z0 - a : z0 - a + (z1 - z0)]
                log.info("segmented slab %d/%d (z %d..%d)", k + 1, len(starts), z0, z1)
                if progress is not None:
                    progress(z1 - z0)
        origin = tomo.origin_zyx_A
    return write_mrc(
        out_path,
        labels,
        vs,
        origin_zyx_A=origin,
        overwrite=overwrite,
        labels=class_labels(class_names),
    )
