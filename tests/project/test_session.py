"""The headless labelling session behind the napari widget (no Qt, no napari)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoal.project.jobfiles import ProjectFiles
from cryoal.project.labels import LabelStore
from cryoal.project.session import UNLABELLED_COLOUR, LabellingSession

IDS = [f"TS_01:{i:06d}" for i in range(6)]


def test_queue_points_and_colours(label_project: Path) -> None:
    session = LabellingSession(label_project, annotator="alice")
    assert session.round == 0 and session.model_version is None
    assert session.queue["candidate_id"].tolist() == IDS
    assert session.current.candidate_id == IDS[0]
    points = session.points()
    # napari world coordinates: voxel index × voxel size (10 Å), zyx
    np.testing.assert_allclose(points.positions_A[2], [120.0, 500.0, 450.0])
    assert points.features["rank"].tolist() == list(range(6))
    assert set(points.colours) == {UNLABELLED_COLOUR}
    assert session.colour("barrel") == "#ff7f0e"  # the class colour from project.yaml
    counts = session.counts()
    assert (counts.labelled, counts.total, counts.remaining) == (0, 6, 6)
    session.close()


def test_labels_are_committed_with_provenance_and_cursor_skips_labelled(
    label_project: Path,
) -> None:
    session = LabellingSession(label_project, annotator="alice")
    session.jump(IDS[1])
    session.label("barrel")
    session.previous()
    session.previous()
    assert session.current.candidate_id == IDS[0]
    stored = session.label(0)  # class number 0 = ring, the first class in project.yaml
    # labelling moves on to the next *unlabelled* candidate: 1 is done, so 2
    assert session.current.candidate_id == IDS[2]
    session.label("not-a-particle")
    with LabelStore(label_project / "labels.sqlite") as other:  # a second connection
        current = other.current_labels().set_index("candidate_id")
    assert current.loc[IDS[0], "class_name"] == "ring"
    assert current.loc[IDS[1], "class_name"] == "barrel"
    assert current.loc[IDS[2], "kind"] == "not-a-particle"
    assert (current["annotator"] == "alice").all() and (current["round"] == 0).all()
    assert stored.round == 0
    counts = session.counts()
    assert (counts.labelled, counts.remaining) == (3, 3)
    assert counts.per_label == {"ring": 1, "barrel": 1, "unsure": 0, "not-a-particle": 1}
    assert session.points().features.set_index("candidate_id").loc[IDS[1], "label"] == "barrel"
    with pytest.raises(ValueError, match="unknown label 'ribosome'"):
        session.label("ribosome")
    session.close()


def test_undo_adds_a_history_row_restoring_the_previous_state(label_project: Path) -> None:
    session = LabellingSession(label_project, annotator="alice")
    session.label("ring")  # IDS[0]: unlabelled -> ring
    session.jump(IDS[0])
    session.label("barrel")  # IDS[0]: ring -> barrel
    assert session.undo().candidate_id == IDS[0]  # cursor back on the undone candidate
    assert session.store.current_label(IDS[0]).class_name == "ring"
    session.undo()
    assert session.store.current_label(IDS[0]) is None
    assert session.current.label is None and session.counts().labelled == 0
    history = session.store.label_history(IDS[0])
    assert history["kind"].tolist() == ["class", "class", "class", "cleared"]  # nothing deleted
    assert history["source"].tolist() == ["decision", "decision", "undo", "undo"]
    with pytest.raises(ValueError, match=r"nothing of yours \(alice\) to undo in round 0"):
        session.undo()
    session.close()


def test_undo_reaches_your_decisions_after_a_restart(label_project: Path) -> None:
    first = LabellingSession(label_project, annotator="alice")
    first.label("ring")  # IDS[0]: unlabelled -> ring
    first.jump(IDS[0])
    first.label("barrel")  # IDS[0]: ring -> barrel
    first.label("unsure")  # IDS[1]
    first.undo()  # IDS[1] back to unlabelled
    first.close()  # the viewer is closed (or killed: every row above is committed)
    with LabelStore(label_project / "labels.sqlite") as cli:
        cli.add_label(IDS[2], "ring", "bob")  # someone else's label is not alice's to undo

    again = LabellingSession(label_project, annotator="alice")
    assert again.can_undo
    assert again.undo().candidate_id == IDS[0]  # barrel -> ring, as before the restart
    assert again.store.current_label(IDS[0]).class_name == "ring"
    again.undo()  # ring -> unlabelled
    assert again.store.current_label(IDS[0]) is None
    assert not again.can_undo
    assert again.store.current_label(IDS[2]).annotator == "bob"
    again.set_annotator("bob")  # bob's own decision (on round 0's queue) is his to undo
    assert again.undo().candidate_id == IDS[2]
    assert again.store.current_label(IDS[2]) is None and not again.can_undo
    again.close()


def test_confirm_records_the_models_prediction_as_confirmed(
    label_project: Path,
    write_model_round,  # noqa: ANN001
) -> None:
    write_model_round(label_project, [IDS[5], IDS[4]], {"ring": [0.25, 0.7], "barrel": [0.75, 0.3]})
    session = LabellingSession(label_project, annotator="alice")
    assert session.current.candidate_id == IDS[5]
    # the model's probabilities on screen, highest first
    assert session.probabilities(IDS[5]) == {"barrel": 0.75, "ring": 0.25}
    assert session.probabilities(IDS[0]) is None  # not in this round's table
    stored = session.confirm()
    assert (stored.class_name, stored.source, stored.model_version) == (
        "barrel",
        "confirmed",
        "r001-x",
    )
    assert session.store.label_history(IDS[5])["source"].tolist() == ["confirmed"]
    assert session.current.candidate_id == IDS[4]
    session.label("barrel")  # an independent decision against the prediction ("ring")
    assert session.store.current_label(IDS[4]).source == "decision"
    session.close()


def test_refresh_picks_up_outside_writes_and_undo_keeps_them(label_project: Path) -> None:
    session = LabellingSession(label_project, annotator="alice")
    session.label("ring")  # IDS[0]
    assert not session.changed_outside()
    with LabelStore(label_project / "labels.sqlite") as cli:
        cli.add_label(IDS[3], "barrel", "bob")
        cli.add_label(IDS[0], "unsure", "bob")  # bob changes alice's decision
    assert session.changed_outside()
    session.refresh()
    assert session.queue.set_index("candidate_id").loc[IDS[3], "label"] == "barrel"
    assert session.counts().labelled == 2
    with pytest.raises(ValueError, match="labelled 'unsure' by bob after your decision"):
        session.undo()
    assert session.store.current_label(IDS[0]).annotator == "bob"
    # a new round written by 'cryoal suggest' replaces the queue on refresh
    with LabelStore(label_project / "labels.sqlite") as cli:
        cli.write_suggestions(1, [IDS[5], IDS[4]], [0.9, 0.8], "kt", model_version="r001-x")
    assert session.refresh()
    assert session.round == 1 and session.model_version == "r001-x"
    assert session.queue["candidate_id"].tolist() == [IDS[5], IDS[4]]
    assert session.label("ring").model_version == "r001-x"
    session.close()


def test_orthoslices_are_centred_on_the_candidate(label_project: Path) -> None:
    session = LabellingSession(label_project, annotator="alice")
    slices = session.orthoslices()
    assert {k: v.shape for k, v in slices.items()} == {
        "xy": (16, 16),
        "xz": (16, 16),
        "yz": (16, 16),
    }
    for plane in slices.values():  # the blob sits at the centre of each slice
        assert np.unravel_index(np.nanargmax(plane), plane.shape) == (8, 8)
    # IDS[5] is at z=10 with box 16: slices reach z=2..17, inside; IDS[0] is 20 from the y edge
    edge = session.orthoslices(session.jump(IDS[0]))
    assert not np.isnan(edge["xy"]).any()
    session.project.config.box = 48  # a box larger than the distance to the edge pads with NaN
    assert np.isnan(session.orthoslices()["xy"][:4]).all()
    session.close()


def test_project_files_remove_only_what_a_job_created(label_project: Path) -> None:
    before = ProjectFiles.capture(label_project)
    (label_project / "rounds" / "001" / "model").mkdir(parents=True)
    (label_project / "rounds" / "001" / "snapshot.csv").write_text("x\n")
    os.chmod(label_project / "rounds" / "001" / "snapshot.csv", 0o444)
    with LabelStore(label_project / "labels.sqlite") as store:
        store.add_label(IDS[0], "ring", "alice")  # the store is never rolled back
    (label_project / "my_export.star").write_text("data_\n")  # the user's, written meanwhile
    assert before.new_paths()[-1] == "rounds"
    before.remove_new()
    assert ProjectFiles.capture(label_project).paths == before.paths | {"my_export.star"}
    with LabelStore(label_project / "labels.sqlite") as store:
        assert store.current_label(IDS[0]).class_name == "ring"


_CHILD = textwrap.dedent(
    """
    import sys
    from cryoal.project.session import LabellingSession
    session = LabellingSession(sys.argv[1], annotator="child")
    for i in range(100000):
        session.annotator = f"child-{i}"
        stored = session.label(i % 2)
        print(stored.candidate_id, stored.annotator, flush=True)
    """
)


def test_kill_9_loses_no_label_whose_call_returned(label_project: Path) -> None:
    printed: list[tuple[str, str]] = []
    for stop_after in (7, 23):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(label_project)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(tuple(line.split()))
            if len(lines) >= stop_after:
                break
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is inside its next label
        proc.wait()
        lines += [tuple(line.split()) for line in proc.stdout.read().splitlines()]
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL and len(lines) >= stop_after
        printed += lines
    with LabelStore(label_project / "labels.sqlite") as store:
        assert store.integrity_check() == ["ok"]
        history = store.label_history()
        stored = set(zip(history["candidate_id"], history["annotator"], strict=True))
    assert set(printed) <= stored


def test_queue_over_two_tomograms_follows_the_cursor(label_project: Path) -> None:

    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    write_mrc(label_project.parent / "TS_02.mrc", np.zeros((32, 64, 64), np.float32), 10.0)
    with Project.open(label_project) as project:
        project.add_tomogram(label_project.parent / "TS_02.mrc", "TS_02")
        project.labels.add_candidates(
            pd.DataFrame({"candidate_id": ["TS_02:000000"], "tomo_id": "TS_02",
                          "z": [5.0], "y": [6.0], "x": [7.0]}),
            source="test",
        )  # fmt: skip
        project.labels.write_suggestions(1, [IDS[0], "TS_02:000000"], [0.9, 0.5], "kt")
    session = LabellingSession(label_project, annotator="alice")
    assert session.tomo_id == "TS_01" and len(session.points().positions_A) == 6
    session.next()
    assert session.tomo_id == "TS_02"
    np.testing.assert_allclose(session.points().positions_A, [[50.0, 60.0, 70.0]])
    assert session.tomogram_path().name == "TS_02.mrc"
    session.close()
    only = LabellingSession(label_project, tomo_id="TS_02", annotator="alice")
    assert only.queue["candidate_id"].tolist() == ["TS_02:000000"]
    only.close()
    with pytest.raises(ValueError, match="unknown tomogram 'TS_03'"):
        LabellingSession(label_project, tomo_id="TS_03")


def test_a_view_filters_and_sorts_the_queue_and_n_p_move_within_it(label_project: Path) -> None:
    from cryoal.project.session import QueueView

    session = LabellingSession(label_project, annotator="alice")
    session.label("ring")  # IDS[0]
    session.label("unsure")  # IDS[1]
    session.set_view(QueueView(status="unlabelled"))
    assert session.queue["candidate_id"].tolist() == IDS[2:]
    assert session.current.candidate_id == IDS[2]
    session.previous()  # stays within the view
    assert session.current.candidate_id == IDS[2]
    session.label("barrel")  # moves on to the view's next unlabelled one
    assert session.current.candidate_id == IDS[3]
    assert session.counts().labelled == 3 and session.counts().total == 6  # the whole round
    session.set_view(QueueView(status="unsure"))
    assert session.queue["candidate_id"].tolist() == [IDS[1]]
    session.set_view(QueueView(sort="score"))  # round 0 has no scores: the rank order
    assert session.queue["candidate_id"].tolist() == IDS
    session.set_view(QueueView(tomo_id="elsewhere"))
    assert session.queue.empty and session.current is None
    session.set_view(QueueView())
    assert session.current.candidate_id == IDS[3]  # back on the first unlabelled one
    with pytest.raises(ValueError, match="view sort 'size'"):
        QueueView(sort="size")
    session.close()


def test_confidence_and_predicted_views_read_the_models_figures(
    label_project: Path,
    write_model_round,  # noqa: ANN001
) -> None:
    from cryoal.project.session import QueueView

    write_model_round(
        label_project, IDS[:3], {"ring": [0.9, 0.4, 0.55], "barrel": [0.1, 0.6, 0.45]}
    )
    session = LabellingSession(label_project, annotator="alice")
    session.set_view(QueueView(sort="confidence"))  # least confident first: 0.55, 0.6, 0.9
    assert session.queue["candidate_id"].tolist() == [IDS[2], IDS[1], IDS[0]]
    session.set_view(QueueView(predicted="ring"))
    assert session.queue["candidate_id"].tolist() == [IDS[0], IDS[2]]
    session.close()


def test_label_totals_follow_every_key_without_recounting_the_store(
    label_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer's totals after each key come from the session's own writes (a recount
    reads every current label: too slow per key in a large project) and always equal a
    fresh count; an outside write makes the session count again."""
    session = LabellingSession(label_project, annotator="alice")
    reads = []
    count = session.store.count_labels
    monkeypatch.setattr(session.store, "count_labels", lambda: reads.append(1) or count())

    def fresh() -> tuple[dict[str, int], dict[str, int]]:
        return LabellingSession(label_project, annotator="bob").label_counts("TS_01")

    assert session.label_counts("TS_01") == fresh()
    session.label("ring")  # IDS[0]
    session.label("unsure")  # IDS[1]
    session.jump(IDS[0])
    session.label("barrel")  # IDS[0]: ring -> barrel
    session.undo()  # back to ring
    session.jump(IDS[2])
    session.label("not-a-particle")
    everywhere, here = session.label_counts("TS_01")
    assert (everywhere, here) == fresh()
    assert everywhere["ring"] == here["ring"] == 1 and everywhere["barrel"] == 0
    assert len(reads) == 1  # counted once, at the first read
    with LabelStore(label_project / "labels.sqlite") as other:  # another program labels
        other.add_label(IDS[5], "barrel", "carol")
    assert session.changed_outside()
    session.refresh()
    assert session.label_counts("TS_01") == fresh() and len(reads) == 2
    assert session.label_counts("TS_01")[0]["barrel"] == 1
    session.close()


def test_an_earlier_round_can_be_reviewed_and_relabelled_with_its_provenance(
    label_project: Path,
) -> None:
    session = LabellingSession(label_project, annotator="alice")
    session.label("ring")  # IDS[0], round 0
    with LabelStore(label_project / "labels.sqlite") as cli:
        cli.write_suggestions(1, [IDS[5], IDS[4]], [0.9, 0.8], "kt", model_version="r001-x")
    session.refresh()
    assert session.round == 1 and session.rounds() == [0, 1]
    session.review(0)
    assert session.round == 0 and session.reviewing == 0 and len(session.queue) == 6
    session.jump(IDS[0])
    assert session.label("barrel").round == 0  # the round whose queue asked for it
    everywhere, here = session.label_counts("TS_01")
    assert everywhere["barrel"] == here["barrel"] == 1 and everywhere["ring"] == 0
    assert session.label_counts()[1] == {}
    session.refresh()  # an outside change does not leave the reviewed round
    assert session.round == 0
    session.review(None)
    assert session.round == 1 and session.reviewing is None
    with pytest.raises(ValueError, match=r"round 5 has no queue; rounds: \[0, 1\]"):
        session.review(5)
    session.close()
