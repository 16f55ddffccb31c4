"""Whole simulated tomograms: non-overlapping particles of several classes, with ground truth.

Outputs in ``out_dir``:

* ``tomogram.mrc``: float32 ``(z, y, x)`` with the voxel size in the header and the label
  ``cryoal polarity=bright`` (protein is brighter than the background here, unlike in
  most reconstructions; ``cryoal project detect`` picks the polarity up);
* ``labels.mrc``: the label volume, 0 = background, ``class index + 1`` on each particle's
  support (the same convention as simulated subtomogram masks; ``class_names[v - 1]``);
  with membranes, ``len(class_names) + 1`` on each bilayer (``label_names`` in
  ``simulation.json`` names every value);
* ``particles.star`` (RELION 4, ``rlnClassNumber`` = class index + 1) and ``particles.csv``
  (Å, corner origin) via :mod:`cryoal.io.coords`: the ground-truth picks;
* ``ground_truth.csv``: per particle the exact centre (zyx voxels), class and rotation
  (scipy quaternion ``x, y, z, w`` acting on xyz, see :mod:`cryoal.sim.transforms`); with
  membranes, the index of the membrane it sits against (``membrane``, -1 when free);
* ``simulation.json``: the settings, class names, the defocus drawn and the polarity; with
  membranes, their settings and geometry (voxels).

The files are written into a temporary folder beside ``out_dir`` and moved into place
together (:func:`cryoal.io.atomic.atomic_dir`), so an interrupted run never leaves a
tomogram without its labels and picks.

Particles are placed one after another at uniformly random positions, rejecting any that
would come closer to an earlier one than the sum of their support radii plus
``min_gap_voxels``, so supports never overlap. With membranes (:mod:`cryoal.sim.membranes`:
vesicles and curved sheets of lipid bilayer) the membranes are drawn first; a share of the
particles is placed against one and every particle keeps clear of the bilayers. The whole volume is then imaged with one
defocus (CTF) and the missing wedge (Fourier mask or tilt series + back-projection), and
noise is added so that the mean over particles of the signal variance in a box of
``snr_box`` voxels around each particle, divided by the noise variance, is the SNR: a
subtomogram extracted from this tomogram then has about the SNR of a simulated
subtomogram dataset with the same setting.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryoal.io.atomic import atomic_dir, atomic_write_text, check_can_write
from cryoal.io.coords import write_csv, write_star
from cryoal.io.mrc import class_labels, polarity_label, write_mrc
from cryoal.io.names import check_tomo_id
from cryoal.sim.imaging import Imager, ImagingParams, float_pair
from cryoal.sim.membranes import MEMBRANE_NAME, MembraneParams, MembraneSet
from cryoal.sim.noise import check_snr
from cryoal.sim.streams import check_seed, sample_rng
from cryoal.sim.subtomograms import MASK_CONVENTION, SIM_VERSION
from cryoal.sim.templates import Template, load_templates
from cryoal.sim.transforms import TemplateBank, random_quaternion, rotation_matrices_zyx

log = logging.getLogger(__name__)

#: Simulated density is positive: particles are brighter than the background, the opposite
#: of most reconstructions. Recorded in the tomogram's header (``polarity_label``) and in
#: ``simulation.json``; ``cryoal project add-tomogram`` reads it.
POLARITY = "bright"

OUTPUT_FILES = (
    "tomogram.mrc",
    "labels.mrc",
    "particles.star",
    "particles.csv",
    "ground_truth.csv",
    "simulation.json",
)


@dataclass
class SimulatedTomogram:
    """What :func:`simulate_tomogram` wrote.

    Attributes
    ----------
    out_dir
        The folder.
    tomogram, labels, star, csv, ground_truth, settings
        Paths of the files.
    picks
        Canonical coordinate table (``candidate_id, tomo_id, z, y, x, class_name``).
    """

    out_dir: Path
    tomogram: Path
    labels: Path
    star: Path
    csv: Path
    ground_truth: Path
    settings: Path
    picks: pd.DataFrame


def place_particles(
    shape_zyx: tuple[int, int, int],
    radii: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    *,
    min_gap_voxels: float = 1.0,
    max_tries: int = 2000,
    membranes: MembraneSet | None = None,
    bound: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random non-overlapping centres for particles of the given support radii.

    Parameters
    ----------
    shape_zyx
        Volume shape.
    radii
        ``(C,)`` support radius per class, voxels.
    classes
        ``(n,)`` class of each particle, placed in this order.
    rng
        Random generator.
    min_gap_voxels
        Extra distance between supports.
    max_tries
        Random positions tried per particle before giving up.
    membranes
        Membranes every particle keeps clear of (:meth:`MembraneSet.clear_of`).
    bound
        ``(n,)`` bool: the particles placed against a membrane
        (:meth:`MembraneSet.propose_bound`); needs ``membranes``.

    Returns
    -------
    centres, on_membrane
        ``(n, 3)`` zyx centres (voxels), each at least ``radius + 1`` from the volume edge,
        and ``(n,)`` int64 the membrane each particle is bound to (-1: free).

    Raises
    ------
    ValueError
        A particle does not fit, or no free position was found (the volume is too full).
    """
    shape = np.asarray(shape_zyx, dtype=np.float64)
    n = len(classes)
    if bound is not None and bound.any() and membranes is None:
        raise ValueError("membrane-bound particles need membranes")
    centres = np.empty((n, 3))
    on_membrane = np.full(n, -1, dtype=np.int64)
    r_all = radii[classes]
    for i in range(n):
        r = r_all[i]
        lo = np.full(3, r + 1.0)
        hi = shape - 2.0 - r
        if np.any(hi < lo):
            raise ValueError(
                f"a particle of radius {r:.1f} voxels does not fit a tomogram of shape {tuple(shape_zyx)}; "
                "use a larger --shape"
            )
        on_it = bound is not None and bool(bound[i])
        for _ in range(max_tries):
            k = -1
            if on_it:
                assert membranes is not None
                c, k = membranes.propose_bound(rng, float(r))
                if np.any(c < lo) or np.any(c > hi):
                    continue
            else:
                c = rng.uniform(lo, hi)
            if (
                i == 0
                or np.all(np.linalg.norm(centres[:i] - c, axis=1) >= r_all[:i] + r + min_gap_voxels)
            ) and (membranes is None or membranes.clear_of(c, float(r), skip=k)):
                centres[i] = c
                on_membrane[i] = k
                break
        else:
            where = " against a membrane" if on_it else ""
            raise ValueError(
                f"placed {i} of {n} particles{where} without overlap in a tomogram of shape "
                f"{tuple(shape_zyx)}; use a larger --shape, fewer --particles or fewer membranes"
            )
    return centres, on_membrane


def _render_into(
    bank: TemplateBank,
    classes: np.ndarray,
    quats: np.ndarray,
    centres: np.ndarray,
    shape: tuple[int, int, int],
    chunk: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Add every particle's density to a volume and its class + 1 to a label volume."""
    vol = np.zeros(shape, dtype=np.float32)
    lab_dtype = np.uint8 if len(bank) < 255 else np.int16
    labels = np.zeros(shape, dtype=lab_dtype)
    half = int(math.ceil(float(bank.radii.max()))) + 2
    size = 2 * half + 1
    ic = np.floor(centres + 0.5).astype(np.int64)
    local = centres - ic + half  # particle centre inside its local box
    rot = rotation_matrices_zyx(quats)
    for a in range(0, len(classes), chunk):
        sl = slice(a, a + chunk)
        dens, sup = bank.render(classes[sl], rot[sl], local[sl], (size, size, size))
        for j, (d, s) in enumerate(zip(dens, sup, strict=True)):
            i = a + j
            lo = ic[i] - half
            src_lo = np.maximum(-lo, 0)
            dst_lo = np.maximum(lo, 0)
            dst_hi = np.minimum(lo + size, shape)
            src_hi = src_lo + (dst_hi - dst_lo)
            dst = tuple(slice(int(p), int(q)) for p, q in zip(dst_lo, dst_hi, strict=True))
            src = tuple(slice(int(p), int(q)) for p, q in zip(src_lo, src_hi, strict=True))
            vol[dst] += d[src]
            labels[dst][s[src]] = classes[i] + 1
    return vol, labels


def box_signal_variance(volume: np.ndarray, centres: np.ndarray, box: int) -> float:
    """Mean over particles of the variance of ``volume`` in a ``box``-voxel cube at each centre
    (clipped at the volume edge)."""
    h = box // 2
    out = []
    for c in np.floor(centres + 0.5).astype(np.int64):
        lo = np.maximum(c - h, 0)
        hi = np.minimum(c - h + box, volume.shape)
        out.append(float(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].var(dtype=np.float64)))
    return float(np.mean(out))


def simulate_tomogram(
    out_dir: str | os.PathLike,
    *,
    shape_zyx: tuple[int, int, int] = (64, 256, 256),
    n_particles: int = 50,
    templates: str | os.PathLike | Sequence[Template] | None = None,
    n_classes: int | None = None,
    voxel_size_A: float = 10.0,
    snr: float | None = 0.05,
    seed: int = 0,
    tilt_range: tuple[float, float] = (-60.0, 60.0),
    ctf: bool = True,
    defocus_range_um: tuple[float, float] = (2.0, 5.0),
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_flip: bool = False,
    wedge: bool = True,
    path: str = "fourier",
    tilt_step_deg: float = 3.0,
    snr_box: int = 32,
    min_gap_voxels: float = 1.0,
    normalise: bool = True,
    tomo_id: str = "sim_tomo",
    membranes: MembraneParams | None = None,
    overwrite: bool = False,
) -> SimulatedTomogram:
    """Simulate one tomogram with ground-truth picks and labels (see the module docstring).

    Parameters
    ----------
    out_dir
        Output folder (created if missing).
    shape_zyx
        Tomogram shape, voxels.
    n_particles
        Number of particles; classes are assigned in turn (``k mod C``), so they are balanced.
    templates, n_classes
        As for :func:`cryoal.sim.subtomograms.simulate_subtomograms`.
    snr
        Target SNR in ``snr_box``-voxel boxes around the particles (None/inf: noise-free).
    tomo_id
        Tomogram id in the pick files; particle ids are ``"<tomo_id>:<k, 6 digits>"``.
        Letters, digits and ``_ . -`` (:func:`cryoal.io.names.check_tomo_id`), checked
        before anything is simulated.
    normalise
        Scale the tomogram to zero mean and unit standard deviation.
    membranes
        Vesicles and curved sheets of lipid bilayer to add, with membrane-bound particles
        (:mod:`cryoal.sim.membranes`); their label is ``len(class_names) + 1``. None: no
        membranes (the output is then exactly as without this option).

    Other parameters are the imaging settings of :class:`cryoal.sim.imaging.ImagingParams`.
    """
    out_dir = Path(out_dir)
    check_tomo_id(tomo_id)
    seed = check_seed(seed)
    shape = tuple(int(s) for s in shape_zyx)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(
            f"tomogram shape {shape_zyx} must be three sizes Z Y X of at least 8 voxels"
        )
    if int(n_particles) != n_particles or n_particles < 1:
        raise ValueError(f"number of particles {n_particles} must be a positive integer")
    check_snr(snr)
    if int(snr_box) != snr_box or snr_box < 4:
        raise ValueError(f"SNR box {snr_box} must be an integer >= 4 voxels")
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
    imaging.check()
    if membranes is not None:
        membranes.check()
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(
            f"{out_dir}: exists and is not a folder; choose another output folder"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        if (out_dir / name).exists() and not overwrite:
            check_can_write(out_dir / name, overwrite)

    tmpl = load_templates(templates, voxel_size_A, n_classes=n_classes, seed=seed)
    bank = TemplateBank(tmpl)
    n = int(n_particles)
    classes = np.arange(n, dtype=np.int64) % len(bank)
    rng = sample_rng(seed, 0, "placement")
    quats = np.stack([random_quaternion(rng) for _ in range(n)])
    membrane_set, bound = None, None
    if membranes is not None:
        mrng = sample_rng(seed, 0, "membranes")
        membrane_set = MembraneSet(membranes, shape, voxel_size_A, mrng, gap_voxels=min_gap_voxels)
        bound = np.zeros(n, dtype=bool)
        bound[mrng.permutation(n)[: int(round(membranes.bound_fraction * n))]] = True
    centres, on_membrane = place_particles(
        shape,
        bank.radii,
        classes,
        rng,
        min_gap_voxels=min_gap_voxels,
        membranes=membrane_set,
        bound=bound,
    )
    density, labels = _render_into(bank, classes, quats, centres, shape)
    if membrane_set is not None:
        protein = float(np.mean([t.density[t.density > t.support_level].mean() for t in tmpl]))
        m_density, m_mask = membrane_set.render(protein)
        density += m_density
        if len(bank) + 1 > np.iinfo(labels.dtype).max:
            labels = labels.astype(np.int16)
        labels[m_mask & (labels == 0)] = len(bank) + 1
        del m_density, m_mask
    lo, hi = imaging.defocus_range_um
    defocus = float(sample_rng(seed, 0, "params").uniform(lo, hi))

    imager = Imager(shape, voxel_size_A, imaging)
    signal = imager.signal(density[None], np.array([defocus]))[0]
    del density
    volume = signal
    if snr is not None and not math.isinf(snr):
        raw = sample_rng(seed, 0, "noise").standard_normal(
            (1, *imager.noise_shape()), dtype=np.float32
        )
        noise = imager.noise(raw)[0]
        noise -= np.float32(noise.mean(dtype=np.float64))
        target = box_signal_variance(signal, centres, int(snr_box)) / snr
        noise *= np.float32(math.sqrt(target / float(noise.var(dtype=np.float64))))
        volume = signal + noise
        del noise
    if normalise:
        std = float(volume.std(dtype=np.float64))
        volume = (volume - np.float32(volume.mean(dtype=np.float64))) / np.float32(
            std if std > 0 else 1.0
        )

    names = bank.names
    ids = [f"{tomo_id}:{k:06d}" for k in range(n)]
    picks = pd.DataFrame(
        {
            "candidate_id": ids,
            "tomo_id": [tomo_id] * n,
            "z": centres[:, 0],
            "y": centres[:, 1],
            "x": centres[:, 2],
            "class_name": [names[c] for c in classes],
        }
    )
    truth = picks.drop(columns=["tomo_id"]).assign(
        class_index=classes, qx=quats[:, 0], qy=quats[:, 1], qz=quats[:, 2], qw=quats[:, 3]
    )
    if membrane_set is not None:
        truth["membrane"] = on_membrane
    settings = {
        "sim_version": SIM_VERSION,
        "seed": seed,
        "shape_zyx": list(shape),
        "voxel_size_A": float(voxel_size_A),
        "n_particles": n,
        "class_names": names,
        "templates": "phantoms"
        if templates is None
        else str(templates)
        if isinstance(templates, (str, os.PathLike))
        else "objects",
        "snr": None if snr is None or math.isinf(snr) else float(snr),
        "snr_box": int(snr_box),
        "defocus_um": defocus if ctf else None,
        "imaging": asdict(imaging),
        "label_convention": MASK_CONVENTION,
        "normalise": bool(normalise),
        "tomo_id": tomo_id,
        "polarity": POLARITY,
    }
    if membrane_set is not None:
        settings["label_names"] = [*names, MEMBRANE_NAME]
        settings["membranes"] = membrane_set.describe()
    with atomic_dir(out_dir, overwrite=overwrite, last="simulation.json") as tmp_dir:
        _write_outputs(tmp_dir, volume, labels, picks, truth, settings, names, voxel_size_A)
    log.info("wrote tomogram %s with %d particles to %s", shape, n, out_dir)
    files = {name: out_dir / name for name in OUTPUT_FILES}
    return SimulatedTomogram(
        out_dir=out_dir,
        tomogram=files["tomogram.mrc"],
        labels=files["labels.mrc"],
        star=files["particles.star"],
        csv=files["particles.csv"],
        ground_truth=files["ground_truth.csv"],
        settings=files["simulation.json"],
        picks=picks,
    )


def _write_outputs(
    out_dir: Path,
    volume: np.ndarray,
    labels: np.ndarray,
    picks: pd.DataFrame,
    truth: pd.DataFrame,
    settings: dict,
    names: list[str],
    voxel_size_A: float,
) -> None:
    """Write the output set into ``out_dir`` (a fresh temporary folder)."""
    files = {name: out_dir / name for name in OUTPUT_FILES}
    overwrite = False
    write_mrc(
        files["tomogram.mrc"],
        volume.astype(np.float32, copy=False),
        voxel_size_A,
        overwrite=overwrite,
        labels=[polarity_label(POLARITY)],
    )
    write_mrc(
        files["labels.mrc"],
        labels,
        voxel_size_A,
        overwrite=overwrite,
        labels=class_labels(["background", *settings.get("label_names", names)]),
    )
    write_star(
        picks,
        files["particles.star"],
        voxel_size_A=voxel_size_A,
        version=4,
        class_names=names,
        overwrite=overwrite,
    )
    write_csv(
        picks,
        files["particles.csv"],
        unit="angstrom",
        voxel_size_A=voxel_size_A,
        overwrite=overwrite,
    )
    atomic_write_text(
        files["ground_truth.csv"],
        truth.to_csv(index=False, float_format="%.6f"),
        overwrite=overwrite,
    )
    atomic_write_text(
        files["simulation.json"], json.dumps(settings, indent=1) + "\n", overwrite=overwrite
    )
