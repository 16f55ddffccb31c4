"""Can Qt open a window with OpenGL here? Run as a script, in a child process.

``cryoal label`` runs this file (``python _glprobe.py``) before it builds napari's window,
because Qt aborts the whole process when it cannot reach the display. The script makes a
``QGuiApplication``, an OpenGL context current on an offscreen surface, and checks that
PyOpenGL (which napari's canvas draws with) sees that context; it prints one status word
and exits 0 when all of this works. A crash (Qt's abort) means the display could not be
opened; the caller reads Qt's own messages on stderr.
"""

from __future__ import annotations

import sys

#: Exit codes: a context could not be created / made current / seen by PyOpenGL.
NO_CONTEXT, NOT_CURRENT, NOT_SEEN = 3, 4, 5


def main() -> int:
    from qtpy.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

    app = QGuiApplication(["cryoal-gl-check"])
    context = QOpenGLContext()
    if not context.create():
        print("no-context")
        return NO_CONTEXT
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    if not context.makeCurrent(surface):
        print("not-current")
        return NOT_CURRENT
    try:
        from OpenGL import GL, contextdata

        contextdata.getContext()
        version = GL.glGetString(GL.GL_VERSION)
        if not version:
            raise RuntimeError("glGetString(GL_VERSION) returned nothing")
    except Exception as exc:  # PyOpenGL missing, or no context it can see (no GLX)
        print(f"not-seen {type(exc).__name__}: {exc}")
        return NOT_SEEN
    finally:
        context.doneCurrent()
    text = version.decode(errors="replace") if isinstance(version, bytes) else str(version)
    print(f"ok OpenGL {text}")
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
