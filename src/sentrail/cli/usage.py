"""How ``--help`` reads: ``PATH`` rather than ``{path}``, ``--batch`` rather than
``--batch <bool>``, and the exit-code rule under every command.

typer (0.29) writes a required argument as ``{name}`` in the usage line and gives every
option a type column, flags included (``--help <bool>``). A new user reads ``{path}`` as
something to type with braces and ``<bool>`` as a value to give. The command and group
classes here keep typer's layout and change only that: arguments are written in capitals,
optional ones in brackets, and flags show no type. :func:`plain_help` puts them under every
command of an app, so no command module has to remember to.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# typer carries its own copy of click; its parameter, context and command types are typer's,
# not the installed click's, so they are spelt ``Any`` here rather than ``click.X``.

EXIT_CODES = (
    "Exit codes: 0 ok; 1 the check failed (a finding at or above --fail-on, a log or "
    "bundle that does not verify, a failing policy example, a refused contain release); "
    "2 usage or input error (bad options, a missing, unreadable or invalid input, an "
    "unreachable store). When both apply, 2 wins: the result is incomplete."
)


def _plain(params: list[Any]) -> set[str]:
    """Flags get no type column, arguments a name in capitals. Returns the names of the
    arguments whose metavar the command's author wrote (kept as written in the usage)."""
    explicit = {p.name or "" for p in params if isinstance(p, TyperArgument) and p.metavar}
    for p in params:
        if isinstance(p, TyperOption) and (p.is_flag or p.count) and p.metavar is None:
            p.metavar = ""  # a flag takes no value
        elif isinstance(p, TyperArgument) and p.metavar is None and p.name:
            p.metavar = p.name.upper()
    return explicit


def _plain_option(option: Any) -> Any:
    if option is not None:
        _plain([option])
    return option


def _argument_usage(p: TyperArgument, explicit: bool) -> str:
    name = p.metavar or (p.name or "").upper()
    if explicit:  # the command's author wrote it out: keep it as written
        return name
    if not p.required:
        name = f"[{name}]"
    return f"{name}..." if p.nargs != 1 else name


def _usage_pieces(command: Any, ctx: Any, explicit: set[str]) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for p in command.get_params(ctx):
        if isinstance(p, TyperArgument):
            pieces.append(_argument_usage(p, (p.name or "") in explicit))
        else:
            pieces.extend(p.get_usage_pieces(ctx))
    return pieces


class PlainCommand(TyperCommand):
    """A typer command whose help names arguments in capitals and flags without a type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._explicit = _plain(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_option(super().get_help_option(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx, self._explicit)


class PlainGroup(TyperGroup):
    """A typer group with the same help conventions as :class:`PlainCommand`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_option(super().get_help_option(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self, ctx, set()), self.subcommand_metavar]


def plain_help(app: typer.Typer, epilog: str = EXIT_CODES) -> None:
    """Use the plain help classes for ``app`` and everything under it, and put ``epilog``
    under every command that does not state its own."""
    app.info.cls = PlainGroup
    if not isinstance(app.info.epilog, str):
        app.info.epilog = epilog
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:  # typer's default, not a choice
            info.cls = PlainCommand
        info.epilog = info.epilog or epilog
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance, epilog)
