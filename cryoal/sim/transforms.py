"""Rotations and sub-voxel shifts of templates onto an output grid.

A particle of template ``t`` with rotation ``R`` and centre ``c`` (zyx voxels of the output
grid) has the density ``f(p) = f_t(R^T (p - c) + c_t)`` where ``c_t`` is the template's
centre of mass: the template is rotated about its centre of mass and placed with that
point at ``c``. Sampling is trilinear (``torch.nn.functional.grid_sample``), which
preserves the integrated density of smooth templates to well under 1 %.

Rotation convention: quaternions are scipy's ``(x, y, z, w)`` (scalar last) and act on
``(x, y, z)`` vectors; :func:`rotation_matrices_zyx` gives the same rotation acting on the
``(z, y, x)`` vectors cryoal uses. Uniform rotations come from
``scipy.spatial.transform.Rotation.random`` with an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from cryoal.sim.templates import Template

_REVERSE = np.eye(3)[::-1]  # zyx <-> xyz permutation (its own inverse)


def random_quaternion(rng: np.random.Generator) -> np.ndarray:
    """One rotation drawn uniformly from SO(3): ``(4,)`` scipy quaternion ``(x, y, z, w)``."""
    return Rotation.random(random_state=rng).as_quat()


def rotation_matrices_zyx(quaternions_xyzw: np.ndarray) -> np.ndarray:
    """``(n, 4)`` quaternions -> ``(n, 3, 3)`` matrices acting on ``(z, y, x)`` column vectors."""
    r_xyz = Rotation.from_quat(
        np.asarray(quaternions_xyzw, dtype=np.float64).reshape(-1, 4)
    ).as_matrix()
    return _REVERSE @ r_xyz @ _REVERSE


class TemplateBank:
    """Templates stacked in one tensor for batched rendering.

    Parameters
    ----------
    templates
        The classes, in class-index order (all at one voxel size).
    """

    def __init__(self, templates: Sequence[Template]) -> None:
        if not templates:
            raise ValueError("at least one template is needed")
        self.templates = list(templates)
        size = max(t.density.shape[0] for t in templates)
        stack = np.zeros((len(templates), 1, size, size, size), dtype=np.float32)
        centres = np.zeros((len(templates), 3))
        for k, t in enumerate(templates):
            d = t.density.shape[0]
            lo = (size - d) // 2
            stack[k, 0, lo : lo + d, lo : lo + d, lo : lo + d] = t.density
            centres[k] = t.centre_zyx + lo
        self.size = size
        self.stack = torch.from_numpy(stack)
        self.centres = centres
        self.levels = np.array([t.support_level for t in templates], dtype=np.float32)
        self.radii = np.array([t.radius_voxels for t in templates])

    def __len__(self) -> int:
        return len(self.templates)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.templates]

    def render(
        self,
        classes: np.ndarray,
        rotations_zyx: np.ndarray,
        centres_zyx: np.ndarray,
        shape_zyx: tuple[int, int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render ``m`` rotated, shifted particles, each into its own volume.

        Parameters
        ----------
        classes
            ``(m,)`` template indices.
        rotations_zyx
            ``(m, 3, 3)`` rotation matrices acting on zyx vectors.
        centres_zyx
            ``(m, 3)`` particle centres in voxel coordinates of the output grid (may be
            fractional: sub-voxel shifts, and outside the grid: partial neighbours).
        shape_zyx
            Output volume shape.

        Returns
        -------
        (np.ndarray, np.ndarray)
            ``(m, *shape)`` float32 densities and ``(m, *shape)`` bool supports (density
            above the template's support level).
        """
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        m = classes.size
        nz, ny, nx = shape_zyx
        shape = (int(nz), int(ny), int(nx))
        rot = np.asarray(rotations_zyx, dtype=np.float64).reshape(m, 3, 3)
        cen = np.asarray(centres_zyx, dtype=np.float64).reshape(m, 3)
        dens = np.zeros((m, *shape), dtype=np.float32)
        for k in np.unique(classes):
            rows = np.nonzero(classes == k)[0]
            # Only a cube around each particle can be non-zero: the template vanishes beyond
            # radius + 3 voxels of its centre (soft mask), plus the reach of trilinear sampling.
            h = int(math.ceil(self.radii[k] + 3.0 + math.sqrt(3.0))) + 1
            if 2 * h + 1 >= max(shape):
                dens[rows] = self._sample(classes[rows], rot[rows], cen[rows], shape)
                continue
            ic = np.floor(cen[rows] + 0.5).astype(np.int64)
            local = self._sample(classes[rows], rot[rows], cen[rows] - ic + h, (2 * h + 1,) * 3)
            for j, r in enumerate(rows):
                lo = ic[j] - h
                dst_lo = np.maximum(lo, 0)
                dst_hi = np.minimum(lo + 2 * h + 1, shape)
                if np.any(dst_hi <= dst_lo):
                    continue
                src_lo = dst_lo - lo
                src_hi = src_lo + (dst_hi - dst_lo)
                dens[r, dst_lo[0] : dst_hi[0], dst_lo[1] : dst_hi[1], dst_lo[2] : dst_hi[2]] = (
                    local[j, src_lo[0] : src_hi[0], src_lo[1] : src_hi[1], src_lo[2] : src_hi[2]]
                )
        support = dens > self.levels[classes].reshape(m, 1, 1, 1)
        return dens, support

    def _sample(
        self,
        classes: np.ndarray,
        rot: np.ndarray,
        centres: np.ndarray,
        shape_zyx: tuple[int, int, int],
    ) -> np.ndarray:
        """Trilinear samples of rotated templates on a full grid: ``(m, *shape)`` float32."""
        m = classes.size
        # Work in (x, y, z), the order grid_sample wants, and fold the centring and the
        # [-1, 1] normalisation (align_corners=True: index 0 -> -1, size-1 -> +1) into one
        # affine map: g = p @ (a R) + a (c_t - c @ R) - 1 for row vectors p, c, c_t.
        rot_xyz = _REVERSE @ rot @ _REVERSE
        cen = centres[:, ::-1]
        tcen = self.centres[classes][:, ::-1]
        a = 2.0 / (self.size - 1)
        mat = torch.from_numpy((a * rot_xyz).astype(np.float32))  # (m, 3, 3), rows for x, y, z
        bias = torch.from_numpy(
            (a * (tcen - np.einsum("mi,mij->mj", cen, rot_xyz)) - 1.0).astype(np.float32)
        )
        z, y, x = (torch.arange(n, dtype=torch.float32) for n in shape_zyx)
        # g[z, y, x] = x A_x + y A_y + z A_z + b, built by broadcasting (no (P, 3) matmul).
        norm = (
            (z.view(1, -1, 1, 1, 1) * mat[:, 2].view(m, 1, 1, 1, 3) + bias.view(m, 1, 1, 1, 3))
            + y.view(1, 1, -1, 1, 1) * mat[:, 1].view(m, 1, 1, 1, 3)
        ) + x.view(1, 1, 1, -1, 1) * mat[:, 0].view(m, 1, 1, 1, 3)
        if np.all(classes == classes[0]):
            inp = self.stack[int(classes[0]) : int(classes[0]) + 1].expand(m, -1, -1, -1, -1)
        else:
            inp = self.stack[torch.from_numpy(classes)]
        out = F.grid_sample(inp, norm, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out[:, 0].numpy()
