"""`template`: an empty roster to fill in, as .xlsx (formatted for the job) or .csv."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .columns import BY_NAME, TEMPLATE_COLUMNS
from .errors import InputError
from .outputs import SHEET_SUFFIXES, replacing, write_csv, written_workbook

INSTRUCTIONS = [
    "How to fill in this roster",
    "",
    "One row per contact, on the Contacts sheet. Keep the header row as it is.",
    "Name the site on every row: account_number, external_site_id or site_id.",
    "external_contact_id is your own id for the person and must be unique on its site.",
    "Phone numbers without a country code are read for the default region (US unless you say "
    "--region). Id and phone columns are text, so leading zeros and long numbers are kept.",
    "action: leave blank (or upsert) to create or update; delete to remove the contact.",
    "Contacts already on a site but not in this file are kept, unless you plan with --prune.",
    "",
    "Then:  bulk-contacts validate roster.xlsx   (offline checks)",
    "       bulk-contacts plan roster.xlsx       (what would change in CHeKT)",
    "       bulk-contacts apply roster.xlsx      (make the changes, after confirming)",
]
# Fixed so that the file written is always byte-for-byte the same (templates/ holds a copy).
CREATED = datetime(2026, 1, 1)


def write_template(path: Path, overwrite: bool = False) -> None:
    """Write it by suffix; an existing file (a filled roster, perhaps) is replaced only with
    `overwrite`."""
    suffix = path.suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        raise InputError(f"{path}: a template is .xlsx or .csv")
    if suffix == ".csv":
        write_csv(path, TEMPLATE_COLUMNS, [], overwrite)
    else:
        with replacing(path, overwrite) as temporary:
            _write_xlsx(temporary)


def _write_xlsx(path: Path) -> None:
    with written_workbook(path, visible=False) as workbook:
        workbook.set_properties({"title": "bulk-contacts roster", "created": CREATED})
        header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        text = workbook.add_format({"num_format": "@"})
        sheet = workbook.add_worksheet("Contacts")
        for col, name in enumerate(TEMPLATE_COLUMNS):
            column = BY_NAME[name]
            sheet.write_string(0, col, name, header)
            sheet.write_comment(0, col, column.note, {"x_scale": 2, "y_scale": 1.5})
            sheet.set_column(col, col, column.width, text if column.text_format else None)
        action = TEMPLATE_COLUMNS.index("action")
        sheet.data_validation(
            1,
            action,
            100_000,
            action,
            {
                "validate": "list",
                "source": ["upsert", "delete"],
                "input_title": "action",
                "input_message": "upsert (or blank) or delete",
            },
        )
        sheet.freeze_panes(1, 0)
        guide = workbook.add_worksheet("Instructions")
        bold = workbook.add_format({"bold": True, "font_size": 13})
        guide.set_column(0, 0, 110)
        for row, line in enumerate(INSTRUCTIONS):
            guide.write_string(row, 0, line, bold if row == 0 else None)
