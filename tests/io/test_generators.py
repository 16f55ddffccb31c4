"""What a generated manifest source may run: the allow-list agrees with the CLI, the shipped
manifests pass, and hostile commands are refused in one line before anything runs."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

from cryoal.io.generators import GENERATORS, check_generator_command, check_paths_inside
from cryoal.io.manifest import bundled_manifest_dir, load_manifest

#: Options of the allowed commands that a generated source may not use, and why.
EXCLUDED = {"--templates"}  # reads files: a generated source uses the built-in phantoms


def _kind(hint: Any) -> tuple[str, int, tuple[str, ...]]:
    """``(kind, nargs, choices)`` of a CLI parameter's type, in the allow-list's terms."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _kind(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return "choice", 1, tuple(args)
    if origin is tuple:
        return _kind(args[0])[0], len(args), ()
    if hint is bool:
        return "flag", 0, ()
    return {int: "int", float: "float", Path: "path", str: "str"}[hint], 1, ()


def _cli_parameters(command: str) -> tuple[int, dict[str, tuple[str, int, tuple[str, ...]]]]:
    """The number of arguments and ``option -> kind`` of ``cryoal simulate COMMAND``."""
    from cryoal.cli import simulate

    func = getattr(simulate, command)
    hints = typing.get_type_hints(func)
    positionals, options = 0, {}
    for name, param in inspect.signature(func).parameters.items():
        decls = getattr(param.default, "param_decls", None)
        if decls:
            options[decls[0]] = _kind(hints[name])
        else:
            positionals += 1
    return positionals, options


@pytest.mark.parametrize("key", sorted(GENERATORS), ids=" ".join)
def test_the_allow_list_matches_the_cli(key: tuple[str, str]) -> None:
    """Every allowed option exists with that many values of that type; every option left
    out is left out on purpose (a new option of the simulator fails here until decided)."""
    assert key[0] == "simulate"
    gen = GENERATORS[key]
    positionals, options = _cli_parameters(key[1])
    assert positionals == len(gen.positionals)
    assert set(options) - set(gen.options) == EXCLUDED
    for name, option in gen.options.items():
        kind, nargs, choices = options[name]
        expected = "str" if option.kind in ("tomo_id", "shard") else option.kind
        assert (kind, nargs, choices) == (expected, option.nargs, option.choices), name


def test_the_shipped_generated_manifests_pass() -> None:
    generated = [
        m for m in map(load_manifest, bundled_manifest_dir().glob("*.yaml"))
        if m.source.kind == "generated"
    ]  # fmt: skip
    assert [m.name for m in generated] == ["demo-sim"]
    for m in generated:
        for argv in m.source.commands:
            assert check_generator_command(argv) == argv


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["simulate", "tomogram", "/some/user/folder", "--overwrite"], "'/some/user/folder' is absolute"),
        (["simulate", "tomogram", "../../ESCAPED"], "'../../ESCAPED' contains '..'"),
        (["simulate", "tomogram", "sim/../../x"], "contains '..'"),
        (["simulate", "tomogram", "~/x"], "is absolute"),
        (["simulate", "subtomograms", "a.h5", "--preview", "/tmp/p.png"], "--preview: path '/tmp/p.png' is absolute"),
        (["convert-coords", "a.star", "b.star", "--overwrite"], "is not allowed: a generated source runs only"),
        (["simulate", "merge", "out.h5", "a.h5"], "is not allowed"),
        (["--debug", "simulate", "tomogram", "sim"], "is not allowed"),
        (["simulate"], "is not allowed"),
        (["simulate", "tomogram", "sim", "--templates", "/etc"], "option '--templates' is not allowed"),
        (["simulate", "tomogram", "sim", "--help"], "option '--help' is not allowed"),
        (["simulate", "tomogram", "sim", "--seed=3"], "'--seed=3' is one argument"),
        (["simulate", "tomogram", "sim", "--seed", "x"], "--seed: 'x' is not an integer"),
        (["simulate", "tomogram", "sim", "--shape", "8", "8"], "--shape needs 3 value(s)"),
        (["simulate", "tomogram", "sim", "--path", "fast"], "'fast' is not one of"),
        (["simulate", "tomogram", "sim", "--tomo-id", "../../evil"], "tomogram id '../../evil'"),
        (["simulate", "tomogram", "a", "b"], "takes 1 path argument(s) (OUT_DIR), not 2"),
        (["simulate", "tomogram"], "not 0"),
    ],
)  # fmt: skip
def test_hostile_commands_are_refused_in_one_line(argv: list[str], expected: str) -> None:
    with pytest.raises(ValueError) as info:
        check_generator_command(argv)
    msg = str(info.value)
    assert "\n" not in msg and expected in msg
    assert msg.startswith(f"command 'cryoal {' '.join(argv)}'")


def test_allowed_commands_with_values_that_look_like_options() -> None:
    argv = ["simulate", "tomogram", "sim", "--tilt-range", "-60", "60", "--snr", "inf",
            "--tomo-id", "TS_01", "--overwrite"]  # fmt: skip
    assert check_generator_command(argv) == argv
    argv = ["simulate", "subtomograms", "out/train.h5", "--shard", "1/4", "--dtype", "float16"]
    assert check_generator_command(argv) == argv


def test_a_symbolic_link_cannot_lead_a_path_outside(tmp_path: Path) -> None:
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (work / "link").symlink_to(outside)
    check_paths_inside(["simulate", "tomogram", "sim"], work)  # no link: fine
    with pytest.raises(ValueError, match="outside the folder it runs in"):
        check_paths_inside(["simulate", "tomogram", "link/sim"], work)
    with pytest.raises(ValueError, match="outside the folder it runs in"):
        check_paths_inside(["simulate", "subtomograms", "a.h5", "--preview", "link/p.png"], work)
    assert list(outside.iterdir()) == []
