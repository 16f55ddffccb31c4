"""Before ``cryoal label`` builds napari's window: is there a display, with OpenGL on it?

Without a display Qt aborts the process ("Reinstalling the application may fix this
problem"), and without OpenGL napari's canvas fails deep inside vispy. :func:`check_display`
finds both out first and raises a ``ValueError`` whose one line says what is missing and
how to get it. On Linux (and other X11/Wayland systems) it needs ``DISPLAY`` or
``WAYLAND_DISPLAY``; everywhere it then runs ``_glprobe.py`` in a child process (Qt's abort
cannot take cryoal down there), which opens the display, makes an OpenGL context current
and checks that PyOpenGL sees it.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: The probe script, run as ``python _glprobe.py``.
PROBE = Path(__file__).with_name("_glprobe.py")
#: Seconds the probe may take (a display that never answers).
PROBE_TIMEOUT_S = 60.0
#: Exit codes of the probe (``_glprobe``): no context, not current, not seen by PyOpenGL.
_NO_CONTEXT, _NOT_CURRENT, _NOT_SEEN = 3, 4, 5
#: Debian/Ubuntu packages (as scripts/setup_gui.sh installs them).
XVFB_PACKAGES = "xvfb xauth"
GL_PACKAGES = "libgl1 libegl1 libgl1-mesa-dri"
#: Qt platform plugins that draw on a display server.
_DISPLAY_PLATFORMS = ("xcb", "wayland")


def needs_display_variable(platform: str, qt_platform: str) -> bool:
    """Whether Qt needs ``DISPLAY`` / ``WAYLAND_DISPLAY`` here (not on macOS or Windows,
    nor with a ``QT_QPA_PLATFORM`` that draws without a display server)."""
    if platform == "darwin" or platform.startswith(("win", "cygwin")):
        return False
    return qt_platform == "" or qt_platform.startswith(_DISPLAY_PLATFORMS)


def check_display(
    rerun: str, env: Mapping[str, str] | None = None, platform: str = sys.platform
) -> str:
    """Check that napari can open its window here; return the OpenGL version found.

    Parameters
    ----------
    rerun
        The command to suggest under a virtual display, e.g. ``cryoal label PROJECT``.
    env
        The environment to check (default ``os.environ``).

    Raises
    ------
    ValueError
        One line: no display, a display that cannot be opened, Qt's platform plugin that
        cannot load, or no usable OpenGL; with how to get what is missing.
    """
    env = dict(os.environ if env is None else env)
    qt_platform = env.get("QT_QPA_PLATFORM", "").strip().lower()
    xvfb = f"xvfb-run -a {rerun}"
    if needs_display_variable(platform, qt_platform) and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    ):
        raise ValueError(
            "no display for napari's window (DISPLAY and WAYLAND_DISPLAY are not set); run "
            f"it in a desktop session or over 'ssh -X', or on a virtual display: '{xvfb}' "
            f"(Xvfb: 'sudo apt-get install {XVFB_PACKAGES}')"
        )
    display = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or "the screen"
    try:
        done = subprocess.run(
            [sys.executable, str(PROBE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ValueError(
            f"display {display} did not answer within {PROBE_TIMEOUT_S:g} s (Qt's OpenGL "
            f"check hung); check its X server, or use a virtual display: '{xvfb}'"
        ) from None
    if done.returncode == 0:
        return done.stdout.strip()
    raise ValueError(_problem(done, display, qt_platform, xvfb))


def _qt_reason(stderr: str) -> str:
    """Qt's own words: the first line that explains the failure."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for key in ("could not connect to display", "Could not load the Qt platform plugin"):
        for ln in lines:
            if key in ln:
                return ln.removeprefix("qt.qpa.xcb: ").removeprefix("qt.qpa.plugin: ")
    return lines[-1] if lines else "no message"


def _problem(done: subprocess.CompletedProcess, display: str, qt_platform: str, xvfb: str) -> str:
    """The one-line message for a probe that failed."""
    code = done.returncode
    if (
        code in (_NO_CONTEXT, _NOT_CURRENT)
        and qt_platform
        and not qt_platform.startswith(_DISPLAY_PLATFORMS)
    ):
        return (
            f"QT_QPA_PLATFORM={qt_platform} has no OpenGL, and napari's canvas draws with "
            f"OpenGL; unset QT_QPA_PLATFORM and use a display, e.g. '{xvfb}'"
        )
    if code in (_NO_CONTEXT, _NOT_CURRENT):
        what = "create" if code == _NO_CONTEXT else "make current"
        return (
            f"no OpenGL on display {display} (Qt could not {what} an OpenGL context), and "
            "napari's canvas draws with OpenGL; install Mesa's software OpenGL ('sudo "
            f"apt-get install {GL_PACKAGES}') or the GPU's driver"
        )
    if code == _NOT_SEEN:
        detail = done.stdout.strip().removeprefix("not-seen ")
        return (
            f"OpenGL on display {display} cannot be used by napari (PyOpenGL: {detail}); an "
            f"Xvfb display needs its GLX extension (xvfb-run's default: '{xvfb}') and Mesa's "
            f"software OpenGL ('sudo apt-get install {GL_PACKAGES}')"
        )
    reason = _qt_reason(done.stderr)
    if "could not connect to display" in reason:
        return (
            f"cannot open display {display} (Qt: {reason}); check that its X server runs "
            f"and that DISPLAY names it, or use a virtual display: '{xvfb}'"
        )
    if "platform plugin" in reason:
        return (
            f"Qt cannot start on display {display} (Qt: {reason}): a system library of its "
            "platform plugin is missing; install the libxcb-* and libxkbcommon-x11-0 "
            "packages scripts/setup_gui.sh lists, or find the missing one with "
            "QT_DEBUG_PLUGINS=1"
        )
    return f"Qt cannot open a window on display {display} ({reason})"
