"""Progress display for CLI commands: rich bars on a terminal, plain lines in a log.

The library reports progress through callbacks only (:mod:`cryoal.train.events`); this
module turns them into output. On a terminal it draws a transient rich bar; when the output
is not a terminal (a SLURM log, a pipe, a file) it prints one plain, flushed line per
training epoch (loss, validation accuracy, samples/s, ETA) or per tenth of a counted task,
so a log shows how a job is doing while it runs. Every command that shows progress uses
these two classes.

``cryoal --events json COMMAND`` (:func:`use_json_events`) replaces both with one JSON
object per line on stdout, for programs that run cryoal as a job (the napari widget):
``{"event": "epoch", "stage": "train" | "pretrain", "epoch", "epochs", "step",
"total_steps", "loss", "accuracy", "samples_per_s", "eta_s"}`` after each epoch,
``{"event": "count", "stage": <what is counted>, "done", "total", "eta_s"}`` at most once a
second and at the end of a counted task. Unknown figures are ``null``. A failing command
still writes its one ``cryoal: error: ...`` line to stderr.

Nothing here imports torch: the CLI modules stay fast to import.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, Any

__all__ = [
    "CountProgress",
    "TrainProgress",
    "emit_event",
    "format_eta",
    "interactive",
    "use_json_events",
]

#: Where JSON-lines events go (``--events json``); None: human-readable progress.
_EVENTS: IO[str] | None = None


def use_json_events(stream: IO[str] | None) -> None:
    """Send progress as JSON lines to ``stream`` (None: back to bars and lines)."""
    global _EVENTS
    _EVENTS = stream


def json_events() -> bool:
    """Whether progress goes out as JSON-lines events."""
    return _EVENTS is not None


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def emit_event(event: str, **fields: Any) -> None:
    """Write one JSON-lines event (a no-op unless :func:`use_json_events` is on); floats
    that are not finite become ``null``."""
    if _EVENTS is None:
        return
    clean = {k: (_finite(v) if isinstance(v, float) else v) for k, v in fields.items()}
    print(json.dumps({"event": event, **clean}), file=_EVENTS, flush=True)


def interactive(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def format_eta(seconds: float) -> str:
    """``"1h02m"``, ``"3m05s"``, ``"42s"``; ``"?"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


class _Bar:
    """A transient rich progress bar with one task (created on first use)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.progress: Any = None
        self.task: Any = None

    def update(self, description: str, completed: float, total: float) -> None:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=Console(file=self.stream), transient=True,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task(description, total=total)
        self.progress.update(self.task, description=description, completed=completed, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class TrainProgress:
    """A :data:`cryoal.train.events.TrainCallback` for the CLI (a context manager).

    Parameters
    ----------
    enabled
        False: show nothing (``--quiet``, or ranks other than 0 under ``torchrun``).
    stream
        Where to write (default stderr).
    bar
        Draw a rich bar; default: when ``stream`` is a terminal. Without a bar one line per
        epoch is printed and flushed.
    """

    def __init__(
        self,
        enabled: bool = True,
        stream: IO[str] | None = None,
        bar: bool | None = None,
        label: str = "",
    ) -> None:
        self.enabled = enabled
        self.label = f"{label} " if label else ""
        self.stream = sys.stderr if stream is None else stream
        self.use_bar = interactive(self.stream) if bar is None else bar
        self._bar = _Bar(self.stream)

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        if json_events():
            if event.kind == "epoch":
                emit_event(
                    "epoch", stage=self.label.strip() or "train", epoch=event.epoch,
                    epochs=event.epochs, step=event.step, total_steps=event.total_steps,
                    loss=event.loss, accuracy=getattr(event, "accuracy", None),
                    samples_per_s=event.samples_per_s, eta_s=event.eta_s,
                )  # fmt: skip
            return
        if event.kind == "step" and self.use_bar:
            desc = f"{self.label}epoch {event.epoch + 1}/{event.epochs} loss {_num(event.loss)}"
            self._bar.update(desc, event.step, event.total_steps)
        elif event.kind == "epoch":
            self._line(self.label + self._epoch_line(event))
        elif event.kind == "stopped":
            self._line(f"stopped at step {event.step}/{event.total_steps} (checkpoint written)")

    @staticmethod
    def _epoch_line(event: Any) -> str:
        parts = [
            f"epoch {event.epoch}/{event.epochs}",
            f"step {event.step}/{event.total_steps}",
            f"loss {_num(event.loss)}",
        ]
        # pretraining events carry no validation figures
        if getattr(event, "accuracy", None) is not None:
            parts.append(f"val acc {_num(event.accuracy, '.3f')}")
        if getattr(event, "dice", None) is not None:
            parts.append(f"val dice {_num(event.dice, '.3f')}")
        parts += [f"{_num(event.samples_per_s, '.1f')} samples/s", f"ETA {format_eta(event.eta_s)}"]
        return "  ".join(parts)

    def _line(self, text: str) -> None:
        if self.use_bar and self._bar.progress is not None:
            self._bar.progress.console.print(text, highlight=False)
        else:
            print(text, file=self.stream, flush=True)


class CountProgress:
    """A :data:`cryoal.train.events.CountCallback` over ``total`` items (a context manager).

    On a terminal: a rich bar. Otherwise one flushed line at every further tenth of
    ``total`` (``"scoring: 4000/10000 (40%) 812.5/s ETA 7s"``). With ``total=None``
    (not known in advance) a line at most every ``every_s`` seconds (``"scoring: 4000
    done, 812.5/s"``).
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        bar: bool | None = None,
        every_s: float = 10.0,
    ) -> None:
        self.description = description
        self.total = None if total is None else max(0, int(total))
        self.every_s = every_s
        self._last = 0.0
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.use_bar = interactive(self.stream) if bar is None else bar
        self.done = 0
        self._next_line = 0.1
        self._t0 = time.perf_counter()
        self._bar = _Bar(self.stream)

    def __enter__(self) -> CountProgress:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def __call__(self, n: int) -> None:
        self.done += int(n)
        if not self.enabled:
            return
        if json_events():
            now = time.perf_counter()
            if now - self._last >= 1.0 or (self.total is not None and self.done >= self.total):
                self._last = now
                rate = self.done / max(now - self._t0, 1e-9)
                left = (
                    None if self.total is None else max(0, self.total - self.done) / max(rate, 1e-9)
                )
                emit_event("count", stage=self.description, done=self.done, total=self.total,
                           eta_s=left)  # fmt: skip
            return
        if self.use_bar:
            self._bar.update(self.description, self.done, self.total)  # type: ignore[arg-type]
            return
        if self.total is None:
            now = time.perf_counter()
            if now - self._last >= self.every_s:
                self._last = now
                rate = self.done / max(now - self._t0, 1e-9)
                print(f"{self.description}: {self.done} done, {rate:.1f}/s", file=self.stream,
                      flush=True)  # fmt: skip
            return
        frac = self.done / self.total if self.total else 1.0
        if frac + 1e-12 >= self._next_line or self.done >= self.total:
            while self._next_line <= frac + 1e-12:
                self._next_line += 0.1
            spent = max(time.perf_counter() - self._t0, 1e-9)
            rate = self.done / spent
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(
                f"{self.description}: {self.done}/{self.total} ({100 * frac:.0f}%) "
                f"{rate:.1f}/s ETA {format_eta(eta)}",
                file=self.stream,
                flush=True,
            )
