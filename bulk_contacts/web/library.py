"""Every library call the web interface makes, in one place.

The rules (reading a file, naming its columns, validating, planning, the guards, applying,
rolling back, exporting, the reports) are the library's, the same the command line runs; this
module only calls them. When a library signature changes, this module is the one to move.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..apply import ApplyReport, RunFiles, apply_plan, check_freshness
from ..client import ChektClient
from ..columns import ALIAS_KEYS, FULL_NAME, ROSTER_COLUMNS, header_key
from ..errors import InputError
from ..export import fetch_export, write_export
from ..journal import read_journal
from ..pipeline import ReadOptions, plan_roster
from ..plan import Plan, PlanOptions, SitePlan
from ..plan_report import change_rows, write_plan_report
from ..results import Outcome
from ..rollback import in_flight, inverse_plan
from ..roster import UNREAD_KEYS, Roster, Table
from ..schema import ERROR, WARNING, RosterIssue, ValidatedRoster, validate_roster, warm_up
from ..site_layouts import layout_table, layout_warnings, read_layout, roster_from_table
from ..sites import shown_id
from ..spreadsheet import MAX_FILE_BYTES, column_index, column_letter
from ..validation_report import write_validation_report
from ..words import plural

__all__ = [
    "CHOICES",
    "ERROR",
    "ROSTER_COLUMNS",
    "WARNING",
    "ApplyReport",
    "Outcome",
    "Plan",
    "PlanOptions",
    "ReadOptions",
    "RosterIssue",
    "SitePlan",
    "ValidatedRoster",
    "change_rows",
    "column_letter",
    "shown_id",
    "warm_up",
]

NOT_SENT_SUFFIX = " (not sent)"
# What a column can be chosen as: a roster column, or a whole name (split into first and last).
CHOICES = (*ROSTER_COLUMNS, FULL_NAME)
MAX_UPLOAD_BYTES = MAX_FILE_BYTES  # the reader refuses larger files anyway


# reading


# The upload form's reading options: each field is the command line's option of that name,
# read by the same parser (`cli.roster_options`), so the form takes what the CLI takes.
FORM_OPTIONS = {
    "header_row": "--header-row",
    "phone_columns": "--phone-columns",
    "name_case": "--name-case",
    "site": "--site",
    "account": "--account",
    "external_site_id": "--external-site-id",
    "match_by": "--match-by",
}
FORM_FLAGS = {"all_sheets": "--all-sheets"}


def reading_options(form: Mapping[str, str]) -> ReadOptions:
    """The reading options the upload form gives, parsed as the command line parses them
    (its types, ranges and checks, its messages). Raises InputError."""
    import click

    from ..cli.options import roster_options

    args: list[str] = []
    for name, flag in FORM_OPTIONS.items():
        value = str(form.get(name, "")).strip()
        if value:
            args += [flag, value]
    args += [flag for name, flag in FORM_FLAGS.items() if form.get(name)]

    @click.command()
    @roster_options
    def parse(read: ReadOptions) -> ReadOptions:
        return read

    try:
        return parse.main(args, "serve", standalone_mode=False)
    except click.ClickException as error:
        raise InputError(error.format_message()) from None


def form_values(read: ReadOptions) -> dict[str, str]:
    """The form's fields for the options given (to show them again)."""
    site = dict([read.site]) if read.site else {}
    return {
        "header_row": str(read.header_row or ""),
        "phone_columns": ", ".join(read.phone_columns),
        "name_case": read.name_case,
        "site": site.get("site_id", ""),
        "account": site.get("account_number", ""),
        "external_site_id": site.get("external_site_id", ""),
        "match_by": read.match_by or "",
        "all_sheets": "1" if read.all_sheets else "",
    }


def read_table(
    path: Path, sheet: str | None, read: ReadOptions | None = None
) -> tuple[Table, list[RosterIssue]]:
    """The sheet (or with --all-sheets the sheets) as text cells with its header found, as the
    CLI's reader reads it with these options (`site_layouts`), and the warnings about the
    sheets read (`other_sheets`), as the CLI gives them. Raises InputError."""
    read = dataclasses.replace(read or ReadOptions(), sheet=sheet)
    layout = read_layout(path, read)
    return layout_table(layout, read), layout_warnings(layout)


def sheet_names(path: Path) -> list[str]:
    """The visible worksheets of a workbook, to pick one; [] for a CSV file or a file the reader
    will refuse anyway (it then says why)."""
    try:
        from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

        workbook = CalamineWorkbook.from_path(str(path))
        return [
            meta.name
            for meta in workbook.sheets_metadata
            if meta.visible == SheetVisibleEnum.Visible and meta.typ == SheetTypeEnum.WorkSheet
        ]
    except Exception:  # not a workbook: the reader's own message comes when it is read
        return []


# columns


def detected_column(header: str) -> str | None:
    """The roster column the reader finds under this header by itself, if any (every phone
    column is a phone_number: the reader takes each row's first non-empty one)."""
    from ..header_keys import FULL_NAME_KEYS, phone_rank

    key = header_key(header)
    found = ALIAS_KEYS.get(key)
    if found is None and phone_rank(key, header) is not None:
        return "phone_number"
    if found is None and key in FULL_NAME_KEYS:
        return FULL_NAME  # a whole name: the reader splits it
    return found


def read_by_itself(header: str) -> bool:
    """Whether the reader uses this column unless told not to (a whole name is split)."""
    return detected_column(header) is not None


def is_secret(header: str) -> bool:
    """A column whose header says passcode, password or PIN: its cells are never shown."""
    from ..layouts import is_secret as secret

    return secret(header)


def is_export_column(header: str) -> bool:
    """Columns an export adds for the reader (site_name, created_at): known, never sent."""
    return header_key(header) in UNREAD_KEYS


def roster_of(
    table: Table, choices: dict[int, str | None], read: ReadOptions | None = None
) -> Roster:
    """The table read with the columns chosen on the Columns page: `choices` maps a column's
    position to a roster column, or to None for "not sent". A choice the reader would make by
    itself needs nothing; another becomes a `--map` entry; "not sent" on a column the reader
    knows renames its header (in this copy only) so the reader leaves it out. The reader then
    applies its own rules (required columns, one column per field) and messages."""
    headers = list(table.headers)
    column_map: dict[str, str] = {}
    for position, choice in choices.items():
        header = headers[position]
        if choice is None and read_by_itself(header):
            headers[position] = header + NOT_SENT_SUFFIX
        elif choice is not None and choice != detected_column(header):
            column_map[header] = choice
    return roster_from_table(
        dataclasses.replace(table, headers=headers), read or ReadOptions(), column_map
    )


def validate(roster: Roster, region: str, phone_format: str) -> ValidatedRoster:
    return validate_roster(roster, region, phone_format)


def validate_for_plan(roster: Roster, region: str, phone_format: str) -> ValidatedRoster:
    """As `plan` validates: reachability is judged on each contact as the plan leaves it (with
    --blanks keep a blank cell keeps CHeKT's phone), and --allow-unreachable is the plan's."""
    return validate_roster(roster, region, phone_format, judge_reachability=False)


def column_index_of(roster: Roster, name: str) -> int:
    """The position in the file of a roster column."""
    return column_index(roster.columns[name][0])


def edit_cell(table: Table, roster: Roster, row: int, field: str, value: str) -> None:
    """Change one cell of the table (the uploaded file itself is never written). A cell typed
    again is no longer a date, an uncalculated formula or a rounded number."""
    position = column_index_of(roster, field)
    table.cells.at[row, position] = value
    table.date_cells.discard((row, position))
    table.formula_cells.discard((row, position))
    table.merged_cells.discard((row, position))
    table.rounded_cells.pop((row, position), None)


def cell_issues(
    table: Table,
    choices: dict[int, str | None],
    row: int,
    field: str,
    value: str,
    reading: tuple[str, str],
    read: ReadOptions | None = None,
) -> list[RosterIssue]:
    """The problems of one cell as it is being typed: its row alone, with the new value, through
    the same rules (rules across rows wait for the whole roster, when the cell is left)."""
    roster = roster_of(table, choices, read)
    position = column_index_of(roster, field)
    cells = table.cells.loc[[row]].copy()
    cells.at[row, position] = value
    alone = dataclasses.replace(
        table,
        cells=cells,
        date_cells={c for c in table.date_cells if c[0] == row and c[1] != position},
        formula_cells={c for c in table.formula_cells if c[0] == row and c[1] != position},
        merged_cells={c for c in table.merged_cells if c[0] == row and c[1] != position},
        rounded_cells={
            c: shown for c, shown in table.rounded_cells.items() if c[0] == row and c[1] != position
        },
        snapshot=None,
    )
    validated = validate(roster_of(alone, choices, read), *reading)
    return [issue for issue in validated.issues if issue.row == row and issue.field == field]


def write_corrected_roster(validated: ValidatedRoster, path: Path) -> None:
    """The roster with its corrections, problems still left marked (validate --report .xlsx).
    Downloads are made afresh in the session's private folder each time: they replace the last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_validation_report(validated, path, overwrite=True)


# planning


def make_plan(client: ChektClient, validated: ValidatedRoster, options: PlanOptions) -> Plan:
    return plan_roster(client, validated, options)


def write_plan(plan: Plan, path: Path) -> None:
    """The plan file (.json) or a report (.xlsx, .html, .csv), as `plan -o` / `--report`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_plan_report(plan, path, overwrite=True)


def stale_sites(client: ChektClient, plan: Plan) -> list[SitePlan]:
    """The sites whose contacts changed in CHeKT since the plan was made: the stale ones and
    those already holding the plan's changes (the page applies the plan as it was made, so
    neither may be applied again)."""
    fresh = check_freshness(client, plan, refresh=False)
    return fresh.stale + fresh.applied


# running


def run_files(base: Path, kind: str) -> RunFiles:
    """A new run folder under `base`, named as the CLI names its own."""
    return RunFiles.choose(None, None, base=base, kind=kind)


def run_plan(
    client: ChektClient,
    plan: Plan,
    files: RunFiles,
    progress: Callable[[Outcome], None],
    stop: threading.Event,
    kind: str,
) -> ApplyReport:
    return apply_plan(client, plan, files, progress, stop, kind)


def journal_records(journal: Path) -> list[dict]:
    return read_journal(journal)


def rollback_plan(client: ChektClient, journal: Path, force: bool) -> Plan:
    """The inverse plan of a run; refused while a write the run left unanswered (it was
    stopped: kill -9, a crash) may still land, which a rollback reading the sites now would
    miss (`rollback.in_flight`; the CLI waits instead)."""
    records = read_journal(journal)
    writes, until = in_flight(records)
    if writes and until > time.time():
        raise InputError(
            f"{plural(writes, 'write')} of this run had no answer when it stopped and may still "
            f"land in CHeKT for {math.ceil(until - time.time())} s more: roll it back after that"
        )
    return inverse_plan(client, records, journal, force)


# export


def export_contacts(
    client: ChektClient, dealer_id: int, site_ids: tuple[int, ...], path: Path
) -> int:
    """The dealer's contacts (every site, or those given) written to `path`; how many."""
    export = fetch_export(client, dealer_id, site_ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_export(export, path, overwrite=True)
