"""Correcting masks in the viewer (segment projects): the current crop's mask as an
editable napari Labels layer over the tomogram, saved through the headless session.

The layer ``mask`` covers the current candidate's box in the tomogram's world (voxels at
the image's scale, translated to the box's corner), so the expert paints over the
tomogram itself. It opens with the annotator's draft, else the model's proposal, else
background (:func:`cryoal.project.masking.open_crop`); value ``k + 1`` is class ``k`` in
the project's colours, 255 (not annotated) grey. Keys (bound by the widget):

* ``1``-``9``: paint with that class (napari's paint mode, brush sized to the particle);
  ``0`` paints background; napari's ``[`` / ``]`` resize the brush, Ctrl+Z undoes a stroke;
* ``d``: the brush paints in 2D (the slice) or 3D (a ball);
* Enter: commit the mask (``accepted`` when unchanged from the proposal, else
  ``corrected``, or ``painted`` without one), durable before the next crop shows;
* ``a``: accept the model's mask unchanged; ``r``: reset to it; ``u``: the crop unsure.

Every stroke restarts a short timer that autosaves the draft (``session.save_draft``), so
a killed viewer finds the crop as it was. The KT-MSE map of the proposal is the hidden
layer ``mask uncertainty`` (tick it to see where teacher and student disagree).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

from cryoal.io.store import MASK_IGNORE
from cryoal_napari._layers import refreshes_held

#: Milliseconds after the last stroke before the draft is saved.
DRAFT_DELAY_MS = 400
#: Colour of voxels not annotated.
IGNORE_COLOUR = "#808080"


class MaskEditor:
    """The ``mask`` layer of the labelling widget for segment projects."""

    def __init__(self, viewer: Any, report: Any) -> None:
        self.viewer = viewer
        self._report = report
        self.layer: Any = None
        self.uncertainty_layer: Any = None
        self.crop: Any = None
        self._shown_at = time.perf_counter()
        self._draft_timer = QTimer()
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self.save_draft)
        self.session: Any = None
        self._uncertainty_for: str | None = None
        self._uncertainty_place: dict = {}

    # -- showing a crop ------------------------------------------------------------------
    def show(self, session: Any, translate: np.ndarray, refresh: bool = True) -> None:
        """Open the session's current crop in the ``mask`` layer (``translate``: the
        tomogram layer's, Å); ``refresh=False``: the caller refreshes the layer (it moves
        the viewer's slice next, which re-slices every layer anyway)."""
        self.flush()
        self.session = session
        current = session.current
        if current is None:
            if self.layer is not None and self.layer in self.viewer.layers:
                self.layer.visible = False
            self.crop = None
            return
        self.crop = session.mask_crop()
        vs = session.voxel_size_A
        corner = np.floor(current.zyx + 0.5).astype(int) - session.box // 2
        place = {"scale": (vs,) * 3, "translate": tuple(np.asarray(translate) + corner * vs)}
        axes = {"units": ("angstrom",) * 3, "axis_labels": ("z", "y", "x")}
        colours = {0: "transparent", MASK_IGNORE: IGNORE_COLOUR, None: "transparent"}
        for k, name in enumerate(session.class_names):
            colours[k + 1] = session.colour(name)
        created = self.layer is None or self.layer not in self.viewer.layers
        if created:
            from cryoal.project.corrections import particle_radius_px

            self.layer = self.viewer.add_labels(
                self.crop.start.copy(),
                name="mask",
                opacity=0.5,
                colormap=colours,
                **place,
                **axes,
            )
            self.layer.brush_size = max(1, round(particle_radius_px(session.project)))
            self.layer.events.paint.connect(lambda _e: self._draft_timer.start())
        else:  # moved, refilled and shown with one refresh (each setter would refresh)
            with refreshes_held(self.layer):
                if tuple(self.layer.translate) != place["translate"]:
                    self.layer.translate = place["translate"]
                self.layer.data = self.crop.start.copy()
                if not self.layer.visible:  # even an unchanged visible redraws the scene
                    self.layer.visible = True
            if refresh:
                self.layer.refresh()
        if self.layer.mode != "paint":
            self.layer.mode = "paint"
        if self.layer.selected_label == 0:
            self.layer.selected_label = 1
        self._show_uncertainty({**place, **axes})
        if created:  # the mouse paints at once (napari gives it to the newest layer)
            self.viewer.layers.selection.active = self.layer
        self._shown_at = time.perf_counter()

    def _show_uncertainty(self, place: dict) -> None:
        """The crop's KT-MSE map in the ``mask uncertainty`` layer; while that layer is
        hidden it is updated only when shown (``_on_visible``), so a key costs nothing."""
        self._uncertainty_place = place
        if self.uncertainty_layer is None or self.uncertainty_layer not in self.viewer.layers:
            self.uncertainty_layer = self.viewer.add_image(
                self._uncertainty_data(), name="mask uncertainty", colormap="inferno",
                blending="additive", visible=False, **place,
            )  # fmt: skip
            self.uncertainty_layer.events.visible.connect(self._on_visible)
            self._uncertainty_for = self.crop.candidate_id
        elif self.uncertainty_layer.visible:
            self._update_uncertainty()

    def _uncertainty_data(self) -> np.ndarray:
        values = self.crop.uncertainty
        return values if values is not None else np.zeros(self.crop.start.shape, np.float32)

    def _update_uncertainty(self) -> None:
        if self.crop is None or self._uncertainty_for == self.crop.candidate_id:
            return
        layer, place = self.uncertainty_layer, self._uncertainty_place
        if tuple(layer.translate) != place["translate"]:
            layer.translate = place["translate"]
        layer.data = self._uncertainty_data()
        self._uncertainty_for = self.crop.candidate_id

    def _on_visible(self, _event: Any = None) -> None:
        if self.uncertainty_layer is not None and self.uncertainty_layer.visible:
            self._update_uncertainty()

    # -- keys ----------------------------------------------------------------------------
    def choose_label(self, value: int) -> None:
        """Paint with mask value ``value`` (0 background, class k + 1)."""
        if self.layer is not None:
            self.layer.selected_label = int(value)
            self.layer.mode = "paint"
            self.viewer.layers.selection.active = self.layer

    def toggle_brush(self) -> None:
        """The brush paints on the slice (2D) or in a ball (3D)."""
        if self.layer is not None:
            self.layer.n_edit_dimensions = 3 if self.layer.n_edit_dimensions == 2 else 2

    def reset(self) -> None:
        """Back to the model's mask (the draft is dropped)."""
        if self.crop is None or self.crop.proposal is None:
            self._report("this crop has no model mask to reset to")
            return
        self._draft_timer.stop()
        self.layer.data = self.crop.proposal.copy()
        self.session.store.discard_draft(self.crop.candidate_id, self.session.annotator)

    def commit(self, *, accept: bool = False) -> bool:
        """Commit the layer's mask (``accept``: the model's mask unchanged); True when
        committed (the session moved on)."""
        if self.crop is None or self.session is None or self.session.current is None:
            return False
        if accept and self.crop.proposal is None:
            self._report("this crop has no model mask to accept; paint it and press Enter")
            return False
        self._draft_timer.stop()
        mask = self.crop.proposal if accept else np.asarray(self.layer.data, dtype=np.uint8)
        self.session.commit_mask(mask, seconds=time.perf_counter() - self._shown_at, crop=self.crop)
        return True

    # -- drafts --------------------------------------------------------------------------
    def save_draft(self) -> None:
        """Save the layer's mask as the crop's draft (after strokes; on close)."""
        if self.crop is None or self.session is None or self.layer is None:
            return
        current = self.session.current
        if current is None or current.candidate_id != self.crop.candidate_id:
            return
        try:
            self.session.save_draft(np.asarray(self.layer.data, dtype=np.uint8))
        except (ValueError, OSError) as exc:
            self._report(str(exc))

    def flush(self) -> None:
        """Save a pending draft now (before the crop changes or the window closes)."""
        if self._draft_timer.isActive():
            self._draft_timer.stop()
            self.save_draft()
