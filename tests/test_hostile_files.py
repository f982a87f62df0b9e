"""Files built to crash, hang or fool the reader: every one a one-line refusal (exit 2), or read
for what it really is.

The files that once aborted the process or ate gigabytes are read in a child process capped at
4 GB of address space, so a regression fails the test instead of taking pytest (or the machine)
down with it.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import olefile
import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_contacts.cli import main
from bulk_contacts.errors import InputError
from bulk_contacts.sheet_limits import MAX_CELLS, column_number, xlsx_extent
from bulk_contacts.spreadsheet import column_letter, read_cells

from . import warm
from .thorough import examples

HEADER = ["Account #", "External ID", "First Name", "Last Name", "Phone"]
ROW = ["A1", "c1", "Ann", "Lee", "+12025550143"]
MEMORY_CAP = 4 * 2**30


CAPPED = {resource.RLIMIT_AS: (MEMORY_CAP, MEMORY_CAP)}  # the commands' address space


def read_in_child(path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`read_cells(path)` in a child process under the memory cap: exit 0 (read), 2 (refused,
    the message on stderr) or whatever a crash gives."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bulk_contacts.errors import InputError\n"
        "from bulk_contacts.spreadsheet import read_cells\n"
        "try:\n"
        "    cells = read_cells(Path(sys.argv[1]), *sys.argv[2:] or [None])\n"
        "except InputError as error:\n"
        "    print(error, file=sys.stderr)\n"
        "    sys.exit(2)\n"
        "print(len(cells.rows), max(map(len, cells.rows), default=0))\n"
    )
    return warm.run(
        [sys.executable, "-c", script, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        rlimits=CAPPED,
    )


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused" in lines[0] and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


# xlsx built part by part, to write what no library writes

CONTENT_TYPES = (
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
    'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>{overrides}</Types>'
)
RELS = (
    '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
OFFICE_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def raw_xlsx(path: Path, *sheets: tuple[str, str], dimension: str = "") -> Path:
    """An xlsx whose sheets' `<sheetData>` are the given XML (with the `x:` prefix bound)."""
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/'
        f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    listed = "".join(
        f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>'
        for n, (name, _) in enumerate(sheets, 1)
    )
    links = "".join(
        f'<Relationship Id="rId{n}" Type="{OFFICE_RELS}/worksheet" '
        f'Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    declared = f'<x:dimension ref="{dimension}"/>' if dimension else ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES.format(overrides=overrides))
        archive.writestr("_rels/.rels", RELS)
        archive.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{OFFICE_RELS}">'
            f"<sheets>{listed}</sheets></workbook>",
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships">{links}</Relationships>',
        )
        for n, (_, data) in enumerate(sheets, 1):
            archive.writestr(
                f"xl/worksheets/sheet{n}.xml",
                f'<?xml version="1.0"?><x:worksheet xmlns:x="{MAIN}">{declared}'
                f"<x:sheetData>{data}</x:sheetData></x:worksheet>",
            )
    return path


def cell(value: str, reference: str | None = None, attributes: str = "") -> str:
    where = f' r="{reference}"' if reference else ""
    return f'<x:c{where}{attributes} t="inlineStr"><x:is><x:t>{value}</x:t></x:is></x:c>'


def roster_rows() -> str:
    return "".join(
        f'<x:row r="{n}">'
        + "".join(cell(v, f"{column_letter(i)}{n}") for i, v in enumerate(values))
        + "</x:row>"
        for n, values in ((1, HEADER), (2, ROW))
    )


def test_one_value_at_xfd1048576_is_refused_in_one_line(tmp_path: Path) -> None:
    """The issue's file: 5 KB, made by openpyxl; calamine asked for 17 billion cells."""
    path = tmp_path / "far.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(HEADER)
    sheet.append(ROW)
    sheet["XFD1048576"] = "x"
    workbook.save(path)
    assert path.stat().st_size < 10_000
    result = warm.run(
        [sys.executable, "-m", "bulk_contacts", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        rlimits=CAPPED,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and "XFD1048576" in result.stderr
    assert f"{MAX_CELLS:,}" in result.stderr


FAR = "XFD1048576"


@pytest.mark.parametrize(
    "data",
    [
        roster_rows() + f'<x:row r="1048576">{cell("x", FAR)}</x:row>',
        # the cell's own r wins over its row's
        roster_rows() + f'<x:row r="3">{cell("x", FAR)}</x:row>',
        # r after other attributes, in single quotes, in lower case
        roster_rows() + "<x:row r='9'><x:c t='inlineStr' r='xfd1048576'><x:is><x:t>x</x:t>"
        "</x:is></x:c></x:row>",
        # a '>' inside an attribute value before r
        roster_rows() + f'<x:row><x:c s="a>b" r="{FAR}" t="inlineStr"><x:is><x:t>x</x:t>'
        "</x:is></x:c></x:row>",
        # cells without r: one after the other, 16,384 of them on a far row
        roster_rows() + '<x:row r="1048576">' + "<x:c><x:v>1</x:v></x:c>" * 16384 + "</x:row>",
        # rows without r, after a far one
        roster_rows() + '<x:row r="1048575"/><x:row/><x:row>' + cell("x", "P") + "</x:row>",
    ],
    ids=["far-row", "ref-beyond-its-row", "quotes-order-case", "gt-in-value", "no-r", "row-r"],
)
def test_crafted_far_cells_are_refused_however_written(tmp_path: Path, data: str) -> None:
    path = raw_xlsx(tmp_path / "crafted.xlsx", ("Contacts", data))
    assert_refused(read_in_child(path), "refused")


def test_a_far_cell_in_the_sheet_asked_for_or_the_snapshot_is_refused(tmp_path: Path) -> None:
    far = f'<x:row r="1048576">{cell("x", FAR)}</x:row>'
    asked = raw_xlsx(tmp_path / "asked.xlsx", ("Contacts", roster_rows()), ("Other", far))
    assert_refused(read_in_child(asked, "Other"), "sheet Other")
    assert read_in_child(asked).returncode == 0  # the far sheet is not read, so not refused
    snapshot = raw_xlsx(
        tmp_path / "snapshot.xlsx",
        ("Contacts", roster_rows()),
        ("bulk-contacts snapshot", far),
    )
    assert_refused(read_in_child(snapshot), "sheet bulk-contacts snapshot")


def test_a_sheet_declared_huge_but_small_is_read(tmp_path: Path) -> None:
    """Excel declares A1:XFD1048576 when a cell that far is only formatted: calamine does not
    size the sheet by the declaration, so the roster is read."""
    formatted = f'<x:row r="1048576"><x:c r="{FAR}" s="1"/></x:row>'
    path = raw_xlsx(
        tmp_path / "declared.xlsx",
        ("Contacts", roster_rows() + formatted),
        dimension="A1:XFD1048576",
    )
    result = read_in_child(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", str(len(HEADER))]


def test_a_stray_cell_far_below_a_small_roster_is_refused_naming_it(tmp_path: Path) -> None:
    """Within Excel's limits, but 16 million empty cells for 9 values: the message names the
    cell to delete."""
    path = raw_xlsx(
        tmp_path / "stray.xlsx",
        ("Contacts", roster_rows() + f'<x:row r="1000000">{cell("note", "J1000000")}</x:row>'),
    )
    assert_refused(read_in_child(path), "J1000000", "at least one in 16")


def test_a_full_roster_near_the_limits_is_read(tmp_path: Path) -> None:
    """200,000 rows by 4 columns, every cell filled (written as openpyxl would, `<c r=` first):
    the quick scan's own path."""
    rows = "".join(
        f'<x:row r="{n}">'
        + "".join(f'<x:c r="{c}{n}"><x:v>{n}</x:v></x:c>' for c in "ABCD")
        + "</x:row>"
        for n in range(1, 200_001)
    )
    xml = f'<worksheet xmlns="{MAIN}"><sheetData>{rows}</sheetData></worksheet>'
    extent = xlsx_extent(xml.replace("x:", "").encode())
    assert (extent.rows, extent.columns) == (200_000, 4)
    assert extent.excess() is None


# a Hypothesis property: the scan never finds a sheet smaller than calamine does

cells_strategy = st.lists(
    st.tuples(st.integers(1, 300), st.integers(1, 60), st.booleans()),
    min_size=1,
    max_size=12,
)


def written(cells: list[tuple[int, int, bool]]) -> str:
    """Cells in row order; `explicit` False leaves the cell's r out (so it lands after the
    previous one), and the rows carry their own r."""
    by_row: dict[int, list[tuple[int, bool]]] = {}
    for row, column, explicit in cells:
        by_row.setdefault(row, []).append((column, explicit))
    out = ""
    for row in sorted(by_row):
        out += f'<x:row r="{row}">'
        for column, explicit in sorted(set(by_row[row])):
            reference = f"{column_letter(column - 1)}{row}" if explicit else None
            out += cell("v", reference)
        out += "</x:row>"
    return out


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cells=cells_strategy)
def test_the_scan_never_finds_a_sheet_smaller_than_calamine(tmp_path: Path, cells) -> None:
    from python_calamine import CalamineWorkbook

    data = written(cells)
    path = raw_xlsx(tmp_path / "random.xlsx", ("Contacts", data))
    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Contacts")
    last_row, last_column = sheet.end
    extent = xlsx_extent(zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml"))
    assert extent.rows >= last_row + 1 and extent.columns >= last_column + 1
    plain = xlsx_extent(zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").replace(b"x:", b""))
    assert plain.rows >= last_row + 1 and plain.columns >= last_column + 1


def test_column_numbers() -> None:
    assert [column_number(x) for x in (b"A", b"z", b"AA", b"XFD")] == [1, 26, 27, 16384]


# xls: calamine reads every sheet on opening, and sizes it by its DIMENSIONS record


def xls_workbook(path: Path, far: tuple[int, int] | None = None) -> Path:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Contacts")
    for row, values in enumerate((HEADER, ROW)):
        for column, value in enumerate(values):
            sheet.write(row, column, value)
    if far:
        sheet.write(*far, "far")
    book.save(str(path))
    return path


def patch_xls(path: Path, change) -> Path:
    """Rewrite records of the Workbook stream in place (same length): `change(kind, body)`
    returns new body bytes or None."""
    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        data = bytearray(ole.openstream("Workbook").read())
        position = 0
        while position + 4 <= len(data):
            kind, length = struct.unpack_from("<HH", data, position)
            body = bytes(data[position + 4 : position + 4 + length])
            new = change(kind, body)
            if new is not None:
                data[position + 4 : position + 4 + length] = new
            position += 4 + length
        ole.write_stream("Workbook", bytes(data))
    return path


def test_an_xls_with_one_cell_at_iv65536_is_refused(tmp_path: Path) -> None:
    """xlwt's largest sheet, 5 KB: 1.2 GB once read."""
    path = xls_workbook(tmp_path / "far.xls", far=(65535, 255))
    assert path.stat().st_size < 10_000
    assert_refused(read_in_child(path), "IV65536", "sheet Contacts")


def test_an_xls_cell_past_its_format_is_refused(tmp_path: Path) -> None:
    """A LABELSST record moved to row 65536, column 65536: calamine aborted."""
    path = xls_workbook(tmp_path / "crafted.xls", far=(3, 3))

    def move(kind: int, body: bytes) -> bytes | None:
        if kind == 0x00FD and struct.unpack_from("<HH", body) == (3, 3):
            return struct.pack("<HH", 65535, 65535) + body[4:]
        return None

    patch_xls(path, move)
    assert_refused(read_in_child(path), "65,536 columns")


def test_an_xls_declaring_four_billion_rows_is_refused(tmp_path: Path) -> None:
    """A DIMENSIONS record claiming every row and column: calamine aborted."""
    path = xls_workbook(tmp_path / "declared.xls")

    def declare(kind: int, body: bytes) -> bytes | None:
        if kind == 0x0200:
            return struct.pack("<IIHH", 0, 0xFFFFFFFF, 0, 0xFFFF) + body[12:]
        return None

    patch_xls(path, declare)
    assert_refused(read_in_child(path), "declares 4,294,967,295 rows")


def test_an_ordinary_xls_is_read(tmp_path: Path) -> None:
    cells = read_cells(xls_workbook(tmp_path / "ok.xls"))
    assert cells.rows == [HEADER, ROW]


# ods: repeated rows and cells


MANIFEST = (
    '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
    'xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type='
    '"application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path='
    '"content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
)


def raw_ods(path: Path, body: str, name: str = "Contacts") -> Path:
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="{name}">{body}'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", MANIFEST)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    return path


def ods_cell(value: str | None, repeat: int = 1) -> str:
    repeated = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    if value is None:
        return f"<table:table-cell{repeated}/>"
    return (
        f'<table:table-cell office:value-type="string"{repeated}><text:p>{value}</text:p>'
        "</table:table-cell>"
    )


def ods_row(cells: str, repeat: int = 1) -> str:
    repeated = f' table:number-rows-repeated="{repeat}"' if repeat > 1 else ""
    return f"<table:table-row{repeated}>{cells}</table:table-row>"


ODS_ROSTER = ods_row("".join(map(ods_cell, HEADER))) + ods_row("".join(map(ods_cell, ROW)))


@pytest.mark.parametrize(
    "body",
    [
        # 200 columns by 100,000 rows of one repeated value: 20 million cells, 1 KB
        ods_row(ods_cell("x", 200), 100_000),
        ods_row(ods_cell(None, 16383), 1_048_574) + ods_row(ods_cell(None, 16383) + ods_cell("x")),
    ],
    ids=["repeated-value", "far-cell"],
)
def test_repeated_ods_cells_past_the_limits_are_refused(tmp_path: Path, body: str) -> None:
    path = raw_ods(tmp_path / "crafted.ods", ODS_ROSTER + body)
    assert path.stat().st_size < 5_000
    assert_refused(read_in_child(path), "sheet Contacts")


def test_a_refused_ods_sheet_is_named_as_the_workbook_names_it(tmp_path: Path) -> None:
    """The sheet's name in content.xml is XML: `Sites &amp; "Contacts"` is named `Sites &
    "Contacts"`, as the sheet's tab shows it, not with its entities."""
    body = ODS_ROSTER + ods_row(ods_cell("x", 200), 100_000)
    path = raw_ods(tmp_path / "crafted.ods", body, "Sites &amp; &quot;Contacts&quot;")
    assert_refused(read_in_child(path), 'sheet Sites & "Contacts"')


def test_an_ods_with_libreoffices_trailing_empty_repeats_is_read(tmp_path: Path) -> None:
    body = ODS_ROSTER.replace("</table:table-row>", ods_cell(None, 16380) + "</table:table-row>")
    body += ods_row(ods_cell(None, 16384), 1_048_574)
    cells = read_cells(raw_ods(tmp_path / "libre.ods", body))
    assert cells.rows == [HEADER, ROW]


# CSV: a cell past the csv module's limit


def test_a_50_mb_cell_is_a_one_line_error_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("w") as out:
        out.write(",".join(HEADER) + "\n" + ",".join(ROW) + "\n")
        out.write('A1,c2,"' + "x" * 50 * 2**20 + '",Lee\n')
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output[-2000:]
    assert result.output.count("\n") == 1
    assert "row 3" in result.output and str(path) in result.output
    assert "_csv.Error" not in result.output and "Traceback" not in result.output


def test_an_unclosed_quote_swallowing_the_file_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(",".join(HEADER) + "\n" + 'A1,c1,"Ann,Lee\n' + "A1,c2,Bo,Li\n" * 20_000)
    with pytest.raises(InputError, match=r"row 2 \(line \d+\) has a cell longer than 131,072"):
        read_cells(path)


# files that are not files


def run_validate(path: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return warm.run(
        [sys.executable, "-m", "bulk_contacts", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_a_fifo_named_roster_csv_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    os.mkfifo(path)
    result = run_validate(path)
    assert result.returncode == 2
    assert "not a regular file (a named pipe (FIFO))" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_device_named_roster_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.symlink_to("/dev/zero")
    result = run_validate(path)
    assert result.returncode == 2 and "not a regular file (a device)" in result.stderr


def test_a_folder_named_roster_csv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_cells(tmp_path / "roster.csv")


# the real format, whatever the name


def ods_roster(path: Path) -> Path:
    import pandas as pd

    pd.DataFrame([ROW], columns=HEADER).to_excel(path, engine="odf", index=False)
    return path


def xlsx_roster(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    workbook.active.title = "Contacts"
    workbook.active.append(HEADER)
    workbook.active.append(ROW)
    workbook.save(path)
    return path


def csv_roster(path: Path) -> Path:
    path.write_text(",".join(HEADER) + "\n" + ",".join(ROW) + "\n")
    return path


@pytest.mark.parametrize(
    ("make", "name", "kind"),
    [
        (xls_workbook, "renamed.xlsx", "an XLS workbook (Excel 97-2003)"),
        (ods_roster, "renamed.xlsx", "an ODS spreadsheet"),
        (xlsx_roster, "renamed.csv", "an XLSX workbook"),
        (ods_roster, "renamed.xls", "an ODS spreadsheet"),
        (csv_roster, "renamed.xlsx", "a text (CSV) file"),
        (xlsx_roster, "renamed.ods", "an XLSX workbook"),
    ],
    ids=["xls-as-xlsx", "ods-as-xlsx", "xlsx-as-csv", "ods-as-xls", "csv-as-xlsx", "xlsx-as-ods"],
)
def test_a_renamed_file_is_read_as_what_it_is(tmp_path: Path, make, name: str, kind: str) -> None:
    source = make(tmp_path / f"source{Path(name).suffix}")
    path = tmp_path / name
    shutil.move(source, path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"format {kind} (the file is named {path.suffix})" in result.output


def test_a_file_named_for_its_format_gets_no_note(tmp_path: Path) -> None:
    cells = read_cells(xlsx_roster(tmp_path / "roster.xlsx"))
    assert "format" not in cells.details


def test_a_password_protected_xlsx_says_so(tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = xlsx_roster(tmp_path / "plain.xlsx")
    encrypted = io.BytesIO()
    with plain.open("rb") as source:
        OOXMLFile(source).encrypt("secret", encrypted)
    path = tmp_path / "locked.xlsx"
    path.write_bytes(encrypted.getvalue())
    with pytest.raises(InputError, match=r"password-protected \(encrypted\); open it in Excel"):
        read_cells(path)


def written_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


OPEN_DOCUMENT = "application/vnd.oasis.opendocument.spreadsheet"
XLSX_PARTS = {"[Content_Types].xml": "<Types/>", "xl/_rels/workbook.xml.rels": "<Relationships/>"}


def zip_of(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: zip_of(p, {"word/document.xml": "<w/>"}), "it is a Word document"),
        (lambda p: zip_of(p, {"xl/workbook.bin": "x"}), "Excel binary workbook (.xlsb)"),
        (
            lambda p: zip_of(p, {"mimetype": "application/vnd.oasis.opendocument.text"}),
            "an OpenDocument text document, not a spreadsheet",
        ),
        (lambda p: zip_of(p, {"notes.txt": "hello"}), "a zip archive that holds no workbook"),
        (lambda p: written_bytes(p, b"\x89PNG\r\n\x1a\n" + b"\0" * 64), "it is a PNG image"),
        (
            lambda p: written_bytes(
                p,
                b'<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:'
                b'spreadsheet"/>',
            ),
            "an Excel 2003 XML spreadsheet",
        ),
        (lambda p: zip_of(p, {}), "it is an empty zip archive"),
        # laid out like a workbook, but without a part every workbook has: calamine's own
        # message was "Cannot detect file format"
        (
            lambda p: zip_of(p, {"xl/workbook.xml": "<workbook/>"}),
            "a damaged XLSX workbook (a zip archive without [Content_Types].xml, a part every "
            "XLSX workbook has); open it in the program that made it, save it again as .xlsx "
            "or .csv, and try again",
        ),
        (
            lambda p: zip_of(p, {"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<w"}),
            "a damaged XLSX workbook (a zip archive without xl/_rels/workbook.xml.rels, a part "
            "every XLSX workbook has)",
        ),
        (
            lambda p: zip_of(p, {**XLSX_PARTS, "xl/workbook.xml": "<w"}),
            "a damaged XLSX workbook (a zip archive whose parts cannot be read); open it in the "
            "program that made it",
        ),
        (
            lambda p: zip_of(p, {"mimetype": OPEN_DOCUMENT, "content.xml": "<x"}),
            "a damaged ODS spreadsheet (a zip archive without META-INF/manifest.xml, a part "
            "every ODS spreadsheet has)",
        ),
    ],
    ids=[
        "docx",
        "xlsb",
        "odt",
        "zip",
        "png",
        "xml-2003",
        "empty-zip",
        "xlsx-no-types",
        "xlsx-no-rels",
        "xlsx-broken",
        "ods-no-manifest",
    ],
)
@pytest.mark.parametrize("suffix", [".xlsx", ".xls", ".ods", ".csv"])
def test_what_is_not_a_roster_is_named_for_what_it_is(
    tmp_path: Path, make, says: str, suffix: str
) -> None:
    path = make(tmp_path / f"roster{suffix}")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert says in result.output and str(path) in result.output
    assert result.output.count("\n") == 1


# a roster with no rows


def header_only_csv(path: Path) -> Path:
    path = path.with_suffix(".csv")
    path.write_text(",".join(HEADER) + "\n")
    return path


def header_and_blank_rows_csv(path: Path) -> Path:
    path = path.with_suffix(".csv")
    path.write_text(",".join(HEADER) + "\n,,,\n\n")
    return path


def header_only_xlsx(path: Path) -> Path:
    return raw_xlsx(
        path.with_suffix(".xlsx"), ("Contacts", roster_rows().split("</x:row>")[0] + "</x:row>")
    )


@pytest.mark.parametrize(
    "make",
    [header_only_csv, header_and_blank_rows_csv, header_only_xlsx],
    ids=["csv", "csv-blank-rows", "xlsx"],
)
def test_a_header_only_roster_has_no_rows_exit_1(tmp_path: Path, make) -> None:
    path = make(tmp_path / "empty")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "no rows below the header (row 1)" in result.output
    assert "valid" not in result.output.replace("invalid", "")


# a Hypothesis property: formulas without a value are found on their own cells, however the
# cells are written (issue 14, bug 1)

FORMULA_CELLS = {
    "value": '<x:c{r} t="inlineStr"><x:is><x:t>v</x:t></x:is></x:c>',
    "styled_empty": '<x:c{r} s="1" t="n" />',
    "formula_no_value": "<x:c{r}><x:f>A1</x:f></x:c>",
    "formula_empty_value": "<x:c{r}><x:f>A1</x:f><x:v /></x:c>",
    "shared_formula_no_value": '<x:c{r}><x:f t="shared" si="0"/></x:c>',
    "formula_with_value": "<x:c{r}><x:f>A1</x:f><x:v>3</x:v></x:c>",
}
UNCALCULATED = {"formula_no_value", "formula_empty_value", "shared_formula_no_value"}
formula_rows = st.lists(
    st.lists(
        st.tuples(st.sampled_from(sorted(FORMULA_CELLS)), st.integers(0, 3), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


def formula_sheet(rows: list[list[tuple[str, int, bool]]]) -> tuple[str, set[tuple[int, int]]]:
    """The sheet's XML, and the (row, column position) of its uncalculated formulas. Each cell
    skips `gap` columns after the previous one, and writes its `r` or leaves it out (it then
    lands right after the previous cell, as calamine places it)."""
    xml, expected = "", set()
    for number, cells in enumerate(rows, start=1):
        xml += f'<x:row r="{number}">'
        column = -1
        for kind, gap, explicit in cells:
            column = column + 1 + (gap if explicit else 0)
            reference = f' r="{column_letter(column)}{number}"' if explicit else ""
            xml += FORMULA_CELLS[kind].format(r=reference)
            if kind in UNCALCULATED:
                expected.add((number, column))
        xml += "</x:row>"
    return xml, expected


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=formula_rows)
def test_uncalculated_formulas_are_found_on_their_own_cells(tmp_path: Path, rows) -> None:
    xml, expected = formula_sheet(rows)
    prefixed = raw_xlsx(tmp_path / "prefixed.xlsx", ("Contacts", xml))
    assert read_cells(prefixed).formula_cells == expected
    plain = tmp_path / "plain.xlsx"
    with zipfile.ZipFile(prefixed) as source, zipfile.ZipFile(plain, "w") as copy:
        for name in source.namelist():
            data = source.read(name)
            if name == "xl/worksheets/sheet1.xml":  # the same sheet, in the default namespace
                data = data.replace(b"xmlns:x=", b"xmlns=").replace(b"x:", b"")
            copy.writestr(name, data)
    assert read_cells(plain).formula_cells == expected


# blank lines by the million, and columns by the hundred thousand (QA 8 and 9)


def test_millions_of_blank_lines_are_refused_in_one_line_quickly(tmp_path: Path) -> None:
    """Blank lines are counted, never kept: past a sheet's height of them, the file is refused
    (20 million lines took minutes and gigabytes when each was a row)."""
    from bulk_contacts.spreadsheet import MAX_BLANK_ROWS

    path = tmp_path / "blank.csv"
    with path.open("w") as out:
        out.write(",".join(HEADER) + "\n" + ",".join(ROW) + "\n")
        out.write("\n" * (MAX_BLANK_ROWS // 2) + " , ,\t\n" * (MAX_BLANK_ROWS // 2 + 10))
    result = read_in_child(path, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert_refused(result, str(path), f"more than {MAX_BLANK_ROWS:,} blank lines")


def test_many_blank_and_space_lines_under_the_limit_are_skipped_row_numbers_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gaps.csv"
    with path.open("w") as out:
        out.write("\n" * 3 + ",".join(HEADER) + "\n" + ",".join(ROW) + "\n")
        out.write("\n" * 200_000 + "  ,\t, \n" * 100_000)
        out.write("A1,c2,Bo,Li,not a phone\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "row 300006" in result.output and "not a valid phone number" in result.output
    assert ": 2 contact rows, 1 invalid" in result.output


def test_200000_columns_are_refused_naming_the_file_and_the_limit(tmp_path: Path) -> None:
    from bulk_contacts.spreadsheet import MAX_COLUMNS

    path = tmp_path / "wide.csv"
    path.write_text(",".join([*HEADER, *(f"h{n}" for n in range(200_000))]) + "\n")
    result = run_validate(path, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines() + result.stdout.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert str(path) in lines[0] and f"({MAX_COLUMNS:,})" in lines[0]
    assert "200,005 columns" in lines[0] and len(lines[0]) < 400


def test_trailing_empty_cells_past_the_column_limit_are_not_columns(tmp_path: Path) -> None:
    path = tmp_path / "commas.csv"
    path.write_text(",".join(HEADER) + "," * 5000 + "\n" + ",".join(ROW) + "\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_a_workbook_past_the_column_limit_is_refused(tmp_path: Path) -> None:
    from bulk_contacts.spreadsheet import MAX_COLUMNS

    path = tmp_path / "wide.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([*HEADER, *(f"h{n}" for n in range(MAX_COLUMNS))])
    sheet.append(ROW)
    workbook.save(path)
    result = read_in_child(path)
    assert_refused(result, str(path), f"({MAX_COLUMNS:,})", "row 1")


def test_messages_listing_headers_are_bounded(tmp_path: Path) -> None:
    """No roster column among 900 headers: the message names the first ten, and how many
    more; unknown columns are ten warnings and one for the rest."""
    headers = [f"Notes {n}" for n in range(900)]
    path = tmp_path / "none.csv"
    path.write_text(",".join(headers) + "\n" + ",".join("x" * len(headers)) + "\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output[-2000:]
    assert "'Notes 9' and 890 more" in result.output and len(result.output) < 1000

    path = tmp_path / "many.csv"
    path.write_text(",".join([*HEADER, *headers]) + "\n" + ",".join(ROW) + ",x" * 900 + "\n")
    from bulk_contacts.roster import read_roster
    from bulk_contacts.schema import validate_roster

    issues = [i for i in validate_roster(read_roster(path)).issues if i.code == "unknown_column"]
    assert len(issues) == 11 and issues[0].column == "F 'Notes 0'"
    assert issues[-1].message.startswith("890 more columns (P to AHU)")
