"""The rule for class names, shared by project configs and dataset manifests.

A dataset's class map becomes a project's classes (``cryoal project from-manifest``), so
both check names with :func:`check_class_name`.
"""

from __future__ import annotations

import re

#: A class name: a letter or digit, then letters, digits and ``_ . + -``.
CLASS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


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
