"""`validate --report`: the problems as .csv or .json, or as .xlsx, an annotated copy of the
roster (problem cells highlighted, the message as a cell comment) to fix and feed back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .codes import DERIVED, ERROR, WARNING
from .errors import InputError
from .outputs import (
    VALIDATION_REPORT_SUFFIXES,
    json_text,
    replacing,
    visible,
    write_csv,
    write_text,
    written_workbook,
)
from .schema import RosterIssue, ValidatedRoster
from .site_layouts import SHEET_ROWS

if TYPE_CHECKING:  # xlsxwriter is loaded by `new_workbook`, for an .xlsx report only
    import xlsxwriter

ISSUE_COLUMNS = ("row", "column", "field", "value", "severity", "code", "message")
NOT_SENT_HEADER = "not sent (other phones)"  # the annotated copy's column of numbers not sent
# What no Excel sheet name holds (nor may it start or end with an apostrophe, or pass 31
# characters); an ODS tab's name, or a crafted workbook's, may.
_NOT_IN_SHEET_NAMES = str.maketrans(dict.fromkeys("[]:*?/\\", "_"))


def report_sheet_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """The annotated copy's sheet names for the sheets read (`""`: not read, kept as `""`): each
    as the file names it, written visibly (ESC as `\\x1b`), with what Excel refuses replaced by
    `_` (the backslash too: `AC_x1bc`), cut to 31 characters, and made unique (case aside)
    beside the `Issues` sheet with a ` (2)`-style suffix. Excel would not open a workbook
    holding the raw name."""
    used = {"issues"}
    found = []
    for number, name in enumerate(names, start=1):
        if not name:
            found.append("")
            continue
        base = visible(name).translate(_NOT_IN_SHEET_NAMES).strip("'")[:31].rstrip("'")
        base = base or f"Sheet {number}"
        chosen, count = base, 1
        while chosen.casefold() in used:
            count += 1
            suffix = f" ({count})"
            chosen = base[: 31 - len(suffix)] + suffix
        used.add(chosen.casefold())
        found.append(chosen)
    return found


def write_validation_report(result: ValidatedRoster, path: Path, overwrite: bool = False) -> None:
    """Write it by suffix, to a temporary name renamed into place; an existing file is replaced
    only with `overwrite`."""
    suffix = path.suffix.lower()
    if suffix not in VALIDATION_REPORT_SUFFIXES:
        raise InputError(f"--report {path}: use a .csv, .json or .xlsx file name")
    if suffix == ".csv":
        rows = (
            [issue.row or "", *(getattr(issue, name) for name in ISSUE_COLUMNS[1:])]
            for issue in result.issues
        )
        write_csv(path, ISSUE_COLUMNS, rows, overwrite)
    elif suffix == ".json":
        body = {"summary": summary(result), "issues": [i.as_dict() for i in result.issues]}
        write_text(path, json_text(body), overwrite)
    else:
        with replacing(path, overwrite) as temporary:
            _write_xlsx(result, temporary)


def summary(result: ValidatedRoster) -> dict[str, object]:
    facts = result.roster.facts
    body: dict[str, object] = {
        "source": result.roster.source,
        "rows": len(result.rows),
        "invalid_rows": len(result.invalid_rows),
        "errors": len(result.errors),
        "warnings": len(result.warnings),
        "by_code": dict(Counter(i.code for i in result.issues)),
        "header_row": facts.header_row,
        "derived": [i.message for i in result.issues if i.severity == DERIVED and i.row is None],
    }
    if facts.phone_source is not None:
        counts = facts.phone_source.value_counts()
        body["phone_from"] = {h: int(counts.get(p, 0)) for p, _, h in facts.phone_order}
    return body


def _write_xlsx(result: ValidatedRoster, path: Path) -> None:
    """The roster as it was read, every cell text, at its own row numbers, with the problems
    marked; an Issues sheet lists them all."""
    table = result.roster.table
    with written_workbook(
        path, {"strings_to_numbers": False, "strings_to_formulas": False}
    ) as workbook:
        text = workbook.add_format({"num_format": "@"})
        header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "num_format": "@"})
        marks = {
            ERROR: workbook.add_format({"bg_color": "#F8CBAD", "num_format": "@"}),
            WARNING: workbook.add_format({"bg_color": "#FFE699", "num_format": "@"}),
        }
        by_cell = _issues_by_cell(result)
        top = table.header_row - 1
        secret = result.roster.facts.secret_positions  # a passcode is never copied
        # One sheet, or with --all-sheets one per sheet read, each row at its own row number.
        names = table.sheets or ("Contacts",)
        sheets = {}
        not_sent = result.roster.facts.phones_not_sent
        extra = len(table.headers)
        shown = report_sheet_names(names)
        for number, name in enumerate(shown, start=1 if table.sheets else 0):
            if not name:
                continue  # a sheet of the workbook not read (not a roster)
            sheet = sheets[number] = workbook.add_worksheet(name)
            for col, title in enumerate(table.headers):
                sheet.write_string(top, col, title, header)
                sheet.set_column(col, col, max(12, min(40, len(title) + 4)), text)
            if not_sent is not None:  # the numbers of the other phone columns, beside the roster
                sheet.write_string(top, extra, NOT_SENT_HEADER, header)
                sheet.set_column(extra, extra, 40, text)
            sheet.freeze_panes(table.header_row, 0)
        if not_sent is not None:
            for row_number, numbers in not_sent[not_sent != ""].items():
                number, own = divmod(int(row_number), SHEET_ROWS)
                sheets[number].write_string(own - 1, extra, numbers, text)
        for row_number, values in table.cells.iterrows():
            number, own = divmod(int(row_number), SHEET_ROWS)
            sheet = sheets[number]
            for col, value in enumerate(values):
                if col in secret:
                    continue
                issues = by_cell.get((int(row_number), col))
                style = marks[_worst(issues)] if issues else text
                sheet.write_string(own - 1, col, str(value), style)
                if issues:
                    sheet.write_comment(
                        own - 1,
                        col,
                        "\n".join(i.message for i in issues),
                        {"x_scale": 2.5, "y_scale": 1.5},
                    )
        _issues_sheet(workbook, result.issues, header)


def _issues_by_cell(result: ValidatedRoster) -> dict[tuple[int, int], list[RosterIssue]]:
    cells: dict[tuple[int, int], list[RosterIssue]] = {}
    for issue in result.issues:
        if issue.row is None or issue.severity == DERIVED:
            continue
        col = result.roster.cell_position(issue.field, issue.row)
        if col is None:
            continue
        cells.setdefault((issue.row, col), []).append(issue)
    return cells


def _worst(issues: list[RosterIssue]) -> str:
    return ERROR if any(i.severity == ERROR for i in issues) else WARNING


def _issues_sheet(workbook: xlsxwriter.Workbook, issues: list[RosterIssue], header) -> None:
    sheet = workbook.add_worksheet("Issues")
    for col, name in enumerate(ISSUE_COLUMNS):
        sheet.write_string(0, col, name, header)
    for line, issue in enumerate(issues, start=1):
        values = issue.as_dict()
        for col, name in enumerate(ISSUE_COLUMNS):
            value = values[name]
            if name == "row" and value is not None:
                sheet.write_number(line, col, value)
            else:
                sheet.write_string(line, col, "" if value is None else str(value))
    widths = (6, 22, 20, 24, 9, 22, 90)
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    sheet.autofilter(0, 0, max(1, len(issues)), len(ISSUE_COLUMNS) - 1)
    sheet.freeze_panes(1, 0)
