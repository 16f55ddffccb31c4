"""Every command line cryoal recommends (in an error, a warning, a help text or a docstring)
names a command and options that exist in the ``cryoal`` CLI.

The hints are the quoted ``cryoal <command> ...`` strings of cryoal's sources and of its
napari plugin (``'cryoal train DIR'``, ```cryoal suggest DIR --import```, f-strings
included); each is walked through the click command tree of the typer app.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cryoal.cli.main import app

REPO = Path(__file__).resolve().parents[2]
SOURCES = (REPO / "cryoal", REPO / "napari_plugin" / "cryoal_napari")
#: A quoted command line: ``'cryoal ...'``, ``"cryoal ..."`` or ```cryoal ...```.
QUOTED = re.compile(r"""['"`]cryoal ([^'"`]*)['"`]""")
#: A sub-command word, or alternatives (``list|info|fetch``).
WORD = re.compile(r"[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*")
#: What an f-string's ``{expression}`` becomes in a hint.
PLACEHOLDER = "X"


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string constant and f-string (``{...}`` parts as a placeholder) with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [
                str(v.value) if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values
            ]
            yield node.lineno, "".join(parts)


def collect_hints() -> list[tuple[str, str]]:
    """``(file:line, text after 'cryoal ')`` of every quoted command line in the sources."""
    found = []
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, text in _strings(tree):
                for match in QUOTED.finditer(text):
                    where = f"{path.relative_to(REPO)}:{line}"
                    found.append((where, match.group(1)))
    return list(dict.fromkeys(found))


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _takes_value(command: Any, option: str) -> bool:
    """Whether ``option`` of ``command`` is followed by a value (not a flag)."""
    for p in command.params:
        if option in (*p.opts, *p.secondary_opts):
            return not (getattr(p, "is_flag", False) or getattr(p, "count", False))
    return False


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def hint_problems(hint: str, root: Any) -> list[str]:
    """What in ``cryoal <hint>`` does not exist: sub-commands and options ([] when all do).

    Words after a group must be its sub-commands (``a|b`` alternatives: each); tokens
    starting with ``-`` must be options of the command reached so far; other tokens
    (arguments, placeholders such as ``DIR``) are not checked. A hint whose first word
    is not a command word (``cryoal train: ...``, ``cryoal X``) is not a command line.
    """
    tokens = [t.strip("[](),;") for t in hint.split()]
    tokens = [t for t in tokens if t and t != "..."]
    if not tokens or not (tokens[0].startswith("-") or WORD.fullmatch(tokens[0])):
        return []
    problems: list[str] = []
    commands, path = [root], "cryoal"
    skip_value = False
    for token in tokens:
        if skip_value:  # the value of the option before (``--events json``)
            skip_value = False
            continue
        if token.startswith("-"):
            name = token.split("=")[0]
            for command in commands:
                if name not in _options(command) | {"--help"}:
                    problems.append(f"'{path}' has no option {name}")
            skip_value = "=" not in token and any(_takes_value(c, name) for c in commands)
        elif all(_is_group(c) for c in commands) and WORD.fullmatch(token):
            found = []
            for word in token.split("|"):
                sub = commands[0].get_command(None, word)
                if sub is None:
                    problems.append(f"'{path}' has no command {word!r}")
                else:
                    found.append(sub)
            if not found:
                return problems
            commands, path = found, f"{path} {token}"
    return problems


@pytest.fixture(scope="module")
def root() -> Any:
    return typer.main.get_command(app)


def test_every_recommended_command_line_exists(root: Any) -> None:
    hints = collect_hints()
    assert len(hints) > 100  # the scan finds the hints (they are everywhere)
    bad = [
        f"{where}: 'cryoal {hint}': {p}" for where, hint in hints for p in hint_problems(hint, root)
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (
            "train DIR --round 3 --overwrite",
            ["'cryoal train' has no option --round", "'cryoal train' has no option --overwrite"],
        ),
        ("project nosuch DIR", ["'cryoal project' has no command 'nosuch'"]),
        ("data list|nosuch", ["'cryoal data' has no command 'nosuch'"]),
        ("project from-manifest NAME DIR --tomo-id X", ["has no option --tomo-id"]),
    ],
)
def test_the_check_finds_commands_and_options_that_do_not_exist(
    root: Any, hint: str, expected: list[str]
) -> None:
    found = " | ".join(hint_problems(hint, root))
    assert all(e in found for e in expected), found


@pytest.mark.parametrize(
    "hint",
    [
        "suggest DIR --import",
        "score DIR --shard $SLURM_ARRAY_TASK_ID/S",
        "data list|info|fetch|verify",
        "slurm train|suggest|round DIR",
        "--debug info broken.mrc",
        "project rebuild-labels X",
        "project relocate-tomogram X TS_01 NEW_PATH",
        "train: 2 node(s)",  # a log line, not a command line
    ],
)
def test_the_check_accepts_command_lines_that_exist(root: Any, hint: str) -> None:
    assert hint_problems(hint, root) == []
