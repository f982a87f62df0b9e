"""`export`: the dealer's contacts in the roster layout, to review in Excel and import back.

The xlsx export is written by xlsxwriter in constant memory: every value a text cell (so ids and
phone numbers stay exactly as they are, and nothing is ever a formula), a styled frozen header,
an autofilter, a Sites sheet, and a hidden sheet holding the snapshot the export was made from.
Importing an edited export is then a three-way merge (see `reconcile`): only what the reviewer
changed is sent.

The csv export is UTF-8 with a BOM (so Excel shows accents), through the tool's one formula-safe
CSV writer (`outputs.CsvWriter`): a value a spreadsheet would run as a formula gets a leading
apostrophe, which spreadsheets show as text and the reader takes off again. Either file is
written to a temporary name and renamed into place (`outputs.replacing`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from .client import ChektClient
from .columns import BY_NAME, CONTACT_FIELDS, EDITABLE_FIELDS, EXPORT_COLUMNS
from .errors import InputError
from .fetch import fetch_contacts
from .models import Contact, Site, format_timestamp
from .outputs import (
    SHEET_SUFFIXES,
    json_value,
    replacing,
    write_csv,
    written_workbook,
)
from .roster import SNAPSHOT_FORMAT
from .spreadsheet import SNAPSHOT_SHEET

SNAPSHOT_COLUMNS = ("contact_id", *CONTACT_FIELDS)
SNAPSHOT_CELL = 30_000  # characters of JSON per cell (an Excel cell holds 32,767)


@dataclass
class Export:
    dealer_id: int
    sites: list[Site]
    contacts: dict[int, list[Contact]]  # by site_id
    created_at: str

    def rows(self) -> list[dict[str, str]]:
        """One row per contact, sites in order, as the export writes them (EXPORT_COLUMNS)."""
        return [
            _row(site, contact)
            for site in self.sites
            for contact in sorted(
                self.contacts.get(site.site_id, []),
                key=lambda c: (c.external_contact_id or "~", c.contact_id),
            )
        ]


def _row(site: Site, contact: Contact) -> dict[str, str]:
    # The editable fields as they compare (trimmed): a name CHeKT holds as "Ann\r\n" is
    # written "Ann", not "Ann\x0d\x0a", which would import back as a change to that text.
    values = {
        name: (getattr(contact, name) or "").strip()
        if name in EDITABLE_FIELDS
        else getattr(contact, name) or ""
        for name in CONTACT_FIELDS
    }
    return {
        "site_id": str(site.site_id),
        "account_number": site.account_number or "",
        "external_site_id": site.external_site_id or "",
        "site_name": site.name or "",
        "contact_id": str(contact.contact_id),
        "action": "",
        "created_at": format_timestamp(contact.created_at),
        **values,
    }


def fetch_export(
    client: ChektClient,
    dealer_id: int,
    site_ids: tuple[int, ...] = (),
    accounts: tuple[str, ...] = (),
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Export:
    """Every site of the dealer, or those named by id or account number; their contacts."""
    sites = client.list_sites(dealer_id)
    if site_ids or accounts:
        known_ids = {s.site_id for s in sites}
        known_accounts = {s.account_number for s in sites}
        missing = [str(i) for i in site_ids if i not in known_ids] + [
            a for a in accounts if a not in known_accounts
        ]
        if missing:
            raise InputError(f"dealer {dealer_id} has no site {', '.join(missing)}")
        sites = [s for s in sites if s.site_id in site_ids or s.account_number in accounts]
    advance = progress("sites", len(sites)) if progress else None
    found = fetch_contacts(client, [(dealer_id, s.site_id) for s in sites], advance)
    return Export(
        dealer_id,
        sites,
        {site: c for (_, site), c in found.items()},
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def write_export(export: Export, path: Path, overwrite: bool = False) -> int:
    """Write it by suffix; returns the number of contacts. An existing file is replaced only
    with `overwrite` (else OutputExists, the file untouched)."""
    suffix = path.suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        raise InputError(f"-o {path}: an export is .xlsx or .csv")
    rows = export.rows()
    if suffix == ".csv":
        values = ([row[name] for name in EXPORT_COLUMNS] for row in rows)
        write_csv(path, EXPORT_COLUMNS, values, overwrite)
    else:
        with replacing(path, overwrite) as temporary:
            _write_xlsx(export, rows, temporary)
    return len(rows)


def _write_xlsx(export: Export, rows: list[dict[str, str]], path: Path) -> None:
    with written_workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    ) as workbook:
        workbook.set_properties(
            {
                "title": f"CHeKT contacts of dealer {export.dealer_id}",
                "comments": f"exported by bulk-contacts {export.created_at}",
            }
        )
        header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        text = workbook.add_format({"num_format": "@"})
        sheet = workbook.add_worksheet("Contacts")
        for col, name in enumerate(EXPORT_COLUMNS):
            sheet.set_column(col, col, BY_NAME[name].width, text)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, max(1, len(rows)), len(EXPORT_COLUMNS) - 1)
        sheet.write_row(0, 0, EXPORT_COLUMNS, header)
        for line, row in enumerate(rows, start=1):
            for col, name in enumerate(EXPORT_COLUMNS):
                if row[name]:
                    sheet.write_string(line, col, row[name], text)
        _sites_sheet(workbook, export, header)
        _snapshot_sheet(workbook, export)


def _sites_sheet(workbook: xlsxwriter.Workbook, export: Export, header) -> None:
    sheet = workbook.add_worksheet("Sites")
    columns = ("site_id", "account_number", "external_site_id", "name", "timezone", "contacts")
    sheet.write_row(0, 0, columns, header)
    for line, site in enumerate(export.sites, start=1):
        values = (
            str(site.site_id),
            site.account_number or "",
            site.external_site_id or "",
            site.name or "",
            site.timezone or "",
        )
        for col, value in enumerate(values):
            sheet.write_string(line, col, value)
        sheet.write_number(line, 5, len(export.contacts.get(site.site_id, [])))
    sheet.set_column(0, 4, 18)
    sheet.set_column(3, 3, 32)


def _snapshot_sheet(workbook: xlsxwriter.Workbook, export: Export) -> None:
    """What CHeKT held when the export was made, for the three-way merge on import: a marker
    row, a header, then the contacts as JSON arrays, packed into cells of up to 30,000
    characters (an Excel cell holds 32,767): machine data, written and read in one go."""
    # machine data, read back exactly: a plain worksheet (the others write text visibly)
    sheet = workbook.add_worksheet(SNAPSHOT_SHEET, worksheet_class=Worksheet)
    sheet.write_row(0, 0, (SNAPSHOT_FORMAT, export.created_at, str(export.dealer_id)))
    sheet.write_string(1, 0, json.dumps(SNAPSHOT_COLUMNS))
    chunk: list[str] = []
    line, size = 2, 0
    for site in export.sites:
        for contact in export.contacts.get(site.site_id, []):
            item = json_value([getattr(contact, c) for c in SNAPSHOT_COLUMNS])
            if size + len(item) > SNAPSHOT_CELL and chunk:
                sheet.write_string(line, 0, "[" + ",".join(chunk) + "]")
                line, chunk, size = line + 1, [], 0
            chunk.append(item)
            size += len(item) + 1
    if chunk:
        sheet.write_string(line, 0, "[" + ",".join(chunk) + "]")
    sheet.hide()
