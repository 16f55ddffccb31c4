"""The benchmark's dataset: simulated once (or opened), split into a pool and a test set."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cryoal.benchmark.config import TEMPLATES_ENV, BenchmarkConfig, DataConfig
from cryoal.io.atomic import atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.progress import CountCallback


def prepare_data(
    cfg: BenchmarkConfig, out_dir: Path, progress: CountCallback | None = None
) -> tuple[Path, np.ndarray, np.ndarray]:
    """Simulate (once) or open the dataset; return its path, pool rows and test rows.

    The split is stratified by class and fixed by ``data.seed``, or, for crops of simulated
    tomograms (``data.tomograms``), by tomogram (:func:`cryoal.benchmark.tomograms.tomogram_split`,
    recorded in ``data/split.json``): every strategy and seed sees the same pool and the
    same test set.
    """
    d = cfg.data
    if d.store is not None:
        path = Path(d.store)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: benchmark store not found; check data.store")
    else:
        path = out_dir / "data" / "dataset.h5"
        spec = d.model_dump(mode="json")
        spec_path = out_dir / "data" / "dataset.json"
        if path.exists():
            if spec_path.exists() and not _same_spec(json.loads(spec_path.read_text()), spec):
                raise ValueError(
                    f"{path}: was simulated with different data settings; use a new --out folder"
                )
        elif d.tomograms is not None:
            from cryoal.benchmark.tomograms import simulate_crops

            if cfg.preset == "cpu-seg" and d.templates is None:
                raise ValueError(
                    "the cpu-seg preset simulates from template maps: pass --templates DIR (a "
                    f"folder of density maps, e.g. the 10 SHREC maps at 10 Å) or set ${TEMPLATES_ENV}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            simulate_crops(d, path, progress=progress)
            atomic_write_text(spec_path, json.dumps(spec, indent=1))
        else:
            from cryoal.sim.subtomograms import simulate_subtomograms

            if cfg.preset == "cpu" and d.templates is None:
                raise ValueError(
                    "the cpu preset simulates from template maps: pass --templates DIR (a folder "
                    f"of density maps, e.g. the 10 SHREC maps at 10 Å) or set ${TEMPLATES_ENV}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            simulate_subtomograms(
                path,
                templates=d.templates,
                n_classes=d.n_classes,
                per_class=d.per_class,
                box=d.box,
                voxel_size_A=d.voxel_size_A,
                snr=d.snr,
                tilt_range=d.tilt_range,
                seed=d.seed,
                halves=d.halves,
                progress=progress,
            )
            atomic_write_text(spec_path, json.dumps(spec, indent=1))
    store = SubtomogramStore(path)
    labels = store.labels
    if (labels < 0).any():
        raise ValueError(
            f"{path}: {int((labels < 0).sum())} samples have no label; the benchmark needs ground truth"
        )
    if d.tomograms is not None:
        from cryoal.benchmark.tomograms import SPLIT_FILE, tomogram_split

        pool, test = tomogram_split(store, d.tomograms.test, path.parent / SPLIT_FILE)
        return path, pool, test
    if cfg.task == "segment" and not store.has_masks:
        raise ValueError(f"{path}: train.task segment needs a store with /masks")
    pool, test = split_pool_test(
        store.ids.astype(str), labels, d.test_size, d.pool_size, d.seed, d.pool_imbalance
    )
    return path, pool, test


def long_tail_shares(n_classes: int, imbalance: float) -> np.ndarray:
    """Class shares of a long-tailed pool, shape (n_classes,), summing to 1.

    Class ``k`` (in label order) gets a share ∝ ``imbalance ** (-k / (n_classes - 1))``: an
    exponential profile from the most frequent class 0 to class ``n_classes - 1``, which is
    ``imbalance`` times rarer (the long-tailed protocol of Cui et al., CVPR 2019).
    ``imbalance = 1`` gives equal shares.
    """
    if n_classes < 2:
        return np.ones(n_classes)
    weights = float(imbalance) ** (-np.arange(n_classes) / (n_classes - 1))
    return weights / weights.sum()


def rarer_half(n_classes: int) -> slice:
    """The rarer half of a long-tailed pool's classes, as a slice of the label order (the
    middle class of an odd number counts as frequent)."""
    return slice(n_classes - n_classes // 2, None)


def split_pool_test(
    ids: np.ndarray,
    labels: np.ndarray,
    test_size: int | float,
    pool_size: int | None,
    seed: int,
    pool_imbalance: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split store rows into ``(pool, test)``, deterministic given ``seed``.

    The test set is stratified (it keeps the store's class proportions). The pool is
    stratified too when ``pool_imbalance`` is 1; otherwise its classes follow
    :func:`long_tail_shares`, and ``pool_size=None`` means the largest such pool the rows
    left after the test set allow.

    Raises
    ------
    ValueError
        The sizes exceed the samples, or a class has too few samples for its share.
    """
    from cryoal.al.selectors import canonical_order, resolve_size

    n = ids.size
    n_test = resolve_size(test_size, n, "test_size")
    if n_test >= n:
        raise ValueError(f"test_size {test_size} leaves no pool out of {n} samples")
    order = canonical_order(ids)  # independent of the store's row order
    rng = np.random.default_rng(seed)
    perm = order[rng.permutation(n)]
    test = stratified_take(perm, labels, n_test)
    remaining = perm[~np.isin(perm, test)]
    if pool_imbalance == 1.0:
        n_pool = n - n_test if pool_size is None else int(pool_size)
        if n_pool + n_test > n:
            raise ValueError(
                f"pool_size {pool_size} + test {n_test} exceed the {n} samples available"
            )
        return np.sort(stratified_take(remaining, labels, n_pool)), np.sort(test)
    classes = np.unique(labels[remaining])
    shares = dict(zip(classes, long_tail_shares(classes.size, pool_imbalance), strict=True))
    available = {c: int((labels[remaining] == c).sum()) for c in classes}
    if pool_size is None:  # the largest pool with these shares
        n_pool = min(int(math.floor(available[c] / shares[c] + 1e-9)) for c in classes)
    else:
        n_pool = int(pool_size)
    short = [c for c in classes if math.floor(n_pool * shares[c]) > available[c]]
    if short:
        c = short[0]
        raise ValueError(
            f"pool_imbalance {pool_imbalance:g}: a pool of {n_pool} needs "
            f"{math.floor(n_pool * shares[c])} samples of class {c} but only {available[c]} are "
            "left after the test set; raise data.per_class or lower data.pool_size"
        )
    pool = stratified_take(remaining, labels, n_pool, shares)
    return np.sort(pool), np.sort(test)


def stratified_take(
    rows: np.ndarray, labels: np.ndarray, total: int, shares: dict[int, float] | None = None
) -> np.ndarray:
    """``total`` of ``rows`` with each class in proportion to its share.

    Largest-remainder allocation per class (never more than a class has), then the first
    rows of each class in the order given (shuffle ``rows`` first for a random stratified
    sample).

    Parameters
    ----------
    rows
        Candidate store rows, shape (N,), in the order to take them.
    labels
        Class of every store row, shape (store size,).
    total
        Rows to take (at most N).
    shares
        Target share of each class (summing to 1); default: its share of ``rows``.
    """
    classes = np.unique(labels[rows])
    counts = {c: int((labels[rows] == c).sum()) for c in classes}
    if shares is None:
        shares = {c: counts[c] / max(rows.size, 1) for c in classes}
    quota = {c: total * shares.get(c, 0.0) for c in classes}
    alloc = {c: min(counts[c], int(math.floor(quota[c]))) for c in classes}
    rest = total - sum(alloc.values())
    for c in sorted(classes, key=lambda c: (-(quota[c] - alloc[c]), c)):
        if rest <= 0:
            break
        if alloc[c] < counts[c]:
            alloc[c] += 1
            rest -= 1
    return np.concatenate([rows[labels[rows] == c][: alloc[c]] for c in classes])


def stratified_initial(
    store: SubtomogramStore, pool: np.ndarray, size: int | float, seed: int
) -> list[str]:
    """The round-0 labeled set of one seed: ids of a class-stratified random sample of the pool.

    Every strategy run with the same ``seed`` starts from this set (paired comparison).

    Parameters
    ----------
    store
        The benchmark store (ground-truth labels).
    pool
        Pool store rows, shape (N,).
    size
        Count, or fraction of the pool.
    seed
        Run seed.
    """
    from cryoal.al.acquire import subseed
    from cryoal.al.selectors import canonical_order, resolve_size

    ids = store.ids.astype(str)
    n = resolve_size(size, pool.size, "initial")
    order = pool[canonical_order(ids[pool])]
    shuffled = order[np.random.default_rng(subseed(seed, 0)).permutation(order.size)]
    rows = stratified_take(shuffled, store.labels, n)
    return sorted(ids[rows].tolist())


def _same_spec(recorded: dict[str, Any], spec: dict[str, Any]) -> bool:
    """The recorded data settings are ``spec``'s; a key added to the settings since the
    data were made counts as the same when ``spec`` holds its default."""
    defaults = DataConfig().model_dump(mode="json")
    return all(
        recorded[k] == v if k in recorded else v == defaults.get(k, object())
        for k, v in spec.items()
    ) and set(recorded) <= set(spec)
