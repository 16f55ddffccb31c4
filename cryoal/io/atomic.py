"""Crash-safe file writes: temp file in the same folder, fsync, ``os.replace``.

A reader never sees a half-written file under the final name: either the old content
(or no file) or the complete new one. Used for every output that must survive a crash
(MRC, STAR/CSV, HDF5 stores, checkpoints, JSON state).

Temporary files and folders are named ``.<final name>.cryoal-partial-<host>-<pid>-<token>``
so that what a killed run leaves behind can be recognised: the next write of the same
output removes the partials of dead processes on this host, and ``cryoal clean`` lists or
removes them in a whole folder tree (:func:`find_partials`).

A full disk (``ENOSPC``/``EDQUOT``) is re-raised as an ``OSError`` whose ``filename`` is
the final output path, so that the CLI can name it in one line.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Marker in the name of every temporary file or folder cryoal writes.
PARTIAL_MARKER = ".cryoal-partial-"
_PARTIAL_RE = re.compile(
    r"^\.(?P<name>.+)\.cryoal-partial-(?P<host>[A-Za-z0-9_]*)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})$"
)
#: ``errno`` values that mean "the disk (or the user's quota) is full".
DISK_FULL_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None
)


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


def this_host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname().split(".")[0])


def partial_name(final: Path) -> str:
    """Name of a new temporary sibling of ``final`` (unique; records host and pid)."""
    return f".{final.name}{PARTIAL_MARKER}{this_host()}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Partial:
    """A temporary file or folder left beside an output by a cryoal process.

    Attributes
    ----------
    path
        The temporary file or folder.
    final
        The output it was going to become.
    host, pid
        Where and by which process it was written.
    stale
        The writing process is gone (same host, pid no longer running); only stale
        partials are removed automatically.
    """

    path: Path
    final: Path
    host: str
    pid: int
    stale: bool

    @property
    def size_bytes(self) -> int:
        """Bytes on disk (a folder: the sum of its files)."""
        try:
            if self.path.is_dir():
                return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
            return self.path.stat().st_size
        except OSError:
            return 0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def parse_partial(path: Path) -> Partial | None:
    """The :class:`Partial` that ``path`` names, or ``None`` if it is not a cryoal partial."""
    m = _PARTIAL_RE.match(path.name)
    if m is None:
        return None
    pid = int(m["pid"])
    stale = m["host"] == this_host() and not _pid_alive(pid)
    return Partial(path, path.with_name(m["name"]), m["host"], pid, stale)


def find_partials(root: str | os.PathLike, recursive: bool = True) -> list[Partial]:
    """Every cryoal partial under ``root`` (not descending into partial folders)."""
    root = Path(root)
    found: list[Partial] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames) + filenames:
            if PARTIAL_MARKER in name:
                part = parse_partial(Path(dirpath) / name)
                if part is not None:
                    found.append(part)
        dirnames[:] = [d for d in dirnames if PARTIAL_MARKER not in d] if recursive else []
    return sorted(found, key=lambda p: str(p.path))


def remove_partial(part: Partial) -> None:
    """Delete a partial file or folder (missing already is fine)."""
    if part.path.is_dir() and not part.path.is_symlink():
        shutil.rmtree(part.path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            part.path.unlink()


def remove_stale_partials(final: Path) -> int:
    """Remove the partials of ``final`` left by dead processes on this host; return how many."""
    removed = 0
    try:
        names = [
            n for n in os.listdir(final.parent) if n.startswith(f".{final.name}{PARTIAL_MARKER}")
        ]
    except OSError:
        return 0
    for name in names:
        part = parse_partial(final.parent / name)
        if part is not None and part.stale and part.final == final:
            remove_partial(part)
            removed += 1
    if removed:
        log.warning(
            "%s: removed %d partial file(s) left by an interrupted earlier run", final, removed
        )
    return removed


def make_temp_file(final: Path, suffix: str = "") -> Path:
    """Create an empty temp file beside ``final`` with ordinary permissions.

    Stale partials of ``final`` (from killed runs) are removed first. ``suffix`` is
    accepted for compatibility and ignored: the name must stay recognisable.
    """
    final = Path(final)
    remove_stale_partials(final)
    tmp = final.with_name(partial_name(final))
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, default_file_mode())
    os.close(fd)
    return tmp


def make_temp_dir(final: Path) -> Path:
    """Create an empty temp folder beside ``final`` (stale partials removed first)."""
    final = Path(final)
    remove_stale_partials(final)
    tmp = final.with_name(partial_name(final))
    tmp.mkdir()
    return tmp


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is (or wraps) a full disk or quota."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc)
    # HDF5 reports write failures as RuntimeError/OSError text carrying the C errno.
    return any(f"errno = {e}," in text for e in DISK_FULL_ERRNOS) or (
        "No space left on device" in text or "database or disk is full" in text
    )


def disk_full_error(path: str | os.PathLike, exc: BaseException | None = None) -> OSError:
    """An ``OSError(ENOSPC)`` naming ``path`` (the output, not its temp file)."""
    code = errno.ENOSPC
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in DISK_FULL_ERRNOS:
        code = exc.errno
    return OSError(code, os.strerror(code), str(path))


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
    is fsynced and renamed onto ``path``; on any exception (including Ctrl-C) it is
    removed and ``path`` is left untouched. A full disk is re-raised naming ``path``.

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
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(final, exc) from exc
        raise


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, overwrite: bool = False, last: str | None = None
) -> Iterator[Path]:
    """Yield a temporary folder; on success its files appear in ``path`` as one unit.

    Where ``path`` does not exist or is empty, the temporary folder is renamed onto it
    (atomic). Where ``path`` already holds other files, the new files are moved in one by
    one, in the order they were created (write the file that marks completion last). With
    ``overwrite``, existing files of the same names are replaced. On any exception the
    temporary folder is removed and ``path`` is left as it was.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(
            f"{final}: exists and is not a folder; choose another output folder"
        )
    if not final.parent.exists():
        raise FileNotFoundError(
            f"{final.parent}: output folder does not exist; create it first (mkdir -p {final.parent})"
        )
    tmp = make_temp_dir(final)
    try:
        yield tmp
        names = sorted(os.listdir(tmp), key=lambda n: (n == last, n))
        for name in names:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_directory(tmp)
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        if not final.exists():
            os.rename(tmp, final)
        else:
            for name in names:
                if (final / name).exists() and not overwrite:
                    raise FileExistsError(
                        f"{final / name}: output already exists; choose another folder or "
                        "pass --overwrite"
                    )
            for name in names:
                os.replace(tmp / name, final / name)
            tmp.rmdir()
        fsync_directory(final.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(final, exc) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
