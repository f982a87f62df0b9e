"""The command line: parses options, calls the library, prints, and chooses exit codes.

Only this module imports click and prints; everything it runs is a library call a script can make.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .sandbox import config as sandbox_defaults

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
STYLES = {
    "error": {"fg": "red"},
    "warning": {"fg": "yellow"},
    "ok": {"fg": "green"},
    "dim": {"dim": True},
}


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def echo_lines(lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        click.secho(text, **STYLES.get(style, {}))


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
        ]
    ):
        command = option(command)
    return command


def load_roster(
    path: Path, sheet: str | None, column_map: tuple[str, ...], region: str, phone_format: str
):
    """Read and validate; an unreadable file is exit 2 with the reason.

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
        from .schema import validate_roster

        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            fail(
                f"--region {region!r} is not a region code; use a two-letter code such as US, "
                f"CA, GB or DE"
            )
        try:
            roster = roster_from_cells(reading.result(), mapping)
        except InputError as error:
            fail(str(error))
    return validate_roster(roster, region, phone_format)


def run() -> None:
    """The console script."""
    try:
        main()
    finally:
        # Exit without the interpreter's last garbage collection over everything the command
        # built (about 0.4 s after a 100,000-row roster): the OS takes the memory back, and
        # every file the command writes is closed before this point.
        gc.freeze()


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
def validate(roster: Path, sheet, column_map, region, phone_format, reports, quiet, verbose):
    """Check a roster offline: every row, every problem, nothing sent anywhere.

    Exit code 0: valid (warnings allowed); 1: invalid rows; 2: unreadable file or bad usage.
    """
    from .errors import InputError
    from .terminal import validation_text
    from .validation_report import write_validation_report

    result = load_roster(roster, sheet, column_map, region, phone_format)
    for report in reports:
        try:
            write_validation_report(result, report)
        except (InputError, OSError) as error:
            fail(str(error))
    if not quiet:
        echo_lines(validation_text(result, verbose))
        for report in reports:
            click.echo(f"report written: {report}")
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
def template(output: Path) -> None:
    """Write an empty roster to fill in (a Contacts sheet formatted for the job, and
    instructions)."""
    from .errors import InputError
    from .template import write_template

    try:
        write_template(output)
    except (InputError, OSError) as error:
        fail(str(error))
    click.echo(f"template written: {output}")


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
    help="That client's secret (a rehearsal value; default sandbox-secret).",
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
    from .sandbox import Faults, SandboxConfig, SandboxError, SeedError, serve

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

    def announce(url: str) -> None:
        secret = (
            "sandbox-secret (the default)"
            if config.client_secret == sandbox_defaults.DEFAULT_CLIENT_SECRET
            else "as given with --client-secret"
        )
        click.echo(f"CHeKT sandbox listening on {url}")
        click.echo(f"  token URL:     {url}/oauth/token")
        click.echo(f"  client id:     {config.client_id}")
        click.echo(f"  client secret: {secret}")
        click.echo(f"  dealer(s):     {', '.join(str(d) for d in config.dealers)}")
        click.echo(f"  database:      {config.db or 'in memory'}")
        click.echo("Press Ctrl-C to stop.", err=False)

    try:
        serve(config, announce)
    except (SandboxError, SeedError) as error:
        fail(str(error))
