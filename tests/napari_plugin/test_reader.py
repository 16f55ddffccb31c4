"""The napari readers, headless: layer data, scale in Å, manifest validity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryoal_napari import get_reader

from cryoal.io.mrc import write_mrc
from cryoal.io.store import StoreWriter

MANIFEST = Path(__file__).resolve().parents[2] / "napari_plugin" / "cryoal_napari" / "napari.yaml"


def test_manifest_is_valid_npe2() -> None:
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "cryoal"
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tomogram_opens_memory_mapped_with_voxel_size_scale(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).normal(size=(12, 20, 24)).astype(np.float32)
    path = tmp_path / "TS_01.rec"
    write_mrc(path, volume, voxel_size_A=13.48, origin_zyx_A=(0.0, 5.0, 10.0))

    reader = get_reader(str(path))
    assert reader is not None
    [(data, kwargs, layer_type)] = reader(str(path))

    assert layer_type == "image"
    assert isinstance(data, np.memmap)
    np.testing.assert_array_equal(np.asarray(data), volume)
    assert kwargs["scale"] == pytest.approx((13.48, 13.48, 13.48))
    assert kwargs["translate"] == (0.0, 5.0, 10.0)
    lo, hi = kwargs["contrast_limits"]
    assert volume.min() <= lo < hi <= volume.max()


def test_store_opens_as_sample_stack_with_labels(tmp_path: Path) -> None:
    path = tmp_path / "subtomos.h5"
    with StoreWriter(path, box=8, voxel_size_A=10.0, class_names=["ribosome", "empty"]) as w:
        w.append(np.ones((3, 8, 8, 8)), ["a", "b", "c"], labels=[0, 1, -1])
    [(data, kwargs, _)] = get_reader(str(path))(str(path))  # type: ignore[misc]
    assert data.shape == (3, 8, 8, 8)
    assert kwargs["scale"] == (1.0, 10.0, 10.0, 10.0)
    assert kwargs["metadata"]["labels"] == [0, 1, -1]
    assert kwargs["metadata"]["class_names"] == ["ribosome", "empty"]


def test_unsupported_files_are_declined() -> None:
    assert get_reader("picks.star") is None
    assert get_reader(["a.mrc", "b.star"]) is None
