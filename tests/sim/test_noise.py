"""SNR: the noise is the only thing that changes with the SNR, and it has the requested level."""

from __future__ import annotations

import numpy as np
import pytest

from cryoal.sim.imaging import ImagingParams
from cryoal.sim.noise import measured_snr, scale_noise_to_snr
from cryoal.sim.subtomograms import Simulator, SubtomogramParams
from cryoal.sim.templates import phantom_templates


@pytest.mark.parametrize("path", ["fourier", "backprojection"])
def test_difference_of_two_snrs_isolates_the_noise_at_the_requested_snr(path: str) -> None:
    templates = phantom_templates(5)
    s1, s2 = 0.05, 0.5
    idx = np.arange(10)

    def make(snr: float | None):
        params = SubtomogramParams(snr=snr, normalise=False, imaging=ImagingParams(path=path))
        return Simulator(templates, params, seed=11).generate(idx)

    x1, x2, clean = make(s1), make(s2), make(None)
    # x = S + n(snr) with n(snr) = z * std(S) / sqrt(snr) for one z per sample, so
    # x1 - x2 = n1 (1 - sqrt(s1 / s2)) gives the noise at s1 exactly.
    noise1 = (x1.data.astype(np.float64) - x2.data) / (1.0 - np.sqrt(s1 / s2))
    signal = x1.data - noise1
    np.testing.assert_allclose(signal, clean.data, atol=1e-4 * np.abs(clean.data).max())
    snr = measured_snr(signal, noise1)
    np.testing.assert_allclose(snr, s1, rtol=0.10)
    # Same particles, orientations and CTFs at both SNRs.
    for name in ("quaternion_xyzw", "shift_zyx", "defocus_um"):
        np.testing.assert_array_equal(x1.meta[name], x2.meta[name])
    np.testing.assert_array_equal(x1.labels, x2.labels)


def test_scale_noise_to_snr_rejects_nonpositive_and_allows_noise_free() -> None:
    sig = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="SNR"):
        scale_noise_to_snr(sig, sig, 0.0)
    assert not scale_noise_to_snr(sig, sig, None).any()
    assert not scale_noise_to_snr(sig, sig, float("inf")).any()
