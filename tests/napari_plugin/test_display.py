"""``cryoal_napari._display``: what ``cryoal label`` says is missing before it builds a window
(the real checks run in ``tests/cli/test_label_cli.py``; here each probe outcome's line)."""

from __future__ import annotations

import subprocess

import pytest
from cryoal_napari._display import _problem, check_display, needs_display_variable

XVFB = "xvfb-run -a cryoal label proj"


@pytest.mark.parametrize(
    ("platform", "qt_platform", "needed"),
    [
        ("linux", "", True),
        ("linux", "xcb", True),
        ("linux", "wayland-egl", True),
        ("linux", "offscreen", False),
        ("freebsd14", "", True),
        ("darwin", "", False),
        ("win32", "", False),
    ],
)
def test_a_display_variable_is_needed_on_x11_and_wayland_only(
    platform: str, qt_platform: str, needed: bool
) -> None:
    assert needs_display_variable(platform, qt_platform) is needed


def test_no_display_is_refused_before_qt_is_started() -> None:
    with pytest.raises(ValueError, match=r"^no display for napari's window .*'xvfb-run -a cryoal"):
        check_display("cryoal label proj", env={"PATH": "/usr/bin"}, platform="linux")


def _done(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["python", "_glprobe.py"], code, out, err)


@pytest.mark.parametrize(
    ("done", "start"),
    [
        (_done(3, "no-context"), "no OpenGL on display :1 (Qt could not create an OpenGL context)"),
        (_done(4, "not-current"), "no OpenGL on display :1 (Qt could not make current an"),
        (
            _done(5, "not-seen Error: Attempt to retrieve context when no valid context"),
            "OpenGL on display :1 cannot be used by napari (PyOpenGL: Error: Attempt to retrieve",
        ),
        (
            _done(-6, err="qt.qpa.xcb: could not connect to display :1\nAborted"),
            "cannot open display :1 (Qt: could not connect to display :1)",
        ),
        (
            _done(-6, err='qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in ""'),
            'Qt cannot start on display :1 (Qt: Could not load the Qt platform plugin "xcb"',
        ),
    ],
)
def test_each_probe_outcome_is_one_line_with_what_to_install(
    done: subprocess.CompletedProcess[str], start: str
) -> None:
    line = _problem(done, ":1", "", XVFB)
    assert line.startswith(start) and "\n" not in line
    assert "apt-get install" in line or XVFB in line or "libxcb" in line
