"""Cut cubic subtomograms around centres from (memory-mapped) tomograms.

Rounding convention: a centre ``c`` (zyx voxels, float) is rounded to the voxel index
``floor(c + 0.5)``, and that voxel lands at index ``box // 2`` of the subtomogram along
each axis; the box spans ``[i - box // 2, i - box // 2 + box)``. For an even box the
centre is therefore the first voxel of the second half, the FFT-centre convention that
RELION and most averaging packages use.

Only the bytes of the planes each box needs are read from a memory map. Centres are
processed in order of their first z-plane, so reading walks through the file once in
order (fast on a cold page cache), and planes that no later box needs are unmapped as
the walk passes them (``cryoal.io.volume.PlaneWindow``), which keeps the resident
memory near ``box`` planes however large the tomogram is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cryoal.io.atomic import check_can_write
from cryoal.io.mrc import Tomogram, open_tomogram
from cryoal.io.store import StoreWriter
from cryoal.io.volume import PlaneWindow, estimate_mean
from cryoal.progress import CountCallback

log = logging.getLogger(__name__)

EdgePolicy = Literal["pad", "skip", "error"]
EDGE_POLICIES: tuple[str, ...] = ("pad", "skip", "error")

#: Subtomograms cut per batch (a batch of 32^3 float32 boxes is 32 MiB).
DEFAULT_BATCH_SIZE = 256
#: gzip level of stores written by :func:`extract_to_store` (0 disables compression).
DEFAULT_COMPRESSION_LEVEL = 1
#: Planes read ahead of the walk, in box depths (cold-cache throughput; costs no RSS).
_PREFETCH_BOXES = 2
#: Standard deviations below this are treated as 0 by the normalisation (flat boxes).
_STD_FLOOR = 1e-12


def centre_indices(centres_zyx: np.ndarray) -> np.ndarray:
    """Voxel index of each centre: ``floor(c + 0.5)``, shape ``(n, 3)`` int64."""
    return np.floor(np.asarray(centres_zyx, dtype=np.float64) + 0.5).astype(np.int64)


def box_starts(centres_zyx: np.ndarray, box: int) -> np.ndarray:
    """First voxel of each box, ``(n, 3)`` int64 zyx: ``floor(c + 0.5) - box // 2``."""
    return centre_indices(centres_zyx) - box // 2


def inside_mask(starts: np.ndarray, box: int, shape_zyx: Sequence[int]) -> np.ndarray:
    """``(n,)`` bool: the box starting at ``starts`` lies entirely inside the volume."""
    shape = np.asarray(shape_zyx, dtype=np.int64)
    return np.all((starts >= 0) & (starts + box <= shape), axis=1)


def _describe(row: int, names: Sequence[str] | None) -> str:
    return f"candidate {names[row]!r}" if names is not None else f"row {row}"


def _validate(
    volume: np.ndarray,
    centres_zyx: np.ndarray,
    box: int,
    edge: str,
    source: str,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the request; return ``(starts (n,3), inside (n,), kept rows (m,))``."""
    if volume.ndim != 3:
        raise ValueError(f"{source}: expected a (z, y, x) volume, got shape {volume.shape}")
    if edge not in EDGE_POLICIES:
        raise ValueError(f"edge policy {edge!r} is not one of {', '.join(EDGE_POLICIES)}")
    if int(box) != box or box <= 0:
        raise ValueError(f"box {box} must be a positive whole number of voxels")
    shape = tuple(int(s) for s in volume.shape)
    if box > min(shape):
        raise ValueError(
            f"{source}: box {box} is larger than the tomogram (z, y, x) = {shape}; "
            f"choose a box of at most {min(shape)} voxels (--box)"
        )
    centres = np.asarray(centres_zyx, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 3:
        raise ValueError(f"{source}: centres must be (n, 3) zyx voxels; got shape {centres.shape}")
    finite = np.isfinite(centres).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{source}: {_describe(row, names)} has a non-finite centre {centres[row].tolist()}; "
            "fix or drop it in the coordinate file"
        )
    starts = box_starts(centres, box)
    inside = inside_mask(starts, box, shape)
    idx = starts + box // 2
    in_volume = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    if edge == "error" and not inside.all():
        bad = np.flatnonzero(~inside)
        row = int(bad[0])
        raise ValueError(
            f"{source}: {len(bad)} of {len(centres)} boxes of {box} voxels do not fit inside the "
            f"tomogram (z, y, x) = {shape}, e.g. {_describe(row, names)} at zyx "
            f"{np.round(centres[row], 2).tolist()}; use --edge pad or --edge skip, a smaller "
            "--box, or check the coordinates' unit and voxel size"
        )
    if edge == "pad" and not in_volume.all():
        bad = np.flatnonzero(~in_volume)
        row = int(bad[0])
        raise ValueError(
            f"{source}: {len(bad)} of {len(centres)} centres lie outside the tomogram (z, y, x) = "
            f"{shape}, e.g. {_describe(row, names)} at zyx {np.round(centres[row], 2).tolist()}; "
            "check the coordinates' unit and voxel size, or drop them with --edge skip"
        )
    if edge == "skip":
        kept = np.flatnonzero(inside)
        if len(kept) < len(centres):
            warnings.warn(
                f"{source}: skipped {len(centres) - len(kept)} of {len(centres)} centres whose "
                f"{box}-voxel box crosses the tomogram edge",
                stacklevel=3,
            )
    else:
        kept = np.arange(len(centres))
    return starts, inside, kept.astype(np.int64)


def _cut(
    volume: np.ndarray,
    starts: np.ndarray,
    inside: np.ndarray,
    out: np.ndarray,
    pad_value: float,
    window: PlaneWindow,
) -> None:
    """Fill ``out[j]`` with the box at ``starts[j]``; starts must be sorted by z."""
    b = out.shape[1]
    shape = volume.shape
    if isinstance(volume, np.ndarray):
        volume = np.asarray(volume)  # plain view: slicing a np.memmap subclass costs more
    for j, ((z0, y0, x0), whole) in enumerate(zip(starts.tolist(), inside.tolist(), strict=True)):
        # Boxes come in order of their first plane: read ahead, drop what is behind.
        window.release_below(max(z0, 0))
        window.prefetch_to(z0 + b + _PREFETCH_BOXES * b)
        if whole:
            out[j] = volume[z0 : z0 + b, y0 : y0 + b, x0 : x0 + b]
        else:
            out[j].fill(pad_value)
            lo = (max(z0, 0), max(y0, 0), max(x0, 0))
            hi = (min(z0 + b, shape[0]), min(y0 + b, shape[1]), min(x0 + b, shape[2]))
            if all(h > low for low, h in zip(lo, hi, strict=True)):
                out[
                    j,
                    lo[0] - z0 : hi[0] - z0,
                    lo[1] - y0 : hi[1] - y0,
                    lo[2] - x0 : hi[2] - x0,
                ] = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


def normalise_subtomograms(subtomos: np.ndarray) -> np.ndarray:
    """Scale each ``(b, b, b)`` box in ``(n, b, b, b)`` to zero mean, unit std, in place.

    Boxes with (numerically) zero standard deviation are only shifted to zero mean.
    """
    n = subtomos.shape[0]
    if n == 0:
        return subtomos
    flat = subtomos.reshape(n, -1)
    # float32 is enough: numpy's mean sums pairwise, and the sum of squares is taken after
    # centring (relative error ~1e-6 for 32^3 boxes).
    flat -= flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->i", flat, flat) / flat.shape[1])
    std[std < _STD_FLOOR] = 1.0
    flat /= std[:, None]
    return subtomos


@dataclass
class SubtomogramBatch:
    """One batch from :func:`iter_subtomograms`.

    Attributes
    ----------
    subtomograms
        ``(m, box, box, box)`` float32 zyx. A view into a buffer that the next batch
        overwrites: copy it to keep it.
    rows
        ``(m,)`` int64 indices into the ``centres_zyx`` given.
    """

    subtomograms: np.ndarray
    rows: np.ndarray


def iter_subtomograms(
    volume: np.ndarray,
    centres_zyx: np.ndarray,
    box: int,
    *,
    edge: EdgePolicy = "pad",
    normalise: bool = False,
    pad_value: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    source: str | os.PathLike = "<volume>",
    names: Sequence[str] | None = None,
) -> Iterator[SubtomogramBatch]:
    """Cut subtomograms in batches, walking the volume in z order with bounded memory.

    Parameters
    ----------
    volume
        ``(z, y, x)`` array, usually the read-only memory map of ``Tomogram.data``.
    centres_zyx
        ``(n, 3)`` centres in voxels of ``volume``.
    box
        Edge length of the cubic subtomograms, voxels (at most the smallest dimension).
    edge
        Boxes crossing the volume's edge: ``"pad"`` fills the missing part with
        ``pad_value``, ``"skip"`` leaves them out (with a warning), ``"error"`` raises.
    normalise
        Scale each subtomogram to zero mean and unit standard deviation.
    pad_value
        Fill value for ``edge="pad"``; default: :func:`cryoal.io.volume.estimate_mean`.
    batch_size
        Subtomograms per batch.
    source, names
        Used in error messages: the volume's file and per-row candidate ids.

    Yields
    ------
    SubtomogramBatch
        In order of the boxes' first z-plane (not the input order).

    Raises
    ------
    ValueError
        Box larger than the volume, non-finite centres, boxes outside the volume with
        ``edge="error"``, or centres outside the volume with ``edge="pad"``.
    """
    source = str(source)
    starts, inside, kept = _validate(volume, centres_zyx, box, edge, source, names)
    if len(kept) == 0:
        return
    order = kept[np.argsort(starts[kept, 0], kind="stable")]
    if edge == "pad" and pad_value is None and not inside.all():
        pad_value = estimate_mean(volume)
    pad = float(pad_value) if pad_value is not None else 0.0
    window = PlaneWindow(volume)
    buffer = np.empty((min(batch_size, len(order)), box, box, box), dtype=np.float32)
    try:
        for b0 in range(0, len(order), batch_size):
            rows = order[b0 : b0 + batch_size]
            out = buffer[: len(rows)]
            _cut(volume, starts[rows], inside[rows], out, pad, window)
            if normalise:
                normalise_subtomograms(out)
            yield SubtomogramBatch(out, rows)
    finally:
        window.release_all()


def extract_subtomograms(
    volume: np.ndarray,
    centres_zyx: np.ndarray,
    box: int,
    *,
    edge: EdgePolicy = "pad",
    normalise: bool = False,
    pad_value: float | None = None,
    source: str | os.PathLike = "<volume>",
) -> tuple[np.ndarray, np.ndarray]:
    """Cut cubic subtomograms around centres.

    Parameters
    ----------
    volume
        ``(z, y, x)`` array or memory map; only the needed planes are read.
    centres_zyx
        ``(n, 3)`` centres, voxels of ``volume``. Rounded to ``floor(c + 0.5)``; that
        voxel lands at index ``box // 2`` of the subtomogram.
    box
        Edge length in voxels.
    edge, normalise, pad_value
        As in :func:`iter_subtomograms`.

    Returns
    -------
    subtomograms
        ``(m, box, box, box)`` float32 zyx, in input order.
    kept
        ``(m,)`` int64 indices of the centres returned (``m < n`` only with
        ``edge="skip"``).
    """
    centres = np.asarray(centres_zyx, dtype=np.float64)
    starts, inside, kept = _validate(volume, centres, box, edge, str(source))
    out = np.empty((len(kept), box, box, box), dtype=np.float32)
    position = np.full(len(centres), -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))
    with warnings.catch_warnings():
        # _validate already warned about skipped boxes above; do not warn twice.
        warnings.simplefilter("ignore", UserWarning)
        for batch in iter_subtomograms(
            volume,
            centres,
            box,
            edge=edge,
            normalise=normalise,
            pad_value=pad_value,
            source=source,
        ):
            out[position[batch.rows]] = batch.subtomograms
    return out, kept


def _labels_for(
    coords: pd.DataFrame,
    class_names: Sequence[str],
    labels: Sequence[int] | np.ndarray | None,
) -> tuple[np.ndarray, list[str]]:
    names = [str(c) for c in class_names]
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(lab) != len(coords):
            raise ValueError(f"{len(lab)} labels given for {len(coords)} coordinates")
        return lab, names
    if "class_name" not in coords.columns:
        return np.full(len(coords), -1, dtype=np.int64), names
    values = coords["class_name"].astype(object).where(coords["class_name"].notna(), "")
    values = values.map(str)
    present = sorted({v for v in values if v})
    if not names:
        names = present
    lookup = {n: i for i, n in enumerate(names)}
    unknown = [v for v in present if v not in lookup]
    if unknown:
        raise ValueError(
            f"class names {unknown} in the coordinates are not among the classes {names}; "
            "add them to the class list or relabel the coordinates"
        )
    return np.array([lookup[v] if v else -1 for v in values], dtype=np.int64), names


def _check_table(coords: pd.DataFrame) -> None:
    missing = [c for c in ("candidate_id", "tomo_id", "z", "y", "x") if c not in coords.columns]
    if missing:
        raise ValueError(
            f"coordinate table lacks columns {missing}; read it with cryoal.io.coords.read_coords"
        )
    if len(coords) == 0:
        raise ValueError("the coordinate table is empty; nothing to extract")
    dup = coords["candidate_id"].astype(str).duplicated()
    if dup.any():
        raise ValueError(
            f"candidate id {coords['candidate_id'].astype(str)[dup].iloc[0]!r} occurs more than "
            "once; candidate ids must be unique"
        )


def extraction_attrs(
    paths: Mapping[str, str | os.PathLike], edge: str, normalise: bool
) -> dict[str, str | bool]:
    """File attributes of a store cut from tomograms: the program, the edge policy, the
    normalisation and the tomograms' paths by id."""
    return {
        "source": "cryoal extract",
        "edge": edge,
        "normalised": bool(normalise),
        "tomograms": json.dumps({t: str(p) for t, p in paths.items()}),
    }


def extract_to_store(
    tomogram_path: str | os.PathLike | Mapping[str, str | os.PathLike],
    coords: pd.DataFrame,
    out_h5: str | os.PathLike,
    box: int,
    *,
    edge: EdgePolicy = "pad",
    normalise: bool = True,
    class_names: Sequence[str] = (),
    labels: Sequence[int] | np.ndarray | None = None,
    masks: np.ndarray | None = None,
    overwrite: bool = False,
    voxel_size_A: float | None = None,
    check_finite: bool = False,
    dtype: str = "float32",
    batch_size: int = DEFAULT_BATCH_SIZE,
    compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    progress: CountCallback | None = None,
    halves: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]] | None = None,
) -> Path:
    """Extract subtomograms for a coordinate table into an HDF5 subtomogram store.

    Parameters
    ----------
    tomogram_path
        One MRC tomogram (then every row of ``coords`` must have the same ``tomo_id``),
        or a mapping ``tomo_id -> path`` covering every ``tomo_id`` in ``coords``. All
        tomograms must share one voxel size.
    coords
        Canonical coordinate table (``cryoal.io.coords.read_coords``): ``candidate_id``,
        ``tomo_id``, ``z``, ``y``, ``x`` (voxels) and optionally ``class_name``.
    out_h5
        Output store; written atomically (nothing appears under this name on failure).
    box
        Subtomogram edge length, voxels.
    edge, normalise
        Edge policy and per-subtomogram normalisation (see :func:`iter_subtomograms`).
        Boxes are padded with the tomogram's mean (header ``dmean`` when valid,
        else a 16-plane sample).
    class_names, labels
        Store classes and per-row labels (-1 = unlabeled). Without ``labels``, labels come
        from a ``class_name`` column (classes default to its sorted distinct names).
    masks
        ``(n, box, box, box)`` uint8 segmentation targets, one per row of ``coords``
        (stored as ``/masks``); None: a store without masks.
    voxel_size_A
        Override of the tomograms' header voxel size (required when a header holds 0).
    check_finite
        Scan each tomogram for NaN/Inf first (reads the whole file). Without it, a box
        that contains NaN/Inf still stops the extraction with an error naming it.
    dtype, batch_size, compression_level
        Store dtype (float32/float16), subtomograms per batch, gzip level.
    progress
        Called with the number of coordinate rows done (boxes skipped at the edge count).
    halves
        ``tomo_id -> (odd, even)`` half tomograms of every tomogram in ``coords`` (same
        shape): each box is cut from both too, padded and normalised alike, and stored as
        the sample's half pair (``/halves``). None: a store without half pairs.

    Returns
    -------
    Path
        ``out_h5``. Rows are ordered by tomogram, then by z; use the ids, never positions.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        Missing or broken inputs, existing output without ``overwrite``, mixed voxel
        sizes, box/edge problems, non-finite voxels.
    """
    out_h5 = check_can_write(out_h5, overwrite)
    _check_table(coords)
    tomo_ids = coords["tomo_id"].astype(str).to_numpy()
    present = list(dict.fromkeys(tomo_ids))
    if isinstance(tomogram_path, Mapping):
        paths = {str(k): Path(v) for k, v in tomogram_path.items()}
        missing = [t for t in present if t not in paths]
        if missing:
            raise ValueError(f"no tomogram given for tomo_id(s) {missing}; known: {sorted(paths)}")
    else:
        if len(present) > 1:
            raise ValueError(
                f"{tomogram_path}: the coordinates cover {len(present)} tomograms {present[:5]}; "
                "select one tomogram's rows (--tomo-id) or pass a tomo_id -> path mapping"
            )
        paths = {present[0]: Path(tomogram_path)}
    lab, names = _labels_for(coords, class_names, labels)
    ids = coords["candidate_id"].astype(str).to_numpy()
    centres = coords[["z", "y", "x"]].to_numpy(dtype=np.float64)

    # Validate every tomogram before anything is written.
    vs: float | None = None
    per_tomo: dict[str, np.ndarray] = {}
    for tid in present:
        rows = np.flatnonzero(tomo_ids == tid)
        with open_tomogram(paths[tid], voxel_size_A=voxel_size_A, check_finite=check_finite) as t:
            if vs is None:
                vs = t.voxel_size_A
            elif not np.isclose(t.voxel_size_A, vs, rtol=1e-3):
                raise ValueError(
                    f"{t.path}: voxel size {t.voxel_size_A:g} Å differs from {vs:g} Å of the "
                    "other tomograms; one store holds one voxel size, so rescale the "
                    "tomograms to a common voxel size or extract them into separate stores"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # warned again while cutting
                _validate(t.data, centres[rows], box, edge, str(t.path), ids[rows].tolist())
        per_tomo[tid] = rows
    assert vs is not None
    missing = [t for t in present if halves is not None and t not in halves]
    if missing:
        raise ValueError(f"{out_h5}: no half tomograms given for tomo_id(s) {missing}")

    extra = extraction_attrs({t: paths[t] for t in present}, edge, normalise)
    written = 0
    if masks is not None and np.shape(masks) != (len(coords), box, box, box):
        raise ValueError(
            f"{out_h5}: masks must be (n, box, box, box) = ({len(coords)}, {box}, {box}, {box}) "
            f"for the coordinate table; got {np.shape(masks)}"
        )
    with StoreWriter(
        out_h5,
        box,
        vs,
        names,
        with_masks=masks is not None,
        with_halves=halves is not None,
        dtype=dtype,
        extra_attrs=extra,
        compression_level=compression_level,
        overwrite=overwrite,
    ) as writer:
        for tid in present:
            rows = per_tomo[tid]
            written_before = written
            with contextlib.ExitStack() as opened:
                t = opened.enter_context(open_tomogram(paths[tid], voxel_size_A=voxel_size_A))
                pair = None if halves is None else _open_pair(opened, halves[tid], t)
                pad_value = estimate_mean(t.data, t.path) if edge == "pad" else None
                for batch in iter_subtomograms(
                    t.data,
                    centres[rows],
                    box,
                    edge=edge,
                    normalise=False,  # after the check below, which needs raw values
                    pad_value=pad_value,
                    batch_size=batch_size,
                    source=t.path,
                    names=ids[rows].tolist(),
                ):
                    sel = rows[batch.rows]
                    _check_finite_batch(batch.subtomograms, ids[sel], t.path, centres[sel])
                    if normalise:
                        normalise_subtomograms(batch.subtomograms)
                    writer.append(
                        batch.subtomograms,
                        ids[sel].tolist(),
                        labels=lab[sel],
                        centres_zyx=centres[sel],
                        tomo_ids=tomo_ids[sel].tolist(),
                        masks=None if masks is None else masks[sel],
                        halves=None if pair is None else _cut_pair(pair, centres[sel], box,
                                                                   normalise, ids[sel]),
                    )  # fmt: skip
                    written += len(sel)
                    if progress is not None:
                        progress(len(sel))
            skipped = len(rows) - (written - written_before)
            if progress is not None and skipped:
                progress(skipped)  # boxes skipped at the edge count as done
        if written == 0:
            raise ValueError(
                f"{out_h5}: no subtomogram fits inside the tomogram(s) with box {box} and "
                "--edge skip; use --edge pad or a smaller --box"
            )
    log.info("wrote %d subtomograms to %s", written, out_h5)
    return out_h5


def _open_pair(
    stack: contextlib.ExitStack,
    files: tuple[str | os.PathLike, str | os.PathLike],
    tomogram: Tomogram,
) -> list[tuple[Tomogram, float]]:
    """The two half tomograms of ``tomogram``, open until ``stack`` closes, each with its
    padding value. Raises ``ValueError`` for a half of another shape."""
    halves = [stack.enter_context(open_tomogram(f, voxel_size_A=tomogram.voxel_size_A))
              for f in files]  # fmt: skip
    for h in halves:
        if tuple(h.shape) != tuple(tomogram.shape):
            raise ValueError(
                f"{h.path}: shape {tuple(h.shape)} differs from the tomogram's "
                f"{tuple(tomogram.shape)} ({tomogram.path}); give its own odd/even halves"
            )
    return [(h, estimate_mean(h.data, h.path)) for h in halves]


def _cut_pair(
    pair: Sequence[tuple[Tomogram, float]],
    centres_zyx: np.ndarray,
    box: int,
    normalise: bool,
    ids: np.ndarray,
) -> np.ndarray:
    """``(n, 2, box, box, box)``: the boxes at ``centres_zyx`` cut from the two half
    tomograms (each given with its padding value), checked and normalised like the
    tomogram's own."""
    out = np.empty((len(centres_zyx), 2, box, box, box), dtype=np.float32)
    for k, (half, pad_value) in enumerate(pair):
        for batch in iter_subtomograms(
            half.data, centres_zyx, box, edge="pad", pad_value=pad_value,
            batch_size=len(centres_zyx), source=half.path, names=ids.tolist(),
        ):  # fmt: skip
            boxes = batch.subtomograms
            _check_finite_batch(boxes, ids[batch.rows], half.path, centres_zyx[batch.rows])
            if normalise:
                normalise_subtomograms(boxes)
            out[batch.rows, k] = boxes
    return out


def _check_finite_batch(
    subtomos: np.ndarray, ids: np.ndarray, path: Path, centres_zyx: np.ndarray
) -> None:
    finite = np.isfinite(subtomos.reshape(len(subtomos), -1)).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        first = int(rows[0])
        box = subtomos.shape[1]
        bad_voxels = ~np.isfinite(subtomos[first])
        where = np.argwhere(bad_voxels)[0] + box_starts(centres_zyx[first : first + 1], box)[0]
        raise ValueError(
            f"{path}: the subtomogram of candidate {ids[first]!r} ({len(rows)} in this batch) "
            f"holds {int(bad_voxels.sum())} NaN/Inf voxels, the first at tomogram zyx "
            f"{[int(v) for v in where]}; clean the tomogram (e.g. numpy.nan_to_num) and "
            "re-run; --check-finite scans the whole tomogram first"
        )
