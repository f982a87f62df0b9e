"""rollback: earlier applies undone from their journals."""

from __future__ import annotations

import contextlib
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, InputError
from ..words import plural
from .applying import run_plan
from .common import (
    CONNECTION_ENV,
    LOCK_ENV,
    check_outputs,
    confirmed,
    echo,
    echo_lines,
    epilog,
    lock_dealers,
    on_interrupt,
    open_client,
    same_command,
    warn,
)
from .options import Connection, Writing, connection_options, overwrite_option, write_options

if TYPE_CHECKING:
    from ..client import ChektClient
    from ..settings import Settings


@click.command(
    epilog=epilog(
        (
            "bulk-contacts rollback bulk-contacts-runs/<run>/",
            "bulk-contacts rollback journal.jsonl --yes --force   # also contacts changed since",
            "bulk-contacts rollback first/journal.jsonl resumed/journal.jsonl   # several runs",
        ),
        tuple(v for v in CONNECTION_ENV if v[0] != "CHEKT_DEALER_ID") + LOCK_ENV,
    )
)
@click.argument(
    "journal_files",
    metavar="JOURNAL_OR_RUN_FOLDER...",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
)
@click.option("--yes", is_flag=True, help="Roll back without asking (required off a terminal).")
@click.option(
    "--force",
    is_flag=True,
    help="Undo changes even to contacts that changed in CHeKT since the apply.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file of the rollback, .csv or .xlsx.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal of the rollback itself.",
)
@write_options
@connection_options(dealer=False)
@overwrite_option("a --results file (and its failed rows; a journal is added to, never replaced)")
def rollback(
    journal_files: tuple[Path, ...],
    yes: bool,
    force: bool,
    results: Path | None,
    journal: Path | None,
    writing: Writing,
    connection: Connection,
    overwrite: bool,
) -> ExitCode:
    """Undo earlier applies from their journals (or run folders): delete what they created,
    restore what they updated, re-create what they deleted (also writes they may have made
    before a crash), every run in them, newest first. Contacts changed since are left alone
    (conflicts) unless --force; what an earlier rollback of the journal undid is left alone."""
    from ..apply import RunFiles
    from ..outputs import run_outputs
    from ..rollback import hold_source_journal
    from ..rollback import journal_files as find_journals

    on_interrupt("nothing was written: no change was sent to CHeKT")
    paths = find_journals(journal_files)
    outputs = run_outputs(results, journal, "rollback") + connection.outputs()
    for path in paths:
        check_outputs(outputs, overwrite, path)
    if journal is not None and any(journal.resolve() == p.resolve() for p in paths):
        raise InputError(
            f"--journal {journal}: that is a journal being rolled back; the rollback keeps a "
            f"journal of its own",
            setting="journal",
        )
    settings, client, log = open_client(connection)
    RunFiles.check_journal(results, journal, settings.api_url)
    with client, log, contextlib.ExitStack() as held:
        for path in paths:  # no run may be writing a journal while it is rolled back
            held.enter_context(hold_source_journal(path, writing.wait, warn))
        return undo_journals(
            paths, settings, client, force, yes, (results, journal), writing, connection, overwrite
        )


def wait_for_writes_in_flight(records: list[dict[str, Any]], named: Path, quiet: bool) -> None:
    """A run stopped (kill -9, a crash) with writes sent and unanswered: each may still land
    until its run's request timeout after it was sent. The sites are read once none can land
    any more, or the rollback would miss one landing after it (and record it as undone)."""
    from ..rollback import in_flight

    writes, until = in_flight(records)
    wait = until - time.time()
    if not writes or wait <= 0:
        return
    if not quiet:
        echo(
            f"waiting {math.ceil(wait)} s: {plural(writes, 'write')} of {named} had no answer "
            f"when its run stopped, and may still land in CHeKT until the run's --timeout after "
            f"it was sent; the rollback reads the sites once none can land any more"
        )
    time.sleep(wait)


def undo_journals(
    paths: list[Path],
    settings: Settings,
    client: ChektClient,
    force: bool,
    yes: bool,
    outputs: tuple[Path | None, Path | None],
    writing: Writing,
    connection: Connection,
    overwrite: bool,
) -> ExitCode:
    """The rollback itself, the source journals held: read them (after any run writing them
    has ended), check their API URL, build the inverse plan, apply it, record what it undid."""
    from ..apply import RunFiles
    from ..rollback import (
        already_rolled_back,
        check_api_url,
        inverse_plan,
        journal_dealers,
        read_journals,
        record_rollback,
        still_retried,
    )
    from ..terminal import plan_text

    results, journal = outputs
    journals = read_journals(paths)
    check_api_url(journals, settings.api_url)
    records = [record for _, found in journals for record in found]
    named = paths[0] if len(paths) == 1 else Path(", ".join(str(p) for p in paths))
    if already_rolled_back(records):
        if not connection.quiet:
            echo(f"already rolled back: nothing of {named} is left to undo")
        return ExitCode.OK
    wait_for_writes_in_flight(records, named, connection.quiet)
    with lock_dealers(journal_dealers(records), settings.api_url, writing.wait):
        with connection.bars() as bars:
            plan = inverse_plan(client, records, named, force, bars("sites", 0))
        if not connection.quiet:
            echo_lines(plan_text(plan, connection.verbose, applying=True, undoing=True))
        report = None
        if plan.changes:
            question = f"Undo {plural(len(plan.changes), 'change')} in CHeKT at {settings.api_url}?"
            if not confirmed(question, yes):
                return ExitCode.OK
            files = RunFiles.choose(results, journal, kind="rollback")
            report = run_plan(
                client,
                plan,
                files,
                connection,
                writing,
                overwrite and results is not None,
                "rollback",
                again=same_command(*(["--overwrite"] if results else [])),
            )
        for warning in record_rollback(journals, plan, report):
            warn(warning)
    late, until = still_retried(records, time.time())
    if late and not connection.quiet:
        at = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S UTC")
        echo(
            f"note: the stopped run may have been sending {plural(len(late), 'write')} again "
            f"(a retry after a failure), which could still land until {at}: roll {named} back "
            f"again after that time to undo any that did (what this rollback undid stays undone)"
        )
    if report is None:
        return plan.exit_code(conflicts_fail=True)
    return report.exit_code or plan.exit_code(conflicts_fail=True)
