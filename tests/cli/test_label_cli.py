"""``cryoal label``: the errors a user sees before any window opens."""

from __future__ import annotations

import contextlib
import os
import subprocess
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


# -- before any window: display, OpenGL, tomogram files ----------------------------------
def _label_subprocess(
    project: Path, env: dict[str, str], code: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = ["-m", "cryoal", "label", str(project)] if code is None else ["-c", code]
    return subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120
    )


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    for key, value in changes.items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    return env


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="Qt needs no DISPLAY there")
def test_label_without_a_display_says_so_in_one_line(label_project: Path) -> None:
    pytest.importorskip("napari")
    # pytest-xvfb's DISPLAY removed: the user's shell on a headless machine
    res = _label_subprocess(label_project, _env(DISPLAY=None, WAYLAND_DISPLAY=None))
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        "cryoal: error: no display for napari's window (DISPLAY and WAYLAND_DISPLAY are not "
        "set); run it in a desktop session or over 'ssh -X', or on a virtual display: "
        f"'xvfb-run -a cryoal label {label_project}' (Xvfb: 'sudo apt-get install xvfb xauth')"
    ]


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="X11 displays only")
def test_label_with_a_display_that_does_not_answer_says_so(label_project: Path) -> None:
    pytest.importorskip("napari")
    res = _label_subprocess(label_project, _env(DISPLAY=":9876", WAYLAND_DISPLAY=None))
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("cryoal: error: cannot open display :9876 (Qt: could not connect")
    assert f"'xvfb-run -a cryoal label {label_project}'" in line


def test_label_without_opengl_says_so_in_one_line(label_project: Path) -> None:
    pytest.importorskip("napari")
    # offscreen on a machine without a display (with one, Qt's offscreen plugin has GLX)
    env = _env(QT_QPA_PLATFORM="offscreen", DISPLAY=None, WAYLAND_DISPLAY=None)
    res = _label_subprocess(label_project, env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        "cryoal: error: QT_QPA_PLATFORM=offscreen has no OpenGL, and napari's canvas draws "
        "with OpenGL; unset QT_QPA_PLATFORM and use a display, e.g. "
        f"'xvfb-run -a cryoal label {label_project}'"
    ]


def test_label_with_a_moved_tomogram_names_it_before_any_window(
    label_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryoal.project.session import LabellingSession

    tomogram = label_project.parent / "TS_01.mrc"
    moved = tomogram.rename(label_project.parent / "elsewhere.mrc")
    monkeypatch.setitem(sys.modules, "napari", None)  # nothing of napari may be reached
    assert run(["label", str(label_project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"cryoal: error: tomogram 'TS_01' of project {label_project}: {tomogram} does not "
        "exist (moved or deleted since it was added); move it back, or record where it is "
        f"now with 'cryoal project relocate-tomogram {label_project} TS_01 NEW_PATH'"
    ]
    # the fix the message gives
    assert run(["project", "relocate-tomogram", str(label_project), "TS_01", str(moved)]) == 0
    with contextlib.closing(LabellingSession(label_project)) as session:
        assert session.tomogram_paths() == {"TS_01": moved}


def test_a_normal_start_shows_no_third_party_warnings_as_cryoal_warnings(
    label_project: Path,
) -> None:
    pytest.importorskip("napari")
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        pytest.skip("needs a display (pytest-xvfb starts one)")
    # the command as users run it, with napari's event loop returning at once
    code = (
        "import sys, napari; napari.run = lambda *a, **k: None; "
        "from cryoal.cli.main import run; "
        f"sys.exit(run(['label', {str(label_project)!r}]))"
    )
    res = _label_subprocess(label_project, _env(), code)
    assert res.returncode == 0, res.stderr
    assert "cryoal: warning" not in res.stderr, res.stderr
