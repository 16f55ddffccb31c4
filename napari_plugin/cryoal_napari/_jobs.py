"""Background project jobs for the labelling widget: ``cryoal train`` / ``cryoal suggest``.

A job is the CLI command itself run as a subprocess (``sys.executable -m cryoal --events
json ...``) through a ``QProcess``: the viewer's event loop never waits for it, its
progress comes as JSON-lines events (:mod:`cryoal.cli.progress`) read as they come, only
those events and the command's one-line error reach the widget (no log lines of other
libraries), and Cancel stops it. The job runs in a session of its own and writes its
output to ``PROJECT/logs/<kind>-<UTC time>.log`` (read from there by the widget), so a
viewer that is closed by the window manager, a Ctrl-C in its terminal, or ``kill -9``
leaves the job running to its end instead of killing it half-way. What a cancelled job had written is removed
(``cryoal.project.jobfiles``), so the project is as it was before the job; a job that had
already made its final write (``round.json``, or the new queue's commit) is complete and
is kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from qtpy.QtCore import QObject, QProcess, QTimer, Signal

from cryoal.cli.progress import format_eta
from cryoal.project.jobfiles import ProjectFiles
from cryoal.project.labels import LabelStore
from cryoal.project.layout import LABELS_NAME, LOGS_DIR

_ERROR_RE = re.compile(r"^cryoal: (?:internal )?error: (.*)$")
#: What the widget says a job is doing, by the ``stage`` of its events.
STAGES = {"pretrain": "pretraining the encoder", "train": "training"}

#: Seconds a cancelled job gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_MS = 3000
#: Milliseconds between reads of a running job's log.
LOG_POLL_MS = 100
#: Python that starts a new session (its own process group, no controlling terminal), then
#: becomes the command after it: the job survives its viewer.
_OWN_SESSION = (
    "import os, sys\n"
    "getattr(os, 'setsid', lambda: None)()\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``ok``; ``cancelled`` (project restored); ``message`` one line."""

    kind: str
    ok: bool
    cancelled: bool
    message: str


class ProjectJob(QObject):
    """One ``cryoal train PROJECT`` or ``cryoal suggest PROJECT`` subprocess.

    Signals
    -------
    progress(int, int)
        ``(done, total)``; ``total == 0`` while the job cannot tell (busy).
    line(str)
        What the job is doing, one line per event (stage, figures, ETA), and its error.
    finished(object)
        A ``JobOutcome`` once the process has ended (and, if cancelled, been undone).
    """

    progress = Signal(int, int)
    line = Signal(str)
    finished = Signal(object)

    def __init__(self, kind: str, project_root: Path, *, total_epochs: int = 0) -> None:
        super().__init__()
        if kind not in ("train", "suggest"):
            raise ValueError(f"unknown job {kind!r}; choose train or suggest")
        self.kind = kind
        self.root = Path(project_root)
        self.total_epochs = total_epochs if kind == "train" else 0
        self._before: ProjectFiles | None = None
        self._rounds_before: list[int] = []
        self._last_error: str | None = None
        self._last_line = ""
        #: What the job is doing now, from its log (``pretraining the encoder``, ``training``).
        self.stage = ""
        self._cancelled = False
        self._buffer = b""
        #: the job's output file (``PROJECT/logs/``), set by :meth:`start`
        self.log_path: Path | None = None
        self._log_offset = 0
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.finished.connect(self._on_finished)
        self._poll = QTimer(self)
        self._poll.setInterval(LOG_POLL_MS)
        self._poll.timeout.connect(self._read)

    @property
    def arguments(self) -> list[str]:
        """The command line after the interpreter: ``-m cryoal --events json <kind>
        <root>``."""
        return ["-m", "cryoal", "--events", "json", self.kind, str(self.root)]

    def start(self) -> None:
        """Record the project's files, then start the subprocess in a session of its own,
        its output going to a new log under ``PROJECT/logs/``."""
        self._before = ProjectFiles.capture(self.root)
        self._rounds_before = self._rounds()
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.log_path = self.root / LOGS_DIR / f"{self.kind}-{stamp}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self.log_path.touch()
        self.process.setStandardOutputFile(str(self.log_path))
        self.progress.emit(0, self.total_epochs)
        self.process.start(sys.executable, ["-c", _OWN_SESSION, *self.arguments])
        self._poll.start()

    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Ask the subprocess to stop (SIGTERM) and return at once, without waiting on the
        event loop's thread; a process still running ``TERMINATE_GRACE_MS`` later is
        killed. ``finished`` reports the outcome once it has ended and what it wrote has
        been undone."""
        if not self.is_running() or self._cancelled:
            return
        self._cancelled = True
        self.process.terminate()
        QTimer.singleShot(TERMINATE_GRACE_MS, self._kill_if_running)

    def cancel_and_wait(self) -> None:
        """Stop the subprocess and wait for it (SIGTERM, SIGKILL after
        ``TERMINATE_GRACE_MS``), so that what it wrote is undone before this returns: for
        a viewer that is closing, whose event loop may not run again."""
        if not self.is_running():
            return
        self._cancelled = True
        self.process.terminate()
        if not self.process.waitForFinished(TERMINATE_GRACE_MS):
            self.process.kill()
            self.process.waitForFinished(TERMINATE_GRACE_MS)

    def _kill_if_running(self) -> None:
        if self.is_running():
            self.process.kill()

    # -- output ----------------------------------------------------------------------
    def _read(self) -> None:
        """Handle the complete lines the job added to its log since the last read."""
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                chunk = fh.read()
        except OSError:
            return
        self._log_offset += len(chunk)
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self._handle(raw.decode("utf-8", errors="replace").rstrip("\r"))

    def _handle(self, text: str) -> None:
        if not text.strip():
            return
        error = _ERROR_RE.match(text)
        if error:
            self._last_error = error.group(1)
            self._last_line = text
            self.line.emit(text)
            return
        try:
            event = json.loads(text)
        except ValueError:
            return  # not the job's own progress (e.g. a library's log line): not shown
        if isinstance(event, dict) and event.get("event") in ("epoch", "count"):
            self._on_event(event)

    def _on_event(self, event: dict) -> None:
        """Progress and a one-line description from an ``epoch`` or ``count`` event."""
        stage = str(event.get("stage") or "")
        self.stage = STAGES.get(stage, stage)
        eta = event.get("eta_s")
        eta_text = f", about {format_eta(float(eta))} left" if eta is not None else ""
        if event["event"] == "epoch":
            done, total = int(event["epoch"]), int(event["epochs"])
            acc = event.get("accuracy")
            acc_text = f", validation accuracy {acc:.3f}" if acc is not None else ""
            self._last_line = f"{self.stage}: epoch {done}/{total}{acc_text}{eta_text}"
        else:
            done, total = int(event["done"]), int(event.get("total") or 0)
            count = f"{done}/{total}" if total else f"{done}"
            self._last_line = f"{self.stage}: {count}{eta_text}"
        self.line.emit(self._last_line)
        self.progress.emit(min(done, total) if total else 0, total)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._poll.stop()
        self._read()
        if self._buffer:
            self._handle(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        completed = self._completed()
        if self._cancelled and not completed:
            assert self._before is not None
            removed = self._before.remove_new()
            outcome = JobOutcome(
                self.kind, False, True,
                f"{self.kind} cancelled; removed {len(removed)} files and folders it had "
                "written, the project is as before",
            )  # fmt: skip
        elif code == 0 and status == QProcess.ExitStatus.NormalExit:
            note = " (it had finished before Cancel)" if self._cancelled else ""
            outcome = JobOutcome(self.kind, True, False, f"{self.kind} finished{note}")
        else:
            reason = self._last_error or self._last_line or f"exit code {code}"
            outcome = JobOutcome(self.kind, False, False, f"cryoal {self.kind}: {reason}")
        self.finished.emit(outcome)

    def _completed(self) -> bool:
        """Whether the job made its final write (new round.json / a new queue round)."""
        if self.kind == "suggest":
            return self._rounds() != self._rounds_before
        assert self._before is not None
        return any(p.endswith("/round.json") for p in self._before.new_paths())

    def _rounds(self) -> list[int]:
        with LabelStore(self.root / LABELS_NAME, check_filesystem=False) as store:
            return [int(r) for r in store.rounds()["round"]]
