"""Viewer-side finishing of cryoal layers: what a layer data tuple cannot say.

napari builds layers from ``(data, kwargs, type)`` tuples, and three settings have no
keyword there: the contrast slider's range (``contrast_limits_range``), the slice
thickness points are drawn within (a viewer setting since napari 0.9), and the viewer's
text overlay. :func:`install` connects one callback per viewer that, for each new layer,
applies ``metadata["cryoal"]["contrast_limits_range"]``, widens the dims margins to
``metadata["cryoal"]["radius_A"]`` (images and labels ignore margins; points are drawn as
the cross-section of a sphere of that radius), and, while a subtomogram store is shown,
writes the current sample's ``"id · class"`` into the text overlay. The readers call it on
the current viewer; code that adds cryoal layer data to a viewer itself calls
:func:`install` first. Nothing here runs without napari.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any


def finish_layer(layer: Any, viewer: Any = None) -> None:
    """Apply the cryoal settings a layer's ``metadata["cryoal"]`` asks for."""
    meta = (getattr(layer, "metadata", None) or {}).get("cryoal") or {}
    radius = meta.get("radius_A")
    if radius and viewer is not None:
        ndim = viewer.dims.ndim
        axes = range(ndim - layer.ndim, ndim)
        for name in ("margin_left", "margin_right"):
            margins = list(getattr(viewer.dims, name))
            for axis in axes:
                margins[axis] = max(float(margins[axis]), float(radius))
            setattr(viewer.dims, name, tuple(margins))
    slider = meta.get("contrast_limits_range")
    if slider is not None and hasattr(layer, "contrast_limits_range"):
        lo, hi = layer.contrast_limits
        layer.contrast_limits_range = (min(slider[0], lo), max(slider[1], hi))
        layer.contrast_limits = (lo, hi)


class _Hook:
    """Callback bound to one viewer (held weakly)."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = weakref.ref(viewer)

    def on_inserted(self, event: Any) -> None:
        finish_layer(event.value, self._viewer())
        self.update_caption()

    def update_caption(self, event: Any = None) -> None:
        viewer = self._viewer()
        if viewer is None:
            return
        for layer in reversed(list(viewer.layers)):
            meta = (layer.metadata or {}).get("cryoal") or {}
            if layer.visible and meta.get("kind") == "subtomogram_store":
                axis = viewer.dims.ndim - layer.ndim
                step = viewer.dims.point[axis] if axis >= 0 else 0
                captions = meta["captions"]
                index = min(max(int(round(float(step))), 0), len(captions) - 1)
                viewer.canvas.overlays["text"].text = f"{layer.name}: {captions[index]}"
                viewer.canvas.overlays["text"].visible = True
                return


def install(viewer: Any) -> None:
    """Connect the cryoal layer callbacks to ``viewer`` (once per viewer)."""
    emitter = viewer.layers.events.inserted
    # napari keeps bound-method callbacks as (weakref to the object, method name).
    for cb in emitter.callbacks:
        target = cb[0]() if isinstance(cb, tuple) and isinstance(cb[0], weakref.ref) else cb
        if isinstance(target, _Hook):
            return
    hook = _Hook(viewer)
    viewer._cryoal_hook = hook  # keep it alive as long as the viewer
    emitter.connect(hook.on_inserted)
    viewer.layers.events.removed.connect(hook.update_caption)
    viewer.dims.events.point.connect(hook.update_caption)


def install_on_current_viewer() -> None:
    """:func:`install` on napari's current viewer, if napari is running one."""
    if "napari" not in sys.modules:
        return
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        install(viewer)
