"""Reading rosters: CSV in any encoding and dialect a dealer's software writes, and XLSX, XLSM,
XLS or ODS workbooks, each cell as the exact text the user sees.

Why everything is text: a phone number typed as 2025550143 is a number to Excel, and pandas would
make it 2025550143.0; "NA" is a first name, not a missing value. So no type inference and no NA
parsing happen here: numbers become the integer text the spreadsheet shows, and the schema
decides what each column means.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # a workbook's parts, unzipped
MAX_PACKING_RATIO = 200  # XML compresses well, but not this well: past it, a zip bomb
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls, or an encrypted (password) workbook

# Canonical roster columns, each with the header spellings it is known by (compared after
# removing case, spaces and punctuation: "E-mail", "e mail" and "EMAIL" are the same).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "dealer_id": ("dealer", "dealer id", "dealer number"),
    "site_id": ("site id", "chekt site id"),
    "external_site_id": ("external site id", "site code", "site ref", "site reference"),
    "account_number": (
        "account",
        "account #",
        "account no",
        "acct",
        "acct #",
        "acct no",
        "account num",
        "monitoring account",
    ),
    "external_contact_id": (
        "external contact id",
        "external id",
        "contact ref",
        "contact reference",
        "contact key",
        "ext id",
        "person id",
    ),
    "first_name": ("first", "first name", "given name", "forename", "fname"),
    "last_name": ("last", "last name", "surname", "family name", "lname"),
    "phone_number": (
        "phone",
        "phone number",
        "phone #",
        "phone no",
        "mobile",
        "mobile phone",
        "mobile number",
        "cell",
        "cell phone",
        "telephone",
        "tel",
    ),
    "email": ("e-mail", "email address", "e-mail address", "mail"),
    "action": ("operation",),
    "contact_id": ("contact id", "chekt contact id"),
}
SITE_COLUMNS = ("site_id", "external_site_id", "account_number")
REQUIRED_COLUMNS = ("external_contact_id", "first_name", "last_name")
ROSTER_COLUMNS = tuple(COLUMN_ALIASES)
# Columns an export adds for the reader's benefit: known, not reported as unknown.
EXPORT_COLUMNS = ("site_name", "created_at")


def header_key(header: str) -> str:
    folded = unicodedata.normalize("NFKC", header).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


ALIAS_KEYS: dict[str, str] = {}
for _field, _aliases in COLUMN_ALIASES.items():
    for _alias in (_field, *_aliases):
        ALIAS_KEYS[header_key(_alias)] = _field


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
class Table:
    """A sheet or CSV file as text: the header row, then the rows below it."""

    source: str  # "roster.xlsx (sheet Contacts)" or "roster.csv": how messages name the file
    headers: list[str]
    cells: pd.DataFrame  # str cells; columns are positions 0..n-1; index is the row number
    header_row: int = 1
    date_cells: set[tuple[int, int]] = field(default_factory=set)  # (row, column position)
    formula_cells: set[tuple[int, int]] = field(default_factory=set)  # formulas with no value
    details: dict[str, str] = field(default_factory=dict)  # encoding, delimiter, sheet


@dataclass
class Roster:
    """The roster's columns under canonical names, text cells, indexed by spreadsheet row."""

    source: str
    frame: pd.DataFrame
    columns: dict[str, tuple[str, str]]  # field -> (column letter, header as written)
    ignored_columns: list[tuple[str, str]]  # unknown columns: (letter, header)
    table: Table

    def column_label(self, name: str) -> str:
        letter, header = self.columns.get(name, ("", name))
        return f"{letter} '{header}'" if letter else name


# entry points


def read_roster(
    path: Path, sheet: str | None = None, column_map: dict[str, str] | None = None
) -> Roster:
    """Read a roster and name its columns. Raises InputError with the file and what to do."""
    table = read_table(path, sheet)
    return map_columns(table, column_map or {})


def read_table(path: Path, sheet: str | None = None) -> Table:
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


def _read_workbook(path: Path, sheet: str | None) -> Table:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        name = _choose_sheet(workbook, sheet, path)
        data = workbook.get_sheet_by_name(name)
        rows = data.to_python(skip_empty_area=False)
        merged = data.merged_cell_ranges or []
    except CalamineError as error:
        if type(error).__name__ == "PasswordError":
            raise InputError(
                f"{path}: the workbook is password-protected; save a copy without the password"
            ) from None
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    except (ValueError, OSError) as error:  # calamine reports some damage as plain errors
        raise InputError(f"{path}: cannot be read as a workbook ({error})") from None
    source = f"{path} (sheet {name})"
    _fill_merged(rows, merged)
    table = _table_from_rows(rows, source)
    table.details["sheet"] = name
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        table.formula_cells = _formulas_without_values(path, workbook.sheet_names.index(name))
    return table


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
    for meta in workbook.sheets_metadata:
        if meta.visible.name == "Visible" and meta.typ.name == "WorkSheet":
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


def _table_from_rows(rows: list[list[Any]], source: str) -> Table:
    width = max((len(r) for r in rows), default=0)
    frame = pd.DataFrame(rows, columns=range(width), dtype=object) if rows else pd.DataFrame()
    date_cells: set[tuple[int, int]] = set()
    for position in frame.columns:
        column = frame[position]
        odd = column.map(lambda v: not isinstance(v, str))
        if odd.any():
            dated = column[odd].map(lambda v: isinstance(v, date | datetime))
            date_cells.update((int(i) + 1, position) for i in dated[dated].index)
            frame.loc[odd, position] = column[odd].map(cell_text)
    frame.index = pd.RangeIndex(1, len(frame) + 1)  # spreadsheet row numbers
    return _split_header(frame, source, date_cells)


def _split_header(frame: pd.DataFrame, source: str, date_cells: set[tuple[int, int]]) -> Table:
    if frame.empty:
        raise InputError(f"{source}: holds no rows at all; the first row must be the header")
    frame = frame.fillna("").astype(str)
    filled = frame.apply(lambda col: col.str.strip() != "").any(axis=1)
    if not filled.any():
        raise InputError(f"{source}: every cell is empty; the first row must be the header")
    header_row = int(filled.idxmax())
    headers = [h.strip() for h in frame.loc[header_row]]
    body = frame.loc[header_row + 1 :]
    body = body[filled.loc[header_row + 1 :]]  # blank rows are skipped, numbers kept
    return Table(source, headers, body, header_row, date_cells)


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


def _read_csv(path: Path) -> Table:
    data = path.read_bytes()
    text, encoding = decode_text(data, path)
    delimiter = sniff_delimiter(text)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    width = max((len(r) for r in rows), default=0)
    padded = [r + [""] * (width - len(r)) for r in rows]
    frame = pd.DataFrame(padded, columns=range(width), dtype=object) if padded else pd.DataFrame()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    table = _split_header(frame, str(path), set())
    table.details.update(encoding=encoding, delimiter={"\t": "tab"}.get(delimiter, delimiter))
    return table


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


# columns


def map_columns(table: Table, column_map: dict[str, str]) -> Roster:
    extra = _custom_aliases(column_map)
    fields: dict[str, int] = {}
    labels: dict[str, tuple[str, str]] = {}
    ignored: list[tuple[str, str]] = []
    for position, header in enumerate(table.headers):
        letter = column_letter(position)
        key = header_key(header)
        name = extra.get(key) or ALIAS_KEYS.get(key)
        if name is None:
            if key in EXPORT_COLUMNS or key in {header_key(c) for c in EXPORT_COLUMNS}:
                continue
            if header or (table.cells[position].str.strip() != "").any():
                ignored.append((letter, header or "(no header)"))
            continue
        if name in fields:
            first_letter, first_header = labels[name]
            raise InputError(
                f"{table.source}: columns {first_letter} '{first_header}' and {letter} "
                f"'{header}' both mean {name}; rename or delete one of them"
            )
        fields[name] = position
        labels[name] = (letter, header)
    _require_columns(table, fields)
    frame = pd.DataFrame(index=table.cells.index)
    for name in ROSTER_COLUMNS:
        frame[name] = table.cells[fields[name]] if name in fields else ""
    return Roster(table.source, frame, labels, ignored, table)


def _custom_aliases(column_map: dict[str, str]) -> dict[str, str]:
    aliases = {}
    for header, name in column_map.items():
        if name not in ROSTER_COLUMNS:
            raise InputError(
                f"--map {header}={name}: {name!r} is not a roster column; use one of "
                f"{', '.join(ROSTER_COLUMNS)}"
            )
        aliases[header_key(header)] = name
    return aliases


def _require_columns(table: Table, fields: dict[str, int]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in fields]
    if not any(name in fields for name in SITE_COLUMNS):
        missing.append(" or ".join(SITE_COLUMNS))
    if not missing:
        return
    found = (
        ", ".join(f"{column_letter(i)} '{h}'" for i, h in enumerate(table.headers) if h) or "none"
    )
    hints = []
    unused = [h for i, h in enumerate(table.headers) if h and i not in fields.values()]
    for name in missing:
        target = name.split(" or ")[0]
        close = difflib.get_close_matches(
            header_key(target), [header_key(h) for h in unused], n=1, cutoff=0.6
        )
        if close:
            header = next(h for h in unused if header_key(h) == close[0])
            hints.append(
                f'"{header}" looks like {target}: rename it or pass --map "{header}={target}"'
            )
    message = (
        f"{table.source}: no column for {', '.join(missing)} (header row {table.header_row}). "
        f"Headers found: {found}."
    )
    if hints:
        message += " " + "; ".join(hints) + "."
    raise InputError(message)


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
