"""Reading rosters: every cell as the exact text the user sees, and the columns named.

Why everything is text: a phone number typed as 2025550143 is a number to Excel, and pandas would
make it 2025550143.0; "NA" is a first name, not a missing value. So no type inference and no NA
parsing happen here: numbers become the integer text the spreadsheet shows, and the schema
decides what each column means.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path

import pandas as pd

from .columns import (
    ALIAS_KEYS,
    COLUMNS,
    EXPORT_ONLY_COLUMNS,
    FULL_NAME,
    REQUIRED_COLUMNS,
    ROSTER_COLUMNS,
    SITE_COLUMNS,
    SITE_NAME_COLUMNS,
    header_key,
)
from .errors import InputError
from .gc_pause import gc_paused
from .header_keys import FULL_NAME_KEYS, phone_rank
from .layouts import (
    DEFAULT_LAYOUT,
    PHONE_LEFT_OUT,
    SECRET_KINDS,
    Layout,
    LayoutFacts,
    header_row,
    known_export,
    not_sent_kind,
    phone_order,
    rows_above,
    split_full_names,
    take_phones,
)
from .models import Contact
from .spreadsheet import (
    ROUNDED_LENGTH,
    Cells,
    TextColumns,
    cell_text,
    column_index,
    column_letter,
    read_cells,
    rounded_number,
)
from .words import column_label, quoted_repr

__all__ = ["Roster", "Table", "column_index", "column_letter", "read_roster"]


# Columns an export adds for the reader's benefit: known, not reported as unknown.
UNREAD_KEYS = frozenset(header_key(name) for name in EXPORT_ONLY_COLUMNS)


@dataclass
class Table:
    """A sheet or CSV file as text: the header row, then the rows below it."""

    source: str  # "roster.xlsx (sheet Contacts)" or "roster.csv": how messages name the file
    headers: list[str]
    cells: pd.DataFrame  # str cells; columns are positions 0..n-1; index is the row number
    header_row: int = 1
    date_cells: set[tuple[int, int]] = field(default_factory=set)  # (row, column position)
    formula_cells: set[tuple[int, int]] = field(default_factory=set)  # formulas with no value
    merged_cells: set[tuple[int, int]] = field(default_factory=set)  # merged from their left
    # Number cells a spreadsheet rounded (`spreadsheet.rounded_number`): (row, column position)
    # -> as Excel shows them, 1.23457E+12. Read so in id columns; a phone's is phone_scientific.
    rounded_cells: dict[tuple[int, int], str] = field(default_factory=dict)
    # What the user does not see (`spreadsheet.hidden_parts`), read all the same: rows (numbered
    # as `cells`), column positions, and whether the sheet has an autofilter.
    hidden_rows: list[int] = field(default_factory=list)
    hidden_columns: dict[int, str] = field(default_factory=dict)  # position -> its sheet(s)
    filtered: bool = False
    details: dict[str, str] = field(default_factory=dict)  # encoding, delimiter, sheet
    snapshot: dict[int, Contact] | None = None
    snapshot_damage: str = ""  # why an export's snapshot could not be read ("" if it could)
    # With --all-sheets, the workbook's visible sheets in order, "" for those not read (rows are
    # numbered sheet * SHEET_ROWS + row: see `site_layouts.row_label`); () for one sheet or CSV.
    sheets: tuple[str, ...] = ()
    header_found: str = ""  # "detected" or "chosen" (--header-row) when not the first row
    skipped: list[str] = field(default_factory=list)  # what the rows above the header hold
    added_ids: bool = False  # --match-by name added an empty external_contact_id column
    sites_from_sheet_names: frozenset[str] = frozenset()  # the sheets whose name is their site


@dataclass
class Roster:
    """The roster's columns under canonical names, text cells, indexed by spreadsheet row."""

    source: str
    frame: pd.DataFrame
    columns: dict[str, tuple[str, str]]  # field -> (column letter, header as written)
    ignored_columns: list[tuple[str, str]]  # unknown columns: (letter, header)
    table: Table
    facts: LayoutFacts = field(default_factory=LayoutFacts)  # what the reader derived

    @property
    def snapshot(self) -> dict[int, Contact] | None:
        """For an xlsx export: the contacts as CHeKT held them when it was made."""
        return self.table.snapshot

    def row_text(self, row: int) -> str:
        """A row as messages name it: `5`, or with --all-sheets `5 of sheet 'AC-1001'`."""
        if not self.table.sheets:
            return str(row)
        from .site_layouts import SHEET_ROWS, sheet_of

        return f"{row % SHEET_ROWS} of sheet '{sheet_of(row, self.table.sheets)}'"

    def column_label(self, name: str, row: int | None = None) -> str:
        letter, header = self.columns.get(name, ("", name))
        label = column_label(letter, header) if letter else name
        if self.table.sheets and row:  # --all-sheets: the sheet's name, as Excel writes it
            from .site_layouts import sheet_of

            sheet = sheet_of(row, self.table.sheets)
            if name == "site_name" and sheet in self.table.sites_from_sheet_names:
                return f"the name of sheet '{sheet}'"  # no column: the tab names the site
            return f"'{sheet}'!{label}"
        return label

    def cell_position(self, name: str, row: int | None) -> int | None:
        """Where a row's value of a column is in the file: with several phone columns, the
        one its number came from."""
        source = self.facts.phone_source
        if name == "phone_number" and source is not None and row is not None:
            position = int(source.get(row, -1))
            if position >= 0:
                return position
        if name not in self.columns:
            return None
        return column_index(self.columns[name][0])

    def cell_label(self, name: str, row: int | None) -> str:
        """`column_label`, for one row (its phone's own column, when there are several)."""
        source = self.facts.phone_source
        if name == "phone_number" and source is not None and row is not None:
            position = int(source.get(row, -1))
            if position >= 0:
                return column_label(column_letter(position), self.table.headers[position])
        return self.column_label(name, row)


# entry points


def read_roster(
    path: Path,
    sheet: str | None = None,
    column_map: dict[str, str] | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> Roster:
    """Read a roster and name its columns. Raises InputError with the file and what to do."""
    return roster_from_cells(read_cells(path, sheet), column_map, layout)


@gc_paused()
def roster_from_cells(
    cells: Cells, column_map: dict[str, str] | None = None, layout: Layout = DEFAULT_LAYOUT
) -> Roster:
    column_map = column_map or {}
    table = table_from_cells(cells, layout.header_row, column_map)
    return map_columns(table, column_map, layout)


def read_table(path: Path, sheet: str | None = None) -> Table:
    return table_from_cells(read_cells(path, sheet))


def table_from_cells(
    cells: Cells, header: int | None = None, column_map: dict[str, str] | None = None
) -> Table:
    """Every cell as the text the user sees, the header found (`header`: its row number, else
    the first of the first rows naming two roster columns), blank rows dropped."""
    if cells.columns is not None:  # a CSV file, read by column
        custom = {header_key(h): name for h, name in (column_map or {}).items()}
        frame = _text_frame(cells.source, cells.columns)
        table = _split_header(frame, cells.source, set(), header, custom)
        table.details = dict(cells.details)
        return table
    rows = cells.rows
    width = max(map(len, rows), default=0)
    if any(len(row) != width for row in rows):  # CSV lines may be ragged
        rows = [row + [""] * (width - len(row)) for row in rows]
    frame = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame()
    date_cells: set[tuple[int, int]] = set()
    rounded_cells: dict[tuple[int, int], str] = {}
    for position in frame.columns:
        values = frame[position].tolist()
        if set(map(type, values)) == {str}:
            continue
        odd = [i for i, v in enumerate(values) if type(v) is not str]
        date_cells.update((i + 1, position) for i in odd if isinstance(values[i], date | time))
        for i in odd:
            value = values[i]
            text = values[i] = cell_text(value)
            if len(text) >= ROUNDED_LENGTH and (shown := rounded_number(value, text)):
                rounded_cells[(i + 1, position)] = shown
        frame[position] = values
    frame.index = pd.RangeIndex(1, len(frame) + 1)  # spreadsheet row numbers
    custom = {header_key(h): name for h, name in (column_map or {}).items()}
    table = _split_header(frame, cells.source, date_cells, header, custom)
    table.formula_cells = cells.formula_cells
    table.merged_cells = cells.merged_cells
    table.rounded_cells = rounded_cells
    table.hidden_rows = cells.hidden_rows
    sheet = repr(cells.details.get("sheet", ""))
    table.hidden_columns = dict.fromkeys(cells.hidden_columns, sheet)
    table.filtered = cells.filtered
    table.details = dict(cells.details)
    try:
        table.snapshot = parse_snapshot(cells.snapshot)
    except DamagedSnapshot as damage:  # read as a plain roster, and said so (schema warns)
        table.snapshot_damage = str(damage)
    return table


SNAPSHOT_FORMAT = "bulk-contacts-export/1"


def parse_snapshot(rows: list[list] | None) -> dict[int, Contact] | None:
    """The hidden snapshot sheet of an xlsx export: a marker row, a header, then cells of JSON
    arrays, one array per contact."""
    if not rows or not rows[0] or rows[0][0] != SNAPSHOT_FORMAT:
        return None
    try:
        header = json.loads(rows[1][0])
        items = [item for row in rows[2:] if row and row[0] for item in json.loads(row[0])]
        contacts = {}
        for values in items:
            contact = Contact.from_api(dict(zip(header, values, strict=False)))
            contacts[contact.contact_id] = contact
    except (IndexError, KeyError, ValueError, TypeError) as error:
        raise DamagedSnapshot(f"{type(error).__name__}: {error}") from None
    return contacts


class DamagedSnapshot(ValueError):
    """An export's snapshot sheet that cannot be read: the file is then read as a plain roster,
    and validation warns that the merge is two-way (`snapshot_damaged`)."""


def _text_frame(source: str, columns: TextColumns) -> pd.DataFrame:
    """The columns as pandas text Series over the Arrow arrays (not copied), indexed by row
    number."""
    if not columns.columns and columns.blank_rows:
        raise InputError(f"{source}: every cell is empty; the first row must be the header")
    index = pd.Index(columns.row_numbers.to_numpy(), dtype="int64")
    return pd.DataFrame(
        {
            position: pd.Series(values, index=index, dtype="str", copy=False)
            for position, values in enumerate(columns.columns)
        },
        copy=False,
    )


def _split_header(
    frame: pd.DataFrame,
    source: str,
    date_cells: set[tuple[int, int]],
    chosen: int | None = None,
    custom: dict[str, str] | None = None,
) -> Table:
    if frame.empty:
        raise InputError(f"{source}: holds no rows at all; the first row must be the header")
    frame = frame.fillna("").astype("str")
    filled = pd.Series(False, index=frame.index)
    for position in frame.columns:
        filled |= frame[position].str.strip() != ""
    if not filled.any():
        raise InputError(f"{source}: every cell is empty; the first row must be the header")
    row, found = header_row(frame, filled, source, chosen, custom or {})
    headers = [h.strip() for h in frame.loc[row]]
    body = frame.loc[row + 1 :]
    kept = filled.loc[row + 1 :]
    if not kept.all():  # blank rows are skipped, numbers kept (a copy only when there are some)
        body = body[kept]
    table = Table(source, headers, body, row, date_cells, header_found=found)
    if found:
        table.skipped = rows_above(frame, row)
    return table


# columns

LISTED = 10  # a message lists this many headers, then says how many more there are


def listed(items: list[str], limit: int = LISTED) -> str:
    """'A, B, C' or, past `limit` items, 'A, B, C and 199,990 more' (or 'none')."""
    if len(items) <= limit:
        return ", ".join(items) or "none"
    return f"{', '.join(items[:limit])} and {len(items) - limit:,} more"


def map_columns(
    table: Table, column_map: dict[str, str], layout: Layout = DEFAULT_LAYOUT
) -> Roster:
    extra = _custom_aliases(column_map)
    _refuse_control_headers(table)
    _require_mapped_headers(table, column_map)
    fields: dict[str, int] = {}
    labels: dict[str, tuple[str, str]] = {}
    ignored: list[tuple[str, str]] = []
    facts = LayoutFacts(table.header_row, table.header_found, table.skipped)
    facts.name_case = layout.name_case
    keys = [header_key(header) for header in table.headers]
    facts.export = "a vCard file" if "vcard" in table.details else known_export(set(keys))
    wanted_phones = {header_key(h) for h in layout.phone_columns}
    phones: list[tuple[int, str, str, float]] = []  # (position, letter, header, rank)
    full_names: list[tuple[int, str, str]] = []
    unread: list[tuple[str, str]] = []  # columns no rule names, of a known export
    for position, (header, key) in enumerate(zip(table.headers, keys, strict=True)):
        letter = column_letter(position)
        name = extra.get(key)
        kind = not_sent_kind(header) if name is None else None
        if kind in SECRET_KINDS:  # a passcode is never read, whatever its header also says
            facts.secret_positions.add(position)
            facts.not_sent.append((letter, header, kind))
            continue
        rank = (
            phone_rank(key, header) if name is None else (0.0 if name == "phone_number" else None)
        )
        if rank is not None or key in wanted_phones:
            phones.append((position, letter, header, rank if rank is not None else 99.0))
            continue
        if name == FULL_NAME or (name is None and key in FULL_NAME_KEYS):
            full_names.append((position, letter, header))
            continue
        name = name or ALIAS_KEYS.get(key)
        if name is None:
            if key in UNREAD_KEYS:
                continue
            if kind is not None:
                facts.not_sent.append((letter, header, kind))
            elif header or (table.cells[position].str.strip() != "").any():
                (unread if facts.export else ignored).append((letter, header or "(no header)"))
            continue
        if name in fields:
            _both_mean(table, labels[name], (letter, header), name)
        fields[name] = position
        labels[name] = (letter, header)
    facts.not_sent += [(letter, header, "") for letter, header in unread]  # all named
    derived = _derive_names(table, full_names, fields, labels, facts)
    derived |= _derive_phone(table, phones, layout, fields, labels, facts)
    _require_columns(table, fields, derived, layout)
    frame = pd.DataFrame(index=table.cells.index)
    # The columns the file lacks share one column of empty cells (8 MB a million rows, once).
    empty = pd.Series("", index=table.cells.index, dtype="str")
    for name in ROSTER_COLUMNS:
        frame[name] = (
            derived[name]
            if name in derived
            else (table.cells[fields[name]] if name in fields else empty)
        )
    if table.rounded_cells:
        _read_rounded_ids(table, frame, fields)
    return Roster(table.source, frame, labels, ignored, table, facts)


# The columns whose number cells a spreadsheet rounded are read as it showed them (1.23457E+12),
# so that the id is never taken for another (`id_scientific`, and a plan's `id_damaged`; a
# site_id's is `not_numeric`). Not contact_id nor dealer_id: CHeKT's own ids, which a rounded
# value names no contact or dealer of, and a real one may well end in zeros.
ROUNDED_READ_AS_SHOWN = tuple(c.name for c in COLUMNS if c.site or c.name == "external_contact_id")


def _read_rounded_ids(table: Table, frame: pd.DataFrame, fields: dict[str, int]) -> None:
    by_position: dict[int, dict[int, str]] = {}
    for (row, position), shown in table.rounded_cells.items():
        by_position.setdefault(position, {})[row] = shown
    for name in ROUNDED_READ_AS_SHOWN:
        found = by_position.get(fields.get(name, -1))
        if found:
            column = frame[name].copy()
            rows = [row for row in found if row in column.index]
            column[rows] = [found[row] for row in rows]
            frame[name] = column


# C0 and C1 controls and DEL, but the line breaks and tab a header cell may wrap with (Alt+Enter).
_HEADER_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _refuse_control_headers(table: Table) -> None:
    """A header holding a control character (a NUL): its key would ignore it, and the column
    be read as if the header were clean. No spreadsheet writes one: the file is damaged, or not
    what it seems; refused like the cells' `control_character`, naming the column."""
    for position, header in enumerate(table.headers):
        found = dict.fromkeys(_HEADER_CONTROL.findall(header))
        if found:
            named = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip() for c in found)
            raise InputError(
                f"{table.source}: the header of column {column_letter(position)}, "
                f"{quoted_repr(header)}, holds a control character ({named}), which no header "
                f"has (control_character, header row {table.header_row}); type the header again, "
                f"or save the file again from the program that made it"
            )


def _both_mean(table: Table, first: tuple[str, str], second: tuple[str, str], name: str) -> None:
    raise InputError(
        f"{table.source}: columns {column_label(*first)} and {column_label(*second)} both "
        f"mean {name}; rename or delete one of them"
    )


def _derive_names(
    table: Table,
    full_names: list[tuple[int, str, str]],
    fields: dict[str, int],
    labels: dict[str, tuple[str, str]],
    facts: LayoutFacts,
) -> dict[str, pd.Series]:
    """first_name and last_name split from a whole-name column, when the file lacks them."""
    if not full_names:
        return {}
    if len(full_names) > 1:
        (_, *first), (_, *second) = full_names[:2]
        _both_mean(table, (first[0], first[1]), (second[0], second[1]), FULL_NAME)
    position, letter, header = full_names[0]
    missing = [name for name in ("first_name", "last_name") if name not in fields]
    if not missing:
        facts.not_sent.append((letter, header, "first and last names have their own columns"))
        return {}
    split = split_full_names(table.cells[position].str.strip())
    facts.full_name = (letter, header)
    facts.name_problems = split
    for name in missing:
        labels[name] = (letter, header)
    parts = {"first_name": split["first"], "last_name": split["last"]}
    return {name: parts[name].astype("str") for name in missing}


def _several_in_a_cell(table: Table, position: int) -> bool:
    """Google's and the vCard reader's "a ::: b": two numbers in one cell."""
    return bool(table.cells[position].str.contains(":::", regex=False).any())


def _derive_phone(
    table: Table,
    phones: list[tuple[int, str, str, float]],
    layout: Layout,
    fields: dict[str, int],
    labels: dict[str, tuple[str, str]],
    facts: LayoutFacts,
) -> dict[str, pd.Series]:
    """One phone column is the phone; of several, each row's first non-empty one, in the
    documented order or --phone-columns'; the others are listed as not sent."""
    if not phones:
        if layout.phone_columns:
            phone_order([], layout.phone_columns, table.source)  # names what is missing
        return {}
    # A hidden phone column is taken after the visible ones (`hidden_column` says so).
    hidden = not layout.phone_columns and len(phones) > 1 and set(table.hidden_columns)
    if hidden:
        phones = [(p, letter, h, rank + 1000 * (p in hidden)) for p, letter, h, rank in phones]
    order, rest, given = phone_order(phones, layout.phone_columns, table.source)
    if hidden and any(p in hidden for p, _, _ in order):
        given = "the default order, hidden columns last"
    for letter_header in rest:
        facts.not_sent.append((letter_header[1], letter_header[2], PHONE_LEFT_OUT))
    labels["phone_number"] = order[0][1:]
    if len(order) == 1 and not (facts.export and _several_in_a_cell(table, order[0][0])):
        fields["phone_number"] = order[0][0]
        return {}
    phone, source, not_sent = take_phones(table.cells, order)
    facts.phone_order, facts.phone_given = order, given
    facts.phone_source, facts.phones_not_sent = source, not_sent
    return {"phone_number": phone}


def _custom_aliases(column_map: dict[str, str]) -> dict[str, str]:
    aliases = {}
    for header, name in column_map.items():
        if name not in (*ROSTER_COLUMNS, FULL_NAME):
            raise InputError(
                f"--map {header}={name}: {name!r} is not a roster column; use one of "
                f"{', '.join(ROSTER_COLUMNS)} (or {FULL_NAME}: a whole name, split)"
            )
        aliases[header_key(header)] = name
    return aliases


def _require_mapped_headers(table: Table, column_map: dict[str, str]) -> None:
    """A --map whose header the file does not have would be ignored, and the column it was
    meant to read silently missing: an error, naming the headers the file has."""
    present = {header_key(h) for h in table.headers}
    for header, name in column_map.items():
        if header_key(header) not in present:
            raise InputError(
                f'{table.source}: --map "{header}={name}": no header {header!r} in the file '
                f"(header row {table.header_row}). Headers found: {_headers_found(table)}. "
                f"Write the header as the file does (case, spaces and punctuation aside)."
            )


def _headers_found(table: Table) -> str:
    headers = [column_label(column_letter(i), h) for i, h in enumerate(table.headers) if h]
    return listed(headers) or "none"


def _require_columns(
    table: Table, fields: dict[str, int], derived: dict[str, pd.Series], layout: Layout
) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in fields and name not in derived]
    if not any(name in fields for name in (*SITE_COLUMNS, *SITE_NAME_COLUMNS)):
        missing.append(" or ".join((*SITE_COLUMNS, *SITE_NAME_COLUMNS)))
    if not missing:
        return
    found = _headers_found(table)
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
    message += _layout_hints(missing, layout.all_sheets)
    raise InputError(message)


def _layout_hints(missing: list[str], all_sheets: bool = False) -> str:
    """What to do when a file has no id or no site column (`site_layouts` does the rest); not
    --all-sheets when it was given (a CSV file has no tabs to read)."""
    hints = []
    if "external_contact_id" in missing:
        hints.append(
            "without an id column, pass --match-by name to match the contacts of each site by "
            "first and last name (and give created contacts a generated id)"
        )
    if any(name.startswith(SITE_COLUMNS[0]) for name in missing):
        tabs = "" if all_sheets else ", or read a workbook with one tab per site with --all-sheets"
        hints.append(
            "without a site column, give the file's one site with --site ID, --account NUMBER "
            "or --external-site-id ID" + tabs
        )
    return "".join(f" {hint[0].upper()}{hint[1:]}." for hint in hints)
