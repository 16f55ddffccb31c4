"""Simulated subtomogram datasets with ground truth, written to the HDF5 store.

Sample ``i`` of a dataset with seed ``s`` is a pure function of ``(s, i)``:

* class ``i mod C`` (so every prefix, shard and the whole set is balanced);
* from the ``params`` stream: a uniform random rotation, a sub-voxel shift (uniform in
  ``[-max_shift, max_shift]`` voxels per axis) and a defocus (uniform in the range);
* from the ``crowding`` stream: the neighbours (class, rotation, direction), if any;
* from the ``noise`` stream: the noise.

The particle's centre of mass sits at voxel ``box // 2`` plus the shift (the same centre
convention as :func:`cryoal.data.extract.extract_subtomograms`). The noise-free signal is
made by :class:`cryoal.sim.imaging.Imager` (CTF, missing wedge), the noise is scaled so
that ``var(signal) / var(noise)`` over the box equals the SNR, and each sample is then
normalised to zero mean and unit standard deviation (like extracted subtomograms).

Segmentation masks (``masks=True``) hold 0 for background and ``class index + 1`` for the
voxels of each particle's support after rotation (neighbours included, with their own
class), so one mask serves semantic segmentation; ``mask > 0`` is the binary mask.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoal.io.atomic import check_can_write
from cryoal.io.store import StoreWriter, SubtomogramStore
from cryoal.progress import CountCallback
from cryoal.sim.imaging import Imager, ImagingParams, float_pair
from cryoal.sim.noise import check_snr, scale_noise_to_snr
from cryoal.sim.streams import check_seed, sample_rng
from cryoal.sim.templates import Template, check_fits_box, load_templates
from cryoal.sim.transforms import TemplateBank, random_quaternion, rotation_matrices_zyx

log = logging.getLogger(__name__)

#: Bumped when a change alters the samples a given (seed, index) produces.
SIM_VERSION = 1

#: Mask convention written to the store attributes.
MASK_CONVENTION = "0 = background, class index + 1 = particle support"


@dataclass(frozen=True)
class SubtomogramParams:
    """Everything that defines a simulated subtomogram besides templates and seed.

    Attributes
    ----------
    box
        Edge of the cubic subtomogram, voxels.
    voxel_size_A
        Voxel size, Å.
    snr
        Signal variance / noise variance in the box; ``None`` or ``inf`` = noise-free.
    imaging
        CTF, wedge and path settings.
    max_shift_voxels
        Largest sub-voxel shift of the particle centre per axis, voxels.
    crowding
        Number of neighbouring particles per sample, placed touching the central one
        (centre distance 1.0-1.2 x the sum of their radii), so parts of them fall in the box.
    normalise
        Normalise each sample to zero mean and unit standard deviation.
    """

    box: int = 32
    voxel_size_A: float = 10.0
    snr: float | None = 0.05
    imaging: ImagingParams = field(default_factory=ImagingParams)
    max_shift_voxels: float = 0.5
    crowding: int = 0
    normalise: bool = True

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if int(self.box) != self.box or self.box < 4:
            raise ValueError(f"box {self.box} must be an integer number of voxels >= 4 (e.g. 32)")
        if not self.voxel_size_A > 0:
            raise ValueError(f"voxel size {self.voxel_size_A} Å must be > 0 (e.g. 10)")
        check_snr(self.snr)
        if not 0 <= self.max_shift_voxels <= self.box / 4:
            raise ValueError(f"max shift {self.max_shift_voxels} voxels must be in [0, box/4]")
        if int(self.crowding) != self.crowding or self.crowding < 0:
            raise ValueError(
                f"crowding {self.crowding} must be a non-negative integer (neighbours per sample)"
            )
        self.imaging.check()


@dataclass
class SimBatch:
    """A batch of simulated samples.

    Attributes
    ----------
    indices
        ``(n,)`` int64 sample indices.
    ids
        ``n`` stable ids ``"sim<seed>:<index>"``.
    labels
        ``(n,)`` int64 class indices.
    data
        ``(n, b, b, b)`` float32 noisy subtomograms.
    masks
        ``(n, b, b, b)`` uint8 (0 background, class + 1) or None.
    meta
        Per-sample ground truth: ``sample_index`` (n,), ``quaternion_xyzw`` (n, 4),
        ``shift_zyx`` (n, 3) voxels, ``defocus_um`` (n,) (NaN without CTF), ``snr`` (n,).
    particles
        ``(n, b, b, b)`` rotated densities before imaging (only with ``stages=True``).
    signal
        ``(n, b, b, b)`` noise-free imaged signal, scaled like ``data`` (``stages=True``).
    """

    indices: np.ndarray
    ids: list[str]
    labels: np.ndarray
    data: np.ndarray
    masks: np.ndarray | None
    meta: dict[str, np.ndarray]
    particles: np.ndarray | None = None
    signal: np.ndarray | None = None


def sample_ids(seed: int, indices: Sequence[int] | np.ndarray) -> list[str]:
    """Stable ids of simulated samples: ``"sim<seed>:<index, 7 digits>"``."""
    return [f"sim{seed}:{int(i):07d}" for i in indices]


class Simulator:
    """Generate any samples of one simulated dataset, in any order or grouping.

    Parameters
    ----------
    templates
        Class templates (class ``k`` = ``templates[k]``), at ``params.voxel_size_A``.
    params
        Simulation settings.
    seed
        Dataset seed.
    """

    def __init__(self, templates: Sequence[Template], params: SubtomogramParams, seed: int) -> None:
        params.check()
        self.seed = check_seed(seed)
        self.params = params
        self.bank = TemplateBank(templates)
        b = int(params.box)
        self.shape = (b, b, b)
        self.imager = Imager(self.shape, params.voxel_size_A, params.imaging)
        if len(self.bank) > 254:
            raise ValueError(f"{len(self.bank)} classes: at most 254 fit the uint8 masks")

    @property
    def class_names(self) -> list[str]:
        return self.bank.names

    @property
    def n_classes(self) -> int:
        return len(self.bank)

    def draw(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sample parameters of ``indices`` (class, rotation, shift, defocus)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = idx.size
        quat = np.empty((n, 4))
        shift = np.empty((n, 3))
        defocus = np.empty(n)
        s = self.params.max_shift_voxels
        lo, hi = self.params.imaging.defocus_range_um
        for j, i in enumerate(idx):
            rng = sample_rng(self.seed, int(i), "params")
            quat[j] = random_quaternion(rng)
            shift[j] = rng.uniform(-s, s, size=3)
            defocus[j] = rng.uniform(lo, hi)
        return {
            "class": idx % self.n_classes,
            "quaternion": quat,
            "shift": shift,
            "defocus": defocus,
        }

    def _neighbours(
        self, idx: np.ndarray, classes: np.ndarray, centres: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Crowding: (owner row, class, quaternion, centre) of every neighbour of the batch."""
        owner, cls, quat, cen = [], [], [], []
        radii = self.bank.radii
        for j, i in enumerate(idx):
            rng = sample_rng(self.seed, int(i), "crowding")
            for _ in range(int(self.params.crowding)):
                k = int(rng.integers(self.n_classes))
                q = random_quaternion(rng)
                v = rng.normal(size=3)
                v /= np.linalg.norm(v)
                dist = (radii[classes[j]] + radii[k]) * rng.uniform(1.0, 1.2)
                owner.append(j)
                cls.append(k)
                quat.append(q)
                cen.append(centres[j] + dist * v)
        if not owner:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 3))
        return np.array(owner), np.array(cls), np.array(quat), np.array(cen)

    def generate(
        self, indices: Sequence[int] | np.ndarray, *, masks: bool = False, stages: bool = False
    ) -> SimBatch:
        """Simulate the samples ``indices``; each one independent of the others in the call.

        Parameters
        ----------
        indices
            ``(n,)`` non-negative sample indices.
        masks
            Also return segmentation masks.
        stages
            Also return the densities before imaging and the noise-free signal.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and idx.min() < 0:
            raise ValueError(f"sample indices must be >= 0 (got {int(idx.min())})")
        p = self.params
        n = idx.size
        draw = self.draw(idx)
        centres = np.full((n, 3), float(p.box // 2)) + draw["shift"]
        rot = rotation_matrices_zyx(draw["quaternion"])
        dens, support = self.bank.render(draw["class"], rot, centres, self.shape)
        mask = None
        if masks:
            mask = np.where(
                support, (draw["class"] + 1).astype(np.uint8).reshape(n, 1, 1, 1), 0
            ).astype(np.uint8)
        if p.crowding:
            owner, ncls, nquat, ncen = self._neighbours(idx, draw["class"], centres)
            ndens, nsup = self.bank.render(ncls, rotation_matrices_zyx(nquat), ncen, self.shape)
            np.add.at(dens, owner, ndens)
            if mask is not None:
                for o, k, sup in zip(owner, ncls, nsup, strict=True):
                    mask[o][(mask[o] == 0) & sup] = k + 1
        signal = self.imager.signal(dens, draw["defocus"])
        if p.snr is not None and not math.isinf(p.snr):
            raw = np.empty((n, *self.imager.noise_shape()), dtype=np.float32)
            for j, i in enumerate(idx):
                raw[j] = sample_rng(self.seed, int(i), "noise").standard_normal(
                    raw.shape[1:], dtype=np.float32
                )
            noise = scale_noise_to_snr(signal, self.imager.noise(raw), p.snr)
            data = signal + noise
        else:
            data = signal.copy()
        if p.normalise:
            mean = data.mean(axis=(1, 2, 3), dtype=np.float64, keepdims=True)
            std = data.std(axis=(1, 2, 3), dtype=np.float64, keepdims=True)
            inv = (1.0 / np.where(std > 0, std, 1.0)).astype(np.float32)
            mean = mean.astype(np.float32)
            data = (data - mean) * inv
            if stages:
                signal = (signal - mean) * inv
        snr_value = np.inf if p.snr is None else float(p.snr)
        meta = {
            "sample_index": idx.copy(),
            "quaternion_xyzw": draw["quaternion"],
            "shift_zyx": draw["shift"].astype(np.float32),
            "defocus_um": (draw["defocus"] if p.imaging.ctf else np.full(n, np.nan)).astype(
                np.float32
            ),
            "snr": np.full(n, snr_value, dtype=np.float32),
        }
        return SimBatch(
            indices=idx,
            ids=sample_ids(self.seed, idx),
            labels=draw["class"].astype(np.int64),
            data=data.astype(np.float32, copy=False),
            masks=mask,
            meta=meta,
            particles=dens if stages else None,
            signal=signal if stages else None,
        )


# --- writing ------------------------------------------------------------------------------

_WORKER: dict[str, object] = {}


def _worker_init(
    templates: list[Template], params: SubtomogramParams, seed: int, masks: bool
) -> None:
    import torch

    # Ctrl-C reaches the whole process group: the parent stops the pool, workers do not
    # each print a traceback. SIGTERM keeps its default (the parent may terminate them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    _WORKER["sim"] = Simulator(templates, params, seed)
    _WORKER["masks"] = masks


_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends (they are delivered right after).

    Submitting to the pool may start a worker; a signal in the middle of that would cut
    the start-up data the worker reads, and it would die with a traceback of its own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in _DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def _result(future: cf.Future[SimBatch]) -> SimBatch:
    """``future.result()``, waking up often: a signal that another thread receives only
    interrupts the main thread when it runs Python code (Ctrl-C must not wait a batch)."""
    while True:
        try:
            return future.result(timeout=0.1)
        except cf.TimeoutError:
            continue


def _worker_generate(indices: np.ndarray) -> SimBatch:
    sim = _WORKER["sim"]
    assert isinstance(sim, Simulator)
    return sim.generate(indices, masks=bool(_WORKER["masks"]))


def _batches(lo: int, hi: int, batch_size: int) -> list[np.ndarray]:
    return [
        np.arange(s, min(s + batch_size, hi), dtype=np.int64) for s in range(lo, hi, batch_size)
    ]


def iter_batches(
    simulator: Simulator,
    lo: int,
    hi: int,
    *,
    batch_size: int = 64,
    masks: bool = False,
    workers: int = 1,
) -> Generator[SimBatch, None, None]:
    """Generate samples ``lo..hi-1`` in order, in batches, with ``workers`` processes.

    Memory stays bounded: at most ``2 * workers`` batches are in flight.
    """
    chunks = _batches(lo, hi, batch_size)
    if workers <= 1:
        for chunk in chunks:
            yield simulator.generate(chunk, masks=masks)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(simulator.bank.templates, simulator.params, simulator.seed, masks),
    )
    finished = False
    try:
        pending: deque[cf.Future[SimBatch]] = deque()
        it = iter(chunks)
        for chunk in it:
            with _signals_deferred():
                pending.append(pool.submit(_worker_generate, chunk))
            if len(pending) >= 2 * workers:
                break
        while pending:
            batch = _result(pending.popleft())
            nxt = next(it, None)
            if nxt is not None:
                with _signals_deferred():
                    pending.append(pool.submit(_worker_generate, nxt))
            yield batch
        finished = True
    finally:
        # Interrupted (Ctrl-C, SIGTERM, an error, the consumer stopped): drop queued
        # batches and stop the workers now instead of waiting for them.
        workers_started = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=finished, cancel_futures=not finished)
        if not finished:
            for proc in workers_started:
                proc.terminate()
            for proc in workers_started:
                proc.join(timeout=5)


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"K/N"`` or ``(K, N)`` -> ``(K, N)`` with ``0 <= K < N``; None stays None."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            k_str, n_str = shard.split("/")
            k, n = int(k_str), int(n_str)
        except ValueError:
            raise ValueError(f"shard {shard!r} must be K/N with 0 <= K < N (e.g. 0/4)") from None
    else:
        k, n = (int(v) for v in shard)
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n} must satisfy 0 <= K < N (e.g. 0/4)")
    return k, n


def shard_range(start: int, total: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Sample index range ``[lo, hi)`` of a shard of ``total`` samples starting at ``start``."""
    if shard is None:
        return start, start + total
    k, n = shard
    return start + total * k // n, start + total * (k + 1) // n


def simulate_subtomograms(
    out_h5: str | os.PathLike,
    *,
    templates: str | os.PathLike | Sequence[Template] | None = None,
    n_classes: int | None = None,
    per_class: int = 100,
    box: int = 32,
    voxel_size_A: float = 10.0,
    snr: float | None = 0.05,
    tilt_range: tuple[float, float] = (-60.0, 60.0),
    seed: int = 0,
    ctf: bool = True,
    defocus_range_um: tuple[float, float] = (2.0, 5.0),
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_flip: bool = False,
    wedge: bool = True,
    path: str = "fourier",
    tilt_step_deg: float = 3.0,
    max_shift_voxels: float = 0.5,
    crowding: int = 0,
    normalise: bool = True,
    masks: bool = False,
    start_index: int = 0,
    shard: str | tuple[int, int] | None = None,
    workers: int = 1,
    batch_size: int = 64,
    dtype: str = "float32",
    compression_level: int = 0,
    preview: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: CountCallback | None = None,
) -> Path:
    """Simulate a labelled subtomogram dataset and write it as an HDF5 store.

    The dataset holds samples ``start_index .. start_index + n_classes * per_class - 1``
    (or the ``shard``'s contiguous part of them); see the module docstring for what each
    sample is. Arguments not listed below are :class:`SubtomogramParams` /
    :class:`cryoal.sim.imaging.ImagingParams` fields.

    Parameters
    ----------
    out_h5
        Output store (written atomically).
    templates
        None (generated phantoms), a folder of maps/models, or Template objects.
    n_classes
        Number of classes (phantoms: default 10; folder: the first N files).
    per_class
        Samples per class.
    start_index
        First sample index (a test set from the same seed: a disjoint index range).
    shard
        ``"K/N"``: write only the K-th of N contiguous parts; :func:`merge_shards`
        joins them into the same store the unsharded run writes.
    workers
        Generator processes (the calling process writes).
    batch_size
        Samples per generated batch (results do not depend on it).
    dtype, compression_level
        Storage of the subtomograms (``float32``/``float16``; gzip level 0-9). Noisy
        float32 compresses by only ~14 % at more CPU cost than simulating, hence 0.
    preview
        Also write a PNG montage of one sample per class (see :mod:`cryoal.sim.preview`).
    progress
        Called with the number of samples written after every batch.

    Returns
    -------
    Path
        ``out_h5``.
    """
    out_h5 = Path(out_h5)
    check_can_write(out_h5, overwrite)
    if preview is not None:
        check_can_write(preview, True)
    seed = check_seed(seed)
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per-class count {per_class} must be a positive integer")
    if int(start_index) != start_index or start_index < 0:
        raise ValueError(f"start index {start_index} must be a non-negative integer")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers {workers} must be a positive integer")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be a positive integer")
    shard_kn = parse_shard(shard)
    imaging = ImagingParams(
        ctf=ctf,
        defocus_range_um=float_pair(defocus_range_um),
        voltage_kV=voltage_kV,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_flip=phase_flip,
        wedge=wedge,
        tilt_range_deg=float_pair(tilt_range),
        tilt_step_deg=tilt_step_deg,
        path=path,
    )
    params = SubtomogramParams(
        box=int(box),
        voxel_size_A=float(voxel_size_A),
        snr=snr,
        imaging=imaging,
        max_shift_voxels=max_shift_voxels,
        crowding=int(crowding),
        normalise=normalise,
    )
    params.check()
    tmpl = load_templates(templates, params.voxel_size_A, n_classes=n_classes, seed=seed)
    check_fits_box(tmpl, params.box)
    sim = Simulator(tmpl, params, seed)
    total = sim.n_classes * int(per_class)
    lo, hi = shard_range(int(start_index), total, shard_kn)
    source = (
        "phantoms"
        if templates is None
        else (str(templates) if isinstance(templates, (str, os.PathLike)) else "objects")
    )
    attrs: dict[str, str | int | float | bool] = {
        "sim_version": SIM_VERSION,
        "sim_seed": seed,
        "sim_snr": float("inf") if snr is None else float(snr),
        "sim_path": imaging.path,
        "sim_ctf": bool(ctf),
        "sim_defocus_min_um": float(imaging.defocus_range_um[0]),
        "sim_defocus_max_um": float(imaging.defocus_range_um[1]),
        "sim_voltage_kV": float(voltage_kV),
        "sim_cs_mm": float(cs_mm),
        "sim_amplitude_contrast": float(amplitude_contrast),
        "sim_phase_flip": bool(phase_flip),
        "sim_wedge": bool(wedge),
        "sim_tilt_min_deg": float(imaging.tilt_range_deg[0]),
        "sim_tilt_max_deg": float(imaging.tilt_range_deg[1]),
        "sim_tilt_step_deg": float(tilt_step_deg),
        "sim_max_shift_voxels": float(max_shift_voxels),
        "sim_crowding": int(crowding),
        "sim_normalise": bool(normalise),
        "sim_templates": source,
        "sim_index_start": int(lo),
        "sim_index_stop": int(hi),
        "sim_dataset_start": int(start_index),
        "sim_dataset_stop": int(start_index) + total,
    }
    if masks:
        attrs["sim_mask_convention"] = MASK_CONVENTION
    with StoreWriter(
        out_h5,
        params.box,
        params.voxel_size_A,
        sim.class_names,
        dtype=dtype,
        with_masks=masks,
        extra_attrs=attrs,
        compression_level=compression_level,
        overwrite=overwrite,
    ) as writer:
        batches = iter_batches(
            sim, lo, hi, batch_size=int(batch_size), masks=masks, workers=int(workers)
        )
        # closing(): on Ctrl-C or an error the worker pool stops now, not at garbage
        # collection (which may come after the interpreter waits for the workers).
        with contextlib.closing(batches):
            for batch in batches:
                writer.append(
                    batch.data, batch.ids, labels=batch.labels, masks=batch.masks, meta=batch.meta
                )
                if progress is not None:
                    progress(len(batch.ids))
    log.info(
        "wrote %d simulated subtomograms (%s) to %s", hi - lo, ", ".join(sim.class_names), out_h5
    )
    if preview is not None:
        from cryoal.sim.preview import write_preview

        first = np.arange(lo, min(lo + sim.n_classes, hi))
        write_preview(preview, sim, first)
    return out_h5


def merge_shards(
    out_h5: str | os.PathLike,
    shards: Sequence[str | os.PathLike],
    *,
    overwrite: bool = False,
    chunk: int = 256,
) -> Path:
    """Join shard stores of one simulated dataset into one store, in sample order.

    The shards must come from the same simulation settings and together cover one
    contiguous index range; the result equals what the unsharded run writes.

    Raises
    ------
    ValueError
        Shards from different simulations, overlapping, or with a gap.
    """
    out_h5 = Path(out_h5)
    check_can_write(out_h5, overwrite)
    if not shards:
        raise ValueError("no shard files given; pass the stores written with --shard K/N")
    stores = [SubtomogramStore(p) for p in shards]
    try:
        for s in stores:
            if "sim_index_start" not in s.extra_attrs:
                raise ValueError(f"{s.path}: not a simulated store (no sim_index_start attribute)")
        stores.sort(key=lambda s: int(s.extra_attrs["sim_index_start"]))
        ref = stores[0]
        varying = ("sim_index_start", "sim_index_stop")
        same = {k: v for k, v in ref.extra_attrs.items() if k not in varying}
        for s in stores[1:]:
            other = {k: v for k, v in s.extra_attrs.items() if k not in varying}
            if (
                other != same
                or s.box != ref.box
                or s.class_names != ref.class_names
                or s.has_masks != ref.has_masks
            ):
                diff = sorted(k for k in set(same) | set(other) if same.get(k) != other.get(k))
                raise ValueError(
                    f"{s.path}: simulated with different settings than {ref.path} ({diff or 'box/classes/masks'}); "
                    "merge only shards of one run"
                )
        for a, b in zip(stores, stores[1:], strict=False):
            stop, start = (
                int(a.extra_attrs["sim_index_stop"]),
                int(b.extra_attrs["sim_index_start"]),
            )
            if stop != start:
                kind = "overlap" if start < stop else "gap"
                raise ValueError(
                    f"shards {a.path} and {b.path} have a {kind} in sample indices ({stop} vs {start}); "
                    "pass every shard K/N of one run exactly once"
                )
        attrs = dict(same)
        attrs["sim_index_start"] = int(stores[0].extra_attrs["sim_index_start"])
        attrs["sim_index_stop"] = int(stores[-1].extra_attrs["sim_index_stop"])
        with StoreWriter(
            out_h5,
            ref.box,
            ref.voxel_size_A,
            ref.class_names,
            dtype=str(ref.dtype),
            with_masks=ref.has_masks,
            extra_attrs=attrs,
            overwrite=overwrite,
        ) as writer:
            for s in stores:
                meta_all = {name: s.meta(name) for name in s.meta_names}
                for first in range(0, len(s), chunk):
                    sl = slice(first, min(first + chunk, len(s)))
                    writer.append(
                        s.subtomograms(sl),
                        list(s.ids[sl]),
                        labels=s.labels[sl],
                        masks=s.masks(sl) if s.has_masks else None,
                        meta={k: v[sl] for k, v in meta_all.items()},
                    )
    finally:
        for s in stores:
            s.close()
    return out_h5
