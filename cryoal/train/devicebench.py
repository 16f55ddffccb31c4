"""A short micro-benchmark of the training device (``cryoal device-bench``).

Reports what a user needs before submitting jobs: the device (name, memory, bf16 support,
torch / CUDA / NCCL versions), training samples/s of a preset in float32 and with mixed
precision (their ratio is the AMP speed-up on this device), inference samples/s (the
scoring rate), and, on CUDA, host-to-device copy bandwidth from pinned memory. Each figure
is the best of a few repetitions after a warm-up, so a run takes seconds.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cryoal.models import build_model
from cryoal.train.distributed import (
    amp_dtype,
    autocast_context,
    grad_scaler,
    resolve_device,
    to_device,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def device_info(device: torch.device) -> dict[str, Any]:
    """Name, memory and capabilities of ``device`` and the torch build."""
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "name": props.name,
            "memory_GiB": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}",
            "bf16": bool(torch.cuda.is_bf16_supported()),
            "cuda": torch.version.cuda,
            "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        }
    else:
        info |= {"name": platform.processor() or platform.machine(),
                 "threads": torch.get_num_threads()}  # fmt: skip
    return info


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: str) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = grad_scaler(x.device, amp)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with autocast_context(x.device, amp):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def device_benchmark(
    device: str = "auto",
    *,
    preset: str = "teacher",
    box: int = 32,
    batch_size: int = 32,
    amp: str = "auto",
    channels_last: bool = False,
    reps: int = 3,
) -> dict[str, Any]:
    """Measure training and inference throughput of ``preset`` on ``device``.

    Parameters
    ----------
    device
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    preset, box, batch_size
        Classification preset, input edge in voxels and batch size.
    amp
        The mixed-precision mode compared with float32 (``auto``: bf16 where the GPU
        supports it, fp16 on older GPUs; on CPU ``auto`` is off, so pass ``bf16`` to
        measure CPU autocast).
    channels_last
        Use ``channels_last_3d`` for model and inputs.
    reps
        Timed repetitions per figure (best kept).

    Returns
    -------
    dict
        ``info`` (:func:`device_info`), ``train_samples_per_s`` {``fp32``, amp mode},
        ``amp_speedup``, ``infer_samples_per_s`` (fp32), and on CUDA
        ``h2d_GB_per_s`` (pinned host memory to device).
    """
    dev = resolve_device(device)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = (
        torch.randn(batch_size, 1, box, box, box, generator=gen)
        .to(dev)
        .contiguous(memory_format=fmt)
    )
    y = torch.randint(0, 2, (batch_size,), generator=gen).to(dev)
    out: dict[str, Any] = {"info": device_info(dev), "preset": preset, "box": box,
                           "batch_size": batch_size, "channels_last": channels_last}  # fmt: skip
    modes = ["off"] + ([amp] if amp_dtype(dev, amp) is not None else [])
    train: dict[str, float] = {}
    for mode in modes:
        model = to_device(build_model("classify", preset, 2, seed=0), dev, fmt).train()
        t = _best(_train_step(model, x, y, mode), dev, reps)
        train["fp32" if mode == "off" else mode] = batch_size / t
    out["train_samples_per_s"] = train
    if len(train) == 2:
        out["amp_mode"] = modes[1]
        out["amp_speedup"] = train[modes[1]] / train["fp32"]
    model = to_device(build_model("classify", preset, 2, seed=0), dev, fmt).eval()

    def infer() -> None:
        with torch.inference_mode():
            model(x)

    out["infer_samples_per_s"] = batch_size / _best(infer, dev, reps)
    if dev.type == "cuda":
        host = torch.empty(64 * 2**20, dtype=torch.uint8).pin_memory()
        t = _best(lambda: host.to(dev, non_blocking=True), dev, reps)
        out["h2d_GB_per_s"] = host.numel() / t / 1e9
    return out
