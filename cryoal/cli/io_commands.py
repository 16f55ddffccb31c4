"""``cryoal info``, ``cryoal extract`` and ``cryoal convert-coords``: thin shells over cryoal.io."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from cryoal.io.suffixes import MRC_SUFFIXES, STORE_SUFFIXES

if TYPE_CHECKING:
    from cryoal.io.coords import TomogramGeometry

# Heavy libraries (numpy, pandas, h5py, mrcfile, starfile) are imported inside the
# commands, so that ``cryoal --help`` and ``cryoal info FILE.mrc`` start fast. Defaults
# and choices below equal the library's (tests/cli/test_options.py checks them).
COORD_SUFFIXES = (".star", ".csv", ".json", ".ndjson", ".coords")
COORD_TARGETS = ("star4", "star5", "csv", "copick")
#: cryoal.data.extract.DEFAULT_BATCH_SIZE / DEFAULT_COMPRESSION_LEVEL
EXTRACT_BATCH_SIZE = 256
EXTRACT_COMPRESSION_LEVEL = 1

Unit = Literal["angstrom", "pixel"]  # cryoal.io.coords.UNITS
Edge = Literal["pad", "skip", "error"]  # cryoal.data.extract.EDGE_POLICIES
Target = Literal["star4", "star5", "csv", "copick"]


# --------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------
def _info_mrc(path: Path, voxel_size: float | None) -> None:
    from cryoal.io.mrc import open_tomogram
    from cryoal.io.volume import volume_stats

    with open_tomogram(path, voxel_size_A=voxel_size) as t:
        stats = volume_stats(t.data)
        z, y, x = t.shape
        typer.echo(f"{path}: MRC tomogram")
        typer.echo(f"  shape (z, y, x): {z} x {y} x {x} voxels")
        typer.echo(
            f"  voxel size: {t.voxel_size_A:g} Å   size (x, y, z): "
            f"{x * t.voxel_size_A / 10:g} x {y * t.voxel_size_A / 10:g} x "
            f"{z * t.voxel_size_A / 10:g} nm"
        )
        typer.echo(f"  dtype: {t.dtype}   origin (z, y, x): {t.origin_zyx_A} Å")
        typer.echo(
            f"  min {stats.min:.6g}  max {stats.max:.6g}  mean {stats.mean:.6g}  "
            f"std {stats.std:.6g}"
        )
        if stats.n_nonfinite:
            typer.echo(f"  NaN/Inf voxels: {stats.n_nonfinite} (left out of the statistics)")


def _info_store(path: Path) -> None:
    import numpy as np

    from cryoal.io.store import SubtomogramStore

    with SubtomogramStore(path) as s:
        b = s.box
        typer.echo(f"{path}: cryoal subtomogram store")
        typer.echo(
            f"  samples: {len(s)}   box: {b}^3   voxel size: {s.voxel_size_A:g} Å   "
            f"dtype: {s.dtype}"
        )
        typer.echo(
            f"  masks: {'yes' if s.has_masks else 'no'}   tomograms: "
            f"{len(set(s.tomo_ids.tolist()))}"
        )
        typer.echo(f"  classes ({len(s.class_names)}): {', '.join(s.class_names) or '(none)'}")
        counts = np.bincount(s.labels[s.labels >= 0], minlength=len(s.class_names))
        for name, count in zip(s.class_names, counts, strict=False):
            typer.echo(f"    {name}: {int(count)}")
        typer.echo(f"    unlabeled: {int((s.labels < 0).sum())}")
        if s.meta_names:
            typer.echo(f"  per-sample metadata: {', '.join(s.meta_names)}")


def _info_coords(path: Path) -> None:
    import numpy as np

    from cryoal.io.coords import scan_coords, summarize_coords

    raw = scan_coords(path)
    kinds = {
        "pixel": "pixels",
        "angstrom": "Å (corner origin)",
        "centred-angstrom": "Å from the tomogram centre (RELION 5)",
        None: "not stated in the file (columns x, y, z; give --coords-unit angstrom|pixel "
        "when reading, or name the columns x_A, y_A, z_A or x_px, y_px, z_px)",
    }
    typer.echo(f"{path}: {raw.format} coordinates, {len(raw)} rows")
    typer.echo(f"  unit: {kinds[raw.kind]}")
    if raw.pixel_size_A is not None:
        sizes = ", ".join(f"{v:g}" for v in np.unique(raw.pixel_size_A))
        typer.echo(f"  pixel size (rlnTomoTiltSeriesPixelSize): {sizes} Å")
    if raw.tomo_size_px is not None:
        dims = sorted({" x ".join(f"{float(v):g}" for v in row) for row in raw.tomo_size_px})
        typer.echo(f"  tomogram size (rlnTomoSizeX/Y/Z, pixels): {', '.join(dims)}")
    if raw.origin_xyz_A is not None or raw.origin_xyz_px is not None:
        typer.echo("  origin shifts: present (applied when reading)")
    table = summarize_coords(raw)
    typer.echo(f"  tomograms: {table['tomo_id'].nunique()}")
    for tomo, group in table.groupby("tomo_id", sort=True):
        parts = [
            f"{c or '(no class)'}: {int(n)}"
            for c, n in zip(group["class_name"], group["count"], strict=True)
        ]
        typer.echo(f"    {tomo}: {int(group['count'].sum())}  ({', '.join(parts)})")


def info(
    file: Path = typer.Argument(
        ...,
        help="MRC tomogram, HDF5 store, or coordinates (.star, .csv, copick .json, portal "
        ".ndjson, .coords).",
    ),
    voxel_size: float | None = typer.Option(
        None, "--voxel-size", help="Voxel size (Å) for an MRC whose header holds none."
    ),
) -> None:
    """Describe a tomogram, subtomogram store or coordinate file."""
    suffix = file.suffix.lower()
    if suffix in MRC_SUFFIXES:
        _info_mrc(file, voxel_size)
    elif suffix in STORE_SUFFIXES:
        _info_store(file)
    elif suffix in COORD_SUFFIXES:
        _info_coords(file)
    else:
        if not file.exists():
            raise FileNotFoundError(f"{file}: file not found; check the path")
        known = ", ".join(MRC_SUFFIXES + STORE_SUFFIXES + COORD_SUFFIXES)
        raise ValueError(
            f"{file}: unknown file type {suffix or '(no suffix)'!r}; cryoal reads {known}"
        )


# --------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------
def _choose_tomo_id(coords: Path, tomogram: Path, tomo_id: str | None) -> str:
    from cryoal.io.coords import scan_coords

    if tomo_id is not None:
        return tomo_id
    raw = scan_coords(coords)
    if raw.tomo_names is None:
        return tomogram.stem
    names = sorted(set(raw.tomo_names.tolist()))
    if not names:
        raise ValueError(_no_coordinates(coords))
    if len(names) == 1:
        _warn_other_tomogram(coords, names[0], tomogram)
        return names[0]
    if tomogram.stem in names:
        return tomogram.stem
    raise ValueError(
        f"{coords}: the file covers {len(names)} tomograms {names[:8]} and none is named like "
        f"{tomogram.name}; pick one with --tomo-id"
    )


def _no_coordinates(coords: Path, tomo_id: str | None = None) -> str:
    """One line: the coordinate file holds no rows (for ``tomo_id``), nothing to extract."""
    which = f" of tomogram {tomo_id!r} (--tomo-id)" if tomo_id is not None else ""
    return (
        f"{coords}: the file holds no coordinates{which}; nothing to extract; check that it "
        "is the picks file you meant (a header without rows is empty)"
    )


def _warn_other_tomogram(coords: Path, name: str, tomogram: Path) -> None:
    """Warn when a file's only tomogram name is not the tomogram file's name."""
    if name != tomogram.stem:
        warnings.warn(
            f"{coords}: the picks are for tomogram {name!r}, the tomogram file is "
            f"{tomogram.name}; using them with it (pass --tomo-id {name} if they belong "
            "together, or the tomogram the picks were made in)",
            stacklevel=2,
        )


def extract(
    tomogram: Path = typer.Argument(..., help="MRC tomogram (.mrc/.rec)."),
    coords: Path = typer.Argument(
        ..., help="Coordinates: RELION .star, .csv, copick .json, portal .ndjson or .coords."
    ),
    out: Path = typer.Argument(..., help="Output HDF5 subtomogram store (.h5)."),
    box: int = typer.Option(..., "--box", min=1, help="Subtomogram edge length in voxels."),
    coords_unit: Unit | None = typer.Option(
        None,
        "--coords-unit",
        help="Unit of CSV x, y, z [default: from the column names x_A, x_px; needed for plain x, y, z].",
    ),
    voxel_size: float | None = typer.Option(
        None, "--voxel-size", help="Tomogram voxel size (Å) [default: the MRC header's]."
    ),
    coords_pixel_size: float | None = typer.Option(
        None,
        "--coords-pixel-size",
        help="Pixel size (Å) of pixel coordinates, e.g. unbinned picks [default: rlnTomoTiltSeriesPixelSize, else the tomogram's voxel size].",
    ),
    tomo_id: str | None = typer.Option(
        None,
        "--tomo-id",
        help="Tomogram id: selects rows of a multi-tomogram file, or names it [default: the file's only tomogram, else the one named like the MRC].",
    ),
    tomograms_star: Path | None = typer.Option(
        None,
        "--tomograms-star",
        help="RELION 5 tomograms.star: tomogram sizes for centred coordinates (exact centres "
        "for binned tomograms).",
    ),
    edge: Edge = typer.Option("pad", "--edge", help="Boxes crossing the edge."),
    normalise: bool = typer.Option(
        True, "--normalise/--no-normalise", help="Zero mean, unit std per subtomogram."
    ),
    classes: str | None = typer.Option(
        None,
        "--classes",
        help="Comma-separated class names (order = label index; RELION rlnClassNumber k = the k-th name).",
    ),
    dtype: Literal["float32", "float16"] = typer.Option("float32", "--dtype", help="Store dtype."),
    check_finite: bool = typer.Option(
        False, "--check-finite", help="Scan the tomogram for NaN/Inf before extracting."
    ),
    batch_size: int = typer.Option(
        EXTRACT_BATCH_SIZE, "--batch-size", min=1, help="Subtomograms per batch."
    ),
    compression_level: int = typer.Option(
        EXTRACT_COMPRESSION_LEVEL,
        "--compression-level",
        min=0,
        max=9,
        help="gzip level of the store (0 = fastest; noisy data compresses little).",
    ),
    odd: Path | None = typer.Option(
        None,
        "--odd",
        help="The tomogram's odd half tomogram (with --even): each box is cut from both halves "
        "too and stored as the sample's half pair, the views 'cryoal pretrain' pairs.",
    ),
    even: Path | None = typer.Option(None, "--even", help="The even half tomogram."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Cut subtomograms around coordinates from a tomogram into an HDF5 store."""
    from cryoal.cli.progress import CountProgress
    from cryoal.data.extract import extract_to_store
    from cryoal.io.atomic import check_can_write
    from cryoal.io.coords import TomogramGeometry, read_coords, read_tomograms_star
    from cryoal.io.mrc import open_tomogram
    from cryoal.io.store import SubtomogramStore

    if (odd is None) != (even is None):
        raise typer.BadParameter("give both --odd and --even (the two half tomograms), or neither")
    check_can_write(out, overwrite)
    with open_tomogram(tomogram, voxel_size_A=voxel_size) as t:
        geometry = TomogramGeometry(t.shape, t.voxel_size_A)
    tid = _choose_tomo_id(coords, tomogram, tomo_id)
    class_names = [c.strip() for c in classes.split(",") if c.strip()] if classes else ()
    table = read_coords(
        coords,
        unit=coords_unit,
        tomo_id=tid,
        tomograms={tid: geometry},
        coords_pixel_size_A=coords_pixel_size,
        class_names=class_names or None,  # names RELION rlnClassNumber k as class k-1
        tomogram_sizes_A=read_tomograms_star(tomograms_star) if tomograms_star else None,
    )
    if table.empty:
        raise ValueError(_no_coordinates(coords, tid if tomo_id is not None else None))
    with CountProgress("extracting", len(table), enabled=progress) as bar:
        extract_to_store(
            tomogram,
            table,
            out,
            box,
            edge=edge,
            normalise=normalise,
            class_names=class_names,
            overwrite=overwrite,
            voxel_size_A=voxel_size,
            check_finite=check_finite,
            dtype=dtype,
            batch_size=batch_size,
            compression_level=compression_level,
            progress=bar,
            halves=None if odd is None or even is None else {tid: (odd, even)},
        )
    with SubtomogramStore(out) as s:
        n, vs, names = len(s), s.voxel_size_A, s.class_names
    skipped = len(table) - n
    typer.echo(
        f"wrote {n} subtomograms ({box}^3 at {vs:g} Å) of tomogram {tid!r} to {out}"
        + (f"; skipped {skipped} at the edge" if skipped else "")
        + (f"; classes: {', '.join(names)}" if names else "")
    )


# --------------------------------------------------------------------------------------
# convert-coords
# --------------------------------------------------------------------------------------
def _geometries(
    tomograms: list[Path], voxel_size: float | None, names: list[str]
) -> dict[str, TomogramGeometry]:
    from cryoal.io.coords import TomogramGeometry
    from cryoal.io.mrc import open_tomogram

    out: dict[str, TomogramGeometry] = {}
    for path in tomograms:
        with open_tomogram(path, voxel_size_A=voxel_size) as t:
            out[path.stem] = TomogramGeometry(t.shape, t.voxel_size_A)
    if len(tomograms) == 1 and len(names) == 1 and names[0] not in out:
        out[names[0]] = out[tomograms[0].stem]
    return out


def convert_coords(
    source: Path = typer.Argument(..., help="Input coordinates (.star, .csv, .json)."),
    target: Path = typer.Argument(..., help="Output coordinates (.star, .csv, .json)."),
    to: Target | None = typer.Option(
        None,
        "--format",
        "--to",
        help="Output format (as in 'labels export --format') [default: from the suffix; "
        ".star = star4, .csv, .json = copick].",
    ),
    coords_unit: Unit | None = typer.Option(
        None,
        "--coords-unit",
        help="Unit of input CSV x, y, z [default: from the column names x_A, x_px].",
    ),
    out_unit: Unit = typer.Option("angstrom", "--out-unit", help="Unit of output CSV."),
    tomogram: list[Path] = typer.Option(
        [],
        "--tomogram",
        help="Tomogram MRC giving size and voxel size (repeat per tomogram; id = file stem).",
    ),
    voxel_size: float | None = typer.Option(
        None, "--voxel-size", help="Tomogram voxel size (Å) [default: from --tomogram]."
    ),
    coords_pixel_size: float | None = typer.Option(
        None,
        "--coords-pixel-size",
        help="Pixel size (Å) of input pixel coordinates [default: rlnTomoTiltSeriesPixelSize, else the tomogram's voxel size].",
    ),
    out_pixel_size: float | None = typer.Option(
        None,
        "--out-pixel-size",
        help="STAR output: unbinned tilt-series pixel size (Å), written as "
        "rlnTomoTiltSeriesPixelSize; star4 pixels are in it [default: the tomogram voxel size].",
    ),
    tomo_id: str | None = typer.Option(None, "--tomo-id", help="Select / name the tomogram."),
    tomograms_star: Path | None = typer.Option(
        None,
        "--tomograms-star",
        help="RELION 5 tomograms.star: tomogram sizes for centred coordinates (then "
        "--voxel-size is enough, no --tomogram needed).",
    ),
    object_name: str | None = typer.Option(
        None,
        "--object-name",
        help="copick pickable object name [default: the only class in the input].",
    ),
    user_id: str = typer.Option("cryoal", "--user-id", help="copick user id."),
    session_id: str = typer.Option("0", "--session-id", help="copick session id."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace TARGET if it exists."),
) -> None:
    """Convert coordinates between RELION 4/5 STAR, CSV and copick JSON."""
    from cryoal.io.atomic import check_can_write
    from cryoal.io.coords import (
        read_coords,
        read_tomograms_star,
        scan_coords,
        write_copick_picks,
        write_csv,
        write_star,
    )

    fmt = to or {".star": "star4", ".csv": "csv", ".json": "copick"}.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"{target}: cannot tell the output format from the suffix; pass --format")
    check_can_write(target, overwrite)
    raw = scan_coords(source)
    names = sorted(set(raw.tomo_names.tolist())) if raw.tomo_names is not None else []
    if raw.tomo_names is None and tomo_id is None and len(tomogram) == 1:
        tomo_id = tomogram[0].stem  # an unnamed file given with one tomogram belongs to it
    if tomo_id is None and len(tomogram) == 1 and len(names) == 1:
        _warn_other_tomogram(source, names[0], tomogram[0])
    geoms = _geometries(tomogram, voxel_size, names if tomo_id is None else [tomo_id])
    table = read_coords(
        source,
        unit=coords_unit,
        tomo_id=tomo_id,
        voxel_size_A=voxel_size,
        tomograms=geoms,
        coords_pixel_size_A=coords_pixel_size,
        tomogram_sizes_A=read_tomograms_star(tomograms_star) if tomograms_star else None,
    )
    if fmt in ("star4", "star5"):
        write_star(
            table,
            target,
            voxel_size_A=voxel_size,
            version=4 if fmt == "star4" else 5,
            tomograms=geoms,
            coords_pixel_size_A=out_pixel_size,
            overwrite=overwrite,
        )
    elif fmt == "csv":
        write_csv(
            table,
            target,
            unit=out_unit,
            voxel_size_A=voxel_size,
            tomograms=geoms,
            overwrite=overwrite,
        )
    else:
        if object_name is None:
            classes = sorted(set(table["class_name"])) if "class_name" in table else []
            if len(classes) != 1:
                raise ValueError(f"{target}: copick picks need one object name; pass --object-name")
            object_name = classes[0]
        write_copick_picks(
            table,
            target,
            voxel_size_A=voxel_size,
            object_name=object_name,
            user_id=user_id,
            session_id=session_id,
            tomograms=geoms,
            overwrite=overwrite,
        )
    typer.echo(f"wrote {len(table)} coordinates ({fmt}) to {target}")


def register(app: typer.Typer) -> None:
    """Add the I/O commands to the ``cryoal`` app."""
    app.command("info")(info)
    app.command("extract")(extract)
    app.command("convert-coords")(convert_coords)
