"""The viewer's side of an open project: which layers show the tomogram, its candidates and
the current candidate, and how they follow the cursor.

Layers it manages (the labelling widget draws its own Qt controls and calls this):

``<tomogram>``  the tomogram, opened with cryoal's reader (``viewer.open(..., plugin="cryoal")``)
``candidates``  every candidate of the tomogram, a ring coloured by its current label;
                editable (``e``): napari's add and select tools add, re-centre and delete
                candidates (:mod:`cryoal_napari._candidate_edits`)
``current box`` the current candidate's subtomogram box in 2D (a square of ``box`` voxels)
``current box 3D`` the same box in 3D (a wireframe cube)
``mask``, ``mask uncertainty``  segment projects: the current crop's editable mask and the
                model's KT-MSE map (:mod:`cryoal_napari._mask_layer`)

All layers live in the tomogram's world: voxel data at its scale (Å) and translation, with
z/y/x axes, so the z slider steps one slice and reads Å like the image's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtGui import QColor

from cryoal.project.session import Candidate, CandidatePoints, LabellingSession
from cryoal_napari import _viewer
from cryoal_napari._layers import refreshes_held
from cryoal_napari._presentation import cube_edges, projection_display

if TYPE_CHECKING:
    import napari

    from cryoal_napari._candidate_edits import CandidateEditor
    from cryoal_napari._mask_layer import MaskEditor


class ProjectScene:
    """The layers of one open project in ``viewer``, kept in step with its session.

    Parameters
    ----------
    viewer
        The napari viewer.
    editor
        The candidate editor attached to the ``candidates`` layer once it exists.
    masks
        The mask editor that shows a segment project's current crop.
    """

    def __init__(self, viewer: napari.Viewer, editor: CandidateEditor, masks: MaskEditor) -> None:
        self.viewer = viewer
        self.editor = editor
        self.masks = masks
        self.session: LabellingSession | None = None
        self.image_layer: Any = None
        self.points_layer: Any = None
        self.box_layer: Any = None
        self.cube_layer: Any = None
        #: candidate id -> its row in the ``candidates`` and ``current box`` layers
        self.point_index: dict[str, int] = {}
        self.shown_tomo: str | None = None
        #: the tomogram's 2D contrast while 3D shows a projection, and that projection's
        #: (tomogram, (rendering, limits))
        self._limits_2d: tuple[float, ...] | None = None
        self._projection: tuple[str, tuple[str, tuple[float, float]]] | None = None
        self.viewer.dims.events.ndisplay.connect(self._on_ndisplay)

    def close(self) -> None:
        """Stop following the viewer's 2D/3D switch (the widget is closing)."""
        self.viewer.dims.events.ndisplay.disconnect(self._on_ndisplay)
        self.session = None

    def open(self, session: LabellingSession) -> None:
        """Follow ``session`` (a newly opened project); its tomogram opens on the next
        :meth:`show_tomogram`."""
        self.session = session
        self.shown_tomo = None

    # -- the tomogram and its candidates ---------------------------------------------
    def needs_tomogram(self) -> bool:
        """The session's tomogram is not the one shown."""
        tomo = self.session.tomo_id if self.session is not None else None
        return tomo is not None and tomo != self.shown_tomo

    def show_tomogram(self) -> None:
        """Open the session's tomogram as the bottom layer (replacing the previous one)."""
        assert self.session is not None and self.session.tomo_id is not None
        tomo_id = self.session.tomo_id
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.viewer.layers.remove(self.image_layer)
        layers = self.viewer.open(str(self.session.tomogram_path(tomo_id)), plugin="cryoal")
        images = [layer for layer in layers if type(layer).__name__ == "Image"]
        self.image_layer = images[0] if images else layers[0]
        self.image_layer.name = tomo_id
        self.shown_tomo = tomo_id
        self.viewer.layers.move(self.viewer.layers.index(self.image_layer), 0)
        self._limits_2d = None  # the new layer comes with its own 2D contrast
        if self.viewer.dims.ndisplay == 3:
            self._show_projection(True)

    def world_translate(self) -> np.ndarray:
        """The tomogram layer's translation (Å): candidates move with the image."""
        if self.image_layer is None:
            return np.zeros(3)
        return np.asarray(self.image_layer.translate, dtype=float)[-3:]

    def fill_points(self) -> None:
        """Every candidate of the tomogram shown, and one (hidden) box per candidate."""
        assert self.session is not None
        points = self.session.points()
        vs = self.session.voxel_size_A
        voxels = points.positions_A / vs  # data in voxels, shown at the image's scale
        translate = self.world_translate()
        self.point_index = {c: i for i, c in enumerate(points.features["candidate_id"])}
        # radius_A (world units) lets the viewer hook draw rings on nearby slices too
        _viewer.install(self.viewer)
        axes = {"units": ("angstrom",) * 3, "axis_labels": ("z", "y", "x"), "scale": (vs,) * 3}
        self.editor.filling = True  # the widget's own change, not a person's edit
        try:
            self._set_points(points, voxels, translate, axes)
        finally:
            self.editor.filling = False
        self.editor.attach(self.points_layer)
        self._set_boxes(voxels, translate, axes)

    def _set_points(
        self, points: CandidatePoints, voxels: np.ndarray, translate: np.ndarray, axes: dict
    ) -> None:
        """The ``candidates`` layer: one ring per candidate, coloured by its label."""
        assert self.session is not None
        vs = self.session.voxel_size_A
        size = self.session.box * 0.5  # voxels
        colours = list(points.colours) if len(points.colours) else "yellow"
        if self.points_layer is None or self.points_layer not in self.viewer.layers:
            self.points_layer = self.viewer.add_points(
                voxels,
                features=points.features,
                metadata={"cryoal": {"radius_A": float(size * vs) / 2}},
                **axes,
                name="candidates",
                size=size,
                face_color="transparent",
                border_color=colours,
                border_width=0.1,
                translate=translate,
                opacity=0.9,
            )
        else:
            self.points_layer.data = voxels
            self.points_layer.features = points.features
            self.points_layer.translate = translate
            self.points_layer.size = size
            if len(points.positions_A):
                self.points_layer.border_color = colours

    def _set_boxes(self, voxels: np.ndarray, translate: np.ndarray, axes: dict) -> None:
        """The current candidate's box: a square per candidate (one shown) in 2D, a
        wireframe cube in 3D."""
        assert self.session is not None
        # one hidden box per candidate, the current one shown: moving between candidates
        # then changes only the ``shown`` mask, not the layer's data and extent (fast)
        hidden = np.zeros(len(voxels), dtype=bool)
        if self.box_layer is None or self.box_layer not in self.viewer.layers:
            self.box_layer = self.viewer.add_points(
                voxels,
                shown=hidden,
                **axes,
                name="current box",
                symbol="square",
                size=self.session.box,
                face_color="transparent",
                border_color="#00ffff",
                border_width=0.04,
                translate=translate,
            )
        else:
            self.box_layer.data = voxels
            self.box_layer.shown = hidden
        self.box_layer.translate = translate
        if self.cube_layer is None or self.cube_layer not in self.viewer.layers:
            # 3D: a wireframe cube (12 edges, voxels) around the current candidate, clipped
            # to the tomogram so that it never widens the sliders' range
            first = self.session.current
            self.cube_layer = self.viewer.add_shapes(
                self._cube_around(first.zyx if first is not None else None),
                shape_type="line",
                edge_color="#00ffff",
                edge_width=1.0,
                **axes,
                translate=translate,
                name="current box 3D",
                visible=self.viewer.dims.ndisplay == 3,
            )
        self.cube_layer.translate = translate
        # keep the tomogram selected (unless candidates are being edited): the keys are
        # bound on every layer anyway, and the image layer's controls (contrast) are what a
        # labeller adjusts
        if not self.editor.editing:
            self.select_image()

    def select_image(self) -> None:
        """Make the tomogram the selected layer (its contrast controls show)."""
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.viewer.layers.selection.active = self.image_layer

    def recolour(self, candidate_id: str) -> None:
        """One candidate's ring in the colour of its current label. The colour is written
        into the layer's colour array in place, without an event: the caller refreshes the
        layer (or moves the slice, which redraws it) once. napari's ``border_color`` setter
        would re-validate every point's colour and redraw the layer a second time."""
        if self.session is None or self.points_layer is None:
            return
        i = self.point_index.get(candidate_id)
        if i is None:
            return
        pos = self.session.position(candidate_id)
        value = None if pos is None else self.session.entry(pos).label
        self.points_layer.border_color[i] = QColor(self.session.colour(value)).getRgbF()
        # in place: the layer's feature table is this DataFrame (no re-validation per label)
        self.points_layer.features.loc[i, "label"] = value or ""

    # -- the current candidate -------------------------------------------------------
    def show_candidate(
        self, current: Candidate | None, centre: bool = True, held: Sequence[Any] = ()
    ) -> None:
        """Show ``current``'s box (and, in a segment project, its mask) and, with
        ``centre``, move the slice and camera to it; ``None`` hides the box. ``held``: layers
        the caller changed with their refreshes held; they are refreshed here, once."""
        assert self.session is not None
        if current is None:
            for layer in held:
                if layer is not None:
                    layer.refresh()
            if self.box_layer is not None:
                self.box_layer.shown = np.zeros(len(self.box_layer.data), dtype=bool)
            return
        position = current.zyx * self.session.voxel_size_A
        shown = np.zeros(len(self.box_layer.data), dtype=bool)
        shown[self.point_index[current.candidate_id]] = True
        # the box and the crop's mask change first, their refreshes held: moving the slice
        # below re-slices every layer, and a layer refreshed before it would be drawn twice
        changed = [*held, self.box_layer, self.masks.layer]
        changed = [layer for layer in changed if layer is not None]
        point = self.viewer.dims.point
        with refreshes_held(*changed):
            self.box_layer.shown = shown
            if self.session.project.config.task == "segment":
                self.masks.show(self.session, self.world_translate(), refresh=False)
        world = position + self.world_translate()
        if self.cube_layer is not None and self.viewer.dims.ndisplay == 3:
            self.cube_layer.data = self._cube_around(current.zyx)
        if centre:
            if self.viewer.dims.ndisplay == 2:  # in 3D every z is drawn: no re-slicing
                self.viewer.dims.set_point(0, on_step(self.viewer.dims.range[0], world[0]))
            self.viewer.scene.camera.center = tuple(float(v) for v in world)
        if self.viewer.dims.point == point:  # the slice did not move: refresh them here
            for layer in changed:
                layer.refresh()

    def _cube_around(self, zyx: np.ndarray | None) -> list[np.ndarray]:
        """Edges (voxels) of the candidate's box at ``zyx`` (voxels; None: the tomogram's
        centre), clipped to the tomogram's voxels."""
        assert self.session is not None
        if self.image_layer is not None:
            lo, hi = np.asarray(self.image_layer.extent.data, dtype=float)[:, -3:]
        else:
            lo, hi = np.zeros(3), np.full(3, np.inf)
        centre = (lo + hi) / 2 if zyx is None else np.asarray(zyx, dtype=float)
        half = self.session.box / 2
        return cube_edges(np.maximum(centre - half, lo), np.minimum(centre + half, hi))

    # -- 2D and 3D -------------------------------------------------------------------
    def _on_ndisplay(self) -> None:
        """2D: the box as a square on the candidate's slice; 3D: as a wireframe cube, and
        the tomogram as a projection with its own contrast."""
        three_d = self.viewer.dims.ndisplay == 3
        self._show_projection(three_d)
        if self.cube_layer is not None and self.cube_layer in self.viewer.layers:
            self.cube_layer.visible = three_d
        if self.box_layer is not None and self.box_layer in self.viewer.layers:
            self.box_layer.visible = not three_d
        if self.session is not None and self.session.current is not None:
            self.show_candidate(self.session.current, centre=True)

    def _show_projection(self, three_d: bool) -> None:
        """3D: the tomogram as a maximum (bright particles) or minimum (dark) intensity
        projection, with limits from that projection (``projection_display``, computed
        once per tomogram from the level napari draws in 3D); 2D: the slice contrast back."""
        layer = self.image_layer
        if self.session is None or layer is None or type(layer).__name__ != "Image":
            return
        if not three_d:
            if self._limits_2d is not None:
                layer.contrast_limits = self._limits_2d
                self._limits_2d = None
            return
        if self._limits_2d is None:
            self._limits_2d = tuple(layer.contrast_limits)
        tomo = self.shown_tomo
        assert tomo is not None
        if self._projection is None or self._projection[0] != tomo:
            config = self.session.project.config
            polarity = config.tomogram(tomo).polarity or config.defaults.polarity
            volume = layer.data[-1] if layer.multiscale else layer.data
            self._projection = (tomo, projection_display(volume, polarity))
        rendering, limits = self._projection[1]
        layer.rendering = rendering
        layer.contrast_limits_range = (
            min(limits[0], layer.contrast_limits_range[0]),
            max(limits[1], layer.contrast_limits_range[1]),
        )
        layer.contrast_limits = limits


def on_step(axis_range: Any, value: float) -> float:
    """``value`` (world units) on the nearest step of a napari dims axis ``(start, stop,
    step)``: the slider snaps the point there anyway, and a second move would slice every
    layer again."""
    start, stop, step = (float(v) for v in axis_range)
    snapped = start + round((float(value) - start) / step) * step if step > 0 else float(value)
    return min(max(snapped, start), stop)
