"""Reading rosters exactly as the user sees them, from every kind of file dealers really send."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from click.testing import CliRunner

from bulk_contacts.cli import main
from bulk_contacts.errors import InputError
from bulk_contacts.roster import read_roster, read_table

HEADER = ["Account #", "External ID", "First Name", "Last Name", "Phone", "E-mail"]
ROWS = [
    ["00123", "c-1", "José", "Ñúñez", "2025550143", "jose@example.com"],
    ["00123", "c-2", "NA", "None", "(202) 555-0187", ""],
    ["0456", "c-3", "null", "N/A", "+44 20 7946 0958", "x@example.org"],
]


def csv_text(delimiter: str = ",", rows=ROWS, header=HEADER) -> str:
    return "\r\n".join(delimiter.join(r) for r in [header, *rows]) + "\r\n"


def as_lists(path: Path, **options) -> list[list[str]]:
    roster = read_roster(path, **options)
    columns = [
        "account_number",
        "external_contact_id",
        "first_name",
        "last_name",
        "phone_number",
        "email",
    ]
    return roster.frame[columns].values.tolist()


# CSV dialects and encodings


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("cp1252", b"")],
)
def test_csv_dialects_and_encodings_read_exactly(tmp_path, delimiter, encoding, prefix) -> None:
    rows = [r[:] for r in ROWS]
    if encoding == "cp1252":  # Windows-1252 has no CJK, but has the accents
        rows[2][2] = "Zoë"
    path = tmp_path / "roster.csv"
    path.write_bytes(prefix + csv_text(delimiter, rows).encode(encoding))
    assert as_lists(path) == rows


def test_legacy_windows_1252_is_detected_not_guessed_wrong(tmp_path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(
        csv_text(rows=[["1", "c", "Renée", "Müller", "", "€uro@example.com"]]).encode("cp1252")
    )
    table = read_table(path)
    assert table.details["encoding"] == "windows-1252"
    assert as_lists(path)[0][2:4] == ["Renée", "Müller"]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_csv_mixing_utf8_and_windows_1252_is_refused_naming_the_lines(tmp_path, bom) -> None:
    """QA (inputs): a CSV whose rows were pasted from two programs, one UTF-8 (`Zoë`), one
    Windows-1252 (`Renée`'s é as the byte E9), was read whole as Windows-1252: `ZoÃ«` and
    `LefÃ¨vre` were valid and sent (an update of the real Zoë). With a BOM, the E9 became
    U+FFFD (`Ren�e`), sent as well. Neither reading is right: refused, naming both lines."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        bom
        + b"site_id,external_contact_id,first_name,last_name,phone_number\r\n"
        + "101,E1,Zoë,Lefèvre,2025550143\r\n".encode()
        + "101,E2,Renée,Dubois,2025550144\r\n".encode("cp1252")
    )
    with pytest.raises(InputError) as raised:
        read_roster(path)
    message = str(raised.value)
    assert "line 3" in message and "0xE9" in message and "UTF-8" in message, message
    if not bom:
        assert "line 2" in message, message
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_quoted_cells_with_delimiters_and_newlines(tmp_path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(
        "Account #,External ID,First Name,Last Name\n"
        '"1,2",c1,"Mary ""Molly""","Smith\nJones"\n4,c2,A,B\n',
        encoding="utf-8",
    )
    roster = read_roster(path)
    assert roster.frame.loc[2, "account_number"] == "1,2"
    assert roster.frame.loc[2, "first_name"] == 'Mary "Molly"'
    assert roster.frame.loc[2, "last_name"] == "Smith\nJones"
    assert list(roster.frame.index) == [2, 3]


def test_blank_rows_are_skipped_and_row_numbers_kept(tmp_path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("Account #,External ID,First Name,Last Name\n1,a,A,A\n\n,,,\n2,b,B,B\n")
    assert list(read_roster(path).frame.index) == [2, 5]


# workbooks


def openpyxl_workbook(path: Path, *, leading_sheet: str | None = None, hidden: bool = False):
    workbook = openpyxl.Workbook()
    first = workbook.active
    if leading_sheet:
        first.title = leading_sheet
        first["A1"] = "Read me first"
        if hidden:
            first.sheet_state = "hidden"
        sheet = workbook.create_sheet("Roster")
    else:
        sheet = first
        sheet.title = "Contacts"
    sheet.append(["Account #", "External ID", "First Name", "Last Name", "Phone", "E-mail"])
    sheet.append([123, "c-1", "Ann", "Lee", 2025550143, "ann@example.com"])
    sheet.append(["00123", 42, "NA", "None", 2025550187.0, None])
    sheet.append([None, None, None, None, None, None])  # a blank row
    sheet.append([7, "c-3", "Zoë", "Ng", "+1 202 555 0100", ""])
    workbook.save(path)
    return path


def test_numeric_cells_are_the_integer_text_the_user_sees(tmp_path) -> None:
    path = openpyxl_workbook(tmp_path / "roster.xlsx")
    roster = read_roster(path)
    assert roster.frame.loc[2, "phone_number"] == "2025550143"
    assert roster.frame.loc[3, "phone_number"] == "2025550187"
    assert roster.frame.loc[2, "account_number"] == "123"
    assert roster.frame.loc[3, "account_number"] == "00123"
    assert roster.frame.loc[3, "external_contact_id"] == "42"
    assert roster.frame.loc[3, ["first_name", "last_name"]].tolist() == ["NA", "None"]
    assert list(roster.frame.index) == [2, 3, 5]


def test_contacts_sheet_wins_else_first_visible_sheet(tmp_path) -> None:
    path = openpyxl_workbook(tmp_path / "hidden.xlsx", leading_sheet="Notes", hidden=True)
    assert read_table(path).details["sheet"] == "Roster"
    path = openpyxl_workbook(tmp_path / "instructions.xlsx", leading_sheet="Instructions")
    with pytest.raises(InputError, match="no column for"):
        read_roster(path)  # the first visible sheet is the instructions
    assert read_roster(path, sheet="roster").frame.loc[2, "first_name"] == "Ann"
    with pytest.raises(InputError, match="no sheet named 'Nope'; its sheets are"):
        read_roster(path, sheet="Nope")


def test_a_cell_merged_across_roster_columns_is_an_error_not_a_copy(tmp_path) -> None:
    """QA (inputs): a cell merged across First Name and Last Name (`John Doe`) gave its value to
    both: John Doe John Doe, valid and sent. A merged cell's value copied down its rows is the
    site of each (kept); copied into the columns to its right, it is no value of theirs:
    `merged_across` on those cells."""
    from bulk_contacts.schema import validate_roster

    path = tmp_path / "merged.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.merge_range(0, 0, 0, 5, "ACME contact roster")  # a title above the header: no matter
    sheet.write_row(1, 0, ["Account #", "External ID", "First Name", "Last Name", "Phone"])
    sheet.merge_range(2, 0, 4, 0, "ACCT-9")  # one account for three people: read on each row
    sheet.write_row(2, 1, ["c1"])
    sheet.merge_range(2, 2, 2, 3, "John Doe")
    sheet.write_row(2, 4, ["2025550143"])
    sheet.write_row(3, 1, ["c2", "Ann", "Lee", "2025550144"])
    sheet.write_row(4, 1, ["c3", "Bo", "Ng", "2025550145"])
    workbook.close()
    validated = validate_roster(read_roster(path))
    assert validated.rows["account_number"].tolist() == ["ACCT-9"] * 3
    [issue] = [i for i in validated.issues if i.severity == "error"]
    assert (issue.row, issue.field, issue.code) == (3, "last_name", "merged_across")
    assert "John Doe" in issue.message and "merged" in issue.message, issue.message
    assert validated.invalid_rows == {3}


def test_xlsxwriter_workbook_with_numbers_dates_merged_cells_and_formulas(tmp_path) -> None:
    path = tmp_path / "made.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["Account #", "External ID", "First Name", "Last Name", "Phone"])
    sheet.merge_range(1, 0, 3, 0, "ACCT-9")  # one account for three people
    sheet.write_row(1, 1, ["c1", "Ann", "Lee"])
    sheet.write_number(1, 4, 2025550143)
    sheet.write_row(2, 1, ["c2", "Bo", "Lee"])
    sheet.write_datetime(
        2,
        4,
        __import__("datetime").datetime(2024, 1, 5),
        workbook.add_format({"num_format": "yyyy-mm-dd"}),
    )
    sheet.write_row(3, 1, ["c3", "Cy"])
    sheet.write_formula(3, 3, '="L"&"ee"', None, "Lee")
    sheet.write_number(3, 4, 3.5)
    workbook.close()
    roster = read_roster(path)
    assert roster.frame["account_number"].tolist() == ["ACCT-9"] * 3
    assert roster.frame.loc[2, "phone_number"] == "2025550143"
    assert roster.frame.loc[3, "phone_number"] == "2024-01-05"
    assert (3, 4) in roster.table.date_cells
    assert roster.frame.loc[4, "last_name"] == "Lee"  # the formula's cached value
    assert roster.frame.loc[4, "phone_number"] == "3.5"


def test_formula_without_a_cached_value_is_found(tmp_path) -> None:
    path = tmp_path / "script.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(["Account #", "External ID", "First Name", "Last Name"])
    sheet.append(["1", "c1", "Ann", '=UPPER("lee")'])
    workbook.save(path)
    roster = read_roster(path)
    assert roster.table.formula_cells == {(2, 3)}
    assert roster.frame.loc[2, "last_name"] == ""


def test_xlsm_xls_and_ods_are_read(tmp_path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        [["A1", "c1", "Ann", "Lee", "2025550143"]],
        columns=["Account #", "External ID", "First Name", "Last Name", "Phone"],
    )
    xlsm = tmp_path / "macro.xlsm"
    openpyxl_workbook(xlsm)
    assert read_roster(xlsm).frame.loc[2, "phone_number"] == "2025550143"
    ods = tmp_path / "calc.ods"
    frame.to_excel(ods, engine="odf", index=False, sheet_name="Contacts")
    assert read_roster(ods).frame.loc[2, "first_name"] == "Ann"
    import xlwt

    xls = tmp_path / "old.xls"
    book = xlwt.Workbook()
    sheet = book.add_sheet("Contacts")
    for col, value in enumerate(frame.columns):
        sheet.write(0, col, value)
    for col, value in enumerate(["A1", "c1", "Ann", "Lee", 2025550143]):
        sheet.write(1, col, value)
    book.save(str(xls))
    assert read_roster(xls).frame.loc[2, "phone_number"] == "2025550143"


# headers


def test_headers_match_whatever_the_case_spacing_and_punctuation(tmp_path) -> None:
    path = tmp_path / "headers.csv"
    path.write_text(
        "ACCOUNT NO.,external_contact_id,first-name,SURNAME,Mobile,e mail,Notes\n"
        "1,c,A,B,2025550143,a@example.com,call after 5\n"
    )
    roster = read_roster(path)
    assert roster.frame.loc[
        2, ["account_number", "last_name", "phone_number", "email"]
    ].tolist() == ["1", "B", "2025550143", "a@example.com"]
    # Notes is a column CHeKT has no field for: named once as not sent, not as unknown
    assert roster.ignored_columns == []
    assert roster.facts.not_sent == [("G", "Notes", "notes")]


def test_map_adds_a_header(tmp_path) -> None:
    path = tmp_path / "custom.csv"
    path.write_text("Acct,Person Key,Given,Family,Cellular\n1,c,A,B,2025550143\n")
    roster = read_roster(
        path,
        column_map={
            "Person Key": "external_contact_id",
            "Given": "first_name",
            "Family": "last_name",
            "Cellular": "phone_number",
        },
    )
    assert roster.frame.loc[2, "phone_number"] == "2025550143"


def test_a_missing_column_names_the_headers_found_and_the_closest(tmp_path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("Account #,External ID,Frist Name,Last Name\n1,c,A,B\n")
    with pytest.raises(InputError) as caught:
        read_roster(path)
    message = str(caught.value)
    assert "no column for first_name" in message
    assert "A 'Account #', B 'External ID', C 'Frist Name', D 'Last Name'" in message
    assert '--map "Frist Name=first_name"' in message


def test_two_columns_meaning_the_same_field_is_refused(tmp_path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("Account #,External ID,First Name,Last Name,Surname\n1,c,A,B,C\n")
    with pytest.raises(
        InputError, match="columns D 'Last Name' and E 'Surname' both mean last_name"
    ):
        read_roster(path)
    # Several phone columns are not refused: the first non-empty one is taken (test_layouts.py)


# files that are not rosters: a clear message, exit code 2, no traceback


def zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * 2**20
            for _ in range(64):  # 64 MB of zeros in about 64 KB: no spreadsheet packs so well
                member.write(chunk)
    return path


def billion_laughs(path: Path) -> Path:
    """An xlsx whose shared strings define exponentially nested entities."""
    source = openpyxl_workbook(path.with_name("base.xlsx"))
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as crafted:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = data.replace(b"?>", f"?><!DOCTYPE x [{entities}]>".encode(), 1)
                data = data.replace(b"<t>Ann</t>", b"<t>&lol9;</t>")
            crafted.writestr(item, data)
    return path


def put(suffix: str, data: bytes):
    def make(base: Path) -> Path:
        path = base.with_suffix(suffix)
        path.write_bytes(data)
        return path

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (put(".xlsx", b"%PDF-1.7 not a workbook"), "not a real .xlsx workbook"),
        (put(".xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600), "password-protected"),
        (put(".csv", b""), "the file is empty"),
        (put(".csv", b"\x00\x01\x02binary\x00"), "not a text file"),
        (put(".csv", b"\n\n,,\n"), "every cell is empty"),
        (lambda p: zip_bomb(p.with_suffix(".xlsx")), "zip bomb"),
        (lambda p: p / "missing.xlsx", "no such file"),
        (put(".xlsx", b"PK\x03\x04 truncated"), "damaged workbook"),
        (put(".xls", b"<html><table><tr><td>x</td></tr></table></html>"), "holds HTML"),
        (put(".xlsx", b"<!DOCTYPE html><html><body>x</body></html>"), "not a real .xlsx workbook"),
        (put(".ods", b"<table><tr><td>x</td></tr></table>"), "not a real .ods workbook"),
    ],
    ids=[
        "pdf",
        "encrypted",
        "empty",
        "binary",
        "blank",
        "zip-bomb",
        "missing",
        "truncated",
        "html",
        "html-as-xlsx",
        "html-as-ods",
    ],
)
def test_bad_files_are_a_clear_error_with_exit_code_2(tmp_path, make, message) -> None:
    path = make(tmp_path / "bad")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and str(path) in result.output
    assert "Traceback" not in result.output


def test_xml_entity_expansion_is_not_expanded(tmp_path) -> None:
    import resource

    path = billion_laughs(tmp_path / "laughs.xlsx")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = CliRunner().invoke(main, ["validate", str(path)])
    # expanded, the entities would take gigabytes (and the time to build them)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB
    assert "Traceback" not in result.output
    assert "lollollol" not in result.output
    assert result.exit_code == 2 and "cannot be read as a workbook" in result.output


def test_what_the_reader_reads_is_what_the_cli_reports(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(io.BytesIO(csv_text(";").encode("utf-16")).getvalue())
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "encoding utf-16, delimiter ;" in result.output


def test_sheet_given_with_a_csv_file_is_refused_not_ignored(tmp_path) -> None:
    """QA (inputs): `validate roster.csv --sheet Staff` read the CSV and said nothing: whoever
    named a sheet meant a workbook (another file), not this one."""
    path = tmp_path / "roster.csv"
    path.write_text(csv_text(), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path), "--sheet", "Staff"])
    assert result.exit_code == 2, result.output
    assert "--sheet 'Staff'" in result.output and "no sheets" in result.output
