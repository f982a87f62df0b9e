"""The command line: parses options, calls the library, prints, and chooses exit codes.

Only this module imports click and prints; everything it runs is a library call a script can make.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .sandbox import config as sandbox_defaults

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulk-contacts")
def main() -> None:
    """Move site-contact rosters between spreadsheets and the CHeKT Partner API, safely."""


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
