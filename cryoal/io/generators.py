"""The cryoal commands a ``generated`` manifest source may run, and the check of their arguments.

A manifest is third-party input, so its ``source.commands`` are not trusted: each must be
one of cryoal's own generators (:data:`GENERATORS`: ``simulate tomogram``, ``simulate
subtomograms``) with only the options listed here (each option and its values as separate
arguments), every number a number, every choice a valid one, a tomogram id that follows
:func:`cryoal.io.names.check_tomo_id`, and every path argument relative, without ``..`` or
``\\``, so that it lies inside the folder the commands run in (a fresh folder inside the
dataset folder).
``--templates`` (which reads files) is not allowed: a generated source uses the built-in
phantoms. :func:`check_generator_command` runs when a manifest is validated, so a
manifest that breaks these rules is refused before anything runs;
:func:`check_paths_inside` checks again, just before each command runs, that its path
arguments resolve (symbolic links followed) inside the folder it runs in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cryoal.io.names import check_tomo_id


@dataclass(frozen=True)
class Option:
    """One allowed option: how many values it takes and what each value is.

    ``kind`` is ``flag`` (no value), ``int``, ``float``, ``path`` (a file or folder the
    command writes), ``tomo_id``, ``shard`` (``K/N``) or ``choice`` (one of ``choices``).
    """

    kind: str
    nargs: int = 1
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generator:
    """An allowed command: its positional arguments (all paths) and its options."""

    positionals: tuple[str, ...]
    options: dict[str, Option] = field(default_factory=dict)


_FLAG = Option("flag", 0)
_INT = Option("int")
_FLOAT = Option("float")
_PATH = Option("path")
_IMAGING = {
    "--voxel-size": _FLOAT,
    "--snr": _FLOAT,
    "--tilt-range": Option("float", 2),
    "--seed": _INT,
    "--classes": _INT,
    "--path": Option("choice", choices=("fourier", "backprojection")),
    "--defocus-range": Option("float", 2),
    "--no-ctf": _FLAG,
    "--phase-flip": _FLAG,
    "--no-wedge": _FLAG,
    "--tilt-step": _FLOAT,
    "--overwrite": _FLAG,
}

#: ``(group, command) -> Generator``: the commands a generated source may run
#: (tests/io/test_generators.py checks every option against the CLI).
GENERATORS: dict[tuple[str, str], Generator] = {
    ("simulate", "tomogram"): Generator(
        ("OUT_DIR",),
        {
            **_IMAGING,
            "--shape": Option("int", 3),
            "--particles": _INT,
            "--snr-box": _INT,
            "--tomo-id": Option("tomo_id"),
            "--vesicles": _INT,
            "--sheets": _INT,
            "--vesicle-radius": Option("float", 2),
            "--bound-fraction": _FLOAT,
        },
    ),
    ("simulate", "subtomograms"): Generator(
        ("OUT",),
        {
            **_IMAGING,
            "--per-class": _INT,
            "--box": _INT,
            "--preview": _PATH,
            "--masks": _FLAG,
            "--halves": _FLAG,
            "--max-shift": _FLOAT,
            "--crowding": _INT,
            "--no-normalise": _FLAG,
            "--start-index": _INT,
            "--shard": Option("shard"),
            "--workers": _INT,
            "--dtype": Option("choice", choices=("float32", "float16")),
        },
    ),
}

_PATH_FIX = (
    "a generated source writes only inside the folder it is fetched into: give a relative "
    "path without '..', e.g. 'sim'"
)

#: ``(what is wrong, how to fix it)``, or ``None`` when nothing is.
Problem = tuple[str, str] | None


def _shown(argv: Sequence[str]) -> str:
    """The command as a user would type it (for messages)."""
    return " ".join(["cryoal", *argv])


def _path_problem(value: str) -> str | None:
    """Why ``value`` is not a path inside the working folder, or ``None``."""
    p = PurePosixPath(value)
    if not value.strip():
        return "is empty"
    if p.is_absolute() or value.startswith("~"):
        return "is absolute"
    if ".." in p.parts:
        return "contains '..'"
    if "\\" in value or any(ord(c) < 32 for c in value):
        return "contains '\\' or a control character"
    return None


def _value_problem(option: Option, value: str) -> str | None:
    """Why ``value`` is not a valid value of ``option`` (not a path), or ``None``."""
    if option.kind in ("int", "float"):
        try:
            int(value) if option.kind == "int" else float(value)
        except ValueError:
            return f"{value!r} is not {'an integer' if option.kind == 'int' else 'a number'}"
        return None
    if option.kind == "choice":
        return None if value in option.choices else f"{value!r} is not one of {option.choices}"
    if option.kind == "shard":
        k, _, n = value.partition("/")
        return None if k.isdigit() and n.isdigit() else f"{value!r} is not K/N"
    try:  # tomo_id
        check_tomo_id(value)
    except ValueError as exc:
        return str(exc).rsplit(";", 1)[0]
    return None


def _option_problem(gen: Generator, name: str, values: list[str]) -> Problem:
    """What is wrong with option ``name`` given ``values`` (as many as it takes, or fewer)."""
    option = gen.options.get(name)
    if option is None:
        return (
            f"option {name!r} is not allowed",
            f"remove it (a generated source may use {', '.join(sorted(gen.options))})",
        )
    if len(values) < option.nargs:
        return f"option {name} needs {option.nargs} value(s)", "give them"
    for value in values[: option.nargs]:
        if option.kind == "path":
            problem = _path_problem(value)
            if problem:
                return f"{name}: path {value!r} {problem}", _PATH_FIX
        else:
            problem = _value_problem(option, value)
            if problem:
                return f"{name}: {problem}", "fix the value"
    return None


def _argument_problem(gen: Generator, args: list[str]) -> Problem:
    """What is wrong with the arguments after ``group command``, or ``None``."""
    positionals: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            if "=" in arg:
                name = arg.split("=", 1)[0]
                return f"{arg!r} is one argument", f"write {name!r} and its value as two"
            problem = _option_problem(gen, arg, args[i + 1 :])
            if problem:
                return problem
            i += 1 + gen.options[arg].nargs
            continue
        path_problem = _path_problem(arg)
        if path_problem:
            return f"path {arg!r} {path_problem}", _PATH_FIX
        positionals.append(arg)
        i += 1
    if len(positionals) != len(gen.positionals):
        return (
            f"it takes {len(gen.positionals)} path argument(s) ({' '.join(gen.positionals)}), "
            f"not {len(positionals)}",
            "give one output path, e.g. 'sim'",
        )
    return None


def check_generator_command(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` (a generated source's cryoal argument list) if it may run.

    Raises
    ------
    ValueError
        One line naming the command, the argument that is not allowed and the fix.
    """
    argv = [str(a) for a in argv]
    shown = _shown(argv)
    gen = GENERATORS.get((argv[0], argv[1])) if len(argv) >= 2 else None
    if gen is None:
        allowed = ", ".join(f"'{' '.join(key)}'" for key in GENERATORS)
        raise ValueError(
            f"command '{shown}' is not allowed: a generated source runs only cryoal's "
            f"simulators ({allowed}); remove it or replace it with one of these"
        )
    problem = _argument_problem(gen, argv[2:])
    if problem:
        raise ValueError(f"command '{shown}': {problem[0]}; {problem[1]}")
    return argv


def check_paths_inside(argv: Sequence[str], folder: str | os.PathLike) -> None:
    """Check that every path argument of an allowed command resolves inside ``folder``.

    Run just before the command runs in ``folder``: a symbolic link inside ``folder``
    (none of the allowed commands makes one) must not lead a path outside it.

    Raises
    ------
    ValueError
        The command is not allowed, or a path resolves outside ``folder``.
    """
    args = check_generator_command(argv)
    gen = GENERATORS[(args[0], args[1])]
    root = Path(folder).resolve()
    paths: list[str] = []
    i = 2
    while i < len(args):
        option = gen.options.get(args[i])
        if option is None:
            paths.append(args[i])
            i += 1
            continue
        if option.kind == "path":
            paths.append(args[i + 1])
        i += 1 + option.nargs
    for value in paths:
        resolved = (root / value).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(
                f"command '{_shown(args)}': path {value!r} resolves to "
                f"{resolved}, outside the folder it runs in ({root}); nothing was run"
            )
