"""The command line: declares options, calls the library, prints, and chooses exit codes.

Only this package imports click and prints; everything it runs is a library call a script can
make. Options travel as typed values (`ReadOptions`, `PlanOptions`, `Connection`, `Writing`,
in `options`). One boundary (`Cli.invoke`) turns the library's errors into one line and an exit
code. Each family of commands has its module; `common` holds what they share (`echo`, the only
print).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from .. import __version__
from ..errors import BulkContactsError, ExitCode
from ..terminal import with_flags
from .applying import apply
from .common import COMMAND_LINE, INTERRUPT_NOTE, Invocation, echo, on_interrupt, warn
from .connecting import check, login, logout, profiles
from .exporting import export
from .local import demo, sandbox, serve
from .options import connection_options, plan_options, roster_options
from .planning import plan, template, validate
from .rolling_back import rollback

__all__ = [
    "WORKFLOW",
    "connection_options",
    "echo",
    "invoke",
    "main",
    "on_interrupt",
    "plan_options",
    "roster_options",
    "run",
    "warn",
]

# the boundary

# `--help` lists the commands in the order of the work; one not named here comes last.
WORKFLOW = (
    "template",
    "validate",
    "plan",
    "apply",
    "export",
    "rollback",
    "check",
    "login",
    "logout",
    "profiles",
    "sandbox",
    "demo",
    "serve",
)


class Cli(click.Group):
    """The one error boundary: a command returns its exit code; an error of the library is one
    line on stderr (with the flag of the setting it is about) and its exit code; Ctrl-C is 130.
    Anything else is a bug, and keeps its traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        tolerate_any_console()
        return super().main(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[COMMAND_LINE] = list(args)  # as typed: `same_command` repeats it
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        def rank(name: str) -> tuple[int, str]:
            return (WORKFLOW.index(name) if name in WORKFLOW else len(WORKFLOW), name)

        return sorted(super().list_commands(ctx), key=rank)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except BulkContactsError as error:
            echo(f"error: {with_flags(str(error), error.setting or '')}", err=True)
            code = error.exit_code
        except (KeyboardInterrupt, click.exceptions.Abort):  # Ctrl-C, also at a prompt
            echo(f"interrupted: {ctx.meta.get(INTERRUPT_NOTE, 'nothing was written')}", err=True)
            code = ExitCode.INTERRUPTED
        ctx.exit(int(code or 0))


def tolerate_any_console() -> None:
    """A character the console's encoding cannot show (a Windows console or redirected output in
    cp1252, a name in Vietnamese or Chinese) is printed as a \\u escape, never a traceback."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
                reconfigure(errors="backslashreplace")


def run() -> None:
    """The console script."""
    load_dotenv()
    try:
        main()
    except KeyboardInterrupt:  # before a command started, or after it ended
        echo("interrupted: nothing was written", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        # Exit without the interpreter's last garbage collection over everything the command
        # built (about 0.4 s after a 100,000-row roster): the OS takes the memory back, and
        # every file the command writes is closed before this point.
        gc.freeze()


def invoke(args: list[str], environ: Mapping[str, str] | None = None) -> int:
    """Run a command as the console script would, in this process; its exit code. `environ`
    stands for the environment the command reads its settings from (the demo's)."""
    try:
        code = main.main(
            args, standalone_mode=False, prog_name="bulk-contacts", obj=Invocation(environ)
        )
    except click.ClickException as error:
        error.show()
        return error.exit_code
    return int(code or 0)


def load_dotenv() -> None:
    """The working folder's .env into the process's environment, a variable already set
    winning: what it sets (HTTPS_PROXY too) reaches everything the command runs."""
    from ..errors import ConfigError
    from ..profiles import read_dotenv

    try:
        values, problems = read_dotenv()
    except ConfigError as error:  # said again, as an error, by a command that needs settings
        warn(f"warning: {error}")
        return
    for problem in problems:
        warn(f"warning: {problem}")
    for name, value in values.items():
        os.environ.setdefault(name, value)


@click.group(
    cls=Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nThe commands are listed in the order of the work; `bulk-contacts COMMAND --help`"
    "\nshows each one's examples and the environment variables it reads."
    "\n\n\bShell completion (bash, zsh, fish; the README has each shell's line):"
    '\n  eval "$(_BULK_CONTACTS_COMPLETE=bash_source bulk-contacts)"',
)
@click.version_option(__version__, prog_name="bulk-contacts")
def main() -> None:
    """Move site-contact rosters between spreadsheets and the CHeKT Partner API, safely."""


for command in (
    validate,
    template,
    plan,
    apply,
    export,
    rollback,
    check,
    login,
    logout,
    profiles,
    sandbox,
    demo,
    serve,
):
    main.add_command(command)
