"""Rosters laid out by site: a workbook with one tab per site (`--all-sheets`), a file for one
site (`--site`, `--account`, `--external-site-id`), and files without an id column (`--match-by
name`).

`read_layout` opens the sheets to read (no pandas: it runs in a thread while pandas loads);
`roster_from_layout` turns them into one roster:

- **one tab per site**: every visible worksheet whose first rows name roster columns (at least
  two, not only site columns) is read; a tab whose rows have no site column gets its name as the
  rows' `site_name` (resolved at plan time as an account number, an external site id or a site
  name: `sites.place_by_name`). Rows are numbered `sheet * SHEET_ROWS + row` (sheet from 1, its
  place among the workbook's visible sheets, read or not), so every row keeps its own row number
  and its sheet; messages name both, the sheet by its name (`'ACCT-1'!C 'Phone'`, `'ACCT-1' row
  5`). Without `--all-sheets`, other visible sheets that look
  like rosters are named in an `other_sheets` warning.
- **one site for the whole file**: the site given fills that site column on every row; a file
  whose column holds another value for it is refused (a column naming the site another way is
  checked once sites are resolved: `site_mismatch`).
- **no id column** with `--match-by name`: rows get a provisional id from their name
  (`sites.provisional_id`), replaced by the generated id once the site is known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .columns import ALIAS_KEYS, SITE_COLUMNS, header_key
from .errors import InputError
from .gc_pause import gc_paused
from .header_keys import HEADER_SEARCH_ROWS, SITE_NAMES, custom_keys, names_roster_columns
from .spreadsheet import SNAPSHOT_SHEET, Cells, read_cells

if TYPE_CHECKING:
    from .pipeline import ReadOptions
    from .roster import Roster, Table
    from .schema import RosterIssue

SHEET_ROWS = 10_000_000  # past Excel's 1,048,576 rows: sheet k's row r is k * SHEET_ROWS + r
SITE_FLAGS = {
    "site_id": "--site",
    "account_number": "--account",
    "external_site_id": "--external-site-id",
}


def row_label(row: int, sheets: Sequence[str] = ()) -> str:
    """`row 5`, or for a row of a workbook read with --all-sheets `'AC-1003' row 5`: the sheet
    by its name (`sheets`: the workbook's visible sheets, `Table.sheets`), the row its own."""
    sheet, own = divmod(row, SHEET_ROWS)
    if not sheet:
        return f"row {own}"
    if sheet <= len(sheets) and sheets[sheet - 1]:
        return f"'{sheets[sheet - 1]}' row {own}"
    return f"sheet {sheet} row {own}"


def sheet_of(row: int, sheets: Sequence[str]) -> str:
    return sheets[row // SHEET_ROWS - 1]


_SITE_NAMES = SITE_NAMES


def _column_of(header: str, extra: dict[str, str]) -> str | None:
    """The roster column a header names: as --map maps it, else by the column's aliases."""
    key = header_key(header)
    return extra.get(key) or ALIAS_KEYS.get(key)


def _names(row: Sequence[Any], column_map: dict[str, str]) -> list[str]:
    extra = custom_keys(column_map)
    return [name for cell in row if isinstance(cell, str) and (name := _column_of(cell, extra))]


def looks_like_roster(rows: list[list[Any]], column_map: dict[str, str]) -> bool:
    """One of the first rows is a roster's header, by the rule that finds a sheet's header
    row (`names_roster_columns`: two roster columns, not only site columns)."""
    custom = custom_keys(column_map)
    return any(names_roster_columns(row, custom) for row in rows[:HEADER_SEARCH_ROWS])


@dataclass
class Layout:
    """The sheets to read, and the other visible sheets that look like rosters (not read)."""

    path: Path
    sheets: list[Cells]
    unread_rosters: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # --all-sheets: visible, not rosters
    order: list[str] = field(default_factory=list)  # the workbook's visible sheets, in order
    by_sheet: bool = False  # --all-sheets on a workbook: each tab's name names its site


def read_layout(path: Path, options: ReadOptions) -> Layout:
    """The sheet (or CSV file) to read, or with `all_sheets` every visible worksheet that looks
    like a roster (even one alone). Other sheets are opened only when the workbook has several
    visible ones."""
    first = read_cells(path, options.sheet)
    column_map = dict(options.column_map)
    others = [name for name in first.visible_sheets if name != first.details.get("sheet")]
    is_export = first.snapshot is not None
    by_sheet = options.all_sheets and not is_export and "sheet" in first.details
    if not by_sheet and (not others or is_export or options.sheet is not None):
        return Layout(path, [first])
    found: dict[str, Cells] = {first.details["sheet"]: first}
    for name in others:
        if name != SNAPSHOT_SHEET:
            found[name] = read_cells(path, name)
    rosters = [
        name
        for name in first.visible_sheets
        if name in found and looks_like_roster(found[name].rows, column_map)
    ]
    if not by_sheet:
        return Layout(path, [first], [name for name in rosters if name != first.details["sheet"]])
    if not rosters:
        visible = ", ".join(map(repr, first.visible_sheets or [first.details["sheet"]]))
        raise InputError(
            f"{path}: --all-sheets reads the visible sheets whose header (in the first "
            f"{HEADER_SEARCH_ROWS} rows) names two roster columns, such as 'Name' and 'Phone'; "
            f"no visible sheet does ({visible}). Rename the headers, or name the columns with "
            f'--map "Header=column"'
        )
    skipped = [name for name in first.visible_sheets if name not in rosters]
    order = first.visible_sheets or [first.details["sheet"]]
    sheets = [found[name] for name in rosters]
    return Layout(path, sheets, skipped=skipped, by_sheet=True, order=order)


# turning the sheets into one roster


@gc_paused()
def roster_from_layout(layout: Layout, options: ReadOptions) -> tuple[Roster, list[RosterIssue]]:
    """The roster the layout holds, and the file-level warnings about it. One sheet read with
    none of these options is read exactly as `roster.roster_from_cells` reads it."""
    from .roster import roster_from_cells

    column_map = dict(options.column_map)
    if not layout.by_sheet and options.site is None and options.match_by is None:
        roster = roster_from_cells(layout.sheets[0], column_map, options.layout)
        _names_only_where_used(roster)
        return roster, layout_warnings(layout)
    roster = roster_from_table(layout_table(layout, options), options, column_map)
    return roster, layout_warnings(layout)


def layout_table(layout: Layout, options: ReadOptions) -> Table:
    """The layout's sheets as one table of text cells, before its columns are named: each
    tab's name as its rows' site_name (--all-sheets), the one site on every row (--site...),
    an empty id column (--match-by name) added. `serve` corrects this table's cells."""
    from .roster import table_from_cells

    column_map = dict(options.column_map)
    tables = []
    several = layout.by_sheet
    added_ids = False
    named_by_sheet: list[str] = []
    for cells in layout.sheets:
        table = table_from_cells(cells, options.header_row, column_map)
        if several and not _mapped(table, column_map) & _SITE_NAMES and not options.site:
            table = _with_column(table, "site_name", cells.details.get("sheet", ""))
            named_by_sheet.append(cells.details.get("sheet", ""))
        if options.site is not None:
            table = _assign_site(table, column_map, *options.site)
        if options.match_by == "name" and "external_contact_id" not in _mapped(table, column_map):
            table = _with_column(table, "external_contact_id", "")
            added_ids = True
        tables.append(table)
    table = _combined(layout, tables, column_map) if several else tables[0]
    table.added_ids = added_ids
    table.sites_from_sheet_names = frozenset(named_by_sheet)
    said = table.details
    if named_by_sheet:
        said["site from the sheet's name"] = ", ".join(map(repr, named_by_sheet))
    if options.site is not None:
        column, value = options.site
        said["site"] = f"{column} {value} on every row ({SITE_FLAGS[column]})"
    if options.match_by == "name":
        said["ids"] = "matched by first and last name, created ones generated (--match-by name)"
    return table


def roster_from_table(table: Table, options: ReadOptions, column_map: dict[str, str]) -> Roster:
    """The roster of a `layout_table`, its columns named (`column_map`: --map's, or the
    columns `serve` was told), the layout options' rules applied."""
    from .roster import map_columns

    try:
        roster = map_columns(table, column_map, options.layout)
    except InputError as error:
        if not table.added_ids:
            raise
        # The headers found are the file's: not the id column added for --match-by name.
        found = re.sub(r", [A-Z]+ 'external_contact_id'", "", str(error))
        raise InputError(found) from None
    _names_only_where_used(roster)
    if options.match_by == "name":
        _provisional_ids(roster, table.added_ids)
        roster.facts.match_by_name = True
    return roster


def _names_only_where_used(roster: Roster) -> None:
    """A site_name beside another site column is not read (an export writes both): it is
    neither checked nor compared, so an export imports as it always did."""
    frame = roster.frame
    if "site_name" not in roster.columns:
        return
    other = frame[list(SITE_COLUMNS)].ne("").any(axis=1)
    if other.any():
        frame["site_name"] = frame["site_name"].where(~other, "")


def _mapped(table: Table, column_map: dict[str, str]) -> set[str]:
    return set(_names(table.headers, column_map))


def _with_column(table: Table, header: str, value: str) -> Table:
    from dataclasses import replace

    cells = table.cells.copy()
    cells[len(table.headers)] = value
    return replace(table, headers=[*table.headers, header], cells=cells)


def _assign_site(table: Table, column_map: dict[str, str], column: str, value: str) -> Table:
    """Every row of the file belongs to the site given: its column filled in on every row. A
    file whose own column for it holds another value is refused, the first such row named."""
    extra = custom_keys(column_map)
    flag = SITE_FLAGS[column]
    for position, header in enumerate(table.headers):
        if _column_of(header, extra) != column:
            continue
        held = table.cells[position].str.strip()
        same = (held == "") | (held == value)
        if column == "site_id":
            same |= held.str.lstrip("0") == value.lstrip("0")
        if not same.all():
            row = int(held.index[~same][0])
            raise InputError(
                f"{table.source}: {flag} {value} puts every row on that site, but row "
                f"{row_label(row).removeprefix('row ')} of column '{header}' says "
                f"{held[row]!r}; remove {flag}, or the column"
            )
        cells = table.cells.copy()
        cells[position] = cells[position].where(held != "", value)
        from dataclasses import replace

        return replace(table, cells=cells)
    return _with_column(table, column, value)


def _provisional_ids(roster: Roster, added: bool) -> None:
    from .sites import match_by_name_frame

    roster.frame["external_contact_id"] = match_by_name_frame(roster.frame)
    if added:  # not a column of the file: messages name it by its name
        roster.columns.pop("external_contact_id", None)


def _combined(layout: Layout, tables: list[Table], column_map: dict[str, str]) -> Table:
    """One table of every sheet's rows: columns aligned by what they mean (a sheet may order
    them differently), rows numbered sheet * SHEET_ROWS + row."""
    import pandas as pd

    from .roster import Table

    extra = custom_keys(column_map)
    order: dict[str, int] = {}
    headers: list[str] = []
    for table in tables:
        for header in table.headers:
            key = _column_of(header, extra) or header_key(header)
            if key not in order:
                order[key] = len(headers)
                headers.append(header)
    frames = []
    date_cells, formula_cells, merged_cells = set(), set(), set()
    rounded_cells: dict[tuple[int, int], str] = {}
    hidden_rows: list[int] = []
    hidden_columns: dict[int, str] = {}
    filtered = False
    names = tuple(cells.details.get("sheet", "") for cells in layout.sheets)
    numbers = [layout.order.index(name) + 1 for name in names]  # the workbook's own order
    for number, table in zip(numbers, tables, strict=True):
        where = {}
        for position, header in enumerate(table.headers):
            key = _column_of(header, extra) or header_key(header)
            where[order[key]] = position
        frame = pd.DataFrame(
            {
                target: table.cells[where[target]] if target in where else ""
                for target in range(len(headers))
            },
            index=table.cells.index,
        )
        frame.index = frame.index + number * SHEET_ROWS
        frames.append(frame)
        back = {position: target for target, position in where.items()}
        date_cells |= {(r + number * SHEET_ROWS, back[c]) for r, c in table.date_cells if c in back}
        formula_cells |= {
            (r + number * SHEET_ROWS, back[c]) for r, c in table.formula_cells if c in back
        }
        merged_cells |= {
            (r + number * SHEET_ROWS, back[c]) for r, c in table.merged_cells if c in back
        }
        hidden_rows += [r + number * SHEET_ROWS for r in table.hidden_rows]
        for c, sheet in table.hidden_columns.items():
            if c in back:
                known = hidden_columns.get(back[c])
                hidden_columns[back[c]] = f"{known}, {sheet}" if known else sheet
        filtered = filtered or table.filtered
        rounded_cells.update(
            ((r + number * SHEET_ROWS, back[c]), shown)
            for (r, c), shown in table.rounded_cells.items()
            if c in back
        )
    combined = Table(
        f"{layout.path} (sheets {', '.join(map(repr, names))})",
        headers,
        pd.concat(frames).fillna("").astype("str"),
        tables[0].header_row,
        date_cells,
    )
    combined.formula_cells = formula_cells
    combined.merged_cells = merged_cells
    combined.rounded_cells = rounded_cells
    combined.hidden_rows, combined.hidden_columns = hidden_rows, hidden_columns
    combined.filtered = filtered
    combined.details = {"sheets": ", ".join(names)}
    if layout.skipped:
        combined.details["sheets not read (no roster columns)"] = ", ".join(layout.skipped)
    combined.sheets = tuple(name if name in names else "" for name in layout.order)
    return combined


def layout_warnings(layout: Layout) -> list[RosterIssue]:
    """The file-level warnings about the sheets read (`other_sheets`): the command line's and
    `serve`'s."""
    from .codes import CODES
    from .schema import RosterIssue

    found = []
    sheet = layout.sheets[0].details.get("sheet", "")
    if layout.sheets[0].hidden_sheet:
        code = CODES["hidden_sheet"]
        message = code.render(sheet=sheet)
        found.append(RosterIssue(None, "the workbook", "", code.name, message, code.severity))
    if layout.unread_rosters:
        code = CODES["other_sheets"]
        message = code.render(sheet=sheet, others=", ".join(map(repr, layout.unread_rosters)))
        found.append(RosterIssue(None, "the workbook", "", code.name, message, code.severity))
    return found
