"""Checkpoints: exact resume after SIGKILL, corrupt ones skipped, modified ones refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoal.cli.main import run
from cryoal.io.store import SubtomogramStore
from cryoal.train.checkpoint import (
    CheckpointTamperedError,
    join_optimizer_state,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    load_run,
    split_optimizer_state,
)
from cryoal.train.config import TrainConfig
from cryoal.train.fit import fit
from cryoal.train.run import split_store, train_store

TRAIN_ARGS = ["--preset", "tiny", "--student-preset", "tiny", "--epochs", "2",
              "--batch-size", "16", "--set", "lr=0.01", "--seed", "5", "-q"]  # fmt: skip


def _cli(store: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cryoal",
        "train",
        str(store),
        "--out",
        str(out),
        *TRAIN_ARGS,
        *extra,
    ]


def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(
    class_store: Path, tmp_path: Path
) -> None:
    # reference: the same training, never interrupted, in memory (in this process)
    cfg = TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=2, batch_size=16,
                      lr=0.01, seed=5)  # fmt: skip
    store = SubtomogramStore(class_store)
    parts = split_store(store, cfg)
    reference = fit(cfg, store, parts["train"], val_indices=parts["val"])

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(class_store, out, "--checkpoint-every", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not list_checkpoints(out):
        assert proc.poll() is None, f"training ended before a checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = load_checkpoint(list_checkpoints(out)[-1]).state
    steps_per_epoch = -(-reference.metrics["n_train"] // 16)
    assert latest["global_step"] < 2 * steps_per_epoch  # killed before the end of training
    assert not (out / "model.json").exists()

    done = subprocess.run(
        _cli(class_store, out, "--resume"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "metrics.json").read_text())
    # stated tolerance: identical to 1e-6 (same kernels, same thread count -> bitwise in practice)
    ref_epochs = reference.history
    assert len(resumed["epochs"]) == len(ref_epochs) == 2
    for a, b in zip(resumed["epochs"], ref_epochs, strict=True):
        assert a["val"]["teacher"]["accuracy"] == b["val"]["teacher"]["accuracy"]
        assert a["val"]["student"]["accuracy"] == b["val"]["student"]["accuracy"]
        assert a["val"]["distance"] == pytest.approx(b["val"]["distance"], abs=1e-6)
    fa, fb = resumed["final"]["train"], reference.metrics["train"]
    assert fa["task_loss"] == pytest.approx(fb["task_loss"], abs=1e-6)
    assert fa["transfer_loss"] == pytest.approx(fb["transfer_loss"], abs=1e-6)
    got = load_run(out)
    for k, v in reference.teacher.state_dict().items():
        torch.testing.assert_close(got.teacher.state_dict()[k], v, rtol=0, atol=1e-6)


_CKPT_CFG = TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=1, batch_size=8,
                        checkpoint_every_steps=1, keep_checkpoints=3)  # fmt: skip


@pytest.fixture(scope="module")
def _trained_once(class_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    fit(_CKPT_CFG, SubtomogramStore(class_store), np.arange(32), out_dir=out)
    return out


@pytest.fixture()
def checkpointed_run(_trained_once: Path, tmp_path: Path) -> tuple[Path, TrainConfig, np.ndarray]:
    """A finished 4-step run with checkpoints after steps 2, 3 and 4 (a fresh copy)."""
    out = tmp_path / "run"
    shutil.copytree(_trained_once, out)
    return out, _CKPT_CFG, np.arange(32)


def test_checkpoints_hold_only_safetensors_and_json(checkpointed_run) -> None:
    out, _, _ = checkpointed_run
    files = {p.suffix for c in list_checkpoints(out) for p in c.iterdir()}
    assert files == {".safetensors", ".json"}
    assert [c.name for c in list_checkpoints(out)] == [
        "step-000000002", "step-000000003", "step-000000004"
    ]  # fmt: skip


def test_a_corrupt_checkpoint_is_skipped_with_a_warning(checkpointed_run) -> None:
    out, _, _ = checkpointed_run
    newest = list_checkpoints(out)[-1]
    weights = newest / "teacher.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as a broken copy would be
    with pytest.warns(UserWarning, match="corrupt checkpoint"):
        ckpt = load_latest_checkpoint(out)
    assert ckpt is not None and ckpt.path == list_checkpoints(out)[-2]


def test_a_modified_checkpoint_is_rejected_with_a_clear_error(
    checkpointed_run, class_store: Path
) -> None:
    out, cfg, rows = checkpointed_run
    weights = list_checkpoints(out)[-1] / "student.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointTamperedError, match="modified") as err:
        load_latest_checkpoint(out)
    assert "student.safetensors" in str(err.value)
    with pytest.raises(ValueError, match="modified"):
        fit(cfg, SubtomogramStore(class_store), rows, out_dir=out, resume=True)


def test_edited_state_json_is_rejected(checkpointed_run) -> None:
    out, _, _ = checkpointed_run
    state = list_checkpoints(out)[-1] / "state.json"
    body = json.loads(state.read_text())
    body["epoch"] = 0
    state.write_text(json.dumps(body))
    with pytest.raises(CheckpointTamperedError, match="edited"):
        load_latest_checkpoint(out)


def test_modified_final_weights_are_refused_by_load_run(checkpointed_run) -> None:
    out, _, _ = checkpointed_run
    assert load_run(out).student is not None
    weights = out / "teacher.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointTamperedError, match="teacher.safetensors"):
        load_run(out)


def test_resume_refuses_another_configuration_and_a_used_folder(
    checkpointed_run, class_store: Path, capsys: pytest.CaptureFixture
) -> None:
    out, cfg, rows = checkpointed_run
    store = SubtomogramStore(class_store)
    with pytest.raises(ValueError, match="changed: lr"):
        fit(cfg.updated(lr=0.5), store, rows, out_dir=out, resume=True)
    with pytest.raises(ValueError, match="different samples"):
        fit(cfg, store, rows[:-1], out_dir=out, resume=True)
    assert run(["train", str(class_store), "--out", str(out), "--preset", "tiny", "-q"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizer_state_survives_the_split_into_tensors_and_json(optimizer: str) -> None:
    model = torch.nn.Linear(3, 2)
    opt = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD)(
        model.parameters(), lr=0.1, **({"momentum": 0.9} if optimizer == "sgd" else {})
    )
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, js = split_optimizer_state(opt.state_dict(), "optim")
    json.dumps(js)  # plain JSON, no pickle
    fresh = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD)(
        model.parameters(), lr=0.3
    )
    fresh.load_state_dict(join_optimizer_state(json.loads(json.dumps(js)), tensors))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 0.1
    for pid, entries in a["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(b["state"][pid][key]), torch.as_tensor(value))


def test_torchrun_with_two_processes_matches_one_process(class_store: Path, tmp_path: Path) -> None:
    """DDP (gloo on CPU): the global batch is split over ranks and gradients averaged."""
    args = ["--preset", "tiny", "--student-preset", "tiny", "--epochs", "1", "--batch-size",
            "16", "--lr", "0.05", "--set", "optimizer=sgd", "--set", "norm=group",
            "--val-fraction", "0.25", "-q"]  # fmt: skip
    cfg = TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=1, batch_size=16,
                      lr=0.05, optimizer="sgd", norm="group", val_fraction=0.25)  # fmt: skip
    train_store(class_store, tmp_path / "one", cfg)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*torchrun, "-m", "cryoal", "train", str(class_store), "--out", str(tmp_path / "two"), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained classify teacher") == 1  # rank 0 reports
    one, two = load_run(tmp_path / "one"), load_run(tmp_path / "two")
    assert two.metrics["final"]["processes"] == 2
    for name in ("teacher", "student"):
        a, b = getattr(one, name).state_dict(), getattr(two, name).state_dict()
        for k in a:
            # float rounding differs (gradients summed over ranks); a missing average or a
            # wrong shard would move weights by 1e-2 and more
            torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-3, msg=f"{name} {k}")
    for key in ("task_loss", "transfer_loss"):
        assert two.metrics["final"]["train"][key] == pytest.approx(
            one.metrics["final"]["train"][key], abs=1e-5
        )


def test_each_rank_takes_its_share_of_every_global_batch() -> None:
    from cryoal.train.distributed import DistContext, shard

    batches = np.arange(24).reshape(3, 8)
    parts = [shard(batches, DistContext(rank=r, world_size=2)) for r in range(2)]
    assert parts[0].shape == parts[1].shape == (3, 4)
    assert sorted(np.concatenate([p.ravel() for p in parts]).tolist()) == list(range(24))
    assert np.array_equal(shard(batches, DistContext()), batches)
