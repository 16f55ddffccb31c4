"""The active-learning loop: label -> train -> evaluate -> score and select -> label ...

:class:`ALEngine` keeps the pool state keyed by candidate id (which ids are labeled, with
which class and in which round) in ``OUT/state.json``, and advances one *step* at a time:

``label``
    ask the oracle for the pending ids; answered ids join the labeled set with the round
    they were requested in (a human oracle may answer only some: the rest stay pending);
``train``
    train teacher (and student, if the strategy needs one) on the labeled set into
    ``OUT/cycles/cycle_NN`` with :func:`cryoal.al.round.train_round` (training number
    ``NN``, the call projects make too), from scratch or warm-started from the previous
    cycle; evaluate on the held-out test rows;
``select``
    score the unlabeled pool and choose the next batch with :func:`cryoal.al.acquire`;
    the full score table goes to ``OUT/cycles/cycle_NN/scores.csv``
    (:mod:`cryoal.al.score_table`).

The state is written atomically after every step, so a run killed at any moment resumes
at the step it was in: a half-trained cycle is retrained from scratch (training is seeded),
a half-finished selection is redone (selection is seeded), and the result is the same as
an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryoal.al.ledger import EngineLedger, in_cold_start, round_name
from cryoal.al.oracle import Oracle
from cryoal.al.round import initial_round, round_embedding, select_round, train_round
from cryoal.al.selectors import resolve_size
from cryoal.al.strategies import StrategyConfig
from cryoal.io.atomic import atomic_write_text
from cryoal.io.store import SubtomogramStore
from cryoal.train.config import TrainConfig

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
STATE_FILE = "state.json"
#: Test metrics a segmentation cycle records (foreground Dice and IoU from the summed
#: voxel confusion counts of the test crops: per class, their mean and worst class).
SEGMENT_METRICS = ("dice", "iou", "mean_dice", "worst_dice", "mean_iou", "worst_iou")
Phase = Literal["label", "train", "select", "done"]


class Schedule(BaseModel):
    """How many labels each training of an AL run has: ``initial``, then ``per_cycle`` more
    for ``n_cycles`` trainings, or the list ``budgets``. Sizes are counts (int) or
    fractions (float in (0, 1]) of the *initial* unlabeled pool."""

    model_config = ConfigDict(extra="forbid")

    initial: int | float = Field(0.1, description="round-0 labeled set (count or pool fraction)")
    per_cycle: int | float = Field(0.05, description="labels per cycle (count or pool fraction)")
    n_cycles: int = Field(7, ge=1, description="training cycles (acquisitions = n_cycles - 1)")
    budgets: list[int] | None = Field(
        None,
        description="labelled-set size at each training, e.g. [50, 100, 200, 300]: replaces "
        "initial (the first), per_cycle (the differences) and n_cycles (the length)",
    )

    @field_validator("budgets")
    @classmethod
    def _check_budgets(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            check_budgets(value)
        return value

    @model_validator(mode="after")
    def _budgets(self) -> Schedule:
        if self.budgets is not None:
            self.initial, self.n_cycles = self.budgets[0], len(self.budgets)
        return self

    def batch_size_of(self, cycle: int, pool_size: int) -> int:
        """Labels acquired after training ``cycle`` (0-based), for a pool of ``pool_size``."""
        if self.budgets is not None:
            return self.budgets[cycle + 1] - self.budgets[cycle]
        return resolve_size(self.per_cycle, pool_size, "per_cycle")


class EngineConfig(Schedule):
    """Schedule and settings of one AL run (one strategy, one seed).

    Sizes are counts (int) or fractions (float in (0, 1]) of the *initial* unlabeled pool,
    so ``initial=0.1, per_cycle=0.05, n_cycles=7`` is the papers' 10 % -> 40 % schedule.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    warm_start: bool = Field(False, description="initialise each cycle from the previous one")
    warm_start_steps: int | None = Field(
        None,
        ge=1,
        description="warm_start: optimizer steps of each warm-started cycle (rounded up to whole "
        "epochs); default: the training's own steps or epochs",
    )
    seed: int = Field(0, description="seed of the initial set, training and selection")
    batch_size: int = Field(64, ge=1, description="samples per forward pass when scoring")
    device: str = Field("cpu", description="cpu, cuda or auto")
    evaluate: Literal["teacher", "student"] = Field(
        "teacher",
        description="the network whose test metrics each cycle records: the teacher, or the "
        "trained student (where the student is the model a lab keeps, as in ActiveKD)",
    )

    @model_validator(mode="after")
    def _student_to_evaluate(self) -> EngineConfig:
        if self.evaluate == "student" and self.train.student != "trained":
            raise ValueError(
                f"evaluate: student needs a trained student; train.student is "
                f"{self.train.student!r}: set it to trained or evaluate the teacher"
            )
        return self


def check_budgets(budgets: Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``budgets`` is a strictly increasing list of positive counts."""
    if not budgets:
        raise ValueError("budgets is empty; give the labelled-set size of every training")
    if budgets[0] < 1 or any(b <= a for a, b in zip(budgets, budgets[1:], strict=False)):
        raise ValueError(
            f"budgets {list(budgets)} must be positive and strictly increasing, e.g. [50, 100, 200]"
        )


def _digest(ids: Sequence[str] | np.ndarray) -> str:
    h = hashlib.sha256()
    for i in sorted(str(x) for x in ids):
        h.update(i.encode())
        h.update(b"\0")
    return h.hexdigest()


class ALEngine:
    """Run (or resume) an active-learning loop in ``out_dir``.

    Parameters
    ----------
    store
        Subtomogram store with every candidate (pool and test).
    oracle
        Answers label requests (:class:`~cryoal.al.oracle.SimulatedOracle` or a human one).
    config
        :class:`EngineConfig`.
    out_dir
        Run folder: ``state.json`` and ``cycles/cycle_NN/`` training runs. An existing
        folder with a state is resumed; its configuration and pool must match.
    pool_indices
        Store rows the engine may ask about (default: every row not in ``test_indices``).
    test_indices
        Held-out store rows with ground-truth labels, evaluated after every training.
    on_batch
        Progress callback passed to :func:`~cryoal.al.acquire.acquire`.
    on_step
        Called with the state after every step (progress bars).
    initial_ids
        The round-0 labeled set (pool ids), e.g. a class-stratified one; default: a random
        ``config.initial`` of the pool, drawn with the run's seed.

    Raises
    ------
    ValueError
        A resumed folder whose configuration, pool or test set differ.
    """

    def __init__(
        self,
        store: SubtomogramStore,
        oracle: Oracle,
        config: EngineConfig,
        out_dir: str | os.PathLike,
        *,
        pool_indices: Sequence[int] | np.ndarray | None = None,
        test_indices: Sequence[int] | np.ndarray = (),
        on_batch: Callable[[int], None] | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        initial_ids: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.oracle = oracle
        self.config = config
        self.out_dir = Path(out_dir)
        self.test_indices = np.asarray(test_indices, np.int64).reshape(-1)
        if pool_indices is None:
            mask = np.ones(len(store), bool)
            mask[self.test_indices] = False
            pool_indices = np.flatnonzero(mask)
        self.pool_indices = np.asarray(pool_indices, np.int64).reshape(-1)
        if np.intersect1d(self.pool_indices, self.test_indices).size:
            raise ValueError("pool and test rows overlap; the test set must be held out")
        self.pool_ids = np.asarray(store.ids[self.pool_indices]).astype(str)
        self._row_of = dict(zip(self.pool_ids.tolist(), self.pool_indices.tolist(), strict=True))
        self.on_batch = on_batch
        self.on_step = on_step
        self.class_names = list(store.class_names)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state = self._load_or_init(initial_ids)

    # -- state ------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    def _config_json(self, config: EngineConfig | None = None) -> dict[str, Any]:
        """The configuration that determines the results (device and workers left out; a
        pretrained encoder by its folder's name, the key of its pool and settings, so that
        a moved run folder resumes)."""
        data = (config or self.config).model_dump(mode="json")
        data["train"] = {
            k: v for k, v in data["train"].items() if k not in ("device", "num_workers")
        }
        if data["train"].get("encoder"):
            data["train"]["encoder"] = Path(data["train"]["encoder"]).name
        data.pop("device")
        return data

    def _same_config(self, saved: dict[str, Any]) -> bool:
        """Saved and current configuration agree (fields added since then take defaults)."""
        try:
            again = EngineConfig.model_validate(saved)
        except ValueError:
            return False
        return self._config_json(again) == self._config_json()

    def _load_or_init(self, initial_ids: Sequence[str] | None) -> dict[str, Any]:
        cfg = self._config_json()
        pool_digest = _digest(self.pool_ids)
        test_digest = _digest(np.asarray(self.store.ids[self.test_indices]).astype(str))
        if self.state_path.exists():
            try:
                saved: dict[str, Any] = json.loads(self.state_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(
                    f"{self.state_path}: unreadable AL state ({exc}); use a new folder"
                ) from exc
            if not self._same_config(saved.get("config") or {}):
                raise ValueError(
                    f"{self.state_path}: this folder holds a run with a different configuration; "
                    "use a new output folder (or delete this one) to start a new run"
                )
            given = None if initial_ids is None else _digest(initial_ids)
            if given is not None and saved.get("initial_digest") not in (None, given):
                raise ValueError(
                    f"{self.state_path}: this run started from another initial labeled set; "
                    "use a new output folder"
                )
            if saved.get("pool_digest") != pool_digest or saved.get("test_digest") != test_digest:
                raise ValueError(
                    f"{self.state_path}: the pool or test set differs from the one this run started "
                    "with; use a new output folder"
                )
            logger.info(
                "resuming %s at cycle %d, step %s", self.out_dir, saved["cycle"], saved["phase"]
            )
            return saved
        n0 = self.pool_ids.size
        if initial_ids is None:
            n_init = resolve_size(self.config.initial, n0, "initial")
            method = self.config.strategy.round0
            features = None
            if method == "typical":
                embed = round_embedding(
                    self.config.strategy,
                    self.config.train.encoder,
                    self.store,
                    batch_size=self.config.batch_size,
                    device=self.config.device,
                    round0=True,
                )
                features = embed(np.array([self._row_of[i] for i in self.pool_ids], np.int64))
            picks = initial_round(
                method, self.pool_ids, n_init, self.config.seed, features=features
            )
            first_ids = self.pool_ids[picks]
            how = f"initial-{method}"
        else:
            first_ids = np.unique(np.asarray(initial_ids, dtype=str))
            unknown = [i for i in first_ids.tolist() if i not in self._row_of]
            if unknown:
                raise ValueError(
                    f"initial id {unknown[0]!r} is not in the pool ({len(unknown)} such ids); "
                    "give ids of pool candidates"
                )
            how = "initial-given"
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "config": cfg,
            "pool_digest": pool_digest,
            "test_digest": test_digest,
            "initial_digest": _digest(first_ids.tolist()),
            "pool_size": int(n0),
            "cycle": 0,
            "phase": "label",
            "labels": {},
            "pending": {
                "round": 0,
                "strategy": how,
                "ids": sorted(first_ids.tolist()),
                "predicted": [-1] * int(first_ids.size),
            },
            "batches": [],
            "history": [],
        }
        self._save(state)
        return state

    def _save(self, state: dict[str, Any] | None = None) -> None:
        atomic_write_text(
            self.state_path, json.dumps(state or self.state, indent=1), overwrite=True
        )

    @property
    def phase(self) -> Phase:
        return self.state["phase"]

    @property
    def done(self) -> bool:
        return self.state["phase"] == "done"

    @property
    def ledger(self) -> EngineLedger:
        """The run's labels and rounds (:class:`cryoal.al.ledger.Ledger`)."""
        return EngineLedger(self.state)

    def labeled(self) -> tuple[np.ndarray, np.ndarray]:
        """Store rows and classes of the labeled set, sorted by id."""
        ids, classes = self.ledger.labelled()
        return np.array([self._row_of[i] for i in ids.tolist()], np.int64), classes

    # -- steps ------------------------------------------------------------------------
    def step(self) -> Phase | Literal["waiting"]:
        """Do one step and save the state; returns the new phase or ``"waiting"``."""
        phase = self.state["phase"]
        if phase == "label":
            result = self._step_label()
        elif phase == "train":
            result = self._step_train()
        elif phase == "select":
            result = self._step_select()
        else:
            return "done"
        if self.on_step:
            self.on_step(self.state)
        return result

    def run(self, max_steps: int | None = None) -> dict[str, Any]:
        """Step until done, until the oracle has no answer yet, or ``max_steps`` steps."""
        n = 0
        while not self.done and (max_steps is None or n < max_steps):
            if self.step() == "waiting":
                break
            n += 1
        return self.state

    def _step_label(self) -> Phase | Literal["waiting"]:
        pending = self.state["pending"]
        ids = [i for i in pending["ids"] if i not in self.state["labels"]]
        answers = self.oracle.label(ids) if ids else {}
        for i, c in answers.items():
            if i not in self._row_of:
                raise ValueError(f"oracle answered id {i!r}, which is not in the pool")
            if not 0 <= int(c) < len(self.class_names):
                raise ValueError(
                    f"oracle gave class {c} for {i!r}; classes are 0..{len(self.class_names) - 1}"
                )
            self.state["labels"][i] = [int(c), int(pending["round"])]
        if any(i not in self.state["labels"] for i in pending["ids"]):
            self._save()
            return "waiting"
        truth = [self.state["labels"][i][0] for i in pending["ids"]]
        counts = np.bincount(truth, minlength=len(self.class_names)) if truth else np.zeros(0)
        pred = np.asarray(pending["predicted"], np.int64)
        classify = self.config.train.task == "classify"  # a segmenter predicts no crop class
        batch_acc = (
            float((pred == np.asarray(truth)).mean())
            if classify and truth and (pred >= 0).all()
            else None
        )
        batch: dict[str, Any] = {
            "round": int(pending["round"]),
            "strategy": pending["strategy"],
            "n": len(truth),
            "class_counts": {n: int(c) for n, c in zip(self.class_names, counts, strict=True)},
            "teacher_accuracy": batch_acc,
        }
        if self._edit_costs:
            batch["cost"] = self._batch_cost(pending)
        self.state["batches"].append(batch)
        self.state["pending"] = None
        self.state["phase"] = "train"
        self._save()
        return "train"

    @property
    def _edit_costs(self) -> bool:
        """Segmentation with true masks in the store: the simulated annotator's edit costs
        are recorded (:mod:`cryoal.al.edit_cost`)."""
        return self.config.train.task == "segment" and self.store.has_masks

    def _batch_cost(self, pending: dict[str, Any]) -> dict[str, int]:
        """Edit cost of a labelled batch in voxels: ``scratch`` (the true masks' foreground)
        and ``correct`` (voxels where the proposing teacher's mask differs from the truth,
        recorded at selection; round 0 has no proposing model, so its ``correct`` cost is
        its ``scratch`` cost)."""
        from cryoal.al.edit_cost import scratch_cost

        rows = np.array([self._row_of[i] for i in pending["ids"]], np.int64)
        scratch = int(scratch_cost(self.store.masks(rows)).sum()) if rows.size else 0
        changes = pending.get("proposal_changes")
        return {"scratch": scratch, "correct": scratch if changes is None else int(sum(changes))}

    def _cycle_dir(self, cycle: int) -> Path:
        return self.out_dir / "cycles" / f"cycle_{cycle:02d}"

    def _step_train(self) -> Phase:
        from cryoal.train.checkpoint import checkpoint_dir, load_run
        from cryoal.train.evaluate import evaluate

        cycle = int(self.state["cycle"])
        rows, labels = self.labeled()
        run_dir = self._cycle_dir(cycle)
        if run_dir.exists():  # an interrupted attempt: start the cycle again from scratch
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        warm = self.config.warm_start and cycle > 0
        t0 = time.perf_counter()
        fitted = train_round(
            self.config.train.updated(device=self.config.device),
            self.store,
            rows,
            labels,
            seed=self.config.seed,
            training=cycle,
            out_dir=run_dir,
            strategy=self.config.strategy,
            unlabeled_rows=np.setdiff1d(self.pool_indices, rows),
            warm_start_from=self._cycle_dir(cycle - 1) if warm else None,
            warm_start_steps=self.config.warm_start_steps,
        )
        cfg = fitted.config
        train_s = time.perf_counter() - t0
        run = load_run(run_dir, device=self.config.device)
        # mid-training checkpoints are not needed: an interrupted cycle is retrained
        shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)
        test: dict[str, Any] = {"accuracy": None, "macro_f1": None, "per_class_accuracy": {}}
        if self.test_indices.size:
            model = run.student if self.config.evaluate == "student" else run.teacher
            if model is None:
                raise ValueError(f"{run_dir}: the run saved no student to evaluate")
            metrics = evaluate(
                model,
                None,
                self.store,
                self.test_indices,
                task=cfg.task,
                class_names=run.info["class_names"],  # segmentation: background first
                batch_size=self.config.batch_size,
                device=self.config.device,
            )
            test = metrics["teacher"]
        record: dict[str, Any] = {
            "cycle": cycle,
            "n_labeled": int(rows.size),
            "accuracy": test.get("accuracy"),
            "macro_f1": test.get("macro_f1"),
            "per_class_accuracy": test.get("per_class_accuracy", {}),
            "train_s": round(train_s, 3),
            "score_s": None,
            "run_dir": str(run_dir.relative_to(self.out_dir)),
        }
        if cfg.task == "segment":  # Dice and IoU on the test crops, cost of the labels so far
            record.update({k: test.get(k) for k in SEGMENT_METRICS})
            for per_class in ("dice", "iou"):  # foreground classes only
                record[per_class] = {
                    k: v for k, v in (record[per_class] or {}).items() if k != "background"
                }
            if all("cost" in b for b in self.state["batches"]):
                record["cost"] = {
                    mode: int(sum(b["cost"][mode] for b in self.state["batches"]))
                    for mode in ("scratch", "correct")
                }
        last_epoch = fitted.result.history[-1] if fitted.result.history else {}
        if last_epoch.get("pseudo_labels") is not None:
            # semi-supervised training: the pool's pseudo-labels at the end, and the share of
            # unlabelled samples the last epoch's loss pseudo-labelled
            record["pseudo_labels"] = {
                **last_epoch["pseudo_labels"],
                "used_fraction": last_epoch["train"].get("pseudo_fraction"),
            }
        self.state["history"].append(record)
        last = cycle + 1 >= self.config.n_cycles
        n_left = self.pool_ids.size - len(self.state["labels"])
        self.state["phase"] = "done" if last or n_left == 0 else "select"
        self._save()
        return self.state["phase"]

    def _step_select(self) -> Phase:
        from cryoal.al.score_table import SCORES_CSV, write_scores
        from cryoal.train.checkpoint import load_run

        cycle = int(self.state["cycle"])
        run = load_run(self._cycle_dir(cycle), device=self.config.device)
        rows, _ = self.labeled()
        labeled_set = set(self.state["labels"])
        pool = np.array([r for i, r in self._row_of.items() if i not in labeled_set], np.int64)
        k = min(self.config.batch_size_of(cycle, int(self.state["pool_size"])), pool.size)
        strategy = self.config.strategy
        cold = in_cold_start(strategy, cycle + 1, self.ledger.rounds(), len(self.class_names))
        name = round_name(strategy, cold)
        t0 = time.perf_counter()
        acq = select_round(
            strategy,
            run,
            self.store,
            pool,
            rows,
            k,
            seed=self.config.seed,
            round=cycle + 1,
            cold=cold,
            batch_size=self.config.batch_size,
            device=self.config.device,
            on_batch=self.on_batch,
        )
        self.state["history"][-1]["score_s"] = round(time.perf_counter() - t0, 3)
        write_scores(self._cycle_dir(cycle) / SCORES_CSV, acq, run.info["class_names"])
        self.state["pending"] = {
            "round": cycle + 1,
            "strategy": name,
            "ids": [str(i) for i in acq.ids],
            "predicted": [int(p) for p in acq.predicted],
            "scores": [float(s) for s in acq.scores],
        }
        if self._edit_costs:  # what correcting this teacher's masks will cost the annotator
            from cryoal.al.edit_cost import proposal_changes

            changes = proposal_changes(
                run.teacher,
                self.store,
                [self._row_of[str(i)] for i in acq.ids],
                batch_size=self.config.batch_size,
                device=self.config.device,
            )
            self.state["pending"]["proposal_changes"] = [int(c) for c in changes]
        self.state["cycle"] = cycle + 1
        self.state["phase"] = "label"
        self._save()
        return "label"
