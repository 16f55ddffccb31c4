"""The progress callback the library reports through (it never draws bars itself).

Long-running library functions take ``progress: CountCallback | None`` and call it with the
number of items (samples, subtomograms, blocks) finished since the previous call. The CLI
passes :class:`cryoal.cli.progress.CountProgress`, which draws a rich bar on a terminal and
prints plain lines in a log; Python users pass any callable, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable

#: Called with the number of items finished since the previous call.
CountCallback = Callable[[int], None]

__all__ = ["CountCallback"]
