"""Particle coordinates: RELION 3/4/5 STAR, CSV, copick picks, CZ cryoET Data Portal point
ndjson and ``.coords`` text (:mod:`cryoal.io.point_text`) <-> one canonical table.

The package's modules, one job each:

* :mod:`cryoal.io.coords.geometry`: tomogram size and voxel size, and the one conversion
  between xyz Å and zyx voxels (and RELION's Euler matrix);
* :mod:`cryoal.io.coords.scan`: what a file says, before any unit conversion
  (:class:`RawCoords`, one parser per format);
* :mod:`cryoal.io.coords.read`: a file -> the canonical table;
* :mod:`cryoal.io.coords.write`: the canonical table -> CSV, RELION STAR, copick picks;
* :mod:`cryoal.io.coords.copick_model`: copick picks files through copick's own data model
  (the ``copick`` extra; a one-line error naming it when copick is not installed);
* :mod:`cryoal.io.coords.columns`: the column names and units the others share.

Every public name is importable from ``cryoal.io.coords``.

The canonical table (a ``pandas.DataFrame``) has the columns

* ``candidate_id`` (str): stable id, from the file (``rlnTomoParticleName``, a CSV
  ``candidate_id`` column) or made as ``"<tomo_id>:<k:06d>"`` with ``k`` the row's rank
  among its tomogram's rows in the file;
* ``tomo_id`` (str);
* ``z``, ``y``, ``x`` (float): voxels of that tomogram, corner origin, 0-indexed, voxel
  centres at integers (voxel ``i`` covers ``[i - 0.5, i + 0.5)``);
* optionally ``class_name`` (str).

CSV files carry their unit in the column names: ``x_A, y_A, z_A`` (Å, corner origin) or
``x_px, y_px, z_px`` (pixels); :func:`write_csv` writes them and :func:`read_coords`
reads them back without being told the unit. Plain ``x, y, z`` columns (other tools)
need the unit stated by the caller (``--coords-unit``); it is never guessed.

At file boundaries positions are ``x, y, z`` and, unless a format says otherwise, in Å
with the same corner origin: ``position_A = index * voxel_size_A``. The conversion
between the two lives only in :func:`xyz_A_to_zyx_voxels` / :func:`zyx_voxels_to_xyz_A`
(and :func:`tomogram_centre_xyz_A` for RELION 5's centred coordinates).

RELION conventions (checked against RELION 5's source, ``src/jaz/tomography/
particle_set.cpp``, ``ParticleSet::getPosition`` and ``getParticleCoordDecenteredPixel``,
and ``tomogram_set.cpp``, where ``Tomogram::centre = (w0/2.0, h0/2.0, d0/2.0)``):

* RELION 3/4: ``rlnCoordinateX/Y/Z`` are 0-indexed pixels (RELION >= 4.1 no longer adds 1)
  of size ``rlnTomoTiltSeriesPixelSize`` (optics table) when given; otherwise cryoal takes
  them as pixels of the tomogram itself.
* RELION 5: ``rlnCenteredCoordinateX/Y/ZAngst`` are Å from the tomogram centre, and
  ``pixel = centred_A / pixel_size + size / 2`` with a floating-point ``size / 2``
  (no ``(size - 1) / 2``). It needs each tomogram's size, which is not in the particle
  file (RELION keeps it in tomograms.star as rlnTomoSizeX/Y/Z).
* Both: the particle position is ``pixel * pixel_size - A_sub @ origin_A`` where
  ``origin_A`` is ``rlnOriginX/Y/ZAngst`` (RELION 3.0: ``rlnOriginX/Y/Z`` pixels) and
  ``A_sub`` the rotation of ``rlnTomoSubtomogramRot/Tilt/Psi`` (identity when absent).
"""

from __future__ import annotations

from cryoal.io.coords.columns import COLUMNS, CSV_COLUMNS, UNITS, Unit
from cryoal.io.coords.geometry import (
    TomogramGeometry,
    relion_euler_matrix,
    tomogram_centre_xyz_A,
    xyz_A_to_zyx_voxels,
    zyx_voxels_to_xyz_A,
)
from cryoal.io.coords.read import read_coords, read_copick_picks, read_tomograms_star
from cryoal.io.coords.scan import RawCoords, scan_coords, summarize_coords
from cryoal.io.coords.write import (
    check_copick_name,
    validate_table,
    write_copick_picks,
    write_csv,
    write_star,
)

__all__ = [
    "COLUMNS",
    "CSV_COLUMNS",
    "UNITS",
    "RawCoords",
    "TomogramGeometry",
    "Unit",
    "check_copick_name",
    "read_coords",
    "read_copick_picks",
    "read_tomograms_star",
    "relion_euler_matrix",
    "scan_coords",
    "summarize_coords",
    "tomogram_centre_xyz_A",
    "validate_table",
    "write_copick_picks",
    "write_csv",
    "write_star",
    "xyz_A_to_zyx_voxels",
    "zyx_voxels_to_xyz_A",
]
