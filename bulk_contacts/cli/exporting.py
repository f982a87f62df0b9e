"""export: the dealer's contacts in the roster layout."""

from __future__ import annotations

from pathlib import Path

import click

from ..words import plural
from .common import (
    CONNECTION_ENV,
    check_outputs,
    echo,
    epilog,
    on_interrupt,
    open_client,
    writing_to,
)
from .options import Connection, connection_options, overwrite_option


@click.command(
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
    from ..export import fetch_export, write_export
    from ..outputs import SHEET_SUFFIXES, Output

    check_outputs([Output("-o", output, SHEET_SUFFIXES), *connection.outputs()], overwrite)
    on_interrupt(f"nothing was written; {output} was left as it was")
    settings, client, log = open_client(connection)
    dealer = settings.required_dealer()
    with client, log, connection.bars() as bars:
        found = fetch_export(client, dealer, site_ids, accounts, bars)
    with writing_to("-o", output):
        count = write_export(found, output, overwrite)
    if not connection.quiet:
        sites = plural(len(found.sites), "site")
        echo(f"{plural(count, 'contact')} of {sites} written: {output}")
