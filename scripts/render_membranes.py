"""Render docs/images/sim_membranes.png: a simulated tomogram with membranes and its labels.

Usage (repository root): ``.venv/bin/python scripts/render_membranes.py [TEMPLATES_DIR]``
(default: the SHREC maps in ../shared/structures/maps_10A).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mrcfile  # noqa: E402
import numpy as np  # noqa: E402

from cryoal.sim.membranes import MembraneParams  # noqa: E402
from cryoal.sim.tomograms import simulate_tomogram  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    templates = sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/structures/maps_10A"
    with tempfile.TemporaryDirectory() as tmp:
        res = simulate_tomogram(
            Path(tmp) / "t",
            shape_zyx=(64, 192, 192),
            n_particles=40,
            templates=templates,
            snr=0.1,
            seed=1,
            membranes=MembraneParams(vesicles=2, sheets=1),
        )
        volume = mrcfile.read(res.tomogram)
        labels = mrcfile.read(res.labels)
        names = json.loads(res.settings.read_text())["label_names"]
    z, y = volume.shape[0] // 2, volume.shape[1] // 2
    fig, ax = plt.subplots(2, 2, figsize=(10, 7), height_ratios=[3, 1.2])
    cmap = plt.get_cmap("tab20", len(names) + 1)
    for row, (img, lab, title) in enumerate(
        [(volume[z], labels[z], f"XY, z = {z}"), (volume[:, y], labels[:, y], f"XZ, y = {y}")]
    ):
        ax[row, 0].imshow(img, cmap="gray")
        ax[row, 0].set_title(f"tomogram, SNR 0.1, {title}")
        ax[row, 1].imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=len(names),
                          interpolation="nearest")  # fmt: skip
        ax[row, 1].set_title(f"labels.mrc ({len(names)} = membrane), {title}")
        for a in ax[row]:
            a.set_xticks([])
            a.set_yticks([])
    fig.tight_layout()
    out = ROOT / "docs/images/sim_membranes.png"
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
