"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_STRUCTURES = REPO_ROOT.parent / "shared" / "structures"


@pytest.fixture(scope="session")
def shared_structures() -> Path:
    """``../shared/structures`` (real SHREC maps at 10 Å and two PDB models)."""
    if not (SHARED_STRUCTURES / "maps_10A").is_dir():
        pytest.skip(f"{SHARED_STRUCTURES} not present (it sits beside the repository in CI)")
    return SHARED_STRUCTURES
