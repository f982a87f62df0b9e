"""Rehearsing on your own sites: a sandbox seeded from an xlsx export (`sandbox --seed
export.xlsx`), or cloned from the live API (`sandbox --clone`: the dealer's sites and contacts,
read-only, with the usual credentials).

Both give a `Seed`, loaded like a JSON seed file into an empty database: ids, timestamps and
every field are kept, so a plan against the sandbox is the plan against CHeKT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..columns import CONTACT_FIELDS, EXPORT_COLUMNS
from ..errors import BulkContactsError, SeedError
from ..models import Contact, Site, format_timestamp
from .seed import Seed, SeedContact, SeedDealer, SeedSite

if TYPE_CHECKING:
    from ..client import ChektClient

__all__ = ["clone_seed", "is_workbook", "seed_from_export"]

SITE_SHEET_COLUMNS = ("site_id", "account_number", "external_site_id", "name", "timezone")
# What an export's Contacts sheet gives a seeded contact: CHeKT's id, its fields, its creation.
SEED_CONTACT_COLUMNS = ("contact_id", *CONTACT_FIELDS, "created_at")


def is_workbook(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def seed_from_export(path: Path) -> Seed:
    """The sites and contacts an xlsx export holds: its Sites sheet, and its Contacts sheet as
    the file now has it (edited or not); the dealer from its snapshot sheet."""
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
        fields = {name: row[name] or None for name in SEED_CONTACT_COLUMNS}
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

    sites = fetch_sites(client, [dealer_id])[dealer_id]
    advance = progress("sites", len(sites)) if progress else None
    contacts = fetch_contacts(client, [(dealer_id, s.site_id) for s in sites], advance)
    seeded = [_seed_site(site, contacts[(dealer_id, site.site_id)]) for site in sites]
    return Seed.model_construct(
        dealers=[SeedDealer.model_construct(dealer_id=dealer_id, sites=seeded)]
    )


def _seed_site(site: Site, contacts: list[Contact]) -> SeedSite:
    """A site as the seed keeps it: every field of the model, its contacts with theirs."""
    values = {
        **asdict(site),
        "is_activated": int(site.is_activated),
        "created_at": format_timestamp(site.created_at) or None,
    }
    people = [SeedContact.model_construct(**_seed_contact(contact)) for contact in contacts]
    return SeedSite.model_construct(**values, contacts=people)


def _seed_contact(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.contact_id,
        **contact.fields(),
        "created_at": format_timestamp(contact.created_at) or None,
    }
