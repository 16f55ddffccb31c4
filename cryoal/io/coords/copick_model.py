"""copick picks files through copick's own data model (the ``copick`` extra).

copick is imported only here and in :mod:`cryoal.io.copick_project`, inside the functions
that need it: :func:`import_copick` returns the module or raises a one-line ``ValueError``
naming the extra (``pip install "cryoal[copick]"``). :func:`parse_picks_file` validates a
picks JSON with copick's ``CopickPicksFile`` and returns the particle centres as copick
defines them (``CopickPicks.full_positions``: each point's location plus the translation
of its transformation, Å); :func:`picks_file_model` builds a ``CopickPicksFile`` from xyz Å
positions and :func:`picks_file_text` serialises it as copick's ``store()`` does.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: The command that installs copick with a version cryoal is tested with.
COPICK_INSTALL = 'pip install "cryoal[copick]"'


def import_copick(what: str) -> ModuleType:
    """The copick module (with its data models and filesystem backend).

    ``what`` says what needs it, e.g. ``"picks.json: reading copick picks"``.

    Raises
    ------
    ValueError
        copick is not installed (one line naming ``what`` and the install command).
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # third-party import noise
            import copick
            import copick.impl.filesystem
            import copick.models
            import copick.util.log
    except ImportError as exc:
        raise ValueError(
            f"{what} needs the copick library, which is not installed ({exc}); install it "
            f"with {COPICK_INSTALL}"
        ) from exc
    finally:
        # copick's modules call copick.util.log.get_logger when imported, which re-runs
        # logging.basicConfig(force=True) at INFO with a rich handler: the root logger of
        # the program that imports copick is put back, and modules copick imports later
        # get plain loggers
        root.handlers[:] = handlers
        root.setLevel(level)
    copick.util.log.get_logger = _plain_logger
    return copick


def _plain_logger(name: str, debug: bool = False) -> logging.Logger:
    """``copick.util.log.get_logger`` without its root-logger configuration."""
    return logging.getLogger(name)


def validation_line(exc: Exception) -> str:
    """A pydantic validation error of copick's models as one short phrase."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the file"
        return f"{where}: {first.get('msg', 'invalid')}"
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class PicksFile:
    """What a copick picks file says, validated by copick's ``CopickPicksFile``.

    Attributes
    ----------
    xyz_A
        ``(n, 3)`` particle centres, Å (location + transformation translation).
    object_name, user_id, session_id
        The file's ``pickable_object_name``, ``user_id`` and ``session_id``.
    run_name
        The file's ``run_name``, or ``None``.
    """

    xyz_A: np.ndarray
    object_name: str
    user_id: str
    session_id: str
    run_name: str | None


def parse_picks_file(path: Path) -> PicksFile:
    """Read a copick picks JSON with copick's data model.

    Raises
    ------
    ValueError
        copick is not installed, the file is not JSON or not a copick picks file, its
        unit is not Å, or a position is not finite (one line naming the file).
    """
    copick = import_copick(f"{path}: reading copick picks")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); check the file") from exc
    try:
        model = copick.models.CopickPicksFile.model_validate(doc)
    except ValueError as exc:  # pydantic's ValidationError
        raise ValueError(
            f"{path}: not a copick picks file ({validation_line(exc)}); check the file"
        ) from None
    if model.unit != "angstrom":
        raise ValueError(
            f"{path}: copick unit {model.unit!r} is not supported; copick stores angstrom"
        )
    xyz = full_positions(copick, model)
    if not np.isfinite(xyz).all():
        raise ValueError(f"{path}: non-finite copick point location; fix the file")
    return PicksFile(
        xyz_A=xyz,
        object_name=str(model.pickable_object_name),
        user_id=str(model.user_id),
        session_id=str(model.session_id),
        run_name=str(model.run_name) if model.run_name else None,
    )


def full_positions(copick: ModuleType, model: Any) -> np.ndarray:
    """``(n, 3)`` xyz Å: copick's ``CopickPicks.full_positions`` of a ``CopickPicksFile``."""
    if not model.points:
        return np.zeros((0, 3))
    picks = copick.models.CopickPicks(run=None, file=model)  # a file without a project
    return np.asarray(picks.full_positions(), dtype=np.float64).reshape(-1, 3)


def picks_points(copick: ModuleType, xyz_A: np.ndarray) -> list[Any]:
    """copick ``CopickPoint``s at ``(n, 3)`` xyz Å (identity transformation, score 1)."""
    models = copick.models
    return [
        models.CopickPoint(location=models.CopickLocation(x=float(x), y=float(y), z=float(z)))
        for x, y, z in np.asarray(xyz_A, dtype=np.float64).reshape(-1, 3)
    ]


def picks_file_model(
    copick: ModuleType,
    xyz_A: np.ndarray,
    *,
    object_name: str,
    user_id: str,
    session_id: str,
    run_name: str | None,
    voxel_spacing: float | None,
) -> Any:
    """A copick ``CopickPicksFile`` (orientations not trusted: identity transforms)."""
    return copick.models.CopickPicksFile(
        pickable_object_name=object_name,
        user_id=user_id,
        session_id=session_id,
        run_name=run_name,
        voxel_spacing=voxel_spacing,
        unit="angstrom",
        points=picks_points(copick, xyz_A),
        trust_orientation=False,
    )


def picks_file_text(model: Any) -> str:
    """A ``CopickPicksFile`` as JSON text, as copick's filesystem ``store()`` writes it."""
    return json.dumps(model.model_dump(), indent=4) + "\n"
