"""Noise at a target signal-to-noise ratio.

SNR is defined as in the cryo-ET simulation literature (e.g. the aitom / SHREC simulators):
the variance of the noise-free signal over the variance of the noise, both taken over all
voxels of the box. The noise is scaled per sample so that this ratio is exactly the
requested value for the noise realisation drawn (not only in expectation).
"""

from __future__ import annotations

import numpy as np


def check_snr(snr: float | None) -> None:
    """Raise ``ValueError`` unless ``snr`` is None (no noise), inf (no noise) or > 0."""
    if snr is None:
        return
    if not (snr > 0):
        raise ValueError(f"SNR {snr} must be > 0 (e.g. 0.05), or omitted / inf for noise-free data")


def scale_noise_to_snr(signal: np.ndarray, noise: np.ndarray, snr: float | None) -> np.ndarray:
    """Scale ``noise`` so that ``var(signal) / var(noise) == snr`` per sample.

    Parameters
    ----------
    signal
        ``(n, ...)`` noise-free signal.
    noise
        ``(n, ...)`` noise realisation of the same shape (any scale; it is centred and
        rescaled per sample).
    snr
        Target SNR; ``None`` or ``inf`` returns zeros (noise-free).

    Returns
    -------
    np.ndarray
        ``(n, ...)`` float32 noise to add to ``signal``.
    """
    check_snr(snr)
    if signal.shape != noise.shape:
        raise ValueError(f"signal {signal.shape} and noise {noise.shape} shapes differ")
    if snr is None or np.isinf(snr):
        return np.zeros_like(signal, dtype=np.float32)
    axes = tuple(range(1, signal.ndim))
    sig_std = signal.std(axis=axes, dtype=np.float64, keepdims=True)
    noise_mean = noise.mean(axis=axes, dtype=np.float64, keepdims=True)
    noise_std = noise.std(axis=axes, dtype=np.float64, keepdims=True)
    noise_std = np.where(noise_std > 0, noise_std, 1.0)
    scale = (sig_std / (noise_std * np.sqrt(snr))).astype(np.float32)
    return ((noise - noise_mean.astype(np.float32)) * scale).astype(np.float32, copy=False)


def measured_snr(signal: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``var(signal) / var(noise)`` per sample over all voxels: ``(n, ...)`` -> ``(n,)``."""
    axes = tuple(range(1, signal.ndim))
    return signal.var(axis=axes, dtype=np.float64) / noise.var(axis=axes, dtype=np.float64)
