"""Background jobs outlive the viewer that started them: a killed napari leaves no
half-written round."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("qtpy")

from cryoal.project.labels import LabelStore  # noqa: E402


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (an exited process nobody has reaped yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@pytest.mark.timeout(300)
def test_a_train_job_outlives_a_killed_viewer(label_project: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((label_project / "project.yaml").read_text())
    config["defaults"]["train"] = {"teacher_preset": "tiny", "student_preset": "tiny",
                                   "epochs": 4, "batch_size": 4}  # fmt: skip
    (label_project / "project.yaml").write_text(yaml.safe_dump(config))
    with LabelStore(label_project / "labels.sqlite") as store:
        ids = list(store.candidates()["candidate_id"])
        store.add_labels(ids, ["ring", "barrel"] * 3, "alice")
    # a stand-in for napari: the widget's job, started from a Qt event loop that is then
    # killed with SIGKILL once the training has finished its first epoch
    script = tmp_path / "viewer.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from qtpy.QtCore import QCoreApplication
        from cryoal_napari._jobs import ProjectJob

        app = QCoreApplication(sys.argv)
        job = ProjectJob("train", Path({str(label_project)!r}), total_epochs=4)
        job.line.connect(lambda text: print(text, flush=True))
        job.progress.connect(
            lambda done, total: total == 4 and done >= 1
            and print("PID", job.process.processId(), flush=True)
        )
        job.start()
        app.exec()
    """)
    )
    viewer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert viewer.stdout is not None
    pid = None
    for line in viewer.stdout:
        if line.startswith("PID "):
            pid = int(line.split()[1])
            break
    assert pid is not None, "the job reported no epoch"
    viewer.kill()
    viewer.wait()
    round_json = label_project / "rounds" / "001" / "round.json"
    assert not round_json.exists()  # the viewer died mid-training ...
    deadline = time.monotonic() + 240
    while not round_json.exists():  # ... and the job trains on to the end
        assert time.monotonic() < deadline, "the job did not finish after its viewer died"
        time.sleep(0.5)
    while _running(pid):  # and then exits
        assert time.monotonic() < deadline
        time.sleep(0.2)
    [log] = (label_project / "logs").glob("train-*.log")  # its output, kept in the project
    assert '"event": "epoch"' in log.read_text() and "model version r001-" in log.read_text()
