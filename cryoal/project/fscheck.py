"""Detect network filesystems, on which SQLite's WAL mode is not safe.

WAL needs shared memory (the ``-shm`` file, memory-mapped) between every process that opens
the database, which only works when they run on the same host and the filesystem honours
POSIX locks. NFS, SMB/CIFS, Lustre, GPFS, BeeGFS and FUSE mounts do not guarantee that, so
two machines opening the live ``labels.sqlite`` at once can corrupt it. cryoal warns when a
project lives on one; training jobs read immutable snapshots instead (see ``snapshot``).

The mount table comes from ``psutil.disk_partitions`` (``/proc/mounts`` on Linux,
``getfsstat`` on macOS and the BSDs, the volume list on Windows).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Filesystem types (``/proc/mounts`` third field) where WAL locking is unsafe.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p",
        "lustre", "gpfs", "beegfs", "fhgfs", "glusterfs", "cephfs", "ceph", "ocfs2",
        "gfs2", "panfs", "pvfs2", "orangefs", "davfs", "virtiofs", "wekafs", "quobyte",
        "afpfs", "webdav", "osxfuse", "macfuse",
    }
)  # fmt: skip


def _unescape(field: str) -> str:
    """``/proc/mounts`` escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _system_mounts() -> list[tuple[str, str]] | None:
    """``(mount point, filesystem type)`` of every mount, from psutil; None if unavailable."""
    try:
        import psutil

        return [(p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True)]
    except (ImportError, OSError, RuntimeError):
        return None


def _parse_mounts_text(text: str) -> list[tuple[str, str]]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape(fields[1]), fields[2]))
    return mounts


def filesystem_type(path: str | os.PathLike, mounts_text: str | None = None) -> str | None:
    """Type of the filesystem holding ``path`` (e.g. ``"ext4"``, ``"nfs4"``).

    Parameters
    ----------
    path
        A file or folder (need not exist yet; its nearest existing parent is used).
    mounts_text
        A mount table in ``/proc/mounts`` format (for tests); the system's mounts
        (``psutil.disk_partitions``) when None.

    Returns
    -------
    str or None
        The type of the longest mount point that contains ``path``; None when unknown.
    """
    mounts = _system_mounts() if mounts_text is None else _parse_mounts_text(mounts_text)
    if not mounts:
        return None
    target = Path(path).expanduser().absolute()
    existing, tail = target, []
    while not existing.exists() and existing != existing.parent:
        tail.append(existing.name)
        existing = existing.parent
    target = existing.resolve().joinpath(*reversed(tail))  # symlinks resolved where possible
    best: tuple[int, str] | None = None
    for mount_text, fs_type in mounts:
        mount_point = Path(mount_text)
        if target == mount_point or mount_point in target.parents:
            depth = len(mount_point.parts)
            if best is None or depth >= best[0]:
                best = (depth, fs_type)
    return best[1] if best else None


def is_network_filesystem(fs_type: str | None) -> bool:
    """True for network / cluster / FUSE filesystems (``fuse.sshfs``, ``nfs4``, ``lustre``)."""
    if fs_type is None:
        return False
    fs_type = fs_type.lower()
    if fs_type == "fuseblk":  # a local block device through FUSE (e.g. NTFS via ntfs-3g)
        return False
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith(("fuse", "nfs", "smb"))
