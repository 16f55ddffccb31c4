"""The naming rules shared by project configs, dataset manifests and the simulator.

A dataset's class map becomes a project's classes (``cryoal project from-manifest``), so
both check names with :func:`check_class_name`. A tomogram id becomes part of every
candidate id (``TS_01:000123``), a copick run name and so a folder name
(``ExperimentRuns/<id>/``), so everywhere a tomogram id enters cryoal (``simulate
tomogram``, ``project add-tomogram``, a manifest's ``tomo_id``, a project's
``project.yaml``, a copick picks file cryoal writes) it is checked with
:func:`check_tomo_id`.
"""

from __future__ import annotations

import re

#: A class name: a letter or digit, then letters, digits and ``_ . + -``.
CLASS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

#: A tomogram id: a letter or digit, then letters, digits and ``_ . -`` (no ``/``, no
#: ``:``, no spaces, never ``.`` or ``..``).
TOMO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_class_name(value: str) -> str:
    """Return ``value`` if it is a valid class name.

    Raises
    ------
    ValueError
        The name breaks the rule (one line naming it).
    """
    if not CLASS_NAME_RE.match(value):
        raise ValueError(
            f"class name {value!r} must start with a letter or digit and contain only "
            "letters, digits and _ . + -"
        )
    return value


def check_tomo_id(value: str, where: str = "pass another one with --tomo-id") -> str:
    """Return ``value`` if it is a valid tomogram id.

    ``where`` ends the message: how the caller's user gives another id.

    Raises
    ------
    ValueError
        The id breaks the rule (one line naming it and ``where``).
    """
    if not isinstance(value, str) or not TOMO_ID_RE.match(value):
        raise ValueError(
            f"tomogram id {value!r} must start with a letter or digit and contain only "
            f"letters, digits and _ . - (no '/', ':' or spaces: it names files and "
            f"candidates); {where}"
        )
    return value
