"""Particle templates: density maps (MRC), atomic models (PDB/mmCIF) and generated phantoms.

Every template is a cubic ``(d, d, d)`` float32 density (zyx, protein positive, background
0) at the simulation's voxel size, cropped around its centre of mass and softly masked to 0
at the crop edge so that rotating it never drags a box corner into view. The *support* of
a template (the particle's voxels, used for segmentation masks, crowding and non-overlap
in tomograms) is the set of voxels above ``support_fraction`` (default 10 %) of its maximum
density, the same definition the SHREC extents table in ``shared/structures`` uses.

Three sources:

* **maps** (``.mrc``, ``.map``, also gzip/bzip2-compressed: ``.map.gz``, ``.mrc.bz2``):
  read with the voxel size of their header and resampled to the target voxel size with
  cubic-spline interpolation (``scipy.ndimage.affine_transform``), after a Gaussian anti-aliasing
  filter of ``(factor - 1) / 2`` source voxels when downsampling (scikit-image's rule);
  see :func:`resample_volume` for how the physical size is kept.
* **atomic models** (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``): read with gemmi; the
  Coulomb potential is computed with ``gemmi.DensityCalculatorE`` (electron scattering
  factors, the right physics for electron microscopy, rather than X-ray factors) on a grid
  of exactly the target voxel size, with an extra blur ``B = 32 * voxel_size**2`` Å^2, the
  Gaussian whose amplitude is e^-2 at the grid's Nyquist frequency, so the map is band
  limited and not aliased. Waters are removed. Against the shipped 10 Å SHREC maps this
  gives Pearson correlation 0.9993 (3qm1) and 0.9994 (1bxn) after aligning centres of mass.
* **phantoms**: class-specific geometric arrangements of Gaussian blobs (ring, barrel,
  dumbbell, ...), defined in Å so that they render at any voxel size, for demos and tests
  that must not depend on external files.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cryoal.io.mrc import read_volume

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".mrc", ".map")
MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
#: Compression suffixes accepted after a map suffix (``emd_3197.map.gz``).
COMPRESSED_SUFFIXES = (".gz", ".bz2")
#: Names of files that look like maps or models (refused, never skipped, when unreadable).
_MAPLIKE = re.compile(r"\.(mrcs?|map|ccp4|rec|pdb|ent|cif|mmcif|em|spi)(\.|$)", re.IGNORECASE)


def split_template_name(path: Path) -> tuple[str, str] | None:
    """``(class name, kind)`` of a template file name, kind ``"map"`` or ``"model"``;
    None when the name is not a template's (``a.map.gz`` -> ``("a", "map")``)."""
    name = path.name
    lower = name.lower()
    for comp in ("", *COMPRESSED_SUFFIXES):
        for suffix in MAP_SUFFIXES:
            if lower.endswith(suffix + comp) and len(name) > len(suffix + comp):
                return name[: -len(suffix + comp)], "map"
    for suffix in MODEL_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], "model"
    return None


#: Default fraction of the maximum density that defines a template's support.
SUPPORT_FRACTION = 0.1


@dataclass(frozen=True, eq=False)
class Template:
    """One particle species.

    Attributes
    ----------
    name
        Class name (file stem for files, the phantom's name otherwise).
    density
        ``(d, d, d)`` float32 zyx density at ``voxel_size_A``, background 0.
    voxel_size_A
        Voxel size in Å.
    source
        Where it came from (a path, or ``"phantom"``).
    centre_zyx
        ``(3,)`` centre of mass in voxel coordinates of ``density`` (the rotation centre).
    radius_voxels
        Largest distance of a support voxel from ``centre_zyx``, voxels.
    support_level
        Absolute density above which a voxel belongs to the particle.
    """

    name: str
    density: np.ndarray
    voxel_size_A: float
    source: str
    centre_zyx: np.ndarray
    radius_voxels: float
    support_level: float

    @property
    def mass(self) -> float:
        """Sum of the density (arbitrary units x voxels)."""
        return float(self.density.sum(dtype=np.float64))


def make_template(
    name: str,
    density: np.ndarray,
    voxel_size_A: float,
    source: str = "array",
    *,
    support_fraction: float = SUPPORT_FRACTION,
) -> Template:
    """Build a :class:`Template` from a ``(z, y, x)`` density already at ``voxel_size_A``.

    The density is cropped to a cube around its centre of mass that holds the support
    plus a 3-voxel margin, and multiplied by a spherical mask with a cosine edge over the
    last 2 voxels of that margin.

    Raises
    ------
    ValueError
        Not 3-D, non-finite values, or no positive density.
    """
    d = np.asarray(density, dtype=np.float64)
    if d.ndim != 3:
        raise ValueError(
            f"template {name!r} ({source}): expected a 3-D density, got shape {d.shape}"
        )
    if not np.isfinite(d).all():
        raise ValueError(
            f"template {name!r} ({source}): density holds NaN/Inf; clean the map first"
        )
    peak = float(d.max())
    if not peak > 0:
        raise ValueError(
            f"template {name!r} ({source}): no positive density (max {peak}); a template must "
            "show the particle as positive values (invert the map's contrast if it is dark)"
        )
    if not 0 < support_fraction < 1:
        raise ValueError(f"support fraction {support_fraction} must be in (0, 1) (e.g. 0.1)")
    level = support_fraction * peak
    support = d > level
    com = np.array(ndimage.center_of_mass(np.where(support, d, 0.0)))
    pts = np.argwhere(support).astype(np.float64)
    radius = float(np.sqrt(((pts - com) ** 2).sum(axis=1)).max()) + 0.5 * math.sqrt(3.0)
    half = int(math.ceil(radius)) + 3
    icom = np.floor(com + 0.5).astype(int)
    size = 2 * half + 1
    out = np.zeros((size, size, size), dtype=np.float64)
    src_lo = icom - half
    lo = np.maximum(src_lo, 0)
    hi = np.minimum(icom + half + 1, d.shape)
    dst_lo = lo - src_lo
    dst_hi = dst_lo + (hi - lo)
    out[dst_lo[0] : dst_hi[0], dst_lo[1] : dst_hi[1], dst_lo[2] : dst_hi[2]] = d[
        lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]
    ]
    centre = com - src_lo
    grid = np.indices(out.shape, dtype=np.float64)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    edge0, edge1 = radius + 1.0, radius + 3.0
    soft = np.where(
        r <= edge0, 1.0, np.where(r >= edge1, 0.0, 0.5 + 0.5 * np.cos(np.pi * (r - edge0) / 2.0))
    )
    out *= soft
    return Template(
        name=str(name),
        density=out.astype(np.float32),
        voxel_size_A=float(voxel_size_A),
        source=str(source),
        centre_zyx=centre,
        radius_voxels=radius,
        support_level=float(level),
    )


def resample_volume(volume: np.ndarray, from_A: float, to_A: float) -> np.ndarray:
    """Resample a ``(z, y, x)`` volume from voxel size ``from_A`` to ``to_A`` (Å).

    The physical scale is exact: the content is scaled by ``from_A / to_A`` and nothing
    else (no stretching to fit a whole number of output voxels). The output has
    ``round(n * from_A / to_A)`` voxels per axis, the box whose edge ``n_out * to_A`` is
    closest to the input's ``n * from_A``, and the two boxes share their centre (the
    difference, under one output voxel, is padding or cropping split evenly between
    the sides). Cubic-spline interpolation (``scipy.ndimage.affine_transform``); when
    downsampling, a Gaussian anti-aliasing filter of ``(factor - 1) / 2`` source voxels
    is applied first (``factor = to_A / from_A``, scikit-image's rule). Density values
    (per volume) are kept, not summed.
    """
    if from_A <= 0 or to_A <= 0:
        raise ValueError(f"voxel sizes must be > 0 Å (got {from_A} -> {to_A})")
    factor = to_A / from_A
    vol = np.asarray(volume, dtype=np.float64)
    if abs(factor - 1.0) < 1e-6:
        return vol.astype(np.float32)
    if factor > 1.0:
        vol = ndimage.gaussian_filter(vol, sigma=(factor - 1.0) / 2.0, mode="constant")
    n_in = np.asarray(vol.shape, dtype=np.float64)
    n_out = np.maximum(1, np.round(n_in / factor)).astype(int)
    # Output voxel j (centre) lies at (j + 0.5 - n_out / 2) * to_A from the common box
    # centre; in input voxel indices that is (j + 0.5 - n_out / 2) * factor + n_in / 2 - 0.5.
    offset = (0.5 - n_out / 2.0) * factor + n_in / 2.0 - 0.5
    out = ndimage.affine_transform(
        vol,
        np.full(3, factor),
        offset=offset,
        output_shape=tuple(int(n) for n in n_out),
        order=3,
        mode="grid-constant",
        cval=0.0,
    )
    return out.astype(np.float32)


def load_map(
    path: str | os.PathLike,
    voxel_size_A: float,
    *,
    name: str | None = None,
    map_voxel_size_A: float | None = None,
    support_fraction: float = SUPPORT_FRACTION,
) -> Template:
    """A template from a density map (MRC), resampled to ``voxel_size_A``.

    Parameters
    ----------
    path
        ``.mrc`` / ``.map`` file with protein as positive density.
    voxel_size_A
        Target voxel size (Å).
    name
        Class name (default: the file stem).
    map_voxel_size_A
        The map's voxel size when its header lacks one.
    """
    path = Path(path)
    data, src_vs = read_volume(path, voxel_size_A=map_voxel_size_A)
    data = resample_volume(data, src_vs, voxel_size_A)
    parsed = split_template_name(path)
    default_name = parsed[0] if parsed is not None else path.stem
    return make_template(
        name or default_name, data, voxel_size_A, str(path), support_fraction=support_fraction
    )


def model_blur_A2(voxel_size_A: float) -> float:
    """Extra B-factor (Å^2) that band-limits a model's density to a grid of ``voxel_size_A``.

    ``exp(-B s^2 / 4) = e^-2`` at the Nyquist frequency ``s = 1 / (2 voxel_size)`` gives
    ``B = 32 voxel_size^2`` (a Gaussian of sigma ``2 voxel_size / pi`` in real space).
    """
    return 32.0 * voxel_size_A**2


def density_from_model(
    path: str | os.PathLike,
    voxel_size_A: float,
    *,
    name: str | None = None,
    blur_A2: float | None = None,
    support_fraction: float = SUPPORT_FRACTION,
) -> Template:
    """A template from an atomic model (PDB / mmCIF) via ``gemmi.DensityCalculatorE``.

    The first model of the file is used, waters are removed, the atoms are centred in a
    P1 box (no crystal symmetry is applied) with room for the blurred atoms, and the
    density is computed with electron scattering factors plus ``blur_A2`` (default
    :func:`model_blur_A2`) on a grid of exactly ``voxel_size_A``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file cannot be read as a model, or holds no atoms.
    """
    import gemmi

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: atomic model not found; check the path")
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"{path}: cannot read as PDB/mmCIF ({' '.join(str(exc).split())})"
        ) from exc
    if len(st) == 0:
        raise ValueError(f"{path}: holds no model; pass a coordinate file with atoms")
    st.setup_entities()
    st.remove_waters()
    model = st[0]
    xyz = np.array([a.pos.tolist() for ch in model for res in ch for a in res], dtype=np.float64)
    if xyz.size == 0:
        raise ValueError(f"{path}: the first model holds no atoms (after removing waters)")
    blur = model_blur_A2(voxel_size_A) if blur_A2 is None else float(blur_A2)
    sigma_A = math.sqrt((blur + 80.0) / (8.0 * math.pi**2))  # + a typical atomic B of 80 Å^2
    extent = float((xyz.max(axis=0) - xyz.min(axis=0)).max())
    n = int(math.ceil((extent + 2 * (5 * sigma_A + 2 * voxel_size_A)) / voxel_size_A))
    n += n % 2
    box_A = n * voxel_size_A
    centre = 0.5 * (xyz.max(axis=0) + xyz.min(axis=0))
    shift = box_A / 2.0 - centre
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    st.cell = gemmi.UnitCell(box_A, box_A, box_A, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 2.0 * voxel_size_A
    dc.blur = blur
    dc.grid.set_unit_cell(st.cell)
    dc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    dc.grid.set_size(n, n, n)
    dc.add_model_density_to_grid(model)
    dc.grid.symmetrize_sum()
    # gemmi grids are indexed (u, v, w) = (x, y, z); cryoal arrays are (z, y, x).
    data = np.array(dc.grid, copy=True).transpose(2, 1, 0)
    return make_template(
        name or path.stem, data, voxel_size_A, str(path), support_fraction=support_fraction
    )


# --- phantoms -----------------------------------------------------------------------------

# Each phantom is a list of Gaussian blobs (x, y, z, sigma, weight), lengths in Å.
_Blob = tuple[float, float, float, float, float]


def _ring(n: int, radius: float, z: float, sigma: float, phase: float = 0.0) -> list[_Blob]:
    return [
        (
            radius * math.cos(phase + 2 * math.pi * i / n),
            radius * math.sin(phase + 2 * math.pi * i / n),
            z,
            sigma,
            1.0,
        )
        for i in range(n)
    ]


def _line(
    p0: tuple[float, float, float], p1: tuple[float, float, float], n: int, sigma: float
) -> list[_Blob]:
    blobs: list[_Blob] = []
    for i in range(n):
        t = i / max(n - 1, 1)
        z, y, x = (a + (b - a) * t for a, b in zip(p0, p1, strict=True))
        blobs.append((z, y, x, sigma, 1.0))
    return blobs


def _phantom_library() -> dict[str, list[_Blob]]:
    tet = [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]
    golden = math.pi * (3.0 - math.sqrt(5.0))
    shell = []
    for i in range(40):
        zf = 1.0 - 2.0 * (i + 0.5) / 40
        rr = math.sqrt(1.0 - zf * zf)
        shell.append(
            (55 * rr * math.cos(golden * i), 55 * rr * math.sin(golden * i), 55 * zf, 9.0, 0.5)
        )
    disc = [
        (x, y, 0.0, 9.0, 1.0)
        for x in np.arange(-60.0, 61.0, 15.0)
        for y in np.arange(-60.0, 61.0, 15.0)
        if x * x + y * y <= 62.0**2
    ]
    helix = [
        (35 * math.cos(t), 35 * math.sin(t), -70 + 70 * t / (2 * math.pi), 10.0, 1.0)
        for t in np.linspace(0, 4 * math.pi, 16)
    ]
    return {
        "ring": _ring(8, 50.0, 0.0, 12.0),
        "barrel": sum(
            (_ring(7, 40.0, z, 11.0, phase=0.45 * k) for k, z in enumerate((-45, -15, 15, 45))), []
        ),
        "dumbbell": [(-55, 0, 0, 22.0, 1.0), (55, 0, 0, 22.0, 1.0)]
        + _line((-30, 0, 0), (30, 0, 0), 4, 8.0),
        "tetrahedron": [(29 * a, 29 * b, 29 * c, 17.0, 1.0) for a, b, c in tet],
        "rod": _line((0, 0, -80), (0, 0, 80), 9, 11.0),
        "jack": [(0, 0, 0, 14.0, 1.0)]
        + [
            p
            for ax in np.eye(3)
            for s in (-1, 1)
            for p in [(*(s * 45 * ax), 10.0, 1.0), (*(s * 70 * ax), 8.0, 0.7)]
        ],
        "elbow": _line((0, 0, 0), (80, 0, 0), 5, 11.0) + _line((0, 16, 0), (0, 80, 0), 4, 11.0),
        "shell": shell,
        "disc": disc,
        "helix": helix,
    }


#: Names of the built-in phantom shapes, in class order; more classes get random blob sets.
PHANTOM_NAMES = tuple(_phantom_library())


def _random_blobs(seed: int, k: int) -> list[_Blob]:
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(k),)))
    m = int(rng.integers(4, 10))
    out = []
    for _ in range(m):
        v = rng.normal(size=3)
        p = v / np.linalg.norm(v) * 60.0 * rng.uniform(0.2, 1.0) ** (1 / 3)
        out.append(
            (
                float(p[0]),
                float(p[1]),
                float(p[2]),
                float(rng.uniform(8, 18)),
                float(rng.uniform(0.5, 1.5)),
            )
        )
    return out


def render_blobs(blobs: Sequence[_Blob], voxel_size_A: float) -> np.ndarray:
    """Render Gaussian blobs (x, y, z, sigma, weight in Å) to a ``(d, d, d)`` zyx density.

    Each blob is widened by the band-limiting Gaussian of :func:`model_blur_A2` (sigma
    ``2 voxel_size / pi``) so phantoms are as smooth, relative to the grid, as model maps.
    """
    blur_sigma = 2.0 * voxel_size_A / math.pi
    arr = np.asarray(blobs, dtype=np.float64)
    sig = np.sqrt(arr[:, 3] ** 2 + blur_sigma**2)
    reach = float(np.max(np.linalg.norm(arr[:, :3], axis=1) + 4 * sig))
    half = int(math.ceil(reach / voxel_size_A)) + 1
    coords = (np.arange(2 * half + 1) - half) * voxel_size_A
    z, y, x = np.meshgrid(coords, coords, coords, indexing="ij", sparse=True)
    out = np.zeros((2 * half + 1,) * 3)
    for (bx, by, bz, _, w), s in zip(arr, sig, strict=True):
        out += w * np.exp(-((x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2) / (2 * s * s))
    return out.astype(np.float32)


def phantom_templates(
    n_classes: int,
    voxel_size_A: float = 10.0,
    *,
    seed: int = 0,
    support_fraction: float = SUPPORT_FRACTION,
) -> list[Template]:
    """``n_classes`` generated phantoms with distinct, class-specific structure.

    The first ten are fixed shapes (:data:`PHANTOM_NAMES`: ring, barrel, dumbbell,
    tetrahedron, rod, jack, elbow, shell, disc, helix; 90-180 Å across); further classes
    are random constellations of 4-9 Gaussian blobs drawn from ``seed`` and the class
    number. Names are ``"<shape>"`` or ``"blobs<k>"``.
    """
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"number of classes {n_classes} must be a positive integer")
    lib = _phantom_library()
    out = []
    for k in range(int(n_classes)):
        if k < len(PHANTOM_NAMES):
            name, blobs = PHANTOM_NAMES[k], lib[PHANTOM_NAMES[k]]
        else:
            name, blobs = f"blobs{k}", _random_blobs(seed, k)
        dens = render_blobs(blobs, voxel_size_A)
        out.append(
            make_template(name, dens, voxel_size_A, "phantom", support_fraction=support_fraction)
        )
    return out


def template_files(folder: str | os.PathLike) -> list[Path]:
    """Map and model files in ``folder`` (sorted by name), the class order of a dataset."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: templates folder not found; check the path")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{folder}: --templates must be a folder of .mrc/.map/.pdb/.cif files"
        )
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    files = [p for p in entries if split_template_name(p) is not None]
    unknown = [p.name for p in entries if split_template_name(p) is None]
    maplike = [n for n in unknown if _MAPLIKE.search(n)]
    if maplike:
        raise ValueError(
            f"{folder}: {maplike[0]!r} looks like a map or model but cryoal cannot read it; "
            f"use density maps ({', '.join(MAP_SUFFIXES)}, optionally compressed "
            f"{' or '.join(COMPRESSED_SUFFIXES)}) or atomic models ({', '.join(MODEL_SUFFIXES)}), "
            "or move the file out of the templates folder"
        )
    if unknown:
        warnings.warn(
            f"{folder}: ignored {len(unknown)} file(s) that are not templates: "
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}",
            stacklevel=2,
        )
    if not files:
        raise ValueError(
            f"{folder}: no templates found; put density maps ({', '.join(MAP_SUFFIXES)}) or atomic "
            f"models ({', '.join(MODEL_SUFFIXES)}) in it, one file per class"
        )
    stems = [split_template_name(p)[0] for p in files]  # type: ignore[index]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(
            f"{folder}: several files share the class name(s) {dup}; keep one file per class"
        )
    return files


def load_template_file(path: str | os.PathLike, voxel_size_A: float, **kwargs: Any) -> Template:
    """Load one template file, a map or an atomic model by its suffix (``kwargs`` go to
    :func:`load_map` or :func:`density_from_model`)."""
    path = Path(path)
    parsed = split_template_name(path)
    if parsed is not None and parsed[1] == "map":
        return load_map(path, voxel_size_A, **kwargs)
    if parsed is not None:
        return density_from_model(path, voxel_size_A, **kwargs)
    raise ValueError(
        f"{path}: unknown template type; use {', '.join(MAP_SUFFIXES + MODEL_SUFFIXES)} "
        f"(maps may be compressed: {', '.join(COMPRESSED_SUFFIXES)})"
    )


def load_templates(
    source: str | os.PathLike | Sequence[Template] | None,
    voxel_size_A: float,
    *,
    n_classes: int | None = None,
    seed: int = 0,
) -> list[Template]:
    """Resolve the templates of a simulation.

    Parameters
    ----------
    source
        ``None`` for generated phantoms; a folder of maps / models (one class per file,
        classes in file-name order); or a sequence of :class:`Template`.
    voxel_size_A
        Target voxel size (Å).
    n_classes
        Number of classes: required count of phantoms (default 10); with a folder, the
        first ``n_classes`` files by name (default all).
    seed
        Seed of the random phantoms beyond the ten built-in shapes.
    """
    if not voxel_size_A > 0:
        raise ValueError(f"voxel size {voxel_size_A} Å must be > 0 (e.g. 10)")
    if source is None:
        return phantom_templates(10 if n_classes is None else n_classes, voxel_size_A, seed=seed)
    if isinstance(source, (str, os.PathLike)):
        files = template_files(source)
        if n_classes is not None:
            if n_classes > len(files):
                raise ValueError(
                    f"{source}: {n_classes} classes requested but the folder holds {len(files)} templates"
                )
            files = files[:n_classes]
        return [load_template_file(p, voxel_size_A) for p in files]
    templates = list(source)
    if not templates or not all(isinstance(t, Template) for t in templates):
        raise ValueError(
            "templates must be None, a folder, or a non-empty sequence of Template objects"
        )
    bad = [
        t.name for t in templates if not math.isclose(t.voxel_size_A, voxel_size_A, rel_tol=1e-6)
    ]
    if bad:
        raise ValueError(
            f"templates {bad} are not at the simulation voxel size {voxel_size_A} Å; "
            "rebuild them with load_map / density_from_model at that voxel size"
        )
    if n_classes is not None and n_classes != len(templates):
        raise ValueError(f"{n_classes} classes requested but {len(templates)} templates given")
    names = [t.name for t in templates]
    if len(set(names)) != len(names):
        raise ValueError(f"template names {names} contain duplicates; class names must be unique")
    return templates


def check_fits_box(templates: Sequence[Template], box: int) -> None:
    """Warn when a template's support does not fit inside a cubic box of ``box`` voxels."""
    big = [
        f"{t.name} ({2 * t.radius_voxels:.0f} voxels)"
        for t in templates
        if 2 * t.radius_voxels > box
    ]
    if big:
        warnings.warn(
            f"templates wider than the box of {box} voxels will be clipped: {', '.join(big)}; "
            "use a larger --box or a larger --voxel-size",
            stacklevel=3,
        )
