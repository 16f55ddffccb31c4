"""napari plugin for cryoal: open MRC tomograms and cryoal subtomogram stores.

The plugin is a thin shell over :mod:`cryoal`; it never imports Qt or napari at import time,
so its readers can be tested headless.
"""

from cryoal_napari._reader import get_reader

__all__ = ["get_reader"]
