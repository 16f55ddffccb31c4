"""Crash-safe file writes: temp file in the same folder, fsync, ``os.replace``.

A reader never sees a half-written file under the final name: either the old content
(or no file) or the complete new one. Used for every output that must survive a crash
(MRC, STAR/CSV, HDF5 stores, checkpoints, JSON state).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry (the rename) to disk; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give: 0o666 minus the umask.

    ``tempfile.mkstemp`` creates files readable by the owner only; outputs renamed from a
    temp file get these permissions instead, so colleagues can read them as usual.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def make_temp_file(final: Path, suffix: str = ".tmp") -> Path:
    """Create an empty temp file beside ``final`` with ordinary permissions."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    os.chmod(tmp_name, default_file_mode())
    return Path(tmp_name)


def check_can_write(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path before any work is done.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        The parent folder does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path}: output already exists; choose another name or replace it with --overwrite"
        )
    if not path.parent.exists():
        raise FileNotFoundError(
            f"{path.parent}: output folder does not exist; create it first (mkdir -p {path.parent})"
        )
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path. On a clean exit the temp file
    is fsynced and renamed onto ``path``; on an exception it is removed and ``path`` is
    left untouched.

    Parameters
    ----------
    path
        Final destination.
    overwrite
        Allow replacing an existing file.
    """
    final = check_can_write(path, overwrite)
    tmp = make_temp_file(final)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_directory(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
