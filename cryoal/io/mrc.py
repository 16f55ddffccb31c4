"""MRC tomograms: memory-mapped reading with strict checks, atomic writing.

Arrays are ``(z, y, x)``. The voxel size (Å) and origin come from the header and travel
with the data; every MRC written carries them.

Axis order: MRC stores sections, rows and columns, and the header fields ``mapc``, ``mapr``
and ``maps`` say which of x (1), y (2) and z (3) each is. mrcfile returns the array as
(sections, rows, columns); for the usual ``1, 2, 3`` that is (z, y, x). Files with
another order are read through a transposed view (no copy) so that cryoal always sees
(z, y, x); such a view is not contiguous, so bounded-memory page release is off for it.

Compression: gzip/bzip2-compressed maps (``.mrc.gz``, ``.map.bz2``) are read into memory
by :func:`read_volume`; a tomogram must be memory-mapped, so :func:`open_tomogram` refuses
a compressed one with the command that decompresses it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import mrcfile
import numpy as np

from cryoal.io.atomic import atomic_path
from cryoal.io.volume import PlaneWindow

log = logging.getLogger(__name__)

#: MRC modes cryoal reads: int8, int16, float32, uint16, float16.
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}

#: z-slabs scanned at a time by the NaN/Inf check (bounded memory on huge tomograms).
_FINITE_CHECK_SLAB_BYTES = 64 * 2**20


@dataclass
class Tomogram:
    """A tomogram opened memory-mapped.

    Attributes
    ----------
    path
        The file.
    data
        ``(z, y, x)`` read-only memory map; slicing reads only the bytes needed.
    voxel_size_A
        Isotropic voxel size in Å (from the header, or the caller's override).
    origin_zyx_A
        Header origin, ``(z, y, x)`` in Å.
    """

    path: Path
    data: np.ndarray
    voxel_size_A: float
    origin_zyx_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _handle: object = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` in voxels."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()  # type: ignore[attr-defined]
            self._handle = None

    def __enter__(self) -> Tomogram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _validation_report(path: Path) -> str:
    """mrcfile's own list of what is wrong with a file, as one line."""
    buf = io.StringIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mrcfile.validate(str(path), print_file=buf)
    except Exception as exc:  # validate itself can fail on badly broken files
        return str(exc)
    # mrcfile.validate also prints tracebacks (indented frame lines); keep its findings only.
    lines = [ln.strip() for ln in buf.getvalue().splitlines() if ln.strip() and not ln[0].isspace()]
    noise = ("Checking if", "Traceback", "During handling")
    lines = [ln for ln in lines if not ln.startswith(noise)]
    lines = list(dict.fromkeys(re.sub(r"^\w+(Error|Exception): ", "", ln) for ln in lines))
    return "; ".join(lines[:3]) or "unreadable header"


#: Leading bytes of compressed files, and the command that undoes the compression.
_COMPRESSED_MAGIC = {b"\x1f\x8b": ("gzip", "gunzip"), b"BZh": ("bzip2", "bunzip2")}


def compression_of(path: Path) -> tuple[str, str] | None:
    """``(format, decompress command)`` when ``path`` is gzip/bzip2 compressed, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(3)
    except OSError:
        return None
    for magic, kind in _COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def zyx_axes(header: np.recarray, path: Path) -> tuple[int, int, int] | None:
    """The transpose that turns mrcfile's (section, row, column) array into (z, y, x).

    Returns None for the usual ``mapc, mapr, maps = 1, 2, 3`` (and for headers that
    leave all three 0, as some writers do).

    Raises
    ------
    ValueError
        ``mapc, mapr, maps`` is not a permutation of 1, 2, 3.
    """
    order = (int(header.mapc), int(header.mapr), int(header.maps))
    if order in ((1, 2, 3), (0, 0, 0)):
        return None
    if sorted(order) != [1, 2, 3]:
        raise ValueError(
            f"{path}: header axis order mapc, mapr, maps = {order} is not a permutation of "
            "1, 2, 3; fix the header (e.g. IMOD 'alterheader') or re-export the map"
        )
    per_data_axis = (order[2], order[1], order[0])  # array axes 0, 1, 2 = section, row, column
    return tuple(per_data_axis.index(a) for a in (3, 2, 1))  # type: ignore[return-value]


def _as_zyx(data: np.ndarray, header: np.recarray, path: Path) -> np.ndarray:
    axes = zyx_axes(header, path) if data.ndim == 3 else None
    if axes is None:
        return data
    log.info("%s: axis order mapc/mapr/maps = %d/%d/%d; read as (z, y, x) through a transposed view",
             path, int(header.mapc), int(header.mapr), int(header.maps))  # fmt: skip
    return data.transpose(axes)


def _open_strict(path: Path) -> mrcfile.mrcmemmap.MrcMemmap:
    compressed = compression_of(path)
    if compressed is not None:
        kind, command = compressed
        raise ValueError(
            f"{path}: {kind}-compressed MRC cannot be memory-mapped; decompress it with "
            f"'{command} {path}' (a tomogram is read in place, never loaded whole)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            return mrcfile.mmap(str(path), mode="r", permissive=False)
    except (ValueError, RuntimeWarning, OSError, EOFError) as exc:
        expected = _expected_size(path)
        actual = path.stat().st_size
        if expected is not None and actual < expected:
            detail = f"truncated: {actual} bytes on disk, the header promises {expected}"
        else:
            detail = f"{exc}; {_validation_report(path)}"
        raise ValueError(
            f"{path}: not a readable MRC file ({' '.join(detail.split())}); "
            "check that the file was fully copied/exported, or re-export it from your "
            "reconstruction software"
        ) from exc


def _expected_size(path: Path) -> int | None:
    """File size the header implies, or None when the header itself is unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(str(path), mode="r", permissive=True, header_only=True) as m:
                h = m.header
                nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
                itemsize = np.dtype(mrcfile.utils.dtype_from_mode(h.mode)).itemsize
                return 1024 + int(h.nsymbt) + nx * ny * nz * itemsize
    except Exception:
        return None


def read_voxel_size(handle: mrcfile.mrcobject.MrcObject, path: Path) -> float:
    """Isotropic voxel size (Å) from an open MRC; 0 when the header has none."""
    vs = handle.voxel_size
    sizes = np.array([float(vs.x), float(vs.y), float(vs.z)])
    if np.all(sizes > 0) and not np.allclose(sizes, sizes[0], rtol=1e-3):
        raise ValueError(
            f"{path}: anisotropic voxel size x,y,z = {tuple(sizes)} Å; cryoal needs isotropic "
            "voxels; resample the tomogram (e.g. IMOD's 'squeezevol') first"
        )
    return float(sizes[0])


def open_tomogram(
    path: str | os.PathLike,
    voxel_size_A: float | None = None,
    check_finite: bool = False,
) -> Tomogram:
    """Open an MRC tomogram memory-mapped, read-only.

    Parameters
    ----------
    path
        ``.mrc``/``.rec``/``.map`` file.
    voxel_size_A
        Override the header's voxel size (Å). Needed when the header holds 0; a warning is
        logged when it disagrees with a valid header value.
    check_finite
        Scan the data (slab by slab, bounded memory) and reject NaN/Inf voxels.

    Returns
    -------
    Tomogram
        ``data`` is ``(z, y, x)``. Close it (or use ``with``) when done.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Corrupt or truncated file, not 3-D, unsupported mode, voxel size <= 0 with no
        override, anisotropic voxels, or non-finite voxels when ``check_finite``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: tomogram file not found; check the path")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; pass the .mrc/.rec file inside it")
    handle = _open_strict(path)
    try:
        mode = int(handle.header.mode)
        if mode not in SUPPORTED_MODES:
            raise ValueError(
                f"{path}: MRC mode {mode} is not supported (cryoal reads modes "
                f"{sorted(SUPPORTED_MODES)}: {', '.join(SUPPORTED_MODES.values())}); "
                "convert it to float32 (mode 2), e.g. with IMOD 'newstack -mode 2'"
            )
        if handle.data is None:
            raise ValueError(f"{path}: MRC file holds no data; re-export the tomogram")
        if handle.data.ndim != 3:
            raise ValueError(
                f"{path}: expected a 3-D tomogram but the data is {handle.data.ndim}-D with "
                f"shape {handle.data.shape}; pass a reconstructed volume, not an image or "
                "a tilt series"
            )
        header_vs = read_voxel_size(handle, path)
        if voxel_size_A is not None:
            if voxel_size_A <= 0:
                raise ValueError(f"{path}: voxel size override {voxel_size_A} Å must be > 0")
            if header_vs > 0 and not np.isclose(header_vs, voxel_size_A, rtol=1e-3):
                log.warning(
                    "%s: header voxel size %.4g Å overridden by %.4g Å",
                    path,
                    header_vs,
                    voxel_size_A,
                )
            vs = float(voxel_size_A)
        elif header_vs <= 0:
            raise ValueError(
                f"{path}: voxel size in the header is {header_vs} Å; pass the true voxel size "
                "explicitly (--voxel-size A), or fix the header (e.g. IMOD "
                "'alterheader -del A,A,A')"
            )
        else:
            vs = header_vs
        origin = handle.header.origin
        tomo = Tomogram(
            path=path,
            data=_as_zyx(handle.data, handle.header, path),
            voxel_size_A=vs,
            origin_zyx_A=(float(origin.z), float(origin.y), float(origin.x)),
            _handle=handle,
        )
        if check_finite:
            check_finite_voxels(tomo.data, path)
        return tomo
    except BaseException:
        handle.close()
        raise


def read_volume(
    path: str | os.PathLike, voxel_size_A: float | None = None
) -> tuple[np.ndarray, float]:
    """Read a small map (a template, a mask) into memory, compressed or not.

    Plain files are opened as by :func:`open_tomogram`; gzip/bzip2-compressed ones
    (``.mrc.gz``, ``.map.bz2``, ...) are decompressed by mrcfile. Axis order and voxel
    size are handled the same way; non-finite voxels are refused.

    Returns
    -------
    data
        ``(z, y, x)`` float32 array (a copy).
    voxel_size_A
        Header voxel size, or ``voxel_size_A`` when given.
    """
    path = Path(path)
    if compression_of(path) is None:
        with open_tomogram(path, voxel_size_A=voxel_size_A, check_finite=True) as tomo:
            return np.array(tomo.data, dtype=np.float32), tomo.voxel_size_A
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            handle = mrcfile.open(str(path), mode="r", permissive=False)
    except (ValueError, RuntimeWarning, OSError, EOFError) as exc:
        raise ValueError(
            f"{path}: not a readable compressed MRC file ({' '.join(str(exc).split())}); "
            "check that it was fully copied, or decompress it and check the MRC inside"
        ) from exc
    with handle:
        if handle.data is None or handle.data.ndim != 3:
            shape = None if handle.data is None else handle.data.shape
            raise ValueError(f"{path}: expected a 3-D map, got data of shape {shape}")
        header_vs = read_voxel_size(handle, path)
        vs = float(voxel_size_A) if voxel_size_A is not None else header_vs
        if vs <= 0:
            raise ValueError(
                f"{path}: voxel size in the header is {header_vs} Å; pass the true voxel size "
                "explicitly, or fix the header"
            )
        data = np.array(_as_zyx(handle.data, handle.header, path), dtype=np.float32)
    check_finite_voxels(data, path)
    return data, vs


def check_finite_voxels(data: np.ndarray, path: str | os.PathLike = "<array>") -> None:
    """Raise ``ValueError`` if ``data`` (z, y, x) holds NaN or Inf; scans slab by slab."""
    if data.dtype.kind not in "fc":
        return
    slab = max(1, _FINITE_CHECK_SLAB_BYTES // max(1, data[0].nbytes))
    window = PlaneWindow(data)  # unmaps scanned planes: RSS stays near one slab
    for z0 in range(0, data.shape[0], slab):
        window.prefetch_to(z0 + 2 * slab)
        block = np.asarray(data[z0 : z0 + slab])
        bad = ~np.isfinite(block)
        window.release_below(z0 + slab)
        if bad.any():
            count = int(bad.sum())
            dz, y, x = (int(v) for v in np.argwhere(bad)[0])
            more = "+" if z0 + slab < data.shape[0] else ""  # later slabs were not scanned
            raise ValueError(
                f"{path}: {count}{more} NaN/Inf voxels (first at z={z0 + dz}, y={y}, x={x}); "
                "replace them (e.g. numpy.nan_to_num) or re-run the reconstruction"
            )


def _mrc_dtype(data: np.ndarray) -> np.ndarray:
    """Convert to a dtype MRC can hold without losing values."""
    if data.dtype == np.float64:
        return data.astype(np.float32)
    if data.dtype == np.bool_:
        return data.astype(np.int8)
    if data.dtype.kind in "iu" and data.dtype not in (np.int8, np.int16, np.uint16):
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        for target in (np.int8, np.int16, np.uint16):
            info = np.iinfo(target)
            if info.min <= lo and hi <= info.max:
                return data.astype(target)
        raise ValueError(
            f"integer values {lo}..{hi} do not fit any MRC integer mode; write float32 instead"
        )
    if data.dtype not in (np.float32, np.float16, np.int8, np.int16, np.uint16):
        raise ValueError(f"dtype {data.dtype} cannot be written to MRC; use float32")
    return data


def write_mrc(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size_A: float,
    origin_zyx_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
    overwrite: bool = False,
    labels: Sequence[str] = (),
) -> Path:
    """Write a ``(z, y, x)`` volume atomically with its voxel size and origin.

    Parameters
    ----------
    data
        ``(z, y, x)`` array; float64 is stored as float32, integers in the smallest MRC
        integer mode that holds them.
    voxel_size_A
        Voxel size in Å, > 0 (written to the header; never left at 1 Å by default).
    origin_zyx_A
        Origin in Å, ``(z, y, x)``.
    labels
        Text labels for the header (at most 10 of 80 ASCII characters), e.g.
        :func:`polarity_label`.
    """
    if voxel_size_A is None or not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise ValueError(f"{path}: voxel size {voxel_size_A} Å must be a positive number")
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"{path}: expected (z, y, x) data, got shape {data.shape}")
    data = _mrc_dtype(data)
    with (
        atomic_path(path, overwrite=overwrite) as tmp,
        mrcfile.new(str(tmp), overwrite=True) as mrc,
    ):
        mrc.set_data(data)
        mrc.voxel_size = float(voxel_size_A)
        oz, oy, ox = origin_zyx_A
        mrc.header.origin = (ox, oy, oz)
        mrc.update_header_stats()
        for text in list(labels)[:10]:
            mrc.add_label(str(text)[:80])
    return Path(path)


#: Header label that records the density polarity (``polarity_label("bright")``).
_POLARITY_RE = re.compile(r"cryoal polarity=(dark|bright)")


def polarity_label(polarity: str) -> str:
    """The MRC header label cryoal writes to record that particles are dark or bright."""
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity {polarity!r} must be 'dark' or 'bright'")
    return f"cryoal polarity={polarity} (particles {'brighter' if polarity == 'bright' else 'darker'} than background)"


def _header_labels(path: str | os.PathLike) -> list[str]:
    """The text labels of an MRC header (empty when the file cannot be read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(str(path), mode="r", permissive=True, header_only=True) as m:
                n = int(m.header.nlabl)
                return [
                    bytes(m.header.label[i]).decode("ascii", "replace").rstrip("\x00 ")
                    for i in range(min(n, 10))
                ]
    except (OSError, ValueError):
        return []


def read_polarity(path: str | os.PathLike) -> Literal["dark", "bright"] | None:
    """``"dark"``/``"bright"`` when the MRC header carries cryoal's polarity label, else None."""
    for text in _header_labels(path):
        found = _POLARITY_RE.search(text)
        if found:
            return "bright" if found.group(1) == "bright" else "dark"
    return None


#: Header labels naming a label map's values: ``cryoal classes=background,ribosome`` and,
#: when the names need more than one label, ``cryoal classes+=...`` continuations.
_CLASSES_FIRST, _CLASSES_MORE = "cryoal classes=", "cryoal classes+="


def class_labels(names: Sequence[str], room: int = 9) -> list[str]:
    """Header labels naming the values of a label map: value ``k`` is ``names[k]`` (``names[0]``
    the background), comma-separated over at most ``room`` labels of 80 characters.

    Returns an empty list when the names do not fit (the map is then unnamed) or hold a
    comma or a non-ASCII character.
    """
    if any("," in n or not n.isascii() or not n for n in names):
        return []
    out: list[str] = []
    current = _CLASSES_FIRST
    for name in names:
        sep = "" if current in (_CLASSES_FIRST, _CLASSES_MORE) else ","
        if len(current) + len(sep) + len(name) > 80:
            out.append(current)
            current, sep = _CLASSES_MORE, ""
            if len(current) + len(name) > 80:
                return []
        current += sep + name
    out.append(current)
    return out if len(out) <= room else []


def read_class_names(path: str | os.PathLike) -> list[str]:
    """The value names written by :func:`class_labels` (``[0]`` = background), or ``[]``."""
    names = ""
    for text in _header_labels(path):
        if text.startswith(_CLASSES_FIRST):
            names = text[len(_CLASSES_FIRST) :]
        elif text.startswith(_CLASSES_MORE) and names:
            names += "," + text[len(_CLASSES_MORE) :]
    return names.split(",") if names else []
