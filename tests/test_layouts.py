"""Rosters as people keep them (issue 15, the reader's half): a title above the header, a whole
name in one column, several phone columns, Outlook's and Google's exports, vCards, columns CHeKT
cannot hold (a passcode never copied anywhere), and the quality checks. Every fixture is built
here: xlsx with xlsxwriter, CSV in the dialects the reader supports, vCards as text."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from click.testing import CliRunner
from openpyxl import load_workbook

from bulk_contacts.cli import main
from bulk_contacts.codes import CODES, DERIVED
from bulk_contacts.errors import InputError
from bulk_contacts.layouts import Layout, country_of_timezone, likely_domain, split_name
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster

DEALER = 12345


def run(*args: str, server=None):
    env = {}
    if server is not None:
        env = {
            "CHEKT_CLIENT_ID": "sandbox-client",
            "CHEKT_CLIENT_SECRET": "sandbox-secret",
            "CHEKT_API_URL": server.url,
            "CHEKT_DEALER_ID": str(DEALER),
        }
    extra = [] if args[0] == "validate" else ["--no-progress"]
    return CliRunner().invoke(main, [*args, *extra], env=env)


def xlsx(path: Path, rows: list[list], title: str | None = None, merged: int = 0) -> str:
    """A workbook whose rows start at row 1, or below a merged title row and a blank row."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Contacts")
    top = 0
    if title is not None:
        sheet.merge_range(0, 0, 0, max(merged, 1), title)
        top = 2
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if value != "":
                sheet.write(top + i, j, value)
    book.close()
    return str(path)


def write_csv(path: Path, rows: list[list], delimiter: str = ",", encoding: str = "utf-8") -> str:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return str(path)


def validated(path: str, **layout):
    options = {k: layout.pop(k) for k in ("column_map",) if k in layout}
    roster = read_roster(Path(path), layout=Layout(**layout), **options)
    return validate_roster(roster)


def codes(result, severity: str | None = None) -> list[tuple[int | None, str]]:
    return [(i.row, i.code) for i in result.issues if severity is None or i.severity == severity]


def derived(result) -> list[str]:
    return [i.message for i in result.issues if i.severity == DERIVED and i.row is None]


HEADER = ["Account #", "External ID", "First Name", "Last Name", "Phone", "E-mail"]


# 1. a header not on row 1


def test_the_header_below_a_merged_title_is_found_and_rows_keep_their_numbers(tmp_path) -> None:
    path = xlsx(
        tmp_path / "titled.xlsx",
        [
            HEADER,
            ["AC-1", "c1", "Ann", "Lee", "2025550100", "ann@example.com"],
            ["AC-1", "c2", "Bo", "Ng", "2025550101", "not an address"],
        ],
        title="ACME Security – Contact roster Q3",
        merged=5,
    )
    result = validated(path)
    assert result.roster.table.header_row == 3
    assert list(result.rows.index) == [4, 5]  # the spreadsheet's own row numbers
    assert codes(result, "error") == [(5, "invalid_email")]
    assert any(
        m.startswith("the header is row 3, the first row that names at least two roster")
        and "ACME Security – Contact roster Q3" in m
        for m in derived(result)
    )
    shown = run("validate", path)
    assert "the header is row 3" in shown.output and "row 5, F 'E-mail'" in shown.output


def test_header_row_chooses_the_header_and_says_so(tmp_path) -> None:
    # Row 1 names two roster columns (a legend), the real header is row 2.
    path = write_csv(
        tmp_path / "legend.csv",
        [
            ["Phone", "E-mail", "", "", "", ""],
            HEADER,
            ["AC-1", "c1", "Ann", "Lee", "2025550100", "ann@example.com"],
        ],
    )
    with pytest.raises(InputError, match=r"no column for .*\(header row 1\)"):
        validated(path)
    result = validated(path, header_row=2)
    assert result.valid and list(result.rows.index) == [3]
    assert any(m.startswith("the header is row 2, as --header-row says") for m in derived(result))
    shown = run("validate", path, "--header-row", "2")
    assert shown.exit_code == 0, shown.output
    assert "as --header-row says" in shown.output
    far = run("validate", path, "--header-row", "40")
    assert far.exit_code == 2 and "--header-row 40: the sheet has rows 1 to 3" in far.output
    assert "Traceback" not in far.output


def test_a_header_beyond_the_first_30_rows_is_not_guessed(tmp_path) -> None:
    rows = [[f"note {i}", "", "", "", "", ""] for i in range(31)]
    path = write_csv(tmp_path / "deep.csv", [*rows, HEADER, ["AC-1", "c1", "A", "B", "", ""]])
    with pytest.raises(InputError, match=r"\(header row 1\)"):
        validated(path)
    assert validated(path, header_row=32).roster.table.header_row == 32


# 2. a whole name in one column


@pytest.mark.parametrize(
    ("name", "first", "last", "problem"),
    [
        ("Doe, John", "John", "Doe", ""),
        ("John Doe", "John", "Doe", ""),
        ("John A. Doe", "John A.", "Doe", ""),
        ("Dr. Mary Ann Smith-Jones Jr.", "Mary Ann", "Smith-Jones Jr.", "uncertain"),
        ("van der Berg, Anna", "Anna", "van der Berg", ""),
        ("Cher", "Cher", "", "one_word"),
    ],
)
def test_whole_names_are_split_by_nameparser(name, first, last, problem) -> None:
    assert split_name(name)[:3] == (first, last, problem)


@pytest.mark.parametrize("header", ["Name", "Contact Name", "Full Name"])
def test_a_name_column_is_split_and_its_doubts_are_shown(tmp_path, header) -> None:
    path = write_csv(
        tmp_path / "names.csv",
        [
            ["Account #", "External ID", header, "Phone"],
            ["AC-1", "c1", "Doe, John", "2025550100"],
            ["AC-1", "c2", "Dr. Mary Ann Smith-Jones Jr.", "2025550101"],
            ["AC-1", "c3", "Cher", "2025550102"],
        ],
    )
    result = validated(path)
    assert result.rows.loc[2, ["first_name", "last_name"]].tolist() == ["John", "Doe"]
    assert result.rows.loc[3, ["first_name", "last_name"]].tolist() == [
        "Mary Ann",
        "Smith-Jones Jr.",
    ]
    assert codes(result, "error") == [(4, "name_one_word")]  # not also an empty last name
    (split,) = [i for i in result.issues if i.code == "name_split"]
    assert split.row == 3 and split.column == f"C '{header}'"
    assert "first_name 'Mary Ann', last_name 'Smith-Jones Jr.'" in split.message
    assert "title 'Dr.' dropped" in split.message
    assert f"first_name and last_name are split from C '{header}' (3 rows)" in derived(result)


def test_map_names_a_full_name_column(tmp_path) -> None:
    path = write_csv(
        tmp_path / "who.csv",
        [["Account #", "External ID", "Person", "E-mail"], ["AC-1", "c1", "Ann Lee", "a@x.org"]],
    )
    with pytest.raises(InputError, match="no column for first_name, last_name"):
        validated(path)
    result = validated(path, column_map={"Person": "full_name"})
    assert result.rows.loc[2, ["first_name", "last_name"]].tolist() == ["Ann", "Lee"]
    shown = run("validate", path, "--map", "Person=full_name")
    assert shown.exit_code == 0, shown.output


def test_a_name_column_beside_first_and_last_names_is_not_sent(tmp_path) -> None:
    path = write_csv(
        tmp_path / "both.csv",
        [[*HEADER, "Name"], ["AC-1", "c1", "Ann", "Lee", "2025550100", "", "Ann B. Lee"]],
    )
    result = validated(path)
    assert result.rows.loc[2, "first_name"] == "Ann" and result.valid
    assert any(
        "G 'Name' (first and last names have their own columns)" in m for m in derived(result)
    )


# 3. several phone columns

PHONES = ["Account #", "External ID", "First Name", "Last Name", "Home Phone", "Mobile", "Phone 2"]


def phones_file(tmp_path: Path) -> str:
    return write_csv(
        tmp_path / "phones.csv",
        [
            PHONES,
            ["AC-1", "c1", "Ann", "Lee", "2025550100", "2025550200", ""],
            ["AC-1", "c2", "Bo", "Ng", "2025550101", "", "2025550301"],
            ["AC-1", "c3", "Cy", "Oh", "2025550102", "", ""],
            ["AC-1", "c4", "Di", "Po", "", "", ""],
        ],
    )


def test_the_first_non_empty_phone_is_taken_in_the_documented_order(tmp_path) -> None:
    result = validated(phones_file(tmp_path))
    # mobile, then numbered phones, then home phones
    assert result.rows["phone_number"].tolist() == [
        "+12025550200",
        "+12025550301",
        "+12025550102",
        "",
    ]
    assert (
        "phone_number is the first non-empty of 'Mobile', 'Phone 2', 'Home Phone' (the default "
        "order): 'Mobile' 1, 'Phone 2' 1, 'Home Phone' 1, none 1" in derived(result)
    )
    not_sent = {i.row: i.message for i in result.issues if i.code == "phones_not_sent"}
    assert not_sent == {
        2: "not sent (CHeKT holds one number per contact): 'Home Phone' 2025550100",
        3: "not sent (CHeKT holds one number per contact): 'Home Phone' 2025550101",
    }
    # The row's own column is named in its messages, and the hint of main is gone: the
    # phone columns are read.
    (no_phone,) = [i for i in result.issues if i.code == "unreachable"]
    assert no_phone.row == 5 and "not read" not in no_phone.message


def test_a_number_s_problem_names_the_column_it_came_from(tmp_path) -> None:
    path = write_csv(
        tmp_path / "bad.csv",
        [PHONES, ["AC-1", "c1", "Ann", "Lee", "12345", "", ""],
         ["AC-1", "c2", "Bo", "Ng", "", "2125550111.0", ""]],
    )  # fmt: skip
    result = validated(path)
    found = {i.code: (i.row, i.column) for i in result.issues if i.field == "phone_number"}
    assert found["invalid_phone"] == (2, "E 'Home Phone'")
    assert found["phone_float"] == (3, "F 'Mobile'")


def test_a_date_in_the_phone_column_a_number_came_from_is_phone_date(tmp_path) -> None:
    import datetime

    book = xlsxwriter.Workbook(str(tmp_path / "dated.xlsx"))
    sheet = book.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["Account", "External ID", "First", "Last", "Mobile", "Home Phone"])
    sheet.write_row(1, 0, ["AC-1", "c1", "Ann", "Lee", "", ""])
    sheet.write_datetime(
        1, 5, datetime.datetime(2025, 5, 1), book.add_format({"num_format": "d/m/yy"})
    )
    sheet.write_row(2, 0, ["AC-1", "c2", "Bo", "Ng", "2025550100", ""])
    book.close()
    result = validated(str(tmp_path / "dated.xlsx"))
    found = [(i.row, i.code, i.column) for i in result.issues if i.field == "phone_number"]
    assert (2, "phone_date", "F 'Home Phone'") in found


def test_a_phone_column_serve_was_told_not_to_send_is_not_read() -> None:
    import pandas as pd

    from bulk_contacts.roster import Table
    from bulk_contacts.web.library import roster_of

    cells = pd.DataFrame(
        {0: ["AC-1"], 1: ["c1"], 2: ["Ann"], 3: ["Lee"], 4: ["2025550100"], 5: ["2025550200"]},
        index=pd.RangeIndex(2, 3),
    )
    table = Table("t.csv", ["Account", "External ID", "First", "Last", "Home Phone", "Mobile"],
                  cells)  # fmt: skip
    roster = roster_of(table, {5: None})
    assert roster.frame.loc[2, "phone_number"] == "2025550100"
    assert roster.facts.phone_source is None  # one phone column left


def test_serve_shows_what_the_reader_reads() -> None:
    from bulk_contacts.web.library import detected_column, read_by_itself

    assert detected_column("Home Phone") == detected_column("Cell Nr") == "phone_number"
    assert detected_column("Phone 1 - Type") is None
    assert read_by_itself("Name") and not read_by_itself("Rufnummer")


def test_phone_columns_overrides_the_order_and_names_a_phone_left_out(tmp_path) -> None:
    path = phones_file(tmp_path)
    result = validated(path, phone_columns=("Home Phone", "mobile"))
    assert result.rows["phone_number"].tolist() == [
        "+12025550100",
        "+12025550101",
        "+12025550102",
        "",
    ]
    assert any("(--phone-columns)" in m for m in derived(result))
    assert any("G 'Phone 2' (a phone not in --phone-columns)" in m for m in derived(result))
    (unreachable,) = [i for i in result.issues if i.code == "unreachable"]
    assert "not read: 'Phone 2' (column G); add it to --phone-columns" in unreachable.message
    shown = run("validate", path, "--phone-columns", "Home Phone,Mobile")
    assert "'Home Phone' 3, 'Mobile' 0, none 1" in shown.output
    wrong = run("validate", path, "--phone-columns", "Work,Mobile")
    assert wrong.exit_code == 2
    assert "--phone-columns names 'Work', which is not a column of the file" in wrong.output


def test_the_validate_reports_list_the_numbers_not_sent(tmp_path) -> None:
    path = phones_file(tmp_path)
    reports = [tmp_path / f"report.{s}" for s in ("csv", "json", "xlsx")]
    result = run("validate", path, *(a for r in reports for a in ("--report", str(r))))
    assert result.exit_code == 1, result.output
    assert "2 rows have numbers not sent" in result.output
    with reports[0].open(encoding="utf-8-sig") as handle:
        lines = list(csv.DictReader(handle))
    assert [(x["row"], x["severity"]) for x in lines if x["code"] == "phones_not_sent"] == [
        ("2", "derived"),
        ("3", "derived"),
    ]
    body = json.loads(reports[1].read_text(encoding="utf-8"))
    assert body["summary"]["phone_from"] == {"Mobile": 1, "Phone 2": 1, "Home Phone": 1}
    assert any(m.startswith("phone_number is the first") for m in body["summary"]["derived"])
    sheet = load_workbook(reports[2])["Contacts"]
    assert sheet["H1"].value == "not sent (other phones)"
    assert sheet["H2"].value == "'Home Phone' 2025550100" and sheet["H4"].value is None
    # a row with no phone at all is marked on the first phone column of the order (Mobile)
    assert sheet["F5"].comment is not None and "nobody can reach" in sheet["F5"].comment.text


def test_google_numbers_in_one_cell_are_the_first_sent_the_rest_listed(tmp_path) -> None:
    path = write_csv(
        tmp_path / "google.csv",
        [
            [
                "Account",
                "External ID",
                "Given Name",
                "Family Name",
                "Phone 1 - Type",
                "Phone 1 - Value",
                "E-mail 1 - Value",
            ],
            ["AC-1", "g1", "Ann", "Lee", "Mobile", "202-555-0100 ::: 202-555-0199", "a@x.org"],
        ],
    )
    result = validated(path)
    assert result.rows.loc[2, ["phone_number", "email"]].tolist() == ["+12025550100", "a@x.org"]
    assert [i.message for i in result.issues if i.code == "phones_not_sent"] == [
        "not sent (CHeKT holds one number per contact): 'Phone 1 - Value' 202-555-0199"
    ]


# 4. known exports


OUTLOOK = [
    "First Name", "Middle Name", "Last Name", "Title", "Suffix", "E-mail Address",
    "E-mail 2 Address", "Business Phone", "Home Phone", "Mobile Phone", "Company",
    "Job Title", "Notes",
]  # fmt: skip


@pytest.mark.parametrize(
    ("delimiter", "encoding"), [(",", "utf-8-sig"), (";", "cp1252"), ("\t", "utf-16")]
)
def test_an_outlook_export_maps_without_map(tmp_path, delimiter, encoding) -> None:
    path = write_csv(
        tmp_path / "outlook.csv",
        [
            ["Account #", "External ID", *OUTLOOK],
            ["AC-1", "o1", "José", "", "Diaz", "", "", "jose@example.com", "", "",
             "(202) 555-0110", "(202) 555-0111", "ACME", "", "gate 4"],
        ],
        delimiter,
        encoding,
    )  # fmt: skip
    result = validated(path)
    assert result.rows.loc[2, ["first_name", "last_name", "phone_number", "email"]].tolist() == [
        "José",
        "Diaz",
        "+12025550111",  # the mobile phone, before the home phone
        "jose@example.com",
    ]
    assert "read as an Outlook contacts export" in derived(result)
    assert not [i for i in result.issues if i.code == "unknown_column"]  # one line, not many
    (not_sent,) = [m for m in derived(result) if m.startswith("not sent:")]
    assert "'E-mail 2 Address' (second e-mail)" in not_sent and "'Notes'" in not_sent
    assert "'Middle Name'" in not_sent and "'Job Title'" in not_sent  # every column named


def test_a_google_contacts_export_maps_without_map(tmp_path) -> None:
    header = ["Account", "External ID", "Name", "Given Name", "Additional Name", "Family Name",
              "E-mail 1 - Type", "E-mail 1 - Value", "Phone 1 - Type", "Phone 1 - Value",
              "Phone 2 - Type", "Phone 2 - Value", "Group Membership"]  # fmt: skip
    path = write_csv(
        tmp_path / "google.csv",
        [header, ["AC-1", "g1", "Ann Lee", "Ann", "", "Lee", "* Home", "ann@example.com",
                  "Mobile", "2025550120", "Work", "2025550121", "* myContacts"]],
    )  # fmt: skip
    result = validated(path)
    assert result.valid, result.issues
    assert result.rows.loc[2, ["first_name", "last_name", "phone_number", "email"]].tolist() == [
        "Ann",
        "Lee",
        "+12025550120",
        "ann@example.com",
    ]
    assert "read as a Google Contacts export" in derived(result)


VCARDS = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;John;A.;Dr.;\r\nFN:Dr. John A. Doe\r\n"
    "TEL;TYPE=HOME,VOICE:(212) 555-0101\r\nTEL;TYPE=CELL:(212) 555-0100\r\n"
    "EMAIL;TYPE=INTERNET:john@example.com\r\nNOTE:gate code on file\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:2.1\r\nN:van der Berg;Anna\r\nTEL;WORK:+31 20 794 0958\r\n"
    "END:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cher\r\nEMAIL:cher@example.com\r\nEND:VCARD\r\n"
)


def test_a_vcard_file_reads_as_a_roster(tmp_path) -> None:
    path = tmp_path / "contacts.vcf"
    path.write_text(VCARDS, encoding="utf-8")
    table = read_roster_table(path)
    assert table.headers[:3] == ["First Name", "Last Name", "Mobile Phone"]
    # A vCard has no site and no external id: the reader names what is missing (the sites
    # options give them); everything else is found.
    with pytest.raises(InputError, match="no column for external_contact_id, site_id or "):
        read_roster(path)
    cells = table.cells
    assert cells.loc[2].tolist()[:4] == ["John A.", "Doe", "(212) 555-0100", "(212) 555-0101"]
    assert cells.loc[3].tolist()[:2] == ["Anna", "van der Berg"]
    assert cells.loc[3].tolist()[4] == "+31 20 794 0958"  # Business Phone
    assert cells.loc[4].tolist()[:2] == ["Cher", ""]
    assert table.details["vcard"] == "3 cards; row 2 is the first"


def test_a_vcard_with_the_site_columns_given_validates(tmp_path) -> None:
    """Until the sites options land, a vCard's rows get their site and id through --map of a
    column the cards do not have: here the reader is checked on the cards' own fields, by a
    CSV the same cards would export to (the headers the vCard reader writes)."""
    from bulk_contacts.vcard import VCARD_HEADER, vcard_rows

    rows = vcard_rows(VCARDS, tmp_path / "x.vcf")
    assert rows[0] == VCARD_HEADER
    path = write_csv(
        tmp_path / "cards.csv",
        [["Account", "External ID", *rows[0]]]
        + [["AC-1", f"v{i}", *row] for i, row in enumerate(rows[1:])],
    )
    result = validated(path)
    assert result.rows.loc[2, "phone_number"] == "+12125550100"  # the cell phone first
    assert result.rows.loc[3, "phone_number"] == "+31207940958"
    assert codes(result, "error") == [(4, "missing_value")]  # Cher: no last name


def test_a_damaged_vcard_is_one_line(tmp_path) -> None:
    path = tmp_path / "bad.vcf"
    path.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;John\r\n", encoding="utf-8")
    result = run("validate", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(path) in result.output


def read_roster_table(path: Path):
    from bulk_contacts.roster import read_table

    return read_table(path)


# 5. columns CHeKT cannot hold; a passcode never copied

SECRET = "S3CRET-8842"


def secret_file(tmp_path: Path) -> str:
    return xlsx(
        tmp_path / "secret.xlsx",
        [
            ["Site ID", "External ID", "First Name", "Last Name", "Mobile", "Home Phone",
             "Call Order", "Relation", "Alarm PIN", "Notes", "E-mail"],
            ["1001", "s1", "Ann", "Lee", "2025550100", "2025550109", "1", "owner",
             SECRET + "a", "call after 5", "ann@gmial.com"],
            ["1001", "s2", "BO", "NG", "", "2025550101", "2", "son", SECRET + "b", "",
             "not an address"],
        ],
    )  # fmt: skip


def test_columns_chekt_cannot_hold_are_named_once_up_front(tmp_path) -> None:
    result = validated(secret_file(tmp_path))
    (line,) = [m for m in derived(result) if m.startswith("not sent:")]
    assert line == (
        "not sent: CHeKT contacts have no field for it: G 'Call Order', H 'Relation', "
        "I 'Alarm PIN' (a passcode: its values are never copied anywhere), J 'Notes'"
    )
    assert not [i for i in result.issues if i.code == "unknown_column"]
    shown = run("validate", secret_file(tmp_path))
    lines = shown.output.splitlines()
    first_problem = next(i for i, x in enumerate(lines) if x.startswith("  error"))
    assert any(x.startswith("  not sent: CHeKT") for x in lines[:first_problem])


@pytest.fixture
def seeded(start_sandbox, tmp_path):
    seed = tmp_path / "seed.json"
    site = {
        "site_id": 1001,
        "name": "Zeta",
        "account_number": "AC-1001",
        "external_site_id": "ext-1001",
        "timezone": "America/New_York",
        "contacts": [],
    }
    mexico = {
        "site_id": 1002,
        "name": "Casa Lomas",
        "account_number": "MX-1",
        "external_site_id": "ext-mx",
        "timezone": "America/Mexico_City",
        "contacts": [],
    }
    seed.write_text(json.dumps({"dealers": [{"dealer_id": DEALER, "sites": [site, mexico]}]}))
    return start_sandbox(seed=seed)


def test_a_passcode_is_never_copied_into_any_output(seeded, tmp_path) -> None:
    path = secret_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    outputs = [
        run("validate", path, *[a for s in ("csv", "json", "xlsx")
                                for a in ("--report", str(out / f"v.{s}"))]),
        run("plan", path, "--skip-invalid", "-o", str(out / "plan.json"),
            *[a for s in ("csv", "xlsx", "html") for a in ("--report", str(out / f"p.{s}"))],
            server=seeded),
        run("apply", path, "--skip-invalid", "--yes", "--results", str(out / "results.xlsx"),
            "--journal", str(out / "journal.jsonl"), "--log-file", str(out / "run.log"),
            server=seeded),
        run("apply", path, "--skip-invalid", "--yes", "--results", str(out / "again.csv"),
            "--journal", str(out / "journal2.jsonl"), server=seeded),
    ]  # fmt: skip
    for result in outputs:
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert SECRET not in result.output
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {
        "v.csv", "v.json", "v.xlsx", "plan.json", "p.csv", "p.xlsx", "p.html",
        "results.xlsx", "journal.jsonl", "run.log",
    }  # fmt: skip
    for file in written:
        assert SECRET.encode() not in file.read_bytes(), file
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                for member in archive.namelist():
                    assert SECRET.encode() not in archive.read(member), (file, member)
    # nor in CHeKT: the contact is created without it
    stored = seeded.store.db.execute("SELECT * FROM contacts").fetchall()
    assert stored and SECRET not in repr([tuple(row) for row in stored])
    # the plan's reports carry the numbers not sent, beside each change
    with (out / "p.csv").open(encoding="utf-8-sig") as handle:
        lines = list(csv.DictReader(handle))
    assert [x["not_sent"] for x in lines] == ["'Home Phone' 2025550109"]
    html = (out / "p.html").read_text(encoding="utf-8")
    assert '<th data-type="text">not sent</th>' in html and "2025550109" in html
    sheet = load_workbook(out / "p.xlsx")["Changes"]
    header = [c.value for c in sheet[1]]
    assert sheet.cell(2, header.index("not_sent") + 1).value == "'Home Phone' 2025550109"


# 6. quality checks


def test_email_typos_are_warnings_with_the_likely_domain(tmp_path) -> None:
    assert [likely_domain(d) for d in ("gmial.com", "hotmial.com", "yaho.com")] == [
        "gmail.com",
        "hotmail.com",
        "yahoo.com",
    ]
    assert likely_domain("gmail.com") == likely_domain("mail.com") == ""
    path = write_csv(
        tmp_path / "typo.csv",
        [HEADER, ["AC-1", "c1", "Ann", "Lee", "2025550100", "ann@hotmial.com"],
         ["AC-1", "c2", "Bo", "Ng", "2025550101", "bo@gmail.com"]],
    )  # fmt: skip
    result = validated(path)
    (typo,) = [i for i in result.issues if i.code == "email_typo"]
    assert typo.row == 2 and typo.severity == "warning" and result.valid
    assert "'hotmial.com' looks like a typo of 'hotmail.com'" in typo.message
    assert "write 'ann@hotmail.com'" in typo.message


def test_name_case_warns_by_default_and_title_fixes_with_nameparser(tmp_path) -> None:
    path = write_csv(
        tmp_path / "case.csv",
        [HEADER, ["AC-1", "c1", "SEAN", "MCDONALD", "2025550100", ""],
         ["AC-1", "c2", "ann", "o'neil", "2025550101", ""],
         ["AC-1", "c3", "Anna", "VAN DER BERG", "2025550102", ""],
         ["AC-1", "c4", "Bo", "Ng", "2025550103", ""]],
    )  # fmt: skip
    kept = validated(path)
    assert kept.rows["last_name"].tolist() == ["MCDONALD", "o'neil", "VAN DER BERG", "Ng"]
    cases = [(i.row, i.field, i.value) for i in kept.issues if i.code == "name_case"]
    assert cases == [
        (2, "first_name", "SEAN"),
        (2, "last_name", "MCDONALD"),
        (3, "first_name", "ann"),
        (3, "last_name", "o'neil"),
        (4, "last_name", "VAN DER BERG"),
    ]
    assert "--name-case title sends it as 'McDonald'" in kept.issues[1].message
    fixed = validated(path, name_case="title")
    assert fixed.rows["last_name"].tolist() == ["McDonald", "O'Neil", "van der Berg", "Ng"]
    assert fixed.rows["first_name"].tolist() == ["Sean", "Ann", "Anna", "Bo"]
    assert not [i for i in fixed.issues if i.code == "name_case"]
    assert any(m.startswith("5 names written all in capitals") for m in derived(fixed))
    shown = run("validate", path, "--name-case", "title")
    assert shown.exit_code == 0 and "sent in title case" in shown.output


def test_a_phone_written_as_a_float_has_its_own_code(tmp_path) -> None:
    path = write_csv(
        tmp_path / "float.csv",
        [HEADER, ["AC-1", "c1", "Ann", "Lee", "2125550111.0", ""],
         ["AC-1", "c2", "Bo", "Ng", "12.0", ""]],
    )  # fmt: skip
    result = validated(path)
    assert codes(result, "warning")[:1] == [(2, "phone_float")]
    assert result.rows.loc[2, "phone_number"] == "+12125550111"
    (issue,) = [i for i in result.issues if i.code == "phone_float"]
    assert "written as a decimal" in issue.message and "'+12125550111'" in issue.message
    assert (3, "invalid_phone") in codes(result, "error")


def test_a_site_timezone_tells_its_country() -> None:
    assert country_of_timezone("America/Mexico_City") == "MX"
    assert country_of_timezone("America/New_York") == "US"
    assert country_of_timezone("Nowhere/Else") == country_of_timezone(None) == ""


def test_phone_region_warns_at_plan_time_with_the_number_as_the_site_reads_it(
    seeded, tmp_path
) -> None:
    path = write_csv(
        tmp_path / "mx.csv",
        [HEADER, ["MX-1", "m1", "Ana", "Ruiz", "5512345678", ""],
         ["MX-1", "m2", "Luis", "Paz", "+52 55 1234 5679", ""],
         ["AC-1001", "z1", "Zed", "Lee", "2025550100", ""]],
    )  # fmt: skip
    assert not [i for i in validated(path).issues if i.code == "phone_region"]  # no site yet
    out = tmp_path / "plan.json"
    result = run("plan", path, "-o", str(out), server=seeded)
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text(encoding="utf-8"))
    (warning,) = [w for w in plan["warnings"] if w["code"] == "phone_region"]
    assert warning["row"] == 2  # not the number written with +52
    assert "'5512345678' is read as a number of United States (+15512345678" in warning["message"]
    assert "site is in Mexico (its timezone America/Mexico_City)" in warning["message"]
    assert "as a number of Mexico it reads +525512345678" in warning["message"]
    assert "phone_region" in result.output


def test_every_new_code_is_registered() -> None:
    for name in ("phone_float", "name_one_word", "name_split", "name_case", "email_typo",
                 "phone_region", "header_row", "name_from_full", "phone_from_columns",
                 "phones_not_sent", "not_sent", "known_export", "name_case_fixed"):  # fmt: skip
        assert name in CODES
