"""Pretraining wall time and memory against the pool's size: 2,000 and 10,000 candidates.

For each pool size a phantom store (10 classes, 32^3 at 10 Å, SNR 0.1, ±60° wedge, CTF)
is simulated once, then ``cryoal pretrain STORE --out ENC --epochs E`` runs in its own
process with ``--threads`` torch threads, as a user runs it. Per size: seconds per epoch
(from the encoder's per-epoch record), samples/s, the process's peak RSS against the
store's size on disk, and the projected wall time of the default epochs
(``PretrainConfig.epochs`` × the measured seconds per epoch: an epoch is a fixed number
of steps over the pool, so wall time is linear in epochs). The ratio of seconds per epoch between the two sizes, measured
in one run, says whether cost is linear in the pool (5.0 for 10,000 against 2,000).

Everything lands in ``--out`` (stores, encoders); a finished size is reused.

Usage: ``python benchmarks/run.py pretrain_pool [--out=DIR] [--sizes=2000,10000]
[--epochs=2] [--threads=2]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "pretrain_pool"


def _opts(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))


def _cryoal(args: list[str], threads: int) -> tuple[float, int]:
    """Run ``cryoal ARGS`` in a child; its wall seconds and peak RSS in bytes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cryoal", *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"cryoal {' '.join(args)} exited {code}")
    return wall, int(usage.ru_maxrss) * 1024  # ru_maxrss is in KiB on Linux


def _store(out: Path, size: int, threads: int) -> Path:
    path = out / f"pool_{size}.h5"
    if not path.exists():
        _cryoal(["simulate", "subtomograms", str(path), "--classes", "10",
                 "--per-class", str(size // 10), "--snr", "0.1", "--seed", "1",
                 "--workers", str(threads)], threads)  # fmt: skip
    return path


def measure(out: Path, size: int, epochs: int, threads: int) -> dict[str, float]:
    """Pretrain ``epochs`` epochs on a pool of ``size``; its figures."""
    store = _store(out, size, threads)
    enc = out / f"encoder_{size}_e{epochs}"
    record = out / f"measured_{size}_e{epochs}.json"
    if record.exists():
        return dict(json.loads(record.read_text()))
    wall, rss = _cryoal(["pretrain", str(store), "--out", str(enc), "--epochs", str(epochs),
                         "--no-progress"], threads)  # fmt: skip
    info = json.loads((enc / "encoder.json").read_text())
    hist = info["history"]
    per_epoch = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(hist, hist[1:], strict=False)]
    epoch_s = (sum(per_epoch) / len(per_epoch)) if per_epoch else hist[0]["elapsed_s"]
    figures = {
        "size": size,
        "epochs": epochs,
        "epoch_s": epoch_s,
        "samples_per_s": info["n_samples"] / epoch_s,
        "wall_s": wall,
        "peak_rss_bytes": rss,
        "store_bytes": store.stat().st_size,
    }
    record.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main(argv: list[str]) -> str:
    from cryoal.pretrain import PretrainConfig

    default_epochs = PretrainConfig.model_fields["epochs"].default
    load = os.getloadavg()[0]
    o = _opts(argv)
    out = Path(o.get("out", WORK))
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in o.get("sizes", "2000,10000").split(",")]
    epochs = int(o.get("epochs", 2))
    threads = int(o.get("threads", 2))
    rows = [measure(out, n, epochs, threads) for n in sizes]
    gib = 1024**3
    lines = [
        f"Phantom pools (10 classes, 32³ at 10 Å, SNR 0.1), the `teacher` encoder, NT-Xent, "
        f"batch 64 (two views each), {epochs} epochs per size (seconds per epoch: the mean "
        f"over {'the epochs after the first, which warms up' if epochs > 1 else 'the one epoch'}"
        f"), {threads} torch threads, `cryoal pretrain` in its own process.",
        "",
        f"| pool | s per epoch | samples/s | projected {default_epochs} epochs (the default) "
        "| peak RSS | store on disk |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['epoch_s']:.1f} | {r['samples_per_s']:.0f} "
            f"| {default_epochs * r['epoch_s'] / 60:.1f} min | {r['peak_rss_bytes'] / gib:.2f} GiB "
            f"| {r['store_bytes'] / gib:.2f} GiB |"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        lines += [
            "",
            f"Seconds per epoch, {b['size']:,} against {a['size']:,}: "
            f"{b['epoch_s'] / a['epoch_s']:.2f}× (linear: {b['size'] / a['size']:.1f}×); "
            f"peak RSS {b['peak_rss_bytes'] / a['peak_rss_bytes']:.2f}× for "
            f"{b['store_bytes'] / a['store_bytes']:.1f}× the data.",
        ]
    lines += [
        "",
        f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (other jobs "
        "share the machine when it is above 0.5; the times are then upper bounds).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
