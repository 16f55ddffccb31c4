"""Generate a range of simulated samples in order, in batches, in worker processes.

:func:`iter_batches` yields the batches of samples ``lo..hi-1`` in sample order, from the
calling process or from a pool of ``spawn`` worker processes (each with its own
:class:`~cryoal.sim.subtomograms.simulator.Simulator`), with at most ``2 * workers``
batches in flight. Ctrl-C and SIGTERM stop the workers at once; the results do not depend
on the number of workers or the batch size.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Generator, Iterator

import numpy as np

from cryoal.sim.subtomograms.simulator import SimBatch, Simulator, SubtomogramParams
from cryoal.sim.templates import Template

_WORKER: dict[str, object] = {}


def _worker_init(
    templates: list[Template], params: SubtomogramParams, seed: int, outputs: dict[str, bool]
) -> None:
    import torch

    # Ctrl-C reaches the whole process group: the parent stops the pool, workers do not
    # each print a traceback. SIGTERM keeps its default (the parent may terminate them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    _WORKER["sim"] = Simulator(templates, params, seed)
    _WORKER["outputs"] = outputs


_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends (they are delivered right after).

    Submitting to the pool may start a worker; a signal in the middle of that would cut
    the start-up data the worker reads, and it would die with a traceback of its own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in _DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def _result(future: cf.Future[SimBatch]) -> SimBatch:
    """``future.result()``, waking up often: a signal that another thread receives only
    interrupts the main thread when it runs Python code (Ctrl-C must not wait a batch)."""
    while True:
        try:
            return future.result(timeout=0.1)
        except cf.TimeoutError:
            continue


def _worker_generate(indices: np.ndarray) -> SimBatch:
    sim = _WORKER["sim"]
    assert isinstance(sim, Simulator)
    outputs = _WORKER["outputs"]
    assert isinstance(outputs, dict)
    return sim.generate(indices, **outputs)


def _batches(lo: int, hi: int, batch_size: int) -> list[np.ndarray]:
    return [
        np.arange(s, min(s + batch_size, hi), dtype=np.int64) for s in range(lo, hi, batch_size)
    ]


def iter_batches(
    simulator: Simulator,
    lo: int,
    hi: int,
    *,
    batch_size: int = 64,
    masks: bool = False,
    halves: bool = False,
    workers: int = 1,
) -> Generator[SimBatch, None, None]:
    """Generate samples ``lo..hi-1`` in order, in batches, with ``workers`` processes
    (``masks``, ``halves``: as :meth:`Simulator.generate`).

    Memory stays bounded: at most ``2 * workers`` batches are in flight.
    """
    chunks = _batches(lo, hi, batch_size)
    outputs = {"masks": masks, "halves": halves}
    if workers <= 1:
        for chunk in chunks:
            yield simulator.generate(chunk, **outputs)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(simulator.bank.templates, simulator.params, simulator.seed, outputs),
    )
    finished = False
    try:
        pending: deque[cf.Future[SimBatch]] = deque()
        it = iter(chunks)
        for chunk in it:
            with _signals_deferred():
                pending.append(pool.submit(_worker_generate, chunk))
            if len(pending) >= 2 * workers:
                break
        while pending:
            batch = _result(pending.popleft())
            nxt = next(it, None)
            if nxt is not None:
                with _signals_deferred():
                    pending.append(pool.submit(_worker_generate, nxt))
            yield batch
        finished = True
    finally:
        # Interrupted (Ctrl-C, SIGTERM, an error, the consumer stopped): drop queued
        # batches and stop the workers now instead of waiting for them.
        workers_started = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=finished, cancel_futures=not finished)
        if not finished:
            for proc in workers_started:
                proc.terminate()
            for proc in workers_started:
                proc.join(timeout=5)
