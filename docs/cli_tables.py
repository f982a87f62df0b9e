"""The README's option tables, made from the command line's own declarations (run by cog:
`cog -r README.md` rewrites them, `tests/test_docs.py` checks they are current)."""

from __future__ import annotations

import click

from bulk_contacts import cli

SHARED = {
    "roster": cli.roster_options.names,
    "plan": cli.plan_options.names,
    "connection": cli.connection_options().names,
}


def options_of(command: str) -> list[click.Option]:
    params = cli.main.commands[command].params
    return [p for p in params if isinstance(p, click.Option) and p.name != "help"]


def row(option: click.Option) -> str:
    names = ", ".join(f"`{name}`" for name in option.opts)
    if isinstance(option.type, click.Choice):
        names += " " + "\\|".join(str(c) for c in option.type.choices)
    elif option.metavar:
        names += f" {option.metavar}"
    meaning = option.help or ""
    if option.show_default and option.default not in (None, False, ()):
        meaning += f" Default: {option.default}."
    return f"| {names} | {meaning} |"


def table(options: list[click.Option]) -> str:
    return "\n".join(["| option | meaning |", "|---|---|", *map(row, options)])


def shared_table(group: str) -> str:
    """The options several commands share (`plan` takes all three groups)."""
    return table([o for o in options_of("plan") if o.name in SHARED[group]])


def command_table(command: str) -> str:
    """A command's own options: those of no shared group it takes (rollback takes the
    connection options but --dealer)."""
    own = options_of(command)
    names = {o.name for o in own}
    shared = {
        name for group in SHARED.values() if set(group) - {"dealer"} <= names for name in group
    }
    return table([o for o in own if o.name not in shared])


def subcommand_table(group: str, command: str) -> str:
    """The options of a group's command (`profiles add`)."""
    commands = cli.main.commands[group]
    assert isinstance(commands, click.Group)
    params = commands.commands[command].params
    return table([p for p in params if isinstance(p, click.Option) and p.name != "help"])
