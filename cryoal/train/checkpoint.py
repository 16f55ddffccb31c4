"""Checkpoints and trained runs on disk: safetensors + JSON, hashed, written atomically.

A run folder::

    RUN/
      train.yaml               resolved TrainConfig
      metrics.json             per-epoch and final metrics
      model.json               task, presets, classes, voxel size, box, SHA-256 of weights
      teacher.safetensors      final weights
      student.safetensors      (absent for student: none)
      checkpoints/step-000120/ teacher.safetensors, student.safetensors,
                               optim.safetensors (optimizer tensors, RNG states),
                               state.json (epoch, step, optimizer/scheduler state without
                               tensors, history, config hash, SHA-256 and size of every file)

A checkpoint folder is written under a temporary name and renamed when complete, so a
killed process never leaves a half-written checkpoint under a valid name. Nothing is
pickled: tensors live in safetensors files, everything else in JSON; any
``torch.load`` in cryoal uses ``weights_only=True``.

Integrity policy on loading: a checkpoint whose files are missing, unreadable or of the
wrong size is *corrupt* (e.g. a copy that was cut short) — resuming skips it with a warning
and takes the next newer one. A checkpoint whose files have the recorded sizes but not the
recorded SHA-256 (or whose state.json does not match its own checksum) has been *modified*
after it was written — that is an error, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from cryoal.io.atomic import (
    atomic_path,
    atomic_write_text,
    disk_full_error,
    find_partials,
    fsync_directory,
    is_disk_full,
    make_temp_dir,
    remove_partial,
)
from cryoal.io.jsonfile import read_json

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
MODEL_FORMAT = 1
_CKPT_RE = re.compile(r"^step-(\d{9})$")


class CheckpointCorruptError(ValueError):
    """A checkpoint is incomplete or unreadable (skipped on resume)."""


class CheckpointTamperedError(ValueError):
    """A checkpoint's content does not match the hashes recorded when it was written."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_checksum(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def state_dict_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as independent contiguous CPU tensors (safetensors-ready)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


# -- optimizer / scheduler state without pickle --------------------------------------------
def split_optimizer_state(
    state: Mapping[str, Any], prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON data."""
    tensors: dict[str, torch.Tensor] = {}
    js_state: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        js_entry: dict[str, Any] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                name = f"{prefix}.{pid}.{key}"
                tensors[name] = value.detach().cpu().contiguous().clone()
                js_entry[key] = {"tensor": name}
            else:
                js_entry[key] = value
        js_state[str(pid)] = js_entry
    groups = json.loads(json.dumps(state["param_groups"], default=_json_default))
    return tensors, {"state": js_state, "param_groups": groups}


def join_optimizer_state(js: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for pid, entries in js["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for k, v in entries.items()
        }
    return {"state": state, "param_groups": js["param_groups"]}


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def scheduler_state_json(state: Mapping[str, Any]) -> dict[str, Any]:
    """A scheduler's ``state_dict()`` as JSON data (function-valued entries dropped)."""
    return {k: v for k, v in state.items() if _is_json(v)}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


# -- checkpoints ---------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    path
        The checkpoint folder.
    models
        ``{name: state dict}`` (``teacher``, ``student``).
    tensors
        Optimizer tensors and RNG states (``optim.safetensors``).
    state
        The JSON training state.
    """

    path: Path
    models: dict[str, dict[str, torch.Tensor]]
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: str | os.PathLike,
    global_step: int,
    models: Mapping[str, nn.Module],
    tensors: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``RUN/checkpoints/step-NNNNNNNNN`` atomically and prune old checkpoints.

    Parameters
    ----------
    run_dir
        The run folder.
    global_step
        Optimisation steps done (names the checkpoint).
    models
        ``{name: module}`` whose state dicts are saved as ``<name>.safetensors``.
    tensors
        Extra tensors (optimizer state, RNG states) for ``optim.safetensors``.
    state
        JSON-serialisable training state.
    keep
        Newest checkpoints to keep (older ones are deleted after the new one is in place).
    """
    root = checkpoint_dir(Path(run_dir))
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{global_step:09d}"
    tmp = make_temp_dir(final)
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, module in models.items():
            save_file(state_dict_tensors(module), tmp / f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / "optim.safetensors")
        for p in sorted(tmp.glob("*.safetensors")):
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
            files[p.name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        body = dict(state)
        body.update(format=CHECKPOINT_FORMAT, global_step=int(global_step), files=files)
        body["checksum"] = _json_checksum(body)
        atomic_write_text(tmp / "state.json", json.dumps(body, indent=1))
        if final.exists():  # the same step re-written after a resume: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_directory(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(final, exc) from exc
        raise
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    ckpts = list_checkpoints(root.parent)
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for partial in root.glob(".step-*.partial"):  # left by a killed process (old naming)
        shutil.rmtree(partial, ignore_errors=True)
    for part in find_partials(root, recursive=False):
        if part.stale:
            remove_partial(part)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint folders of a run, oldest first."""
    root = checkpoint_dir(Path(run_dir))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _CKPT_RE.match(p.name))


def _verify_files(folder: Path, files: Mapping[str, Mapping[str, Any]], what: str) -> None:
    for name, rec in files.items():
        p = folder / name
        if not p.is_file():
            raise CheckpointCorruptError(f"{p}: missing ({what} is incomplete)")
        size = p.stat().st_size
        if size != int(rec["bytes"]):
            raise CheckpointCorruptError(
                f"{p}: {size} bytes on disk, {rec['bytes']} when written ({what} is damaged)"
            )
        digest = sha256_file(p)
        if digest != rec["sha256"]:
            raise CheckpointTamperedError(
                f"{p}: SHA-256 {digest[:12]}… differs from {rec['sha256'][:12]}… recorded when "
                f"it was written; the file was modified afterwards, so {what} is not used. "
                f"Restore the original file, or delete {folder} to fall back to an older one"
            )


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and verify one checkpoint folder.

    Raises
    ------
    CheckpointCorruptError
        Missing/unreadable files or sizes that differ from those recorded.
    CheckpointTamperedError
        Content that differs from the recorded SHA-256.
    """
    folder = Path(path)
    state_path = folder / "state.json"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointCorruptError(f"{state_path}: unreadable ({exc})") from exc
    if not isinstance(state, dict) or "checksum" not in state or "files" not in state:
        raise CheckpointCorruptError(f"{state_path}: not a cryoal checkpoint state")
    recorded = state.pop("checksum")
    if _json_checksum(state) != recorded:
        raise CheckpointTamperedError(
            f"{state_path}: content differs from its recorded checksum; the file was edited "
            f"after it was written. Delete {folder} to fall back to an older checkpoint"
        )
    if int(state.get("format", 0)) > CHECKPOINT_FORMAT:
        raise CheckpointCorruptError(f"{state_path}: written by a newer cryoal; upgrade cryoal")
    _verify_files(folder, state["files"], f"checkpoint {folder.name}")
    try:
        tensors = load_file(folder / "optim.safetensors")
        models = {
            p.stem: load_file(p)
            for p in sorted(folder.glob("*.safetensors"))
            if p.name != "optim.safetensors"
        }
    except (SafetensorError, OSError) as exc:
        raise CheckpointCorruptError(f"{folder}: unreadable tensors ({exc})") from exc
    return Checkpoint(path=folder, models=models, tensors=tensors, state=state)


def load_latest_checkpoint(run_dir: str | os.PathLike) -> Checkpoint | None:
    """The newest valid checkpoint of a run, skipping corrupt ones (with a warning).

    Raises
    ------
    CheckpointTamperedError
        The newest readable checkpoint was modified after it was written.
    """
    for folder in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint(folder)
        except CheckpointCorruptError as exc:
            warnings.warn(f"skipping corrupt checkpoint: {exc}", stacklevel=2)
    return None


# -- trained runs -------------------------------------------------------------------------
def save_run_models(
    run_dir: str | os.PathLike, models: Mapping[str, nn.Module], info: Mapping[str, Any]
) -> Path:
    """Write ``<name>.safetensors`` for each model, then ``model.json`` (atomic, hashed).

    ``info`` describes how to rebuild the networks (task, presets, num_classes, norm,
    dropout, class names, voxel size, box). ``model.json`` is written last, so a run whose
    final save was interrupted has no ``model.json`` and is recognisably unfinished.
    """
    run = Path(run_dir)
    files: dict[str, dict[str, Any]] = {}
    for name, module in models.items():
        target = run / f"{name}.safetensors"
        with atomic_path(target, overwrite=True) as tmp:
            save_file(state_dict_tensors(module), tmp)
        files[target.name] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    body = dict(info)
    body.update(format=MODEL_FORMAT, files=files)
    atomic_write_text(run / "model.json", json.dumps(body, indent=1))
    return run / "model.json"


def read_model_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``RUN/model.json``, checked for presence and format."""
    path = Path(run_dir) / "model.json"
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(
            f"{run_dir}: run folder not found; pass the --out of 'cryoal train'"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; the training run did not finish — continue it with "
            "'cryoal train ... --resume'"
        )
    config = Path(run_dir) / "train.yaml"
    fix = (
        "delete it and let the training that wrote it finish again from its checkpoints "
        f"('cryoal train STORE.h5 --out {run_dir} --resume --config {config}'; for a "
        "project's rounds/NNN/model, delete rounds/NNN/round.json too, then 'cryoal train "
        f"PROJECT --config {config}')"
    )
    info = read_json(path, fix)
    if not isinstance(info, dict):
        raise ValueError(f"{path}: damaged (not a model description); {fix}")
    if int(info.get("format", 0)) > MODEL_FORMAT:
        raise ValueError(f"{path}: written by a newer cryoal; upgrade cryoal")
    return info


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (no pickle)."""
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: unreadable weights ({exc}); re-run the training") from exc


@dataclass
class LoadedRun:
    """A trained run, ready to predict.

    Attributes
    ----------
    teacher, student
        Models in eval mode on the requested device (``student`` None when not trained).
    config
        The run's :class:`~cryoal.train.config.TrainConfig`.
    info
        ``model.json``: ``task``, ``class_names``, ``num_classes``, ``voxel_size_A``,
        ``box``, presets, ...
    metrics
        ``metrics.json`` content (empty if absent).
    run_dir
        The folder.
    """

    teacher: nn.Module
    student: nn.Module | None
    config: Any
    info: dict[str, Any]
    metrics: dict[str, Any]
    run_dir: Path


def load_run(run_dir: str | os.PathLike, *, device: str = "cpu") -> LoadedRun:
    """Rebuild teacher and student of a finished run from ``model.json`` and safetensors.

    Raises
    ------
    FileNotFoundError
        No such run, or an unfinished one.
    CheckpointTamperedError
        Weights modified after the run wrote them.
    """
    from cryoal.models import build_model
    from cryoal.train.config import TrainConfig
    from cryoal.train.distributed import resolve_device

    run = Path(run_dir)
    info = read_model_info(run)
    try:
        _verify_files(run, info["files"], f"run {run}")
    except CheckpointCorruptError as exc:
        raise ValueError(f"{exc}; re-run the training") from None
    config = TrainConfig.from_yaml(run / "train.yaml")
    dev = resolve_device(device)
    models: dict[str, nn.Module | None] = {}
    for name in ("teacher", "student"):
        spec = info["models"].get(name)
        if spec is None:
            models[name] = None
            continue
        model = build_model(
            info["task"],
            spec["preset"],
            info["num_classes"],
            norm=spec["norm"],
            dropout=spec["dropout"],
        )
        model.load_state_dict(load_state_dict_file(run / f"{name}.safetensors"))
        models[name] = model.to(dev).eval()
    metrics_path = run / "metrics.json"
    fix = "delete it: the models load without it (only the run's per-epoch metrics are lost)"
    metrics = read_json(metrics_path, fix) if metrics_path.is_file() else {}
    assert models["teacher"] is not None
    return LoadedRun(
        teacher=models["teacher"],
        student=models["student"],
        config=config,
        info=info,
        metrics=metrics,
        run_dir=run,
    )
