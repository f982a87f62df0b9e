"""How far a sheet reaches, measured before calamine reads it, and the limits past which it is
refused.

calamine turns a sheet into one dense block from A1 to its farthest cell holding a value: a 5 KB
xlsx with one value at XFD1048576 asks for 17 billion cells (the process aborts), and a 5 KB
.xls with one at IV65536 costs 1.2 GB. So the farthest cell is found first, from the file's own
bytes, and a sheet past the limits is refused with one line naming that cell.

Limits (a roster is a few columns by at most a million rows):
- at most 1,048,576 rows and 16,384 columns (Excel's own limits: past them the file was crafted);
- at most 16,777,216 cells from A1 to the farthest value (16 columns of a full-height sheet, or a
  whole .xls sheet): about 1.2 GB once read;
- past 1,048,576 cells, at least one cell in 16 holding a value: a sheet that is mostly the empty
  space before one stray far cell is refused rather than read as millions of empty cells.

What is measured, per format (each scan errs on the large side, never the small one):
- xlsx: the cells of the sheets read (calamine reads a sheet when asked). A cell's position is
  its `r` attribute, or the one after the previous cell (as calamine does without `r`); a cell
  written `<c .../>` holds no value and does not count. The declared `<dimension ref>` is
  reported but not trusted either way: calamine does not size the sheet by it, and a formatted
  far cell makes Excel declare A1:XFD1048576 for a small roster.
- xls: every sheet (calamine reads them all on opening), both the declared DIMENSIONS record
  (calamine sizes the sheet by it: a crafted one aborts the process) and the cell records.
- ods: every table (calamine reads them all on opening), rows and cells counted with their
  `number-rows-repeated` and `number-columns-repeated`.
"""

from __future__ import annotations

import html
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import InputError
from .spreadsheet import column_index, column_letter

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
MAX_CELLS = 16_777_216
SPARSE_FLOOR = 1_048_576
SPARSE_RATIO = 16


def column_number(letters: bytes) -> int:
    """1 for A, 16384 for XFD (calamine reads lower-case letters too)."""
    return column_index(letters.decode("ascii").upper()) + 1


@dataclass
class Extent:
    """From A1 to the farthest cell holding a value: `rows` and `columns` count from 1."""

    rows: int = 0
    columns: int = 0
    filled: int = 0  # cells holding a value (repeated cells counted each time)
    far: tuple[int, int] = (0, 0)  # (row, column) of a cell at the farthest row or column

    def reach(self, row: int, column: int, cells: int = 1) -> None:
        if row > self.rows or column > self.columns:
            self.far = (max(row, self.far[0]), max(column, self.far[1]))
        self.rows, self.columns = max(self.rows, row), max(self.columns, column)
        self.filled += cells

    @property
    def area(self) -> int:
        return self.rows * self.columns

    @property
    def far_cell(self) -> str:
        row, column = self.far
        return f"{column_letter(min(column, 10**6) - 1)}{row}" if row and column else "A1"

    def excess(self) -> str | None:
        """What is past the limits, or None."""
        if self.rows > MAX_ROWS:
            return f"{self.rows:,} rows (at most {MAX_ROWS:,})"
        if self.columns > MAX_COLUMNS:
            return f"{self.columns:,} columns (at most {MAX_COLUMNS:,})"
        if self.area > MAX_CELLS:
            return f"{self.area:,} cells from A1 (at most {MAX_CELLS:,})"
        if self.area > SPARSE_FLOOR and self.area > SPARSE_RATIO * self.filled:
            return (
                f"{self.area:,} cells from A1 of which {self.filled:,} hold a value (past "
                f"{SPARSE_FLOOR:,} cells, at least one in {SPARSE_RATIO} must)"
            )
        return None


ADVICE = (
    "delete what lies past the roster (select the empty rows and columns after it, delete "
    "them), save, and try again"
)


def refuse_if_too_large(source: str, extent: Extent, declared: str = "") -> None:
    """One line naming the farthest cell (and the declared dimension, when there is one)."""
    excess = extent.excess()
    if excess is not None:
        stated = f" (it declares {declared})" if declared else ""
        raise InputError(
            f"{source}: refused: it reaches cell {extent.far_cell}{stated}, {excess}; {ADVICE}"
        )


def refuse_if_declared_too_large(source: str, declared: Extent) -> None:
    excess = declared.excess()
    if excess is not None:
        raise InputError(
            f"{source}: refused: it declares {declared.rows:,} rows by {declared.columns:,} "
            f"columns, {excess}; {ADVICE}"
        )


# xlsx

_DIMENSION = re.compile(rb"<(?:[\w.-]+:)?dimension\s[^>]*?ref\s*=\s*[\"']([^\"']*)[\"']")
_CELL_REF = re.compile(rb"([A-Za-z]{1,3})([0-9]{1,7})")
_ATTRIBUTES = rb"((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>"
_ROW_OR_CELL = re.compile(rb"<(?:[\w.-]+:)?(row|c)(?=[\s/>])" + _ATTRIBUTES)
_R_ATTRIBUTE = re.compile(rb"\s(?:[\w.-]+:)?r\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_ODD_CELL = re.compile(rb'<c(?! r="[A-Z]{1,3}[0-9]{1,7}")[\s/>]')
_PREFIXED_CELL = re.compile(rb":c[\s/>]")
_PLAIN_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})')


def declared_dimension(xml: bytes) -> str:
    """The sheet's `<dimension ref>`, as written (it may be anything)."""
    found = _DIMENSION.search(xml[:65536])
    return found.group(1).decode("ascii", "replace")[:40] if found else ""


def xlsx_extent(xml: bytes) -> Extent:
    """The extent of a worksheet part. Files written by Excel, openpyxl or xlsxwriter have
    `<c r="A1"` on every cell and are measured with a few C-speed scans; any other form is
    walked tag by tag."""
    quick = _plain_extent(xml)
    if quick is not None and quick.excess() is None:
        return quick
    return _walked_extent(xml)


def is_plain(xml: bytes) -> bool:
    """Whether every cell tag is `<c r="LETTERS DIGITS"` (self-closing ones included), as Excel,
    openpyxl and xlsxwriter write them: then a cell's position is its own `r`."""
    return not (_ODD_CELL.search(xml) or _PREFIXED_CELL.search(xml))


def _plain_extent(xml: bytes) -> Extent | None:
    """For a plain sheet (`is_plain`), an extent at least as large as the sheet's, or exactly
    its own when it is near a limit; else None."""
    if not is_plain(xml):
        return None
    extent = Extent()
    letters = set(_PLAIN_COLUMN.findall(xml))
    if not letters:
        return extent
    columns = max(map(column_number, letters))
    # Only rows from the first that could break a limit need finding: those with its digits.
    first = SPARSE_FLOOR // columns + 1
    digits = len(str(first))
    rows = re.findall(rb'<c r="[A-Z]{1,3}([0-9]{%d,7})"' % digits, xml)
    extent.reach(max(map(int, rows), default=10 ** (digits - 1) - 1), columns, 0)
    if extent.area > SPARSE_FLOOR:
        extent.filled = xml.count(b'<c r="')
    return extent


def _walked_extent(xml: bytes) -> Extent:
    """Every cell that may hold a value, at the position `xlsx_cells` gives it."""
    extent = Extent()
    for row, column, empty, _ in xlsx_cells(xml):
        if not empty:
            extent.reach(row, column)
    return extent


def xlsx_cells(xml: bytes) -> Iterator[tuple[int, int, bool, int]]:
    """Every cell tag of a worksheet part: (row, column, written `<c .../>`, offset just past the
    tag), both counting from 1. Positions are as calamine gives them, taking the larger of the
    `r` attribute and the position after the previous one (so an `r` calamine reads differently
    cannot make the sheet look smaller than it is)."""
    row = column = 0
    for tag in _ROW_OR_CELL.finditer(xml):
        name, attributes, empty = tag.groups()
        reference = _reference(attributes)
        if name == b"row":
            number = reference[0] if reference else 0
            row, column = max(row + 1, number), 0
            continue
        cell_row, cell_column = reference or (0, 0)
        row, column = max(row, cell_row, 1), max(column + 1, cell_column)
        yield row, column, bool(empty), tag.end()


def _reference(attributes: bytes) -> tuple[int, int] | None:
    """(row, column) from `r`: "C5" in a cell, "5" in a row."""
    found = _R_ATTRIBUTE.search(attributes)
    if found is None:
        return None
    value = (found.group(1) or found.group(2) or b"").strip()
    if value.isdigit():
        return int(value), 0
    cell = _CELL_REF.fullmatch(value)
    return (int(cell.group(2)), column_number(cell.group(1))) if cell else None


# ods

_ODS_TAG = re.compile(
    rb"<(/?)(?:[\w.-]+:)?(table|table-row|table-cell|covered-table-cell)(?=[\s/>])" + _ATTRIBUTES
)
_REPEATED = re.compile(rb"number-(rows|columns)-repeated\s*=\s*[\"']\s*([0-9]{1,12})")
_TABLE_NAME = re.compile(rb"\s(?:[\w.-]+:)?name\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


def _table_name(attributes: bytes | None) -> str:
    """A `<table:table>`'s name, as the sheet is named (its XML entities read: `A&amp;B` is
    `A&B`)."""
    label = _TABLE_NAME.search(attributes or b"")
    title = (label.group(1) or label.group(2) or b"") if label else b""
    return html.unescape(title.decode("utf-8", "replace"))


def ods_extents(xml: bytes) -> list[tuple[str, Extent]]:
    """(table name, extent) of every table in content.xml. A repeated row or cell counts as
    many times as it is repeated, when it may hold a value (any cell not written `<.../>`, or
    carrying a value attribute); empty ones, which LibreOffice repeats to the sheet's end, only
    move the position on."""
    tables: list[tuple[str, Extent]] = []
    extent = Extent()
    row = column = 0
    row_repeat = row_cells = 0
    for tag in _ODS_TAG.finditer(xml):
        closing, name, attributes, empty = tag.groups()
        if name == b"table":
            if not closing:
                extent, row = Extent(), 0
                tables.append((_table_name(attributes), extent))
            continue
        if name == b"table-row":
            if closing:
                if row_cells:
                    extent.reach(row + row_repeat, extent.columns, row_cells * (row_repeat - 1))
                row += row_repeat
            else:
                row_repeat, row_cells, column = _repeat(attributes), 0, 0
                if empty:
                    row += row_repeat
            continue
        if closing:
            continue
        repeat = _repeat(attributes)
        if not empty or b"value" in attributes:
            extent.reach(row + 1, column + repeat, repeat)
            row_cells += repeat
        column += repeat
    return tables


def _repeat(attributes: bytes) -> int:
    found = _REPEATED.search(attributes)
    return max(1, int(found.group(2))) if found else 1


# What a table hides (`ods_hidden`): a row or column whose table:visibility is "collapse"
# (hidden by hand, or folded in a group) or "filter" (filtered out by the table's filter).
_ODS_PARTS = re.compile(
    rb"<(/?)(?:[\w.-]+:)?(table|table-column|table-row|table-cell|covered-table-cell)(?=[\s/>])"
    + _ATTRIBUTES
)
_VISIBILITY = re.compile(rb"""\s(?:[\w.-]+:)?visibility\s*=\s*["'](collapse|filter)["']""")
# Past Excel's last column, no hidden column is named (a repeated column runs to the sheet's end).
_LAST_COLUMN = 16_384

Hidden = tuple[list[int], list[int], bool]  # rows (from 1), column positions (from 0), filtered


def ods_hidden(xml: bytes) -> dict[str, Hidden]:
    """Per table of content.xml, as `spreadsheet.hidden_parts` gives an xlsx sheet's: the rows
    hidden or filtered out that hold a value (LibreOffice writes the empty rows to a sheet's end
    as one repeated row, which may be hidden: not named), the column positions hidden, and
    whether a filter hid rows. Most files hide nothing: one search at C speed says so."""
    found: dict[str, Hidden] = {}
    if b"visibility" not in xml:
        return found
    rows: list[int] = []
    columns: list[int] = []
    filtered = False
    row = column = repeat = 0
    hiding: bytes | None = None
    holds_value = False
    for tag in _ODS_PARTS.finditer(xml):
        closing, name, attributes, empty = tag.groups()
        if name == b"table":
            if not closing:
                rows, columns, filtered, row, column = [], [], False, 0, 0
                found[_table_name(attributes)] = (rows, columns, False)
            elif found:
                last = next(reversed(found))
                found[last] = (rows, columns, filtered)
            continue
        if closing and name != b"table-row":
            continue
        if name == b"table-column":
            count = _repeat(attributes)
            if _VISIBILITY.search(attributes):
                columns.extend(range(column, min(column + count, _LAST_COLUMN)))
            column += count
        elif name == b"table-row" and not closing:
            repeat, holds_value = _repeat(attributes), False
            shown = _VISIBILITY.search(attributes)
            hiding = shown.group(1) if shown else None
            if empty:
                row += repeat
        elif name == b"table-row":
            if hiding is not None and holds_value:
                rows.extend(range(row + 1, row + repeat + 1))
                filtered = filtered or hiding == b"filter"
            row += repeat
        elif not empty or b"value" in attributes:
            holds_value = True
    return found


# xls

ROW_RECORD, ROW_HIDDEN = 0x0208, 0x0020  # BIFF3-8 ROW, its fDyZero flag: the row is hidden
COLINFO_RECORD, COLUMN_HIDDEN = 0x007D, 0x0001  # a column range's format, its fHidden flag
BOF_RECORDS = {0x0009, 0x0209, 0x0409, 0x0809}
DIMENSIONS_RECORDS = {0x0000, 0x0200}
CELL_RECORDS = {
    0x0002,  # INTEGER (BIFF2)
    0x0003,  # NUMBER (BIFF2)
    0x0004,  # LABEL (BIFF2)
    0x0005,  # BOOLERR (BIFF2)
    0x0006,  # FORMULA
    0x0206,  # FORMULA (BIFF3)
    0x0406,  # FORMULA (BIFF4)
    0x00BD,  # MULRK: several columns
    0x00D6,  # RSTRING
    0x00FD,  # LABELSST
    0x0203,  # NUMBER
    0x0204,  # LABEL
    0x0205,  # BOOLERR
    0x027E,  # RK
}


BOUNDSHEET = 0x0085


@dataclass
class XlsSheet:
    name: str
    extent: Extent
    declared: Extent  # the DIMENSIONS record
    # rows (from 1) and column positions (from 0) hidden: the ROW and COLINFO records' flags
    hidden_rows: list[int] = field(default_factory=list)
    hidden_columns: list[int] = field(default_factory=list)


def xls_extents(stream: bytes) -> list[XlsSheet]:
    """Per substream of the Workbook stream (the globals, then one per sheet, named as the
    globals' BOUNDSHEET records list them): the cells' extent and the declared DIMENSIONS."""
    sheets: list[XlsSheet] = []
    names: list[str] = []
    current = XlsSheet("", Extent(), Extent())
    position, end = 0, len(stream)
    while position + 4 <= end:
        kind, length = struct.unpack_from("<HH", stream, position)
        body = position + 4
        position = body + length
        if kind in BOF_RECORDS:
            number = len(sheets)
            label = names[number - 1] if 0 < number <= len(names) else f"number {number}"
            current = XlsSheet(label, Extent(), Extent())
            sheets.append(current)
        elif kind == BOUNDSHEET and length >= 8 and position <= end:
            names.append(_sheet_name(stream[body + 6 : position]))
        elif kind in CELL_RECORDS and length >= 4 and position <= end:
            row, first = struct.unpack_from("<HH", stream, body)
            last = first
            if kind == 0x00BD and length >= 6:
                last = struct.unpack_from("<H", stream, position - 2)[0]
            current.extent.reach(row + 1, max(first, last) + 1, abs(last - first) + 1)
        elif kind in DIMENSIONS_RECORDS and position <= end:
            _declare(current.declared, stream[body:position])
        elif kind == ROW_RECORD and length >= 16 and position <= end:
            row, options = struct.unpack_from("<H10xH", stream, body)
            if options & ROW_HIDDEN:
                current.hidden_rows.append(row + 1)
        elif kind == COLINFO_RECORD and length >= 10 and position <= end:
            first, last, options = struct.unpack_from("<HH4xH", stream, body)
            if options & COLUMN_HIDDEN:
                current.hidden_columns.extend(range(first, min(last, _LAST_COLUMN - 1) + 1))
    return sheets


def _sheet_name(record: bytes) -> str:
    """BIFF8's short string: a length, a flag (1: UTF-16), the characters."""
    count, flags = record[0], record[1] if len(record) > 1 else 0
    if flags & 1:
        return record[2 : 2 + 2 * count].decode("utf-16-le", "replace")
    return record[2 : 2 + count].decode("latin-1")


def _declare(declared: Extent, record: bytes) -> None:
    """DIMENSIONS: first row, last row + 1, first column, last column + 1 (rows as 32 bits in
    BIFF8, 16 bits before)."""
    if len(record) >= 12:
        _, rows, _, columns = struct.unpack_from("<IIHH", record)
    elif len(record) >= 8:
        _, rows, _, columns = struct.unpack_from("<HHHH", record)
    else:
        return
    declared.rows, declared.columns = max(declared.rows, rows), max(declared.columns, columns)
    declared.filled = declared.area  # a declaration is judged on its size alone
    declared.far = (rows, columns)
