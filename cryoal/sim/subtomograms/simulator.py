"""The simulator: any sample of a simulated subtomogram dataset, as a pure function.

Sample ``i`` of a dataset with seed ``s`` is a pure function of ``(s, i)``:

* class ``i mod C`` (so every prefix, shard and the whole set is balanced);
* from the ``params`` stream: a uniform random rotation, a sub-voxel shift (uniform in
  ``[-max_shift, max_shift]`` voxels per axis) and a defocus (uniform in the range);
* from the ``crowding`` stream: the neighbours (class, rotation, direction), if any;
* from the ``noise`` stream: the noise;
* from the ``noise-half`` stream (``halves=True``): the second noise draw that splits the
  sample into two half reconstructions.

The particle's centre of mass sits at voxel ``box // 2`` plus the shift (the same centre
convention as :func:`cryoal.data.extract.extract_subtomograms`). The noise-free signal is
made by :class:`cryoal.sim.imaging.Imager` (CTF, missing wedge), the noise is scaled so
that ``var(signal) / var(noise)`` over the box equals the SNR, and each sample is then
normalised to zero mean and unit standard deviation (like extracted subtomograms).

Half pairs (``halves=True``) imitate the odd/even half tomograms of real data: with ``n`` the
sample's noise and ``m`` a second draw made exactly like it (same process and scale), the
halves are ``signal + n + m`` and ``signal + n - m``. Their mean is the sample, their noises
are uncorrelated (``var n == var m`` per sample) and each has twice the sample's noise
variance (half the SNR), as a reconstruction from half the dose has; each half is then
normalised on its own.

Segmentation masks (``masks=True``) hold 0 for background and ``class index + 1`` for the
voxels of each particle's support after rotation (neighbours included, with their own
class), so one mask serves semantic segmentation; ``mask > 0`` is the binary mask.

Also the settings (:class:`SubtomogramParams`), the batch of results (:class:`SimBatch`),
the stable sample ids, the simulation version and the mask convention that the stores
record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cryoal.sim.imaging import Imager, ImagingParams
from cryoal.sim.noise import check_snr, scale_noise_to_snr
from cryoal.sim.streams import check_seed, sample_rng
from cryoal.sim.templates import Template
from cryoal.sim.transforms import TemplateBank, random_quaternion, rotation_matrices_zyx

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
    halves
        ``(n, 2, b, b, b)`` float32 half reconstructions (``halves=True``), or None.
    """

    indices: np.ndarray
    ids: list[str]
    labels: np.ndarray
    data: np.ndarray
    masks: np.ndarray | None
    meta: dict[str, np.ndarray]
    particles: np.ndarray | None = None
    signal: np.ndarray | None = None
    halves: np.ndarray | None = None


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
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        masks: bool = False,
        stages: bool = False,
        halves: bool = False,
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
        halves
            Also return each sample's two half reconstructions (see the module docstring).
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
        noisy = p.snr is not None and not math.isinf(p.snr)
        data = signal + self._noise(signal, idx, "noise") if noisy else signal.copy()
        pairs = None
        if halves:
            split = self._noise(signal, idx, "noise-half") if noisy else np.zeros_like(data)
            pairs = np.stack([data + split, data - split], axis=1)
        if p.normalise:
            mean = data.mean(axis=(1, 2, 3), dtype=np.float64, keepdims=True)
            std = data.std(axis=(1, 2, 3), dtype=np.float64, keepdims=True)
            inv = (1.0 / np.where(std > 0, std, 1.0)).astype(np.float32)
            mean = mean.astype(np.float32)
            data = (data - mean) * inv
            if stages:
                signal = (signal - mean) * inv
            if pairs is not None:
                h_mean = pairs.mean(axis=(2, 3, 4), dtype=np.float64, keepdims=True)
                h_std = pairs.std(axis=(2, 3, 4), dtype=np.float64, keepdims=True)
                pairs = (pairs - h_mean.astype(np.float32)) / np.where(
                    h_std > 0, h_std, 1.0
                ).astype(np.float32)
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
            halves=None if pairs is None else pairs.astype(np.float32, copy=False),
        )

    def _noise(self, signal: np.ndarray, idx: np.ndarray, stream: str) -> np.ndarray:
        """``(n, b, b, b)`` noise of ``stream`` for samples ``idx``, scaled to the SNR."""
        raw = np.empty((idx.size, *self.imager.noise_shape()), dtype=np.float32)
        for j, i in enumerate(idx):
            raw[j] = sample_rng(self.seed, int(i), stream).standard_normal(
                raw.shape[1:], dtype=np.float32
            )
        return scale_noise_to_snr(signal, self.imager.noise(raw), self.params.snr)
