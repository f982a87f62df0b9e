"""The options, declared once and delivered to a command as one typed value each: the roster's
(`ReadOptions`), the plan's (`PlanOptions`), the connection's (`Connection`) and the writing
commands' (`Writing`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..pipeline import ReadOptions
from ..plan import PlanOptions

if TYPE_CHECKING:
    from ..outputs import Output
    from ..terminal import Bars

T = TypeVar("T")


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
        help="Compare external ids exactly: 42 and 0042, or hd-001 and HD-001, are different "
        "people (by default, ids equal once a spreadsheet's damage or look-alike characters are "
        "undone are one id).",
    ),
    click.option(
        "--repair-ids",
        is_flag=True,
        help="Use an account number, external site id or external contact id that matches "
        "exactly one only once repaired (1234 for 001234, HD-001 for hd-001), with a warning.",
    ),
)


DEFAULT_TIMEOUT = 30.0  # seconds to wait for each answer (--timeout)


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
    timeout: float = DEFAULT_TIMEOUT

    def bars(self) -> Bars:
        from ..terminal import Bars

        return Bars(not self.no_progress and not self.quiet)

    def outputs(self) -> list[Output]:
        """--log-file, when given: appended to."""
        from ..outputs import LINES_SUFFIXES, Output

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
            "--timeout",
            type=click.FloatRange(min=1.0, max=600.0),
            default=DEFAULT_TIMEOUT,
            show_default=True,
            metavar="SECONDS",
            help="How long to wait for each answer. A write a stopped run left unanswered may "
            "still land until then: a rollback of its journal waits for that.",
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
        help="When another run on this machine writes to the same dealer through the same API "
        "URL, wait for it to end (then plan again) instead of warning and going on.",
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


def profile_option(help: str):
    return click.option("--profile", metavar="NAME", help=help)
