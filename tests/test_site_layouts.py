"""Issue 15, the sites half: a tab per site (--all-sheets), a file for one site (--site,
--account, --external-site-id), no id column (--match-by name), sites by name (site_name), and
rehearsing on your own sites (sandbox --seed export.xlsx, sandbox --clone).

Fixtures are built here; the command line runs against a seeded sandbox over 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bulk_contacts.cli import main
from bulk_contacts.sites import GENERATED_PREFIX, generated_id, normalize_name

from . import warm

DEALER = 12345


def person(cid, ext, first, last, phone):
    found = {"contact_id": cid, "first_name": first, "last_name": last, "phone_number": phone}
    return {**found, "external_contact_id": ext} if ext else found


def site(sid, name, account, external, *contacts, timezone="America/New_York"):
    return {
        "site_id": sid,
        "name": name,
        "account_number": account,
        "external_site_id": external,
        "timezone": timezone,
        "contacts": list(contacts),
    }


SEED = {
    "dealers": [
        {
            "dealer_id": DEALER,
            "sites": [
                site(
                    1001,
                    "Zeta",
                    "AC-1001",
                    "ext-1001",
                    person(9, "keep1", "Kim", "Keep", "+12025550109"),
                ),
                site(
                    1002,
                    "Zero Site",
                    "001234",
                    "ext-1002",
                    person(100, "E100", "Ann", "Lee", "+12025550100"),
                    person(101, "E101", "Bob", "Ng", "+12025550101"),
                ),
                site(
                    1003,
                    "José's Café",
                    "AC-1003",
                    "ext-1003",
                    person(3, "0042", "Maria", "Diaz", "+12025550142"),
                    person(4, "0043", "Luis", "Díaz", "+12025550143"),
                    person(5, None, "LUIS", "diaz", "+12025550144"),
                ),
                site(1004, "Main Street", "M-1", "ext-1004"),
                site(1005, "main  street", "M-2", "ext-1005"),
            ],
        }
    ]
}


@pytest.fixture
def seeded(start_sandbox, tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED), encoding="utf-8")
    return start_sandbox(seed=seed)


def env_for(server) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": str(DEALER),
    }


def run(server, *args: str):
    extra = [] if args[0] == "validate" else ["--no-progress"]
    env = env_for(server) if server is not None else {}
    return CliRunner().invoke(main, [*args, *extra], env=env)


def contacts_of(server, site_id: int) -> list[tuple]:
    rows = server.store.db.execute(
        "SELECT contact_id, external_contact_id, first_name, last_name, phone_number "
        "FROM contacts WHERE site_id = ? ORDER BY contact_id",
        (site_id,),
    ).fetchall()
    return [tuple(row) for row in rows]


def workbook(path: Path, sheets: dict[str, list[list[str]]], hidden: tuple[str, ...] = ()) -> str:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if name in hidden:
            sheet.sheet_state = "hidden"
    book.save(path)
    return str(path)


def csv_file(path: Path, rows: list[list[str]]) -> str:
    path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    return str(path)


PEOPLE = ["First Name", "Last Name", "Phone", "External ID"]

# 1. one tab per site


def tabs(tmp_path: Path) -> str:
    """Tabs named by account number, by site name (another case and no accent), by external
    site id, and a tab that is not a roster."""
    return workbook(
        tmp_path / "tabs.xlsx",
        {
            "AC-1001": [
                PEOPLE,
                ["Kim", "Keep", "2025550109", "keep1"],
                ["Nia", "New", "2025550111", "n1"],
            ],
            "jose's cafe": [
                ["Last Name", "External ID", "First Name", "Phone"],
                ["Diaz", "0042", "Maria", "2025550199"],
            ],
            "ext-1002": [PEOPLE, ["Ann", "Lee", "2025550100", "E100"]],
            "Notes": [["Call the office first"]],
        },
    )


def test_all_sheets_reads_every_tab_its_name_naming_the_site(seeded, tmp_path) -> None:
    roster = tabs(tmp_path)
    checked = run(seeded, "validate", roster, "--all-sheets")
    assert checked.exit_code == 0, checked.output
    assert "4 contact rows" in checked.output
    assert "site from the sheet's name 'AC-1001', \"jose's cafe\", 'ext-1002'" in checked.output
    assert "sheets not read (no roster columns) Notes" in checked.output
    applied = run(seeded, "apply", roster, "--all-sheets", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "create 1   update 1" in applied.output
    assert contacts_of(seeded, 1001)[-1][1:] == ("n1", "Nia", "New", "+12025550111")
    assert contacts_of(seeded, 1003)[0] == (3, "0042", "Maria", "Diaz", "+12025550199")
    again = run(seeded, "plan", roster, "--all-sheets", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("suffix", [".xls", ".ods"])
def test_all_sheets_reads_xls_and_ods_workbooks_too(tmp_path, suffix) -> None:
    path = tmp_path / f"tabs{suffix}"
    if suffix == ".xls":
        import xlwt

        book = xlwt.Workbook()
        for name, rows in (
            ("AC-1001", [PEOPLE, ["Kim", "Keep", "2025550109", "k1"]]),
            ("AC-1003", [PEOPLE, ["Ann", "Lee", "2025550100", "a1"]]),
        ):
            sheet = book.add_sheet(name)
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    sheet.write(r, c, value)
        book.save(str(path))
    else:
        import pandas as pd

        with pd.ExcelWriter(path, engine="odf") as writer:
            for name, person_ in (
                ("AC-1001", ["Kim", "Keep", "2025550109", "k1"]),
                ("AC-1003", ["Ann", "Lee", "2025550100", "a1"]),
            ):
                pd.DataFrame([person_], columns=PEOPLE).to_excel(
                    writer, sheet_name=name, index=False
                )
    result = run(None, "validate", str(path), "--all-sheets")
    assert result.exit_code == 0, result.output
    assert "2 contact rows" in result.output
    assert "site from the sheet's name 'AC-1001', 'AC-1003'" in result.output


SHEET_NAMES_EXCEL_REFUSES = [
    "Issues",  # the report's own sheet
    "'Quoted'",  # an apostrophe at either end
    "10/4471 [main]",  # characters no Excel sheet name holds (an ODS name may)
    "Riverside Pharmacy Downtown Branch 1",  # past 31 characters, and the same 31
    "Riverside Pharmacy Downtown Branch 2",
]


def test_the_annotated_report_of_any_sheet_names_is_written(tmp_path) -> None:
    """QA (inputs): `validate --all-sheets --report x.xlsx` gave a traceback for a tab named
    `Issues`, `'Quoted'`, `a/b [c]` or two long names alike in their first 31 characters."""
    import pandas as pd

    path = tmp_path / "tabs.ods"
    with pd.ExcelWriter(path, engine="odf") as writer:
        for number, name in enumerate(SHEET_NAMES_EXCEL_REFUSES):
            row = ["Ann", "Lee", "2025550100", f"a{number}"]
            pd.DataFrame([row], columns=PEOPLE).to_excel(writer, sheet_name=name, index=False)
    report = tmp_path / "report.xlsx"
    result = run(None, "validate", str(path), "--all-sheets", "--report", str(report))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    names = openpyxl.load_workbook(report).sheetnames
    assert names == [
        "Issues (2)",
        "Quoted",
        "10_4471 _main_",
        "Riverside Pharmacy Downtown Bra",
        "Riverside Pharmacy Downtown (2)",
        "Issues",
    ]


def test_a_sheet_name_holding_esc_is_written_visibly_in_the_report(tmp_path) -> None:
    """QA (inputs): a crafted workbook's tab named `AC<ESC>c` (a terminal's reset) was copied
    raw into the annotated report's sheet name: XML no workbook reader accepts."""
    import zipfile

    plain = workbook(
        tmp_path / "plain.xlsx",
        {"AC-1001": [PEOPLE, ["Kim", "Keep", "2025550109", "k1"]], "NAME2": [PEOPLE, PERSON2]},
    )
    path = tmp_path / "tabs.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as crafted:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                body = body.replace(b"NAME2", b"AC\x1bc")
            crafted.writestr(item, body)
    report = tmp_path / "report.xlsx"
    result = run(None, "validate", str(path), "--all-sheets", "--report", str(report))
    assert result.exit_code == 1, result.output  # the sheet's name is the rows' site name
    assert "control_character" in result.output
    assert openpyxl.load_workbook(report).sheetnames == ["AC-1001", "AC_x1bc", "Issues"]


PERSON2 = ["Ann", "Lee", "2025550100", "a1"]


def test_messages_name_the_sheet_and_its_own_row(seeded, tmp_path) -> None:
    """Sheets are named by name, never by a number among those read; rows numbered in the
    workbook's own order (a sheet not read still counts)."""
    roster = workbook(
        tmp_path / "tabs.xlsx",
        {
            "Notes": [["Call the office first"]],
            "AC-1001": [PEOPLE, ["Kim", "Keep", "2025550119", "keep1"]],
            "AC-1003": [PEOPLE, ["Ann", "Lee", "2025550100", "a1"], ["Bo", "Ng", "12", "a1"]],
        },
    )
    result = run(None, "validate", roster, "--all-sheets", "--report", "r.xlsx")
    assert result.exit_code == 1
    assert "used by rows 2 of sheet 'AC-1003', 3 of sheet 'AC-1003'" in result.output
    assert "'AC-1003' row 3, 'AC-1003'!C 'Phone': '12' is not a valid phone number" in (
        result.output
    )
    assert "sheet 2 row" not in result.output and "sheet 3 row" not in result.output
    report = openpyxl.load_workbook("r.xlsx")
    assert report.sheetnames == ["AC-1001", "AC-1003", "Issues"]
    assert report["AC-1003"]["C3"].value == "12" and report["AC-1003"]["C3"].comment is not None
    planned = run(seeded, "plan", roster, "--all-sheets", "--skip-invalid", "-o", "p.json")
    assert "'AC-1003' row 3: " in planned.output and "sheet 3 row" not in planned.output
    assert "update 'AC-1001' row 2 keep1" in planned.output  # the change line
    body = json.loads(Path("p.json").read_text())
    assert body["sheets"] == ["", "AC-1001", "AC-1003"]  # the workbook's order
    assert [r["row"] for r in body["invalid"]] == [30_000_002, 30_000_003]
    assert run(seeded, "plan", roster, "--all-sheets", "--skip-invalid", "--report", "p.csv")
    lines = Path("p.csv").read_text(encoding="utf-8-sig").splitlines()
    assert ",'AC-1001' row 2," in lines[1]
    run(seeded, "plan", roster, "--all-sheets", "--skip-invalid", "--report", "p.xlsx")
    invalid = openpyxl.load_workbook("p.xlsx")["Invalid rows"]
    assert [invalid["A2"].value, invalid["A3"].value] == ["'AC-1003' row 2", "'AC-1003' row 3"]


def test_all_sheets_reads_tabs_of_a_whole_name_and_a_phone(seeded, tmp_path) -> None:
    """`Name | Phone` is two roster columns (a whole name and a phone): the tabs are read, by
    the same rule that finds a header row."""
    roster = workbook(
        tmp_path / "tabs2.xlsx",
        {
            "AC-1001": [["Name", "Phone"], ["Kim Keep", "2025550109"], ["Nia New", "2025550111"]],
            "001234": [["Name", "Phone"], ["Ann Lee", "2025550100"]],
        },
    )
    result = run(seeded, "plan", roster, "--all-sheets", "--match-by", "name")
    assert result.exit_code == 0, result.output
    assert "create 1   update 0" in result.output
    assert (
        "site from the sheet's name 'AC-1001', '001234'"
        in run(None, "validate", roster, "--all-sheets", "--match-by", "name").output
    )


def test_the_header_rule_is_one_function() -> None:
    from bulk_contacts import layouts, site_layouts

    assert site_layouts.names_roster_columns is layouts.names_roster_columns
    assert site_layouts.names_roster_columns(["Name", "Phone"], {})
    assert site_layouts.names_roster_columns(["Mobile", "Home Phone", "Contact Name"], {})
    assert not site_layouts.names_roster_columns(["Account", "Site ID"], {})  # sites only
    assert not site_layouts.names_roster_columns(["Name", "Notes"], {})


def test_all_sheets_given_is_not_advised_again(tmp_path) -> None:
    roster = workbook(
        tmp_path / "one.xlsx",
        {"Notes": [["Call the office first"]], "AC-1001": [["Name", "Nickname"], ["Kim", "K"]]},
    )
    result = run(None, "validate", roster, "--all-sheets", "--match-by", "name")
    assert result.exit_code == 2
    assert "with --all-sheets" not in result.output
    assert "no visible sheet" in result.output and "two roster columns" in result.output


def test_tabs_with_their_own_site_column_keep_it(seeded, tmp_path) -> None:
    header = ["Account", *PEOPLE]
    roster = workbook(
        tmp_path / "tabs.xlsx",
        {
            "East": [header, ["AC-1001", "Kim", "Keep", "2025550109", "keep1"]],
            "West": [header, ["001234", "Ann", "Lee", "2025550100", "E100"]],
        },
    )
    result = run(seeded, "plan", roster, "--all-sheets", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "site from the sheet's name" not in result.output


def test_without_all_sheets_a_warning_names_the_other_roster_tabs(tmp_path) -> None:
    header = ["Account", *PEOPLE]
    roster = workbook(
        tmp_path / "tabs.xlsx",
        {
            "East": [header, ["AC-1001", "Kim", "Keep", "2025550109", "keep1"]],
            "West": [header, ["AC-1003", "Ann", "Lee", "2025550100", "E100"]],
            "Notes": [["Call the office first"]],
            "Old": [header, ["AC-1001", "Old", "Timer", "2025550109", "old1"]],
        },
        hidden=("Old",),
    )
    result = run(None, "validate", roster)
    assert result.exit_code == 0, result.output
    assert "warning other_sheets: 1" in result.output
    assert "only sheet 'East' is read, but 'West' look like rosters too" in result.output
    assert "--all-sheets" in result.output
    chosen = run(None, "validate", roster, "--sheet", "West")
    assert "other_sheets" not in chosen.output
    every = run(None, "validate", roster, "--all-sheets")  # visible ones: not the hidden Old
    assert "2 contact rows" in every.output and "sheets East, West" in every.output


def test_an_export_is_not_warned_about_its_sites_sheet(seeded, tmp_path) -> None:
    assert run(seeded, "export", "-o", "export.xlsx").exit_code == 0
    result = run(None, "validate", "export.xlsx")
    assert "other_sheets" not in result.output


# 2. a whole file for one site


@pytest.mark.parametrize(
    "option", [["--site", "1002"], ["--account", "001234"], ["--external-site-id", "ext-1002"]]
)
def test_one_site_for_the_whole_file(seeded, tmp_path, option) -> None:
    roster = csv_file(
        tmp_path / "outlook.csv",
        [PEOPLE, ["Ann", "Lee", "2025550100", "E100"], ["Cy", "Cole", "2025550177", "C1"]],
    )
    result = run(seeded, "apply", roster, *option, "--yes")
    assert result.exit_code == 0, result.output
    assert "create 1   update 0" in result.output
    assert [c[1] for c in contacts_of(seeded, 1002)] == ["E100", "E101", "C1"]
    assert "on every row" in run(None, "validate", roster, *option).output


def test_one_site_refuses_a_site_column_saying_otherwise(seeded, tmp_path) -> None:
    roster = csv_file(
        tmp_path / "r.csv",
        [
            ["site_id", *PEOPLE],
            ["1002", "Ann", "Lee", "2025550100", "E100"],
            ["1001", "Kim", "Keep", "2025550109", "keep1"],
        ],
    )
    result = run(None, "validate", roster, "--site", "1002")
    assert result.exit_code == 2
    assert "--site 1002 puts every row on that site, but row 3 of column 'site_id' says '1001'" in (
        result.output
    )
    same = csv_file(
        tmp_path / "s.csv",
        [
            ["site_id", *PEOPLE],
            ["01002", "Ann", "Lee", "2025550100", "E100"],
            ["", "Cy", "Cole", "2025550177", "C1"],
        ],
    )
    assert run(None, "validate", same, "--site", "1002").exit_code == 0
    other = csv_file(
        tmp_path / "o.csv", [["Account", *PEOPLE], ["AC-1001", "Ann", "Lee", "2025550100", "E100"]]
    )
    mismatch = run(seeded, "plan", other, "--site", "1002")
    assert mismatch.exit_code == 1
    assert "the row's site columns name different sites" in mismatch.output


def test_one_site_is_given_once() -> None:
    result = CliRunner().invoke(main, ["validate", "x.csv", "--site", "1", "--account", "A"])
    assert result.exit_code == 2 and "one of --site, --account or --external-site-id" in (
        result.output
    )


# 3. no external id column


NO_IDS = [["First Name", "Last Name", "Phone"]]


def test_without_an_id_column_the_error_says_what_to_do(tmp_path) -> None:
    roster = csv_file(tmp_path / "r.csv", [*NO_IDS, ["Ann", "Lee", "2025550100"]])
    result = run(None, "validate", roster, "--site", "1002")
    assert result.exit_code == 2
    assert "no column for external_contact_id" in result.output
    assert "pass --match-by name" in result.output


def test_match_by_name_matches_and_applying_twice_doubles_nobody(seeded, tmp_path) -> None:
    roster = csv_file(
        tmp_path / "r.csv",
        [
            *NO_IDS,
            ["  ann ", "LEE", "2025550188"],  # Ann Lee (E100): updated, by name
            ["José", "Nuñez", "2025550177"],  # nobody: created under a generated id
        ],
    )
    first = run(seeded, "apply", roster, "--site", "1002", "--match-by", "name", "--yes")
    assert first.exit_code == 0, first.output
    assert "create 1   update 1" in first.output
    held = contacts_of(seeded, 1002)
    assert held[0] == (100, "E100", "Ann", "Lee", "+12025550188")
    expected = generated_id(DEALER, 1002, "José", "Nuñez")
    assert held[-1][1:] == (expected, "José", "Nuñez", "+12025550177")
    second = run(seeded, "apply", roster, "--site", "1002", "--match-by", "name", "--yes")
    assert second.exit_code == 0, second.output
    assert "No changes" in second.output
    assert contacts_of(seeded, 1002) == held  # nobody doubled


def test_match_by_name_is_a_derived_note_in_every_report(seeded, tmp_path) -> None:
    """A row matched by name, or given a generated id, says so as a `derived` note: in the
    plan's xlsx, html, csv and json, and in validate's report."""
    roster = csv_file(
        tmp_path / "r.csv", [*NO_IDS, ["ann", "LEE", "2025550188"], ["José", "Nuñez", "2025550177"]]
    )
    options = ["--site", "1002", "--match-by", "name"]
    generated = generated_id(DEALER, 1002, "José", "Nuñez")
    matched = (
        "matched to contact_id 100 (external_contact_id 'E100') by first and last name "
        "(--match-by name)"
    )
    made = (
        f"external_contact_id {generated} generated from the dealer, the site and the name "
        "(--match-by name)"
    )
    checked = run(None, "validate", roster, *options, "--report", "v.json")
    assert checked.exit_code == 0, checked.output
    notes = [i for i in json.loads(Path("v.json").read_text())["issues"] if i["code"] == "by_name"]
    assert [(n["row"], n["severity"]) for n in notes] == [(2, "derived"), (3, "derived")]
    assert "matched by first and last name ('ann LEE')" in notes[0]["message"]
    assert "2 rows have no external_contact_id: matched by first and last name" in checked.output
    reports = [
        a for report in ("p.json", "p.xlsx", "p.html", "p.csv") for a in ("--report", report)
    ]
    planned = run(seeded, "plan", roster, *options, *reports)  # one plan, written four ways
    assert planned.exit_code == 0, planned.output
    body = json.loads(Path("p.json").read_text())
    assert body["derived"] == {"2": matched, "3": made}
    html = unescape(Path("p.html").read_text(encoding="utf-8"))
    assert matched in html and made in html
    text = Path("p.csv").read_text(encoding="utf-8")
    assert "derived" in text.splitlines()[0] and made in text
    sheet = openpyxl.load_workbook("p.xlsx")["Changes"]
    cells = [str(c.value) for r in sheet.iter_rows() for c in r]
    assert matched in cells and made in cells
    assert run(seeded, "apply", roster, *options, "--yes").exit_code == 0
    moved = csv_file(tmp_path / "r2.csv", [*NO_IDS, ["José", "Nuñez", "2025550166"]])
    assert run(seeded, "plan", moved, *options, "--report", "q.json").exit_code == 0
    (note,) = json.loads(Path("q.json").read_text())["derived"].values()
    assert note.startswith("matched to contact_id ") and f"by its generated id {generated}" in note


def test_match_by_name_several_matches_are_a_conflict(seeded, tmp_path) -> None:
    roster = csv_file(tmp_path / "r.csv", [*NO_IDS, ["Luis", "Diaz", "2025550100"]])
    result = run(seeded, "plan", roster, "--account", "AC-1003", "--match-by", "name")
    assert "matches 2 contacts of the site by name (contact_id 4, 5)" in result.output
    assert "create 0   update 0" in result.output


def test_match_by_name_still_needs_a_site(tmp_path) -> None:
    roster = csv_file(tmp_path / "r.csv", [*NO_IDS, ["Ann", "Lee", "2025550100"]])
    result = run(None, "validate", roster, "--match-by", "name")
    assert result.exit_code == 2
    assert "Headers found: A 'First Name', B 'Last Name', C 'Phone'." in result.output
    assert "--site ID" in result.output


def test_match_by_name_two_rows_of_one_name_say_so_plainly(seeded, tmp_path) -> None:
    """Two rows with one name on one site: said plainly, both rows named, never an internal
    key, in no message, report or results file."""
    roster = workbook(
        tmp_path / "tabs.xlsx",
        {
            "AC-1001": [["Name", "Phone"], ["Ann Lee", "2025550100"], ["Bo Ng", "2025550101"]],
            "001234": [
                ["Name", "Phone"],
                ["Cy Cole", "2025550102"],
                ["Ann  LEE", "2025550103"],
                ["ann lee", "2025550104"],
            ],
            "Nowhere": [["Name", "Phone"], ["Di Dee", "2025550105"]],  # names no site
        },
    )
    options = ["--all-sheets", "--match-by", "name"]
    checked = run(None, "validate", roster, *options, "--report", "v.xlsx")
    assert checked.exit_code == 1
    assert "duplicate_name" in checked.output
    assert "rows 3 of sheet '001234', 4 of sheet '001234' have the same name" in checked.output
    reports = [
        a for report in ("p.json", "p.xlsx", "p.html", "p.csv") for a in ("--report", report)
    ]
    planned = run(seeded, "plan", roster, *options, "--skip-invalid", *reports)
    assert "have the same name" in planned.output
    assert all(Path(report).is_file() for report in reports[1::2]), planned.output
    applied = run(seeded, "apply", roster, *options, "--skip-invalid", "--yes")
    assert applied.exit_code == 0, applied.output
    outputs = [checked.output, planned.output, applied.output]
    files = [p for p in Path(".").rglob("*") if p.is_file()]
    assert len(files) >= 6, files  # the reports, and the run folder's results and log
    for path in files:
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            outputs += [str(c.value) for ws in book for r in ws.iter_rows() for c in r]
        else:
            outputs.append(path.read_text(encoding="utf-8", errors="replace"))
    assert not [text for text in outputs if "~name:" in text]
    assert not [text for text in outputs if "external_contact_id '~" in text]


def test_match_by_name_refuses_prune(seeded, tmp_path) -> None:
    roster = csv_file(tmp_path / "r.csv", [*NO_IDS, ["Ann", "Lee", "2025550100"]])
    result = run(seeded, "plan", roster, "--site", "1002", "--match-by", "name", "--prune")
    assert result.exit_code == 2 and "prune is refused" in result.output


def test_the_generated_id_is_stable_and_documented() -> None:
    one = generated_id(DEALER, 1002, "José", "O'Neil")
    assert one == generated_id(DEALER, 1002, "  jose ", "o  neil")
    assert re.fullmatch(GENERATED_PREFIX + "[0-9a-f]{16}", one)
    assert one != generated_id(DEALER, 1001, "José", "O'Neil")
    assert normalize_name("  Ñúñez-García ") == "nunez garcia"


# 4. sites by name


def test_site_names_resolve_after_normalization(seeded, tmp_path) -> None:
    roster = csv_file(
        tmp_path / "r.csv",
        [
            ["Location", *PEOPLE],
            ["zero   SITE", "Ann", "Lee", "2025550100", "E100"],
            ["jose's café", "Maria", "Diaz", "2025550142", "0042"],
        ],
    )
    result = run(seeded, "plan", roster, "--detailed-exitcode")
    assert result.exit_code == 0, result.output


def test_a_site_name_beside_another_site_column_is_not_read(tmp_path) -> None:
    roster = csv_file(
        tmp_path / "r.csv",
        [["Account", "Site", *PEOPLE], ["AC-1001", "=Zeta\x1b", "Kim", "Keep", "2025550109", "k1"]],
    )
    result = run(None, "validate", roster)
    assert result.exit_code == 0, result.output
    assert "0 warnings" in result.output


def test_unknown_and_ambiguous_site_names_are_invalid_rows(seeded, tmp_path) -> None:
    roster = csv_file(
        tmp_path / "r.csv",
        [
            ["Site", *PEOPLE],
            ["Zeroo Site", "Ann", "Lee", "2025550100", "E100"],
            ["Main Street", "Cy", "Cole", "2025550177", "C1"],
        ],
    )
    result = run(seeded, "plan", roster)
    assert result.exit_code == 1, result.output
    assert "'Zeroo Site' names no site of dealer 12345" in result.output
    assert "the closest names: 'Zero Site'" in result.output
    assert "'Main Street' names 2 sites of dealer 12345" in result.output
    assert "site 1004 'Main Street' (account M-1" in result.output


# 5. rehearsing on your own sites

TABLES = (
    "SELECT * FROM sites ORDER BY site_id",
    "SELECT * FROM contacts ORDER BY contact_id",
    "SELECT * FROM dealers ORDER BY dealer_id",
)


def dump(server) -> list[list[tuple]]:
    return [[tuple(row) for row in server.store.db.execute(query)] for query in TABLES]


def test_sandbox_seeds_from_an_xlsx_export(seeded, start_sandbox, tmp_path) -> None:
    assert run(seeded, "export", "-o", "export.xlsx").exit_code == 0
    copy = start_sandbox(seed=Path("export.xlsx"))
    ours, theirs = dump(seeded), dump(copy)
    contact_columns = slice(0, 7)  # the export keeps every contact field and its created_at
    assert [r[contact_columns] for r in theirs[1]] == [r[contact_columns] for r in ours[1]]
    site_fields = lambda rows: [(r[0], r[1], r[2], r[3], r[6], r[9]) for r in rows]  # noqa: E731
    assert site_fields(theirs[0]) == site_fields(ours[0])
    assert theirs[2] == ours[2]


def test_a_seed_that_is_not_an_export_is_refused(tmp_path) -> None:
    plain = workbook(tmp_path / "plain.xlsx", {"Contacts": [PEOPLE]})
    result = CliRunner().invoke(main, ["sandbox", "--seed", plain, "--port", "0"])
    assert result.exit_code == 2
    assert "not an xlsx export made by `bulk-contacts export`" in result.output


def test_sandbox_clone_copies_another_sandbox_exactly(start_sandbox, tmp_path) -> None:
    seed, log = tmp_path / "seed.json", tmp_path / "source-requests.jsonl"
    seed.write_text(json.dumps(SEED), encoding="utf-8")
    seeded = start_sandbox(seed=seed, request_log=log)
    database = tmp_path / "clone.db"
    env = {**os.environ, **env_for(seeded), "SANDBOX_CLIENT_SECRET": "other-secret"}
    command = [sys.executable, "-m", "bulk_contacts", "sandbox", "--clone", "--port", "0"]
    with warm.WarmPopen(
        [*command, "--db", str(database)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            lines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                lines.append(line)
                if "listening on" in line or not line:
                    break
            assert any("cloned 5 sites and 6 contacts of dealer 12345" in x for x in lines), lines
            assert any("listening on http://127.0.0.1:" in x for x in lines), lines
        finally:
            process.terminate()
            process.wait(timeout=10)
    from bulk_contacts.sandbox import Store

    clone = Store(database)
    try:
        copied = [[tuple(row) for row in clone.db.execute(query)] for query in TABLES]
    finally:
        clone.close()
    assert copied == dump(seeded)
    # read-only: the source was asked for a token, then only listed
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(r["method"], r["path"].split("/")[-1]) for r in requests} == {
        ("POST", "token"),
        ("GET", "sites"),
        ("GET", "contacts"),
    }
    assert "other-secret" not in "".join(lines) and "sandbox-secret" not in "".join(lines)


def test_a_sheet_naming_no_site_is_named_as_the_sheet_not_as_a_column(seeded, tmp_path) -> None:
    """The site of a tab without a site column is the tab's name: a message about it names the
    sheet's name, never a column the file does not have."""
    roster = workbook(
        tmp_path / "tabs.xlsx",
        {
            "AC-1001": [["Name", "Phone"], ["Kim Keep", "2025550109"]],
            "Nowhere": [["Name", "Phone"], ["Di Dee", "2025550105"]],
        },
    )
    planned = run(seeded, "plan", roster, "--all-sheets", "--match-by", "name", "--skip-invalid")
    assert "'Nowhere' row 2: the name of sheet 'Nowhere': 'Nowhere' names no site" in (
        planned.output
    ), planned.output
    assert "site_name'" not in planned.output


# diacritics: a roster typed without accents names the people CHeKT holds with them

# (as CHeKT holds it, as a roster types it): letters that decompose, and those that do not
FOLDED = [
    ("Ł", "L"), ("ł", "l"), ("Ø", "O"), ("ø", "o"), ("Đ", "D"), ("đ", "d"), ("ß", "ss"),
    ("Æ", "AE"), ("æ", "ae"), ("é", "e"), ("Ñ", "N"), ("ü", "u"), ("Å", "A"), ("ç", "c"),
    ("Œ", "OE"), ("œ", "oe"), ("Þ", "Th"), ("þ", "th"), ("Ħ", "H"), ("ı", "i"), ("a", "a"),
]  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(FOLDED), st.booleans()), min_size=1, max_size=12))
def test_names_differing_only_in_diacritics_match(letters) -> None:
    held = "".join(pair[0] for pair, _ in letters)
    typed = "".join(pair[1] if plain else pair[0] for pair, plain in letters)
    assert normalize_name(held) == normalize_name(typed)
    assert normalize_name(normalize_name(held)) == normalize_name(held)


def test_match_by_name_folds_diacritics_without_changing_what_is_written(start_sandbox, tmp_path):
    seed = {
        "dealers": [
            {
                "dealer_id": DEALER,
                "sites": [
                    site(
                        2001,
                        "One",
                        "PL-1",
                        "ext-2001",
                        person(1, "L1", "Łukasz", "Żółć", "+12025550101"),
                        person(2, "S1", "Søren", "Ærø", "+12025550102"),
                    ),
                    site(
                        2002,
                        "Two",
                        "PL-2",
                        "ext-2002",
                        person(3, "L2", "Łukasz", "Nowak", "+12025550103"),
                        person(4, "L3", "Lukasz", "Nowak", "+12025550104"),
                    ),
                ],
            }
        ]
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed), encoding="utf-8")
    server = start_sandbox(seed=tmp_path / "seed.json")
    roster = csv_file(
        tmp_path / "r.csv",
        [
            *NO_IDS,
            ["Lukasz", "Zolc", "2025550101"],  # Łukasz Żółć: no change, no duplicate
            ["Soren", "Aero", "2025550199"],  # Søren Ærø: updated, CHeKT's spelling kept
            ["Dorde", "Strasse", "2025550198"],  # nobody: created as typed
        ],
    )
    applied = run(server, "apply", roster, "--account", "PL-1", "--match-by", "name", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "create 1   update 1" in applied.output
    held = contacts_of(server, 2001)
    assert held[:2] == [
        (1, "L1", "Łukasz", "Żółć", "+12025550101"),
        (2, "S1", "Søren", "Ærø", "+12025550199"),
    ]
    assert held[2][2:] == ("Dorde", "Strasse", "+12025550198") and len(held) == 3
    # two contacts of one site that fold to one name: a conflict, never a pick
    other = csv_file(tmp_path / "r2.csv", [*NO_IDS, ["Lukasz", "Nowak", "2025550100"]])
    planned = run(server, "plan", other, "--account", "PL-2", "--match-by", "name")
    assert "matches 2 contacts of the site by name (contact_id 3, 4)" in planned.output
    assert "create 0   update 0" in planned.output
