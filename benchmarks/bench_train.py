"""Training and prediction throughput against the machine's conv3d ceiling, and quality.

Figures (all measured in one run, so they can be compared on a shared, noisy machine):

1. Ceiling: the best FLOP/s of large 3D convolutions (64 -> 64 channels, 3^3 kernel, 32^3,
   and 128 -> 128 at 16^3; contiguous and channels_last_3d), inference mode.
2. Prediction: samples/s of each classification preset on 32^3 boxes (model forward in
   ``torch.inference_mode``), over batch sizes and memory formats; achieved GFLOP/s
   (``torch.utils.flop_counter.FlopCounterMode``) as a fraction of the ceiling; plus the
   end-to-end KT scoring path (``stream_outputs`` over an HDF5 store, teacher + student).
3. Training: samples/s of one optimisation step (teacher alone, and teacher + student as in
   KT training) with its forward + backward FLOPs.
4. Quality: the default teacher and student trained with the default configuration on the
   simulated 10-class set (shared SHREC templates, SNR 0.1, ±60° wedge, CTF; 2,000
   training samples), evaluated on 1,000 held-out samples.

Parts 1-3 run at each thread count given by ``--threads`` (default "1,2"): on a machine
shared with other jobs, two threads that synchronise on every small op suffer far more
than one, so both are reported.

The quality run trains with ``--quality-threads`` (default 1: on a shared machine one
thread is the steadier choice; the figure is an accuracy, not a speed).

Usage: ``python benchmarks/run.py train [--threads=1,2] [--no-quality] [--epochs=15]
[--quality-threads=1]``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cryoal.models import build_model, count_parameters

WORK = Path(__file__).resolve().parent / "_work" / "train"
BOX = 32
PRESETS = ("tiny", "student", "teacher", "wide")


def _best_time(fn: Callable[[], object], reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _fmt(memory_format: torch.memory_format) -> str:
    return "channels_last_3d" if memory_format == torch.channels_last_3d else "contiguous"


def conv3d_ceiling() -> tuple[float, str]:
    """Best measured FLOP/s of large 3D convolutions (inference)."""
    best, label = 0.0, ""
    for n, c, s in ((8, 64, 32), (8, 128, 16)):
        conv = torch.nn.Conv3d(c, c, 3, padding=1, bias=False).eval()
        x0 = torch.randn(n, c, s, s, s)
        for fmt in (torch.contiguous_format, torch.channels_last_3d):
            m = conv.to(memory_format=fmt)
            x = x0.contiguous(memory_format=fmt)
            with torch.inference_mode():
                rate = _flops(lambda m=m, x=x: m(x)) / _best_time(lambda m=m, x=x: m(x))
            if rate > best:
                best, label = rate, f"conv3d {c}->{c}, 3^3, {n}x{s}^3, {_fmt(fmt)}"
    return best, label


def predict_table(peak: float) -> tuple[list[str], dict[str, dict]]:
    rows, best_cfg = [], {}
    for preset in PRESETS:
        model = build_model("classify", preset, 10, seed=0).eval()
        for bs in (32, 64, 128):
            for fmt in (torch.contiguous_format, torch.channels_last_3d):
                m = model.to(memory_format=fmt)
                x = torch.randn(bs, 1, BOX, BOX, BOX).contiguous(memory_format=fmt)
                with torch.inference_mode():
                    flops = _flops(lambda m=m, x=x: m(x))
                    t = _best_time(lambda m=m, x=x: m(x), reps=4)
                rate = bs / t
                frac = flops / t / peak
                if preset not in best_cfg or rate > best_cfg[preset]["rate"]:
                    best_cfg[preset] = {"rate": rate, "bs": bs, "fmt": fmt, "frac": frac}
                rows.append(
                    f"| {preset} | {bs} | {_fmt(fmt)} | {rate:,.0f} | {flops / bs / 1e6:.1f} | "
                    f"{flops / t / 1e9:.1f} | {100 * frac:.0f} % |"
                )
    return rows, best_cfg


def train_table(peak: float) -> list[str]:
    from cryoal.train.config import TrainConfig
    from cryoal.train.losses import transfer_loss

    rows = []
    bs = 32
    x = torch.randn(bs, 1, BOX, BOX, BOX)
    y = torch.randint(0, 10, (bs,))
    cfg = TrainConfig()
    for preset in PRESETS:
        for joint in (False, True):
            teacher = build_model("classify", preset, 10, seed=0)
            student = build_model("classify", "student", 10, seed=1) if joint else None
            params = list(teacher.parameters()) + (list(student.parameters()) if joint else [])
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

            def step(teacher=teacher, student=student, opt=opt) -> None:
                t_logits = teacher(x)
                loss = torch.nn.functional.cross_entropy(t_logits, y)
                if student is not None:
                    loss = loss + transfer_loss(t_logits.detach(), student(x))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            flops = _flops(step)
            t = _best_time(step, reps=4)
            what = f"{preset} + student (KT)" if joint else f"{preset} alone"
            rows.append(
                f"| {what} | {bs} | {t:.3f} | {bs / t:,.0f} | {flops / t / 1e9:.1f} | "
                f"{100 * flops / t / peak:.0f} % |"
            )
    return rows


def scoring_rate(best_cfg: dict[str, dict]) -> str:
    """End-to-end KT scoring: stream_outputs over an HDF5 store, teacher + student."""
    from cryoal.io.store import StoreWriter, SubtomogramStore
    from cryoal.train.predict import stream_outputs

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "pool.h5"
    n = 1024
    if not path.exists():
        rng = np.random.default_rng(0)
        with StoreWriter(path, BOX, 10.0, [f"c{k}" for k in range(10)], overwrite=True) as w:
            for start in range(0, n, 256):
                w.append(rng.standard_normal((256, BOX, BOX, BOX)).astype(np.float32),
                         [f"p:{i:06d}" for i in range(start, start + 256)])  # fmt: skip
    store = SubtomogramStore(path)
    teacher = build_model("classify", "teacher", 10, seed=0)
    student = build_model("classify", "student", 10, seed=1)
    cfg = best_cfg["teacher"]
    cl = cfg["fmt"] == torch.channels_last_3d
    models = {"teacher": teacher, "student": student}

    def run() -> int:
        outs = stream_outputs(models, store, np.arange(n), batch_size=cfg["bs"], channels_last=cl)
        return sum(len(o.indices) for o in outs)

    t = _best_time(run, reps=2)
    compute = 1.0 / best_cfg["teacher"]["rate"] + 1.0 / best_cfg["student"]["rate"]
    return (
        f"KT scoring of a {n}-sample HDF5 pool (teacher + student, batch {cfg['bs']}, "
        f"{_fmt(cfg['fmt'])}): **{n / t:,.0f} samples/s**, "
        f"{100 * (n * compute) / t:.0f} % of the two models' pure-compute rate."
    )


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def perf_section(threads: int) -> str:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    load_before = _load()
    try:
        peak, label = conv3d_ceiling()
        pred_rows, best_cfg = predict_table(peak)
        train_rows = train_table(peak)
        scoring = scoring_rate(best_cfg)
    finally:
        torch.set_num_threads(previous)
    load = (
        f"Machine load (1-minute average) {load_before} before and {_load()} after this "
        f"section, on {os.cpu_count()} cores: other jobs were running; with load above the "
        "core count, multi-threaded small-op timings suffer most (threads wait for each "
        "other at every op), so the 1-thread figures are the steadier ones."
    )
    best = "; ".join(
        f"{p}: {c['rate']:,.0f}/s at batch {c['bs']} {_fmt(c['fmt'])} ({100 * c['frac']:.0f} % of peak)"
        for p, c in best_cfg.items()
    )
    return "\n".join(
        [
            f"### {threads} thread{'s' if threads > 1 else ''}",
            "",
            load,
            "",
            f"Ceiling: **{peak / 1e9:.0f} GFLOP/s** ({label}).",
            "",
            "Prediction (forward, `torch.inference_mode`, 32^3, 10 classes):",
            "",
            "| preset | batch | memory format | samples/s | MFLOP/sample | GFLOP/s | of ceiling |",
            "|---|---|---|---|---|---|---|",
            *pred_rows,
            "",
            f"Best per preset: {best}.",
            "",
            scoring,
            "",
            "Training step (AdamW, batch 32, 32^3; forward + backward + update):",
            "",
            "| model | batch | s/step | samples/s | GFLOP/s | of ceiling |",
            "|---|---|---|---|---|---|",
            *train_rows,
            "",
        ]
    )


def quality_section(epochs: int) -> str:
    from cryoal.io.store import SubtomogramStore
    from cryoal.sim.subtomograms import simulate_subtomograms
    from cryoal.train.config import TrainConfig
    from cryoal.train.evaluate import evaluate
    from cryoal.train.fit import fit

    templates = Path(__file__).resolve().parents[2] / "shared" / "structures" / "maps_10A"
    if not templates.is_dir():
        return f"Quality: skipped ({templates} not found)."
    WORK.mkdir(parents=True, exist_ok=True)
    common = dict(templates=templates, n_classes=10, box=BOX, snr=0.1, seed=0, overwrite=True)
    train_path, test_path = WORK / "sim_train.h5", WORK / "sim_test.h5"
    t0 = time.perf_counter()
    simulate_subtomograms(train_path, per_class=200, **common)
    simulate_subtomograms(test_path, per_class=100, start_index=2000, **common)
    sim_s = time.perf_counter() - t0
    train, test = SubtomogramStore(train_path), SubtomogramStore(test_path)
    cfg = TrainConfig(epochs=epochs)
    t0 = time.perf_counter()
    result = fit(cfg, train, np.arange(len(train)))
    train_s = time.perf_counter() - t0
    m = evaluate(result.teacher, result.student, test, np.arange(len(test)),
                 task="classify", class_names=test.class_names)  # fmt: skip
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in m["teacher"]["per_class_accuracy"].items())
    return "\n".join(
        [
            "### Quality: default presets on the simulated 10-class set",
            "",
            f"10 SHREC templates, 32^3 at 10 Å, SNR 0.1, ±60° wedge, CTF; 2,000 training "
            f"samples (all labeled), 1,000 held-out test samples (simulated in {sim_s:.0f} s). "
            f"Default `TrainConfig` ({cfg.epochs} epochs, batch {cfg.batch_size}, AdamW "
            f"{cfg.lr:g}, cosine, flips): teacher `{cfg.teacher_preset}` "
            f"({count_parameters(result.teacher):,} parameters), student "
            f"`{cfg.student_preset}` ({count_parameters(result.student):,}); "
            f"{torch.get_num_threads()} thread(s), {train_s:.0f} s training (machine load "
            f"{_load()}).",
            "",
            "| model | test accuracy | macro-F1 |",
            "|---|---|---|",
            f"| teacher | {m['teacher']['accuracy']:.3f} | {m['teacher']['macro_f1']:.3f} |",
            f"| student | {m['student']['accuracy']:.3f} | {m['student']['macro_f1']:.3f} |",
            "",
            f"Teacher–student agreement on the test set: **{m['agreement']:.3f}**; mean "
            f"KL(p_T‖p_S) {m['distance']:.3f}. Teacher per-class accuracy: {per_class}.",
            "",
        ]
    )


def allocator_ab(threads: int) -> str:
    """Teacher prediction before and after :func:`cryoal.train.perf.tune_cpu_allocator`."""
    from cryoal.train.perf import tune_cpu_allocator

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_model("classify", "teacher", 10, seed=0).eval()
        x = torch.randn(64, 1, BOX, BOX, BOX)
        with torch.inference_mode():
            before = _best_time(lambda: model(x), reps=6)
            applied = tune_cpu_allocator()
            after = _best_time(lambda: model(x), reps=6)
    finally:
        torch.set_num_threads(previous)
    return (
        f"Allocator: teacher forward, batch 64, {threads} thread(s): {64 / before:,.0f} "
        f"samples/s with glibc's default malloc, {64 / after:,.0f} samples/s after "
        f"`tune_cpu_allocator()` ({'applied' if applied else 'not available here'}; "
        f"x{before / after:.2f}). The `cryoal` commands apply it; all figures below use it."
    )


def main(argv: list[str]) -> str:
    opts = dict(a.lstrip("-").split("=", 1) if "=" in a else (a.lstrip("-"), "1") for a in argv)
    threads = [int(t) for t in opts.get("threads", "1,2").split(",")]
    parts = [
        "Throughput of the classification presets at 32^3 next to the conv3d ceiling "
        "measured in the same run, and the quality of the default teacher and student.",
        "",
        allocator_ab(threads[0]),
        "",
    ]
    for n in threads:
        parts.append(perf_section(n))
    if "no-quality" not in opts:
        qthreads = int(opts.get("quality-threads", 1))
        previous = torch.get_num_threads()
        torch.set_num_threads(qthreads)
        try:
            parts.append(quality_section(int(opts.get("epochs", 15))))
        finally:
            torch.set_num_threads(previous)
    return "\n".join(parts)
