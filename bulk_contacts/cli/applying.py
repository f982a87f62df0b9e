"""apply: a roster planned, or a saved plan checked, then confirmed and run (`run_plan`, which
rollback runs too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, InputError
from ..pipeline import ReadOptions
from ..plan import GUARD_OPTIONS, PlanOptions
from ..words import plural, rollback_command
from .common import (
    CONNECTION_ENV,
    LOCK_ENV,
    check_outputs,
    confirmed,
    echo,
    echo_lines,
    epilog,
    lock_dealers,
    make_plan,
    on_interrupt,
    open_client,
    same_command,
)
from .options import (
    Connection,
    Writing,
    connection_options,
    overwrite_option,
    plan_options,
    roster_options,
    write_options,
)

if TYPE_CHECKING:
    from ..apply import ApplyReport, Freshness, RunFiles
    from ..client import ChektClient
    from ..plan import Plan, SitePlan


@click.command(
    epilog=epilog(
        (
            "bulk-contacts apply roster.xlsx                  # plan, show, ask, apply",
            "bulk-contacts apply plan.json --yes              # a saved plan, checked first",
            "bulk-contacts apply plan.json --yes --refresh    # re-base sites changed since",
        ),
        CONNECTION_ENV + LOCK_ENV,
    )
)
@click.argument("target", metavar="ROSTER_OR_PLAN", type=click.Path(path_type=Path))
@roster_options
@plan_options
@connection_options()
@click.option("--yes", is_flag=True, help="Apply without asking (required off a terminal).")
@click.option(
    "--refresh",
    is_flag=True,
    help="With a saved plan: re-base the changes of sites that changed since the plan, instead "
    "of refusing them.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, .csv or .xlsx (default: in a new folder under bulk-contacts-runs/).",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal file, for rollback (default: beside the results); an existing journal is "
    "added to.",
)
@write_options
@overwrite_option("a --results file (and its failed rows; a journal is added to, never replaced)")
def apply(
    target: Path,
    read: ReadOptions,
    planning: PlanOptions,
    connection: Connection,
    yes: bool,
    refresh: bool,
    results: Path | None,
    journal: Path | None,
    writing: Writing,
    overwrite: bool,
) -> ExitCode:
    """Make the changes: plan the roster (or load a saved PLAN.json and check it is not stale),
    confirm, apply, verify, and write the results and the journal."""
    from ..apply import RunFiles
    from ..outputs import run_outputs

    check_saved_plan_options(target, refresh)
    check_outputs(run_outputs(results, journal, "apply") + connection.outputs(), overwrite, target)
    on_interrupt("nothing was written: no change was sent to CHeKT")
    settings, client, log = open_client(connection)
    RunFiles.check_journal(results, journal, settings.api_url)

    applied: list[Any] = []
    not_done: list[Any] = []  # with --refresh: rows whose reviewed change is not made

    def plan_now() -> Plan:
        if target.suffix.lower() == ".json":
            fresh = load_saved(client, target, refresh, planning, connection)
            applied[:], not_done[:] = fresh.applied, fresh.new_conflicts
            return fresh.plan
        return make_plan(target, read, planning, connection, client, settings)

    def run() -> ExitCode:
        with client, log:
            plan = plan_now()
            if applied and not plan.changes and not plan.refused:
                if not connection.quiet:
                    echo(f"already applied: CHeKT holds every change of {target}", "ok")
                return ExitCode.OK
            with lock_dealers(
                {site.dealer_id for site in plan.sites if site.changes},
                settings.api_url,
                writing.wait,
            ) as locks:
                if writing.wait and locks.busy:  # the other run changed things: plan again
                    plan = plan_now()
                if not connection.quiet:
                    from ..terminal import plan_text

                    echo_lines(plan_text(plan, connection.verbose, applying=True))
                if plan.refusals or not plan.changes:
                    return plan.exit_code()
                summary = plan.summary()
                if not confirmed(
                    f"Apply {plural(summary['create'], 'create')}, "
                    f"{plural(summary['update'], 'update')} and "
                    f"{plural(summary['delete'], 'delete')} to CHeKT at {settings.api_url}?",
                    yes,
                ):
                    not_done.clear()  # declined: nothing is done, and that was the user's choice
                    return ExitCode.OK
                if not yes:  # the plan was read at the prompt, for as long as it took
                    plan = changed_while_shown(client, plan, connection)
                files = RunFiles.choose(results, journal)
                saved = target.suffix.lower() == ".json"
                # the results file exists by then: the finishing run replaces it (the journal
                # keeps both runs)
                again = same_command(
                    *(["--refresh"] if saved else []), *(["--overwrite"] if results else [])
                )
                report = run_plan(
                    client,
                    plan,
                    files,
                    connection,
                    writing,
                    overwrite and results is not None,
                    again=again,
                )
        return report.exit_code or plan.exit_code()

    code = run()
    if not_done and code == ExitCode.OK:
        # The saved plan was reviewed; a row it changed that CHeKT's changes since stopped (a
        # conflict listed above) is reviewed work not done.
        echo(
            f"{plural(len(not_done), 'row')} of {target} not done: CHeKT changed since the plan "
            "was made (the conflicts above); make a new plan to review what they need now",
            "warning",
            err=True,
        )
        code = ExitCode.FAILED
    return code


def changed_while_shown(client: ChektClient, plan: Plan, connection: Connection) -> Plan:
    """The plan as confirmed, its sites read again: one that changed in CHeKT while the plan
    was shown and answered (someone else edited it meanwhile) is refused, as a saved plan's
    stale site is: a change reviewed against what it held then could double a contact made
    meanwhile, or undo an edit. A site that already holds every change has nothing left."""
    from ..apply import check_freshness

    fresh = check_freshness(client, plan, refresh=False)
    if fresh.stale and not connection.quiet:
        echo(
            f"{plural(len(fresh.stale), 'site')} changed in CHeKT while the plan was shown "
            f"(someone else edited {'it' if len(fresh.stale) == 1 else 'them'} meanwhile), "
            f"so {'its' if len(fresh.stale) == 1 else 'their'} changes are not made: "
            + site_ids(fresh.stale)
            + "; run the command again to plan them anew",
            "warning",
        )
    return fresh.plan


def check_saved_plan_options(target: Path, refresh: bool) -> None:
    """A saved plan with roster or plan options on the command line (--map, --skip-invalid,
    --prune...) is an error naming them, before anything is read or sent: they would be
    ignored. So is --refresh with a roster."""
    ctx = click.get_current_context()
    saved = target.suffix.lower() == ".json"
    if not saved:
        if refresh:
            raise InputError(
                f"--refresh is for a saved plan (PLAN.json); {target} is a roster, planned "
                f"afresh against what CHeKT holds now"
            )
        return
    names = [
        *roster_options.names,
        *plan_options.names,
    ]
    given = sorted(
        max(param.opts, key=len)
        for param in ctx.command.params
        if param.name in names
        and param.name not in GUARD_OPTIONS
        and ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.COMMANDLINE
    )
    if given:
        raise InputError(
            f"{target} is a saved plan, made with its own roster and plan options: "
            f"{', '.join(given)} cannot change it; make a new plan with them (bulk-contacts "
            f"plan ROSTER {' '.join(given)} ... -o {target}), or apply the roster directly"
        )


def site_ids(sites: list[SitePlan]) -> str:
    return ", ".join(str(site.site_id) for site in sites)


def load_saved(
    client: ChektClient, path: Path, refresh: bool, planning: PlanOptions, connection: Connection
) -> Freshness:
    """A saved plan checked: not edited, not stale (or re-based), guarded again with the
    guards' flags given to apply."""
    from ..apply import load_saved_plan

    with connection.bars() as bars:
        fresh = load_saved_plan(client, path, refresh, planning, bars("sites", 0))
    if connection.quiet:
        return fresh
    if fresh.applied and (fresh.plan.changes or fresh.plan.refused):
        echo(
            f"{plural(len(fresh.applied), 'site')} already "
            f"{'holds its' if len(fresh.applied) == 1 else 'hold their'} changes (already "
            "applied): " + site_ids(fresh.applied),
            "ok",
        )
    if fresh.unchecked:
        echo(
            f"{path} was made by an earlier bulk-contacts, which did not record the contacts it "
            "left unchanged: edits made to them in CHeKT since the plan cannot be detected on "
            f"{plural(len(fresh.unchecked), 'site')} ("
            + site_ids(fresh.unchecked)
            + "); make a new plan to see them",
            "warning",
        )
    if fresh.unrecorded:
        echo(
            f"{path} was made by an earlier bulk-contacts, which did not record its invalid rows "
            "for --prune: the contacts added since on "
            f"{plural(len(fresh.unrecorded), 'site')} ("
            + site_ids(fresh.unrecorded)
            + ") are kept, not pruned (an invalid row may mean them); make a new plan to prune "
            "them",
            "warning",
        )
    if fresh.stale:
        verb = "re-based on their current contacts" if refresh else "refused"
        echo(
            f"{plural(len(fresh.stale), 'site')} changed since the plan was made, {verb}: "
            + site_ids(fresh.stale),
            "warning",
        )
    return fresh


class StopOnInterrupt:
    """Ctrl-C stops starting new changes; the ones in flight finish and everything is written.
    A second Ctrl-C stops at once. SIGTERM (a service manager's stop, `kill`) and, on Windows,
    Ctrl-Break do the same; SIGKILL (Windows: End task, `taskkill /F`) cannot be handled: the
    journal, written before each write, is what keeps that safe."""

    def __init__(self) -> None:
        import signal
        import threading

        self.event = threading.Event()
        self._signal = signal
        self._signals = [
            getattr(signal, name)
            for name in ("SIGINT", "SIGTERM", "SIGBREAK")
            if hasattr(signal, name)
        ]
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnInterrupt:
        from ..entry import stop_asked

        for number in self._signals:
            self._previous[number] = self._signal.signal(number, self._handle)
        if stop_asked():  # a Ctrl-C Python dropped since the question: no change starts
            self.event.set()
        return self

    def _handle(self, number: int, _: object) -> None:
        if self.event.is_set():
            import threading

            # Stopping at once: the workers still running meet a closed journal and results
            # file as the process ends; what they did is in the journal, their errors are noise.
            threading.excepthook = lambda _: None
            raise KeyboardInterrupt
        self.event.set()
        echo(err=True)
        if number == self._signal.SIGINT:
            echo(
                "stopping: finishing the changes in flight (Ctrl-C again to stop at once)",
                err=True,
            )
        else:
            name = self._signal.Signals(number).name
            echo(
                f"{name} received, stopping: finishing the changes in flight (a second one "
                f"stops at once)",
                err=True,
            )

    def __exit__(self, *_: object) -> None:
        for number, previous in self._previous.items():
            self._signal.signal(number, previous)


def run_plan(
    client: ChektClient,
    plan: Plan,
    files: RunFiles,
    connection: Connection,
    writing: Writing,
    replace_results: bool,
    kind: str = "apply",
    again: str = "",
) -> ApplyReport:
    """Apply with a progress bar and Ctrl-C handling; print the outcome and where everything
    is. With --overwrite, a --results file that exists (and its failed rows) goes now that the
    run starts: they are written line by line, as outcomes arrive."""
    from ..apply import apply_plan
    from ..outputs import discard
    from ..terminal import run_text

    if replace_results:
        discard(files.results, files.failed_rows)
    # A second Ctrl-C: the same advice as after one (`terminal._interrupted_line`): the command
    # that finishes, as typed (with --overwrite for the results file this run leaves), and
    # for an apply, how to undo (never for a rollback: that would undo the rollback).
    finish = "run the same command again to finish" + (f": {again}" if again else "")
    undo = f"; or `{rollback_command(files.journal)}` to undo what was done"
    on_interrupt(
        f"stopped at once; writes in flight may have been made: {finish}"
        + (undo if kind != "rollback" else "")
    )
    with connection.bars() as bars, StopOnInterrupt() as interrupt:
        progress = bars.changes(len(plan.changes))
        report = apply_plan(client, plan, files, progress, interrupt.event, kind, writing.verify)
    on_interrupt("the run had ended; everything it did is written")
    for text, style, err in run_text(report, connection.quiet, kind, again):
        echo(text, style, err)
    return report
