"""CTF physics: wavelength, zero crossings where the closed-form solution puts them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cryoal.sim.ctf import ctf, ctf_zeros, electron_wavelength_A, frequency_magnitude
from cryoal.sim.imaging import ImagingParams
from cryoal.sim.subtomograms import Simulator, SubtomogramParams
from cryoal.sim.templates import make_template


@pytest.mark.parametrize(("kv", "expected_A"), [(300, 0.019687), (200, 0.025079), (100, 0.037014)])
def test_relativistic_wavelength_matches_reference_values(kv: float, expected_A: float) -> None:
    # Reference values from electron-optics tables (e.g. Williams & Carter): 1.97 pm at 300 kV.
    assert electron_wavelength_A(kv) == pytest.approx(expected_A, abs=2e-6)


def test_ctf_is_amplitude_contrast_at_zero_frequency_and_flips_to_nonnegative() -> None:
    k = np.linspace(0, 0.1, 500)
    assert ctf(np.array([0.0]), 3.0)[0] == pytest.approx(0.07, abs=1e-6)
    flipped = ctf(k, 3.0, phase_flip=True)
    assert (flipped >= 0).all()
    np.testing.assert_allclose(flipped, np.abs(ctf(k, 3.0)))


def test_imaged_particle_spectrum_changes_sign_at_the_closed_form_ctf_zeros() -> None:
    """The transfer seen in simulated data (FFT(signal) / FFT(density)) is the CTF: it
    crosses zero at the roots of gamma(k) + arcsin(A) = m pi and nowhere in between."""
    voxel, box, defocus = 4.0, 48, 3.0
    params = SubtomogramParams(
        box=box,
        voxel_size_A=voxel,
        snr=None,
        normalise=False,
        max_shift_voxels=0.0,
        imaging=ImagingParams(wedge=False, defocus_range_um=(defocus, defocus)),
    )
    # A speckled template (random density in a ball) has power at every frequency.
    rng = np.random.default_rng(0)
    zz, yy, xx = np.indices((21, 21, 21)) - 10
    speckle = rng.random((21, 21, 21)) * ((zz**2 + yy**2 + xx**2) <= 81)
    sim = Simulator([make_template("speckle", speckle, voxel)], params, seed=1)
    batch = sim.generate([0, 1], stages=True)
    f_in = scipy.fft.rfftn(batch.particles.astype(np.float64), axes=(1, 2, 3))
    f_out = scipy.fft.rfftn(batch.signal.astype(np.float64), axes=(1, 2, 3))
    k = np.broadcast_to(frequency_magnitude((box,) * 3, voxel), f_in.shape[1:])
    strong = np.abs(f_in) > 1e-4 * np.abs(f_in).max()
    ratio = np.real(f_out[strong] / f_in[strong])
    kk = np.broadcast_to(k, f_in.shape)[strong]
    zeros = ctf_zeros(defocus, 4)
    # Hand check of the first zero: Cs is negligible there, so k1^2 ~ (1 - asin(A)/pi) / (lambda dz).
    assert zeros[0] == pytest.approx(
        np.sqrt((1 - np.arcsin(0.07) / np.pi) / (0.019687 * 3e4)), rel=2e-3
    )
    assert zeros[-1] < 0.5 / voxel
    bounds = np.concatenate([[0.004], zeros, [zeros[-1] + 0.006]])
    for m in range(len(bounds) - 1):
        a, b = bounds[m], bounds[m + 1]
        inner = (kk > a + 0.0015) & (kk < b - 0.0015)
        assert inner.sum() > 20
        signs = np.sign(ratio[inner])
        # Between consecutive zeros the transfer keeps one sign, alternating from + at low k.
        expected = 1.0 if m % 2 == 0 else -1.0
        assert (signs == expected).mean() > 0.99, (m, a, b)
    near = np.abs(kk[:, None] - zeros[None, :]).min(axis=1) < 0.0004
    assert np.abs(ratio[near]).max() < 0.15
