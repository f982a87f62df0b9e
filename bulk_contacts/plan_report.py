"""`plan --report`: the plan as .json (the plan file), .csv, .xlsx or a self-contained .html."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xlsxwriter

from .columns import BY_NAME, EDITABLE_FIELDS
from .errors import InputError
from .outputs import (
    PLAN_REPORT_SUFFIXES,
    replacing,
    visible_value,
    write_csv,
    write_table_rows,
    written_workbook,
)
from .plan import Change, Plan
from .words import plural

if TYPE_CHECKING:
    from jinja2 import Template

CHANGE_COLUMNS = (
    "action",
    "dealer_id",
    "site_id",
    "site",
    "row",
    "external_contact_id",
    "contact_id",
    "reason",
    *EDITABLE_FIELDS,
    "not_sent",  # the numbers of the row's other phone columns (CHeKT holds one)
    "derived",  # what the plan derived for the row (--match-by name: the match, the id made)
    "changed",
)


def write_plan_report(plan: Plan, path: Path, overwrite: bool = False) -> None:
    """Write it by suffix, to a temporary name renamed into place; an existing file is replaced
    only with `overwrite`."""
    suffix = path.suffix.lower()
    if suffix not in PLAN_REPORT_SUFFIXES:
        raise InputError(f"--report {path}: use a .json, .csv, .xlsx or .html file name")
    if suffix == ".json":
        plan.write(path, overwrite)
    elif suffix == ".csv":
        rows = ([row[name] for name in CHANGE_COLUMNS] for row in each_change_row(plan))
        write_csv(path, CHANGE_COLUMNS, rows, overwrite)
    else:
        with replacing(path, overwrite) as temporary:
            {".xlsx": _write_xlsx, ".html": _write_html}[suffix](plan, temporary)


def row_shown(plan: Plan, row: int | None) -> int | str:
    """A row as reports show it: its number, or with --all-sheets its sheet by name and its own
    number (`'AC-1003' row 3`), never the plan's internal sheet * 10,000,000 + row."""
    if not row:
        return ""
    if not plan.sheets:
        return row
    from .site_layouts import row_label

    return row_label(row, plan.sheets)


def change_rows(plan: Plan) -> list[dict[str, Any]]:
    """One flat row per change: the contact's values after the change (before it, for a delete),
    and which fields change, with what they were."""
    return list(each_change_row(plan))


def each_change_row(plan: Plan) -> Iterator[dict[str, Any]]:
    """`change_rows`, one at a time (the .csv and .xlsx reports are written so: a million
    changes are never a million rows at once)."""
    for site in plan.sites:
        for change in site.changes:
            values = _values(change)
            yield (
                {
                    "action": change.action,
                    "dealer_id": change.dealer_id,
                    "site_id": change.site_id,
                    "site": site.label,
                    "row": row_shown(plan, change.row),
                    "external_contact_id": change.external_contact_id or "",
                    "contact_id": change.contact_id or "",
                    "reason": change.reason + (" (site refused)" if site.refused else ""),
                    **{name: values.get(name) or "" for name in EDITABLE_FIELDS},
                    "not_sent": plan.not_sent.get(change.row, "") if change.row else "",
                    "derived": plan.derived.get(change.row, "") if change.row else "",
                    "changed": _changed_text(change),
                    "before": {k: change.before.get(k) or "" for k in change.after}
                    if change.action == "update"
                    else {},
                    "refused": bool(site.refused),
                }
            )


def _values(change: Change) -> dict[str, str | None]:
    if change.action == "create":
        return change.after
    if change.action == "delete":
        return change.before
    return {**change.before, **change.after}


def _changed_text(change: Change) -> str:
    if change.action != "update":
        return ""
    return "; ".join(
        f"{k}: {change.before.get(k) or '(empty)'} -> {v or '(empty)'}"
        for k, v in change.after.items()
    )


# xlsx


def _write_xlsx(plan: Plan, path: Path) -> None:
    with written_workbook(
        path,
        {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    ) as workbook:
        styles = _styles(workbook)
        _summary_sheet(workbook, plan, styles)
        _changes_sheet(workbook, plan, styles)
        _list_sheet(
            workbook,
            "Conflicts",
            styles,
            ("site_id", "row", "external_contact_id", "contact_ids", "message"),
            [
                (
                    c.site_id,
                    row_shown(plan, c.row),
                    c.external_contact_id or "",
                    ", ".join(map(str, c.contact_ids)),
                    c.message,
                )
                for c in plan.conflicts
            ],
        )
        _list_sheet(
            workbook,
            "Invalid rows",
            styles,
            ("row", "external_contact_id", "problems"),
            [
                (row_shown(plan, r.row), r.external_contact_id, "; ".join(r.problems))
                for r in plan.invalid
            ],
        )
        _list_sheet(
            workbook,
            "Left alone",
            styles,
            ("site_id", "contact_id", "external_contact_id", "first_name", "last_name", "why"),
            [
                (
                    s.site_id,
                    i.contact_id,
                    i.external_contact_id or "",
                    i.first_name,
                    i.last_name,
                    i.why,
                )
                for s in plan.sites
                for i in s.listed
            ],
        )


def _styles(workbook: xlsxwriter.Workbook) -> dict[str, Any]:
    return {
        "header": workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1}),
        "title": workbook.add_format({"bold": True, "font_size": 14}),
        "bold": workbook.add_format({"bold": True}),
        "text": workbook.add_format({"num_format": "@"}),
        "create": workbook.add_format({"bg_color": "#C6EFCE", "num_format": "@"}),
        "update": workbook.add_format({"bg_color": "#FFEB9C", "num_format": "@"}),
        "delete": workbook.add_format({"bg_color": "#FFC7CE", "num_format": "@"}),
        "refused": workbook.add_format({"font_color": "#9C0006", "bold": True}),
    }


def _summary_sheet(workbook: xlsxwriter.Workbook, plan: Plan, styles: dict[str, Any]) -> None:
    sheet = workbook.add_worksheet("Summary")
    sheet.write_string(0, 0, f"Plan for {plan.source}", styles["title"])
    sheet.write_string(1, 0, f"made {plan.created_at}; nothing has been written to CHeKT")
    for line, (key, value) in enumerate(plan.summary().items(), start=3):
        sheet.write_string(line, 0, key, styles["bold"])
        sheet.write_number(line, 1, value)
    line = 10
    for refusal in plan.refusals + [f"site {s.site_id}: {s.refused}" for s in plan.refused_sites]:
        sheet.write_string(line, 0, f"REFUSED: {refusal}", styles["refused"])
        line += 1
    line += 1
    header = (
        "site_id",
        "site",
        "contacts before",
        "create",
        "update",
        "delete",
        "unchanged",
        "conflicts",
        "contacts after",
        "refused",
    )
    for col, name in enumerate(header):
        sheet.write_string(line, col, name, styles["header"])
    for site in plan.sites:
        line += 1
        values = (
            site.site_id,
            site.label,
            site.contacts_before,
            site.count("create"),
            site.count("update"),
            site.count("delete"),
            site.unchanged,
            len(site.conflicts),
            site.contacts_after,
            site.refused,
        )
        for col, cell in enumerate(values):
            if isinstance(cell, int):
                sheet.write_number(line, col, cell)
            else:
                sheet.write_string(line, col, cell)
    sheet.set_column(0, 0, 12)
    sheet.set_column(1, 1, 40)
    sheet.set_column(2, 8, 11)
    sheet.set_column(9, 9, 60)


def _changes_sheet(workbook: xlsxwriter.Workbook, plan: Plan, styles: dict[str, Any]) -> None:
    """One row per change; the cells that change are coloured, with what they were as a
    comment."""
    sheet = workbook.add_worksheet("Changes")
    columns = CHANGE_COLUMNS[:-1]
    for col, name in enumerate(columns):
        sheet.write_string(0, col, name, styles["header"])
    for line, row in enumerate(each_change_row(plan), start=1):
        action = row["action"]
        for col, name in enumerate(columns):
            value = row[name]
            changed = action == "update" and name in row["before"]
            style = styles["text"]
            if (
                name == "action"
                or changed
                or (action != "update" and name in EDITABLE_FIELDS and value)
            ):
                style = styles[action]
            if isinstance(value, int):
                sheet.write_number(line, col, value)
            else:
                sheet.write_string(line, col, "" if value is None else str(value), style)
            if changed:
                sheet.write_comment(line, col, f"was: {row['before'][name] or '(empty)'}")
    widths = {"site": 32, "reason": 14, "not_sent": 40, "derived": 50}
    for col, name in enumerate(columns):
        column = BY_NAME.get(name)
        sheet.set_column(col, col, widths.get(name, column.width if column else 14))
    sheet.autofilter(0, 0, max(1, len(plan.changes)), len(columns) - 1)
    sheet.freeze_panes(1, 0)


def _list_sheet(
    workbook: xlsxwriter.Workbook,
    name: str,
    styles: dict[str, Any],
    header: tuple[str, ...],
    rows: list[tuple],
) -> None:
    sheet = workbook.add_worksheet(name)
    for col, title in enumerate(header):
        sheet.write_string(0, col, title, styles["header"])
        sheet.set_column(col, col, 60 if title in ("message", "problems") else 16)
    write_table_rows(sheet, rows)
    sheet.freeze_panes(1, 0)


# html


def counted(plan: Plan) -> str:
    """The changes as the terminal counts them: those to make, then those a refusal of their
    site holds back (listed below too, marked refused)."""
    text = f"{plural(len(plan.changes), 'change')} to make"
    if plan.refused_changes:
        text += f", {plan.refused_changes} refused (listed, marked refused; not made)"
    return text + "."


@functools.cache
def _html_template() -> Template:
    """The report's template, compiled once a process (about 10 ms of CPU a compilation, which
    `serve` and scripts writing report after report paid for each)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("bulk_contacts", "report_templates"),
        autoescape=select_autoescape(["html", "j2"]),
        finalize=visible_value,
    )
    return environment.get_template("plan.html.j2")


def _write_html(plan: Plan, path: Path) -> None:
    page = _html_template().render(
        plan=plan,
        summary=plan.summary(),
        rows=change_rows(plan),
        sites=plan.sites,
        fields=EDITABLE_FIELDS,
        counted=counted(plan),
        row_shown=lambda row: row_shown(plan, row),
    )
    path.write_text(page, encoding="utf-8")
