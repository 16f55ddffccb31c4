"""Shards of a simulated subtomogram dataset: the ``K/N`` parts and their merge.

A shard ``K/N`` is the K-th of N contiguous parts of the dataset's sample index range
(:func:`parse_shard`, :func:`shard_range`); each shard store records its range in the
``sim_index_start`` / ``sim_index_stop`` attributes, and :func:`merge_shards` joins the
shards of one run into the same store that the unsharded run writes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryoal.io.atomic import check_can_write
from cryoal.io.store import StoreWriter, SubtomogramStore


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"K/N"`` or ``(K, N)`` -> ``(K, N)`` with ``0 <= K < N``; None stays None."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            k_str, n_str = shard.split("/")
            k, n = int(k_str), int(n_str)
        except ValueError:
            raise ValueError(f"shard {shard!r} must be K/N with 0 <= K < N (e.g. 0/4)") from None
    else:
        k, n = (int(v) for v in shard)
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n} must satisfy 0 <= K < N (e.g. 0/4)")
    return k, n


def shard_range(start: int, total: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Sample index range ``[lo, hi)`` of a shard of ``total`` samples starting at ``start``."""
    if shard is None:
        return start, start + total
    k, n = shard
    return start + total * k // n, start + total * (k + 1) // n


def merge_shards(
    out_h5: str | os.PathLike,
    shards: Sequence[str | os.PathLike],
    *,
    overwrite: bool = False,
    chunk: int = 256,
) -> Path:
    """Join shard stores of one simulated dataset into one store, in sample order.

    The shards must come from the same simulation settings and together cover one
    contiguous index range; the result equals what the unsharded run writes.

    Raises
    ------
    ValueError
        Shards from different simulations, overlapping, or with a gap.
    """
    out_h5 = Path(out_h5)
    check_can_write(out_h5, overwrite)
    if not shards:
        raise ValueError("no shard files given; pass the stores written with --shard K/N")
    stores = [SubtomogramStore(p) for p in shards]
    try:
        for s in stores:
            if "sim_index_start" not in s.extra_attrs:
                raise ValueError(f"{s.path}: not a simulated store (no sim_index_start attribute)")
        stores.sort(key=lambda s: int(s.extra_attrs["sim_index_start"]))
        ref = stores[0]
        varying = ("sim_index_start", "sim_index_stop")
        same = {k: v for k, v in ref.extra_attrs.items() if k not in varying}
        for s in stores[1:]:
            other = {k: v for k, v in s.extra_attrs.items() if k not in varying}
            if (
                other != same
                or s.box != ref.box
                or s.class_names != ref.class_names
                or s.has_masks != ref.has_masks
                or s.has_halves != ref.has_halves
            ):
                diff = sorted(k for k in set(same) | set(other) if same.get(k) != other.get(k))
                raise ValueError(
                    f"{s.path}: simulated with different settings than {ref.path} ({diff or 'box/classes/masks/halves'}); "
                    "merge only shards of one run"
                )
        for a, b in zip(stores, stores[1:], strict=False):
            stop, start = (
                int(a.extra_attrs["sim_index_stop"]),
                int(b.extra_attrs["sim_index_start"]),
            )
            if stop != start:
                kind = "overlap" if start < stop else "gap"
                raise ValueError(
                    f"shards {a.path} and {b.path} have a {kind} in sample indices ({stop} vs {start}); "
                    "pass every shard K/N of one run exactly once"
                )
        attrs = dict(same)
        attrs["sim_index_start"] = int(stores[0].extra_attrs["sim_index_start"])
        attrs["sim_index_stop"] = int(stores[-1].extra_attrs["sim_index_stop"])
        with StoreWriter(
            out_h5,
            ref.box,
            ref.voxel_size_A,
            ref.class_names,
            dtype=str(ref.dtype),
            with_masks=ref.has_masks,
            with_halves=ref.has_halves,
            extra_attrs=attrs,
            overwrite=overwrite,
        ) as writer:
            for s in stores:
                meta_all = {name: s.meta(name) for name in s.meta_names}
                for first in range(0, len(s), chunk):
                    sl = slice(first, min(first + chunk, len(s)))
                    writer.append(
                        s.subtomograms(sl),
                        list(s.ids[sl]),
                        labels=s.labels[sl],
                        masks=s.masks(sl) if s.has_masks else None,
                        meta={k: v[sl] for k, v in meta_all.items()},
                        halves=s.halves(sl) if s.has_halves else None,
                    )
    finally:
        for s in stores:
            s.close()
    return out_h5
