"""The command line: declares options, calls the library, prints, and chooses exit codes.

Only this module imports click and prints; everything it runs is a library call a script can make.
Options travel as typed values (`ReadOptions`, `PlanOptions`, `Connection`, `Writing`). One
boundary (`Cli.invoke`) turns the library's errors into one line and an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .errors import BulkContactsError, ExitCode, InputError
from .pipeline import ReadOptions
from .plan import PlanOptions
from .sandbox import config as sandbox_defaults
from .terminal import printable, refusal_lines, with_flags

if TYPE_CHECKING:
    from .apply import ApplyReport, RunFiles
    from .client import ChektClient
    from .outputs import Output
    from .plan import Plan
    from .runlog import RunLog
    from .settings import Settings
    from .terminal import Bars

T = TypeVar("T")
STYLES: dict[str, dict[str, Any]] = {
    "bold": {"bold": True},
    "create": {"fg": "green"},
    "update": {"fg": "yellow"},
    "delete": {"fg": "red"},
    "error": {"fg": "red"},
    "warning": {"fg": "yellow"},
    "ok": {"fg": "green"},
    "dim": {"dim": True},
    "done": {"fg": "green", "bold": True},
}


def echo(text: str = "", style: str = "", err: bool = False) -> None:
    """Every line the tool prints goes through here: escaped first (`terminal.printable`), so a
    value from a file, from CHeKT or from the environment cannot act on the terminal, then
    styled."""
    click.secho(printable(text), err=err, **STYLES.get(style, {}))


def echo_lines(lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        echo(text, style)


def warn(message: str) -> None:
    echo(message, "warning", err=True)


# the boundary


class Cli(click.Group):
    """The one error boundary: a command returns its exit code; an error of the library is one
    line on stderr (with the flag of the setting it is about) and its exit code; Ctrl-C is 130.
    Anything else is a bug, and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except BulkContactsError as error:
            echo(f"error: {with_flags(str(error), error.setting or '')}", err=True)
            code = error.exit_code
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            code = ExitCode.INTERRUPTED
        ctx.exit(int(code or 0))


def run() -> None:
    """The console script."""
    try:
        main()
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


@dataclass(frozen=True)
class Invocation:
    environ: Mapping[str, str] | None = None


def environ() -> Mapping[str, str]:
    """Where settings come from: the process's environment, unless `invoke` was given one."""
    invocation = click.get_current_context().find_object(Invocation)
    if invocation is None or invocation.environ is None:
        return os.environ
    return invocation.environ


# option groups: declared once, delivered to the command as one typed value


def option_group(name: str, build: Callable[..., T], *options: Callable[[Any], Any]):
    """Decorate a command with `options`; it receives them as one keyword, `name`, the value
    `build` makes of them."""

    def probe() -> None: ...

    for option in options:
        option(probe)
    names = [param.name for param in getattr(probe, "__click_params__", [])]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def grouped(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in names if key is not None}
            return command(*args, **kwargs, **{name: build(**values)})

        for option in reversed(options):
            grouped = option(grouped)
        return grouped

    decorate.names = names  # type: ignore[attr-defined]  # for the README's option tables
    return decorate


class HeaderMapping(click.ParamType):
    name = '"HEADER=column"'

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        header, sep, column = str(value).rpartition("=")
        if not sep or not header.strip() or not column.strip():
            self.fail(
                f'{value!r}: write it as "Header in the file=column", e.g. '
                f'--map "Cell=phone_number"',
                param,
                ctx,
            )
        return header.strip(), column.strip()


def _read_options(
    column_map: tuple[tuple[str, str], ...], phone_columns: str | None, **values: Any
) -> ReadOptions:
    phones = tuple(h.strip() for h in (phone_columns or "").split(",") if h.strip())
    return ReadOptions(column_map=dict(column_map), phone_columns=phones, **values)


roster_options = option_group(
    "read",
    _read_options,
    click.option(
        "--sheet",
        metavar="NAME",
        help="Sheet to read (default: 'Contacts', else the first visible sheet).",
    ),
    click.option(
        "--map",
        "column_map",
        type=HeaderMapping(),
        metavar='"HEADER=column"',
        multiple=True,
        help="Read a column whose header is not recognised as a roster column; repeatable "
        '("Name=full_name": a whole name, split into first and last).',
    ),
    click.option(
        "--header-row",
        type=click.IntRange(1),
        metavar="N",
        help="The row holding the column names (default: the first of the first 30 rows that "
        "names at least two roster columns).",
    ),
    click.option(
        "--phone-columns",
        metavar='"HEADER,HEADER,..."',
        help="With several phone columns, the order in which the first non-empty one is taken "
        "(default: phone, mobile, numbered, home, business, other).",
    ),
    click.option(
        "--name-case",
        type=click.Choice(["keep", "title"]),
        default="keep",
        show_default=True,
        help="title: send names written all in capitals or lower case in title case "
        "(McDonald, O'Neil, van der Berg).",
    ),
    click.option(
        "--region",
        default="US",
        show_default=True,
        help="Region for phone numbers written without a country code.",
    ),
    click.option(
        "--phone-format",
        type=click.Choice(["e164", "national"]),
        default="e164",
        show_default=True,
        help="How phone numbers are normalized (and sent to CHeKT).",
    ),
    click.option(
        "--allow-unreachable",
        is_flag=True,
        help="Accept contacts with neither phone nor e-mail (a warning instead of an error).",
    ),
)

plan_options = option_group(
    "planning",
    PlanOptions,
    click.option(
        "--blanks",
        type=click.Choice(["keep", "clear"]),
        default="keep",
        show_default=True,
        help="keep: an empty phone or e-mail cell leaves the field as it is; clear: empties it.",
    ),
    click.option(
        "--skip-invalid",
        is_flag=True,
        help="Plan the valid rows and report the rest (without it, any invalid row stops the "
        "plan).",
    ),
    click.option(
        "--prune",
        is_flag=True,
        help="Delete contacts of the roster's sites that no row of the roster names (never "
        "unmanaged ones, nor those of invalid or unresolved rows).",
    ),
    click.option(
        "--max-deletes",
        type=click.IntRange(0),
        metavar="N",
        help="Refuse a plan deleting more than N contacts (default: more than 10 and more than "
        "25% of the contacts in scope).",
    ),
    click.option("--force", is_flag=True, help="Go past the --max-deletes guard."),
    click.option(
        "--allow-empty-sites", is_flag=True, help="Allow a plan to leave a site with no contacts."
    ),
    click.option(
        "--exact-ids",
        is_flag=True,
        help="Compare external ids exactly: 42 and 0042 are different people (by default, ids "
        "equal once a spreadsheet's damage is undone are one id).",
    ),
    click.option(
        "--repair-ids",
        is_flag=True,
        help="Use an account number, external site id or external contact id that matches "
        "exactly one only once repaired (1234 for 001234), with a warning.",
    ),
)


@dataclass(frozen=True)
class Connection:
    """The connection options, and how much to print."""

    api_url: str | None
    token_url: str | None
    allow_insecure_http: bool
    concurrency: int
    rate: float | None
    log_file: Path | None
    no_progress: bool
    quiet: bool
    verbose: bool
    dealer: str | None = None

    def bars(self) -> Bars:
        from .terminal import Bars

        return Bars(not self.no_progress and not self.quiet)

    def outputs(self) -> list[Output]:
        """--log-file, when given: appended to."""
        from .outputs import LINES_SUFFIXES, Output

        return (
            []
            if self.log_file is None
            else [Output("--log-file", self.log_file, LINES_SUFFIXES, "append")]
        )


def connection_options(dealer: bool = True):
    """Options of the commands that talk to CHeKT (rollback takes its dealers from the
    journal). Secrets come only from the environment."""
    return option_group(
        "connection",
        Connection,
        click.option(
            "--api-url",
            metavar="URL",
            help="API base URL (CHEKT_API_URL; default https://api.chekt.com).",
        ),
        click.option(
            "--token-url",
            metavar="URL",
            help="OAuth token URL (CHEKT_TOKEN_URL; default <api-url>/oauth/token).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow plain http:// to a host other than this machine "
            "(CHEKT_ALLOW_INSECURE_HTTP=1): the secret, tokens and contacts then cross the "
            "network in clear. Warns on every run.",
        ),
        *(
            [click.option("--dealer", metavar="ID", help="Dealer id (CHEKT_DEALER_ID).")]
            if dealer
            else []
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 256),
            default=32,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0.1),
            metavar="PER_SECOND",
            help="Send at most this many requests per second (default: as fast as the server's "
            "advertised limit allows).",
        ),
        click.option(
            "--log-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Append one JSON line per HTTP exchange and per decision.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors."),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="Print every change; contact values in --log-file.",
        ),
    )


@dataclass(frozen=True)
class Writing:
    """The options of the commands that write to CHeKT (apply, rollback)."""

    verify: bool
    wait: bool


write_options = option_group(
    "writing",
    Writing,
    click.option(
        "--no-verify",
        "verify",
        is_flag=True,
        flag_value=False,
        default=True,
        help="Do not read every touched site again after the run to check each change holds "
        "(saves one list call per site).",
    ),
    click.option(
        "--wait",
        is_flag=True,
        help="When another run on this machine writes to the same dealer, wait for it to end "
        "(then plan again) instead of warning and going on.",
    ),
)


def overwrite_option(what: str):
    return click.option(
        "--overwrite",
        is_flag=True,
        help=f"Replace {what} if it exists (without it: exit 2, the file untouched).",
    )


def report_option(help: str):
    return click.option(
        "--report",
        "reports",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="PATH",
        help=help,
    )


# what the commands share


def check_outputs(
    wanted: list[Output], overwrite: bool = False, reading: Path | None = None
) -> None:
    """Every output path of the command, checked before any network call or planning
    (`outputs.check_outputs`)."""
    from .outputs import check_outputs as check

    check(wanted, overwrite, reading)


@contextlib.contextmanager
def writing_to(option: str, path: Path) -> Iterator[None]:
    """A writer's file that cannot be written is one line and exit 2. Writers write to a
    temporary name and rename it into place, so the file that was there is as it was."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or error
        raise InputError(
            f"{option} {path}: cannot be written ({reason}); it was left as it was"
        ) from None


def open_client(connection: Connection) -> tuple[Settings, ChektClient, RunLog]:
    """Settings resolved once (flag, environment, default), and the client."""
    from .client import ChektClient
    from .runlog import RunLog
    from .settings import resolve_settings

    settings = resolve_settings(
        api_url=connection.api_url,
        token_url=connection.token_url,
        dealer=connection.dealer,
        env=environ(),
        require_dealer=False,
        allow_insecure_http=connection.allow_insecure_http or None,
    )
    for url in settings.cleartext_urls:
        warn(
            f"warning: {url} is plain http:// to another machine (--allow-insecure-http): "
            f"the secret, tokens and contacts cross the network in clear"
        )
    log = RunLog(connection.log_file, verbose=connection.verbose)
    client = ChektClient(
        settings, concurrency=connection.concurrency, rate=connection.rate, log=log
    )
    return settings, client, log


def show_issues(validated: Any, verbose: bool) -> None:
    """The roster's problems found while planning (its row count and verdict aside)."""
    from .terminal import validation_text

    if validated.issues:
        echo_lines([line for line in validation_text(validated, verbose) if line[1] != "ok"])


def make_plan(
    roster: Path,
    read: ReadOptions,
    planning: PlanOptions,
    connection: Connection,
    client: ChektClient,
    settings: Settings,
) -> Plan:
    """Validate, fetch and reconcile; the roster's problems are shown."""
    from .pipeline import plan_path

    options = dataclasses.replace(planning, dealer_id=settings.dealer_id)
    with connection.bars() as bars:
        validated, plan = plan_path(client, roster, options, read, bars)
    if not connection.quiet:
        show_issues(validated, connection.verbose)
    return plan


@click.group(
    cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="bulk-contacts")
def main() -> None:
    """Move site-contact rosters between spreadsheets and the CHeKT Partner API, safely."""


# the commands


@main.command()
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@report_option(
    "Write the problems to .csv or .json, or an annotated copy of the roster to .xlsx; repeatable."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code tells.")
@click.option("-v", "--verbose", is_flag=True, help="List every problem, not the first few.")
@overwrite_option("a --report file")
def validate(
    roster: Path,
    read: ReadOptions,
    reports: tuple[Path, ...],
    quiet: bool,
    verbose: bool,
    overwrite: bool,
) -> ExitCode:
    """Check a roster offline: every row, every problem, nothing sent anywhere.

    Exit code 0: valid (warnings allowed); 1: invalid rows; 2: unreadable file or bad usage.
    """
    from .outputs import VALIDATION_REPORT_SUFFIXES, Output
    from .pipeline import load_validated
    from .terminal import validation_text
    from .validation_report import write_validation_report

    check_outputs(
        [Output("--report", r, VALIDATION_REPORT_SUFFIXES) for r in reports], overwrite, roster
    )
    result = load_validated(roster, read)
    for report in reports:
        with writing_to("--report", report):
            write_validation_report(result, report, overwrite)
    if not quiet:
        echo_lines(validation_text(result, verbose))
        for report in reports:
            echo(f"report written: {report}")
    return ExitCode.OK if result.valid else ExitCode.FAILED


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("roster.xlsx"),
    show_default=True,
    help="Where to write it: .xlsx, or .csv for a header line.",
)
@overwrite_option("the -o file")
def template(output: Path, overwrite: bool) -> None:
    """Write an empty roster to fill in (a Contacts sheet formatted for the job, and
    instructions)."""
    from .outputs import SHEET_SUFFIXES, Output
    from .template import write_template

    check_outputs([Output("-o", output, SHEET_SUFFIXES)], overwrite)
    with writing_to("-o", output):
        write_template(output, overwrite)
    echo(f"template written: {output}")


@main.command()
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@plan_options
@connection_options()
@report_option(
    "Also write the plan as .json, .csv, .xlsx or .html (self-contained, filterable); repeatable."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the plan file (JSON) that `apply PLAN.json` takes.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 3 when changes are pending, 1 on errors.",
)
@overwrite_option("an -o or --report file")
def plan(
    roster: Path,
    read: ReadOptions,
    planning: PlanOptions,
    connection: Connection,
    reports: tuple[Path, ...],
    output: Path | None,
    detailed_exitcode: bool,
    overwrite: bool,
) -> ExitCode:
    """Dry run: read the roster, compare it with CHeKT, show what would change. Writes nothing
    to CHeKT."""
    from .outputs import PLAN_FILE_SUFFIXES, PLAN_REPORT_SUFFIXES, Output
    from .plan_report import write_plan_report
    from .terminal import plan_text

    files = [Output("-o", output, PLAN_FILE_SUFFIXES)] if output is not None else []
    files += [Output("--report", r, PLAN_REPORT_SUFFIXES) for r in reports]
    check_outputs(files + connection.outputs(), overwrite, roster)
    settings, client, log = open_client(connection)
    with client, log:
        result = make_plan(roster, read, planning, connection, client, settings)
    if output is not None:
        with writing_to("-o", output):
            result.write(output, overwrite)
    for report in reports:
        with writing_to("--report", report):
            write_plan_report(result, report, overwrite)
    if connection.quiet:
        for line in refusal_lines(result, "refused"):
            echo(line, err=True)
    else:
        for report in reports:
            echo(f"report written: {report}")
        echo_lines(plan_text(result, connection.verbose))
        if output is not None:
            echo(f"plan written: {output}")
    return result.exit_code(pending=detailed_exitcode)


@main.command()
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
    from .apply import RunFiles
    from .outputs import run_outputs

    check_outputs(run_outputs(results, journal, "apply") + connection.outputs(), overwrite, target)
    settings, client, log = open_client(connection)
    check_journal(journal, results, settings.api_url)

    def plan_now() -> Plan:
        if target.suffix.lower() == ".json":
            return load_saved(client, target, refresh, planning, connection)
        return make_plan(target, read, planning, connection, client, settings)

    with client, log:
        plan = plan_now()
        with lock_dealers(
            {site.dealer_id for site in plan.sites if site.changes}, writing.wait
        ) as locks:
            if (
                writing.wait and locks.busy
            ):  # the other run changed things: plan from what is there now
                plan = plan_now()
            if not connection.quiet:
                from .terminal import plan_text

                echo_lines(plan_text(plan, connection.verbose, applying=True))
            if plan.refusals or not plan.changes:
                return plan.exit_code()
            summary = plan.summary()
            if not confirmed(
                f"Apply {summary['create']} creates, {summary['update']} updates and "
                f"{summary['delete']} deletes to CHeKT at {settings.api_url}?",
                yes,
            ):
                return ExitCode.OK
            files = RunFiles.choose(results, journal)
            report = run_plan(
                client, plan, files, connection, writing, overwrite and results is not None
            )
    return report.exit_code or plan.exit_code()


def load_saved(
    client: ChektClient, path: Path, refresh: bool, planning: PlanOptions, connection: Connection
) -> Plan:
    """A saved plan checked: not edited, not stale (or re-based), guarded again with the
    guards' flags given to apply."""
    from .apply import load_saved_plan

    def loosen(saved: PlanOptions) -> PlanOptions:
        return dataclasses.replace(
            saved,
            force=saved.force or planning.force,
            allow_empty_sites=saved.allow_empty_sites or planning.allow_empty_sites,
            max_deletes=saved.max_deletes if planning.max_deletes is None else planning.max_deletes,
        )

    with connection.bars() as bars:
        fresh = load_saved_plan(client, path, refresh, loosen, bars("sites", 0))
    if fresh.stale and not connection.quiet:
        verb = "re-based on their current contacts" if refresh else "refused"
        echo(
            f"{len(fresh.stale)} sites changed since the plan was made, {verb}: "
            + ", ".join(str(s.site_id) for s in fresh.stale),
            "warning",
        )
    return fresh.plan


def check_journal(journal: Path | None, results: Path | None, api_url: str) -> None:
    """An existing journal (--journal, or the one beside --results) is added to: before any
    work, it must be a journal of runs against this API."""
    from .journal import check_appendable
    from .outputs import files_beside

    if journal is None and results is not None:
        journal = files_beside(results)[1]
    if journal is not None:
        check_appendable(journal, api_url)


def confirmed(question: str, yes: bool) -> bool:
    """Ask on a terminal; without one, --yes is required."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(
            "not on a terminal, so nothing is asked: pass --yes to go ahead without confirmation"
        )
    if click.confirm(printable(question), default=False):
        return True
    echo("Nothing was changed.")
    return False


def lock_dealers(dealers: set[int], wait: bool) -> Any:
    """This machine's lock on each dealer: warns (or waits) when another run holds one."""
    from .lock import DealerLocks

    def tell(message: str) -> None:
        warn(message if wait else with_flags(message, "wait"))

    return DealerLocks(dealers).acquire(wait, tell)


class StopOnInterrupt:
    """Ctrl-C stops starting new changes; the ones in flight finish and everything is written.
    A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        import signal
        import threading

        self.event = threading.Event()
        self._signal = signal
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        self._previous = self._signal.signal(self._signal.SIGINT, self._handle)
        return self

    def _handle(self, *_: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        echo(err=True)
        echo(
            "interrupted: finishing the changes in flight, then stopping "
            "(Ctrl-C again to stop at once)",
            err=True,
        )

    def __exit__(self, *_: object) -> None:
        self._signal.signal(self._signal.SIGINT, self._previous)


def run_plan(
    client: ChektClient,
    plan: Plan,
    files: RunFiles,
    connection: Connection,
    writing: Writing,
    replace_results: bool,
    kind: str = "apply",
) -> ApplyReport:
    """Apply with a progress bar and Ctrl-C handling; print the outcome and where everything
    is. With --overwrite, a --results file that exists (and its failed rows) goes now that the
    run starts: they are written line by line, as outcomes arrive."""
    from .apply import apply_plan
    from .outputs import discard
    from .terminal import run_text

    if replace_results:
        discard(files.results, files.failed_rows)
    with connection.bars() as bars, StopOnInterrupt() as interrupt:
        progress = bars.changes(len(plan.changes))
        report = apply_plan(client, plan, files, progress, interrupt.event, kind, writing.verify)
    for text, style, err in run_text(report, connection.quiet, kind):
        echo(text, style, err)
    return report


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write: .xlsx (for review and import back) or .csv.",
)
@click.option(
    "--site",
    "site_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Only this site (CHeKT's site_id); repeatable.",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="NUMBER",
    help="Only the site with this account number; repeatable.",
)
@connection_options()
@overwrite_option("the -o file")
def export(
    output: Path,
    site_ids: tuple[int, ...],
    accounts: tuple[str, ...],
    connection: Connection,
    overwrite: bool,
) -> None:
    """Write the dealer's current contacts (every site, or those named) in the roster layout,
    to review and edit in Excel and import back with plan/apply."""
    from .errors import ConfigError
    from .export import fetch_export, write_export
    from .outputs import SHEET_SUFFIXES, Output

    check_outputs([Output("-o", output, SHEET_SUFFIXES), *connection.outputs()], overwrite)
    settings, client, log = open_client(connection)
    if settings.dealer_id is None:
        raise ConfigError("no dealer id: set CHEKT_DEALER_ID", setting="dealer")
    with client, log, connection.bars() as bars:
        found = fetch_export(client, settings.dealer_id, site_ids, accounts, bars)
    with writing_to("-o", output):
        count = write_export(found, output, overwrite)
    if not connection.quiet:
        echo(f"{count} contacts of {len(found.sites)} sites written: {output}")


@main.command()
@click.argument("journal_file", metavar="JOURNAL", type=click.Path(path_type=Path))
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
    journal_file: Path,
    yes: bool,
    force: bool,
    results: Path | None,
    journal: Path | None,
    writing: Writing,
    connection: Connection,
    overwrite: bool,
) -> ExitCode:
    """Undo an earlier apply from its journal: delete what it created, restore what it
    updated, re-create what it deleted (also writes it may have made before a crash), every run
    in the journal, newest first. Contacts changed since are left alone (conflicts) unless
    --force."""
    from .apply import RunFiles
    from .journal import read_journal
    from .outputs import run_outputs
    from .rollback import inverse_plan
    from .terminal import plan_text

    check_outputs(
        run_outputs(results, journal, "rollback") + connection.outputs(), overwrite, journal_file
    )
    records = read_journal(journal_file)
    settings, client, log = open_client(connection)
    check_journal(journal, results, settings.api_url)
    dealers = {r["dealer_id"] for r in records if r["type"] == "intent"}
    with client, log, lock_dealers(dealers, writing.wait):
        with connection.bars() as bars:
            plan = inverse_plan(client, records, journal_file, force, bars("sites", 0))
        if not connection.quiet:
            echo_lines(plan_text(plan, connection.verbose, applying=True))
        if not plan.changes:
            return plan.exit_code(conflicts_fail=True)
        if not confirmed(f"Undo {len(plan.changes)} changes in CHeKT at {settings.api_url}?", yes):
            return ExitCode.OK
        files = RunFiles.choose(results, journal, kind="rollback")
        report = run_plan(
            client, plan, files, connection, writing, overwrite and results is not None, "rollback"
        )
    return report.exit_code or plan.exit_code(conflicts_fail=True)


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's files (sample roster, reports, results, export).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: Path, no_progress: bool) -> ExitCode:
    """The whole job on the sample data, against a sandbox started for it on 127.0.0.1: no
    credentials, no network. Validate, plan with --prune (html, xlsx, json reports), apply,
    export."""
    import time

    from .demo import FILES, started_demo
    from .outputs import Output

    check_outputs([Output("--out", out, (), "folder")])
    started = time.perf_counter()
    with started_demo(out, progress=not no_progress) as run:
        echo(f"bulk-contacts demo: a sandbox on {run.url}, seeded from {run.seed}", "bold")
        for step in run.steps:
            echo()
            echo(f"== {step.title}: bulk-contacts {' '.join(step.args)}", "bold")
            code = invoke(step.args, run.environ)
            if code != ExitCode.OK:
                echo(f"error: the demo's step '{step.title}' ended with exit code {code}", err=True)
                return ExitCode.FAILED
    echo()
    echo(f"Demo finished in {time.perf_counter() - started:.1f} s. Files in {out}/:", "done")
    for name, what in FILES:
        echo(f"  {name:<22} {what}")
    echo("\nThe same job in a browser (upload, fix, plan, apply, rollback): bulk-contacts serve")
    return ExitCode.OK


def faults(**values: Any) -> Any:
    from .sandbox import Faults

    return Faults(**values)


@main.command()
@click.option(
    "--host", default=sandbox_defaults.DEFAULT_HOST, show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=sandbox_defaults.DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file to keep the data in (default: in memory, gone at exit).",
)
@click.option(
    "--seed",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON seed file loaded into an empty database (format in the README).",
)
@click.option(
    "--client-id",
    default=sandbox_defaults.DEFAULT_CLIENT_ID,
    show_default=True,
    help="The one OAuth client the sandbox knows.",
)
@click.option(
    "--client-secret",
    default=sandbox_defaults.DEFAULT_CLIENT_SECRET,
    envvar="SANDBOX_CLIENT_SECRET",
    help="That client's secret (SANDBOX_CLIENT_SECRET; default sandbox-secret). The flag shows "
    "in `ps`: use it only for throwaway rehearsals, the variable otherwise.",
)
@click.option(
    "--dealer",
    "dealers",
    type=int,
    multiple=True,
    help="Dealer id the client may reach; repeatable (default 12345).",
)
@click.option(
    "--client-public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM public key: enables the signed-JWT-assertion form of the token request.",
)
@click.option(
    "--token-ttl",
    type=click.IntRange(1),
    default=3600,
    show_default=True,
    help="Lifetime of an access token, in seconds.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(1),
    metavar="PER_MINUTE",
    help="Token-bucket limit per client on /partner/ calls (default: none).",
)
@click.option(
    "--burst",
    type=click.IntRange(1),
    help="Bucket size for --rate-limit (default: one second's worth).",
)
@option_group(
    "faults",
    lambda fault_seed, **rates: faults(seed=fault_seed, **rates),
    click.option(
        "--latency-ms", type=click.FloatRange(0), default=0, help="Added to every request."
    ),
    click.option(
        "--jitter-ms",
        type=click.FloatRange(0),
        default=0,
        help="Random extra latency, up to this much.",
    ),
    click.option(
        "--error-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of /partner/ requests answered 500 or 503 without doing anything.",
    ),
    click.option(
        "--drop-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of /partner/ requests whose connection is closed with no answer.",
    ),
    click.option(
        "--ack-loss-rate",
        type=click.FloatRange(0, 1),
        default=0,
        help="Share of writes that commit, then answer 500 or drop the connection.",
    ),
    click.option("--fault-seed", type=int, help="Seed for the fault draws (reproducible runs)."),
)
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (trace id, request id, status) here.",
)
def sandbox(dealers: tuple[int, ...], **options: Any) -> None:
    """Run a local emulation of the CHeKT Partner API, kept in SQLite."""
    from .outputs import LINES_SUFFIXES, Output
    from .sandbox import SandboxConfig, serve

    if options["request_log"] is not None:
        check_outputs([Output("--request-log", options["request_log"], LINES_SUFFIXES, "append")])
    config = SandboxConfig(dealers=dealers or (sandbox_defaults.DEFAULT_DEALER,), **options)
    source = click.get_current_context().get_parameter_source("client_secret")
    secret = (
        {
            click.core.ParameterSource.ENVIRONMENT: "from SANDBOX_CLIENT_SECRET",
            click.core.ParameterSource.COMMANDLINE: "as given with --client-secret",
        }.get(source, "sandbox-secret (the default)")
        if source is not None
        else ""
    )

    def announce(url: str) -> None:
        echo(f"CHeKT sandbox listening on {url}")
        echo(f"  token URL:     {url}/oauth/token")
        echo(f"  client id:     {config.client_id}")
        echo(f"  client secret: {secret}")
        echo(f"  dealer(s):     {', '.join(str(d) for d in config.dealers)}")
        echo(f"  database:      {config.db or 'in memory'}")
        echo("Press Ctrl-C to stop.")

    serve(config, announce)


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8790,
    show_default=True,
    help="Port on 127.0.0.1 to listen on (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL but do not open a browser.")
def serve(port: int, no_browser: bool) -> ExitCode:
    """The whole job in a browser, on this machine only: connect, upload, columns, fix, plan,
    apply, runs (with rollback), export. Listens on 127.0.0.1; the printed URL carries the
    session's token."""
    from .web.server import WebServer, open_browser

    server = WebServer(port)

    def ready() -> None:
        echo(f"bulk-contacts serve: open {server.url}")
        echo("  (127.0.0.1 only; the token in the URL is this session's key)")
        echo(f"  runs are written under {server.workspace.runs_dir}")
        echo("Press Ctrl-C to stop.")
        if not no_browser:
            open_browser(server.url)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how serve is stopped
        server.run(ready)
    run = server.workspace.run
    if run is not None and run.report is not None and run.report.interrupted:
        echo(
            f"stopped during a {run.kind}: the changes in flight finished, the rest are "
            f"recorded as skipped in {run.folder}",
            err=True,
        )
        return ExitCode.INTERRUPTED
    echo("stopped; the uploaded files were removed")
    return ExitCode.OK
