"""The command line: parses options, calls the library, prints, and chooses exit codes.

Only this module imports click and prints; everything it runs is a library call a script can make.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .sandbox import config as sandbox_defaults
from .terminal import printable

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
STYLES = {
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


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    echo(f"error: {message}", err=True)
    sys.exit(code)


def echo_lines(lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        echo(text, style)


def overwrite_option(what: str):
    return click.option(
        "--overwrite",
        is_flag=True,
        help=f"Replace {what} if it exists (without it: exit 2, the file untouched).",
    )


def check_outputs(wanted: list, overwrite: bool = False, reading: Path | None = None) -> None:
    """Every output path of the command, checked before any network call or planning: one line
    and exit 2 for the first that cannot be written (see `outputs.check_outputs`)."""
    from .errors import InputError
    from .outputs import check_outputs as check

    try:
        check(wanted, overwrite, reading)
    except InputError as error:
        fail(str(error))


def log_output(options: dict) -> list:
    """--log-file, when given: appended to."""
    from .outputs import LINES_SUFFIXES, Output

    path = options.get("log_file")
    return [] if path is None else [Output("--log-file", path, LINES_SUFFIXES, "append")]


def run_outputs(results: Path | None, journal: Path | None, kind: str) -> list:
    """What an apply or rollback will write (see `outputs.run_outputs`); nothing is created
    yet (the run folder is made when the run starts)."""
    from .outputs import run_outputs as outputs_of

    return outputs_of(results, journal, kind)


def write_output(option: str, path: Path, write):
    """Run a writer: a file that cannot be written is one line and exit 2. Writers write to a
    temporary name and rename it into place, so the file that was there is as it was."""
    from .errors import InputError

    try:
        return write()
    except InputError as error:
        fail(str(error))
    except OSError as error:
        reason = error.strerror or error
        fail(f"{option} {path}: cannot be written ({reason}); it was left as it was")


def parse_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        header, sep, name = value.rpartition("=")
        if not sep or not header.strip() or not name.strip():
            fail(
                f'--map {value!r}: write it as "Header in the file=column", e.g. '
                f'--map "Cell=phone_number"'
            )
        mapping[header.strip()] = name.strip()
    return mapping


def roster_options(command):
    """Options shared by the commands that read a roster."""
    for option in reversed(
        [
            click.option(
                "--sheet",
                metavar="NAME",
                help="Sheet to read (default: 'Contacts', else the first visible sheet).",
            ),
            click.option(
                "--map",
                "column_map",
                multiple=True,
                metavar='"HEADER=column"',
                help="Read a column whose header is not recognised as a roster column; repeatable.",
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
                help="Accept contacts with neither phone nor e-mail (a warning instead of "
                "an error).",
            ),
        ]
    ):
        command = option(command)
    return command


def load_roster(
    path: Path,
    sheet: str | None,
    column_map: tuple[str, ...],
    region: str,
    phone_format: str,
    allow_unreachable: bool = False,
    judge_reachability: bool = True,
):
    """Read and validate; an unreadable file is exit 2 with the reason. `plan` and `apply`
    judge reachability on the contacts instead of the rows (judge_reachability=False).

    The file is parsed in a thread while pandas and the validation stack are imported: the
    workbook parser releases the GIL, so on two cores the two overlap.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .errors import InputError
    from .spreadsheet import read_cells

    mapping = parse_map(column_map)
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_cells, path, sheet)
        import phonenumbers

        from .roster import roster_from_cells
        from .schema import validate_roster, warm_up

        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            fail(
                f"--region {region!r} is not a region code; use a two-letter code such as US, "
                f"CA, GB or DE"
            )
        warm_up(region, phone_format)
        try:
            roster = roster_from_cells(reading.result(), mapping)
        except InputError as error:
            fail(str(error))
    if roster.frame.empty:
        fail(
            f"{roster.source}: no rows below the header (row {roster.table.header_row}): "
            f"nothing to check or send",
            EXIT_INVALID,
        )
    return validate_roster(
        roster,
        region,
        phone_format,
        allow_unreachable=allow_unreachable,
        judge_reachability=judge_reachability,
    )


def run() -> None:
    """The console script."""
    try:
        main()
    finally:
        # Exit without the interpreter's last garbage collection over everything the command
        # built (about 0.4 s after a 100,000-row roster): the OS takes the memory back, and
        # every file the command writes is closed before this point.
        gc.freeze()


def connection_options(dealer: bool = True):
    """Options of the commands that talk to CHeKT (rollback takes its dealers from the
    journal). Secrets come only from the environment."""
    options = [
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
            help="Send at most this many requests per second (default: as fast as "
            "the server's advertised limit allows).",
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
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


api_options = connection_options()


def plan_options(command):
    """Options that shape a plan."""
    for option in reversed(
        [
            click.option(
                "--blanks",
                type=click.Choice(["keep", "clear"]),
                default="keep",
                show_default=True,
                help="keep: an empty phone or e-mail cell leaves the field as it is; "
                "clear: empties it.",
            ),
            click.option(
                "--skip-invalid",
                is_flag=True,
                help="Plan the valid rows and report the rest (without it, any invalid "
                "row stops the plan).",
            ),
            click.option(
                "--prune",
                is_flag=True,
                help="Delete contacts of the roster's sites that no row of the roster names "
                "(never unmanaged ones, nor those of invalid or unresolved rows).",
            ),
            click.option(
                "--max-deletes",
                type=click.IntRange(0),
                metavar="N",
                help="Refuse a plan deleting more than N contacts (default: more than 10 "
                "and more than 25% of the contacts in scope).",
            ),
            click.option("--force", is_flag=True, help="Go past the --max-deletes guard."),
            click.option(
                "--allow-empty-sites",
                is_flag=True,
                help="Allow a plan to leave a site with no contacts.",
            ),
            click.option(
                "--exact-ids",
                is_flag=True,
                help="Compare external ids exactly: 42 and 0042 are different people (by "
                "default, ids equal once a spreadsheet's damage is undone are one id).",
            ),
            click.option(
                "--repair-ids",
                is_flag=True,
                help="Use an account number, external site id or external contact id that "
                "matches exactly one only once repaired (1234 for 001234), with a warning.",
            ),
        ]
    ):
        command = option(command)
    return command


class Bars:
    """tqdm progress bars for the library's progress callbacks; off when asked or when stderr is
    not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bars: list = []

    def __call__(self, what: str, total: int):
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            desc=f"reading {what}" if what == "sites" else what,
            unit=what.split()[0],
            disable=not self.enabled,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )
        self.bars.append(bar)
        return bar.update

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def open_client(options: dict):
    """Settings resolved once (flag, environment, default) and the client. Exit 2 if a setting
    is missing or wrong."""
    from .client import ChektClient
    from .errors import ConfigError
    from .runlog import RunLog
    from .settings import resolve_settings

    try:
        settings = resolve_settings(
            api_url=options["api_url"],
            token_url=options["token_url"],
            dealer=options["dealer"],
            require_dealer=False,
            allow_insecure_http=options["allow_insecure_http"] or None,
        )
    except ConfigError as error:
        fail(str(error))
    for url in settings.cleartext_urls:
        echo(
            f"warning: {url} is plain http:// to another machine (--allow-insecure-http): "
            f"the secret, tokens and contacts cross the network in clear",
            "warning",
            err=True,
        )
    log = RunLog(options["log_file"], verbose=options["verbose"])
    client = ChektClient(
        settings, concurrency=options["concurrency"], rate=options["rate"], log=log
    )
    return settings, client, log


def make_plan(roster: Path, options: dict, client, settings):
    """Validate, fetch and reconcile: the plan, or exit with the reason. The access token is
    fetched while the roster is read."""
    from concurrent.futures import ThreadPoolExecutor

    from .errors import ApiError, BulkContactsError, ConfigError
    from .pipeline import plan_roster
    from .reconcile import PlanOptions

    def warm_up() -> None:
        with contextlib.suppress(BulkContactsError):  # the first real request reports it
            client.tokens.current()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(warm_up)
        validated = load_roster(
            roster,
            options["sheet"],
            options["column_map"],
            options["region"],
            options["phone_format"],
            judge_reachability=False,  # the plan judges each contact as it leaves it
        )
    plan_options = PlanOptions(
        dealer_id=settings.dealer_id,
        region=options["region"],
        phone_format=options["phone_format"],
        blanks=options["blanks"],
        prune=options["prune"],
        max_deletes=options["max_deletes"],
        force=options["force"],
        allow_empty_sites=options["allow_empty_sites"],
        skip_invalid=options["skip_invalid"],
        exact_ids=options["exact_ids"],
        repair_ids=options["repair_ids"],
        allow_unreachable=options["allow_unreachable"],
    )
    bars = Bars(not options["no_progress"] and not options["quiet"])
    try:
        plan = plan_roster(client, validated, plan_options, bars)
    except ConfigError as error:
        fail(str(error))
    except ApiError as error:
        fail(str(error), EXIT_INVALID)
    finally:
        bars.close()
    return validated, plan


def write_plan_reports(plan, reports: tuple[Path, ...], quiet: bool, overwrite: bool) -> None:
    from .plan_report import write_plan_report

    for report in reports:
        write_output("--report", report, lambda r=report: write_plan_report(plan, r, overwrite))
        if not quiet:
            echo(f"report written: {report}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulk-contacts")
def main() -> None:
    """Move site-contact rosters between spreadsheets and the CHeKT Partner API, safely."""


@main.command()
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Write the problems to .csv or .json, or an annotated copy "
    "of the roster to .xlsx; repeatable.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code tells.")
@click.option("-v", "--verbose", is_flag=True, help="List every problem, not the first few.")
@overwrite_option("a --report file")
def validate(
    roster: Path,
    sheet,
    column_map,
    region,
    phone_format,
    allow_unreachable,
    reports,
    quiet,
    verbose,
    overwrite,
):
    """Check a roster offline: every row, every problem, nothing sent anywhere.

    Exit code 0: valid (warnings allowed); 1: invalid rows; 2: unreadable file or bad usage.
    """
    from .outputs import VALIDATION_REPORT_SUFFIXES, Output
    from .terminal import validation_text
    from .validation_report import write_validation_report

    check_outputs(
        [Output("--report", r, VALIDATION_REPORT_SUFFIXES) for r in reports], overwrite, roster
    )
    result = load_roster(roster, sheet, column_map, region, phone_format, allow_unreachable)
    for report in reports:
        write_output(
            "--report", report, lambda r=report: write_validation_report(result, r, overwrite)
        )
    if not quiet:
        echo_lines(validation_text(result, verbose))
        for report in reports:
            echo(f"report written: {report}")
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


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
    write_output("-o", output, lambda: write_template(output, overwrite))
    echo(f"template written: {output}")


@main.command()
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@plan_options
@api_options
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Also write the plan as .json, .csv, .xlsx or .html "
    "(self-contained, filterable); repeatable.",
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
def plan(roster: Path, reports, output, detailed_exitcode, overwrite, **options) -> None:
    """Dry run: read the roster, compare it with CHeKT, show what would change. Writes nothing
    to CHeKT."""
    from .outputs import PLAN_FILE_SUFFIXES, PLAN_REPORT_SUFFIXES, Output
    from .terminal import plan_text, validation_text

    wanted = [Output("--report", r, PLAN_REPORT_SUFFIXES) for r in reports]
    if output is not None:
        wanted.insert(0, Output("-o", output, PLAN_FILE_SUFFIXES))
    check_outputs(wanted + log_output(options), overwrite, roster)
    settings, client, log = open_client(options)
    with client, log:
        validated, result = make_plan(roster, options, client, settings)
    if not options["quiet"] and validated.issues:
        echo_lines(
            [line for line in validation_text(validated, options["verbose"]) if line[1] != "ok"]
        )
    if output is not None:
        write_output("-o", output, lambda: result.write(output, overwrite))
    write_plan_reports(result, reports, options["quiet"], overwrite)
    if not options["quiet"]:
        echo_lines(plan_text(result, options["verbose"]))
        if output is not None:
            echo(f"plan written: {output}")
    else:
        for refusal in result.refusals + [s.refused for s in result.refused_sites]:
            echo(f"refused: {refusal}", err=True)
    if result.refused:
        sys.exit(EXIT_INVALID)
    if detailed_exitcode:
        sys.exit(EXIT_CHANGES if result.has_changes else EXIT_OK)
    sys.exit(EXIT_OK)


def confirm_or_exit(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, --yes is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail("not on a terminal, so nothing is asked: pass --yes to go ahead without confirmation")
    if not click.confirm(printable(question), default=False):
        echo("Nothing was changed.")
        sys.exit(EXIT_OK)


class StopOnInterrupt:
    """Ctrl-C stops starting new changes; the ones in flight finish and everything is written.
    A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        import signal
        import threading

        self.event = threading.Event()
        self._signal = signal
        self._previous = None

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


def run_plan(client, plan, files, options: dict, kind: str):
    """Apply with a progress bar and Ctrl-C handling; print where everything is."""
    from .apply import apply_plan
    from .errors import InputError, JournalError

    total = len(plan.changes)
    bars = Bars(not options["no_progress"] and not options["quiet"])
    advance = bars("changes", total) if total else None
    tally = {"ok": 0, "failed": 0, "skipped": 0, "retried": 0}

    def progress(outcome) -> None:
        tally[outcome.status] += 1
        tally["retried"] += outcome.attempts > 1
        if advance is not None:
            advance(1)
            bars.bars[-1].set_postfix(
                done=tally["ok"], failed=tally["failed"], retried=tally["retried"], refresh=False
            )

    try:
        with StopOnInterrupt() as interrupt:
            report = apply_plan(
                client, plan, files, progress, interrupt.event, kind, verify=options["verify"]
            )
    except InputError as error:
        fail(str(error))
    except JournalError as error:
        fail(f"{error}: nothing was sent", EXIT_INVALID)
    finally:
        bars.close()
    counts = report.counts
    if not options["quiet"] or counts["failed"]:
        echo(
            f"{kind}: {counts['ok']} done, {counts['failed']} failed, {counts['skipped']} skipped",
            "error" if counts["failed"] else "ok",
        )
    echo_verification(report, options)
    echo(f"results: {files.results}")
    echo(f"journal: {files.journal}  (bulk-contacts rollback {files.journal})")
    if report.failed_rows_written:
        echo(f"failed rows, to fix and import again: {files.failed_rows}")
    if report.results_error:
        echo(
            f"warning: the results file could not be written: {report.results_error}",
            "warning",
            err=True,
        )
    if report.journal_error:
        stop_on_journal_failure(report)
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    return report


def echo_verification(report, options: dict) -> None:
    """What the re-read of the touched sites found: each difference, or that all holds."""
    for outcome in report.differences:
        who = outcome.external_contact_id or f"contact {outcome.contact_id}"
        echo(
            f"unverified: site {outcome.site_id}, {outcome.action} {who}: {outcome.error_message}",
            "error",
            err=True,
        )
    if report.verify_error:
        echo(
            f"error: the sites could not be read again to verify the run: {report.verify_error}",
            "error",
            err=True,
        )
    elif report.verified_sites and not report.unverified and not options["quiet"]:
        echo(
            f"verified: {report.verified_sites} sites read again; every change holds",
            "ok",
        )


def stop_on_journal_failure(report) -> NoReturn:
    """The journal failed: print the outcomes it could not take, then one line, exit 1."""
    for record in report.kept:
        who = record.get("external_contact_id") or f"contact {record.get('contact_id')}"
        echo(
            f"not journaled: site {record['site_id']}, {record['action']} {who}: "
            f"{record['status']} (contact_id {record.get('contact_id')})",
            err=True,
        )
    where = f"; they are in {report.fallback}" if report.fallback else ""
    kept = (
        f"the {len(report.kept)} writes in flight finished and are listed above{where}; "
        if report.kept
        else ""
    )
    fail(
        f"{report.journal_error}: no further change was sent; {kept}"
        f"bulk-contacts rollback {report.files.journal} undoes what was done",
        EXIT_INVALID,
    )


def lock_dealers(dealers, wait: bool):
    """This machine's lock on each dealer: warns (or waits) when another run holds one."""
    from .lock import DealerLocks

    def tell(message: str) -> None:
        echo(message, "warning", err=True)

    return DealerLocks(dealers).acquire(wait, tell)


def write_options(command):
    """Options of the commands that write to CHeKT (apply, rollback)."""
    for option in reversed(
        [
            click.option(
                "--no-verify",
                "verify",
                is_flag=True,
                flag_value=False,
                default=True,
                help="Do not read every touched site again after the run to check each change "
                "holds (saves one list call per site).",
            ),
            click.option(
                "--wait",
                is_flag=True,
                help="When another run on this machine writes to the same dealer, wait for it "
                "to end (then plan again) instead of warning and going on.",
            ),
        ]
    ):
        command = option(command)
    return command


@main.command()
@click.argument("target", metavar="ROSTER_OR_PLAN", type=click.Path(path_type=Path))
@roster_options
@plan_options
@api_options
@click.option("--yes", is_flag=True, help="Apply without asking (required off a terminal).")
@click.option(
    "--refresh",
    is_flag=True,
    help="With a saved plan: re-base the changes of sites that changed since the "
    "plan, instead of refusing them.",
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
def apply(target: Path, yes, refresh, results, journal, wait, **options) -> None:
    """Make the changes: plan the roster (or load a saved PLAN.json and check it is not stale),
    confirm, apply, verify, and write the results and the journal."""
    check_outputs(
        run_outputs(results, journal, "apply") + log_output(options), options["overwrite"], target
    )
    settings, client, log = open_client(options)
    check_journal(journal, results, settings.api_url)
    with client, log:
        plan = plan_to_apply(target, refresh, options, client, settings)
        locks = lock_dealers({site.dealer_id for site in plan.sites if site.changes}, wait)
        with locks:
            if wait and locks.busy:  # the other run changed things: plan from what is there now
                plan = plan_to_apply(target, refresh, options, client, settings)
            apply_checked_plan(plan, client, yes, results, journal, options)


def check_journal(journal: Path | None, results: Path | None, api_url: str) -> None:
    """An existing journal (--journal, or the one beside --results) is added to: before any
    work, it must be a journal of runs against this API."""
    from .errors import InputError
    from .journal import check_appendable
    from .outputs import files_beside

    if journal is None and results is not None:
        journal = files_beside(results)[1]
    if journal is None:
        return
    try:
        check_appendable(journal, api_url)
    except InputError as error:
        fail(str(error))


def plan_to_apply(target: Path, refresh: bool, options: dict, client, settings):
    """The plan of a roster, or a saved plan checked for staleness."""
    from .terminal import validation_text

    if target.suffix.lower() == ".json":
        return load_saved_plan(target, refresh, options, client)
    validated, plan = make_plan(target, options, client, settings)
    if not options["quiet"] and validated.issues:
        echo_lines(
            [line for line in validation_text(validated, options["verbose"]) if line[1] != "ok"]
        )
    return plan


def apply_checked_plan(plan, client, yes: bool, results, journal, options: dict) -> None:
    """Show the plan, stop at a refusal, confirm, apply, exit with the outcome."""
    from .apply import RunFiles
    from .terminal import plan_text

    if not options["quiet"]:
        echo_lines(plan_text(plan, options["verbose"], applying=True))
    if plan.refusals:
        sys.exit(EXIT_INVALID)
    if not plan.changes:
        sys.exit(EXIT_INVALID if plan.refused else EXIT_OK)
    summary = plan.summary()
    confirm_or_exit(
        f"Apply {summary['create']} creates, {summary['update']} updates and "
        f"{summary['delete']} deletes to CHeKT at {client.settings.api_url}?",
        yes,
    )
    files = RunFiles.choose(results, journal)
    replace_results(files, results, options)
    report = run_plan(client, plan, files, options, "apply")
    sys.exit(EXIT_INVALID if not report.clean or plan.refused else EXIT_OK)


def replace_results(files, results: Path | None, options: dict) -> None:
    """With --overwrite, a --results file that exists (and its failed rows) goes now that the
    run starts: they are written line by line, as outcomes arrive."""
    from .outputs import discard

    if options["overwrite"] and results is not None:
        discard(files.results, files.failed_rows)


def load_saved_plan(path: Path, refresh: bool, options: dict, client):
    """A saved plan, checked: not edited, not stale (or re-based), guards again."""
    from .apply import check_freshness
    from .errors import ApiError, InputError
    from .plan import Plan
    from .reconcile import PlanOptions, apply_guards

    try:
        plan = Plan.read(path)
    except InputError as error:
        fail(str(error))
    bars = Bars(not options["no_progress"] and not options["quiet"])
    try:
        stale = check_freshness(client, plan, refresh, bars("sites", len(plan.sites)))
    except ApiError as error:
        fail(str(error), EXIT_INVALID)
    finally:
        bars.close()
    saved = {k: v for k, v in plan.options.items() if k in PlanOptions.__dataclass_fields__}
    flags = {k: options[k] for k in ("force", "allow_empty_sites") if options[k]}
    if options["max_deletes"] is not None:
        flags["max_deletes"] = options["max_deletes"]
    apply_guards(plan, PlanOptions(**{**saved, **flags}))
    if stale and not options["quiet"]:
        verb = "re-based on their current contacts" if refresh else "refused"
        echo(
            f"{len(stale)} sites changed since the plan was made, {verb}: "
            + ", ".join(str(s.site_id) for s in stale),
            "warning",
        )
    return plan


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
@api_options
@overwrite_option("the -o file")
def export(output: Path, site_ids, accounts, overwrite, **options) -> None:
    """Write the dealer's current contacts (every site, or those named) in the roster layout,
    to review and edit in Excel and import back with plan/apply."""
    from .errors import ApiError, InputError
    from .export import fetch_export, write_export
    from .outputs import SHEET_SUFFIXES, Output

    check_outputs([Output("-o", output, SHEET_SUFFIXES), *log_output(options)], overwrite)
    settings, client, log = open_client(options)
    if settings.dealer_id is None:
        fail("no dealer id: pass --dealer or set CHEKT_DEALER_ID")
    bars = Bars(not options["no_progress"] and not options["quiet"])
    try:
        with client, log:
            found = fetch_export(client, settings.dealer_id, site_ids, accounts, bars)
    except InputError as error:
        fail(str(error))
    except ApiError as error:
        fail(str(error), EXIT_INVALID)
    finally:
        bars.close()
    count = write_output("-o", output, lambda: write_export(found, output, overwrite))
    if not options["quiet"]:
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
def rollback(journal_file: Path, yes, force, results, journal, wait, **options) -> None:
    """Undo an earlier apply from its journal: delete what it created, restore what it
    updated, re-create what it deleted (also writes it may have made before a crash), every run
    in the journal, newest first. Contacts changed since are left alone (conflicts) unless
    --force."""
    from .apply import RunFiles
    from .errors import ApiError, InputError
    from .journal import read_journal
    from .rollback import inverse_plan
    from .terminal import plan_text

    check_outputs(
        run_outputs(results, journal, "rollback") + log_output(options),
        options["overwrite"],
        journal_file,
    )
    try:
        records = read_journal(journal_file)
    except InputError as error:
        fail(str(error))
    settings, client, log = open_client({**options, "dealer": None})
    check_journal(journal, results, settings.api_url)
    dealers = {r["dealer_id"] for r in records if r["type"] == "intent"}
    with client, log, lock_dealers(dealers, wait):
        bars = Bars(not options["no_progress"] and not options["quiet"])
        try:
            plan = inverse_plan(client, records, journal_file, force, bars("sites", 0))
        except ApiError as error:
            fail(str(error), EXIT_INVALID)
        finally:
            bars.close()
        if not options["quiet"]:
            echo_lines(plan_text(plan, options["verbose"], applying=True))
        if not plan.changes:
            sys.exit(EXIT_INVALID if plan.conflicts else EXIT_OK)
        confirm_or_exit(
            f"Undo {len(plan.changes)} changes in CHeKT at {client.settings.api_url}?", yes
        )
        files = RunFiles.choose(results, journal, kind="rollback")
        replace_results(files, results, options)
        report = run_plan(client, plan, files, options, "rollback")
    sys.exit(EXIT_INVALID if not report.clean or plan.conflicts else EXIT_OK)


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's files (sample roster, reports, results, export).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: Path, no_progress: bool) -> None:
    """The whole job on the sample data, against a sandbox started for it on 127.0.0.1: no
    credentials, no network. Validate, plan with --prune (html, xlsx, json reports), apply,
    export."""
    import os
    import tempfile
    import time

    from .outputs import Output
    from .samples import write_samples
    from .sandbox import SandboxConfig, SandboxError, SandboxServer

    check_outputs([Output("--out", out, (), "folder")])
    started = time.perf_counter()
    samples = write_samples(out / "sample_data")
    roster, seed = samples["roster.xlsx"], samples["sandbox-seed.json"]
    # The demo's folder is its own: each run replaces the files of the last one. A journal is
    # never replaced, but the last demo's is of a sandbox that is gone.
    (out / "apply").mkdir(exist_ok=True)
    (out / "apply" / "journal.jsonl").unlink(missing_ok=True)
    quiet = ["--no-progress"] if no_progress else []
    with tempfile.TemporaryDirectory() as scratch:
        config = SandboxConfig(port=0, db=Path(scratch) / "sandbox.db", seed=seed)
        try:
            sandbox = SandboxServer(config).start()
        except SandboxError as error:
            fail(str(error))
        try:
            # The sandbox's own public rehearsal credentials, for the demo's steps only.
            saved = {k: v for k, v in os.environ.items() if k.startswith("CHEKT_")}
            for name in saved:
                del os.environ[name]
            os.environ.update(
                {
                    "CHEKT_API_URL": sandbox.url,
                    "CHEKT_CLIENT_ID": config.client_id,
                    "CHEKT_CLIENT_SECRET": config.client_secret,
                    "CHEKT_DEALER_ID": str(config.dealers[0]),
                }
            )
            steps = [
                ("validate the sample roster", ["validate", str(roster)], (0,)),
                (
                    "plan it with --prune",
                    [
                        "plan",
                        str(roster),
                        "--prune",
                        *quiet,
                        "--report",
                        str(out / "plan.html"),
                        "--report",
                        str(out / "plan.xlsx"),
                        "-o",
                        str(out / "plan.json"),
                        "--overwrite",
                    ],
                    (0,),
                ),
                (
                    "apply the saved plan",
                    [
                        "apply",
                        str(out / "plan.json"),
                        "--yes",
                        *quiet,
                        "--results",
                        str(out / "apply" / "results.csv"),
                        "--journal",
                        str(out / "apply" / "journal.jsonl"),
                        "--overwrite",
                    ],
                    (0,),
                ),
                (
                    "export what CHeKT now holds",
                    ["export", "-o", str(out / "contacts-after.xlsx"), "--overwrite", *quiet],
                    (0,),
                ),
                (
                    "plan again: nothing left to do",
                    ["plan", str(roster), "--prune", "-q", "--detailed-exitcode"],
                    (0,),
                ),
            ]
            echo(f"bulk-contacts demo: a sandbox on {sandbox.url}, seeded from {seed}", "bold")
            for title, args, expected in steps:
                echo()
                echo(f"== {title}: bulk-contacts {' '.join(args)}", "bold")
                code = invoke(args)
                if code not in expected:
                    fail(f"the demo's step '{title}' ended with exit code {code}", EXIT_INVALID)
        finally:
            sandbox.stop()
            for name in [k for k in os.environ if k.startswith("CHEKT_")]:
                del os.environ[name]
            os.environ.update(saved)
    echo()
    echo(f"Demo finished in {time.perf_counter() - started:.1f} s. Files in {out}/:", "done")
    for name, what in [
        ("sample_data/", "the sample roster, a roster with mistakes, the seed"),
        ("plan.html", "the plan, to open in a browser"),
        ("plan.xlsx", "the plan for review in Excel"),
        ("plan.json", "the plan file that apply took"),
        ("apply/results.csv", "one line per change made"),
        ("apply/journal.jsonl", "the journal (bulk-contacts rollback takes it)"),
        ("contacts-after.xlsx", "the export: edit it and plan/apply it back"),
    ]:
        echo(f"  {name:<22} {what}")
    echo("\nThe same job in a browser (upload, fix, plan, apply, rollback): bulk-contacts serve")


def invoke(args: list[str]) -> int:
    """Run a command as the console script would; its exit code."""
    try:
        main.main(args, standalone_mode=False, prog_name="bulk-contacts")
    except SystemExit as done:
        return int(done.code or 0)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    return 0


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
@click.option("--latency-ms", type=click.FloatRange(0), default=0, help="Added to every request.")
@click.option(
    "--jitter-ms",
    type=click.FloatRange(0),
    default=0,
    help="Random extra latency, up to this much.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0,
    help="Share of /partner/ requests answered 500 or 503 without doing anything.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0,
    help="Share of /partner/ requests whose connection is closed with no answer.",
)
@click.option(
    "--ack-loss-rate",
    type=click.FloatRange(0, 1),
    default=0,
    help="Share of writes that commit, then answer 500 or drop the connection.",
)
@click.option("--fault-seed", type=int, help="Seed for the fault draws (reproducible runs).")
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request (trace id, request id, status) here.",
)
def sandbox(**options: object) -> None:
    """Run a local emulation of the CHeKT Partner API, kept in SQLite."""
    from .outputs import LINES_SUFFIXES, Output
    from .sandbox import Faults, SandboxConfig, SandboxError, SeedError, serve

    request_log = options["request_log"]
    if isinstance(request_log, Path):
        check_outputs([Output("--request-log", request_log, LINES_SUFFIXES, "append")])
    fault_names = ("latency_ms", "jitter_ms", "error_rate", "drop_rate", "ack_loss_rate")
    try:
        faults = Faults(seed=options.pop("fault_seed"), **{n: options.pop(n) for n in fault_names})
        config = SandboxConfig(
            **{k: v for k, v in options.items() if k != "dealers"},
            dealers=tuple(options["dealers"]) or (sandbox_defaults.DEFAULT_DEALER,),
            faults=faults,
        )
    except ValueError as error:
        fail(str(error))

    source = click.get_current_context().get_parameter_source("client_secret")
    secret = {
        click.core.ParameterSource.ENVIRONMENT: "from SANDBOX_CLIENT_SECRET",
        click.core.ParameterSource.COMMANDLINE: "as given with --client-secret",
    }.get(source, "sandbox-secret (the default)")

    def announce(url: str) -> None:
        echo(f"CHeKT sandbox listening on {url}")
        echo(f"  token URL:     {url}/oauth/token")
        echo(f"  client id:     {config.client_id}")
        echo(f"  client secret: {secret}")
        echo(f"  dealer(s):     {', '.join(str(d) for d in config.dealers)}")
        echo(f"  database:      {config.db or 'in memory'}")
        echo("Press Ctrl-C to stop.")

    try:
        serve(config, announce)
    except (SandboxError, SeedError) as error:
        fail(str(error))


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8790,
    show_default=True,
    help="Port on 127.0.0.1 to listen on (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL but do not open a browser.")
def serve(port: int, no_browser: bool) -> None:
    """The whole job in a browser, on this machine only: connect, upload, columns, fix, plan,
    apply, runs (with rollback), export. Listens on 127.0.0.1; the printed URL carries the
    session's token."""
    from .sandbox import SandboxError
    from .web.server import WebServer, open_browser

    try:
        server = WebServer(port)
    except SandboxError as error:
        fail(str(error))

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
        sys.exit(EXIT_INTERRUPTED)
    echo("stopped; the uploaded files were removed")
