"""One call from trained models to the next batch of candidates to label.

:func:`acquire` is what ``cryoal suggest``, the AL engine, the benchmark and the napari
plugin use: it optionally draws a random pre-subset of the unlabeled pool, streams those
candidates through the models in fixed-size batches (:func:`cryoal.train.predict.
stream_outputs`), turns the outputs into scores with the pure heuristics of
:mod:`cryoal.al.heuristics` / :mod:`cryoal.al.gradnorm`, and picks ``k`` candidates with the
selectors of :mod:`cryoal.al.selectors`. Memory is bounded by the batch plus what the
strategy needs per candidate (one score; the teacher's ``C`` logits, for the score table and
probability-space selection; ``F`` features for feature-space selection). What each
strategy needs and how it scores or selects is read from :mod:`cryoal.al.registry`; nothing
here names a strategy.

The package's modules, one job each:

* :mod:`cryoal.al.acquire.pipeline`: :func:`acquire`, from its inputs' checks through
  scoring to selection;
* :mod:`cryoal.al.acquire.scoring`: the candidates a strategy scores
  (:func:`candidate_rows`), scoring shards (:func:`shard_range`) and
  :func:`score_candidates` -> :class:`ScoreTable`;
* :mod:`cryoal.al.acquire.stream`: candidates through the models batch by batch, keeping
  only the outputs scoring and selection need;
* :mod:`cryoal.al.acquire.selection`: :func:`select_scored`, ``k`` picks from a
  :class:`ScoreTable`;
* :mod:`cryoal.al.acquire.result`: :class:`Acquisition`, the result of one acquisition;
* :mod:`cryoal.al.acquire.seeds`: :func:`subseed`, the seeds of the random draws.

Every public name is importable from ``cryoal.al.acquire``.
"""

from __future__ import annotations

from cryoal.al.acquire.pipeline import acquire
from cryoal.al.acquire.result import Acquisition
from cryoal.al.acquire.scoring import ScoreTable, candidate_rows, score_candidates, shard_range
from cryoal.al.acquire.seeds import subseed
from cryoal.al.acquire.selection import select_scored

__all__ = [
    "Acquisition",
    "ScoreTable",
    "acquire",
    "candidate_rows",
    "score_candidates",
    "select_scored",
    "shard_range",
    "subseed",
]
