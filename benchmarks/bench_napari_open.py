"""Opening a large tomogram in napari and switching to 3D: seconds and peak memory.

Run with ``xvfb-run -a python benchmarks/run.py napari_open [--shape=200,1024,1024]``
(needs the ``[napari]`` extra and a display; ``xvfb-run`` provides one).

A float32 tomogram (default 200 × 1024 × 1024 = 800 MiB) is written memory-mapped with
mrcfile to a temporary folder. Each variant then runs in a fresh Python process that
starts a napari viewer (shown, on the Xvfb display), resets the process's peak-RSS
counter (``/proc/self/clear_refs``), and measures

* ``open``: from ``viewer.open`` / ``add_image`` until the first 2-D frame is drawn (for
  ``cryoal``, after a tiny MRC was opened and closed once, so that napari's one-time
  discovery and import of the plugin is timed apart, as ``plugin first use``);
* ``3d``: from setting ``viewer.dims.ndisplay = 3`` until the 3-D frame is drawn;
* the peak RSS during both (``VmHWM``) above the RSS the idle viewer had.

Variants: ``cryoal`` (``viewer.open(path, plugin="cryoal")``: sampled contrast, lazy
binned levels) and ``plain`` (napari's own path for a memory map:
``viewer.add_image(mrcfile.mmap(path).data, scale=...)``, the baseline). The file is in
the page cache for both (it was just written), so the figures are not disk-bound.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import write_noise_tomogram

HERE = Path(__file__).resolve().parent
VOXEL_SIZE_A = 10.0

_CHILD = r"""
import json, sys, time
from pathlib import Path

def status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1

import napari
from qtpy.QtWidgets import QApplication

variant, path = sys.argv[1], sys.argv[2]
viewer = napari.Viewer(show=True)
canvas = viewer.window._qt_viewer.canvas

def draw():
    QApplication.processEvents()
    canvas.native.repaint()  # render now, not at the next event-loop turn
    QApplication.processEvents()

draw()
t_warm = 0.0
if variant == "cryoal":
    # napari discovers and imports a plugin on its first use; time that apart
    tw = time.perf_counter()
    viewer.layers.remove(viewer.open(sys.argv[3], plugin="cryoal")[0])
    draw()
    t_warm = time.perf_counter() - tw
rss_idle = status_kb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
t0 = time.perf_counter()
if variant == "cryoal":
    [layer] = viewer.open(path, plugin="cryoal")
else:
    import mrcfile
    data = mrcfile.mmap(path, mode="r").data
    layer = viewer.add_image(data, scale=(10.0, 10.0, 10.0), name="plain")
draw()
t_open = time.perf_counter() - t0
t1 = time.perf_counter()
viewer.dims.ndisplay = 3
draw()
t_3d = time.perf_counter() - t1
level = layer.data_level if layer.multiscale else 0
shape = [int(s) for s in layer.level_shapes[level]]
print(json.dumps({
    "open_s": t_open, "3d_s": t_3d, "plugin_first_use_s": t_warm, "rss_idle_kb": rss_idle,
    "hwm_kb": status_kb("VmHWM"), "rss_end_kb": status_kb("VmRSS"),
    "multiscale": bool(layer.multiscale), "shape_3d": shape,
}))
viewer.close()
"""


def _opts(argv: list[str]) -> dict[str, str]:
    opts = {"shape": "200,1024,1024", "variants": "cryoal,plain", "keep": ""}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in opts:
            raise SystemExit(f"bench_napari_open: unknown option --{key}; known: {sorted(opts)}")
        opts[key] = value
    return opts


def run_variant(variant: str, path: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, variant, str(path), str(path.with_name("tiny.mrc"))],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str]) -> str:
    opts = _opts(argv)
    shape = tuple(int(s) for s in opts["shape"].split(","))
    if "DISPLAY" not in os.environ:
        raise SystemExit("bench_napari_open needs a display: run it under 'xvfb-run -a'")
    work = Path(tempfile.mkdtemp(prefix="cryoal_bench_napari_"))
    try:
        path = work / "big.mrc"
        t0 = time.perf_counter()
        size = write_noise_tomogram(path, shape, voxel_size_A=VOXEL_SIZE_A)  # type: ignore[arg-type]
        t_write = time.perf_counter() - t0
        write_noise_tomogram(work / "tiny.mrc", (8, 16, 16), voxel_size_A=VOXEL_SIZE_A)
        results = {v: run_variant(v, path) for v in opts["variants"].split(",") if v}
    finally:
        if not opts["keep"]:
            shutil.rmtree(work, ignore_errors=True)
    mib = size / 2**20
    rows = [
        "| variant | open, 2-D frame (s) | switch to 3-D (s) | 3-D level shape | "
        "peak RSS above idle viewer (MiB) | as share of the file | peak RSS, whole process (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        extra = (r["hwm_kb"] - r["rss_idle_kb"]) / 1024
        rows.append(
            f"| {name} | {r['open_s']:.2f} | {r['3d_s']:.2f} | {tuple(r['shape_3d'])} | "
            f"{extra:.0f} | {extra / mib:.1%} | {r['hwm_kb'] / 1024:.0f} |"
        )
    lines = [
        f"Tomogram {shape[0]} × {shape[1]} × {shape[2]} float32, {mib:.0f} MiB, written "
        f"memory-mapped in {t_write:.1f} s (in the page cache when opened). Each variant in a "
        "fresh process with a shown napari viewer on Xvfb (software OpenGL).",
        "",
        *rows,
        "",
    ]
    if {"cryoal", "plain"} <= results.keys():
        c, p = results["cryoal"], results["plain"]
        lines.append(
            f"cryoal / plain: open + 3-D time {(c['open_s'] + c['3d_s']) / (p['open_s'] + p['3d_s']):.2f}×, "
            f"peak RSS above idle {(c['hwm_kb'] - c['rss_idle_kb']) / max(1, p['hwm_kb'] - p['rss_idle_kb']):.2f}×."
        )
    if "cryoal" in results:
        lines.append(
            f"napari's first use of the cryoal plugin (discovery, import, a tiny file opened "
            f"and closed) took {results['cryoal']['plugin_first_use_s']:.2f} s before the "
            "timed open."
        )
    idle = next(iter(results.values()))["rss_idle_kb"] / 1024
    lines.append(
        f"The idle viewer (napari, Qt, cryoal's reader imported) holds {idle:.0f} MiB before "
        "anything is opened; the share of the file counts what opening the tomogram adds. "
        "Target (issue 9): peak RSS under 25 % of the file. `plain` hands napari the whole "
        "memory map, which it reads (and keeps mapped) to draw the 3-D volume; `cryoal` "
        "draws its coarsest binned level, computed plane by plane with finished planes "
        "unmapped."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
