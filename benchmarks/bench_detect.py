"""Candidate detector (difference of Gaussians + NMS): recall of true particles, speed, memory.

On simulated tomograms (``cryoal.sim.simulate_tomogram``: phantoms of 4 classes, CTF,
±60° missing wedge, noise at a given SNR), report the fraction of true particles that
have a candidate within one particle radius (the box then contains the particle) and
within half a radius, at N candidates = 0.5, 1, 2 and 4 times the number of particles,
next to N uniformly random positions (the baseline, same N, same tolerance). The radius
given to the detector is the median equivalent-sphere radius of the particles (what a
user would pass with ``--radius-A``).

Speed is reported against the ceiling of one ``scipy.ndimage.gaussian_filter`` pass over
the same volume (the detector needs two of them plus a maximum filter), and memory as the
peak of traced allocations against the tomogram's size, for a whole-volume budget and a
small block budget (results must be identical).

Usage: ``python benchmarks/run.py detect`` (add ``--quick`` for a smaller tomogram).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
from scipy import ndimage

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "detect"


def _radius(labels: np.ndarray, truth: pd.DataFrame) -> float:
    radii = []
    for c in sorted(truth["class_index"].unique()):
        n = int((truth["class_index"] == c).sum())
        volume = float((labels == c + 1).sum()) / n
        radii.append((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))
    return float(np.median(radii))


def _random_recall(shape, true, n, tol, seeds=5) -> float:
    from cryoal.project.detect import recall

    values = []
    for s in range(seeds):
        pts = np.random.default_rng(s).uniform(0, 1, (n, 3)) * (np.array(shape) - 1)
        values.append(recall(pts, true, tol))
    return float(np.mean(values))


def main(argv: list[str]) -> str:
    from cryoal.project.detect import detect_blobs, recall
    from cryoal.sim.tomograms import simulate_tomogram

    quick = "--quick" in argv
    shape = (64, 128, 128) if quick else (128, 512, 512)
    n_particles = 40 if quick else 400
    snrs = (0.1, 0.01) if quick else (0.1, 0.03, 0.01)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    timing = ""
    for snr in snrs:
        sim = simulate_tomogram(
            WORK / f"snr{snr}", shape_zyx=shape, n_particles=n_particles, n_classes=4,
            snr=snr, seed=0, overwrite=True,
        )  # fmt: skip
        truth = pd.read_csv(sim.ground_truth)
        true = truth[["z", "y", "x"]].to_numpy()
        labels = mrcfile.read(sim.labels)
        r = _radius(labels, truth)
        with mrcfile.mmap(sim.tomogram, mode="r") as mrc:
            vol = mrc.data
            n_max = 4 * n_particles
            bright = detect_blobs(vol, r, n_max, polarity="bright")
            dark = detect_blobs(vol, r, n_max, polarity="dark")
            for mult in (0.5, 1, 2, 4):
                n = int(mult * n_particles)
                base = _random_recall(shape, true, n, r)
                rec = recall(bright.positions_zyx[:n], true, r)
                rows.append(
                    {
                        "SNR": snr,
                        "N / particles": mult,
                        "recall (≤ r)": rec,
                        "recall (≤ r/2)": recall(bright.positions_zyx[:n], true, r / 2),
                        "wrong polarity (≤ r)": recall(dark.positions_zyx[:n], true, r),
                        "random (≤ r)": base,
                        "recall / random": rec / base if base > 0 else float("inf"),
                    }
                )
            if snr == snrs[0]:
                timing = _timing(vol, r, n_max, small=(4 if quick else 32) * 2**20)
    table = pd.DataFrame(rows)
    body = [
        f"Simulated tomogram {shape[0]}×{shape[1]}×{shape[2]} voxels at 10 Å, {n_particles} "
        f"particles of 4 phantom classes (CTF, ±60° wedge), particle radius r = {r:.1f} voxels "
        "(median equivalent sphere), detector run with `--polarity bright` (simulated density "
        "is bright) and, to show the sign matters, dark.",
        "",
        _markdown(table),
        "",
        timing,
    ]
    return "\n".join(body)


def _markdown(table: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


def _timing(vol: np.ndarray, r: float, n: int, small: int) -> str:
    from cryoal.project.detect import detect_blobs

    data = np.asarray(vol, dtype=np.float32)
    t0 = time.perf_counter()
    ndimage.gaussian_filter(data, r / np.sqrt(3.0))
    t_gauss = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole = detect_blobs(vol, r, n, polarity="bright", max_memory_bytes=2**34)
    t_det = time.perf_counter() - t0
    lines = [
        "| memory budget | time (s) | time / one Gaussian pass | peak traced memory / tomogram size | same result |",
        "|---|---|---|---|---|",
    ]
    for label, budget in (("whole volume", 2**34), (f"{small // 2**20} MiB", small)):
        tracemalloc.start()
        t0 = time.perf_counter()
        det = detect_blobs(vol, r, n, polarity="bright", max_memory_bytes=budget)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        same = np.array_equal(det.positions_zyx, whole.positions_zyx)
        lines.append(
            f"| {label} | {dt:.2f} | {dt / t_gauss:.2f} | {peak / vol.nbytes:.2f} | {same} |"
        )
    return (
        f"Speed and memory ({vol.nbytes / 2**20:.0f} MiB tomogram; one Gaussian pass took "
        f"{t_gauss:.2f} s, the detector {t_det:.2f} s):\n\n" + "\n".join(lines)
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
