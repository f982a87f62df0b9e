"""Rehearsing on your own sites: a sandbox seeded from an xlsx export (`sandbox --seed
export.xlsx`), or cloned from the live API (`sandbox --clone`: the dealer's sites and contacts,
read-only, with the usual credentials).

Both give a `Seed`, loaded like a JSON seed file into an empty database: ids, timestamps and
every field are kept, so a plan against the sandbox is the plan against CHeKT.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BulkContactsError, SeedError
from .seed import Seed, SeedContact, SeedDealer, SeedSite

if TYPE_CHECKING:
    from ..client import ChektClient

__all__ = ["clone_seed", "is_workbook", "seed_from_export"]

SITE_SHEET_COLUMNS = ("site_id", "account_number", "external_site_id", "name", "timezone")


def is_workbook(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def seed_from_export(path: Path) -> Seed:
    """The sites and contacts an xlsx export holds: its Sites sheet, and its Contacts sheet as
    the file now has it (edited or not); the dealer from its snapshot sheet."""
    from ..columns import EXPORT_COLUMNS
    from ..spreadsheet import cell_text, read_cells

    try:
        contacts = read_cells(path, "Contacts")
        sites = read_cells(path, "Sites")
    except BulkContactsError as error:
        raise SeedError(
            f"seed file {path}: not an xlsx export made by `bulk-contacts export` ({error})"
        ) from None
    marker = (contacts.snapshot or [[]])[0]
    if len(marker) < 3 or not str(cell_text(marker[2])).isdigit():
        raise SeedError(
            f"seed file {path}: not an xlsx export made by `bulk-contacts export` (it has no "
            f"snapshot sheet naming its dealer); export again, or give a JSON seed"
        )
    dealer_id = int(cell_text(marker[2]))
    site_rows = _records(path, sites.rows, SITE_SHEET_COLUMNS, "Sites")
    contact_rows = _records(path, contacts.rows, EXPORT_COLUMNS, "Contacts")
    by_site: dict[str, list[dict[str, Any]]] = {}
    known = {row["site_id"] for _, row in site_rows}
    for line, row in contact_rows:
        if row["site_id"] not in known:
            raise SeedError(
                f"seed file {path}: sheet Contacts row {line}: site_id {row['site_id']!r} is not "
                f"on the Sites sheet"
            )
        fields = {
            name: row[name] or None
            for name in (
                "contact_id",
                "external_contact_id",
                "first_name",
                "last_name",
                "phone_number",
                "email",
                "created_at",
            )
        }
        by_site.setdefault(row["site_id"], []).append(
            {k: int(v) if k == "contact_id" and v else v for k, v in fields.items()}
        )
    data = {
        "dealers": [
            {
                "dealer_id": dealer_id,
                "sites": [
                    {
                        "site_id": int(row["site_id"]),
                        **{
                            name: row[name] or None
                            for name in SITE_SHEET_COLUMNS
                            if name != "site_id"
                        },
                        "contacts": by_site.get(row["site_id"], []),
                    }
                    for _, row in site_rows
                ],
            }
        ]
    }
    from pydantic import ValidationError

    try:
        return Seed.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise SeedError(f"seed file {path}: {where.lstrip('.')}: {first['msg']}") from None


def _records(
    path: Path, rows: list[list[Any]], columns: tuple[str, ...], sheet: str
) -> list[tuple[int, dict[str, str]]]:
    from ..spreadsheet import cell_text

    if not rows:
        raise SeedError(f"seed file {path}: sheet {sheet} is empty")
    header = [str(cell_text(cell)).strip() for cell in rows[0]]
    missing = [name for name in columns if name not in header]
    if missing:
        raise SeedError(
            f"seed file {path}: sheet {sheet} has no column {', '.join(missing)}: not an export "
            f"made by `bulk-contacts export`"
        )
    found = []
    for line, row in enumerate(rows[1:], start=2):
        values = {name: cell_text(row[header.index(name)]).strip() for name in columns}
        if any(values.values()):
            if not values.get("site_id", "").isdigit():
                raise SeedError(f"seed file {path}: sheet {sheet} row {line}: no site_id")
            found.append((line, values))
    return found


def clone_seed(
    client: ChektClient,
    dealer_id: int,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Seed:
    """The dealer's sites and contacts as CHeKT holds them, read through the client (lists
    only: nothing is written), every field and id kept."""
    from ..fetch import fetch_contacts, fetch_sites
    from ..models import format_timestamp

    sites = fetch_sites(client, [dealer_id])[dealer_id]
    advance = progress("sites", len(sites)) if progress else None
    contacts = fetch_contacts(client, [(dealer_id, s.site_id) for s in sites], advance)
    seeded = []
    for site in sites:
        people = [
            SeedContact.model_construct(
                contact_id=c.contact_id,
                external_contact_id=c.external_contact_id,
                first_name=c.first_name,
                last_name=c.last_name,
                phone_number=c.phone_number,
                email=c.email,
                created_at=format_timestamp(c.created_at) or None,
            )
            for c in contacts[(dealer_id, site.site_id)]
        ]
        seeded.append(
            SeedSite.model_construct(
                site_id=site.site_id,
                external_site_id=site.external_site_id,
                name=site.name,
                account_number=site.account_number,
                timezone=site.timezone,
                monitoring_station_id=site.monitoring_station_id,
                external_monitoring_station_id=site.external_monitoring_station_id,
                address1=site.address1,
                address2=site.address2,
                is_activated=int(site.is_activated),
                created_at=format_timestamp(site.created_at) or None,
                contacts=people,
            )
        )
    return Seed.model_construct(
        dealers=[SeedDealer.model_construct(dealer_id=dealer_id, sites=seeded)]
    )
