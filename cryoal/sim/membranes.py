"""Lipid membranes for simulated tomograms: vesicles and curved sheets, with their masks.

A membrane is a smooth mid-surface with a signed distance ``d`` (voxels) to it:

* a **vesicle** is a sphere of radius ``R`` around ``c``: ``d(x) = |x - c| - R`` (positive
  outside);
* a **sheet** is a plane of unit normal ``n`` through ``o``, bent along an in-plane direction
  ``t``: ``u = A sin(k w + φ)`` with ``u = n·(x - o)``, ``w = t·(x - o)``, across the whole
  tomogram (a curved membrane such as the plasma membrane or an ER sheet cut by the
  lamella), with the first-order distance ``d = (u - A sin(k w + φ)) / sqrt(1 + (A k cos(k w
  + φ))²)``.

Its density is the bilayer's electron-density profile across ``d``: two Gaussian head-group
layers ``leaflet_separation_A`` apart (peak to peak, about 4 nm in cells), each of standard
deviation ``leaflet_width_A``, with a peak of ``contrast`` times the mean density inside the
particles' supports, so a membrane is as strong as protein at ``contrast = 1``. Its label is
every voxel with ``|d| <= thickness_A / 2`` (the bilayer, about 5 nm). Units: the parameters
are in Å, geometry in voxels of the tomogram (zyx).

Membranes never touch one another. Particles keep clear of every membrane by their support
radius plus half the bilayer plus the particle gap; a share of them (``bound_fraction``) sits
right against one (membrane-bound: outside a vesicle, either side of a sheet), the others
float free nearby.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np

#: Name of the membrane label in a simulated tomogram's label volume (after the particles).
MEMBRANE_NAME = "membrane"


@dataclass(frozen=True)
class MembraneParams:
    """How many membranes, of what shape, and how particles sit on them (lengths in Å).

    Attributes
    ----------
    vesicles
        Number of spherical vesicles.
    vesicle_radius_A
        ``(min, max)`` radius of a vesicle's mid-surface, drawn uniformly.
    sheets
        Number of curved sheets spanning the tomogram in y and x.
    sheet_amplitude_A, sheet_wavelength_A
        Height and wavelength of a sheet's sinusoidal bend.
    sheet_max_tilt_deg
        The first sheet's normal is drawn isotropically among directions tilted from z (the
        beam) by at most this; a sheet facing the beam lies in the missing wedge and is
        nearly invisible, as in real tomograms (13 % of isotropic normals are within 30° of
        z).
    bound_fraction
        Share of the particles placed against a membrane (0 to 1).
    leaflet_separation_A, leaflet_width_A
        Peak-to-peak distance of the two head-group layers, and the standard deviation of each.
    thickness_A
        Thickness of the labelled bilayer (mask: ``|d| <= thickness_A / 2``).
    contrast
        Head-group peak density relative to the mean density inside the particles' supports.
    """

    vesicles: int = 2
    vesicle_radius_A: tuple[float, float] = (150.0, 350.0)
    sheets: int = 1
    sheet_amplitude_A: float = 80.0
    sheet_wavelength_A: float = 2000.0
    sheet_max_tilt_deg: float = 90.0
    bound_fraction: float = 0.3
    leaflet_separation_A: float = 38.0
    leaflet_width_A: float = 6.0
    thickness_A: float = 50.0
    contrast: float = 1.0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting out of range."""
        if int(self.vesicles) != self.vesicles or self.vesicles < 0:
            raise ValueError(f"vesicles {self.vesicles!r} must be a count >= 0")
        if int(self.sheets) != self.sheets or self.sheets < 0:
            raise ValueError(f"sheets {self.sheets!r} must be a count >= 0")
        lo, hi = self.vesicle_radius_A
        if not 0 < lo <= hi:
            raise ValueError(
                f"vesicle radius range {self.vesicle_radius_A} must be 0 < MIN <= MAX Å"
            )
        if not 0.0 <= self.bound_fraction <= 1.0:
            raise ValueError(f"bound fraction {self.bound_fraction} must be in [0, 1]")
        if self.bound_fraction > 0 and self.vesicles + self.sheets == 0:
            raise ValueError(
                f"bound fraction {self.bound_fraction} needs at least one vesicle or sheet"
            )
        for name in ("sheet_wavelength_A", "leaflet_width_A", "thickness_A", "contrast"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} {getattr(self, name)} must be > 0")
        if not 0.0 <= self.sheet_max_tilt_deg <= 90.0:
            raise ValueError(f"sheet_max_tilt_deg {self.sheet_max_tilt_deg} must be in [0, 90]")
        for name in ("sheet_amplitude_A", "leaflet_separation_A"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} {getattr(self, name)} must be >= 0")


@dataclass(frozen=True)
class Vesicle:
    """A sphere: ``centre_zyx`` (voxels) and mid-surface ``radius`` (voxels)."""

    centre_zyx: tuple[float, float, float]
    radius: float

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (voxels, positive outside) of ``(n, 3)`` zyx points."""
        return (
            np.linalg.norm(np.asarray(points) - np.asarray(self.centre_zyx), axis=-1) - self.radius
        )

    def area(self) -> float:
        return 4.0 * math.pi * self.radius**2


@dataclass(frozen=True)
class Sheet:
    """A plane through ``origin_zyx`` with unit ``normal``, bent along the in-plane unit
    ``bend`` direction: the mid-surface is ``u = amplitude * sin(wavenumber * w + phase)``
    with ``u = normal · (p - origin)`` and ``w = bend · (p - origin)`` (voxels)."""

    origin_zyx: tuple[float, float, float]
    normal: tuple[float, float, float]
    bend: tuple[float, float, float]
    amplitude: float
    wavenumber: float
    phase: float
    area_voxels: float = 0.0

    def _coords(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = np.asarray(points, dtype=np.float64) - np.asarray(self.origin_zyx)
        return rel @ np.asarray(self.normal), rel @ np.asarray(self.bend)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """First-order signed distance (voxels, positive on the normal's side) of ``(..., 3)``
        zyx points."""
        u, w = self._coords(points)
        arg = self.wavenumber * w + self.phase
        slope = self.amplitude * self.wavenumber * np.cos(arg)
        return (u - self.amplitude * np.sin(arg)) / np.sqrt(1.0 + slope**2)

    def surface_point(self, v: float, w: float) -> tuple[np.ndarray, np.ndarray]:
        """The mid-surface point at in-plane coordinates ``v`` (across the bend) and ``w``
        (along it), and the unit normal there."""
        n, t = np.asarray(self.normal), np.asarray(self.bend)
        s = np.cross(n, t)
        arg = self.wavenumber * w + self.phase
        point = np.asarray(self.origin_zyx) + v * s + w * t + self.amplitude * math.sin(arg) * n
        normal = n - self.amplitude * self.wavenumber * math.cos(arg) * t
        return point, normal / np.linalg.norm(normal)

    def area(self) -> float:
        return self.area_voxels


Membrane = Vesicle | Sheet


def _fibonacci_sphere(n: int) -> np.ndarray:
    """``(n, 3)`` nearly uniform unit vectors."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(1.0 - z**2)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * k
    return np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)


#: Sheets after the first tilt away from its normal by up to about this angle, degrees.
STACK_SPREAD_DEG = 20.0

#: Spacing of the grid on which sheets are measured and checked against each other, voxels.
_STRIDE = 3.0

#: Directions at which a vesicle is checked against a sheet.
_SPHERE = _fibonacci_sphere(2048)


class MembraneSet:
    """The membranes of one tomogram, in voxels of a ``shape_zyx`` volume.

    Parameters
    ----------
    params
        The settings (Å).
    shape_zyx
        Tomogram shape, voxels.
    voxel_size_A
        Voxel size, Å.
    rng
        Generator for the geometry and for the bound particles' positions.
    gap_voxels
        Extra distance between membranes (and between a particle and a membrane).
    max_tries
        Random draws per membrane before giving up.

    Raises
    ------
    ValueError
        The membranes do not fit the volume without touching.
    """

    def __init__(
        self,
        params: MembraneParams,
        shape_zyx: tuple[int, int, int],
        voxel_size_A: float,
        rng: np.random.Generator,
        *,
        gap_voxels: float = 1.0,
        max_tries: int = 2000,
    ) -> None:
        params.check()
        self.params = params
        self.shape = tuple(int(s) for s in shape_zyx)
        self.voxel_size_A = float(voxel_size_A)
        self.gap = float(gap_voxels)
        self.half_thickness = 0.5 * params.thickness_A / self.voxel_size_A
        self.membranes: list[Membrane] = []
        axes = [np.arange(0.5 * _STRIDE, s, _STRIDE) for s in self.shape]
        #: ``(m, 3)`` zyx points of a coarse grid over the volume (sheet areas and clearances)
        self._coarse = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        self._place(rng, max_tries)

    # ----------------------------------------------------------------- geometry
    def _fits(self, candidate: Membrane) -> bool:
        clear = 2.0 * self.half_thickness + self.gap
        d: np.ndarray
        for other in self.membranes:
            if isinstance(candidate, Vesicle) and isinstance(other, Vesicle):
                apart = float(np.linalg.norm(np.subtract(candidate.centre_zyx, other.centre_zyx)))
                if apart < candidate.radius + other.radius + clear:
                    return False
            elif isinstance(candidate, Sheet) and isinstance(other, Sheet):
                # every point of the volume near one sheet on one side of the other, clear
                grid = self._coarse
                near = grid[np.abs(candidate.distance(grid)) < 0.5 * _STRIDE]
                d = other.distance(near)
                if d.size and not (d.min() >= clear or d.max() <= -clear):
                    return False
            else:
                ves, sheet = (
                    (candidate, other) if isinstance(candidate, Vesicle) else (other, candidate)
                )
                assert isinstance(ves, Vesicle) and isinstance(sheet, Sheet)
                # the sphere's part inside the volume on one side of the sheet, `clear` away
                pts = np.asarray(ves.centre_zyx) + ves.radius * _SPHERE
                pts = pts[np.all((pts >= 0) & (pts <= np.asarray(self.shape)), axis=1)]
                d = sheet.distance(pts)
                if d.size and not (d.min() >= clear or d.max() <= -clear):
                    return False
        return True

    def _place(self, rng: np.random.Generator, max_tries: int) -> None:
        p, v = self.params, self.voxel_size_A
        z, y, x = self.shape
        for k in range(int(p.sheets)):
            for _ in range(max_tries):
                sheet = self._draw_sheet(rng)
                if self._fits(sheet):
                    # area inside the volume: grid points in a shell one step thick x a face
                    near = np.abs(sheet.distance(self._coarse)) < 0.5 * _STRIDE
                    self.membranes.append(
                        dataclasses.replace(sheet, area_voxels=float(near.sum()) * _STRIDE**2)
                    )
                    break
            else:
                raise ValueError(
                    f"placed {k} of {p.sheets} membrane sheets in a tomogram of shape "
                    f"{self.shape} without touching; use fewer sheets or a larger volume"
                )
        lo, hi = (r / v for r in p.vesicle_radius_A)
        for k in range(int(p.vesicles)):
            for _ in range(max_tries):
                r = float(rng.uniform(lo, hi))
                if 2 * (r + self.half_thickness + 1) > min(y, x):
                    raise ValueError(
                        f"a vesicle of radius {r * v:.0f} Å does not fit a tomogram of shape "
                        f"{self.shape} at {v} Å; lower the vesicle radius (--vesicle-radius, vesicle_radius_A)"
                    )
                # the tomogram may cut a vesicle, as it cuts real ones
                c = (
                    float(rng.uniform(0.2 * z, 0.8 * z)),
                    float(rng.uniform(0.1 * y, 0.9 * y)),
                    float(rng.uniform(0.1 * x, 0.9 * x)),
                )
                ves = Vesicle(centre_zyx=c, radius=r)
                if self._fits(ves):
                    self.membranes.append(ves)
                    break
            else:
                raise ValueError(
                    f"placed {k} of {p.vesicles} vesicles in a tomogram of shape {self.shape} "
                    "without touching; use fewer vesicles or sheets, smaller radii or a larger --shape"
                )

    def _draw_sheet(self, rng: np.random.Generator) -> Sheet:
        """A sheet through the middle half of the volume, bent along a random in-plane
        direction; the first one's normal isotropic up to ``sheet_max_tilt_deg`` from z,
        later ones nearly parallel to it (:data:`STACK_SPREAD_DEG`)."""
        p, v = self.params, self.voxel_size_A
        shape = np.asarray(self.shape, dtype=np.float64)
        first_sheet = next((m for m in self.membranes if isinstance(m, Sheet)), None)
        if first_sheet is None:
            # isotropic up to the largest tilt: cos(tilt) uniform
            tilt = math.acos(rng.uniform(math.cos(math.radians(p.sheet_max_tilt_deg)), 1.0))
            azimuth = rng.uniform(0.0, 2.0 * math.pi)
            normal = np.array(
                [
                    math.cos(tilt),
                    math.sin(tilt) * math.sin(azimuth),
                    math.sin(tilt) * math.cos(azimuth),
                ]
            )
        else:  # stacked sheets (ER, envelopes) run nearly parallel: within STACK_SPREAD_DEG
            normal = np.asarray(first_sheet.normal) + math.tan(
                math.radians(STACK_SPREAD_DEG)
            ) * rng.uniform(-1.0, 1.0, 3) / math.sqrt(3.0)
            normal /= np.linalg.norm(normal)
        helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        first = np.cross(normal, helper)
        first /= np.linalg.norm(first)
        second = np.cross(normal, first)
        turn = rng.uniform(0.0, 2.0 * math.pi)
        bend = math.cos(turn) * first + math.sin(turn) * second
        origin = rng.uniform(0.25 * shape, 0.75 * shape)
        sheet = Sheet(
            origin_zyx=(float(origin[0]), float(origin[1]), float(origin[2])),
            normal=(float(normal[0]), float(normal[1]), float(normal[2])),
            bend=(float(bend[0]), float(bend[1]), float(bend[2])),
            amplitude=p.sheet_amplitude_A / v,
            wavenumber=2.0 * math.pi * v / p.sheet_wavelength_A,
            phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        )
        return sheet

    def describe(self) -> dict:
        """The settings and every membrane's geometry (voxels), for ``simulation.json``."""
        return {
            "params": asdict(self.params),
            "membranes": [
                {"kind": "vesicle" if isinstance(m, Vesicle) else "sheet", **asdict(m)}
                for m in self.membranes
            ],
        }

    # ------------------------------------------------------------ particles
    def clear_of(self, centre: np.ndarray, radius: float, skip: int = -1) -> bool:
        """Whether a particle of support ``radius`` at ``centre`` (voxels) keeps clear of
        every membrane but ``skip`` (the one it is bound to)."""
        need = radius + self.half_thickness + self.gap
        for k, m in enumerate(self.membranes):
            if k != skip and abs(float(m.distance(centre))) < need:
                return False
        return True

    def propose_bound(self, rng: np.random.Generator, radius: float) -> tuple[np.ndarray, int]:
        """A centre against a random membrane (chosen in proportion to its area) for a
        particle of support ``radius``: outside a vesicle, either side of a sheet."""
        areas = np.array([m.area() for m in self.membranes])
        k = int(rng.choice(len(areas), p=areas / areas.sum()))
        m = self.membranes[k]
        offset = radius + self.half_thickness + self.gap
        if isinstance(m, Vesicle):
            u = rng.standard_normal(3)
            u /= np.linalg.norm(u)
            return np.asarray(m.centre_zyx) + (m.radius + offset) * u, k
        reach = 0.5 * float(np.linalg.norm(self.shape))
        point, normal = m.surface_point(rng.uniform(-reach, reach), rng.uniform(-reach, reach))
        side = 1.0 if rng.random() < 0.5 else -1.0
        return point + side * offset * normal, k

    # ------------------------------------------------------------ rendering
    def render(self, peak_density: float) -> tuple[np.ndarray, np.ndarray]:
        """The membranes' density and mask over the whole volume.

        Parameters
        ----------
        peak_density
            Density of a particle (the mean inside the supports); the head groups peak at
            ``contrast`` times it.

        Returns
        -------
        density, mask
            ``shape_zyx`` float32 density and bool mask (``|d| <= thickness / 2``).
        """
        p = self.params
        v = self.voxel_size_A
        half_sep = 0.5 * p.leaflet_separation_A / v
        sigma = p.leaflet_width_A / v
        reach = max(half_sep + 4.0 * sigma, self.half_thickness) + 1.0
        peak = float(p.contrast * peak_density)
        density = np.zeros(self.shape, dtype=np.float32)
        mask = np.zeros(self.shape, dtype=bool)
        for m in self.membranes:
            region, grid = self._region(m, reach)
            d = m.distance(grid).astype(np.float32)
            prof = np.exp(-0.5 * ((d - half_sep) / sigma) ** 2) + np.exp(
                -0.5 * ((d + half_sep) / sigma) ** 2
            )
            density[region] += np.float32(peak) * prof.astype(np.float32)
            mask[region] |= np.abs(d) <= self.half_thickness
        return density, mask

    def _region(self, m: Membrane, reach: float) -> tuple[tuple[slice, ...], np.ndarray]:
        """The bounding box of ``m`` widened by ``reach`` voxels, and its ``(..., 3)`` zyx
        voxel coordinates."""
        if isinstance(m, Vesicle):
            lo = [max(int(math.floor(c - m.radius - reach)), 0) for c in m.centre_zyx]
            hi = [
                min(int(math.ceil(c + m.radius + reach)) + 1, s)
                for c, s in zip(m.centre_zyx, self.shape, strict=True)
            ]
        else:  # a sheet crosses the whole volume
            lo, hi = [0, 0, 0], list(self.shape)
        region = tuple(slice(a, max(a, b)) for a, b in zip(lo, hi, strict=True))
        axes = [np.arange(s.start, s.stop, dtype=np.float32) for s in region]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        return region, grid
