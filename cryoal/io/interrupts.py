"""Ctrl-C (SIGINT) and SIGTERM as exceptions that stop a long command cleanly.

The ``cryoal`` command installs :func:`install_handlers`: each signal raises an exception
in the main thread (``KeyboardInterrupt``, or :class:`Terminated` for SIGTERM), so every
``finally`` block and temp-file cleanup runs on the way out. Python drops an exception
raised while it runs a weakref callback or ``__del__`` (printing a traceback), so a signal
arriving there is recorded and delivered again 50 ms later; long loops also call
:func:`check_interrupted` once per batch.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

_pending: int | None = None
#: The last signal received by the handler (not cleared by :func:`check_interrupted`).
_received: int | None = None


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM.

    A subclass of ``KeyboardInterrupt`` so that code cleaning up after Ctrl-C cleans up
    after SIGTERM too.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _unraisable(frame: FrameType | None) -> bool:
    """Whether Python would print and drop an exception raised in ``frame`` (a weakref
    callback or a ``__del__`` method run by the garbage collector)."""
    if frame is None:
        return False
    code = frame.f_code
    return code.co_name == "__del__" or code.co_filename.endswith(("weakref.py", "_weakrefset.py"))


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending, _received
    _pending = _received = signum
    if _unraisable(frame):
        # Deliver the signal again in a moment, when the main thread runs ordinary code.
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    raise _exception(signum)


def install_handlers() -> None:
    """Make SIGINT and SIGTERM interrupt the main thread with an exception.

    SIGINT is handled even where the parent process set it to "ignore" (a job started
    with ``&`` from a script): a user who sends it wants the command to stop.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check_interrupted() -> None:
    """Raise the exception of a signal received since the last call (once per signal)."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        raise _exception(signum)


def received() -> int | None:
    """The number of the last SIGINT / SIGTERM the handlers received, or None."""
    return _received


def clear() -> None:
    """Forget a recorded signal (its exception has been handled)."""
    global _pending, _received
    _pending = _received = None
