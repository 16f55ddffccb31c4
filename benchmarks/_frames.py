"""What the napari benchmarks share: waiting for a drawn frame, and p50 / p95 / max."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def frame_waiter(viewer: Any) -> Callable[[], None]:
    """A function that returns once the canvas has drawn a frame of the viewer's current
    state: the event loop is run (Qt paints the canvas there when something changed; that
    frame counts), a frame is drawn now when it painted none, and ``glFinish`` waits until
    the GPU (here Mesa's software rasteriser) has finished it."""
    from qtpy.QtWidgets import QApplication

    canvas = viewer.window._qt_viewer.canvas
    scene = canvas._scene_canvas
    frames: list[float] = []
    scene.events.draw.connect(lambda _event: frames.append(time.perf_counter()), position="last")

    def shown() -> None:
        before = len(frames)
        QApplication.processEvents()
        if len(frames) == before:  # nothing was painted: paint now, not at the next turn
            canvas.native.repaint()
        scene.context.finish()

    return shown


def p50_p95_max(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms)
    return float(np.median(a)), float(np.percentile(a, 95)), float(a.max())
