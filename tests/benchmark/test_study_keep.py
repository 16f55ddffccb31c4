"""benchmarks/study/keep.py: a study's finished runs and its pool encoder carried between
sittings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

KEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "study" / "keep.py"


def _keep_module():  # noqa: ANN202 - the script as a module
    spec = importlib.util.spec_from_file_location("study_keep", KEEP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finished_runs(out: Path, arms: tuple[str, ...]) -> None:
    """A finished seed-0 run state of each arm in the benchmark folder ``out``."""
    for arm in arms:
        state = out / "runs" / arm / "seed_0" / "state.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"phase": "done"}))


def test_saved_runs_and_encoder_come_back_in_the_next_sittings_folder(tmp_path, monkeypatch):
    keep = _keep_module()
    monkeypatch.setattr(keep, "KEPT", tmp_path / "kept")
    out = tmp_path / "sitting1"
    for seed, phase in ((0, "done"), (1, "train")):
        state = out / "runs" / "random" / f"seed_{seed}" / "state.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"phase": phase}))
    encoder = out / "encoders" / "abc123"
    encoder.mkdir(parents=True)
    (encoder / "encoder.safetensors").write_bytes(b"\x00weights\x01")
    (encoder / "encoder.json").write_text(json.dumps({"objective": "ntxent", "sha256": "x"}))
    (encoder / "checkpoints").mkdir()  # a finished encoder's checkpoints are not kept

    keep.save(out, "pool")
    kept = tmp_path / "kept" / "pool"
    assert (kept / "runs" / "random" / "seed_0" / "state.json").is_file()
    assert not (kept / "runs" / "random" / "seed_1").exists()  # unfinished: trained again
    assert json.loads((kept / "pretraining.json").read_text())["objective"] == "ntxent"
    assert not (kept / "encoders" / "abc123" / "checkpoints").exists()

    again = tmp_path / "sitting2"
    keep.restore("pool", again)
    assert (again / "runs" / "random" / "seed_0" / "state.json").is_file()
    for name in ("encoder.safetensors", "encoder.json"):
        assert (again / "encoders" / "abc123" / name).read_bytes() == (encoder / name).read_bytes()
    # a restore never overwrites what the folder already holds
    (again / "encoders" / "abc123" / "encoder.safetensors").write_bytes(b"newer")
    keep.restore("pool", again)
    assert (again / "encoders" / "abc123" / "encoder.safetensors").read_bytes() == b"newer"


def test_a_kept_study_keeps_only_its_own_arms(tmp_path, monkeypatch):
    """Runs of another study restored into the output folder for reuse are not copied into
    this study's kept folder (they are kept where they came from)."""
    import cryoal.benchmark.report

    keep = _keep_module()
    monkeypatch.setattr(keep, "KEPT", tmp_path / "kept")
    rebuilt = []
    monkeypatch.setattr(cryoal.benchmark.report, "write_reports", lambda cfg, d: rebuilt.append(d))
    kept = tmp_path / "kept" / "semi"
    kept.mkdir(parents=True)
    (kept / "benchmark.yaml").write_text(
        "strategies:\n  - {name: random}\n"
        "  - {name: random, pretrained: true, train: {semi_supervised: fixmatch}, "
        "label: random-pretrained+semi}\n"
    )
    out = tmp_path / "sitting"
    _finished_runs(out, ("random", "random-pretrained_semi", "margin_div"))

    keep.save(out, "semi")
    assert sorted(p.name for p in (kept / "runs").iterdir()) == ["random", "random-pretrained_semi"]
    assert rebuilt == [kept]


def test_a_sitting_with_nothing_finished_keeps_nothing(tmp_path, monkeypatch):
    """A save before the first run of a new pool has finished writes no kept folder (whose
    empty reports would read as a pool with results)."""
    keep = _keep_module()
    monkeypatch.setattr(keep, "KEPT", tmp_path / "kept")
    out = tmp_path / "sitting"
    state = out / "runs" / "random" / "seed_0" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"phase": "train"}))
    (out / "benchmark.yaml").write_text("preset: cpu-seg\n")
    (out / "summary.md").write_text("# Segmentation benchmark\n")

    assert keep.save(out, "pool") == []
    assert not (tmp_path / "kept" / "pool").exists()


def test_a_later_stage_adds_its_arms_to_the_kept_study(tmp_path, monkeypatch):
    """A sitting whose configuration runs an arm the kept study had not yet run (the study's
    next stage) keeps that arm's finished runs, and the kept configuration names it."""
    import cryoal.benchmark.report
    from cryoal.benchmark.config import load_benchmark_config

    keep = _keep_module()
    monkeypatch.setattr(keep, "KEPT", tmp_path / "kept")
    monkeypatch.setattr(cryoal.benchmark.report, "write_reports", lambda cfg, d: None)
    kept = tmp_path / "kept" / "pool"
    kept.mkdir(parents=True)
    (kept / "benchmark.yaml").write_text("strategies:\n  - {name: random}\n")
    out = tmp_path / "stage2"
    out.mkdir()
    (out / "benchmark.yaml").write_text(
        "strategies:\n  - {name: random}\n  - {name: margin, label: margin}\n"
        "comparisons:\n  - [margin, random]\n"
    )
    _finished_runs(out, ("random", "margin", "restored-from-elsewhere"))

    keep.save(out, "pool")
    assert sorted(p.name for p in (kept / "runs").iterdir()) == ["margin", "random"]
    config = load_benchmark_config(None, kept / "benchmark.yaml")
    assert config.labels() == ["random", "margin"]
    assert [tuple(c) for c in config.comparisons] == [("margin", "random")]
    before = (kept / "benchmark.yaml").read_text()
    keep.save(out, "pool")  # nothing new: the kept configuration stays as it is
    assert (kept / "benchmark.yaml").read_text() == before


def _report_module():  # noqa: ANN202 - the script as a module
    spec = importlib.util.spec_from_file_location("study_report", KEEP.with_name("report.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through it
    spec.loader.exec_module(module)
    return module


def test_a_study_section_counts_runs_against_its_config_and_lists_pools_not_run(
    tmp_path, monkeypatch
):
    report = _report_module()
    monkeypatch.setattr(report, "KEPT", tmp_path / "kept")
    monkeypatch.setattr(report, "IMAGES", tmp_path / "images")
    (tmp_path / "images").mkdir()
    pool = tmp_path / "kept" / "seg_snr01"
    _finished_runs(pool, ("random", "kt-mean"))
    (pool / "benchmark.yaml").write_text("preset: cpu-seg\nseeds: [0, 1]\n")
    (pool / "summary.md").write_text("# Segmentation benchmark\n\n## Against random\n\n| row |\n")
    (pool / "curves.png").write_bytes(b"\x89PNG curves")
    study = report.STUDIES["seg_study"]
    text = report.build(report.Study(study.intro, study.pools, study.configs, study.command,
                                     stopped=frozenset({"entropy"})), "seg_study")  # fmt: skip
    # the seg_snr01 config's seven arms over two seeds, each short arm named
    assert "2 of 14 runs finished (still to run: random 1/2, random_foreground 0/2" in text
    assert "kt-mean 1/2" in text and "; stopped: entropy at 0/2." in text
    assert "entropy 0/2" not in text  # a stopped arm is not "still to run"
    assert "#### Against random" in text  # the pool's summary, headings two levels down
    assert "Not run yet: SNR 0.05." in text
    # a kept pool with its reports but no finished run yet is not run yet either
    empty = tmp_path / "kept" / "seg_snr005"
    empty.mkdir()
    (empty / "benchmark.yaml").write_text("preset: cpu-seg\nseeds: [0, 1]\n")
    (empty / "summary.md").write_text("# Segmentation benchmark\n")
    assert "Not run yet: SNR 0.05." in report.build(study, "seg_study")
    assert not (tmp_path / "images" / "seg_study_seg_snr005_curves.png").exists()
    assert (
        tmp_path / "images" / "seg_study_seg_snr01_curves.png"
    ).read_bytes() == b"\x89PNG curves"


def test_the_classification_study_configs_load_and_pin_the_pretraining_their_runs_used():
    from cryoal.benchmark.config import load_benchmark_config

    study = KEEP.parent
    pretrained = [p for p in sorted(study.glob("*.yaml")) if "pretrained: true" in p.read_text()]
    assert len(pretrained) >= 6
    for path in pretrained:
        cfg = load_benchmark_config("cpu", path)
        assert cfg.pretrain_config().epochs == 30, path.name  # the kept encoders' setting


def _assert_runs_shared(config: str, other: str, labels: list[str] | None, preset: str) -> None:
    """``config``'s runs of ``labels`` (None: all its arms) are ``other``'s: the same arms
    on the same data, schedule, seeds and pretraining (``benchmarks/study/<name>.yaml``)."""
    from cryoal.benchmark.config import load_benchmark_config

    cfg = load_benchmark_config(preset, KEEP.parent / f"{config}.yaml")
    ref = load_benchmark_config(preset, KEEP.parent / f"{other}.yaml")
    skip = {"strategies", "comparisons"}
    assert cfg.model_dump(exclude=skip) == ref.model_dump(exclude=skip)
    arms = {s.display_name: s for s in ref.strategies}
    assert set(labels or []) <= {s.display_name for s in cfg.strategies}
    for arm in cfg.strategies:
        if labels is None or arm.display_name in labels:
            assert arms.get(arm.display_name) == arm, arm.display_name


@pytest.mark.parametrize(
    ("stage", "full", "preset"),
    [
        ("seg_snr005_stage_a", "seg_snr005", "cpu-seg"),
        ("snr005_balanced_stage_a", "snr005_balanced", "cpu"),
        ("semi_snr01_balanced_stage2", "semi_snr01_balanced", "cpu"),
        ("semi_snr01_lt10_stage1", "semi_snr01_lt10", "cpu"),
    ],
)
def test_a_study_stage_runs_arms_of_its_full_config_on_the_same_data(stage, full, preset) -> None:
    """A stage's runs go into the folder the full config later resumes: each of its arms is
    the full config's arm of that name, on the same data, schedule and seeds."""
    _assert_runs_shared(stage, full, None, preset)


@pytest.mark.parametrize(
    ("semi", "pool"),
    [("semi_snr01_balanced", "snr01_balanced"), ("semi_snr01_lt10", "snr01_lt10")],
)
def test_a_semi_study_pool_reuses_the_runs_of_its_pretraining_pool(semi, pool) -> None:
    """Issue 24's pools reuse R0 (and, where that pool's encoder was kept, R1) from issue
    20's pool of the same data: the two configs share data, schedule, seeds and pretraining,
    and both arms are the same."""
    _assert_runs_shared(semi, pool, ["random", "random-pretrained"], "cpu")


def test_every_kept_run_is_an_arm_of_its_kept_study() -> None:
    """The reports are rebuilt from a kept folder's ``benchmark.yaml``: an arm whose runs
    are kept but which that file lacks would silently drop out of every table (as
    snr01_lt10's explore arm once did)."""
    from cryoal.benchmark.config import load_benchmark_config
    from cryoal.benchmark.layout import slug

    pools = [p for p in sorted(_keep_module().KEPT.iterdir()) if (p / "benchmark.yaml").is_file()]
    assert len(pools) >= 8
    for pool in pools:
        arms = {
            slug(label) for label in load_benchmark_config(None, pool / "benchmark.yaml").labels()
        }
        runs = {p.name for p in (pool / "runs").iterdir()} if (pool / "runs").is_dir() else set()
        assert runs <= arms, (pool.name, sorted(runs - arms))
