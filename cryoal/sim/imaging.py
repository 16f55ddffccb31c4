"""The imaging model: CTF and missing wedge applied to particle densities, and the noise.

Two paths, chosen with ``ImagingParams.path``:

``"fourier"`` (fast, the default)
    ``signal = IFFT( FFT(density) * CTF(|k|) * W(k) )`` with the 3D CTF of
    :mod:`cryoal.sim.ctf` evaluated at ``|k|`` and ``W`` the missing-wedge mask of
    :mod:`cryoal.sim.wedge`. Applying the CTF radially in 3D is exact for a tilt series in
    which every tilt has the same defocus (by the central-slice theorem each tilt's 2D CTF
    lies on its central slice with the same ``|k|``); it ignores the defocus gradient
    across a tilted specimen, as most simulators do. Noise is white Gaussian in the box.
``"backprojection"`` (realistic, slower)
    The density is projected to a tilt series (``tilt_step_deg`` apart), each projection is
    multiplied by the 2D CTF, white Gaussian noise is added to every tilt image, and the
    volume is reconstructed by weighted (Ram-Lak filtered) back-projection. The wedge then
    arises from the geometry, and the noise is coloured and confined to the measured
    Fourier region as in real tomograms.

Convolution by FFT is periodic over the box; the CTF's delocalisation (about
``lambda * defocus * k_max``, 5 voxels at 5 µm and 10 Å voxels) wraps around the box edge,
where a centred particle has no density.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoal.sim.ctf import ctf, frequency_magnitude
from cryoal.sim.wedge import TiltSeriesProjector, check_tilt_range, tilt_angles, wedge_mask

PATHS = ("fourier", "backprojection")


def float_pair(values: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` as floats from a 2-sequence (a CLI tuple or a list from a config file)."""
    a, b = values
    return float(a), float(b)


@dataclass(frozen=True)
class ImagingParams:
    """Microscope and acquisition settings (each step can be switched off).

    Attributes
    ----------
    ctf
        Apply the CTF.
    defocus_range_um
        ``(min, max)`` defocus in µm, > 0 = underfocus; drawn uniformly per sample.
    voltage_kV, cs_mm, amplitude_contrast
        300 kV, 2.7 mm, 0.07 by default.
    phase_flip
        Use ``|CTF|`` (phase-flipped data).
    wedge
        Restrict to the tilt range (missing wedge); with ``False`` the Fourier path keeps
        all of Fourier space and the back-projection path tilts over the full -90..90°.
    tilt_range_deg
        ``(min, max)`` tilt about y, degrees.
    tilt_step_deg
        Tilt increment of the back-projection path.
    path
        ``"fourier"`` or ``"backprojection"``.
    """

    ctf: bool = True
    defocus_range_um: tuple[float, float] = (2.0, 5.0)
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_flip: bool = False
    wedge: bool = True
    tilt_range_deg: tuple[float, float] = (-60.0, 60.0)
    tilt_step_deg: float = 3.0
    path: str = "fourier"

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if self.path not in PATHS:
            raise ValueError(
                f"imaging path {self.path!r} is unknown; use one of {', '.join(PATHS)}"
            )
        lo, hi = self.defocus_range_um
        if not (0 <= lo <= hi) or not np.isfinite(hi):
            raise ValueError(
                f"defocus range {lo}..{hi} µm is invalid; give MIN MAX underfocus in µm with 0 <= MIN <= MAX (e.g. 2 5)"
            )
        if not self.voltage_kV > 0:
            raise ValueError(f"voltage {self.voltage_kV} kV must be > 0 (e.g. 300)")
        if self.cs_mm < 0:
            raise ValueError(f"spherical aberration {self.cs_mm} mm must be >= 0 (e.g. 2.7)")
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(
                f"amplitude contrast {self.amplitude_contrast} must be in [0, 1) (e.g. 0.07)"
            )
        check_tilt_range(self.tilt_range())
        if not self.tilt_step_deg > 0:
            raise ValueError(f"tilt step {self.tilt_step_deg}° must be > 0 (e.g. 3)")

    def tilt_range(self) -> tuple[float, float]:
        """``(min, max)`` tilt angle in degrees (a list from a config file taken too)."""
        return float_pair(self.tilt_range_deg)

    def angles_deg(self) -> np.ndarray:
        """Tilt angles of the back-projection path."""
        if self.wedge:
            return tilt_angles(self.tilt_range(), self.tilt_step_deg)
        return tilt_angles((-90.0, 90.0 - self.tilt_step_deg), self.tilt_step_deg)


class Imager:
    """Apply :class:`ImagingParams` to volumes of one shape; precomputes grids and matrices.

    Parameters
    ----------
    shape_zyx
        Volume shape.
    voxel_size_A
        Voxel size (Å).
    params
        Imaging settings.
    """

    def __init__(
        self, shape_zyx: tuple[int, int, int], voxel_size_A: float, params: ImagingParams
    ) -> None:
        params.check()
        nz, ny, nx = shape_zyx
        self.shape = (int(nz), int(ny), int(nx))
        self.voxel_size_A = float(voxel_size_A)
        self.params = params
        if params.path == "fourier":
            self._k = frequency_magnitude(self.shape, self.voxel_size_A).astype(np.float32)
            self._mask = wedge_mask(self.shape, params.tilt_range()) if params.wedge else None
            self.projector = None
        else:
            z, y, x = self.shape
            self.projector = TiltSeriesProjector((z, x), params.angles_deg())
            self._k = frequency_magnitude((y, self.projector.width), self.voxel_size_A).astype(
                np.float32
            )
            self._mask = None

    def _ctf(self, defocus_um: np.ndarray, ndim_extra: int) -> np.ndarray:
        p = self.params
        dz = np.asarray(defocus_um, dtype=np.float64).reshape((-1,) + (1,) * ndim_extra)
        return ctf(
            self._k,
            dz,
            voltage_kV=p.voltage_kV,
            cs_mm=p.cs_mm,
            amplitude_contrast=p.amplitude_contrast,
            phase_flip=p.phase_flip,
        )

    def signal(self, volumes: np.ndarray, defocus_um: np.ndarray) -> np.ndarray:
        """Noise-free imaged volumes.

        Parameters
        ----------
        volumes
            ``(n, Z, Y, X)`` densities.
        defocus_um
            ``(n,)`` defocus per volume (ignored when the CTF is off).

        Returns
        -------
        np.ndarray
            ``(n, Z, Y, X)`` float32.
        """
        vol = np.asarray(volumes, dtype=np.float32)
        if vol.shape[1:] != self.shape:
            raise ValueError(
                f"volumes of shape {vol.shape[1:]} given to an imager for {self.shape}"
            )
        p = self.params
        if self.projector is None:
            if not p.ctf and self._mask is None:
                return vol.copy()
            f = scipy.fft.rfftn(vol, axes=(1, 2, 3))
            filt = self._ctf(defocus_um, 3) if p.ctf else np.ones((1, 1, 1, 1), np.float32)
            if self._mask is not None:
                filt = filt * self._mask
            f *= filt
            return scipy.fft.irfftn(f, s=self.shape, axes=(1, 2, 3)).astype(np.float32)
        proj = self.projector.project(vol)  # (n, T, Y, W)
        if p.ctf:
            w = self.projector.width
            f = scipy.fft.rfft2(proj, axes=(2, 3))
            f *= self._ctf(defocus_um, 3)  # (n, 1, Y, Wf) broadcast over tilts
            proj = scipy.fft.irfft2(f, s=(self.shape[1], w), axes=(2, 3)).astype(np.float32)
        return self.projector.reconstruct(proj)

    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one raw noise draw: the volume (Fourier path) or the tilt series."""
        if self.projector is None:
            return self.shape
        return (self.projector.n_tilts, self.shape[1], self.projector.width)

    def noise(self, raw: np.ndarray) -> np.ndarray:
        """Turn raw white noise ``(n, *noise_shape())`` into noise in the volume.

        Fourier path: the raw noise itself. Back-projection path: the weighted
        back-projection of per-tilt noise images (linear, so adding it to :meth:`signal`
        equals reconstructing noisy tilt images).
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.shape[1:] != self.noise_shape():
            raise ValueError(f"raw noise of shape {raw.shape[1:]}; expected {self.noise_shape()}")
        if self.projector is None:
            return raw
        return self.projector.reconstruct(raw)
