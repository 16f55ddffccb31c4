"""Detect network filesystems, on which SQLite's WAL mode is not safe.

WAL needs shared memory (the ``-shm`` file, memory-mapped) between every process that opens
the database, which only works when they run on the same host and the filesystem honours
POSIX locks. NFS, SMB/CIFS, Lustre, GPFS, BeeGFS and FUSE mounts do not guarantee that, so
two machines opening the live ``labels.sqlite`` at once can corrupt it. cryoal warns when a
project lives on one; training jobs read immutable snapshots instead (see ``snapshot``).
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
    }
)  # fmt: skip


def _unescape(field: str) -> str:
    """``/proc/mounts`` escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: str | os.PathLike, mounts_text: str | None = None) -> str | None:
    """Type of the filesystem holding ``path`` (e.g. ``"ext4"``, ``"nfs4"``).

    Parameters
    ----------
    path
        A file or folder (need not exist yet; its nearest existing parent is used).
    mounts_text
        Content of ``/proc/mounts``; read from the system when None.

    Returns
    -------
    str or None
        The type of the longest mount point that contains ``path``; None when unknown
        (no ``/proc/mounts``, e.g. macOS or Windows).
    """
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = Path(path).expanduser().absolute()
    existing, tail = target, []
    while not existing.exists() and existing != existing.parent:
        tail.append(existing.name)
        existing = existing.parent
    target = existing.resolve().joinpath(*reversed(tail))  # symlinks resolved where possible
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fs_type = Path(_unescape(fields[1])), fields[2]
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
