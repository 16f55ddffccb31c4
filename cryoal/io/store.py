"""The HDF5 subtomogram dataset that every later step reads and writes.

Layout (``format_version`` 1)::

    /subtomograms   (N, b, b, b) float32 or float16, zyx, one sample per chunk, gzip+shuffle
    /ids            (N,) UTF-8 strings, unique (stable candidate ids such as "TS_01:000123")
    /labels         (N,) int64, class index into ``class_names``; -1 = unlabeled
    /centres_zyx    (N, 3) float64, centre in voxels of the source tomogram (NaN if none)
    /tomo_ids       (N,) UTF-8 strings, source tomogram id ("" if none)
    /masks          (N, b, b, b) uint8, optional, segmentation targets (0 = background,
                    class k + 1, 255 = not annotated: ``MASK_IGNORE``, left out of every loss)
    /halves         (N, 2, b, b, b) like /subtomograms, optional: the same box in two
                    reconstructions from disjoint halves of the data (odd/even frames or
                    tilts; in simulation two noise draws whose mean is the sample), each
                    normalised like the subtomogram; self-supervised pretraining makes its
                    two views from them (independent noise, the same particle)
    /meta/<name>    (N, ...) optional per-sample metadata (e.g. simulation ground truth)
    attrs: voxel_size_A (float), box (int), class_names (JSON list), format_version (int),
           plus any extra scalar attributes the writer was given.

A store is written under a temporary name and renamed only when it is complete, so a crash
never leaves a file that looks finished. The writer flushes after every batch, so a full
disk is reported at the batch that hit it (as ``OSError(ENOSPC)`` naming the store) and the
temporary file is removed. Readers open the HDF5 file lazily in the process
that reads (each DataLoader worker opens its own handle; nothing is pickled across).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from cryoal.io.atomic import (
    check_can_write,
    disk_full_error,
    fsync_directory,
    is_disk_full,
    make_temp_file,
)
from cryoal.io.interrupts import check_interrupted

FORMAT_VERSION = 1
#: Mask value of voxels not annotated: no loss, metric or score uses them.
MASK_IGNORE = 255
_REQUIRED = ("subtomograms", "ids", "labels", "centres_zyx", "tomo_ids")
_STR = h5py.string_dtype(encoding="utf-8")


class StoreWriter:
    """Write a subtomogram store in batches; the file appears under ``path`` on close.

    Use as a context manager::

        with StoreWriter("out.h5", box=32, voxel_size_A=10.0, class_names=["a", "b"]) as w:
            w.append(subtomos, ids, labels=labels, centres_zyx=centres, tomo_ids=tomos)

    If the block raises, the temporary file is deleted and ``path`` is untouched.

    Parameters
    ----------
    path
        Destination ``.h5`` file.
    box
        Edge length ``b`` of the cubic subtomograms, voxels.
    voxel_size_A
        Voxel size in Å (> 0).
    class_names
        Names of the classes that ``labels`` index (may be empty for unlabeled pools).
    dtype
        ``"float32"`` or ``"float16"`` storage for subtomograms.
    with_masks
        Store ``/masks`` (N, b, b, b) uint8 segmentation targets; then every ``append``
        must pass ``masks``.
    with_halves
        Store ``/halves`` (N, 2, b, b, b): every ``append`` must pass ``halves``.
    extra_attrs
        Extra scalar (str/int/float/bool) file attributes, e.g. simulation parameters.
    compression_level
        gzip level 0-9 (0 disables compression).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        box: int,
        voxel_size_A: float,
        class_names: Sequence[str] = (),
        *,
        dtype: str = "float32",
        with_masks: bool = False,
        with_halves: bool = False,
        extra_attrs: Mapping[str, str | int | float | bool] | None = None,
        compression_level: int = 1,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.box = int(box)
        self.voxel_size_A = float(voxel_size_A)
        self.class_names = [str(c) for c in class_names]
        self.dtype = np.dtype(dtype)
        self.with_masks = with_masks
        self.with_halves = with_halves
        self.extra_attrs = dict(extra_attrs or {})
        self.compression_level = int(compression_level)
        self.overwrite = overwrite
        self._file: h5py.File | None = None
        self._tmp: Path | None = None
        self._seen: set[str] = set()
        self._n = 0
        self._ds: dict[str, h5py.Dataset] = {}

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> StoreWriter:
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @contextlib.contextmanager
    def _aborting(self) -> Iterator[None]:
        """Discard the file when the block fails (a full disk reported as such)."""
        try:
            yield
        except BaseException as exc:
            self.abort()
            if isinstance(exc, Exception) and is_disk_full(exc):
                raise disk_full_error(self.path, exc) from exc
            raise

    def open(self) -> None:
        if self.box <= 0:
            raise ValueError(f"{self.path}: box {self.box} must be a positive number of voxels")
        if not np.isfinite(self.voxel_size_A) or self.voxel_size_A <= 0:
            raise ValueError(f"{self.path}: voxel size {self.voxel_size_A} Å must be > 0")
        if self.dtype not in (np.float32, np.float16):
            raise ValueError(
                f"{self.path}: dtype {self.dtype} not supported; use float32 or float16"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"{self.path}: class names {self.class_names} contain duplicates")
        final = check_can_write(self.path, self.overwrite)
        self._tmp = make_temp_file(final)
        with self._aborting():
            self._create()

    def _create(self) -> None:
        assert self._tmp is not None
        b = self.box
        f = h5py.File(self._tmp, "w")
        self._file = f
        self._ds = {}
        comp = {"compression": "gzip", "compression_opts": self.compression_level, "shuffle": True}
        if self.compression_level == 0:
            comp = {}
        # Handles stay open until close: HDF5 flushes a dataset's cache when its last
        # handle is dropped, and an error there (a full disk) cannot be raised.
        ds = self._ds
        ds["subtomograms"] = f.create_dataset(
            "subtomograms",
            (0, b, b, b),
            self.dtype,
            maxshape=(None, b, b, b),
            chunks=(1, b, b, b),
            **comp,
        )
        if self.with_masks:
            ds["masks"] = f.create_dataset(
                "masks",
                (0, b, b, b),
                np.uint8,
                maxshape=(None, b, b, b),
                chunks=(1, b, b, b),
                **comp,
            )
        if self.with_halves:
            ds["halves"] = f.create_dataset(
                "halves",
                (0, 2, b, b, b),
                self.dtype,
                maxshape=(None, 2, b, b, b),
                chunks=(1, 2, b, b, b),
                **comp,
            )
        ds["ids"] = f.create_dataset("ids", (0,), _STR, maxshape=(None,), chunks=(4096,))
        ds["labels"] = f.create_dataset("labels", (0,), np.int64, maxshape=(None,), chunks=(4096,))
        ds["centres_zyx"] = f.create_dataset(
            "centres_zyx", (0, 3), np.float64, maxshape=(None, 3), chunks=(4096, 3)
        )
        ds["tomo_ids"] = f.create_dataset("tomo_ids", (0,), _STR, maxshape=(None,), chunks=(4096,))
        f.attrs["voxel_size_A"] = self.voxel_size_A
        f.attrs["box"] = b
        f.attrs["class_names"] = json.dumps(self.class_names)
        f.attrs["format_version"] = FORMAT_VERSION
        for key, value in self.extra_attrs.items():
            if key in ("voxel_size_A", "box", "class_names", "format_version"):
                raise ValueError(f"extra attribute {key!r} would overwrite a reserved attribute")
            f.attrs[key] = value

    def append(
        self,
        subtomograms: np.ndarray,
        ids: Sequence[str],
        labels: Sequence[int] | np.ndarray | None = None,
        centres_zyx: np.ndarray | None = None,
        tomo_ids: Sequence[str] | None = None,
        masks: np.ndarray | None = None,
        meta: Mapping[str, np.ndarray] | None = None,
        halves: np.ndarray | None = None,
    ) -> None:
        """Append a batch of ``n`` samples.

        Parameters
        ----------
        subtomograms
            ``(n, b, b, b)`` zyx.
        ids
            ``n`` unique string ids (unique across the whole store).
        labels
            ``n`` class indices, -1 for unlabeled (default all -1).
        centres_zyx
            ``(n, 3)`` voxels (default NaN).
        tomo_ids
            ``n`` tomogram ids (default "").
        masks
            ``(n, b, b, b)`` uint8, required when the writer has ``with_masks``.
        meta
            Per-sample metadata arrays ``(n, ...)``; every batch must give the same names.
        halves
            ``(n, 2, b, b, b)``, required when the writer has ``with_halves``.
        """
        check_interrupted()
        f = self._require_open()
        sub = np.asarray(subtomograms)
        b = self.box
        if sub.ndim != 4 or sub.shape[1:] != (b, b, b):
            raise ValueError(
                f"{self.path}: subtomograms must be (n, {b}, {b}, {b}); got {sub.shape}"
            )
        n = sub.shape[0]
        if not np.isfinite(sub).all():
            raise ValueError(f"{self.path}: subtomograms contain NaN/Inf; clean the input first")
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise ValueError(f"{self.path}: {len(ids)} ids for {n} subtomograms")
        dup = [i for i in ids if i in self._seen]
        if dup or len(set(ids)) != n:
            raise ValueError(
                f"{self.path}: duplicate sample ids (e.g. {dup[:3] or ids[:3]}); ids must be unique"
            )
        lab = (
            np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
        )
        if lab.shape != (n,):
            raise ValueError(f"{self.path}: {lab.shape[0]} labels for {n} subtomograms")
        bad = lab[(lab < -1) | (lab >= max(len(self.class_names), 0))]
        if bad.size and not (len(self.class_names) == 0 and (lab == -1).all()):
            raise ValueError(
                f"{self.path}: label {int(bad[0])} out of range for classes {self.class_names} "
                "(use -1 for unlabeled)"
            )
        cen = (
            np.full((n, 3), np.nan) if centres_zyx is None else np.asarray(centres_zyx, np.float64)
        )
        if cen.shape != (n, 3):
            raise ValueError(f"{self.path}: centres_zyx must be ({n}, 3); got {cen.shape}")
        tomos = [""] * n if tomo_ids is None else [str(t) for t in tomo_ids]
        if len(tomos) != n:
            raise ValueError(f"{self.path}: {len(tomos)} tomo_ids for {n} subtomograms")
        self._check_volumes(sub, masks, halves)
        with self._aborting():
            self._write(f, sub, ids, lab, cen, tomos, masks, meta, halves, n)

    def _check_volumes(
        self, sub: np.ndarray, masks: np.ndarray | None, halves: np.ndarray | None
    ) -> None:
        """Masks and half pairs are given exactly when the writer stores them, in shape."""
        n, b = sub.shape[0], self.box
        if self.with_masks:
            if masks is None:
                raise ValueError(f"{self.path}: this store has masks; pass masks=(n, b, b, b)")
            m = np.asarray(masks)
            if m.shape != sub.shape:
                raise ValueError(f"{self.path}: masks must be {sub.shape}; got {m.shape}")
        elif masks is not None:
            raise ValueError(
                f"{self.path}: masks given but the writer was created with_masks=False"
            )
        if self.with_halves != (halves is not None):
            raise ValueError(
                f"{self.path}: the writer was created with_halves={self.with_halves}; pass "
                "halves=(n, 2, b, b, b) exactly then"
            )
        if halves is not None:
            h = np.asarray(halves)
            if h.shape != (n, 2, b, b, b):
                raise ValueError(f"{self.path}: halves must be {(n, 2, b, b, b)}; got {h.shape}")
            if not np.isfinite(h).all():
                raise ValueError(f"{self.path}: halves contain NaN/Inf; clean the input first")

    def _write(
        self,
        f: h5py.File,
        sub: np.ndarray,
        ids: list[str],
        lab: np.ndarray,
        cen: np.ndarray,
        tomos: list[str],
        masks: np.ndarray | None,
        meta: Mapping[str, np.ndarray] | None,
        halves: np.ndarray | None,
        n: int,
    ) -> None:
        start, stop = self._n, self._n + n
        for name, arr in (
            ("subtomograms", sub.astype(self.dtype, copy=False)),
            ("ids", np.array(ids, dtype=object)),
            ("labels", lab),
            ("centres_zyx", cen),
            ("tomo_ids", np.array(tomos, dtype=object)),
        ):
            _grow_and_write(self._ds[name], start, stop, arr)
        if self.with_masks:
            _grow_and_write(
                self._ds["masks"], start, stop, np.asarray(masks).astype(np.uint8, copy=False)
            )
        if self.with_halves:
            _grow_and_write(
                self._ds["halves"], start, stop, np.asarray(halves).astype(self.dtype, copy=False)
            )
        meta = dict(meta or {})
        group = f.require_group("meta")
        if start > 0 and set(meta) != set(group.keys()):
            raise ValueError(
                f"{self.path}: metadata fields {sorted(meta)} differ from earlier batches {sorted(group.keys())}"
            )
        for name, values in meta.items():
            arr = np.asarray(values)
            if arr.shape[:1] != (n,):
                raise ValueError(
                    f"{self.path}: metadata {name!r} must have {n} rows; got {arr.shape}"
                )
            if name not in group:
                kind = _STR if arr.dtype.kind in "OUS" else arr.dtype
                self._ds[f"meta/{name}"] = group.create_dataset(
                    name, (0, *arr.shape[1:]), kind, maxshape=(None, *arr.shape[1:])
                )
            arr = arr.astype(object) if arr.dtype.kind in "US" else arr
            _grow_and_write(self._ds[f"meta/{name}"], start, stop, arr)
        # Write the batch now: HDF5 otherwise keeps it in caches and reports a full disk
        # only while closing, where errors cannot be raised cleanly.
        f.flush()
        self._seen.update(ids)
        self._n = stop

    def copy_rows(self, source: str | os.PathLike, rows: Sequence[int] | np.ndarray) -> None:
        """Append rows of another store (``source``, without per-sample metadata) unchanged:
        ids, labels, centres and tomogram ids, and each subtomogram's (mask's, half pair's) chunk
        copied still compressed when both stores chunk, type and compress alike (a copy,
        not a decode and re-compression), else decoded and written again.

        Raises
        ------
        ValueError
            Another box, masks or half pairs in only one of the stores, metadata in ``source``, ids
            already written, or labels outside this store's classes.
        """
        f = self._require_open()
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        b, n = self.box, int(rows.size)
        with h5py.File(source, "r") as src:
            if src["subtomograms"].shape[1:] != (b, b, b):
                raise ValueError(f"{source}: box {src['subtomograms'].shape[1]} is not {b}")
            if ("masks" in src) != self.with_masks:
                raise ValueError(f"{source}: masks in one of the two stores only")
            if ("halves" in src) != self.with_halves:
                raise ValueError(f"{source}: half pairs (/halves) in one of the two stores only")
            if len(src.get("meta", {})):
                raise ValueError(f"{source}: copy_rows copies stores without /meta")
            ids = [str(i) for i in src["ids"].asstr()[...][rows]]
            dup = [i for i in ids if i in self._seen]
            if dup or len(set(ids)) != n:
                raise ValueError(f"{self.path}: duplicate sample ids (e.g. {dup[:3] or ids[:3]})")
            lab = src["labels"][...][rows]
            if ((lab < -1) | (lab >= len(self.class_names))).any():
                raise ValueError(f"{source}: labels outside the classes {self.class_names}")
            start, stop = self._n, self._n + n
            with self._aborting():
                for name in self._ds:
                    if name in ("subtomograms", "masks", "halves"):
                        _copy_samples(src[name], self._ds[name], rows, start)
                _grow_and_write(self._ds["ids"], start, stop, np.array(ids, dtype=object))
                _grow_and_write(self._ds["labels"], start, stop, lab)
                _grow_and_write(self._ds["centres_zyx"], start, stop, src["centres_zyx"][...][rows])
                tomos = src["tomo_ids"].asstr()[...][rows].astype(object)
                _grow_and_write(self._ds["tomo_ids"], start, stop, tomos)
                f.flush()
        self._seen.update(ids)
        self._n = stop

    def close(self) -> Path:
        """Finish the file and move it to its final name."""
        f = self._require_open()
        assert self._tmp is not None
        with self._aborting():
            f.flush()
            self._ds = {}
            f.close()
            self._file = None
            with open(self._tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if self.path.exists() and not self.overwrite:
            self.abort()
            raise FileExistsError(f"{self.path}: appeared while writing; not overwritten")
        os.replace(self._tmp, self.path)
        fsync_directory(self.path.parent)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Discard everything written (the final path is left untouched)."""
        if self._file is not None:
            _discard_pending_writes(self._file)
        if self._file is not None:
            self._ds = {}
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            self._tmp = None

    def __len__(self) -> int:
        return self._n

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError("StoreWriter is not open; use it as a context manager")
        return self._file


def _first_duplicate(values: np.ndarray) -> str | None:
    """The first value that occurs twice, or None."""
    seen: set[str] = set()
    for v in values.tolist():
        if v in seen:
            return str(v)
        seen.add(v)
    return None


def _discard_pending_writes(f: h5py.File) -> None:
    """Point an HDF5 file's descriptor at ``/dev/null`` before closing a file being discarded.

    HDF5 writes its caches while closing; on a full disk those writes fail again, and
    errors raised there cannot propagate (they are printed, and HDF5 can crash). The
    file is deleted anyway, so its pending writes go nowhere instead.
    """
    with contextlib.suppress(Exception):
        fd = int(f.id.get_vfd_handle())
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


def _copy_samples(src: h5py.Dataset, dst: h5py.Dataset, rows: np.ndarray, start: int) -> None:
    """``src[rows]`` into ``dst[start:]``: chunk by chunk without decoding when both hold
    one sample per chunk with the same type and filters."""
    dst.resize(start + rows.size, axis=0)
    zeros = (0,) * (dst.ndim - 1)
    same = (
        src.chunks == dst.chunks == (1, *dst.shape[1:])
        and src.dtype == dst.dtype
        and (src.compression, src.compression_opts, src.shuffle)
        == (dst.compression, dst.compression_opts, dst.shuffle)
    )
    if same:
        for k, row in enumerate(rows):
            filter_mask, chunk = src.id.read_direct_chunk((int(row), *zeros))
            dst.id.write_direct_chunk((start + k, *zeros), chunk, filter_mask)
        return
    for k, row in enumerate(rows):
        dst[start + k] = src[int(row)].astype(dst.dtype, copy=False)


def _grow_and_write(ds: h5py.Dataset, start: int, stop: int, values: np.ndarray) -> None:
    ds.resize(stop, axis=0)
    ds[start:stop] = values


def _read_attributes(p: Path, f: h5py.File) -> tuple[float, int, list[str]]:
    """The store's voxel size (Å), box and class names, checked (format version included)."""
    try:
        version = int(f.attrs["format_version"])
        vs_attr = f.attrs["voxel_size_A"]
        box_attr = f.attrs["box"]
        names_attr = f.attrs["class_names"]
    except KeyError as exc:
        raise ValueError(f"{p}: store attribute {exc} missing; re-create the store") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: attribute format_version is not an integer ({exc})") from exc
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{p}: store format_version {version} is newer than this cryoal "
            f"understands ({FORMAT_VERSION}); upgrade cryoal"
        )
    try:
        voxel_size_A = float(vs_attr)
    except (TypeError, ValueError):
        raise ValueError(f"{p}: attribute voxel_size_A = {vs_attr!r} is not a number") from None
    if not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise ValueError(
            f"{p}: attribute voxel_size_A = {voxel_size_A:g} Å must be > 0; set the "
            "true voxel size (h5py: f.attrs['voxel_size_A'] = 10.0) or re-create the store"
        )
    try:
        box = int(box_attr)
    except (TypeError, ValueError):
        raise ValueError(f"{p}: attribute box = {box_attr!r} is not an integer") from None
    if isinstance(names_attr, bytes):
        names_attr = names_attr.decode("utf-8", "replace")
    try:
        names = json.loads(str(names_attr))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{p}: attribute class_names = {str(names_attr)[:60]!r} is not JSON ({exc.msg}); "
            'it must be a JSON list of names, e.g. ["ribosome", "proteasome"]'
        ) from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{p}: attribute class_names = {str(names_attr)[:60]!r} must be a JSON list of "
            'strings, e.g. ["ribosome", "proteasome"]'
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{p}: attribute class_names {names} holds duplicate names")
    return voxel_size_A, box, names


def _check_subtomograms(p: Path, sub: object, box: int) -> None:
    """``subtomograms`` must be a float32/float16 ``(N, box, box, box)`` dataset."""
    if not isinstance(sub, h5py.Dataset) or sub.ndim != 4:
        shape = getattr(sub, "shape", None)
        raise ValueError(
            f"{p}: dataset subtomograms has shape {shape}; it must be (N, b, b, b) cubic "
            "3-D boxes (2-D images or single volumes are not subtomograms)"
        )
    if sub.shape[1:] != (box,) * 3:
        raise ValueError(
            f"{p}: dataset subtomograms has boxes of {sub.shape[1:]} voxels but attribute "
            f"box = {box}; fix the attribute or re-create the store"
        )
    if sub.dtype not in (np.float32, np.float16):
        raise ValueError(
            f"{p}: dataset subtomograms has dtype {sub.dtype}; cryoal reads float32 or "
            "float16 (convert with numpy astype(np.float32))"
        )


def _check_dtypes(p: Path, f: h5py.File) -> None:
    """ids and tomo_ids hold strings, labels integers, centres_zyx floats."""
    for name, kinds in (("ids", "OSU"), ("tomo_ids", "OSU"), ("labels", "iu"),
                        ("centres_zyx", "f")):  # fmt: skip
        ds = f[name]
        kind = ds.dtype.kind if h5py.check_string_dtype(ds.dtype) is None else "O"
        if kind not in kinds:
            want = {"OSU": "strings", "iu": "integers", "f": "floats"}[kinds]
            raise ValueError(f"{p}: dataset {name} has dtype {ds.dtype}; it must hold {want}")


class SubtomogramStore:
    """Read a subtomogram store; safe to pass to DataLoader workers.

    Small per-sample arrays (ids, labels, centres, tomo_ids) are read once on construction;
    subtomograms and masks are read on demand from an HDF5 handle that each process opens
    for itself (the handle is dropped when the object is pickled).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, truncated or malformed file, or an unknown ``format_version``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        f = self._h5()
        missing = [k for k in _REQUIRED if k not in f]
        if missing:
            raise ValueError(
                f"{self.path}: not a cryoal subtomogram store (missing {missing}); create it "
                "with 'cryoal extract' or 'cryoal simulate subtomograms'"
            )
        try:
            self._validate(f)
        except BaseException:
            self.close()
            raise
        self.has_masks = "masks" in f
        self.has_halves = "halves" in f
        self.extra_attrs = {
            k: (v.item() if hasattr(v, "item") else v)
            for k, v in f.attrs.items()
            if k not in ("voxel_size_A", "box", "class_names", "format_version")
        }

    def _validate(self, f: h5py.File) -> None:
        """Check attributes, dtypes and shapes; read the per-sample arrays (one line per
        problem, naming the file and the field: stores may come from other tools)."""
        p = self.path
        self.voxel_size_A, self.box, self.class_names = _read_attributes(p, f)
        sub = f["subtomograms"]
        _check_subtomograms(p, sub, self.box)
        _check_dtypes(p, f)
        self._read_per_sample(f)
        self._check_per_sample(f, sub)

    def _read_per_sample(self, f: h5py.File) -> None:
        """Read ids, labels, centres and tomo_ids (small arrays, kept in memory)."""
        p = self.path
        try:
            self.ids = np.asarray(f["ids"].asstr()[:], dtype=object)
            self.labels = np.asarray(f["labels"][:], dtype=np.int64)
            self.centres_zyx = np.asarray(f["centres_zyx"][:], dtype=np.float64)
            self.tomo_ids = np.asarray(f["tomo_ids"].asstr()[:], dtype=object)
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{p}: store is damaged ({exc}); re-create it") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{p}: dataset ids or tomo_ids is not valid UTF-8 ({exc})") from exc

    def _check_per_sample(self, f: h5py.File, sub: h5py.Dataset) -> None:
        """Row counts, shapes, unique ids, labels in range and the masks' shape agree."""
        p = self.path
        names = self.class_names
        n = len(self.ids)
        for name, arr in (("subtomograms", sub), ("labels", self.labels),
                          ("centres_zyx", self.centres_zyx), ("tomo_ids", self.tomo_ids)):  # fmt: skip
            if arr.shape[0] != n:
                raise ValueError(
                    f"{p}: dataset {name} has {arr.shape[0]} rows but ids has {n}; "
                    "inconsistent sample counts, re-create the store"
                )
        if self.labels.ndim != 1 or self.centres_zyx.shape != (n, 3):
            raise ValueError(
                f"{p}: datasets labels {self.labels.shape} / centres_zyx "
                f"{self.centres_zyx.shape} must be (N,) and (N, 3)"
            )
        dup = _first_duplicate(self.ids)
        if dup is not None:
            raise ValueError(f"{p}: dataset ids holds {dup!r} more than once; ids must be unique")
        bad = np.flatnonzero((self.labels < -1) | (self.labels >= len(names)))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{p}: dataset labels holds {int(self.labels[row])} (sample {self.ids[row]!r}, "
                f"{bad.size} such rows) outside -1..{len(names) - 1} for classes {names}; "
                "-1 marks unlabeled samples"
            )
        if "masks" in f and f["masks"].shape != sub.shape:
            raise ValueError(
                f"{p}: dataset masks has shape {f['masks'].shape}, subtomograms {sub.shape}"
            )
        if "halves" in f and f["halves"].shape != (n, 2, *sub.shape[1:]):
            raise ValueError(
                f"{p}: dataset halves has shape {f['halves'].shape}, expected "
                f"{(n, 2, *sub.shape[1:])} (two half reconstructions per subtomogram)"
            )

    def check_finite(self, indices: np.ndarray | None = None, chunk: int = 256) -> None:
        """Raise ``ValueError`` naming the first sample holding NaN/Inf (read in chunks).

        Parameters
        ----------
        indices
            Rows to check (default all).
        chunk
            Samples read at a time (bounded memory).
        """
        ds = self._h5()["subtomograms"]
        rows = np.arange(len(self)) if indices is None else np.unique(np.asarray(indices))
        for a in range(0, len(rows), chunk):
            part = rows[a : a + chunk]
            data = ds[part[0] : part[-1] + 1][part - part[0]]
            ok = np.isfinite(data.reshape(len(part), -1)).all(axis=1)
            if not ok.all():
                bad = part[~ok]
                raise ValueError(
                    f"{self.path}: dataset subtomograms holds NaN/Inf in sample "
                    f"{self.ids[bad[0]]!r} (row {int(bad[0])}, {bad.size} in rows "
                    f"{int(part[0])}..{int(part[-1])}); clean or drop those samples"
                )

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            if not self.path.exists():
                raise FileNotFoundError(f"{self.path}: subtomogram store not found; check the path")
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(
                    f"{self.path}: cannot open as HDF5 ({' '.join(str(exc).split())}); the file is "
                    "truncated or not HDF5; re-create it"
                ) from exc
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"SubtomogramStore({str(self.path)!r}, n={len(self)}, box={self.box}, classes={self.class_names})"

    @property
    def dtype(self) -> np.dtype:
        return self._h5()["subtomograms"].dtype

    @property
    def lazy_subtomograms(self) -> h5py.Dataset:
        """The ``(N, b, b, b)`` HDF5 dataset itself, for viewers that slice it lazily."""
        return self._h5()["subtomograms"]

    @property
    def meta_names(self) -> list[str]:
        f = self._h5()
        return sorted(f["meta"].keys()) if "meta" in f else []

    def meta(self, name: str) -> np.ndarray:
        """Per-sample metadata ``(N, ...)``."""
        f = self._h5()
        if "meta" not in f or name not in f["meta"]:
            raise KeyError(f"{self.path}: no metadata {name!r}; available: {self.meta_names}")
        ds = f["meta"][name]
        return np.asarray(ds.asstr()[:] if ds.dtype == _STR else ds[:])

    def _read(self, name: str, indices: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        ds = self._h5()[name]
        if isinstance(indices, slice):
            return ds[indices]
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return np.empty((0, *ds.shape[1:]), ds.dtype)
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"{self.path}: index out of range 0..{len(self) - 1}")
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        uniq, inverse = np.unique(sorted_idx, return_inverse=True)
        out_sorted = ds[uniq][inverse]
        out = np.empty_like(out_sorted)
        out[order] = out_sorted
        return out

    def subtomograms(self, indices: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        """``(n, b, b, b)`` float32 zyx for the given indices (any order, repeats allowed)."""
        return self._read("subtomograms", indices).astype(np.float32, copy=False)

    def masks(self, indices: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        """``(n, b, b, b)`` uint8 segmentation targets."""
        if not self.has_masks:
            raise ValueError(f"{self.path}: store has no /masks; simulate or extract with masks")
        return self._read("masks", indices)

    def halves(self, indices: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        """``(n, 2, b, b, b)`` float32: each sample's two half reconstructions."""
        if not self.has_halves:
            raise ValueError(
                f"{self.path}: store has no /halves; extract from a project whose tomograms "
                "have odd/even halves, or simulate with --halves"
            )
        return self._read("halves", indices).astype(np.float32, copy=False)

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row indices of the given ids. Raises ``KeyError`` naming an unknown id."""
        lookup = {i: k for k, i in enumerate(self.ids)}
        try:
            return np.array([lookup[str(i)] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"{self.path}: unknown sample id {exc}") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SubtomogramStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
