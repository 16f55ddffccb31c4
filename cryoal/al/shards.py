"""Sharded scoring: score files of candidate slices, and their merge.

A large pool is scored by N independent jobs (a SLURM job array): shard ``i`` scores the
``i``-th contiguous run of whole micro-batches of the id-sorted candidates
(:func:`cryoal.al.acquire.shard_range`) and writes one HDF5 file::

    /ids (n,) str            /rows (n,) int64          /predicted (n,) int64
    /scores (n,) float64     [not for coreset, pcoreset, badge]
    /teacher_logits (n, C) float32 [the score table's probabilities]
    /student_logits (n, C) float32, /features (n, F) float32
                             [only those the strategy's selection needs]
    attrs: meta (JSON): shard, n_shards, n_candidates, candidates_sha256, strategy, seed,
           batch_size, model_version, format

The merge reads every shard of a run, checks that they belong together (same candidate
list, strategy, seed, micro-batch size and model) and that every candidate appears exactly
once, and returns one :class:`~cryoal.al.acquire.ScoreTable` that selection treats exactly
as the single-process one (the scores are bitwise equal: see ``shard_range``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cryoal.al.acquire import ScoreTable
from cryoal.io.atomic import atomic_path

FORMAT = "cryoal-score-shard/1"
_STR = h5py.string_dtype(encoding="utf-8")

#: Metadata fields every shard of one run must share.
SHARED_META = ("n_shards", "n_candidates", "candidates_sha256", "strategy", "seed", "batch_size",
               "model_version")  # fmt: skip


def candidates_sha256(ids: Sequence[str] | np.ndarray) -> str:
    """SHA-256 of the id-sorted candidate list (which candidates a run scores)."""
    return hashlib.sha256("\x1f".join(map(str, ids)).encode()).hexdigest()


def shard_name(shard: int, n_shards: int) -> str:
    """``shard-002-of-004.h5``."""
    return f"shard-{shard:03d}-of-{n_shards:03d}.h5"


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)`` (0-based shard index, number of shards)."""
    i, sep, n = text.partition("/")
    try:
        shard, n_shards = int(i), int(n)
    except ValueError:
        shard, n_shards = -1, 0
    if not sep or n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4")
    return shard, n_shards


def write_shard(path: str | os.PathLike, table: ScoreTable, meta: dict[str, Any]) -> Path:
    """Write one shard atomically (replacing an earlier attempt of the same shard)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("ids", data=table.ids.astype(object), dtype=_STR)
        f.create_dataset("rows", data=table.rows.astype(np.int64))
        for name in ScoreTable.ARRAYS:
            value = getattr(table, name)
            if value is not None:
                f.create_dataset(name, data=value)
        f.attrs["meta"] = json.dumps({"format": FORMAT, **meta}, sort_keys=True)
    return path


def read_shard(path: str | os.PathLike) -> tuple[ScoreTable, dict[str, Any]]:
    """One shard's table and metadata."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            meta = json.loads(f.attrs["meta"])
            arrays = {name: f[name][()] for name in ScoreTable.ARRAYS if name in f}
            ids = f["ids"].asstr()[()]
            rows = f["rows"][()]
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable score shard ({exc}); score it again") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    table = ScoreTable(ids=np.asarray(ids, dtype=str), rows=rows, **arrays)
    return table, meta


def merge_shards(paths: Sequence[Path], expected_ids: np.ndarray, expected_sha: str) -> ScoreTable:
    """Join shard files into the table of all candidates, checking coverage.

    Parameters
    ----------
    paths
        The shard files.
    expected_ids
        ``(n,)`` id-sorted candidates the run must cover.
    expected_sha
        :func:`candidates_sha256` of ``expected_ids``.

    Raises
    ------
    ValueError
        No shards, shards of different runs (strategy, seed, micro-batch, model, candidate
        list), a shard file missing (even one whose slice is empty), or ids missing or
        duplicated (one line naming ids and shard files).
    """
    if not paths:
        raise ValueError("no score shards to merge; run the scoring shards first (--shard I/N)")
    loaded = [(Path(p), *read_shard(p)) for p in sorted(paths)]
    first = loaded[0][2]
    for path, _, meta in loaded[1:]:
        diff = [k for k in SHARED_META if meta.get(k) != first.get(k)]
        if diff:
            raise ValueError(
                f"{path}: differs from {loaded[0][0].name} in {', '.join(diff)}; the shards "
                "belong to different scoring runs (delete the stale files and rescore)"
            )
    if first["candidates_sha256"] != expected_sha:
        raise ValueError(
            f"{loaded[0][0].parent}: the shards scored another candidate list (labels or "
            "candidates changed since scoring); score the shards again"
        )
    n_shards = int(first["n_shards"])
    present = {int(meta["shard"]) for _, _, meta in loaded}
    absent = [shard_name(i, n_shards) for i in range(n_shards) if i not in present]
    owner: dict[str, str] = {}
    duplicated: list[str] = []
    for path, table, _ in loaded:
        for cid in table.ids.tolist():
            if cid in owner:
                duplicated.append(f"{cid} ({owner[cid]} and {path.name})")
            else:
                owner[cid] = path.name
    if duplicated:
        raise ValueError(
            f"{len(duplicated)} candidate id(s) appear in more than one shard: "
            f"{', '.join(duplicated[:5])}{' ...' if len(duplicated) > 5 else ''}"
        )
    missing = [cid for cid in expected_ids.tolist() if cid not in owner]
    if missing or absent:
        raise ValueError(
            f"{len(missing)} candidate id(s) have no score"
            f"{': ' + ', '.join(missing[:5]) if missing else ''}{' ...' if len(missing) > 5 else ''}"
            f" (missing shard files: {', '.join(absent) or 'none'}); rerun the missing shards"
        )
    merged = ScoreTable.concat([t for _, t, _ in loaded])
    order = np.argsort(merged.ids, kind="stable")
    if not np.array_equal(merged.ids[order], expected_ids):  # extra ids (not candidates)
        raise ValueError("the shards hold ids that are not candidates of this run; rescore")
    return _take(merged, order)


def _take(table: ScoreTable, order: np.ndarray) -> ScoreTable:
    kw: dict[str, Any] = {
        name: None if getattr(table, name) is None else getattr(table, name)[order]
        for name in ScoreTable.ARRAYS
    }
    return ScoreTable(ids=table.ids[order], rows=table.rows[order], **kw)
