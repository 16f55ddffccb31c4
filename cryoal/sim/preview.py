"""A montage PNG of simulated samples: one column per class, clean beside noisy.

Rows, top to bottom: the rotated template (central XY slice, before imaging); the
noise-free signal after CTF and missing wedge (XY); the noisy sample (XY); then the same
noise-free and noisy samples as central XZ slices, where the missing wedge shows as
elongation along z. Each panel is scaled to its own 1-99 % intensity range.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoal.io.atomic import atomic_path

if TYPE_CHECKING:
    from cryoal.sim.subtomograms import Simulator


def _panel(ax: object, img: np.ndarray) -> None:
    lo, hi = np.percentile(img, [1, 99])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")  # type: ignore[attr-defined]
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]


def write_preview(
    png: str | os.PathLike, simulator: Simulator, indices: np.ndarray | None = None
) -> Path:
    """Render one sample per index (default: the first of each class) to ``png``.

    Parameters
    ----------
    png
        Output file (written atomically; replaced if present).
    simulator
        The dataset's simulator; the samples shown are exactly the stored ones.
    indices
        Sample indices to show, one column each (default ``0 .. n_classes - 1``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.arange(simulator.n_classes) if indices is None else np.asarray(indices, dtype=np.int64)
    batch = simulator.generate(idx, stages=True)
    assert batch.particles is not None and batch.signal is not None
    p = simulator.params
    c = p.box // 2
    snr = "inf" if p.snr is None else f"{p.snr:g}"
    rows = [
        ("template (XY)", batch.particles[:, c]),
        ("CTF + wedge (XY)", batch.signal[:, c]),
        (f"noisy, SNR {snr} (XY)", batch.data[:, c]),
        ("CTF + wedge (XZ)", batch.signal[:, :, c]),
        (f"noisy, SNR {snr} (XZ)", batch.data[:, :, c]),
    ]
    n = idx.size
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.25 * n + 1.4, 1.3 * len(rows) + 0.7), squeeze=False
    )
    for r, (label, imgs) in enumerate(rows):
        for j in range(n):
            _panel(axes[r, j], imgs[j])
        axes[r, 0].set_ylabel(label, fontsize=8)
    for j in range(n):
        axes[0, j].set_title(simulator.class_names[int(batch.labels[j])], fontsize=9)
    im = p.imaging
    parts = [f"{p.box}³ voxels at {p.voxel_size_A:g} Å"]
    if im.ctf:
        parts.append(
            f"CTF defocus {im.defocus_range_um[0]:g}-{im.defocus_range_um[1]:g} µm, {im.voltage_kV:g} kV"
        )
    if im.wedge:
        parts.append(f"tilt {im.tilt_range_deg[0]:g}..{im.tilt_range_deg[1]:g}° about y")
    parts.append(f"{im.path} path, SNR {snr}")
    fig.suptitle("; ".join(parts), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    png = Path(png)
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return png
