"""The CLI shell: version, help, and how errors reach the user."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cryoal
from cryoal.cli.main import run


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cryoal {cryoal.__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--debug" in out and "--version" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == 2


def test_console_script_reports_user_error_in_one_line_without_traceback(tmp_path) -> None:
    missing = tmp_path / "nope.mrc"
    result = subprocess.run(
        [sys.executable, "-m", "cryoal", "info", str(missing)], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path) -> None:
    missing = tmp_path / "nope.mrc"
    result = subprocess.run(
        [sys.executable, "-m", "cryoal", "--debug", "info", str(missing)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_messages_show_numbers_without_numpy_reprs(capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from cryoal.cli import main

    def fail() -> None:
        raise ValueError(f"sizes {[np.float64(0.448), np.int64(3)]} of {np.str_('a')!r}")

    main.app.command("fail-for-test")(fail)
    try:
        assert run(["fail-for-test"]) == 2
    finally:
        main.app.registered_commands.pop()
    assert capsys.readouterr().err.strip() == "cryoal: error: sizes [0.448, 3] of 'a'"
