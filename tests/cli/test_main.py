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


_THIRD_PARTY = """
import warnings


def old():
    warnings.warn("old() is deprecated", DeprecationWarning, stacklevel=2)
    warnings.warn("the default will change", FutureWarning, stacklevel=2)
    warnings.warn("theme detection needs Qt6", UserWarning, stacklevel=2)
"""


def test_only_cryoal_warnings_become_cryoal_warning_lines(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings
    from pathlib import Path

    from cryoal.cli.io_commands import _warn_other_tomogram
    from cryoal.cli.main import warnings_as_lines

    (tmp_path / "thirdparty_lib.py").write_text(_THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import thirdparty_lib

    # called from a cryoal module, so stacklevel=2 attributes the warnings to cryoal code
    from_cryoal = compile("thirdparty_lib.old()", "cryoal/fake_module.py", "exec")
    with warnings.catch_warnings(record=True) as shown_by_python:
        warnings.simplefilter("always")
        with warnings_as_lines():
            thirdparty_lib.old()
            exec(from_cryoal, {"__name__": "cryoal.fake_module", "thirdparty_lib": thirdparty_lib})
            _warn_other_tomogram(Path("a.star"), "TS_02", Path("TS_01.mrc"))
            _warn_other_tomogram(Path("a.star"), "TS_02", Path("TS_01.mrc"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(
        ln.startswith("cryoal: warning: a.star: the picks") for ln in lines
    )
    # the third-party ones went to Python's own display, as without cryoal
    assert sorted(str(w.message) for w in shown_by_python) == sorted(
        2 * ["old() is deprecated", "the default will change", "theme detection needs Qt6"]
    )


def test_events_json_gives_one_event_per_line_on_stdout_and_nothing_else(
    class_store, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from pathlib import Path

    args = ["--events", "json", "pretrain", str(class_store), "--out", str(tmp_path / "enc"),
            "--preset", "tiny", "--epochs", "2", "--batch-size", "16"]  # fmt: skip
    assert run(args) == 0
    out = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in out if line.startswith("{")]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [(e["stage"], e["epoch"], e["epochs"]) for e in epochs] == [
        ("pretrain", 1, 2), ("pretrain", 2, 2)
    ]  # fmt: skip
    assert all(e["eta_s"] is None or e["eta_s"] >= 0 for e in epochs)
    # stdout holds the events and the command's own result line, no bars or log lines
    others = [line for line in out if not line.startswith("{")]
    assert len(others) <= 1 and not any("━" in line for line in out)
    assert Path(tmp_path / "enc" / "encoder.json").is_file()
    # the mode ends with the command: the next one in this process shows text again
    assert run(["pretrain", str(class_store), "--out", str(tmp_path / "enc"), "--preset",
                "tiny", "--epochs", "2", "--batch-size", "16"]) == 0  # fmt: skip
    assert not any(line.startswith("{") for line in capsys.readouterr().out.splitlines())
