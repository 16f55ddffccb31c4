"""Tomogram geometry: the one place where xyz Å and zyx voxels meet.

At file boundaries positions are ``x, y, z`` in Å with corner origin, ``position_A = index *
voxel_size_A``; inside cryoal they are ``z, y, x`` voxels. The conversion between the two
lives only in :func:`xyz_A_to_zyx_voxels` / :func:`zyx_voxels_to_xyz_A` (and
:func:`tomogram_centre_xyz_A` for RELION 5's centred coordinates);
:func:`relion_euler_matrix` is RELION's rotation of subtomogram angles. Conventions:
:mod:`cryoal.io.coords`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TomogramGeometry:
    """Size and voxel size of a tomogram that coordinates refer to.

    Attributes
    ----------
    shape_zyx
        ``(z, y, x)`` in voxels.
    voxel_size_A
        Isotropic voxel size, Å.
    """

    shape_zyx: tuple[int, int, int]
    voxel_size_A: float

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape_zyx)
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"tomogram shape {self.shape_zyx} must be 3 positive sizes (z, y, x)")
        if not np.isfinite(self.voxel_size_A) or self.voxel_size_A <= 0:
            raise ValueError(f"voxel size {self.voxel_size_A} Å must be a positive number")
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(self, "voxel_size_A", float(self.voxel_size_A))


def _per_row(voxel_size_A: float | np.ndarray, n: int) -> np.ndarray:
    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=np.float64), (n,))
    if not (np.isfinite(vs).all() and (vs > 0).all()):
        raise ValueError(f"voxel size {np.unique(vs)[:3].tolist()} Å must be positive")
    return vs[:, None]


def xyz_A_to_zyx_voxels(xyz_A: np.ndarray, voxel_size_A: float | np.ndarray) -> np.ndarray:
    """``(n, 3)`` xyz Å (corner origin) -> ``(n, 3)`` zyx voxels (0-indexed).

    ``voxel_size_A`` is a float or ``(n,)`` per-row voxel sizes.
    """
    xyz = np.asarray(xyz_A, dtype=np.float64).reshape(-1, 3)
    return xyz[:, ::-1] / _per_row(voxel_size_A, len(xyz))


def zyx_voxels_to_xyz_A(zyx: np.ndarray, voxel_size_A: float | np.ndarray) -> np.ndarray:
    """``(n, 3)`` zyx voxels -> ``(n, 3)`` xyz Å (corner origin); inverse of the above."""
    v = np.asarray(zyx, dtype=np.float64).reshape(-1, 3)
    return v[:, ::-1] * _per_row(voxel_size_A, len(v))


def tomogram_centre_xyz_A(geometry: TomogramGeometry) -> np.ndarray:
    """RELION 5's tomogram centre in corner-origin Å, ``(3,)`` xyz: ``size / 2 * voxel``."""
    return np.asarray(geometry.shape_zyx[::-1], dtype=np.float64) / 2.0 * geometry.voxel_size_A


def relion_euler_matrix(rot: np.ndarray, tilt: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """RELION's rotation matrices ``(n, 3, 3)`` from Euler angles in degrees (ZYZ).

    Same matrix as RELION's ``Euler_angles2matrix`` / ``Euler::anglesToMatrix3``.
    """
    a, b, g = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    m = np.empty((len(ca), 3, 3))
    m[:, 0, 0] = cg * cb * ca - sg * sa
    m[:, 0, 1] = cg * cb * sa + sg * ca
    m[:, 0, 2] = -cg * sb
    m[:, 1, 0] = -sg * cb * ca - cg * sa
    m[:, 1, 1] = -sg * cb * sa + cg * ca
    m[:, 1, 2] = sg * sb
    m[:, 2, 0] = sb * ca
    m[:, 2, 1] = sb * sa
    m[:, 2, 2] = cb
    return m
