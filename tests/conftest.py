"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cryoal.io.store import StoreWriter

REPO_ROOT = Path(__file__).resolve().parents[1]


# copick's modules reconfigure the root logger (INFO, a rich handler) when first imported;
# import copick once the way cryoal does, which undoes that, before a test module imports it
# directly (otherwise every later test would print its INFO lines)
try:
    from cryoal.io.coords.copick_model import import_copick

    import_copick("the test suite")
except ValueError:  # copick is not installed: its tests skip
    pass


SHARED_STRUCTURES = REPO_ROOT.parent / "shared" / "structures"


@pytest.fixture(scope="session")
def shared_structures() -> Path:
    """``../shared/structures`` (real SHREC maps at 10 Å and two PDB models)."""
    if not (SHARED_STRUCTURES / "maps_10A").is_dir():
        pytest.skip(f"{SHARED_STRUCTURES} not present (it sits beside the repository in CI)")
    return SHARED_STRUCTURES


@pytest.fixture
def label_project(tmp_path: Path) -> Path:
    """A small labelling project (``build_label_project``)."""
    return build_label_project(tmp_path)


@pytest.fixture(scope="session")
def make_label_project():  # noqa: ANN201 - the builder below
    """``build_label_project`` itself, for tests that need a variant."""
    return build_label_project


def build_label_project(tmp_path: Path, queue: bool = True) -> Path:
    """A small labelling project in ``tmp_path/proj``: a 32×96×96 tomogram at 10 Å with 6 bright blobs, one
    candidate on each (ids ``TS_01:000000``..``000005``), classes ring, barrel, and a
    round-0 queue of all six in id order (``queue=False``: no queue yet)."""
    import numpy as np
    import pandas as pd

    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    rng = np.random.default_rng(0)
    volume = rng.normal(0.0, 0.3, size=(32, 96, 96)).astype(np.float32)
    centres = np.array(
        [[16, 20, 20], [16, 20, 70], [12, 50, 45], [20, 75, 20], [16, 75, 72], [10, 48, 80]]
    )
    zz, yy, xx = np.mgrid[:32, :96, :96]
    for z, y, x in centres:
        volume += 3.0 * np.exp(-((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) / (2 * 3.0**2))
    write_mrc(tmp_path / "TS_01.mrc", volume, voxel_size_A=10.0)
    root = tmp_path / "proj"
    project = Project.init(root, ["ring", "barrel"], box=16)
    project.add_tomogram(tmp_path / "TS_01.mrc", "TS_01")
    ids = [f"TS_01:{i:06d}" for i in range(len(centres))]
    table = pd.DataFrame(
        {"candidate_id": ids, "tomo_id": "TS_01", "z": centres[:, 0].astype(float),
         "y": centres[:, 1].astype(float), "x": centres[:, 2].astype(float)}
    )  # fmt: skip
    project.labels.add_candidates(table, source="test")
    if queue:
        project.labels.write_suggestions(0, ids, None, "random", seed=0)
    project.close()
    return root


@pytest.fixture(scope="session")
def write_model_round():  # noqa: ANN201 - the writer below
    """``write_model_round_files`` itself: a round-1 queue ranked by a (stand-in) model."""
    return write_model_round_files


def write_model_round_files(root: Path, ids: list[str], probs: dict[str, list[float]]) -> None:
    """Round 1 of the project at ``root`` as a model-ranked suggestion writes it: the queue
    of ``ids`` (scores 0.9, 0.8, ... in that order, model ``r001-x``) in the label store,
    ``rounds/001/suggestions.csv`` with each id's predicted class and
    ``rounds/001/scores.csv`` with the class probabilities ``probs`` (class -> one value
    per id); the predicted class is the most probable one."""
    import numpy as np
    import pandas as pd

    from cryoal.project.labels import LabelStore

    scores = [round(0.9 - 0.1 * i, 1) for i in range(len(ids))]
    with LabelStore(root / "labels.sqlite") as cli:
        cli.write_suggestions(1, ids, scores, "kt", model_version="r001-x")
    names = list(probs)
    table = np.array([probs[n] for n in names])
    predicted = [names[i] for i in table.argmax(axis=0)]
    folder = root / "rounds" / "001"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"rank": range(len(ids)), "candidate_id": ids,
                  "predicted_class": predicted}).to_csv(folder / "suggestions.csv", index=False)  # fmt: skip
    pd.DataFrame({"candidate_id": ids, "score": scores, "pick": range(len(ids)),
                  "predicted_class": predicted, **{f"p_{n}": probs[n] for n in names}}).to_csv(
        folder / "scores.csv", index=False)  # fmt: skip


@pytest.fixture(scope="session")
def make_round0_labelled_project():  # noqa: ANN201 - the builder below
    """``build_round0_labelled_project`` itself (module fixtures build their own copy)."""
    return build_round0_labelled_project


def build_round0_labelled_project(tmp: Path, seed: int, tomo_id: str = "sim_tomo") -> Path:
    """``tmp/proj``: a simulated tomogram (2 classes, 30 particles, SNR 1, ``seed``) with its
    picks as candidates, a random round-0 queue of 12 and the expert's answers to it (from
    the simulation's ground truth) in the label store; no model yet."""
    import json

    import pandas as pd
    from scipy.spatial import cKDTree

    from cryoal.cli.main import run
    from cryoal.sim.tomograms import simulate_tomogram

    sim = simulate_tomogram(
        tmp / "sim", shape_zyx=(64, 128, 128), n_particles=30, n_classes=2, snr=1.0, seed=seed
    )
    names = ",".join(json.loads(sim.settings.read_text())["class_names"])
    proj = tmp / "proj"
    assert run(["project", "init", str(proj), "--classes", names, "--box", "16"]) == 0
    assert run(["project", "add-tomogram", str(proj), str(sim.tomogram), "--tomo-id", tomo_id]) == 0
    assert run(["project", "import-picks", str(proj), str(sim.star)]) == 0
    assert run(["suggest", str(proj), "--strategy", "random", "--k", "12", "--seed", "1"]) == 0
    truth = pd.read_csv(sim.ground_truth)
    queue = pd.read_csv(proj / "rounds/000/suggestions.csv")
    _, idx = cKDTree(truth[["z", "y", "x"]].to_numpy()).query(queue[["z", "y", "x"]].to_numpy())
    answers = pd.DataFrame(
        {"candidate_id": queue["candidate_id"], "label": truth["class_name"].to_numpy()[idx]}
    )
    answers.to_csv(tmp / "r0.csv", index=False)
    assert run(["labels", "import", str(proj), str(tmp / "r0.csv"), "--annotator", "x"]) == 0
    return proj


# -- small synthetic stores (training and pretraining tests: 16^3, two separable classes)
BOX = 16


def _make_store(
    path: Path,
    *,
    per_class: int = 48,
    noise: float = 0.3,
    seed: int = 0,
    masks: bool = False,
    unlabeled: int = 0,
    voxel_size_A: float = 10.0,
) -> Path:
    """Spheres (class 0) and dumbbells (class 1) with random shifts, sizes and noise.

    Masks (``masks=True``) hold 0 for background and ``class + 1`` inside the object, as
    the simulator writes them. ``unlabeled`` random samples get label -1.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:BOX, :BOX, :BOX] - (BOX - 1) / 2
    subs, labels, ms = [], [], []
    for c in range(2):
        for _ in range(per_class):
            dz, dy, dx = rng.uniform(-1.5, 1.5, 3)
            zz, yy, xx = z - dz, y - dy, x - dx
            if c == 0:
                m = zz**2 + yy**2 + xx**2 < rng.uniform(3.5, 4.5) ** 2
            else:
                r, d = rng.uniform(2.0, 2.6), rng.uniform(2.8, 3.6)
                m = (zz**2 + yy**2 + (xx - d) ** 2 < r**2) | (zz**2 + yy**2 + (xx + d) ** 2 < r**2)
            subs.append(m + noise * rng.standard_normal(m.shape))
            labels.append(c)
            ms.append(m.astype(np.uint8) * (c + 1))
    lab = np.array(labels)
    if unlabeled:
        lab[rng.choice(lab.size, unlabeled, replace=False)] = -1
    with StoreWriter(
        path, BOX, voxel_size_A, ["sphere", "dumbbell"], with_masks=masks, overwrite=True
    ) as w:
        w.append(
            np.stack(subs).astype(np.float32),
            [f"t:{i:05d}" for i in range(lab.size)],
            labels=lab,
            masks=np.stack(ms) if masks else None,
        )
    return path


@pytest.fixture(scope="session")
def make_store() -> Callable[..., Path]:
    """The store factory (see ``_make_store``) for tests that need a variant."""
    return _make_store


@pytest.fixture(scope="session")
def class_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 labeled samples, 2 balanced classes, 16^3."""
    return _make_store(tmp_path_factory.mktemp("stores") / "classes.h5")


@pytest.fixture(scope="session")
def seg_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 samples with masks (0 background, 1 sphere, 2 dumbbell), 16^3."""
    return _make_store(tmp_path_factory.mktemp("stores") / "seg.h5", per_class=32, masks=True)


#: Centres (z, y, x voxels) of the balls of ``build_segment_project``: small, large, ...
SEGMENT_CENTRES = [[12, 16, 16], [12, 16, 48], [12, 48, 16], [12, 48, 48], [20, 32, 32],
                   [20, 16, 32]]  # fmt: skip


@pytest.fixture(scope="session")
def make_segment_project():  # noqa: ANN201 - the builder below
    """``build_segment_project`` itself."""
    return build_segment_project


def build_segment_project(tmp_path: Path, masked: bool = True) -> Path:
    """A segment project in ``tmp_path/proj``: a 32×64×64 tomogram at 10 Å with bright
    balls of radius 3 ("small") and 5 ("large") alternating at ``SEGMENT_CENTRES``, box 16,
    candidates on them (``TS_01:000000``..``000005``) and on two empty places
    (``000006``, ``000007``); with ``masked`` each ball's candidate has a committed mask by
    ``alice`` (the ball, its first two x-columns not annotated)."""
    import numpy as np
    import pandas as pd

    from cryoal.io.mrc import write_mrc
    from cryoal.project.project import Project

    centres = np.array(SEGMENT_CENTRES)
    rng = np.random.default_rng(0)
    volume = rng.normal(0.0, 0.3, size=(32, 64, 64)).astype(np.float32)
    zz, yy, xx = np.mgrid[:32, :64, :64]
    for k, (z, y, x) in enumerate(centres):
        r = 3.0 if k % 2 == 0 else 5.0
        volume += 2.0 * (((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) <= r**2)
    write_mrc(tmp_path / "TS_01.mrc", volume, voxel_size_A=10.0)
    project = Project.init(tmp_path / "proj", ["small", "large"], box=16, task="segment")
    project.add_tomogram(tmp_path / "TS_01.mrc", "TS_01")
    every = np.concatenate([centres, [[24, 48, 32], [8, 32, 48]]])
    project.labels.add_candidates(
        pd.DataFrame({"candidate_id": [f"TS_01:{i:06d}" for i in range(len(every))],
                      "tomo_id": "TS_01", "z": every[:, 0] * 1.0, "y": every[:, 1] * 1.0,
                      "x": every[:, 2] * 1.0}), source="test",
    )  # fmt: skip
    if masked:
        box = 16
        zz, yy, xx = np.mgrid[:box, :box, :box] - box // 2
        for k in range(len(centres)):
            r, value = (3.0, 1) if k % 2 == 0 else (5.0, 2)
            mask = np.where(zz**2 + yy**2 + xx**2 <= r**2, value, 0).astype(np.uint8)
            mask[:, :, :2] = 255
            project.labels.add_mask(f"TS_01:{k:06d}", mask, "alice")
    project.close()
    return tmp_path / "proj"
