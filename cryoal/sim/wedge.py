"""Missing wedge: a Fourier mask for a tilt range, and a tilt-series / back-projection path.

Geometry (arrays are ``(z, y, x)``; the beam is along z at tilt 0, the tilt axis is y).
A tilt by ``theta`` turns the beam direction from +z towards +x: ``d = (z: cos theta,
x: sin theta)``. The projection at that tilt is a line integral along ``d``; its detector
coordinate across the tilt axis is ``u = x cos theta - z sin theta`` (relative to the
volume centre), and by the central-slice theorem its 2D Fourier transform is the plane of
the 3D transform that contains ``k_y`` and ``(k_z, k_x) = (-sin theta, cos theta)``. A tilt
series over ``[theta_min, theta_max]`` therefore samples the Fourier points whose angle
``atan2(-k_z, k_x)`` (folded into (-90°, 90°]) lies in that range; the rest is the missing
wedge. :func:`wedge_mask` is that set as a 0/1 mask; :class:`TiltSeriesProjector` does the
same physics in real space (project, then weighted back-projection), so the two paths agree.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import scipy.sparse


def tilt_angles(
    tilt_range_deg: tuple[float, float] = (-60.0, 60.0), step_deg: float = 3.0
) -> np.ndarray:
    """Tilt angles in degrees from ``min`` to ``max`` inclusive, spaced as close to ``step_deg``
    as the range allows (``-60..60`` by 3 gives 41 tilts)."""
    lo, hi = (float(t) for t in tilt_range_deg)
    check_tilt_range((lo, hi))
    if not step_deg > 0:
        raise ValueError(f"tilt step {step_deg}° must be > 0 (e.g. 3)")
    n = max(1, int(round((hi - lo) / step_deg)) + 1)
    return np.linspace(lo, hi, n) if n > 1 else np.array([lo])


def check_tilt_range(tilt_range_deg: tuple[float, float]) -> None:
    """Raise ``ValueError`` unless ``-90 <= min <= max <= 90``."""
    lo, hi = tilt_range_deg
    if not (-90.0 <= lo <= hi <= 90.0):
        raise ValueError(
            f"tilt range {lo}..{hi}° is invalid; give MIN MAX with -90 <= MIN <= MAX <= 90 (e.g. -60 60)"
        )


def fourier_tilt_angle(shape_zyx: tuple[int, int, int], *, rfft: bool = True) -> np.ndarray:
    """Angle ``atan2(-k_z, k_x)`` in degrees folded into (-90, 90] on the (r)FFT grid.

    Returns ``(Z, 1, Xf)`` (broadcasts over y); NaN on the ``k_z = k_x = 0`` line.
    """
    z, _, x = shape_zyx
    kz = scipy.fft.fftfreq(z)[:, None, None]
    kx = (scipy.fft.rfftfreq(x) if rfft else scipy.fft.fftfreq(x))[None, None, :]
    phi = np.degrees(np.arctan2(-kz, kx))
    phi = np.where(phi > 90.0, phi - 180.0, phi)
    phi = np.where(phi <= -90.0, phi + 180.0, phi)
    return np.where((kz == 0) & (kx == 0), np.nan, phi)


def wedge_mask(
    shape_zyx: tuple[int, int, int],
    tilt_range_deg: tuple[float, float] = (-60.0, 60.0),
    *,
    rfft: bool = True,
) -> np.ndarray:
    """0/1 float32 mask of the Fourier points a tilt series over ``tilt_range_deg`` samples.

    Parameters
    ----------
    shape_zyx
        Real-space volume shape ``(Z, Y, X)``.
    tilt_range_deg
        ``(min, max)`` tilt in degrees about the y axis.
    rfft
        Mask for ``scipy.fft.rfftn`` output ``(Z, Y, X // 2 + 1)``; else for ``fftn``.

    Returns
    -------
    np.ndarray
        ``(Z, Y, X // 2 + 1)`` (or ``(Z, Y, X)``) float32, 1 = measured, 0 = missing wedge.
    """
    check_tilt_range(tilt_range_deg)
    lo, hi = tilt_range_deg
    phi = fourier_tilt_angle(shape_zyx, rfft=rfft)
    eps = 1e-9
    inside = np.isnan(phi) | ((phi >= lo - eps) & (phi <= hi + eps))
    ny = shape_zyx[1]
    return np.broadcast_to(inside, (inside.shape[0], ny, inside.shape[2])).astype(np.float32)


def ram_lak_response(width: int) -> tuple[np.ndarray, int]:
    """Frequency response of the discrete Ram-Lak (ramp) filter for detector rows of ``width``.

    Uses the band-limited spatial kernel of Kak & Slaney (h[0] = 1/4, h[n odd] =
    -1/(pi^2 n^2), h[n even] = 0), zero-padded to ``P >= 2 width`` so the convolution does
    not wrap; unlike a sampled ``|k|`` it keeps the right DC term.

    Returns
    -------
    (np.ndarray, int)
        ``(P // 2 + 1,)`` real rfft response and the padded length ``P``.
    """
    p = int(2 ** math.ceil(math.log2(2 * width)))
    n = np.arange(p)
    n = np.where(n > p // 2, n - p, n)
    h = np.zeros(p)
    h[0] = 0.25
    odd = (n % 2) == 1
    h[odd] = -1.0 / (np.pi**2 * n[odd].astype(np.float64) ** 2)
    return np.real(scipy.fft.rfft(h)).astype(np.float32), p


class TiltSeriesProjector:
    """Parallel-beam projector and weighted back-projector for tilts about the y axis.

    Because the tilt axis is y, every y row is an independent 2D problem in the ``(z, x)``
    plane: one sparse matrix ``A`` of shape ``(T * W, Z * X)`` maps a ``(z, x)`` plane to
    ``T`` detector rows of ``W`` pixels, and the same matrix serves all y rows and all
    volumes of a batch in one sparse-dense product. ``A`` is voxel-driven with linear
    interpolation on the detector and ``supersample**2`` sub-samples per voxel (which
    suppresses the aliasing of plain voxel-driven projection); back-projection is ``A^T``.

    Parameters
    ----------
    plane_zx
        ``(Z, X)`` of the volumes.
    angles_deg
        ``(T,)`` tilt angles in degrees.
    width
        Detector pixels across the tilt axis; default covers the whole plane at every tilt.
    supersample
        Sub-samples per voxel edge when building ``A``.
    """

    def __init__(
        self,
        plane_zx: tuple[int, int],
        angles_deg: np.ndarray,
        width: int | None = None,
        supersample: int = 2,
    ) -> None:
        self.plane_zx = (int(plane_zx[0]), int(plane_zx[1]))
        self.angles_deg = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
        z, x = self.plane_zx
        if width is None:
            th = np.radians(self.angles_deg)
            width = int(np.ceil(np.max(np.abs(x * np.cos(th)) + np.abs(z * np.sin(th))))) + 2
        self.width = int(width)
        self.supersample = int(supersample)
        self.matrix = _projection_matrix(
            self.plane_zx, tuple(self.angles_deg), self.width, self.supersample
        )
        self.matrix_t = self.matrix.T.tocsr()
        self._ramp, self._pad = ram_lak_response(self.width)
        # Angular weight of each tilt in the back-projection sum (radians).
        if self.angles_deg.size > 1:
            self.angle_weight = float(np.radians(np.mean(np.diff(self.angles_deg))))
        else:
            self.angle_weight = 1.0

    @property
    def n_tilts(self) -> int:
        return int(self.angles_deg.size)

    def project(self, volumes: np.ndarray) -> np.ndarray:
        """Line integrals: ``(n, Z, Y, X)`` -> tilt series ``(n, T, Y, W)`` float32."""
        n, z, y, x = volumes.shape
        if (z, x) != self.plane_zx:
            raise ValueError(
                f"volumes have (Z, X) = {(z, x)}; projector was built for {self.plane_zx}"
            )
        cols = np.ascontiguousarray(volumes.transpose(1, 3, 0, 2), dtype=np.float32).reshape(
            z * x, n * y
        )
        out = self.matrix @ cols  # (T*W, n*Y)
        return out.reshape(self.n_tilts, self.width, n, y).transpose(2, 0, 3, 1)

    def backproject(self, projections: np.ndarray, y: int | None = None) -> np.ndarray:
        """Unweighted back-projection ``A^T``: ``(n, T, Y, W)`` -> ``(n, Z, Y, X)`` float32."""
        n, t, ny, w = projections.shape
        if (t, w) != (self.n_tilts, self.width):
            raise ValueError(
                f"projections have (T, W) = {(t, w)}; expected {(self.n_tilts, self.width)}"
            )
        cols = np.ascontiguousarray(projections.transpose(1, 3, 0, 2), dtype=np.float32).reshape(
            t * w, n * ny
        )
        z, x = self.plane_zx
        out = self.matrix_t @ cols  # (Z*X, n*Y)
        return out.reshape(z, x, n, ny).transpose(2, 0, 3, 1)

    def ramp_filter(self, projections: np.ndarray) -> np.ndarray:
        """Apply the Ram-Lak filter along the detector axis (last axis) of ``(..., W)``."""
        f = scipy.fft.rfft(projections, n=self._pad, axis=-1)
        f *= self._ramp
        return scipy.fft.irfft(f, n=self._pad, axis=-1)[..., : self.width].astype(np.float32)

    def reconstruct(self, projections: np.ndarray) -> np.ndarray:
        """Weighted (filtered) back-projection: ``(n, T, Y, W)`` -> ``(n, Z, Y, X)``.

        Scaled so that a full 180° tilt series of ``project(v)`` reconstructs ``v``.
        """
        rec = self.backproject(self.ramp_filter(projections))
        rec *= np.float32(self.angle_weight)
        return rec


@functools.lru_cache(maxsize=8)
def _projection_matrix(
    plane_zx: tuple[int, int], angles_deg: tuple[float, ...], width: int, supersample: int
) -> scipy.sparse.csr_matrix:
    z, x = plane_zx
    s = supersample
    sub = (np.arange(s) + 0.5) / s - 0.5
    zz, xx = np.meshgrid(
        np.arange(z, dtype=np.float64), np.arange(x, dtype=np.float64), indexing="ij"
    )
    zc = (zz - (z - 1) / 2.0).reshape(-1)
    xc = (xx - (x - 1) / 2.0).reshape(-1)
    col = np.arange(z * x)
    wc = (width - 1) / 2.0
    blocks = []
    for theta in np.radians(angles_deg):
        c, sn = math.cos(theta), math.sin(theta)
        rows_l, cols_l, vals_l = [], [], []
        for dz in sub:
            for dx in sub:
                u = (xc + dx) * c - (zc + dz) * sn + wc
                w0 = np.floor(u)
                f = u - w0
                w0 = w0.astype(np.int64)
                for w, val in ((w0, 1.0 - f), (w0 + 1, f)):
                    ok = (w >= 0) & (w < width)
                    rows_l.append(w[ok])
                    cols_l.append(col[ok])
                    vals_l.append(val[ok] / (s * s))
        block = scipy.sparse.coo_matrix(
            (np.concatenate(vals_l), (np.concatenate(rows_l), np.concatenate(cols_l))),
            shape=(width, z * x),
        ).tocsr()
        block.sum_duplicates()
        blocks.append(block)
    return scipy.sparse.vstack(blocks, format="csr").astype(np.float32)
