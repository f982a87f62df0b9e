"""What a workbook's cells hold that the user does not see as such: numbers a spreadsheet rounded
(a long number shown as 1.23457E+12, saved as CSV, then as .xlsx), hidden sheets, hidden rows
and columns. Each file is written as Excel would write it (openpyxl)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from bulk_contacts.models import Contact
from bulk_contacts.reconcile import PlanOptions, reconcile, resolve_sites
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster

from .planning import DEALER, Model

HEADER = ["Site ID", "External Contact ID", "First Name", "Last Name", "Phone"]
LONG = Contact(11, "Long", "Id", "1234567890123", "+12025550301")
KEPT = Contact(12, "Kim", "Keep", "HD-001", "+12025550143")


def workbook(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for row in [header, *rows]:
        sheet.append(row)
    book.save(path)
    return path


def plan_of(path: Path, contacts: list[Contact], **options):
    validated = validate_roster(read_roster(path))
    model = Model({101: contacts})
    settings = PlanOptions(dealer_id=DEALER, **{"allow_unreachable": True, **options})
    placement, issues = resolve_sites(validated, model.sites, DEALER)
    sites = {(DEALER, s.site_id): s for s in model.sites[DEALER]}
    return validated, reconcile(validated, placement, sites, model.state(), settings, issues)


# F0: numbers a spreadsheet rounded


def test_a_rounded_number_id_is_damaged_never_a_create_nor_a_prune(tmp_path) -> None:
    path = workbook(
        tmp_path / "ids.xlsx",
        [[101, 1234570000000, "Long", "Id", "+12025550301"], [101, "HD-001", "Kim", "Keep", ""]],
    )
    validated, plan = plan_of(path, [LONG, KEPT], prune=True)
    assert validated.rows.at[2, "external_contact_id"] == "1.23457E+12"
    [warning] = [i for i in validated.issues if i.code == "id_scientific"]
    assert "1234570000000" in warning.message and "rounded" in warning.message
    assert not plan.creates and not plan.deletes
    conflicts = [c for c in plan.conflicts if c.row == 2]
    assert conflicts and "1234567890123" in conflicts[0].message, plan.conflicts


def test_an_id_a_spreadsheet_turned_into_a_date_is_an_error_never_a_create_nor_a_prune(
    tmp_path,
) -> None:
    """QA (inputs): Excel turns an id typed as `1-2` (or `MAR1`) into a date cell. It was read
    as `2026-01-02` without a word: with --skip-invalid --prune, a create under that id and a
    delete of the real contact `1-2`. A date cell in an id column is `id_date` (the id is lost:
    the row is invalid and, like a row without an id, protects the contacts its name names)."""
    import datetime

    real = Contact(13, "Ann", "Lee", "1-2", "+12025550144")
    path = workbook(
        tmp_path / "dates.xlsx",
        [
            [101, datetime.datetime(2026, 1, 2), "Ann", "Lee", "+12025550144"],
            [101, "HD-001", "Kim", "Keep", "+12025550143"],
        ],
    )
    validated, plan = plan_of(path, [real, KEPT], prune=True, skip_invalid=True)
    [issue] = [i for i in validated.issues if i.row == 2 and i.severity == "error"]
    assert issue.code == "id_date" and issue.field == "external_contact_id"
    assert "2026-01-02" in issue.message and "Text" in issue.message
    assert validated.invalid_rows == {2}
    assert not plan.creates and not plan.deletes, (plan.creates, plan.deletes)
    account = workbook(
        tmp_path / "account.xlsx",
        [[datetime.datetime(2026, 3, 1), "HD-001", "Kim", "Keep", "+12025550143"]],
        header=["Account Number", *HEADER[1:]],
    )
    [issue] = [i for i in validate_roster(read_roster(account)).issues if i.severity == "error"]
    assert issue.code == "id_date" and issue.field == "account_number"


@pytest.mark.parametrize("value", [12025600000, 2025560000, 2025560000.0])
def test_a_rounded_number_phone_is_phone_scientific(tmp_path, value) -> None:
    path = workbook(tmp_path / "phones.xlsx", [[101, "HD-001", "Kim", "Keep", value]])
    validated = validate_roster(read_roster(path))
    [issue] = [i for i in validated.issues if i.field == "phone_number"]
    assert issue.code == "phone_scientific" and issue.severity == "error"
    assert str(int(value)) in issue.message and "rounded" in issue.message
    assert "Text" in issue.message and f"'{int(value)}" in issue.message  # how to type a real one
    assert validated.rows.at[2, "phone_number"] == ""


@pytest.mark.parametrize(
    "value",
    [2025550143, 12025550143, 1234567, 42, 1200000, "12025600000", "1234570000000"],
)
def test_numbers_with_their_digits_and_text_cells_are_read_as_they_are(tmp_path, value) -> None:
    """Only a number cell of at least 8 digits and at most 6 significant ones is rounded: a
    phone of its own digits, a short id, and any text cell are read as written."""
    path = workbook(tmp_path / "fine.xlsx", [[101, value, "Kim", "Keep", value]])
    roster = read_roster(path)
    assert roster.frame.at[2, "external_contact_id"] == str(value)
    assert roster.frame.at[2, "phone_number"] == str(value)


def test_a_rounded_site_id_is_not_numeric_and_a_contact_id_keeps_its_digits(tmp_path) -> None:
    path = workbook(
        tmp_path / "site.xlsx",
        [[123400000, "HD-001", "Kim", "Keep", "+12025550143", 20000000]],
        [*HEADER, "Contact ID"],
    )
    validated = validate_roster(read_roster(path))
    [issue] = validated.errors
    assert issue.code == "not_numeric" and issue.field == "site_id"
    assert "123400000" in issue.message and "rounded" in issue.message
    assert validated.rows.at[2, "contact_id"] == "20000000"


def test_a_rounded_number_in_a_free_text_column_is_left_alone(tmp_path) -> None:
    path = workbook(tmp_path / "names.xlsx", [[101, "HD-001", 12000000, "Keep", "+12025550143"]])
    roster = read_roster(path)
    assert roster.frame.at[2, "first_name"] == "12000000"


def test_a_rounded_number_on_another_tab_is_named_with_all_sheets(tmp_path) -> None:
    from bulk_contacts.pipeline import ReadOptions, load_validated

    book = openpyxl.Workbook()
    first = book.active
    first.title = "North"
    second = book.create_sheet("South")
    first.append(["External Contact ID", "First Name", "Last Name", "Phone"])
    first.append(["N-1", "Ann", "Lee", "+12025550143"])
    second.append(["External Contact ID", "First Name", "Last Name", "Phone"])
    second.append([1234570000000, "Bob", "Ng", 2025560000])
    book.save(path := tmp_path / "tabs.xlsx")
    validated = load_validated(path, ReadOptions(all_sheets=True))
    codes = sorted((i.code, i.field) for i in validated.issues if i.row and i.row > 2)
    assert ("id_scientific", "external_contact_id") in codes
    assert ("phone_scientific", "phone_number") in codes


# F2: hidden sheets


def tabs(path: Path, sheets: dict[str, list[list[object]]], states: dict[str, str]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        sheet.sheet_state = states.get(name, "visible")
    book.active = next(i for i, name in enumerate(sheets) if name not in states)
    book.save(path)
    return path


ROSTER_HEADER = ["Account #", "External Contact ID", "First Name", "Last Name", "Phone"]
ONE = ["10-4471", "HD-001", "John", "Doe", "+12025550143"]
TWO = ["10-4471", "HD-002", "Maria", "Alvarez", "+12025550100"]


def validate_cli(*args: str):
    from click.testing import CliRunner

    from bulk_contacts.cli import main

    return CliRunner().invoke(main, ["validate", *args])


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_contacts_sheet_is_never_chosen(tmp_path, state) -> None:
    path = tabs(
        tmp_path / "hidden.xlsx",
        {"Contacts": [ROSTER_HEADER, ONE], "Roster 2026": [ROSTER_HEADER, ONE, TWO]},
        {"Contacts": state},
    )
    result = validate_cli(str(path))
    assert result.exit_code == 0, result.output
    assert "read as sheet Roster 2026" in result.output and "2 contact rows" in result.output
    assert "other_sheets" not in result.output and "warning hidden_sheet" not in result.output
    every = validate_cli(str(path), "--all-sheets")
    assert "read as sheets Roster 2026\n" in every.output and "Contacts" not in every.output


def test_a_hidden_sheet_named_by_sheet_is_read_with_a_warning(tmp_path) -> None:
    path = tabs(
        tmp_path / "hidden.xlsx",
        {"Roster 2026": [ROSTER_HEADER, ONE, TWO], "Old": [ROSTER_HEADER, ONE]},
        {"Old": "hidden"},
    )
    result = validate_cli(str(path), "--sheet", "old")
    assert result.exit_code == 0, result.output
    assert "read as sheet Old" in result.output and "1 contact row" in result.output
    assert "warning hidden_sheet: 1" in result.output
    assert "'Old' is hidden" in result.output, result.output
    shown = validate_cli(str(path), "--sheet", "Roster 2026")
    assert "warning hidden_sheet" not in shown.output


# F6: hidden rows and columns, rows a filter hides


HEADER6 = ["Account #", "External Contact ID", "First Name", "Last Name", "Phone", "E-mail"]


def people(count: int) -> list[list[object]]:
    return [
        ["10-4471", f"HD-{n:03d}", "Ann", f"Lee{n}", f"+1202555{n:04d}", ""]
        for n in range(1, count + 1)
    ]


def file_warnings(path: Path, **options) -> dict[str, str]:
    from bulk_contacts.pipeline import ReadOptions, load_validated

    validated = load_validated(path, ReadOptions(**options))
    return {i.code: i.message for i in validated.issues if i.row is None}


def labels(path: Path) -> dict[str, list[str]]:
    from bulk_contacts.pipeline import load_validated

    found: dict[str, list[str]] = {}
    for issue in load_validated(path).issues:
        if issue.row is None:
            found.setdefault(issue.code, []).append(issue.column)
    return found


def test_hidden_rows_are_read_and_named_in_ranges(tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for row in [HEADER6, *people(8)]:
        sheet.append(row)
    for number in (3, 5, 6, 7):
        sheet.row_dimensions[number].hidden = True
    book.save(path := tmp_path / "rows.xlsx")
    roster = read_roster(path)
    assert len(roster.frame) == 8  # a hidden row is still data: read
    message = file_warnings(path)["hidden_rows"]
    assert "rows 3, 5-7 (4 rows)" in message and "read" in message
    assert labels(path)["hidden_rows"] == ["sheet 'Contacts'"]


def test_rows_an_autofilter_hides_are_named_as_filtered(tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for row in [HEADER6, *people(3)]:
        sheet.append(row)
    sheet.auto_filter.ref = "A1:F4"
    sheet.row_dimensions[4].hidden = True
    book.save(path := tmp_path / "filtered.xlsx")
    message = file_warnings(path)["hidden_rows"]
    assert "row 4" in message and "filter" in message


def test_a_hidden_column_is_named_and_a_visible_phone_column_preferred(tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    sheet.append([*HEADER6, "Mobile"])
    sheet.append(["10-4471", "HC-1", "Hid", "Col", "+12025550111", "", "+12025550199"])
    sheet.append(["10-4471", "HC-2", "Only", "Hidden", "+12025550112", "", ""])
    sheet.column_dimensions["E"].hidden = True
    sheet.column_dimensions["B"].hidden = True
    book.save(path := tmp_path / "cols.xlsx")
    roster = read_roster(path)
    assert roster.frame.at[2, "phone_number"] == "+12025550199"  # the visible Mobile first
    assert roster.frame.at[3, "phone_number"] == "+12025550112"  # the hidden one when empty
    assert labels(path)["hidden_column"] == ["B 'External Contact ID'", "E 'Phone'"]
    message = file_warnings(path)["hidden_column"]  # the last: Phone's
    assert "'Contacts'" in message and "visible 'Mobile' is taken first" in message


def test_no_warning_for_a_sheet_with_nothing_hidden(tmp_path) -> None:
    path = workbook(tmp_path / "plain.xlsx", [[101, "HD-001", "Kim", "Keep", "+12025550143"]])
    found = file_warnings(path)
    assert "hidden_rows" not in found and "hidden_column" not in found


def test_hidden_rows_and_columns_of_each_tab_are_named_with_all_sheets(tmp_path) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name in ("North", "South"):
        sheet = book.create_sheet(name)
        for row in [HEADER6, *people(4)]:
            sheet.append(row)
    book["South"].row_dimensions[3].hidden = True
    book["South"].row_dimensions[4].hidden = True
    book["South"].column_dimensions["D"].hidden = True
    book.save(path := tmp_path / "tabs.xlsx")
    found = file_warnings(path, all_sheets=True)
    assert "rows 3-4 (2 rows)" in found["hidden_rows"]
    assert labels_all(path)["hidden_rows"] == ["sheet 'South'"]
    assert "sheet 'South'," in found["hidden_column"]


def labels_all(path: Path) -> dict[str, list[str]]:
    from bulk_contacts.pipeline import ReadOptions, load_validated

    found: dict[str, list[str]] = {}
    for issue in load_validated(path, ReadOptions(all_sheets=True)).issues:
        if issue.row is None:
            found.setdefault(issue.code, []).append(issue.column)
    return found


# end to end: a real sandbox, the file as the user had it


def test_apply_prune_of_a_workbook_with_a_hidden_tab_and_a_rounded_id_deletes_no_one(
    start_sandbox, tmp_path
) -> None:
    import json

    from click.testing import CliRunner

    from bulk_contacts.cli import main

    people = [
        {
            "contact_id": c,
            "external_contact_id": ext,
            "first_name": f,
            "last_name": "X",
            "phone_number": phone,
        }
        for c, ext, f, phone in [
            (11, "1234567890123", "Long", "+12025550301"),
            (12, "HD-001", "John", "+12025550143"),
            (13, "HD-002", "Maria", "+12025550100"),
        ]
    ]
    seed = tmp_path / "seed.json"
    site = {
        "site_id": 101,
        "name": "Harbor",
        "account_number": "10-4471",
        "external_site_id": "ext-101",
        "timezone": "America/New_York",
        "contacts": people,
    }
    seed.write_text(json.dumps({"dealers": [{"dealer_id": DEALER, "sites": [site]}]}))
    server = start_sandbox(seed=seed)
    rows = [
        ["10-4471", 1234570000000, "Long", "X", "+12025550301"],
        ["10-4471", "HD-001", "John", "X", "+12025550143"],
        ["10-4471", "HD-002", "Maria", "X", "+12025550100"],
    ]
    path = tabs(
        tmp_path / "roster.xlsx",
        {"Contacts": [ROSTER_HEADER, rows[1]], "Roster 2026": [ROSTER_HEADER, *rows]},
        {"Contacts": "hidden"},
    )
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": str(DEALER),
    }
    planned = CliRunner().invoke(main, ["plan", str(path), "--prune", "--no-progress"], env=env)
    assert "read as sheet Roster 2026" in planned.output, planned.output
    assert "delete 0" in planned.output and "create 0" in planned.output, planned.output
    assert "1234567890123" in planned.output  # the conflict names the real contact
    CliRunner().invoke(main, ["apply", str(path), "--prune", "--yes", "--no-progress"], env=env)
    held = server.store.db.execute(
        "SELECT contact_id, external_contact_id FROM contacts WHERE site_id = 101 "
        "ORDER BY contact_id"
    ).fetchall()
    assert [tuple(row) for row in held] == [
        (11, "1234567890123"),
        (12, "HD-001"),
        (13, "HD-002"),
    ]


def test_a_rounded_cell_typed_again_in_serve_is_read_as_typed(tmp_path) -> None:
    """serve's Fix grid: a cell typed again is no longer the rounded number (as a date cell)."""
    from bulk_contacts.web import library

    path = workbook(
        tmp_path / "fix.xlsx",
        [
            [101, 1234570000000, "Long", "Id", 2025560000],
            [101, "HD-2", "Kim", "Keep", "+12025550143"],
        ],
    )
    table, _ = library.read_table(path, None)
    roster = library.roster_of(table, {})
    assert library.cell_issues(table, {}, 2, "phone_number", "+12025550301", ("US", "e164")) == []
    library.edit_cell(table, roster, 2, "external_contact_id", "1234567890123")
    library.edit_cell(table, roster, 2, "phone_number", "+12025550301")
    validated = library.validate(library.roster_of(table, {}), "US", "e164")
    assert validated.rows.at[2, "external_contact_id"] == "1234567890123"
    assert validated.rows.at[2, "phone_number"] == "+12025550301"
    assert not [i for i in validated.issues if i.row == 2 and i.severity != "derived"]


# F6 in .ods: rows and columns whose table:visibility is "collapse" (hidden) or "filter"
# (filtered out), read from content.xml as LibreOffice writes it


def ods(path: Path, rows: list[list[str]], columns: str = "", hide: dict[int, str] | None = None):
    """An .ods workbook of one `Contacts` table: `columns` its <table:table-column> elements,
    `hide` the visibility of rows by their number (from 1)."""
    from .test_hostile_files import raw_ods

    hide = hide or {}

    def cell(value: str) -> str:
        if not value:
            return "<table:table-cell/>"
        text = f"<text:p>{value}</text:p>"
        return f'<table:table-cell office:value-type="string">{text}</table:table-cell>'

    body = columns
    for number, cells in enumerate(rows, 1):
        seen = f' table:visibility="{hide[number]}"' if number in hide else ""
        body += f"<table:table-row{seen}>{''.join(map(cell, cells))}</table:table-row>"
    # LibreOffice's trailing rows, repeated to the sheet's end (hidden here: "collapse")
    body += (
        '<table:table-row table:number-rows-repeated="1048000" table:visibility="collapse">'
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
    )
    return raw_ods(path, body)


def texts(rows: list[list[object]]) -> list[list[str]]:
    return [[str(value) for value in row] for row in rows]


def test_hidden_ods_rows_are_read_and_named_in_ranges(tmp_path) -> None:
    path = ods(
        tmp_path / "rows.ods",
        texts([HEADER6, *people(8)]),
        hide={3: "collapse", 5: "collapse", 6: "collapse", 7: "collapse"},
    )
    roster = read_roster(path)
    assert len(roster.frame) == 8  # a hidden row is still data: read
    message = file_warnings(path)["hidden_rows"]
    assert "rows 3, 5-7 (4 rows)" in message and "read" in message
    assert "filter" not in message  # LibreOffice's hidden empty rows at the end are not named
    assert labels(path)["hidden_rows"] == ["sheet 'Contacts'"]


def test_ods_rows_a_filter_hides_are_named_as_filtered(tmp_path) -> None:
    path = ods(tmp_path / "filtered.ods", texts([HEADER6, *people(3)]), hide={4: "filter"})
    message = file_warnings(path)["hidden_rows"]
    assert "row 4" in message and "filter" in message


def test_a_hidden_ods_column_is_named_and_a_visible_phone_column_preferred(tmp_path) -> None:
    columns = (
        '<table:table-column table:style-name="co1"/>'
        '<table:table-column table:visibility="collapse"/>'  # B
        '<table:table-column table:number-columns-repeated="2"/>'  # C, D
        '<table:table-column table:visibility="collapse"/>'  # E
        '<table:table-column table:number-columns-repeated="2"/>'  # F, G
        '<table:table-column table:number-columns-repeated="1017" table:visibility="collapse"/>'
    )
    rows = [
        [*HEADER6, "Mobile"],
        ["10-4471", "HC-1", "Hid", "Col", "+12025550111", "", "+12025550199"],
        ["10-4471", "HC-2", "Only", "Hidden", "+12025550112", "", ""],
    ]
    path = ods(tmp_path / "cols.ods", rows, columns)
    roster = read_roster(path)
    assert roster.frame.at[2, "phone_number"] == "+12025550199"  # the visible Mobile first
    assert roster.frame.at[3, "phone_number"] == "+12025550112"  # the hidden one when empty
    assert labels(path)["hidden_column"] == ["B 'External Contact ID'", "E 'Phone'"]
    message = file_warnings(path)["hidden_column"]
    assert "'Contacts'" in message and "visible 'Mobile' is taken first" in message


def test_no_warning_for_an_ods_with_nothing_hidden(tmp_path) -> None:
    path = ods(tmp_path / "plain.ods", texts([HEADER6, *people(2)]))
    found = file_warnings(path)
    assert "hidden_rows" not in found and "hidden_column" not in found


# F6 in .xls (BIFF8): the hidden flag of the ROW and COLINFO records


def xls(path: Path, rows: list[list[str]], hidden_rows=(), hidden_columns=()) -> Path:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Contacts")
    for r, cells in enumerate(rows):
        for c, value in enumerate(cells):
            if value:
                sheet.write(r, c, value)
    for number in hidden_rows:
        sheet.row(number - 1).hidden = True
    for position in hidden_columns:
        sheet.col(position).hidden = True
    book.save(str(path))
    return path


def test_hidden_xls_rows_and_columns_are_named(tmp_path) -> None:
    rows = [
        [*HEADER6, "Mobile"],
        ["10-4471", "HC-1", "Hid", "Col", "+12025550111", "", "+12025550199"],
        ["10-4471", "HC-2", "Only", "Hidden", "+12025550112", "", ""],
        *([str(v) for v in p] + [""] for p in people(5)),
    ]
    path = xls(tmp_path / "old.xls", rows, hidden_rows=(3, 5, 6, 7), hidden_columns=(1, 4))
    roster = read_roster(path)
    assert len(roster.frame) == 7  # a hidden row is still data: read
    assert roster.frame.at[2, "phone_number"] == "+12025550199"  # the visible Mobile first
    message = file_warnings(path)["hidden_rows"]
    assert "rows 3, 5-7 (4 rows)" in message and "read" in message
    assert labels(path)["hidden_column"] == ["B 'External Contact ID'", "E 'Phone'"]


def test_no_warning_for_an_xls_with_nothing_hidden(tmp_path) -> None:
    path = xls(tmp_path / "plain.xls", [HEADER6, *([str(v) for v in p] for p in people(2))])
    found = file_warnings(path)
    assert "hidden_rows" not in found and "hidden_column" not in found
