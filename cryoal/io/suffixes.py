"""File suffixes cryoal recognises, in one place (no heavy imports: the CLI uses them at
start-up)."""

from __future__ import annotations

#: Read as MRC volumes: tomograms (.mrc, .rec), maps (.map), tilt series (.st) and image
#: stacks (.mrcs).
MRC_SUFFIXES: tuple[str, ...] = (".mrc", ".rec", ".map", ".st", ".mrcs")
#: Subtomogram stores (HDF5).
STORE_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5")
