"""rollback: earlier applies undone from their journals."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import BulkContactsError, ExitCode, InputError
from ..words import plural
from .applying import check_journal, run_plan
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
    from ..outputs import run_outputs
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
    check_journal(journal, results, settings.api_url)
    with client, log, contextlib.ExitStack() as held:
        for path in paths:  # no run may be writing a journal while it is rolled back
            held.enter_context(hold_source_journal(path, writing.wait))
        return undo_journals(
            paths, settings, client, force, yes, (results, journal), writing, connection, overwrite
        )


def hold_source_journal(path: Path, wait: bool) -> Any:
    """The lock of a journal to roll back: a run still writing it is refused (exit 1), or
    waited for with --wait; never interleaved with."""
    from ..errors import RunInProgress
    from ..lock import hold_journal

    def busy(holder: str) -> Exception:
        return RunInProgress(
            f"{path} belongs to a run still in progress ({holder}): nothing was rolled back; "
            f"roll back once it has ended, or pass --wait to wait for it"
        )

    return hold_journal(path, wait, warn, busy)


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
        check_api_url,
        inverse_plan,
        journal_steps,
        read_journals,
        record_undone,
        settled_steps,
    )
    from ..terminal import plan_text

    results, journal = outputs
    journals = read_journals(paths)
    check_api_url(journals, settings.api_url)
    records = [record for _, found in journals for record in found]
    named = paths[0] if len(paths) == 1 else Path(", ".join(str(p) for p in paths))
    if not journal_steps(records) and any(r["type"] == "undone" for r in records):
        if not connection.quiet:
            echo(f"already rolled back: nothing of {named} is left to undo")
        return ExitCode.OK
    dealers = {r["dealer_id"] for r in records if r["type"] == "intent"}
    with lock_dealers(dealers, writing.wait):
        with connection.bars() as bars:
            plan = inverse_plan(client, records, named, force, bars("sites", 0))
        if not connection.quiet:
            echo_lines(plan_text(plan, connection.verbose, applying=True))
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
                again="bulk-contacts rollback " + " ".join(str(p) for p in paths),
            )
        troubled = set() if report is None else report.troubled
        for path, found in journals:
            try:
                record_undone(
                    path,
                    settled_steps(found, plan, troubled),
                    report.run_id if report else "",
                    report.files.journal if report else None,
                )
            except BulkContactsError as error:
                warn(
                    f"warning: {path}: could not record what was undone ({error}); a later "
                    f"rollback of it may undo what was made since"
                )
    if report is None:
        return plan.exit_code(conflicts_fail=True)
    return report.exit_code or plan.exit_code(conflicts_fail=True)
