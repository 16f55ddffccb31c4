"""Command groups whose commands are defined (and their libraries imported) on first use.

A group such as ``cryoal simulate`` takes its option defaults from heavy library modules
(the simulator imports torch and scipy). Registering it through :func:`lazy_group` keeps
``cryoal --help`` and every other command fast: the module that defines the group's
commands is imported only when ``cryoal simulate ...`` runs.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A group that imports ``target`` (``"package.module:function"``) when first used.

    ``function()`` returns the :class:`typer.Typer` that defines the group's commands.
    """

    target: str = ""

    def _load(self) -> None:
        if getattr(self, "_loaded", False):
            return
        module_name, _, attr = self.target.partition(":")
        built = getattr(importlib.import_module(module_name), attr)()
        group = typer.main.get_command(built)
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            self.add_command(command, name)
        self._loaded = True

    def list_commands(self, ctx: Any) -> list[str]:
        self._load()
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        self._load()
        return self.commands.get(cmd_name)


def lazy_group(target: str, help: str) -> typer.Typer:
    """A :class:`typer.Typer` whose commands come from ``target`` on first use."""
    cls = type("LazyGroup", (LazyGroup,), {"target": target})
    return typer.Typer(cls=cls, help=help, no_args_is_help=True, rich_markup_mode=None)
