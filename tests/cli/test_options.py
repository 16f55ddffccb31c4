"""The CLI as a whole: fast start, one spelling per option, defaults and choices in --help."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import typer

from cryoal.cli import al_commands, io_commands
from cryoal.cli.main import app, run
from cryoal.io.mrc import write_mrc

HEAVY = ("torch", "monai", "scipy", "h5py", "pandas", "matplotlib", "napari")


def _modules_after(argv: list[str]) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; return its exit code and the heavy modules loaded."""
    code = (
        "import sys, json\n"
        "from cryoal.cli.main import run\n"
        f"rc = run({argv!r})\n"
        f"print(json.dumps([rc, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    rc, loaded = json.loads(res.stdout.strip().splitlines()[-1])
    return rc, loaded


def test_help_starts_without_heavy_libraries() -> None:
    rc, loaded = _modules_after(["--help"])
    assert rc == 0 and loaded == []
    rc, loaded = _modules_after(["labels", "--help"])
    assert rc == 0 and loaded == []


def test_info_on_a_tomogram_does_not_import_torch(tmp_path: Path) -> None:
    write_mrc(tmp_path / "t.mrc", np.zeros((4, 6, 8), np.float32), 10.0)
    rc, loaded = _modules_after(["info", str(tmp_path / "t.mrc")])
    assert rc == 0 and not {"torch", "monai", "pandas", "h5py"} & set(loaded)


def test_console_script_help_runs() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "cryoal", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "simulate" in res.stdout and "labels" in res.stdout


def _commands() -> dict[str, typing.Any]:
    """``"project add-tomogram" -> click command`` for every command (lazy groups loaded)."""
    out: dict[str, typing.Any] = {}

    def walk(cmd: typing.Any, path: list[str]) -> None:
        names = cmd.list_commands(None) if hasattr(cmd, "list_commands") else None
        if names is None:
            out[" ".join(path)] = cmd
            return
        for name in names:
            walk(cmd.get_command(None, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_one_spelling_per_option() -> None:
    commands = _commands()
    assert {"extract", "project import-picks", "simulate tomogram", "labels export"} <= set(
        commands
    )
    spellings = {
        opt for cmd in commands.values() for p in cmd.params for opt in (*p.opts, *p.secondary_opts)
    }
    for old in ("--id", "--tomo", "--unit", "--user", "--session"):
        assert old not in spellings, old
    for name in ("project add-tomogram", "project import-picks", "project detect", "extract"):
        assert "--tomo-id" in {o for p in commands[name].params for o in p.opts}, name
    for name in ("project import-picks", "extract", "convert-coords"):
        assert "--coords-unit" in {o for p in commands[name].params for o in p.opts}, name
    for name in ("convert-coords", "labels export"):
        assert "--format" in {o for p in commands[name].params for o in p.opts}, name


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["suggest", "--help"], "Seed [default: project defaults]"),
        (["extract", "--help"], "[default: 256; x>=1]"),
        (["extract", "--help"], "<pad|skip|error>"),
        (["labels", "export", "--help"], "<csv|star|copick|masks>"),
        (["train", "--help"], "Training epochs. [default: 15]"),
        (["simulate", "subtomograms", "--help"], "<fourier|backprojection>"),
    ],
)
def test_help_shows_defaults_and_choices(argv, shown, capsys) -> None:
    assert run(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert shown in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["extract", "t.mrc", "p.csv", "o.h5", "--box", "8", "--edge", "middle"], "'pad', 'skip', 'error'"),
        (["extract", "t.mrc", "p.csv", "o.h5", "--box", "8", "--batch-size", "0"], "--batch-size"),
        (["extract", "t.mrc", "p.csv", "o.h5", "--box", "8", "--compression-level", "12"], "--compression-level"),
        (["labels", "export", "P", "--out", "x", "--format", "xml"], "'csv', 'star', 'copick'"),
        (["labels", "export", "P", "--out", "x", "--star-version", "3"], "--star-version"),
        (["train", "s.h5", "--task", "detect"], "'classify', 'segment'"),
        (["benchmark", "--out", "b", "--preset", "huge"], "'smoke', 'cpu', 'paper'"),
        (["project", "detect", "P", "--polarity", "grey"], "'dark', 'bright'"),
    ],
)  # fmt: skip
def test_parser_refuses_invalid_values(argv, expected, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.startswith("cryoal: error: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_cli_constants_match_the_library() -> None:
    from cryoal.benchmark import PRESETS
    from cryoal.data.extract import DEFAULT_BATCH_SIZE, DEFAULT_COMPRESSION_LEVEL, EDGE_POLICIES
    from cryoal.io.coords import UNITS

    assert io_commands.EXTRACT_BATCH_SIZE == DEFAULT_BATCH_SIZE
    assert io_commands.EXTRACT_COMPRESSION_LEVEL == DEFAULT_COMPRESSION_LEVEL
    assert typing.get_args(io_commands.Edge) == EDGE_POLICIES
    assert typing.get_args(io_commands.Unit) == UNITS
    assert typing.get_args(al_commands.Preset) == PRESETS
    from cryoal.cli.simulate import ImagingPath
    from cryoal.sim.imaging import PATHS

    assert typing.get_args(ImagingPath) == PATHS


def test_predict_defaults_match_the_library() -> None:
    import inspect

    from cryoal.train.predict_to_files import predict_path

    params = {p.name: p for p in _commands()["predict"].params}
    library = inspect.signature(predict_path).parameters
    for name in ("batch_size", "device", "mc_passes", "features", "overlap", "amp"):
        assert params[name].default == library[name].default, name


def test_python_tag_in_set_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    argv = ["train", str(tmp_path / "s.h5"), "--out", str(tmp_path / "run")]
    assert run([*argv, "--set", "epochs=!!python/object/apply:os.system ['true']"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryoal: error: --set"), lines
    assert "plain YAML value" in lines[0] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "benchmark"])
def test_config_that_is_not_utf8_is_named(tmp_path: Path, capsys, command: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes(b"epochs: 2 # caf\xe9\n")
    if command == "train":
        argv = ["train", str(tmp_path / "s.h5"), "--out", str(tmp_path / "run")]
    else:
        argv = ["benchmark", "--out", str(tmp_path / "run")]
    assert run([*argv, "--config", str(config)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and "not UTF-8" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_amp_choices_match_the_library() -> None:
    import typing

    from cryoal.cli.train_commands import AmpMode
    from cryoal.train.distributed import AMP_MODES

    assert set(typing.get_args(AmpMode)) == set(AMP_MODES)
