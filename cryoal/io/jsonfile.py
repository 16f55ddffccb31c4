"""Small JSON records written by cryoal (``round.json``, ``model.json``), read back with
one-line errors: a file that is not UTF-8 text or not JSON is named and called damaged,
with what to do about it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path, fix: str) -> Any:
    """The JSON content of ``path``.

    Raises
    ------
    ValueError
        The file is not UTF-8 text or not valid JSON (the message names ``path``, says it
        is damaged and ends with ``fix``), or cannot be read.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        reason = f"not text: byte {exc.start} is not UTF-8"
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror}); check the file") from None
    raise ValueError(f"{path}: damaged ({reason}); {fix}")
