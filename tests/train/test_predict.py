"""Streaming prediction: fixed batches, order kept, MC dropout, features, files written."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from cryoal.cli.main import run
from cryoal.io.mrc import open_tomogram, read_class_names, write_mrc
from cryoal.io.store import SubtomogramStore
from cryoal.models import build_model
from cryoal.train.config import TrainConfig
from cryoal.train.predict import predict, stream_outputs
from cryoal.train.predict_to_files import predict_path
from cryoal.train.run import train_store


class _Recorder(torch.nn.Module):
    """Wraps a model and records the batch size of every forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.model(x)


def test_fixed_size_batches_keep_the_requested_order(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    model = build_model("classify", "tiny", 2, seed=0)
    rec = _Recorder(model)
    idx = np.random.default_rng(0).permutation(len(store))[:23]
    outs = list(stream_outputs({"m": rec}, store, idx, batch_size=8))
    assert rec.sizes == [8, 8, 8]  # the last batch of 7 was padded to 8
    assert [len(o.indices) for o in outs] == [8, 8, 7]
    assert np.array_equal(np.concatenate([o.indices for o in outs]), idx)
    logits = torch.cat([o.logits["m"] for o in outs])
    model.eval()
    with torch.no_grad():
        direct = model(torch.from_numpy(store.subtomograms(idx))[:, None])
    torch.testing.assert_close(logits, direct, rtol=1e-4, atol=1e-5)
    assert model.training is False and rec.training is True  # modes restored


def test_features_and_mc_dropout(class_store: Path) -> None:
    store = SubtomogramStore(class_store)
    teacher = build_model("classify", "tiny", 2, dropout=0.5, seed=0)
    student = build_model("classify", "student", 2, seed=1)
    out = next(
        stream_outputs({"teacher": teacher, "student": student}, store, np.arange(5),
                       batch_size=4, mc_passes=6, features=True)
    )  # fmt: skip
    assert out.logits["teacher"].shape == (4, 2, 6)
    assert out.features["teacher"].shape == (4, teacher.num_features)
    assert out.features["student"].shape == (4, student.num_features)
    # dropout active across passes for the model that has it, none for the other
    assert out.logits["teacher"].std(dim=-1).max() > 0
    assert out.logits["student"].std(dim=-1).max() == 0
    pred = predict(teacher, store, np.arange(5), batch_size=4, features=True)
    assert pred.probs.shape == (5, 2) and pred.features.shape == (5, teacher.num_features)
    np.testing.assert_allclose(pred.probs.sum(1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def class_run(class_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cls"
    cfg = TrainConfig(teacher_preset="tiny", student_preset="tiny", epochs=1, batch_size=16)
    train_store(class_store, out, cfg)
    return out


def test_predict_store_to_h5_and_csv(class_run: Path, class_store: Path, tmp_path: Path) -> None:
    store = SubtomogramStore(class_store)
    assert (
        run(["predict", str(class_run), str(class_store), "--out", str(tmp_path / "p.h5"), "-q"])
        == 0
    )
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["ids"].asstr()[:].tolist() == store.ids.tolist()
        assert f["teacher/probs"].shape == (len(store), 2)
        assert f["student/features"].shape[0] == len(store)
        assert f["distance"].shape == (len(store),) and np.all(f["distance"][:] >= 0)
        assert json.loads(f.attrs["class_names"]) == ["sphere", "dumbbell"]
        probs = f["teacher/probs"][:]
        pred = f["teacher/pred"][:]
    assert np.array_equal(pred, probs.argmax(1))
    assert (
        run(["predict", str(class_run), str(class_store), "--out", str(tmp_path / "p.csv"), "-q"])
        == 0
    )
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["id"].tolist() == store.ids.tolist()
    np.testing.assert_allclose(table["teacher_p_sphere"], probs[:, 0], rtol=1e-4)
    assert set(table["student_class"]) <= {"sphere", "dumbbell"}


def test_predict_refuses_mismatched_inputs(
    class_run: Path, tmp_path: Path, make_store, capsys: pytest.CaptureFixture
) -> None:
    other = make_store(tmp_path / "7A.h5", per_class=2, voxel_size_A=7.0)
    assert run(["predict", str(class_run), str(other), "--out", str(tmp_path / "x.h5")]) == 2
    assert "voxel size 7 Å" in capsys.readouterr().err
    tomo = tmp_path / "t.mrc"
    write_mrc(tomo, np.zeros((16, 16, 16), np.float32), 10.0)
    assert run(["predict", str(class_run), str(tomo), "--out", str(tmp_path / "s.mrc")]) == 2
    assert "cryoal extract" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "s.mrc").exists()


def test_segment_a_tomogram_into_a_label_map(seg_store: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(task="segment", teacher_preset="tiny", student_preset="tiny", epochs=3,
                      batch_size=8, lr=0.01)  # fmt: skip
    out = tmp_path / "seg"
    train_store(seg_store, out, cfg)
    store = SubtomogramStore(seg_store)
    # a tomogram tiled from training boxes (with their true masks): 2 x 2 boxes in y, x
    rows = [0, 40, 5, 45]
    sub, masks = store.subtomograms(rows), store.masks(rows)
    vol = np.block([[sub[0], sub[1]], [sub[2], sub[3]]])
    truth = np.block([[masks[0], masks[1]], [masks[2], masks[3]]])
    tomo = tmp_path / "tomo.mrc"
    write_mrc(tomo, vol, 10.0, origin_zyx_A=(0.0, 50.0, 20.0))
    labels = tmp_path / "labels.mrc"
    assert run(["predict", str(out), str(tomo), "--out", str(labels), "-q"]) == 0
    with open_tomogram(labels) as lab:
        assert lab.shape == vol.shape
        assert lab.voxel_size_A == pytest.approx(10.0)
        assert lab.origin_zyx_A == pytest.approx((0.0, 50.0, 20.0))
        pred = np.asarray(lab.data)
    with mrcfile.open(labels) as m:
        assert m.data.dtype.kind == "i"
    # the map names its values, so a viewer colours it by class wherever it is copied
    assert read_class_names(labels) == json.loads((out / "model.json").read_text())["class_names"]
    fg_true, fg_pred = truth > 0, pred > 0
    dice = 2 * (fg_true & fg_pred).sum() / (fg_true.sum() + fg_pred.sum())
    assert dice > 0.6
    planes: list[int] = []  # progress: the z-planes of each slab add up to the depth
    predict_path(out, tomo, tmp_path / "again.mrc", on_batch=planes.append)
    assert sum(planes) == vol.shape[0] and all(p > 0 for p in planes)
    other = tmp_path / "tomo_7A.mrc"
    write_mrc(other, vol, 7.0)
    with pytest.raises(ValueError, match="rescale"):
        predict_path(out, other, tmp_path / "l7.mrc")
