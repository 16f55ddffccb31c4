"""Missing wedge: no signal in the wedge (Fourier mask), and the tilt-series path agrees."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cryoal.sim.imaging import Imager, ImagingParams
from cryoal.sim.subtomograms import Simulator, SubtomogramParams
from cryoal.sim.templates import phantom_templates
from cryoal.sim.wedge import TiltSeriesProjector, tilt_angles, wedge_mask

BOX = 32


def _angle_deg(shape: tuple[int, int, int]) -> np.ndarray:
    """Independent of the library: angle of (kx, kz) from the kx axis, folded to [0, 90]."""
    kz = scipy.fft.fftfreq(shape[0])[:, None, None]
    kx = scipy.fft.rfftfreq(shape[2])[None, None, :]
    ang = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    return np.broadcast_to(ang, (shape[0], shape[1], shape[2] // 2 + 1))


def _volumes(n: int = 4) -> np.ndarray:
    params = SubtomogramParams(
        snr=None, normalise=False, imaging=ImagingParams(ctf=False, wedge=False)
    )
    return Simulator(phantom_templates(n), params, seed=3).generate(np.arange(n)).data


def test_tilt_angles_cover_the_range_inclusive() -> None:
    a = tilt_angles((-60, 60), 3.0)
    assert a.size == 41 and a[0] == -60 and a[-1] == 60
    with pytest.raises(ValueError, match="tilt range"):
        tilt_angles((30, -30), 3.0)


def test_fourier_path_leaves_the_missing_wedge_empty_before_noise() -> None:
    params = SubtomogramParams(snr=None, normalise=False, imaging=ImagingParams(ctf=False))
    batch = Simulator(phantom_templates(4), params, seed=3).generate(np.arange(8), stages=True)
    f_sig = np.abs(scipy.fft.rfftn(batch.signal.astype(np.float64), axes=(1, 2, 3)))
    f_par = np.abs(scipy.fft.rfftn(batch.particles.astype(np.float64), axes=(1, 2, 3)))
    ang = _angle_deg((BOX,) * 3)
    missing = ang > 60.0 + 1e-6  # |tilt| > 60°: beyond the tilt range
    measured = ang < 60.0 - 1e-6
    assert missing.mean() > 0.25  # a third of Fourier space, minus the k_y axis
    assert f_sig[:, missing].max() < 1e-5 * f_par.max()
    np.testing.assert_allclose(
        f_sig[:, measured], f_par[:, measured], rtol=1e-3, atol=1e-4 * f_par.max()
    )


def test_projector_reconstructs_a_volume_from_a_full_tilt_series() -> None:
    vol = _volumes(2)
    proj = TiltSeriesProjector((BOX, BOX), tilt_angles((-90, 89), 1.0))
    rec = proj.reconstruct(proj.project(vol))
    for a, b in zip(rec, vol, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
        # Linear interpolation on the detector damps the finest detail a little.
        assert (a * b).sum() / (b * b).sum() == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("tilt_range", [(-60.0, 60.0), (-30.0, 60.0)])
def test_backprojection_path_puts_signal_and_noise_only_where_the_mask_says(
    tilt_range: tuple[float, float],
) -> None:
    imaging = ImagingParams(ctf=False, path="backprojection", tilt_range_deg=tilt_range)
    imager = Imager((BOX,) * 3, 10.0, imaging)
    vol = _volumes(4)
    mask = wedge_mask((BOX,) * 3, tilt_range)
    mirrored = wedge_mask((BOX,) * 3, (-tilt_range[1], -tilt_range[0]))
    noise = imager.noise(
        np.random.default_rng(0).standard_normal((2, *imager.noise_shape()), dtype=np.float32)
    )
    for rec in (imager.signal(vol, np.zeros(4)), noise):
        power = np.abs(scipy.fft.rfftn(rec.astype(np.float64), axes=(1, 2, 3))) ** 2
        outside = (power * (1 - mask)).sum() / power.sum()
        assert outside < 0.08  # leakage from 3° tilt steps and detector interpolation
        if tilt_range[0] != -tilt_range[1]:
            # The sign convention of the tilt matters and agrees between the two paths.
            assert (power * (1 - mirrored)).sum() / power.sum() > 3 * outside
    # And it matches the Fourier-mask path on the measured region.
    fourier = Imager((BOX,) * 3, 10.0, ImagingParams(ctf=False, tilt_range_deg=tilt_range)).signal(
        vol, np.zeros(4)
    )
    bp = imager.signal(vol, np.zeros(4))
    for a, b in zip(bp, fourier, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
