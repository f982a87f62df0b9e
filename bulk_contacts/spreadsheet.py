"""Opening the files dealers send: CSV in any encoding and dialect, and XLSX, XLSM, XLS or ODS
workbooks (through python-calamine), refusing what is not a roster (encrypted, damaged, crafted)
with a clear word, quickly and in bounded memory.

This module gives rows of cell values and knows nothing of columns; `roster` turns them into
text and names the columns. It does not import pandas, so the CLI can parse a workbook in a
thread (calamine releases the GIL) while pandas and the validation stack load.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from .errors import InputError
from .gc_pause import gc_paused
from .outputs import FORMULA_MARKED

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # a workbook's parts, unzipped
MAX_PACKING_RATIO = 200  # XML compresses well, but not this well: past it, a zip bomb
ZIP_MAGIC = b"PK\x03\x04"
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
    details: dict[str, str] = field(default_factory=dict)  # encoding, delimiter, sheet
    snapshot: list[list[Any]] | None = None  # an export's hidden snapshot sheet, as rows


# The hidden sheet in which an xlsx export keeps what CHeKT held when it was made.
SNAPSHOT_SHEET = "bulk-contacts snapshot"


@gc_paused()
def read_cells(path: Path, sheet: str | None = None) -> Cells:
    """The sheet (or CSV file) as rows of cell values. Raises InputError naming the file and
    what to do. Needs no pandas, so a caller can run it in a thread while pandas loads."""
    head = _check_file(path)
    suffix = path.suffix.lower()
    if head.startswith(ZIP_MAGIC):
        _check_zip(path)
        return _read_workbook(path, sheet)
    if head.startswith(OLE_MAGIC):
        if suffix in (".xlsx", ".xlsm", ".ods"):
            raise InputError(
                f"{path}: the workbook is password-protected (encrypted); open it in Excel, "
                f"remove the password (File > Info > Protect Workbook), save, and try again"
            )
        return _read_workbook(path, sheet)
    if suffix in WORKBOOK_SUFFIXES:
        kind = "HTML" if head.lstrip().lower().startswith((b"<", b"\xef\xbb\xbf<")) else "text"
        raise InputError(
            f"{path}: not a real {suffix} workbook (it holds {kind}); open it in a spreadsheet "
            f"program and save it as .xlsx or .csv"
        )
    return _read_csv(path)


def _check_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a roster file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    if size == 0:
        raise InputError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size // 2**20} MB is more than a roster can be (limit 200 MB)")
    return head


def _check_zip(path: Path) -> None:
    """Refuse zip bombs before any part is unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise InputError(f"{path}: a damaged workbook (not a valid zip container)") from None
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


def _read_workbook(path: Path, sheet: str | None) -> Cells:
    from concurrent.futures import ThreadPoolExecutor

    from python_calamine import CalamineError, CalamineWorkbook

    scan = ThreadPoolExecutor(1)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        name = _choose_sheet(workbook, sheet, path)
        formulas = None
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            # Unzipping the sheet again to look for formulas releases the GIL, as calamine's
            # own parsing does: on two cores the two run side by side.
            formulas = scan.submit(_formulas_without_values, path, workbook.sheet_names.index(name))
        data = workbook.get_sheet_by_name(name)
        rows = data.to_python(skip_empty_area=False)
        merged = data.merged_cell_ranges or []
        snapshot = None
        if SNAPSHOT_SHEET in workbook.sheet_names and name != SNAPSHOT_SHEET:
            snapshot = workbook.get_sheet_by_name(SNAPSHOT_SHEET).to_python()
    except CalamineError as error:
        if type(error).__name__ == "PasswordError":
            raise InputError(
                f"{path}: the workbook is password-protected; save a copy without the password"
            ) from None
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    except (ValueError, OSError) as error:  # calamine reports some damage as plain errors
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    finally:
        scan.shutdown(wait=False)
    _fill_merged(rows, merged)
    return Cells(
        source=f"{path} (sheet {name})",
        rows=rows,
        formula_cells=formulas.result() if formulas is not None else set(),
        details={"sheet": name},
        snapshot=snapshot,
    )


def _choose_sheet(workbook: Any, wanted: str | None, path: Path) -> str:
    names = workbook.sheet_names
    if wanted is not None:
        for name in names:
            if name.casefold() == wanted.casefold():
                return name
        raise InputError(f"{path}: no sheet named {wanted!r}; its sheets are {_quoted(names)}")
    for name in names:
        if name.casefold() == "contacts":
            return name
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    for meta in workbook.sheets_metadata:
        if meta.visible == SheetVisibleEnum.Visible and meta.typ == SheetTypeEnum.WorkSheet:
            return meta.name
    raise InputError(f"{path}: no visible worksheet to read; pass --sheet NAME")


def _fill_merged(rows: list[list[Any]], merged: list[tuple[tuple[int, int], tuple[int, int]]]):
    """A merged block shows its one value across all its cells: give it to each of them."""
    for (top, left), (bottom, right) in merged:
        if top >= len(rows) or left >= len(rows[top]):
            continue
        value = rows[top][left]
        for r in range(top, min(bottom, len(rows) - 1) + 1):
            for c in range(left, min(right, len(rows[r]) - 1) + 1):
                rows[r][c] = value


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


_FORMULA_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*>(.*?)</c>', re.S)


def _formulas_without_values(path: Path, sheet_index: int) -> set[tuple[int, int]]:
    """Cells holding a formula whose value was never computed (files made by scripts): calamine
    reads them as empty, but the user would see a value in Excel, so they are named as such."""
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet_index)
            xml = archive.read(part) if part else b""
    except (KeyError, zipfile.BadZipFile):
        return set()
    if b"<f" not in xml:
        return set()
    found = set()
    for match in _FORMULA_CELL.finditer(xml):
        inner = match.group(3)
        if b"<f" in inner and (b"<v>" not in inner or b"<v></v>" in inner):
            found.add((int(match.group(2)), column_index(match.group(1).decode())))
    return found


def _sheet_part(archive: zipfile.ZipFile, sheet_index: int) -> str | None:
    workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
    rels = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    ids = re.findall(r'<(?:\w+:)?sheet\b[^>]*?r:id="([^"]+)"', workbook)
    if sheet_index >= len(ids):
        return None
    target = re.search(rf'<Relationship\b[^>]*Id="{re.escape(ids[sheet_index])}"[^>]*>', rels)
    if target is None:
        return None
    path = re.search(r'Target="([^"]+)"', target.group(0))
    if path is None:
        return None
    name = path.group(1).lstrip("/")
    return name if name.startswith("xl/") else f"xl/{name}"


# CSV


def _read_csv(path: Path) -> Cells:
    data = path.read_bytes()
    text, encoding = decode_text(data, path)
    delimiter = sniff_delimiter(text)
    rows: list[list[Any]] = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if FORMULA_MARKED.search(text) and rows and written_by_the_tool(rows[0]):
        rows = [[unquote_formula(value) for value in row] for row in rows]
    return Cells(
        source=str(path),
        rows=rows,
        details={"encoding": encoding, "delimiter": {"\t": "tab"}.get(delimiter, delimiter)},
    )


def written_by_the_tool(header: list[str]) -> bool:
    """A CSV file the tool wrote to be read back (an export, the failed rows of an apply), known
    by its header row holding all of that file's columns (a column added in a spreadsheet is
    allowed). Only in those is a leading apostrophe the tool's own formula guard: in a user's
    file it is part of the value (and `validate` reports it, `formula_like`)."""
    from .export import EXPORT_COLUMNS  # imported only when a value is marked
    from .results import FAILED_COLUMNS

    names = {cell.strip() for cell in header}
    return names >= set(EXPORT_COLUMNS) or names >= set(FAILED_COLUMNS)


def unquote_formula(value: str) -> str:
    """Take off the apostrophe that `outputs.formula_safe` put before a value a spreadsheet
    would run as a formula."""
    return value[1:] if FORMULA_MARKED.match(value) else value


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode Text"), else Windows-1252.

    UTF-8 is tried strictly first: legacy bytes such as é in Windows-1252 are invalid UTF-8, so
    the fallback is taken only for files that are not UTF-8.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise InputError(f"{path}: damaged UTF-16 text; save it again as CSV UTF-8") from None
    if b"\x00" in data[:4096]:
        raise InputError(
            f"{path}: not a text file (it holds binary data); a roster must be CSV, XLSX, XLSM, "
            f"XLS or ODS"
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
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
