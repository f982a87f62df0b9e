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
from .words import plural

if TYPE_CHECKING:
    from .apply import ApplyReport, Freshness, RunFiles
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


INTERRUPT_NOTE = "bulk_contacts.interrupt_note"


def on_interrupt(note: str) -> None:
    """What the one line printed after Ctrl-C says from here on (what was done, how to go on)."""
    click.get_current_context().meta[INTERRUPT_NOTE] = note


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


@dataclass(frozen=True)
class Invocation:
    environ: Mapping[str, str] | None = None


def environ() -> Mapping[str, str]:
    """Where settings come from: the process's environment with the working folder's .env
    beneath it, unless `invoke` was given one."""
    invocation = click.get_current_context().find_object(Invocation)
    if invocation is None or invocation.environ is None:
        from .profiles import layered_environ

        return layered_environ(os.environ)
    return invocation.environ


def load_dotenv() -> None:
    """The working folder's .env into the process's environment, a variable already set
    winning: what it sets (HTTPS_PROXY too) reaches everything the command runs."""
    from .errors import ConfigError
    from .profiles import read_dotenv

    try:
        values, problems = read_dotenv()
    except ConfigError as error:  # said again, as an error, by a command that needs settings
        warn(f"warning: {error}")
        return
    for problem in problems:
        warn(f"warning: {problem}")
    for name, value in values.items():
        os.environ.setdefault(name, value)


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
    column_map: tuple[tuple[str, str], ...],
    phone_columns: str | None,
    site_id: int | None,
    account: str | None,
    external_site_id: str | None,
    **values: Any,
) -> ReadOptions:
    given = [
        (column, str(value).strip())
        for column, value in (
            ("site_id", site_id),
            ("account_number", account),
            ("external_site_id", external_site_id),
        )
        if value is not None
    ]
    if len(given) > 1 or any(not value for _, value in given):
        raise click.UsageError(
            "give the file's site once, with one of --site, --account or --external-site-id"
        )
    phones = tuple(h.strip() for h in (phone_columns or "").split(",") if h.strip())
    return ReadOptions(
        column_map=dict(column_map),
        phone_columns=phones,
        site=given[0] if given else None,
        **values,
    )


roster_options = option_group(
    "read",
    _read_options,
    click.option(
        "--sheet",
        metavar="NAME",
        help="Sheet to read (default: 'Contacts', else the first visible sheet).",
    ),
    click.option(
        "--all-sheets",
        is_flag=True,
        help="Read every visible sheet that looks like a roster (one tab per site): a sheet "
        "whose rows have no site column names their site (account number, external site id or "
        "site name).",
    ),
    click.option(
        "--site",
        "site_id",
        type=click.IntRange(1),
        metavar="ID",
        help="Every row of the file is on this site (CHeKT's site_id).",
    ),
    click.option(
        "--account",
        metavar="NUMBER",
        help="Every row of the file is on the site with this account number.",
    ),
    click.option(
        "--external-site-id",
        metavar="ID",
        help="Every row of the file is on the site with this external site id.",
    ),
    click.option(
        "--match-by",
        type=click.Choice(["name"]),
        help="name: rows without an external_contact_id match a contact of their site by "
        "first and last name (several: a conflict); created contacts get a generated id.",
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
    profile: str | None = None
    ca_bundle: str | None = None

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


def profile_options() -> list[Callable[[Any], Any]]:
    """--profile and --ca-bundle: the connection options of the profiles work."""
    return [
        click.option(
            "--profile",
            metavar="NAME",
            help="Use this profile of the settings file (CHEKT_PROFILE; see `profiles`).",
        ),
        click.option(
            "--ca-bundle",
            metavar="FILE",
            help="PEM file of the certificate authorities to trust, e.g. a proxy's that "
            "inspects HTTPS (CHEKT_CA_BUNDLE; else SSL_CERT_FILE).",
        ),
    ]


def connection_settings(connection: Connection) -> Settings:
    """Flag, then environment (with .env beneath it), then the active profile (its secret from
    the keychain), then default; what was corrected is printed as a note."""
    from .errors import ConfigError
    from .profiles import missing_secret_hint, with_profile
    from .settings import resolve_settings

    layered = with_profile(environ(), connection.profile)
    try:
        settings = resolve_settings(
            api_url=connection.api_url,
            token_url=connection.token_url,
            dealer=connection.dealer,
            env=layered.environ,
            require_dealer=False,
            allow_insecure_http=connection.allow_insecure_http or None,
            ca_bundle=connection.ca_bundle,
        )
    except ConfigError as error:
        hint = missing_secret_hint(layered)
        if error.setting == "credentials" and hint and layered.environ.get("CHEKT_CLIENT_ID"):
            raise ConfigError(
                f"profile {layered.profile.name if layered.profile else ''}: no secret; {hint}",
                setting="credentials",
            ) from None
        raise
    for note in settings.notes:
        warn(note)
    return settings


def connection_options(dealer: bool = True):
    """Options of the commands that talk to CHeKT (rollback takes its dealers from the
    journal). Secrets come only from the environment, the keychain or a key file."""
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
        *profile_options(),
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
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="Print nothing on stdout; errors (and what failed, with its files) on stderr.",
        ),
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
    """Settings resolved once (flag, environment, profile, default), and the client."""
    from .client import ChektClient
    from .runlog import RunLog

    settings = connection_settings(connection)
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
    """The roster's problems found while planning; the plan says what becomes of them."""
    from .terminal import validation_text

    if validated.issues:
        echo_lines(validation_text(validated, verbose, verdict=False))


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


# each command's --help ends with its examples and the environment variables it reads

# What the commands that connect to CHeKT read (flags win over them; secrets only from here).
CONNECTION_ENV = (
    ("CHEKT_API_URL", "API base URL (--api-url); default https://api.chekt.com"),
    ("CHEKT_TOKEN_URL", "OAuth token URL (--token-url); default <api-url>/oauth/token"),
    ("CHEKT_DEALER_ID", "dealer id (--dealer), unless the roster has a dealer_id column"),
    ("CHEKT_CLIENT_ID", "client id, with one of:"),
    ("CHEKT_CLIENT_SECRET", "  its secret (never a flag), or"),
    ("CHEKT_PRIVATE_KEY_FILE", "  a PEM key for a signed JWT assertion (CHEKT_KEY_ID,"),
    ("", "  CHEKT_AUDIENCE optional)"),
    ("CHEKT_API_KEY", "or a long-lived API key instead"),
    ("CHEKT_ALLOW_INSECURE_HTTP", "=1: allow http:// to another machine (--allow-insecure-http)"),
    ("CHEKT_PROFILE", "the settings file's profile to use (--profile)"),
    ("CHEKT_CA_BUNDLE", "a CA bundle to trust (--ca-bundle); else SSL_CERT_FILE"),
    ("HTTPS_PROXY, NO_PROXY", "a proxy (read by httpx)"),
)
PROFILE_ENV = (
    ("CHEKT_PROFILE", "the profile, when --profile is not given"),
    ("XDG_CONFIG_HOME", "Linux: the settings file's folder (Windows: %APPDATA%)"),
)
# Where apply and rollback keep their run locks (platformdirs' user state folder).
LOCK_ENV = (("XDG_STATE_HOME", "Linux: the run locks' folder (Windows: %LOCALAPPDATA%)"),)
NO_ENV = "none: nothing is sent anywhere"


def epilog(examples: tuple[str, ...], environment: tuple[tuple[str, str], ...] | str) -> str:
    """The end of a command's --help: examples, then the environment variables it reads (kept
    as written: click does not rewrap a paragraph that starts with \b)."""
    if isinstance(environment, str):
        variables = [f"  {environment}"]
    else:
        width = max(len(name) for name, _ in environment)
        variables = [f"  {name:<{width}}  {what}".rstrip() for name, what in environment]
    return "\n\n".join(
        [
            "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples),
            "\b\nEnvironment:\n" + "\n".join(variables),
        ]
    )


# the commands


@main.command(
    epilog=epilog(
        (
            "bulk-contacts validate roster.xlsx",
            "bulk-contacts validate roster.csv --report problems.xlsx   # an annotated copy",
            'bulk-contacts validate roster.xlsx --map "Cell=phone_number" -q',
        ),
        NO_ENV,
    )
)
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


@main.command(
    epilog=epilog(
        (
            "bulk-contacts template                  # roster.xlsx, here",
            "bulk-contacts template -o header.csv    # a CSV header line",
        ),
        NO_ENV,
    )
)
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


@main.command(
    epilog=epilog(
        (
            "bulk-contacts plan roster.xlsx",
            "bulk-contacts plan roster.xlsx --prune --report plan.html -o plan.json",
            "bulk-contacts plan roster.xlsx --detailed-exitcode -q   # 0 same, 3 changes, 1 errors",
        ),
        CONNECTION_ENV,
    )
)
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
    on_interrupt("nothing was written (plan never writes to CHeKT)")
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


@main.command(
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
    from .apply import RunFiles
    from .outputs import run_outputs

    check_saved_plan_options(target, refresh)
    check_outputs(run_outputs(results, journal, "apply") + connection.outputs(), overwrite, target)
    on_interrupt("nothing was written: no change was sent to CHeKT")
    settings, client, log = open_client(connection)
    check_journal(journal, results, settings.api_url)

    applied: list[Any] = []

    def plan_now() -> Plan:
        if target.suffix.lower() == ".json":
            fresh = load_saved(client, target, refresh, planning, connection)
            applied[:] = fresh.applied
            return fresh.plan
        return make_plan(target, read, planning, connection, client, settings)

    with client, log:
        plan = plan_now()
        if applied and not plan.changes and not plan.refused:
            if not connection.quiet:
                echo(f"already applied: CHeKT holds every change of {target}", "ok")
            return ExitCode.OK
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
                f"Apply {plural(summary['create'], 'create')}, "
                f"{plural(summary['update'], 'update')} and "
                f"{plural(summary['delete'], 'delete')} to CHeKT at {settings.api_url}?",
                yes,
            ):
                return ExitCode.OK
            files = RunFiles.choose(results, journal)
            saved = target.suffix.lower() == ".json"
            again = f"bulk-contacts apply {target}" + (" --refresh" if saved else "")
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


# What a saved plan is applied with: the guards' options may loosen it; the options that made
# it cannot change it.
SAVED_PLAN_LOOSENED_BY = ("force", "allow_empty_sites", "max_deletes")


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
        and param.name not in SAVED_PLAN_LOOSENED_BY
        and ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.COMMANDLINE
    )
    if given:
        raise InputError(
            f"{target} is a saved plan, made with its own roster and plan options: "
            f"{', '.join(given)} cannot change it; make a new plan with them (bulk-contacts "
            f"plan ROSTER {' '.join(given)} ... -o {target}), or apply the roster directly"
        )


def load_saved(
    client: ChektClient, path: Path, refresh: bool, planning: PlanOptions, connection: Connection
) -> Freshness:
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
    if connection.quiet:
        return fresh
    if fresh.applied and (fresh.plan.changes or fresh.plan.refused):
        echo(
            f"{plural(len(fresh.applied), 'site')} already "
            f"{'holds its' if len(fresh.applied) == 1 else 'hold their'} changes (already "
            "applied): " + ", ".join(str(s.site_id) for s in fresh.applied),
            "ok",
        )
    if fresh.stale:
        verb = "re-based on their current contacts" if refresh else "refused"
        echo(
            f"{plural(len(fresh.stale), 'site')} changed since the plan was made, {verb}: "
            + ", ".join(str(s.site_id) for s in fresh.stale),
            "warning",
        )
    return fresh


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
    try:
        if click.confirm(printable(question), default=False):
            return True
    except click.Abort as abort:  # Ctrl-C (exit 130, as documented) or the input closed
        echo()
        echo("Nothing was changed.")
        if isinstance(abort.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        return False
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
        for number in self._signals:
            self._previous[number] = self._signal.signal(number, self._handle)
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
    from .apply import apply_plan
    from .outputs import discard
    from .terminal import run_text

    if replace_results:
        discard(files.results, files.failed_rows)
    on_interrupt(
        f"stopped at once; writes in flight may have been made: run the same command again to "
        f"finish, or `bulk-contacts rollback {files.journal}` to undo what was done"
    )
    with connection.bars() as bars, StopOnInterrupt() as interrupt:
        progress = bars.changes(len(plan.changes))
        report = apply_plan(client, plan, files, progress, interrupt.event, kind, writing.verify)
    on_interrupt("the run had ended; everything it did is written")
    for text, style, err in run_text(report, connection.quiet, kind, again):
        echo(text, style, err)
    return report


@main.command(
    epilog=epilog(
        (
            "bulk-contacts export -o contacts.xlsx",
            "bulk-contacts export -o harbor.csv --account 10-4471",
        ),
        CONNECTION_ENV,
    )
)
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
    on_interrupt(f"nothing was written; {output} was left as it was")
    settings, client, log = open_client(connection)
    if settings.dealer_id is None:
        raise ConfigError("no dealer id: set CHEKT_DEALER_ID", setting="dealer")
    with client, log, connection.bars() as bars:
        found = fetch_export(client, settings.dealer_id, site_ids, accounts, bars)
    with writing_to("-o", output):
        count = write_export(found, output, overwrite)
    if not connection.quiet:
        sites = plural(len(found.sites), "site")
        echo(f"{plural(count, 'contact')} of {sites} written: {output}")


@main.command(
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
    from .outputs import run_outputs
    from .rollback import journal_files as find_journals

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
    from .errors import RunInProgress
    from .lock import hold_journal

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
    from .apply import RunFiles
    from .rollback import (
        check_api_url,
        inverse_plan,
        journal_steps,
        read_journals,
        record_undone,
        settled_steps,
    )
    from .terminal import plan_text

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


@main.command(
    epilog=epilog(
        (
            "bulk-contacts demo",
            "bulk-contacts demo --out demo-files --no-progress",
        ),
        "none: the demo's steps run with the sandbox's settings (CHEKT_* are neither read nor "
        "changed)",
    )
)
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
    echo()
    echo("The same job in a browser (upload, fix, plan, apply, rollback): bulk-contacts serve")
    return ExitCode.OK


def faults(**values: Any) -> Any:
    from .sandbox import Faults

    return Faults(**values)


@main.command(
    epilog=epilog(
        (
            "bulk-contacts sandbox --seed sample_data/sandbox-seed.json",
            "bulk-contacts sandbox --db rehearsal.sqlite --port 8787",
            "bulk-contacts sandbox --error-rate 0.1 --latency-ms 50 --fault-seed 1",
        ),
        (("SANDBOX_CLIENT_SECRET", "the client's secret (--client-secret)"),),
    )
)
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
    help="Seed file loaded into an empty database: JSON (format in the README), or an xlsx "
    "export made by `bulk-contacts export` (its sites and contacts).",
)
@click.option(
    "--clone",
    is_flag=True,
    help="Copy the dealer's sites and contacts from the live API (CHEKT_* settings, read-only) "
    "into the empty database first, ids and all, to rehearse on a faithful copy.",
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
@click.option(
    "--unmarked-replays",
    "mark_replays",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Replay a stored answer without the Idempotency-Replayed header, as some servers do.",
)
def sandbox(dealers: tuple[int, ...], clone: bool, **options: Any) -> None:
    """Run a local emulation of the CHeKT Partner API, kept in SQLite."""
    from .outputs import LINES_SUFFIXES, Output
    from .sandbox import SandboxConfig, serve

    if options["request_log"] is not None:
        check_outputs([Output("--request-log", options["request_log"], LINES_SUFFIXES, "append")])
    if clone and options["seed"] is not None:
        raise click.UsageError("give --seed FILE or --clone, not both")
    preloaded, cloned_dealer = cloned() if clone else (None, None)
    if cloned_dealer is not None and not dealers:
        dealers = (cloned_dealer,)
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

    serve(config, announce, preloaded)


def cloned() -> tuple[Any, int]:
    """`sandbox --clone`: the dealer's sites and contacts read from the API the CHEKT_*
    settings name (lists only), with a progress bar."""
    from .errors import ConfigError
    from .sandbox.clone import clone_seed
    from .settings import resolve_settings
    from .terminal import Bars

    settings = resolve_settings(env=environ())
    if settings.dealer_id is None:
        raise ConfigError("no dealer id: set CHEKT_DEALER_ID", setting="dealer")
    from .client import ChektClient

    with ChektClient(settings) as client, Bars(True) as bars:
        seed = clone_seed(client, settings.dealer_id, bars)
    sites = seed.dealers[0].sites
    count = sum(len(site.contacts) for site in sites)
    echo(
        f"cloned {len(sites)} sites and {count} contacts of dealer {settings.dealer_id} from "
        f"{settings.api_url}"
    )
    return seed, settings.dealer_id


@main.command(
    epilog=epilog(
        (
            "bulk-contacts serve",
            "bulk-contacts serve --port 0 --no-browser   # print the URL, any free port",
        ),
        CONNECTION_ENV + LOCK_ENV,
    )
)
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


# profiles, the keychain and the connection check


@main.command(
    epilog=epilog(
        (
            "bulk-contacts check",
            "bulk-contacts check --profile production",
            "bulk-contacts check --api-url http://127.0.0.1:8787   # a sandbox",
        ),
        CONNECTION_ENV,
    )
)
@connection_options()
def check(connection: Connection) -> ExitCode:
    """Can I work? Reach the API URL (DNS, TCP, TLS), get a token, read the dealer's site list:
    each step with its outcome and time, then the number of sites, the rate limit and the clock
    offset. Exit 0 when every step passes; else the failing step, its likely cause and fix."""
    from .check import clock_note, run_check
    from .client import ChektClient
    from .profiles import active_name

    settings = connection_settings(connection)
    profile = active_name(connection.profile, environ())
    where = f"profile {profile}, " if profile else ""
    echo(f"Checking {settings.api_url} ({where}dealer {settings.dealer_id or 'not set'}):", "bold")
    client = ChektClient(settings, concurrency=1, timeout=10.0)
    with client:
        report = run_check(settings, client)
    for step in report.steps:
        mark, style = ("ok  ", "ok") if step.ok else ("FAIL", "error")
        echo(f"  {mark} {step.name:<10} {step.seconds * 1000:7.0f} ms  {step.detail}", style)
        if step.fix:
            echo(f"       fix: {step.fix}", "warning")
    if not report.ok:
        failed = report.failed
        echo(f"check failed at: {failed.name if failed else '?'}", "error", err=True)
        return ExitCode.FAILED
    echo(f"sites: {report.sites}")
    echo(f"rate limit: {report.rate_limit or 'not advertised (no X-RateLimit-* headers)'}")
    echo(clock_note(report.clock_offset))
    echo("All checks passed.", "done")
    return ExitCode.OK


def profile_option(help: str):
    return click.option("--profile", metavar="NAME", help=help)


def chosen_profile(flag: str | None) -> Any:
    """The profile `login`/`logout` are about: --profile, else CHEKT_PROFILE."""
    from .errors import ConfigError
    from .profiles import active_name, find_profile

    name = active_name(flag, environ())
    if name is None:
        raise ConfigError(
            "which profile? give --profile NAME (or set CHEKT_PROFILE); `bulk-contacts "
            "profiles` lists them",
            setting="profile",
        )
    return find_profile(name)


@main.command(
    epilog=epilog(("bulk-contacts login", "bulk-contacts login --profile production"), PROFILE_ENV)
)
@profile_option("The profile whose secret to store (default: CHEKT_PROFILE).")
def login(profile: str | None) -> ExitCode:
    """Ask for the profile's client secret (or API key), unseen, and keep it in the operating
    system's keychain (Windows Credential Manager, macOS Keychain, Secret Service). Never in
    the settings file. Without a keychain (a headless server), set it in the environment."""
    from .errors import ConfigError
    from .profiles import SECRET_VARIABLE, SECRET_WORDS, keychain_problem, store_secret

    chosen = chosen_profile(profile)
    if chosen.auth not in SECRET_VARIABLE:
        echo(
            f"profile {chosen.name} signs a JWT with its key file ({chosen.private_key_file}): "
            f"there is no secret to store"
        )
        return ExitCode.OK
    variable = SECRET_VARIABLE[chosen.auth]
    problem = keychain_problem()
    if problem:
        raise ConfigError(
            f"{problem}: nothing was stored; set {variable} in the environment (or in a .env "
            f"file in the working folder) instead",
            setting="keychain",
        )
    word = SECRET_WORDS[chosen.auth]
    secret = click.prompt(
        printable(f"{word} for profile {chosen.name}"), hide_input=True, default=""
    )
    if not secret.strip():
        raise ConfigError(f"no {word} given: nothing was stored")
    store_secret(chosen.name, secret.strip())
    echo(f"{word} of profile {chosen.name} stored in the keychain ({keychain_name()})")
    return ExitCode.OK


def keychain_name() -> str:
    import keyring

    return type(keyring.get_keyring()).__module__.rsplit(".", 1)[-1]


@main.command(
    epilog=epilog(
        ("bulk-contacts logout", "bulk-contacts logout --profile production"), PROFILE_ENV
    )
)
@profile_option("The profile whose secret to remove (default: CHEKT_PROFILE).")
def logout(profile: str | None) -> ExitCode:
    """Remove the profile's secret from the keychain."""
    from .profiles import delete_secret

    chosen = chosen_profile(profile)
    if delete_secret(chosen.name):
        echo(f"the secret of profile {chosen.name} was removed from the keychain")
    else:
        echo(f"no secret of profile {chosen.name} was in the keychain")
    return ExitCode.OK


@main.group(
    invoke_without_command=True,
    epilog=epilog(
        (
            "bulk-contacts profiles",
            "bulk-contacts profiles add production --dealer 12345 --client-id abc",
            "bulk-contacts profiles remove production",
        ),
        PROFILE_ENV,
    ),
)
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """List the connection profiles of the settings file (never a secret) and the active one;
    `profiles add` and `profiles remove` change them."""
    if ctx.invoked_subcommand is None:
        list_profiles()


def list_profiles() -> None:
    from .profiles import active_name, keychain_problem, load_profiles, read_secret, settings_path

    path = settings_path()
    found = load_profiles(path)
    env = environ()
    active = active_name(None, env)
    echo(f"settings file: {path}{'' if path.exists() else ' (not written yet)'}")
    if not found:
        echo("no profiles yet: bulk-contacts profiles add NAME --api-url URL --dealer ID ...")
    no_keychain = keychain_problem()
    for name, profile in sorted(found.items()):
        values = ", ".join(f"{k}={v}" for k, v in profile.values().items())
        if profile.auth == "private_key_jwt":
            secret = "key file"
        elif no_keychain:
            secret = "secret: environment only (no keychain)"
        else:
            secret = "secret in keychain" if read_secret(name) else "no secret stored"
        echo(f"{'*' if name == active else ' '} {name}: {values} ({secret})")
    if active:
        source = "CHEKT_PROFILE"
        missing = "" if active in found else " (no such profile!)"
        echo(f"active: {active} (from {source}){missing}; --profile NAME picks another")
    else:
        echo("active: none (CHEKT_* variables and defaults); --profile NAME or CHEKT_PROFILE")


@profiles.command("add")
@click.argument("name")
@click.option("--api-url", metavar="URL", help="API base URL.")
@click.option("--token-url", metavar="URL", help="OAuth token URL (default <api-url>/oauth/token).")
@click.option("--dealer", metavar="ID", help="Dealer id.")
@click.option("--client-id", metavar="ID", help="OAuth client id.")
@click.option(
    "--auth",
    type=click.Choice(["client_secret", "private_key_jwt", "api_key"]),
    help="How the tool proves who it is (default client_secret).",
)
@click.option(
    "--private-key-file",
    metavar="FILE",
    help="PEM private key, for --auth private_key_jwt (a path: the key stays in its file).",
)
def profiles_add(name: str, **given: str | None) -> ExitCode:
    """Write profile NAME (a new one, or the given settings of an existing one). Its secret:
    `bulk-contacts login --profile NAME`."""
    import dataclasses as dc

    from .errors import ConfigError
    from .profiles import Profile, check_name, load_profiles, save_profiles
    from .settings import _clean_url, _dealer

    check_name(name)
    values = {k: v.strip() for k, v in given.items() if v is not None and v.strip()}
    for key in ("api_url", "token_url"):
        if key in values:
            values[key] = _clean_url(values[key], key)
    if "dealer" in values:
        _dealer(values["dealer"], True)
    found = load_profiles()
    existing = found.get(name)
    profile = dc.replace(existing, **values) if existing else Profile(name, **values)
    if profile.auth == "private_key_jwt" and not profile.private_key_file:
        raise ConfigError("--auth private_key_jwt needs --private-key-file FILE")
    path = save_profiles({**found, name: profile})
    echo(f"profile {name} {'updated' if existing else 'added'} in {path}")
    if profile.auth != "private_key_jwt" and not existing:
        echo(f"store its secret with: bulk-contacts login --profile {name}")
    return ExitCode.OK


@profiles.command("remove")
@click.argument("name")
def profiles_remove(name: str) -> ExitCode:
    """Remove profile NAME from the settings file, and its secret from the keychain."""
    import contextlib as cl

    from .errors import ConfigError
    from .profiles import delete_secret, find_profile, load_profiles, save_profiles

    find_profile(name)
    found = load_profiles()
    del found[name]
    path = save_profiles(found)
    removed = False
    with cl.suppress(ConfigError):  # no keychain: there was nothing in it
        removed = delete_secret(name)
    echo(f"profile {name} removed from {path}" + (" (and its secret)" if removed else ""))
    return ExitCode.OK
