"""Contrast transfer function (CTF) of a transmission electron microscope.

Formulas (all lengths in Å, spatial frequency ``k`` in 1/Å):

Relativistic electron wavelength for an accelerating voltage ``V`` (volts)::

    lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))       # 0.019687 Å at 300 kV

Phase aberration for a defocus ``dz`` (> 0 = underfocus, the usual cryo-ET setting) and
spherical aberration ``Cs``::

    gamma(k) = pi lambda dz k^2 - (pi / 2) Cs lambda^3 k^4

CTF with amplitude contrast fraction ``A`` (0.07 by default)::

    CTF(k) = sqrt(1 - A^2) sin(gamma) + A cos(gamma) = sin(gamma + arcsin A)

This is the transfer of the density with *protein bright* (positive at low frequency), the
sign a reconstruction has after the contrast inversion most pipelines apply; the image
itself has the opposite sign. Phase flipping (``phase_flip=True``) replaces the CTF by its
absolute value, as a CTF-corrected reconstruction would have it. Zeros lie where
``gamma(k) + arcsin A = m pi`` (m = 1, 2, ...), see :func:`ctf_zeros`.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

# CODATA 2018 exact / recommended values (SI units).
_H = 6.62607015e-34  # Planck constant, J s
_M0 = 9.1093837015e-31  # electron rest mass, kg
_E = 1.602176634e-19  # elementary charge, C
_C = 299792458.0  # speed of light, m/s


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    if not np.isfinite(voltage_kV) or voltage_kV <= 0:
        raise ValueError(f"voltage {voltage_kV} kV must be a positive number (e.g. 300)")
    v = voltage_kV * 1e3
    lam_m = _H / np.sqrt(2.0 * _M0 * _E * v * (1.0 + _E * v / (2.0 * _M0 * _C**2)))
    return float(lam_m * 1e10)


def ctf(
    k_A: np.ndarray,
    defocus_um: float | np.ndarray,
    *,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_flip: bool = False,
) -> np.ndarray:
    """Evaluate the CTF at spatial frequencies ``k_A`` (1/Å).

    Parameters
    ----------
    k_A
        Spatial frequency magnitudes in 1/Å, any shape ``S``.
    defocus_um
        Defocus in µm (> 0 = underfocus), a scalar or an array broadcastable against
        ``k_A`` (e.g. ``(n, 1, 1, 1)`` for a batch of volumes).
    voltage_kV, cs_mm, amplitude_contrast
        Accelerating voltage (kV), spherical aberration (mm), amplitude contrast fraction.
    phase_flip
        Return ``|CTF|`` (the transfer after phase-flip correction).

    Returns
    -------
    np.ndarray
        float32 CTF values, shape ``broadcast(S, defocus)``.
    """
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ValueError(f"amplitude contrast {amplitude_contrast} must be in [0, 1) (e.g. 0.07)")
    if cs_mm < 0:
        raise ValueError(f"spherical aberration Cs {cs_mm} mm must be >= 0 (e.g. 2.7)")
    lam = electron_wavelength_A(voltage_kV)
    k2 = np.asarray(k_A, dtype=np.float32) ** 2
    dz = np.asarray(defocus_um, dtype=np.float32) * np.float32(1e4)  # µm -> Å
    cs = cs_mm * 1e7  # mm -> Å
    # float32 is ample: gamma stays below ~1e3 rad for any sane setting (rel. error 1e-7).
    gamma = np.float32(np.pi * lam) * dz * k2 - np.float32(0.5 * np.pi * cs * lam**3) * (k2 * k2)
    out = np.sin(gamma + np.float32(np.arcsin(amplitude_contrast)))
    if phase_flip:
        out = np.abs(out)
    return out.astype(np.float32)


def ctf_zeros(
    defocus_um: float,
    n_zeros: int,
    *,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """Spatial frequencies (1/Å) of the first ``n_zeros`` CTF zeros, solved in closed form.

    ``gamma(k) + arcsin A = m pi`` is a quadratic in ``u = k^2``::

        (pi/2) Cs lambda^3 u^2 - pi lambda dz u + (m pi - arcsin A) = 0

    and the smaller positive root is the m-th zero on the rising branch of ``gamma``.
    Zeros beyond the turning point of ``gamma`` (very high frequency) are not returned.
    """
    lam = electron_wavelength_A(voltage_kV)
    dz = defocus_um * 1e4
    cs = cs_mm * 1e7
    phi = np.arcsin(amplitude_contrast)
    zeros = []
    for m in range(1, n_zeros + 1):
        c = m * np.pi - phi
        if cs == 0:
            u = c / (np.pi * lam * dz)
        else:
            a = 0.5 * np.pi * cs * lam**3
            b = -np.pi * lam * dz
            disc = b * b - 4 * a * c
            if disc < 0:
                break
            u = (-b - np.sqrt(disc)) / (2 * a)
        zeros.append(np.sqrt(u))
    return np.asarray(zeros)


def frequency_magnitude(
    shape: tuple[int, ...], voxel_size_A: float, *, rfft: bool = True
) -> np.ndarray:
    """``|k|`` in 1/Å on the (r)FFT grid of an array of ``shape`` (1-3 dims, zyx order).

    Returns an array of the (r)FFT output shape (last axis ``n // 2 + 1`` when ``rfft``).
    """
    axes = []
    for i, n in enumerate(shape):
        last = i == len(shape) - 1
        f = (
            scipy.fft.rfftfreq(n, d=voxel_size_A)
            if (rfft and last)
            else scipy.fft.fftfreq(n, d=voxel_size_A)
        )
        axes.append(f)
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    return np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))
