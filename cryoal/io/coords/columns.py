"""Column names and units shared by scanning, reading and writing coordinate files.

The canonical table's columns, the units a caller may state, the CSV coordinate columns of
each unit, and the RELION labels of pixel coordinates, centred coordinates and tomogram size.
"""

from __future__ import annotations

from typing import Literal

Unit = Literal["angstrom", "pixel"]
UNITS: tuple[str, ...] = ("angstrom", "pixel")
COLUMNS: tuple[str, ...] = ("candidate_id", "tomo_id", "z", "y", "x")

_XYZ_PIXEL = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
_XYZ_CENTRED = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
#: RELION 5 tomogram size (unbinned tilt-series pixels, as in tomograms.star); cryoal writes
#: it beside centred coordinates so that a reader needs no tomogram to find the centre.
_TOMO_SIZE = ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")
#: CSV coordinate columns per unit (the unit travels with the file).
CSV_COLUMNS: dict[str, tuple[str, str, str]] = {
    "angstrom": ("x_A", "y_A", "z_A"),
    "pixel": ("x_px", "y_px", "z_px"),
}
