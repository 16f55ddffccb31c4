"""State and steps of one training run (methods.md §1): the joint teacher–student step.

Per step, on a labeled batch ``(x_l, y_l)`` and, optionally, an unlabeled batch ``x_u``::

    L_task     = CE(T(x_l), y_l)                 (classify; Dice + CE for segment)
    L_transfer = D(stopgrad T(x), S(x))          on x = x_l [+ x_u]
    teacher  <- L_task [+ lambda * D(T(x), stopgrad S(x)) when detach_teacher is false]
    student  <- L_transfer                       (student: trained)
    student  <- EMA of the teacher               (student: ema)

``D`` is ``tau^2 KL(p_T || p_S)`` (or the reverse direction) for classification and the
voxel-mean squared difference of probabilities for segmentation
(:mod:`cryoal.train.losses`). When unlabeled batches are used, the teacher runs once over
``x_l`` and ``x_u`` together (its BatchNorm statistics then include the unlabeled batch).
With ``semi_supervised: fixmatch`` the teacher also learns from its own confident
predictions on weak views of ``x_u``, on strong views of them (:mod:`cryoal.train.semi`).

:class:`_Trainer` builds the networks (DDP wrappers under ``torchrun``), datasets, class
balance, optimisers, schedules and EMA averages; it runs the steps, the per-epoch
validation and the checkpoints (write, and restore for an exact resume).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cryoal.data.datasets import (
    SubtomogramDataset,
    augmentation_seeds,
    batch_loader,
    class_weights,
    epoch_batches,
)
from cryoal.data.transforms import wedge_safe_augmentation
from cryoal.io.store import MASK_IGNORE, SubtomogramStore
from cryoal.models import build_model, check_box, count_parameters
from cryoal.models.factory import to_sync_batchnorm
from cryoal.pretrain.encoder import ENCODER_PREFIX, load_encoder, load_encoder_into
from cryoal.pretrain.views import make_view
from cryoal.train.checkpoint import (
    join_optimizer_state,
    load_latest_checkpoint,
    save_checkpoint,
    scheduler_state_json,
    split_optimizer_state,
)
from cryoal.train.config import TrainConfig
from cryoal.train.distributed import (
    DistContext,
    all_gather_ints,
    all_reduce_sum,
    amp_dtype,
    autocast_context,
    barrier,
    grad_scaler,
    resolve_device,
    shard,
    to_device,
)
from cryoal.train.evaluate import evaluate
from cryoal.train.fit.inputs import _class_names, _data_hash
from cryoal.train.fit.optim import _lr_factor, _optimizer, ema_update
from cryoal.train.fit.seeds import derive_seed
from cryoal.train.fit.warm_start import _init_from, _warm_start
from cryoal.train.losses import TaskLoss, consistency_loss, transfer_loss
from cryoal.train.semi import (
    class_thresholds,
    pseudo_label_loss,
    pseudo_label_quality,
    pseudo_labels,
    update_state,
)

log = logging.getLogger("cryoal.train.fit")

#: Sums kept over an epoch's steps (losses, pseudo-label counts, steps).
ACCUM_KEYS: tuple[str, ...] = ("task", "transfer", "pseudo", "pseudo_used", "pseudo_seen", "n")


def _zero_accum() -> dict[str, Any]:
    return {k: (0 if k == "n" else 0.0) for k in ACCUM_KEYS}


def _reduce_accum(accum: dict[str, Any], ctx: DistContext) -> dict[str, Any]:
    """The sums over all ranks (each rank holds only its own share)."""
    sums = all_reduce_sum([float(accum[k]) for k in ACCUM_KEYS], ctx)
    return {k: (int(v) if k == "n" else v) for k, v in zip(ACCUM_KEYS, sums, strict=True)}


class _Trainer:
    """State and steps of one training run (used by :func:`fit`)."""

    def __init__(
        self,
        config: TrainConfig,
        store: SubtomogramStore,
        train: np.ndarray,
        targets: np.ndarray,
        val: np.ndarray,
        unlabeled: np.ndarray,
        out_dir: Path | None,
        init: Any,
        device: torch.device | None = None,
        ctx: DistContext | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.train = train
        self.targets = targets
        self.val = val
        self.unlabeled = unlabeled
        self.out_dir = out_dir
        self.task = config.task
        self.device = device if device is not None else resolve_device(config.device)
        self.dist = ctx if ctx is not None else DistContext()
        if config.batch_size % self.dist.world_size or (
            (config.unlabeled_batch_size or config.batch_size) % self.dist.world_size
        ):
            raise ValueError(
                f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                f"{self.dist.world_size} processes"
            )
        self.fmt = torch.channels_last_3d if config.channels_last else torch.contiguous_format
        self.semi = config.semi_supervised == "fixmatch"
        #: fixmatch: per unlabeled sample, the class of its latest prediction at or above
        #: pseudo_threshold (-1: none), and the samples' positions sorted by store row
        self.pseudo_state = np.full(unlabeled.size, -1, np.int64)
        self._unl_order = np.argsort(unlabeled, kind="stable")
        self._check_classes()
        self._build_networks(init)
        self._build_data()
        self._build_optimisers()

        # -- progress state ----------------------------------------------------------
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.accum = _zero_accum()
        self.elapsed = 0.0
        self.data_hash = _data_hash(
            store, {"train": train, "val": val, "unlabeled": unlabeled}, targets
        )

    def _check_classes(self) -> None:
        """Number of classes and their names, the box the presets accept, and the labels of
        training and validation samples in range (masks for segmentation)."""
        config, store, targets, val = self.config, self.store, self.targets, self.val
        if config.num_classes is not None:
            self.num_classes = int(config.num_classes)
        else:
            self.num_classes = len(store.class_names) + (1 if self.task == "segment" else 0)
        if self.num_classes < 2:
            raise ValueError(
                f"{store.path}: the store names {len(store.class_names)} class(es); "
                "classification needs >= 2 (set num_classes in the config)"
            )
        self.class_names = _class_names(store, self.task, self.num_classes)
        check_box(self.task, config.teacher_preset, config.norm, store.box)
        if config.student == "trained":
            check_box(self.task, config.student_preset, config.norm, store.box)
        if self.task == "classify":
            bad = targets[(targets < 0) | (targets >= self.num_classes)]
            if bad.size:
                raise ValueError(
                    f"{store.path}: {bad.size} training sample(s) have label {int(bad[0])}, "
                    f"outside 0..{self.num_classes - 1} (unlabeled samples go in "
                    "unlabeled_indices, not train_indices)"
                )
            vbad = store.labels[val]
            if ((vbad < 0) | (vbad >= self.num_classes)).any():
                raise ValueError(f"{store.path}: validation samples must all be labeled")
        elif not store.has_masks:
            raise ValueError(
                f"{store.path}: --task segment needs a store with /masks (simulate with masks)"
            )

    def _build_networks(self, init: Any) -> None:
        """Teacher, student and their averages (warm-started from ``init``), on the device;
        DDP wrappers under torchrun."""
        c = self.config
        self.teacher = build_model(
            self.task, c.teacher_preset, self.num_classes, norm=c.norm, dropout=c.dropout,
            seed=derive_seed(c.seed, "teacher"),
        )  # fmt: skip
        self.student: nn.Module | None = None
        if c.student == "trained":
            self.student = build_model(
                self.task, c.student_preset, self.num_classes, norm=c.norm, dropout=c.dropout,
                seed=derive_seed(c.seed, "student"),
            )  # fmt: skip
        if init is not None:
            prev_t, prev_s = _init_from(init)
            _warm_start(self.teacher, prev_t, "teacher")
            if self.student is not None and prev_s is not None:
                _warm_start(self.student, prev_s, "student")
        elif c.encoder is not None:
            if self.task != "classify":
                raise ValueError(
                    f"encoder {c.encoder}: pretrained encoders start classification teachers; "
                    "train segmentation without encoder"
                )
            encoder = load_encoder(c.encoder)
            load_encoder_into(self.teacher, encoder, "teacher")
            # a trained student of the encoder's preset starts from it too, so that the
            # teacher-student distance measures what the labels taught, not two inits
            if self.student is not None and c.student_preset == encoder.preset:
                load_encoder_into(self.student, encoder, "student")
        if c.encoder_frozen:  # a linear probe: the encoder's weights never train
            _encoder_of(self.teacher).requires_grad_(False)
        if c.student == "ema":
            self.student = build_model(
                self.task, c.teacher_preset, self.num_classes, norm=c.norm, dropout=c.dropout,
                seed=derive_seed(c.seed, "ema"),
            )  # fmt: skip
            self.student.load_state_dict(self.teacher.state_dict())
            self.student.requires_grad_(False)
        to_device(self.teacher, self.device, self.fmt)
        self._teacher_train_mode()
        if self.student is not None:
            to_device(self.student, self.device, self.fmt)
            self.student.train(c.student == "trained")
        #: exponential moving averages of the trained networks (average: ema), by name
        self.averaged: dict[str, nn.Module] = {}
        if c.average == "ema":
            trained = {"teacher": self.teacher}
            if c.student == "trained" and self.student is not None:
                trained["student"] = self.student
            for name, model in trained.items():
                avg = copy.deepcopy(model).requires_grad_(False).eval()
                self.averaged[name] = avg
        # the modules the training step calls (DDP wrappers under torchrun)
        self.t_fwd: nn.Module = self.teacher
        self.s_fwd: nn.Module | None = self.student
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self._distributed_norm()

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.t_fwd = DDP(self.teacher, device_ids=ids)
            if c.student == "trained":
                self.s_fwd = DDP(self.student, device_ids=ids)

    def _build_data(self) -> None:
        """Datasets (labeled, unlabeled), class balance and the task loss."""
        c, store = self.config, self.store
        train, targets, unlabeled = self.train, self.targets, self.unlabeled
        self.batch_size = c.batch_size
        self.steps_per_epoch = -(-train.size // c.batch_size)
        #: passes over the labeled set: ``epochs``, or enough whole epochs for ``steps``
        self.epochs = c.epochs if c.steps is None else -(-c.steps // self.steps_per_epoch)
        self.total_steps = self.steps_per_epoch * self.epochs
        nbytes = (train.size + unlabeled.size) * store.box**3 * 4
        preload = nbytes <= c.preload_max_gb * 2**30
        keys = ("image", "mask") if self.task == "segment" else ("image",)
        aug = (
            wedge_safe_augmentation(keys, flip_prob=c.flip_prob, rotate180_prob=c.rotate180_prob)
            if c.augment
            else None
        )
        self.train_ds = SubtomogramDataset(
            store, train, targets, task=self.task, transform=aug, preload=preload
        )
        self.unl_ds = self._unlabeled_dataset(preload)
        weights = self._class_balance()
        self.task_loss = TaskLoss(
            self.task,
            class_weights=weights,
            label_smoothing=c.label_smoothing,
            dice_weight=c.dice_weight,
            ce_weight=c.ce_weight,
        ).to(self.device)

    def _unlabeled_dataset(self, preload: bool) -> SubtomogramDataset | None:
        """Unlabeled samples for the student, when its configuration reads them."""
        c, store, unlabeled = self.config, self.store, self.unlabeled
        if self.semi and unlabeled.size == 0:
            raise ValueError(
                "semi_supervised fixmatch needs unlabeled samples (unlabeled_indices); none "
                "were given: pass the pool's rows, or train with semi_supervised: none"
            )
        wants_unlabeled = self.semi or (
            c.student_data == "labeled+unlabeled"
            and (c.student == "trained" or (c.student == "ema" and c.ema_consistency_weight > 0))
        )
        if wants_unlabeled and unlabeled.size == 0:
            warnings.warn(
                "student_data is labeled+unlabeled but no unlabeled samples were given; "
                "the student learns from labeled batches only",
                stacklevel=5,
            )
        self.use_unlabeled = wants_unlabeled and unlabeled.size > 0
        if not self.use_unlabeled:
            return None
        img_aug = (
            wedge_safe_augmentation(
                ("image",), flip_prob=c.flip_prob, rotate180_prob=c.rotate180_prob
            )
            if c.augment
            else None
        )
        return SubtomogramDataset(
            store,
            unlabeled,
            np.full(unlabeled.size, -1),
            task="classify",
            transform=img_aug,
            preload=preload,
        )

    def _class_balance(self) -> torch.Tensor | None:
        """Class weights for the loss (``weighted_loss``; returned) or per-sample weights for
        the sampler (``balanced_sampler``; ``self.sample_weights``)."""
        c, store, train, targets = self.config, self.store, self.train, self.targets
        self.sample_weights: np.ndarray | None = None
        if c.class_balance == "none":
            return None
        if self.task == "classify":
            counts_w = class_weights(targets, self.num_classes)
        else:
            counts = np.bincount(store.masks(train).reshape(-1), minlength=self.num_classes)[
                : self.num_classes
            ]
            present = counts > 0
            counts_w = np.ones(self.num_classes, np.float32)
            counts_w[present] = counts[present].sum() / (present.sum() * counts[present])
        if c.class_balance == "weighted_loss":
            return torch.as_tensor(counts_w, dtype=torch.float32)
        if self.task != "classify":
            raise ValueError(
                "class_balance: balanced_sampler applies to classification; use "
                "weighted_loss for segmentation"
            )
        self.sample_weights = counts_w[targets].astype(np.float64)
        return None

    def _build_optimisers(self) -> None:
        """Optimisers, learning-rate schedules and the AMP gradient scaler."""
        c = self.config
        factor = _lr_factor(c, self.total_steps)
        self.opt_t = _optimizer(c, self._teacher_param_groups(), c.lr)
        self.sched_t = torch.optim.lr_scheduler.LambdaLR(self.opt_t, factor)
        self.scaler = grad_scaler(self.device, c.amp)
        if self.device.type == "cpu" and amp_dtype(self.device, c.amp) is not None:
            warnings.warn(
                "bf16 autocast training on CPU is unreliable with this torch build: oneDNN's "
                "bfloat16 conv3d backward turned weights into NaN within 3 steps in 4 of 6 "
                "test runs (torch 2.13); train on CPU with --amp off",
                stacklevel=4,
            )
        self.opt_s: torch.optim.Optimizer | None = None
        self.sched_s: torch.optim.lr_scheduler.LambdaLR | None = None
        if c.student == "trained":
            assert self.student is not None
            self.opt_s = _optimizer(c, self.student.parameters(), c.student_lr or c.lr)
            self.sched_s = torch.optim.lr_scheduler.LambdaLR(self.opt_s, factor)

    def _teacher_train_mode(self) -> None:
        """The teacher in training mode; a frozen encoder stays in evaluation mode, so its
        normalisation layers keep the pretrained statistics."""
        self.teacher.train()
        if self.config.encoder_frozen:
            _encoder_of(self.teacher).eval()

    def _teacher_param_groups(self) -> list[dict[str, Any]]:
        """The teacher's parameters; with a pretrained encoder, its layers in a group of
        their own at ``encoder_lr_scale * lr`` (none when it is frozen)."""
        c = self.config
        if c.encoder_frozen:
            return [{"params": [p for p in self.teacher.parameters() if p.requires_grad]}]
        if c.encoder is None or c.encoder_lr_scale == 1.0:
            return [{"params": list(self.teacher.parameters())}]
        enc = [p for n, p in self.teacher.named_parameters() if n.startswith(ENCODER_PREFIX)]
        rest = [p for n, p in self.teacher.named_parameters() if not n.startswith(ENCODER_PREFIX)]
        return [{"params": enc, "lr": c.lr * c.encoder_lr_scale}, {"params": rest}]

    def _optimisers(
        self,
    ) -> list[tuple[str, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]]:
        """``(name, optimiser, learning-rate schedule)`` of each trained network."""
        out = [("teacher", self.opt_t, self.sched_t)]
        if self.opt_s is not None and self.sched_s is not None:
            out.append(("student", self.opt_s, self.sched_s))
        return out

    def _distributed_norm(self) -> None:
        """SyncBatchNorm for ``norm: syncbatch``; a warning for per-rank batch norm."""
        c = self.config
        if c.norm == "syncbatch":
            if self.device.type != "cuda":
                raise ValueError(
                    "norm syncbatch needs CUDA under torchrun (torch.nn.SyncBatchNorm); use "
                    "norm group or instance for CPU processes"
                )
            for model in (self.teacher, self.student):
                if model is not None:
                    to_sync_batchnorm(model)  # converts the layers in place
        elif c.norm == "batch":
            warnings.warn(
                f"norm batch under {self.dist.world_size} processes normalises over each "
                "rank's share of the batch, so results differ from one process; use norm "
                "group, instance or syncbatch (GPU) to make them agree",
                stacklevel=3,
            )

    # -- checkpoints ---------------------------------------------------------------------
    def _models(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher} | ({"student": self.student} if self.student else {})

    def _checkpoint_models(self) -> dict[str, nn.Module]:
        """Everything a resumed run needs: the networks and their running averages."""
        return self._models() | {f"{name}_avg": m for name, m in self.averaged.items()}

    def final_models(self) -> dict[str, nn.Module]:
        """The networks to validate, save and predict with (averaged ones where kept)."""
        return {name: self.averaged.get(name, m) for name, m in self._models().items()}

    def save_checkpoint(self) -> None:
        if self.out_dir is None:
            return
        # the epoch's loss sums over all ranks (each rank holds only its own share)
        accum = _reduce_accum(self.accum, self.dist)
        if self.dist.is_main:
            self._write_checkpoint(accum)
        barrier(self.dist)

    def _write_checkpoint(self, accum: dict[str, Any]) -> None:
        assert self.out_dir is not None
        tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
        if self.semi:
            tensors["semi.state"] = torch.from_numpy(self.pseudo_state.copy())
        if self.device.type == "cuda":
            for k, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{k}"] = s
        optim_js: dict[str, Any] = {}
        sched_js: dict[str, Any] = {}
        for name, opt, sched in self._optimisers():
            t, js = split_optimizer_state(opt.state_dict(), f"optim.{name}")
            tensors.update(t)
            optim_js[name] = js
            sched_js[name] = scheduler_state_json(sched.state_dict())
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "config_hash": self.config.training_hash(),
            "config": self.config.model_dump(mode="json"),
            "data_hash": self.data_hash,
            "optimizers": optim_js,
            "schedulers": sched_js,
            "history": self.history,
            "accum": accum,
            "elapsed_s": self.elapsed,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }
        save_checkpoint(
            self.out_dir,
            self.global_step,
            self._checkpoint_models(),
            tensors,
            state,
            keep=self.config.keep_checkpoints,
        )

    def restore(self) -> bool:
        """Load the newest valid checkpoint of ``out_dir``; False when there is none."""
        assert self.out_dir is not None
        ckpt = load_latest_checkpoint(self.out_dir)
        if ckpt is None:
            return False
        st = ckpt.state
        if st["config_hash"] != self.config.training_hash():
            old = st.get("config", {})
            new = self.config.model_dump(mode="json")
            diff = sorted(k for k in new if old.get(k) != new[k] and k in old)
            raise ValueError(
                f"{ckpt.path}: was written with a different training configuration (changed: "
                f"{', '.join(diff) or 'unknown'}); resume with the run's own "
                f"{self.out_dir / 'train.yaml'} or start a new --out"
            )
        if st["data_hash"] != self.data_hash:
            raise ValueError(
                f"{ckpt.path}: was trained on different samples or labels; resume with the "
                "same data (and validation split), or start a new --out"
            )
        for name, model in self._checkpoint_models().items():
            model.load_state_dict(ckpt.models[name])
        for name, opt, sched in self._optimisers():
            opt.load_state_dict(join_optimizer_state(st["optimizers"][name], ckpt.tensors))
            sched.load_state_dict(st["schedulers"][name])
        torch.set_rng_state(ckpt.tensors["rng.torch"])
        if self.device.type == "cuda":
            states = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith("rng.cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        self.epoch = int(st["epoch"])
        self.step_in_epoch = int(st["step_in_epoch"])
        self.global_step = int(st["global_step"])
        self.history = list(st["history"])
        # rank 0 carries the saved sums of all ranks; end_epoch adds the others' new shares
        self.accum = _zero_accum() | (dict(st["accum"]) if self.dist.is_main else {})
        if self.semi and "semi.state" in ckpt.tensors:
            self.pseudo_state = ckpt.tensors["semi.state"].numpy().astype(np.int64).copy()
        self.elapsed = float(st["elapsed_s"])
        if st.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(st["scaler"])
        log.info("resumed from %s (epoch %d, step %d)", ckpt.path, self.epoch, self.global_step)
        return True

    # -- steps ---------------------------------------------------------------------------
    def _to(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)

    def _counted_voxels(self, y: torch.Tensor, n_x: int) -> torch.Tensor | None:
        """Segmentation: ``(n_x, *spatial)`` bool, the voxels the student's transfer loss
        counts: a labelled sample's annotated voxels (not ``MASK_IGNORE``), every voxel of
        the unlabelled ones after them; None when every voxel counts."""
        if self.task != "segment":
            return None
        counted = y[:, 0] != MASK_IGNORE
        if bool(counted.all()):
            return None
        extra = counted.new_ones((n_x - counted.shape[0], *counted.shape[1:]))
        return torch.cat([counted, extra])

    def step(self, batch: dict[str, torch.Tensor], ubatch: dict[str, torch.Tensor] | None) -> None:
        c = self.config
        x_l = self._to(batch["image"])
        y = batch["target"].to(self.device, non_blocking=True)
        n_l = x_l.shape[0]
        # x: the labeled batch and the unlabeled (weak) views, what the student sees
        x = torch.cat([x_l, self._to(ubatch["image"])]) if ubatch is not None else x_l
        n_x = x.shape[0]
        x_teacher = x
        if self.semi:
            assert ubatch is not None
            x_teacher = torch.cat([x, self._to(self._strong_views(ubatch["image"]))])
        amp = autocast_context(self.device, c.amp)
        with amp:
            t_fwd_all = self.t_fwd(x_teacher).float()  # losses in float32 under autocast
        t_all = t_fwd_all[:n_x]
        loss_task = self.task_loss(t_all[:n_l], y)
        loss_teacher = loss_task
        if self.semi:
            assert ubatch is not None
            loss_pseudo = self._pseudo_label_loss(
                t_all[n_l:].detach(), t_fwd_all[n_x:], ubatch["index"]
            )
            loss_teacher = loss_teacher + c.pseudo_weight * loss_pseudo
        loss_tr = None
        if c.student == "trained":
            assert self.s_fwd is not None
            with amp:
                s_all = self.s_fwd(x).float()
            loss_tr = transfer_loss(
                t_all.detach(), s_all, task=self.task, tau=c.tau, direction=c.kl_direction,
                voxel_mask=self._counted_voxels(y, n_x),
            )  # fmt: skip
            if not c.detach_teacher and c.transfer_weight > 0:
                loss_teacher = loss_teacher + c.transfer_weight * transfer_loss(
                    t_all, s_all.detach(), task=self.task, tau=c.tau, direction=c.kl_direction
                )
            total = loss_teacher + loss_tr
        else:
            if c.student == "ema" and c.ema_consistency_weight > 0:
                assert self.student is not None
                with torch.no_grad(), amp:
                    e_all = self.student(x).float()
                loss_teacher = loss_teacher + c.ema_consistency_weight * consistency_loss(
                    t_all, e_all
                )
            total = loss_teacher
        if not torch.isfinite(total):
            hint = f"; or train with --amp off (amp is {c.amp})" if c.amp != "off" else ""
            raise FloatingPointError(
                f"training diverged at step {self.global_step} (loss {float(total)}); "
                f"lower lr or check the data for extreme values{hint}"
            )
        self.opt_t.zero_grad(set_to_none=True)
        if self.opt_s is not None:
            self.opt_s.zero_grad(set_to_none=True)
        # fp16: scaled loss, unscaled before clipping; a no-op scaler for bf16 / float32
        self.scaler.scale(total).backward()
        if c.grad_clip:
            self.scaler.unscale_(self.opt_t)
            torch.nn.utils.clip_grad_norm_(self.teacher.parameters(), c.grad_clip)
            if self.opt_s is not None:
                assert self.student is not None
                self.scaler.unscale_(self.opt_s)
                torch.nn.utils.clip_grad_norm_(self.student.parameters(), c.grad_clip)
        self.scaler.step(self.opt_t)
        self.sched_t.step()
        if self.opt_s is not None and self.sched_s is not None:
            self.scaler.step(self.opt_s)
            self.sched_s.step()
        self.scaler.update()
        if c.student == "ema":
            assert self.student is not None
            t = self.global_step
            decay = min(c.ema_decay, (1 + t) / (10 + t)) if c.ema_warmup else c.ema_decay
            ema_update(self.student, self.teacher, decay)
        if self.averaged:
            t = self.global_step
            decay = min(c.average_decay, (1 + t) / (10 + t))
            live = self._models()
            for name, avg in self.averaged.items():
                ema_update(avg, live[name], decay)
        self.accum["task"] += float(loss_task.detach())
        if loss_tr is not None:
            self.accum["transfer"] += float(loss_tr.detach())
        self.accum["n"] += 1
        self.global_step += 1
        self.step_in_epoch += 1

    def _strong_views(self, weak: torch.Tensor) -> torch.Tensor:
        """fixmatch: strong views of a batch of weak views, seeded by step and rank (a
        resumed run draws the same)."""
        c = self.config
        gen = torch.Generator().manual_seed(
            derive_seed(c.seed, f"strong{self.global_step}.{self.dist.rank}")
        )
        return make_view(
            weak, gen, flip=False, max_shift=c.strong_shift, noise_std=c.strong_noise,
            cutout=c.strong_cutout,
        )  # fmt: skip

    def _pseudo_label_loss(
        self, logits_weak: torch.Tensor, logits_strong: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """fixmatch: the masked pseudo-label loss of one unlabeled batch, and the update of
        each sample's held class (gathered from every rank, so all ranks hold the same)."""
        c = self.config
        thresholds = class_thresholds(
            self.pseudo_state, self.num_classes, c.pseudo_threshold, c.pseudo_adaptive
        )
        classes, confidence, mask = pseudo_labels(
            logits_weak, torch.as_tensor(thresholds, dtype=torch.float32, device=self.device)
        )
        loss = pseudo_label_loss(logits_strong, classes, mask)
        self.accum["pseudo"] += float(loss.detach())
        self.accum["pseudo_used"] += float(mask.sum())
        self.accum["pseudo_seen"] += float(mask.numel())
        unl = self.unlabeled
        row_arr = rows.cpu().numpy().astype(np.int64)
        positions = self._unl_order[np.searchsorted(unl, row_arr, sorter=self._unl_order)]
        held = np.where(
            confidence.detach().cpu().numpy() >= c.pseudo_threshold,
            classes.cpu().numpy().astype(np.int64),
            -1,
        )
        positions = all_gather_ints(positions, self.dist, self.device)
        held = all_gather_ints(held, self.dist, self.device)
        update_state(self.pseudo_state, positions, held)
        return loss

    def epoch_loaders(self) -> tuple[Any, Any]:
        c = self.config
        e = self.epoch
        order = epoch_batches(
            self.train.size,
            self.batch_size,
            seed=c.seed,
            epoch=e,
            sample_weights=self.sample_weights,
        )
        seeds = augmentation_seeds(order.shape, seed=c.seed, epoch=e)
        order, seeds = shard(order, self.dist), shard(seeds, self.dist)
        start = self.step_in_epoch
        batches = [
            list(zip(o.tolist(), s.tolist(), strict=True))
            for o, s in zip(order, seeds, strict=True)
        ]
        pin = self.device.type == "cuda"
        lab = batch_loader(
            self.train_ds, batches[start:], num_workers=c.num_workers, pin_memory=pin,
            seed=derive_seed(c.seed, f"loader{e}"),
        )  # fmt: skip
        unl = None
        if self.unl_ds is not None:
            ub = c.unlabeled_batch_size or c.batch_size
            uorder = epoch_batches(
                len(self.unl_ds), ub, seed=c.seed, epoch=e, stream=1, steps=self.steps_per_epoch
            )
            useeds = augmentation_seeds(uorder.shape, seed=c.seed, epoch=e, stream=1)
            uorder, useeds = shard(uorder, self.dist), shard(useeds, self.dist)
            ubatches = [
                list(zip(o.tolist(), s.tolist(), strict=True))
                for o, s in zip(uorder, useeds, strict=True)
            ]
            unl = batch_loader(
                self.unl_ds, ubatches[start:], num_workers=c.num_workers, pin_memory=pin,
                seed=derive_seed(c.seed, f"uloader{e}"),
            )  # fmt: skip
        return lab, unl

    def end_epoch(self) -> dict[str, Any]:
        c = self.config
        self.accum = _reduce_accum(self.accum, self.dist)
        n = max(1, self.accum["n"])
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "lr": float(self.opt_t.param_groups[0]["lr"]),
            "train": {
                "task_loss": self.accum["task"] / n,
                "transfer_loss": self.accum["transfer"] / n if c.student == "trained" else None,
                "steps": self.accum["n"] // self.dist.world_size,
            },
            "val": None,
        }
        if self.semi:
            a = self.accum
            record["train"]["pseudo_loss"] = a["pseudo"] / n
            record["train"]["pseudo_fraction"] = a["pseudo_used"] / max(1.0, a["pseudo_seen"])
            # a measurement where the store knows the pool's classes (a benchmark); nothing
            # in training reads it
            truth = np.asarray(self.store.labels[self.unlabeled], np.int64)
            record["pseudo_labels"] = pseudo_label_quality(
                self.pseudo_state, truth, self.num_classes
            )
        if self.val.size:
            models = self.final_models()
            record["val"] = evaluate(
                models["teacher"],
                models.get("student"),
                self.store,
                self.val,
                task=self.task,
                class_names=self.class_names,
                tau=c.tau,
                direction=c.kl_direction,
                batch_size=c.predict_batch_size,
                device=self.device,
                amp=c.amp,
            )
            self._teacher_train_mode()
            if self.student is not None:
                self.student.train(c.student == "trained")
        record["elapsed_s"] = self.elapsed
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.accum = _zero_accum()
        return record

    def info(self) -> dict[str, Any]:
        c = self.config
        models: dict[str, Any] = {
            "teacher": {
                "preset": c.teacher_preset,
                "norm": c.norm,
                "dropout": c.dropout,
                "parameters": count_parameters(self.teacher),
            }
        }
        if self.student is not None:
            models["student"] = {
                "preset": c.student_preset if c.student == "trained" else c.teacher_preset,
                "norm": c.norm,
                "dropout": c.dropout,
                "parameters": sum(p.numel() for p in self.student.parameters()),
                "kind": c.student,
            }
        return {
            "task": self.task,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "voxel_size_A": self.store.voxel_size_A,
            "box": self.store.box,
            "models": models,
            "store": str(self.store.path),
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_unlabeled": int(self.unlabeled.size),
        }


def _encoder_of(model: nn.Module) -> nn.Module:
    """The layers a pretrained encoder fills (``ENCODER_PREFIX``: the network's backbone)."""
    return model.get_submodule(ENCODER_PREFIX.rstrip("."))
