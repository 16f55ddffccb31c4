"""Go/no-go of self-supervised pretraining: is the pool's embedding worth building on?

On the ``cpu`` preset's data (10 SHREC templates, 32^3 at 10 Å, ±60° wedge, CTF; pool
2,000, test 3,000; SNR and pool imbalance selectable), in stages that each land in
``--out`` before the next starts (a killed run resumes where it stopped):

0. ``throughput`` — a pretraining step against a supervised step of the same teacher,
   interleaved in one process (samples/s, best of 3).
1. ``pretrain`` — the teacher's encoder pretrained on the pool (never the test set) with
   each objective (``ntxent``, ``vicreg``; ``ntxent+pairs``: with its two views made from
   each sample's two half reconstructions, which ``--halves=1`` simulates; ``ntxent@60``:
   60 epochs instead of ``--epochs``, so lengths compare in one run); wall time and
   samples/s, as a ratio to the supervised training step measured in the same run.
2. ``probe`` — the frozen embedding: kNN (k = 10, capped at the labels) and linear-probe
   test accuracy with ``--draws`` class-stratified random label draws per budget; and what
   the embedding groups by: leave-one-out 10-NN agreement over the pool for the class, the
   orientation (octant of the particle's rotated z axis) and the defocus (quartile), each
   as a ratio to chance.
3. ``finetune`` — the teacher trained as the ``cpu`` preset trains it (500 optimizer steps,
   batch 32, class-balanced sampling, EMA weights, flips) on the same draws, from random
   weights (R0, today's training) and from each pretrained encoder; paired differences
   to R0 with 95 % t-intervals over the draws.

Usage: ``python benchmarks/run.py pretrain [--out=DIR] [--snr=0.1] [--imbalance=1] [--halves=0]
[--objectives=ntxent,vicreg] [--epochs=60] [--budgets=50,100,300,600] [--draws=5]
[--finetune-draws=5] [--stages=throughput,pretrain,probe,finetune] [--encoder-lr-scale=1.0]
[--threads=2] [--image=pretrain_gonogo_snr01.png]``

The plot is written to ``--out`` and copied to ``docs/images/`` (``--image``; by default
named from the SNR and imbalance, e.g. ``pretrain_gonogo_snr005_lt10.png``), the path the
report names, so that the results file points into the repository.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

WORK = Path(__file__).resolve().parent / "_work" / "pretrain"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
CHANCE_K = 10


def _opts(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--"))


class _Ledger:
    """``results.jsonl`` in the output folder: one record per finished measurement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.records[rec["key"]] = rec

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, key: str, **values: Any) -> dict[str, Any]:
        rec = {"key": key, **values}
        with self.path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
        self.records[key] = rec
        return rec

    def where(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if all(r.get(k) == v for k, v in match.items())]


def _draw(store: Any, pool: np.ndarray, n: int, draw: int) -> np.ndarray:
    from cryoal.benchmark.data import stratified_initial

    return store.index_of(stratified_initial(store, pool, n, 1000 + draw))


def _octants(quat_xyzw: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    z = Rotation.from_quat(quat_xyzw).apply([0.0, 0.0, 1.0])
    return ((z[:, 0] > 0) * 4 + (z[:, 1] > 0) * 2 + (z[:, 2] > 0)).astype(np.int64)


def _quartiles(values: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.quantile(values, [0.25, 0.5, 0.75]), values).astype(np.int64)


def _pretrain_stage(ctx: dict[str, Any], ledger: _Ledger) -> None:
    from cryoal.pretrain import PretrainConfig, pretrain_cached

    for obj in ctx["objectives"]:
        key = f"pretrain:{obj}"
        if ledger.get(key):
            continue
        variant, _, epochs = obj.partition("@")
        objective, _, pairs = variant.partition("+")
        if pairs and (pairs != "pairs" or not ctx["store"].has_halves):
            raise SystemExit(f"bench_pretrain: {obj!r} needs the half pairs of --halves=1")
        if epochs and not epochs.isdigit():
            raise SystemExit(
                f"bench_pretrain: {obj!r}: write the epochs as a whole number, e.g. ntxent@60"
            )
        cfg = PretrainConfig(
            objective=objective,
            epochs=int(epochs) if epochs else ctx["epochs"],
            seed=0,
            noise_pairs=bool(pairs),
        )
        t0 = time.perf_counter()
        enc = pretrain_cached(cfg, ctx["store"], ctx["pool"], ctx["out"] / "encoders")
        hist = enc.info["history"]
        steps = len(hist) * (ctx["pool"].size // cfg.batch_size)
        ledger.add(
            key, stage="pretrain", objective=obj, encoder=str(enc.path),
            wall_s=round(time.perf_counter() - t0, 1), train_s=enc.info["elapsed_s"],
            samples_per_s=steps * cfg.batch_size / max(1e-9, enc.info["elapsed_s"]),
            first_loss=hist[0]["loss"], final_loss=hist[-1]["loss"], epochs=len(hist),
        )  # fmt: skip


def _throughput(objective: str, box: int, train: Any) -> tuple[float, float]:
    """Samples/s of a pretraining step and of a supervised step of the same teacher."""
    import torch
    import torch.nn.functional as F

    from cryoal.models import build_model
    from cryoal.pretrain import PretrainConfig
    from cryoal.pretrain.run import _Run

    cfg = PretrainConfig(objective=objective, preset=train.teacher_preset)
    run = _Run(cfg, 10_000, torch.device("cpu"))
    x_pre = torch.randn(cfg.batch_size, 1, box, box, box)
    teacher = build_model("classify", train.teacher_preset, 10, seed=0)
    opt = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
    x_sup = torch.randn(train.batch_size, 1, box, box, box)
    y_sup = torch.randint(0, 10, (train.batch_size,))

    def supervised() -> None:
        opt.zero_grad()
        F.cross_entropy(teacher(x_sup), y_sup).backward()
        opt.step()

    best = {"pre": float("inf"), "sup": float("inf")}
    for _ in range(3):
        for name, fn in (("pre", lambda: run.step(x_pre)), ("sup", supervised)):
            fn()  # warm
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / 5)
    return x_pre.shape[0] / best["pre"], x_sup.shape[0] / best["sup"]


def _throughput_stage(ctx: dict[str, Any], ledger: _Ledger) -> None:
    """Pretraining against supervised steps of the same teacher, interleaved, best of 3."""
    for obj in ctx["objectives"]:
        key = f"throughput:{obj}"
        if ledger.get(key):
            continue
        pre_rate, sup_rate = _throughput(obj.partition("+")[0], ctx["store"].box, ctx["train"])
        ledger.add(key, stage="throughput", objective=obj, pretrain_samples_per_s=pre_rate,
                   supervised_samples_per_s=sup_rate)  # fmt: skip


def _probe_stage(ctx: dict[str, Any], ledger: _Ledger) -> None:
    from cryoal.pretrain import embed_rows, load_encoder
    from cryoal.pretrain.probe import knn_accuracy, linear_probe_accuracy, neighbour_agreement

    store, pool, test = ctx["store"], ctx["pool"], ctx["test"]
    y = store.labels
    for obj in ctx["objectives"]:
        enc = load_encoder(ledger.records[f"pretrain:{obj}"]["encoder"])
        feats = embed_rows(enc, store, np.concatenate([pool, test]))
        fp, ft = feats[: pool.size], feats[pool.size :]
        where = {int(r): k for k, r in enumerate(pool)}
        key = f"group:{obj}"
        if not ledger.get(key):
            attrs = {
                "class": y[pool],
                "orientation": _octants(store.meta("quaternion_xyzw")[pool]),
                "defocus": _quartiles(store.meta("defocus_um")[pool]),
            }
            agree = {a: neighbour_agreement(fp, v, CHANCE_K) for a, v in attrs.items()}
            chance = {a: float(np.max(np.bincount(v)) / v.size) for a, v in attrs.items()}
            ledger.add(key, stage="group", objective=obj, agreement=agree, chance=chance)
        for n in ctx["budgets"]:
            for d in range(ctx["draws"]):
                key = f"probe:{obj}:{n}:{d}"
                if ledger.get(key):
                    continue
                pos = np.array([where[int(r)] for r in _draw(store, pool, n, d)])
                knn = knn_accuracy(fp[pos], y[pool][pos], ft, y[test], k=min(CHANCE_K, n))
                lin = linear_probe_accuracy(fp[pos], y[pool][pos], ft, y[test])
                ledger.add(key, stage="probe", objective=obj, n=n, draw=d, knn=knn, linear=lin)


def _finetune_stage(ctx: dict[str, Any], ledger: _Ledger) -> None:
    from cryoal.train.evaluate import evaluate
    from cryoal.train.fit import fit

    store, pool, test = ctx["store"], ctx["pool"], ctx["test"]
    arms = {"scratch": None} | {
        f"ft-{o}": ledger.records[f"pretrain:{o}"]["encoder"] for o in ctx["objectives"]
    }
    base = ctx["train"].updated(student="none")
    for d in range(ctx["finetune_draws"]):
        for n in ctx["budgets"]:
            rows = _draw(store, pool, n, d)
            for arm, enc in arms.items():
                key = f"finetune:{arm}:{n}:{d}:{ctx['lr_scale'] if enc else 1.0}"
                if ledger.get(key):
                    continue
                cfg = base.updated(
                    seed=d, encoder=enc, encoder_lr_scale=ctx["lr_scale"] if enc else None
                )
                t0 = time.perf_counter()
                res = fit(cfg, store, rows)
                train_s = time.perf_counter() - t0
                m = evaluate(res.teacher, None, store, test, task="classify",
                             class_names=store.class_names)["teacher"]  # fmt: skip
                ledger.add(
                    key, stage="finetune", arm=arm, n=n, draw=d, accuracy=m["accuracy"],
                    macro_f1=m["macro_f1"], train_s=round(train_s, 2),
                    samples_per_s=cfg.steps * cfg.batch_size / train_s if cfg.steps else None,
                )  # fmt: skip
                print(
                    f"finetune {arm} n={n} draw={d}: {m['accuracy']:.3f} ({train_s:.0f} s)",
                    flush=True,
                )


def _interval(values: list[float]) -> str:
    from cryoal.benchmark.stats import t_interval

    return str(t_interval(values)).replace("+", "") if values else "–"


def _report(ctx: dict[str, Any], ledger: _Ledger) -> str:
    from cryoal.benchmark.stats import t_interval

    lines = [
        f"Data: {ctx['data_line']}. Pretraining: {ctx['epochs']} epochs, batch 64 (two views "
        "each), AdamW 2e-3 cosine; views = wedge-safe flips, ±2 voxel shifts, added noise "
        "up to 0.5 × the sample's std (+pairs: made from the sample's two half "
        "reconstructions, one each, instead of the sample twice; @N: N epochs).",
        "",
    ]
    pre = ledger.where(stage="pretrain")
    if pre:
        lines += [
            "### Pretraining (wall time on a shared machine, as it ran)",
            "",
            "| objective | epochs | loss first → last | wall | samples/s over the run (two views each) |",
            "|---|---|---|---|---|",
        ]
        for r in pre:
            lines.append(
                f"| {r['objective']} | {r['epochs']} | {r['first_loss']:.3f} → {r['final_loss']:.3f} | "
                f"{r['train_s'] / 60:.1f} min | {r['samples_per_s']:.0f} |"
            )
        lines.append("")
    thr = ledger.where(stage="throughput")
    if thr:
        lines += [f"### Throughput (one process, {ctx['threads']} thread(s), interleaved steps, best of 3)", "",
                  "| objective | pretraining samples/s (2 views each) | supervised samples/s (teacher, batch 32) | ratio | per view |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in thr:
            ratio = r["pretrain_samples_per_s"] / r["supervised_samples_per_s"]
            lines.append(
                f"| {r['objective']} | {r['pretrain_samples_per_s']:.0f} | "
                f"{r['supervised_samples_per_s']:.0f} | {ratio:.2f} | {2 * ratio:.2f} |"
            )
        lines.append("")
    groups = ledger.where(stage="group")
    if groups:
        lines += ["### What the embedding groups by (leave-one-out 10-NN agreement over the pool ÷ chance)", "",
                  "| objective | class | orientation octant | defocus quartile |", "|---|---|---|---|"]  # fmt: skip
        for r in groups:
            a, c = r["agreement"], r["chance"]
            cells = [
                f"{a[k]:.3f} ({a[k] / c[k]:.1f}×)" for k in ("class", "orientation", "defocus")
            ]
            lines.append(f"| {r['objective']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _accuracy_table(ctx, ledger)
    lines += _objectives_table(ctx, ledger, t_interval)
    lines += _paired_table(ctx, ledger, t_interval)
    return "\n".join(lines)


def _accuracy_table(ctx: dict[str, Any], ledger: _Ledger) -> list[str]:
    budgets = ctx["budgets"]
    rows: list[tuple[str, dict[int, list[float]]]] = []
    for obj in ctx["objectives"]:
        for probe in ("knn", "linear"):
            vals = {
                n: [r[probe] for r in ledger.where(stage="probe", objective=obj, n=n)]
                for n in budgets
            }
            rows.append((f"{obj} frozen, {'kNN' if probe == 'knn' else 'linear probe'}", vals))
    for arm in ["scratch", *[f"ft-{o}" for o in ctx["objectives"]]]:
        vals = {
            n: [r["accuracy"] for r in ledger.where(stage="finetune", arm=arm, n=n)]
            for n in budgets
        }
        label = "R0: from scratch (today)" if arm == "scratch" else f"fine-tuned from {arm[3:]}"
        rows.append((label, vals))
    out = ["### Test accuracy (mean [95 % CI] over label draws; chance 0.10)", "",
           "| read-out | " + " | ".join(str(n) for n in budgets) + " |",
           "|---|" + "---|" * len(budgets)]  # fmt: skip
    for label, vals in rows:
        if any(vals.values()):
            out.append(f"| {label} | " + " | ".join(_interval(vals[n]) for n in budgets) + " |")
    return [*out, ""]


def _objectives_table(ctx: dict[str, Any], ledger: _Ledger, t_interval: Any) -> list[str]:
    """The first objective minus each other one, paired by label draw."""
    objs = ctx["objectives"]
    if len(objs) < 2:
        return []
    out = [f"### {objs[0]} minus the other objectives, paired by label draw (95 % CI)", "",
           "| objective, read-out | " + " | ".join(str(n) for n in ctx["budgets"]) + " |",
           "|---|" + "---|" * len(ctx["budgets"])]  # fmt: skip

    def by_draw(objective: str, read_out: str, n: int) -> dict[int, float]:
        if read_out == "accuracy":  # fine-tuned
            rows = ledger.where(stage="finetune", arm=f"ft-{objective}", n=n)
        else:
            rows = ledger.where(stage="probe", objective=objective, n=n)
        return {r["draw"]: r[read_out] for r in rows}

    names = {"knn": "kNN", "linear": "linear probe", "accuracy": "fine-tuned"}
    for other in objs[1:]:
        for read_out, name in names.items():
            cells = []
            for n in ctx["budgets"]:
                a, b = by_draw(objs[0], read_out, n), by_draw(other, read_out, n)
                diffs = [a[d] - b[d] for d in sorted(set(a) & set(b))]
                cells.append(str(t_interval(diffs)) if diffs else "–")
            if read_out != "accuracy" or any(c != "–" for c in cells):
                out.append(f"| − {other}, {name} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _paired_table(ctx: dict[str, Any], ledger: _Ledger, t_interval: Any) -> list[str]:
    out = ["### Fine-tuned minus from scratch, paired by label draw (95 % CI)", "",
           "| encoder | " + " | ".join(str(n) for n in ctx["budgets"]) + " |",
           "|---|" + "---|" * len(ctx["budgets"])]  # fmt: skip
    any_row = False
    for obj in ctx["objectives"]:
        cells = []
        for n in ctx["budgets"]:
            base = {
                r["draw"]: r["accuracy"] for r in ledger.where(stage="finetune", arm="scratch", n=n)
            }
            ft = {
                r["draw"]: r["accuracy"]
                for r in ledger.where(stage="finetune", arm=f"ft-{obj}", n=n)
            }
            diffs = [ft[d] - base[d] for d in sorted(set(base) & set(ft))]
            cells.append(str(t_interval(diffs)) if diffs else "–")
            any_row = any_row or bool(diffs)
        out.append(f"| {obj} | " + " | ".join(cells) + " |")
    return [*out, ""] if any_row else []


def _plot(ctx: dict[str, Any], ledger: _Ledger, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    budgets = ctx["budgets"]

    def curve(values: dict[int, list[float]], label: str, style: str) -> None:
        ns = [n for n in budgets if values[n]]
        if ns:
            ax.plot(ns, [np.mean(values[n]) for n in ns], style, label=label)

    for arm in ["scratch", *[f"ft-{o}" for o in ctx["objectives"]]]:
        vals = {
            n: [r["accuracy"] for r in ledger.where(stage="finetune", arm=arm, n=n)]
            for n in budgets
        }
        curve(vals, "from scratch (R0)" if arm == "scratch" else f"fine-tuned ({arm[3:]})", "o-")
    for obj in ctx["objectives"]:
        vals = {
            n: [r["linear"] for r in ledger.where(stage="probe", objective=obj, n=n)]
            for n in budgets
        }
        curve(vals, f"linear probe ({obj})", "s--")
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Pretraining go/no-go: {ctx['title']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> str:
    import torch

    from cryoal.benchmark.config import load_benchmark_config
    from cryoal.benchmark.data import prepare_data
    from cryoal.io.store import SubtomogramStore
    from cryoal.train.perf import tune_cpu_allocator

    o = _opts(argv)
    torch.set_num_threads(int(o.get("threads", 2)))
    tune_cpu_allocator()
    snr, imb = float(o.get("snr", 0.1)), float(o.get("imbalance", 1))
    data: dict[str, Any] = {"snr": snr}
    if imb != 1:
        data.update(pool_imbalance=imb, per_class=800)
    if o.get("halves", "0") == "1":
        data["halves"] = True
    cfg = load_benchmark_config("cpu", overrides={"data": data})
    out = Path(o.get("out", WORK / f"snr{snr:g}_imb{imb:g}"))
    out.mkdir(parents=True, exist_ok=True)
    path, pool, test = prepare_data(cfg, out)
    ctx: dict[str, Any] = {
        "out": out, "store": SubtomogramStore(path), "pool": pool, "test": test,
        "objectives": o.get("objectives", "ntxent,vicreg").split(","),
        "epochs": int(o.get("epochs", 60)),
        "budgets": [int(b) for b in o.get("budgets", "50,100,300,600").split(",")],
        "draws": int(o.get("draws", 5)), "train": cfg.train,
        "finetune_draws": int(o.get("finetune-draws", o.get("draws", 5))),
        "lr_scale": float(o.get("encoder-lr-scale", 1.0)),
        "threads": int(o.get("threads", 2)),
        "title": f"SNR {snr:g}" + (f", {imb:g}:1 long-tailed pool" if imb != 1 else ", balanced pool"),
        "data_line": f"SNR {snr:g}, pool {pool.size:,}" + (f" ({imb:g}:1 long-tailed)" if imb != 1 else " (balanced)") + f", test {test.size:,}",
    }  # fmt: skip
    ledger = _Ledger(out / "results.jsonl")
    stages = o.get("stages", "throughput,pretrain,probe,finetune").split(",")
    for name, fn in (
        ("throughput", _throughput_stage),
        ("pretrain", _pretrain_stage),
        ("probe", _probe_stage),
        ("finetune", _finetune_stage),
    ):
        if name in stages:
            fn(ctx, ledger)
            (out / f"{name}.done").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    png = out / "pretrain_gonogo.png"
    _plot(ctx, ledger, png)
    tag = f"snr{snr:g}".replace(".", "") + (f"_lt{imb:g}" if imb != 1 else "")
    image = IMAGES / o.get("image", f"pretrain_gonogo_{tag}.png")
    image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, image)
    return _report(ctx, ledger) + f"\n\nPlot: `docs/images/{image.name}`.\n"
