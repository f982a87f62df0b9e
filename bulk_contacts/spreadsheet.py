"""Opening the files dealers send: CSV in any encoding and dialect, and XLSX, XLSM, XLS or ODS
workbooks (through python-calamine), refusing what is not a roster (encrypted, damaged, crafted)
with a clear word, quickly and in bounded memory.

This module gives rows of cell values and knows nothing of columns; `roster` turns them into
text and names the columns. It does not import pandas, so the CLI can parse a workbook in a
thread (calamine releases the GIL) while pandas and the validation stack load.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import itertools
import os
import posixpath
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from .errors import InputError
from .gc_pause import gc_paused
from .outputs import FORMULA_MARKED, O_BINARY
from .outputs import visible as visibly

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # a workbook's parts, unzipped
MAX_PACKING_RATIO = 200  # XML compresses well, but not this well: past it, a zip bomb
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # a zip of no file: its end record alone
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls, or an encrypted (password) workbook


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letter: str) -> int:
    index = 0
    for ch in letter:
        index = index * 26 + ord(ch) - 64
    return index - 1


@dataclass
class Cells:
    """A sheet or CSV file as read: rows of values (str, or the workbook's numbers, dates and
    booleans), from row 1."""

    source: str  # how messages name it: "roster.xlsx (sheet Contacts)" or "roster.csv"
    rows: list[list[Any]]
    formula_cells: set[tuple[int, int]] = field(default_factory=set)  # (row, column position)
    # Cells given the value of a merged cell to their left (`_fill_merged`): (row, position).
    merged_cells: set[tuple[int, int]] = field(default_factory=set)
    details: dict[str, str] = field(default_factory=dict)  # encoding, delimiter, sheet
    snapshot: list[list[Any]] | None = None  # an export's hidden snapshot sheet, as rows
    # A workbook's visible worksheets, in order (the one read among them); [] for a CSV file.
    visible_sheets: list[str] = field(default_factory=list)
    hidden_sheet: bool = False  # the sheet read is hidden in the workbook (named by --sheet)
    # An xlsx sheet's rows and columns the user does not see (`hidden_parts`): read all the same.
    hidden_rows: list[int] = field(default_factory=list)  # row numbers, from 1
    hidden_columns: list[int] = field(default_factory=list)  # column positions, from 0
    filtered: bool = False  # the sheet has an autofilter (its hidden rows may be filtered out)
    columns: TextColumns | None = None  # a CSV file: its cells by column (then `rows` is [])


@dataclass
class TextColumns:
    """A CSV file's cells by column, as Arrow text arrays: no Python object per cell, so a
    million rows cost about the file's size, not ten times it. Blank rows (every cell empty or
    spaces) are left out; `row_numbers` keeps each row's number as a spreadsheet counts it."""

    columns: list[Any]  # one pyarrow.ChunkedArray (large_string) per column position
    row_numbers: Any  # pyarrow.ChunkedArray (int64), from 1
    blank_rows: int = 0  # rows left out


# A roster has a dozen columns; past this many, a file is refused before any work per column.
MAX_COLUMNS = 1_000
# Blank lines are skipped without being kept; past this many (a sheet's height), the file is
# refused rather than read on.
MAX_BLANK_ROWS = 1_048_576


# A plan file (`plan -o`), as `Plan.to_json` begins it.
PLAN_FILE = re.compile(rb'(?:\xef\xbb\xbf)?\s*\{\s*"format":\s*"bulk-contacts-plan/')
# A journal (JSON lines) begins with its run record, which names the format.
JOURNAL_FILE = re.compile(rb'\s*\{[^\n]*"format":\s*"bulk-contacts-journal/')

# The hidden sheet in which an xlsx export keeps what CHeKT held when it was made.
SNAPSHOT_SHEET = "bulk-contacts snapshot"


@gc_paused()
def read_cells(path: Path, sheet: str | None = None) -> Cells:
    """The sheet (or CSV file) as rows of cell values, whatever the file's name says its format
    is: the format is read from its first bytes. Raises InputError naming the file and what to
    do. Needs no pandas, so a caller can run it in a thread while pandas loads."""
    with _open_regular(path) as handle:
        head = handle.read(HEAD_BYTES)
        if PLAN_FILE.match(head):
            raise InputError(
                f"{path} is a plan file: apply it with `bulk-contacts apply {path}` (plan and "
                f"validate read a roster: .xlsx, .xls, .ods or .csv)"
            )
        if JOURNAL_FILE.match(head):
            from .words import rollback_command

            raise InputError(
                f"{path} is a journal (what an apply or a rollback did): to undo that run, "
                f"`{rollback_command(path)}`; apply, plan and validate read a roster "
                f"(.xlsx, .xls, .ods or .csv), and apply also a saved plan (.json)"
            )
        kind = real_format(path, head, handle)
        handle.seek(0)
        if sheet is not None and kind in ("csv", "vcf"):
            raise InputError(
                f"{path}: --sheet {sheet!r}: {FORMAT_NAMES[kind]} has no sheets (it is read "
                f"whole); leave --sheet out, or give the workbook you mean"
            )
        if kind == "csv":
            cells = _read_csv(path, handle.read())
        elif kind == "vcf":
            cells = _read_vcard(path, handle.read())
        else:
            cells = _read_workbook(path, handle, kind, sheet)
    named = NAMED_FORMATS.get(path.suffix.lower())
    if named is not None and named != kind:
        note = f"{FORMAT_NAMES[kind]} (the file is named {path.suffix})"
        cells.details = {"format": note, **cells.details}
    return cells


def _open_regular(path: Path) -> BinaryIO:
    """The file, opened only if it is a regular file: a named pipe would block the read forever
    and a device never ends. Opened without blocking, then checked again on the open file, so
    nothing swapped in between is read."""
    try:
        _refuse_irregular(path, os.stat(path).st_mode)
        descriptor = os.open(path, os.O_RDONLY | O_BINARY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    handle = os.fdopen(descriptor, "rb")
    try:
        info = os.fstat(descriptor)
        _refuse_irregular(path, info.st_mode)
        if info.st_size == 0:
            raise InputError(f"{path}: the file is empty")
        if info.st_size > MAX_FILE_BYTES:
            raise InputError(
                f"{path}: {info.st_size // 2**20} MB is more than a roster can be (limit 200 MB)"
            )
    except BaseException:
        handle.close()
        raise
    return handle


def _refuse_irregular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not a roster file")
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise InputError(
        f"{path}: not a regular file ({kind}); save the roster to a file and give its path"
    )


# what the file really is

HEAD_BYTES = 4096
NAMED_FORMATS = {
    **dict.fromkeys((".xlsx", ".xlsm"), "xlsx"),
    ".xls": "xls",
    ".ods": "ods",
    **dict.fromkeys((".csv", ".tsv", ".txt", ".tab"), "csv"),
    **dict.fromkeys((".vcf", ".vcard"), "vcf"),
}
FORMAT_NAMES = {
    "xlsx": "an XLSX workbook",
    "xls": "an XLS workbook (Excel 97-2003)",
    "ods": "an ODS spreadsheet",
    "csv": "a text (CSV) file",
    "vcf": "a vCard file",
}
KNOWN_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"{\\rtf": "an RTF document",
}
OPEN_DOCUMENT_SPREADSHEET = b"application/vnd.oasis.opendocument.spreadsheet"
HTML_STARTS = (b"<!doctype html", b"<html", b"<table", b"<head", b"<body", b"<meta")


def real_format(path: Path, head: bytes, handle: BinaryIO) -> str:
    """The format the content has, whatever the name says: xlsx, xls, ods or csv; anything
    else is refused, naming what it is."""
    if head.startswith(ZIP_MAGIC):
        return _zip_format(path, handle)
    if head.startswith(EMPTY_ZIP_MAGIC):
        _refuse(path, "an empty zip archive")
    if head.startswith(OLE_MAGIC):
        return _ole_format(path, handle)
    for magic, kind in KNOWN_MAGIC.items():
        if head.startswith(magic):
            _refuse(path, kind)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"begin:vcard") or text.replace(b"\x00", b"").startswith(
        b"\xff\xfebegin:vcard"
    ):
        return "vcf"
    if text.startswith(b"<?xml"):
        if b"urn:schemas-microsoft-com:office:spreadsheet" in head:
            _refuse(path, "an Excel 2003 XML spreadsheet")
        _refuse(path, "an XML document")
    if text.startswith(HTML_STARTS) or (
        text.startswith(b"<") and path.suffix.lower() in WORKBOOK_SUFFIXES
    ):
        raise InputError(
            f"{path}: {_claim(path)} (it holds HTML: a web page saved with a spreadsheet's "
            f"name); open it in a spreadsheet program and save it as .xlsx or .csv"
        )
    return "csv"


def _claim(path: Path) -> str:
    suffix = path.suffix.lower()
    return f"not a real {suffix} workbook" if suffix in WORKBOOK_SUFFIXES else "not a roster"


def _refuse(path: Path, kind: str, advice: str = "save the roster as .xlsx or .csv") -> NoReturn:
    raise InputError(f"{path}: {_claim(path)}: it is {kind}; {advice} and try again")


def _zip_format(path: Path, handle: BinaryIO) -> str:
    """ods or xlsx (zip bombs refused first), else what the zip holds."""
    try:
        archive = zipfile.ZipFile(handle)
        _check_zip(path, archive)
        names = set(archive.namelist())
        mimetype = archive.open("mimetype").read(200) if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, EOFError):
        raise InputError(f"{path}: a damaged workbook (not a valid zip container)") from None
    if mimetype.strip() == OPEN_DOCUMENT_SPREADSHEET:
        return "ods"
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        kind = mimetype.rsplit(b".", 1)[-1].decode("ascii", "replace")[:20]
        _refuse(path, f"an OpenDocument {kind} document, not a spreadsheet")
    if "xl/workbook.bin" in names:
        _refuse(path, "an Excel binary workbook (.xlsb)", "open it in Excel, save it as .xlsx")
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "word/document.xml" in names:
        _refuse(path, "a Word document")
    if "ppt/presentation.xml" in names:
        _refuse(path, "a PowerPoint presentation")
    _refuse(path, "a zip archive that holds no workbook")


def _ole_format(path: Path, handle: BinaryIO) -> str:
    """An OLE2 container: an old .xls, or a password-protected xlsx (Excel wraps those in one),
    or another Office 97-2003 document."""
    streams = _ole_streams(path, handle)
    if "workbook" in streams or "book" in streams:
        return "xls"
    if "encryptedpackage" in streams:
        raise InputError(
            f"{path}: the workbook is password-protected (encrypted); open it in Excel, "
            f"remove the password (File > Info > Protect Workbook), save, and try again"
        )
    if "worddocument" in streams:
        _refuse(path, "a Word 97-2003 document")
    if "powerpoint document" in streams:
        _refuse(path, "a PowerPoint 97-2003 presentation")
    _refuse(path, "an Office 97-2003 (OLE2) file that holds no workbook")


def _ole_streams(path: Path, handle: BinaryIO) -> set[str]:
    import olefile

    handle.seek(0)
    try:
        with olefile.OleFileIO(handle) as ole:
            return {"/".join(entry).lower() for entry in ole.listdir()}
    except Exception:  # olefile raises OSError, ValueError, struct.error... on a damaged file
        raise InputError(
            f"{path}: a damaged file: it starts like an Excel 97-2003 workbook or a "
            f"password-protected one, but its structure cannot be read"
        ) from None


def _check_zip(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse zip bombs before any part is unpacked."""
    members = archive.infolist()
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members) or 1
    if unpacked > MAX_UNPACKED_BYTES or (
        unpacked > 50 * 2**20 and unpacked / packed > MAX_PACKING_RATIO
    ):
        raise InputError(
            f"{path}: refused: it would unpack to {unpacked // 2**20} MB from "
            f"{packed // 2**20 or 1} MB, which no roster does (a zip bomb?)"
        )


# workbooks


def _read_workbook(path: Path, handle: BinaryIO, kind: str, sheet: str | None) -> Cells:
    from concurrent.futures import ThreadPoolExecutor

    from python_calamine import CalamineError, CalamineWorkbook

    scan = ThreadPoolExecutor(1)
    archive = zipfile.ZipFile(handle) if kind in ("xlsx", "ods") else None
    try:
        hidden_tables = _check_whole_workbook(path, handle, kind, archive)
        handle.seek(0)
        workbook = CalamineWorkbook.from_filelike(handle)
        name = _choose_sheet(workbook, sheet, path)
        formulas = None
        hidden: tuple[list[int], list[int], bool] = ([], [], False)
        if archive is not None and kind == "xlsx":
            xml = _checked_sheet(path, archive, workbook.sheet_names, name)
            hidden = hidden_parts(xml)
            if SNAPSHOT_SHEET in workbook.sheet_names and name != SNAPSHOT_SHEET:
                _checked_sheet(path, archive, workbook.sheet_names, SNAPSHOT_SHEET)
            # Looking for formulas without values in the sheet already unzipped runs beside
            # calamine's own parsing, which releases the GIL.
            formulas = scan.submit(_formulas_without_values, xml)
        elif kind in ("ods", "xls"):
            hidden = hidden_tables.get(name, hidden)
        data = workbook.get_sheet_by_name(name)
        rows = data.to_python(skip_empty_area=False)
        merged = data.merged_cell_ranges or []
        visible = _visible_sheets(workbook)
        snapshot = None
        if SNAPSHOT_SHEET in workbook.sheet_names and name != SNAPSHOT_SHEET:
            snapshot = workbook.get_sheet_by_name(SNAPSHOT_SHEET).to_python()
    except CalamineError as error:
        if type(error).__name__ == "PasswordError":
            raise InputError(
                f"{path}: the workbook is password-protected; save a copy without the password"
            ) from None
        if str(error) == UNDETECTED:
            raise InputError(_damaged(path, kind, archive)) from None
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    except (ValueError, OSError, zipfile.BadZipFile) as error:  # some damage is reported so
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    finally:
        scan.shutdown(wait=False)
    rows = _within_column_limit(f"{path} (sheet {name})", rows)
    across = _fill_merged(rows, merged)
    return Cells(
        source=f"{path} (sheet {name})",
        rows=rows,
        formula_cells=formulas.result() if formulas is not None else set(),
        merged_cells=across,
        details={"sheet": name},
        snapshot=snapshot,
        visible_sheets=visible,
        hidden_sheet=name not in visible,
        hidden_rows=hidden[0],
        hidden_columns=hidden[1],
        filtered=hidden[2],
    )


# calamine's whole message when no reader of its took the file: each one's own error is lost
UNDETECTED = "Cannot detect file format"
# The parts each zip format cannot be without (OPC's content types and the workbook's
# relationships; ODF's manifest and content), in the order they are looked for.
REQUIRED_PARTS = {
    "xlsx": ("[Content_Types].xml", "xl/_rels/workbook.xml.rels"),
    "ods": ("META-INF/manifest.xml", "content.xml"),
}


def _damaged(path: Path, kind: str, archive: zipfile.ZipFile | None) -> str:
    """A workbook by its first bytes (and its zip's parts) that calamine cannot open: which part
    it lacks, when one is missing, and what to do."""
    what = FORMAT_NAMES[kind].removeprefix("an ").removeprefix("a ")
    if archive is None:
        inside = "its workbook cannot be read"
    else:
        names = set(archive.namelist())
        missing = [part for part in REQUIRED_PARTS.get(kind, ()) if part not in names]
        inside = (
            f"a zip archive without {missing[0]}, a part every {what} has"
            if missing
            else "a zip archive whose parts cannot be read"
        )
    return (
        f"{path}: a damaged {what} ({inside}); open it in the program that made it, save it "
        f"again as .xlsx or .csv, and try again"
    )


_HIDDEN = re.compile(rb"""\shidden\s*=\s*["'](?:1|true)["']""")
_HIDDEN_ROW = re.compile(rb"<(?:[\w.-]+:)?row\s[^>]*>")
_HIDDEN_COL = re.compile(rb"<(?:[\w.-]+:)?col\s[^>]*>")
_ROW_NUMBER = re.compile(rb"""\sr\s*=\s*["']([0-9]{1,7})["']""")
_COL_SPAN = re.compile(rb"""\s(min|max)\s*=\s*["']([0-9]{1,5})["']""")
_AUTOFILTER = re.compile(rb"<(?:[\w.-]+:)?autoFilter[\s/>]")
# A sheet says a column range is hidden in one tag (`<col min max>`): past Excel's last column,
# none is read.
_LAST_COLUMN = 16_384


def hidden_parts(xml: bytes) -> tuple[list[int], list[int], bool]:
    """(the rows hidden, from 1; the column positions hidden, from 0; whether the sheet has an
    autofilter) of an xlsx sheet's XML: `<row hidden="1">`, `<col hidden="1">` and
    `<autoFilter>`, which calamine does not read. Most sheets hide nothing: one search at C
    speed says so; else only the row and col tags holding `hidden` are parsed."""
    if b"hidden" not in xml:
        return [], [], False
    rows: list[int] = []
    columns: list[int] = []
    start = 0
    while (found := xml.find(b"hidden", start)) >= 0:
        start = found + 6
        tag_start = xml.rfind(b"<", 0, found)
        row = _HIDDEN_ROW.match(xml, tag_start)
        tag = row or _HIDDEN_COL.match(xml, tag_start)
        if tag is None or not _HIDDEN.search(tag.group(0)):
            continue
        text = tag.group(0)
        if row is not None:
            number = _ROW_NUMBER.search(text)
            if number is not None:
                rows.append(int(number.group(1)))
        else:
            span = {key: int(value) for key, value in _COL_SPAN.findall(text)}
            first = span.get(b"min", 0)
            last = min(span.get(b"max", first), _LAST_COLUMN)
            columns.extend(range(first - 1, last) if first >= 1 else ())
        start = tag.end()
    return rows, sorted(set(columns)), bool(rows) and _AUTOFILTER.search(xml) is not None


def _visible_sheets(workbook: Any) -> list[str]:
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    return [
        meta.name
        for meta in workbook.sheets_metadata
        if meta.visible == SheetVisibleEnum.Visible and meta.typ == SheetTypeEnum.WorkSheet
    ]


def _check_whole_workbook(
    path: Path, handle: BinaryIO, kind: str, archive: zipfile.ZipFile | None
) -> dict[str, tuple[list[int], list[int], bool]]:
    """calamine reads every sheet of an .xls or .ods as soon as it opens one: all are measured
    before (see `sheet_limits`). What each sheet hides, found in the bytes already read for it:
    an .ods's tables (`sheet_limits.ods_hidden`), an .xls's ROW and COLINFO records."""
    from . import sheet_limits

    if kind == "ods" and archive is not None:
        try:
            content = archive.read("content.xml")
        except KeyError:
            raise InputError(f"{path}: a damaged spreadsheet (no content.xml)") from None
        for table, extent in sheet_limits.ods_extents(content):
            sheet_limits.refuse_if_too_large(f"{path} (sheet {table})", extent)
        return sheet_limits.ods_hidden(content)
    hidden: dict[str, tuple[list[int], list[int], bool]] = {}
    if kind == "xls":
        for found in _xls_sheets(path, handle):
            where = f"{path} (sheet {found.name})" if found.name else str(path)
            sheet_limits.refuse_if_declared_too_large(where, found.declared)
            sheet_limits.refuse_if_too_large(where, found.extent)
            hidden[found.name] = (found.hidden_rows, sorted(set(found.hidden_columns)), False)
    return hidden


def _xls_sheets(path: Path, handle: BinaryIO) -> list:
    import olefile

    from .sheet_limits import xls_extents

    handle.seek(0)
    try:
        with olefile.OleFileIO(handle) as ole:
            name = "Workbook" if ole.exists("Workbook") else "Book"
            stream = ole.openstream(name).read()
    except Exception:  # olefile's errors on a damaged container
        raise InputError(f"{path}: a damaged .xls workbook (its streams cannot be read)") from None
    return xls_extents(stream)


def _checked_sheet(path: Path, archive: zipfile.ZipFile, names: list[str], name: str) -> bytes:
    """The sheet's XML, once its extent is within the limits."""
    from . import sheet_limits

    part = _sheet_part(archive, names.index(name))
    try:
        xml = archive.read(part) if part else None
    except KeyError:
        xml = None
    if xml is None:
        raise InputError(f"{path}: a damaged workbook (the part of sheet {name!r} is missing)")
    sheet_limits.refuse_if_too_large(
        f"{path} (sheet {name})",
        sheet_limits.xlsx_extent(xml),
        sheet_limits.declared_dimension(xml),
    )
    return xml


def _choose_sheet(workbook: Any, wanted: str | None, path: Path) -> str:
    names = workbook.sheet_names
    if wanted is not None:
        for name in names:
            if name.casefold() == wanted.casefold():
                return name
        raise InputError(f"{path}: no sheet named {wanted!r}; its sheets are {_quoted(names)}")
    # A hidden (or very hidden) sheet is never chosen for the user, by its name or its place:
    # only --sheet reads one (and `hidden_sheet` says so).
    visible = _visible_sheets(workbook)
    for name in visible:
        if name.casefold() == "contacts":
            return name
    if visible:
        return visible[0]
    raise InputError(f"{path}: no visible worksheet to read; pass --sheet NAME")


def _fill_merged(
    rows: list[list[Any]], merged: list[tuple[tuple[int, int], tuple[int, int]]]
) -> set[tuple[int, int]]:
    """A merged block shows its one value across all its cells: give it to each of them. The
    cells right of its first column, (row from 1, column position): a value copied down is the
    site of each row, but one copied across (`John Doe` over First and Last Name) is no value
    of those columns (`merged_across`, when a roster column reads one)."""
    across: set[tuple[int, int]] = set()
    for (top, left), (bottom, right) in merged:
        if top >= len(rows) or left >= len(rows[top]):
            continue
        value = rows[top][left]
        for r in range(top, min(bottom, len(rows) - 1) + 1):
            for c in range(left, min(right, len(rows[r]) - 1) + 1):
                rows[r][c] = value
                if c > left and value not in (None, ""):
                    across.add((r + 1, c))
    return across


def cell_text(value: Any) -> str:
    """A cell as the spreadsheet shows it in General format."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g").replace("e+", "E+").replace("e-", "E-")
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return "" if value is None else str(value)


# A number cell of at least this many digits with at most `ROUNDED_DIGITS` significant ones is
# what a spreadsheet leaves of a long number it showed in scientific notation (1.23457E+12) once
# saved as CSV and opened again: its other digits are lost.
ROUNDED_LENGTH, ROUNDED_DIGITS = 8, 6


def rounded_number(value: Any, text: str) -> str | None:
    """A number cell (`text` its digits, as `cell_text` gives them) that a spreadsheet rounded,
    as Excel's General format shows it (1.23457E+12); None for any other cell."""
    if (
        len(text) < ROUNDED_LENGTH
        or type(value) not in (int, float)
        or not text.isdigit()
        or len(text.rstrip("0")) > ROUNDED_DIGITS
    ):
        return None
    digits = text.rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}E+{len(text) - 1:02d}"


_FORMULA = re.compile(rb"<(?:[\w.-]+:)?f[\s/>]")
_PLAIN_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
_CELL_END = re.compile(rb"</(?:[\w.-]+:)?c\s*>")
_VALUE = re.compile(rb"<(?:[\w.-]+:)?v(?:\s[^>]*)?>[^<]|<(?:[\w.-]+:)?is[\s>]")


def _may_hold_formulas(xml: bytes) -> bool:
    """A quick look (most sheets hold no formula): `<f`, or a prefixed `<x:f`."""
    return b"<f" in xml or (b":f" in xml and _FORMULA.search(xml) is not None)


def _formulas_without_values(xml: bytes) -> set[tuple[int, int]]:
    """Cells holding a formula whose value was never computed (files made by scripts): calamine
    reads them as empty, but the user would see a value in Excel, so they are named as such.
    Each `<f>` belongs to the cell whose start tag comes last before it: in a plain sheet that
    is the last `<c r="` (found at C speed); otherwise the cells are walked as `sheet_limits`
    places them."""
    from .sheet_limits import is_plain

    if not _may_hold_formulas(xml):
        return set()
    formulas = [match.start() for match in _FORMULA.finditer(xml)]
    owner = _plain_owner if is_plain(xml) else _walked_owner(xml)
    found = set()
    for position in formulas:
        row, column, content_start = owner(xml, position)
        end = _CELL_END.search(xml, position)
        content = xml[content_start : end.start() if end else len(xml)]
        if not _VALUE.search(content):
            found.add((row, column - 1))
    return found


def _plain_owner(xml: bytes, position: int) -> tuple[int, int, int]:
    """(row, column from 1, where its content starts) of the cell holding `position`."""
    from .sheet_limits import column_number

    start = xml.rfind(b'<c r="', 0, position)
    reference = _PLAIN_CELL.match(xml, start)
    assert reference is not None  # in a plain sheet, every cell starts so
    letters, digits = reference.groups()
    return int(digits), column_number(letters), xml.index(b">", start) + 1


def _walked_owner(xml: bytes) -> Callable[[bytes, int], tuple[int, int, int]]:
    from .sheet_limits import xlsx_cells

    cells = [(end, row, column) for row, column, empty, end in xlsx_cells(xml) if not empty]
    ends = [end for end, _, _ in cells]

    def owner(_: bytes, position: int) -> tuple[int, int, int]:
        end, row, column = cells[bisect.bisect_right(ends, position) - 1]
        return row, column, end

    return owner


_SHEET_TAG = re.compile(r"<(?:[\w.-]+:)?sheet\s[^>]*>")
_SHEET_ID = re.compile(r"\s(?:[\w.-]+:)?id\s*=\s*[\"']([^\"']*)[\"']")


def _sheet_part(archive: zipfile.ZipFile, sheet_index: int) -> str | None:
    """The zip member holding the sheet: its relationship id in workbook.xml (in the order
    calamine lists the sheets), then the target in workbook.xml.rels."""
    try:
        workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
        rels = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    except KeyError:
        return None
    tags = _SHEET_TAG.findall(workbook)
    if sheet_index >= len(tags):
        return None
    sheet_id = _SHEET_ID.search(tags[sheet_index])
    if sheet_id is None:
        return None
    target = re.search(rf'<Relationship\b[^>]*Id="{re.escape(sheet_id.group(1))}"[^>]*>', rels)
    if target is None:
        return None
    path = re.search(r'Target="([^"]+)"', target.group(0))
    if path is None:
        return None
    name = path.group(1)
    if name.startswith("/"):
        return posixpath.normpath(name.lstrip("/"))
    return posixpath.normpath(name if name.startswith("xl/") else f"xl/{name}")


# CSV


def _read_csv(path: Path, data: bytes) -> Cells:
    """The file's rows by column (`TextColumns`), decoded and parsed a piece at a time: neither
    the whole text nor a Python object per cell is ever held."""
    encoding, codec, errors = text_encoding(data, path)
    try:
        delimiter = sniff_delimiter(_text_stream(data, codec, errors).read(65536))
        columns = _csv_columns(path, _text_stream(data, codec, errors), delimiter)
    except UnicodeDecodeError:  # only UTF-16 is read strictly without being checked first
        raise InputError(f"{path}: damaged UTF-16 text; save it again as CSV UTF-8") from None
    return Cells(
        source=str(path),
        rows=[],
        details={"encoding": encoding, "delimiter": {"\t": "tab"}.get(delimiter, delimiter)},
        columns=columns,
    )


def _read_vcard(path: Path, data: bytes) -> Cells:
    from .vcard import vcard_rows

    text, encoding = decode_text(data, path)
    rows = vcard_rows(text, path)
    return Cells(
        source=str(path),
        rows=rows,
        details={"encoding": encoding, "vcard": f"{len(rows) - 1} cards; row 2 is the first"},
    )


def _text_stream(data: bytes, codec: str, errors: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), codec, errors, newline="")


CHUNK_ROWS = 65_536  # rows parsed into Python lists before they become Arrow columns


def _csv_columns(path: Path, text: io.TextIOWrapper, delimiter: str) -> TextColumns:
    """The records by column, or a one-line error naming the row (a record, as a spreadsheet
    counts rows) that the csv module refuses: a cell past its field limit of 131,072
    characters, above all. Blank rows are counted, not kept (`MAX_BLANK_ROWS`); a row of more
    than `MAX_COLUMNS` cells is refused at once."""
    builder = _ColumnBuilder()
    reader = csv.reader(text, delimiter=delimiter)
    number = blank = 0
    unquote = None
    try:
        for row in reader:
            number += 1
            if not ((row and row[0].strip()) or any(map(str.strip, row))):
                blank += 1
                if blank > MAX_BLANK_ROWS:
                    raise InputError(
                        f"{path}: refused: more than {MAX_BLANK_ROWS:,} blank lines (by line "
                        f"{reader.line_num:,}), which no roster holds; delete the empty lines "
                        f"and try again"
                    )
                continue
            if len(row) > MAX_COLUMNS:
                row = _without_trailing_blanks(path, row, number)
            if unquote is None:  # the first row kept: the header
                unquote = written_by_the_tool(row)
            if unquote:
                row = [unquote_formula(value) for value in row]
            builder.add(number, row)
        builder.blank = blank
    except csv.Error as error:
        row_number = number + 1
        if "field larger than field limit" in str(error):
            raise InputError(
                f"{path}: row {row_number} (line {reader.line_num}) has a cell longer than "
                f"{csv.field_size_limit():,} characters, which no roster holds (a cell is at "
                f"most 255); check the row's quotes, or fix the cell"
            ) from None
        raise InputError(
            f"{path}: row {row_number} (line {reader.line_num}) cannot be read as CSV ({error})"
        ) from None
    return builder.finish()


def _without_trailing_blanks(source: object, row: list[Any], number: int) -> list[Any]:
    """A row cut to `MAX_COLUMNS` cells when all past them are empty; else a refusal naming the
    row and the limit."""
    last = len(row)
    while last > MAX_COLUMNS and (row[last - 1] is None or not str(row[last - 1]).strip()):
        last -= 1
    if last > MAX_COLUMNS:
        raise InputError(
            f"{source}: refused: row {number} has {last:,} columns, more than a roster can "
            f"have ({MAX_COLUMNS:,}); delete the columns past the roster's and try again"
        )
    return row[:last]


def _within_column_limit(source: str, rows: list[list[Any]]) -> list[list[Any]]:
    """The rows, refused (or cut, when all past the limit is empty) past `MAX_COLUMNS`."""
    if max(map(len, rows), default=0) <= MAX_COLUMNS:
        return rows
    return [
        _without_trailing_blanks(source, row, number) if len(row) > MAX_COLUMNS else row
        for number, row in enumerate(rows, start=1)
    ]


class _ColumnBuilder:
    """Rows in, Arrow text columns out, `CHUNK_ROWS` rows at a time (short rows padded with
    empty cells, as a spreadsheet shows them)."""

    def __init__(self) -> None:
        self.chunks: list[list[Any]] = []  # per column position, its Arrow arrays
        self.numbers: list[Any] = []
        self.pending: list[list[Any]] = []
        self.pending_numbers: list[int] = []
        self.done = 0  # rows already turned into arrays
        self.blank = 0

    def add(self, number: int, row: list[Any]) -> None:
        self.pending.append(row)
        self.pending_numbers.append(number)
        if len(self.pending) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        count, width = len(self.pending), max(map(len, self.pending))
        while len(self.chunks) < width:  # a column first seen now: empty in the rows before
            self.chunks.append([_blank_array(self.done)] if self.done else [])
        by_column = itertools.zip_longest(*self.pending, fillvalue="")
        self.pending = []
        for position, values in enumerate(by_column):
            self.chunks[position].append(pa.array(values, pa.large_string()))
        for position in range(width, len(self.chunks)):
            self.chunks[position].append(_blank_array(count))
        self.numbers.append(pa.array(self.pending_numbers, pa.int64()))
        self.pending_numbers = []
        self.done += count

    def finish(self) -> TextColumns:
        import pyarrow as pa

        self.flush()
        return TextColumns(
            [pa.chunked_array(chunks, pa.large_string()) for chunks in self.chunks],
            pa.chunked_array(self.numbers, pa.int64()),
            self.blank,
        )


def _blank_array(count: int) -> Any:
    import pyarrow as pa

    return pa.repeat(pa.scalar("", pa.large_string()), count)


def written_by_the_tool(header: list[str]) -> bool:
    """A CSV file the tool wrote to be read back (an export, the failed rows of an apply), known
    by its header row holding all of that file's columns (a column added in a spreadsheet is
    allowed). Only in those is a leading apostrophe the tool's own formula guard: in a user's
    file it is part of the value (and `validate` reports it, `formula_like`)."""
    from .columns import EXPORT_COLUMNS  # imported only when a value is marked
    from .results import FAILED_COLUMNS

    names = {cell.strip() for cell in header}
    return names >= set(EXPORT_COLUMNS) or names >= set(FAILED_COLUMNS)


def unquote_formula(value: str) -> str:
    """Take off the apostrophe that `outputs.formula_safe` put before a value a spreadsheet
    would run as a formula."""
    return value[1:] if FORMULA_MARKED.match(value) else value


def text_encoding(data: bytes, path: Path) -> tuple[str, str, str]:
    """(the encoding's name for messages, the codec to read with, its error handling), as
    `decode_text` decides it, checked a piece at a time rather than by decoding the whole."""
    if data.startswith(b"\xef\xbb\xbf"):
        if not _decodes(memoryview(data)[3:], "utf-8"):  # a view: no copy of the file
            _refuse_mixed(data, path, bom=True)
        return "utf-8-sig", "utf-8-sig", "replace"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", "utf-16", "strict"
    _refuse_binary(data, path)
    if _decodes(data, "utf-8"):
        return "utf-8", "utf-8", "strict"
    _refuse_mixed(data, path)
    if _decodes(data, "cp1252"):
        return "windows-1252", "cp1252", "strict"
    return "latin-1", "latin-1", "strict"


# A character of two to four bytes as UTF-8 writes it: in a file that is not UTF-8 as a whole,
# one of these is text pasted from a UTF-8 program beside text in a legacy encoding.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_UTF8_START = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")  # found six times faster, then checked


def _first_utf8(body: bytes) -> int | None:
    """Where the first UTF-8 character of two to four bytes starts, if any."""
    for start in _UTF8_START.finditer(body):
        if _UTF8_SEQUENCE.match(body, start.start()):
            return start.start()
    return None


def _refuse_mixed(data: bytes, path: Path, bom: bool = False) -> None:
    """A text file that is not UTF-8 as a whole, yet holds UTF-8 characters (or starts with
    UTF-8's byte order mark): rows from two programs, in two encodings. Read as Windows-1252,
    the UTF-8 rows would be sent as `ZoÃ«`; read as UTF-8, the others' accents as U+FFFD. Both
    are wrong, so the file is refused, naming a line of each."""
    body = data[3:] if bom else data
    try:
        body.decode("utf-8")
        return
    except UnicodeDecodeError as error:
        bad = error.start
    utf8 = _first_utf8(body)
    if not bom and utf8 is None:
        return  # a legacy file throughout

    def line_of(position: int) -> int:
        return body.count(b"\n", 0, position) + 1

    def fragment(position: int, codec: str = "utf-8") -> str:
        start = max(body.rfind(b"\n", 0, position) + 1, position - 20)
        return visibly(body[start : position + 4].decode(codec, errors="replace").strip())

    byte = f"0x{body[bad]:02X}"
    not_utf8 = f"line {line_of(bad)} is not ({byte} in {fragment(bad, 'cp1252')!r})"
    if bom:
        what = f"it starts as UTF-8 (its byte order mark), but {not_utf8}"
    else:
        assert utf8 is not None
        what = f"line {line_of(utf8)} is UTF-8 ({fragment(utf8)!r}), but {not_utf8}"
    raise InputError(
        f"{path}: mixes two encodings: {what}, so either reading sends some names wrong "
        f"('Zoë' as 'ZoÃ«', or 'é' as U+FFFD); open it in the program that made it and save "
        f"it again as CSV UTF-8"
    )


# Bytes no text holds (C0 controls but tab, LF, FF, CR and ESC): a file is binary when more
# than 1 in 20 of its first 4 KB are such bytes. A few of them (a NUL or a BEL typed into a cell)
# are the cell's `control_character` problem, on its row.
BINARY_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
BINARY_SHARE = 20


def _refuse_binary(data: bytes, path: Path) -> None:
    head = data[:4096]
    controls = len(head) - len(head.translate(None, BINARY_BYTES))
    if controls * BINARY_SHARE > len(head):
        raise InputError(
            f"{path}: not a text file (it holds binary data); a roster must be CSV, XLSX, XLSM, "
            f"XLS or ODS"
        )


def _decodes(data: bytes | memoryview, codec: str, piece: int = 1 << 20) -> bool:
    decoder = codecs.getincrementaldecoder(codec)()
    view = memoryview(data)
    try:
        for start in range(0, len(view), piece):
            decoder.decode(view[start : start + piece])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode Text"), else Windows-1252.

    UTF-8 is tried strictly first: legacy bytes such as é in Windows-1252 are invalid UTF-8, so
    the fallback is taken only for files that are not UTF-8.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        if not _decodes(memoryview(data)[3:], "utf-8"):
            _refuse_mixed(data, path, bom=True)
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InputError(f"{path}: damaged UTF-16 text; save it again as CSV UTF-8") from None
    _refuse_binary(data, path)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        _refuse_mixed(data, path)
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header and the first rows into the same, largest number of
    fields: `,` `;` tab or `|`."""
    sample = [line for line in text[:65536].splitlines()[:20] if line.strip()]
    best, best_score = ",", (0, 0)
    for delimiter in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(sample, delimiter=delimiter)]
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for c in counts if c == counts[0])
        score = (consistent, counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
