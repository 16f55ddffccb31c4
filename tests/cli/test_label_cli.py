"""``cryoal label``: the errors a user sees before any window opens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cryoal.cli.main import run


def test_label_refuses_a_wrong_folder_or_tomogram(
    tmp_path: Path, label_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["label", str(tmp_path / "nothing")]) == 2
    assert "no project configuration here" in capsys.readouterr().err
    assert run(["label", str(label_project), "--tomo-id", "TS_99"]) == 2
    assert "unknown tomogram 'TS_99'" in capsys.readouterr().err


def test_label_without_napari_says_how_to_install_it(
    label_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari -> ImportError
    assert run(["label", str(label_project)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryoal: error: napari is not installed")
    assert 'pip install -e ".[napari]"' in err and err.count("\n") == 1
