"""Validating a roster: every problem in every row, collected as data, never raised.

The column rules are a pandera schema validated lazily, so one pass reports them all; phone
numbers and e-mail addresses go through `normalize`; rules across rows (an external id used twice
on one site, the same phone twice) are plain pandas. Each problem becomes a `RosterIssue` naming
the spreadsheet's own row number, the column as written in the file, the value and what to do.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from .codes import (
    CODES,
    ERROR,
    ID_DATE,
    ID_SCIENTIFIC,
    PHONE_DATE,
    PHONE_PLUS_AMBIGUOUS,
    PHONE_SCIENTIFIC,
    WARNING,
)
from .columns import (
    BY_NAME,
    COLUMNS,
    FREE_TEXT_COLUMNS,
    REQUIRED_COLUMNS,
    ROSTER_COLUMNS,
    SITE_COLUMNS,
    SITE_NAME_COLUMNS,
)
from .gc_pause import gc_paused, release_memory
from .layouts import PHONE_LEFT_OUT, email_typo_issues, layout_issues, name_case_issues
from .normalize import (
    CHUNK_ROWS,
    EXCEL_SCIENTIFIC,
    INVISIBLE,
    INVISIBLE_CHARACTERS,
    SMALL_ROWS,
    contains,
    factorized,
    fullmatches,
    normalize_emails,
    normalize_phones,
    normalize_text,
    plus_readings,
    scientific_digits,
    small_texts,
)
from .outputs import FORMULA_SIGNS
from .roster import LISTED, Roster, column_index
from .roster import listed as bounded_list
from .words import column_label, quoted_repr

ACTIONS = {"": "upsert", "upsert": "upsert", "delete": "delete"}
# A formula's start, perhaps behind a spreadsheet's apostrophe (checked in free-text columns).
FORMULA_LIKE = rf"^'*[{re.escape(FORMULA_SIGNS)}]."
_FORMULA_LIKE = re.compile(FORMULA_LIKE)
# C0 and C1 controls and DEL (ESC, NUL, CR, LF, tab, backspace...): never part of a contact's
# data, and a terminal acts on them. The bidirectional embeddings, overrides and isolates make
# text show in another order than it is stored.
# The characters themselves, not escapes: Arrow's regular expressions (RE2) read no \u escape.
CONTROL_CHARACTERS, BIDI_OVERRIDES = "\x00-\x1f\x7f-\x9f", "\u202a-\u202e\u2066-\u2069"
CHARACTER_CODES = (
    ("control_character", re.compile(f"[{CONTROL_CHARACTERS}]")),
    ("bidi_override", re.compile(f"[{BIDI_OVERRIDES}]")),
)
# Any of them, or an invisible character (`normalize.INVISIBLE`), in one scan.
UNSAFE_CHARACTER = f"[{CONTROL_CHARACTERS}{BIDI_OVERRIDES}{INVISIBLE_CHARACTERS}]"
_UNSAFE_CHARACTER = re.compile(UNSAFE_CHARACTER)
# The columns that hold ids: an invisible character there makes two ids that look the same
# differ (an error); elsewhere (names, phone, e-mail) it is a warning.
ID_COLUMNS = frozenset(
    c.name for c in COLUMNS if c.numeric or c.site or c.name == "external_contact_id"
)
# The text id columns a spreadsheet may show in scientific notation (`id_scientific`); the
# numeric ones (site_id, dealer_id, contact_id) are `not_numeric` then.
SCIENTIFIC_CHECKED = ("external_contact_id", "account_number", "external_site_id")
# Headers of columns that hold phone numbers the roster does not read ("Phone 1", "Home Phone").
PHONE_LIKE_HEADER = re.compile(r"phone|mobile|\bcell|\btel\b|\bmob\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)  # slots: a million rows can have 200,000 issues
class RosterIssue:
    row: int | None  # the spreadsheet's row number (header = 1); None for the file as a whole
    column: str  # as written in the file: "C 'Phone'"
    value: str
    code: str
    message: str
    severity: str = ERROR
    field: str = ""  # the canonical column name

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ValidatedRoster:
    roster: Roster
    rows: pd.DataFrame  # normalized values, canonical columns, indexed by row number
    issues: list[RosterIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[RosterIssue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[RosterIssue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def invalid_rows(self) -> set[int]:
        return {i.row for i in self.errors if i.row is not None}

    @property
    def valid(self) -> bool:
        return not self.errors


@gc_paused()
def validate_roster(
    roster: Roster,
    region: str = "US",
    phone_format: str = "e164",
    *,
    allow_unreachable: bool = False,
    judge_reachability: bool = True,
) -> ValidatedRoster:
    """Check every row; return the normalized rows and every problem found.

    Reachability (`no_phone`, `unreachable`) is judged on the row here; `plan` passes
    judge_reachability=False because it judges each contact as the plan leaves it (with
    --blanks keep, a blank cell keeps the phone CHeKT holds)."""
    frame = roster.frame.apply(normalize_text)
    release_memory()  # each column's trimmed copy, compared and dropped
    issues = _file_issues(roster)
    formula = _formula_cells(roster)
    issues += _formula_issues(roster, formula)
    issues += _merged_issues(roster)
    # The column rules, phones and e-mail are checked side by side: much of the work is
    # Arrow's, which releases the GIL, so the second core helps.
    with ThreadPoolExecutor(2) as pool:
        checking_columns = pool.submit(_schema_issues, roster, frame, formula)
        checking_emails = pool.submit(_check_emails, roster, frame)
        phones, phone_issues = _check_phones(roster, frame, region, phone_format)
        emails, email_issues = checking_emails.result()
        issues += checking_columns.result()
    release_memory()  # the distinct values and the fast paths' columns
    issues += phone_issues + email_issues
    rows = frame.assign(
        phone_number=phones,
        email=emails,
        action=frame["action"].str.lower().map(ACTIONS).fillna(frame["action"]),
    )
    rows, date_issues = _dated_ids(roster, rows)
    issues += date_issues
    rows, case_issues = name_case_issues(roster, rows, roster.facts.name_case)
    issues += layout_issues(roster, rows) + case_issues + email_typo_issues(roster, rows)
    issues += duplicate_ids(roster, rows)
    release_memory()
    issues += _warnings(roster, rows)
    release_memory()
    issues += _character_issues(roster, frame)
    issues = _without_repeats(issues)
    if judge_reachability:
        issues += _row_reachability(roster, frame, rows, allow_unreachable)
    issues.sort(
        key=lambda i: (
            i.row or 0,
            ROSTER_COLUMNS.index(i.field) if i.field in ROSTER_COLUMNS else -1,
            i.code,
        )
    )
    return ValidatedRoster(roster, rows, issues)


def _dated_ids(roster: Roster, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[RosterIssue]]:
    """Date cells in the text id columns (`id_date`): the spreadsheet made `1-2` a date, and
    the id is lost. The row is invalid, and its id is read as empty: like a row without one, it
    names no contact by a wrong id, and protects from a prune the contacts its name or phone
    matches (`prune_kept_for_invalid`)."""
    dates = roster.table.date_cells
    if not dates:
        return rows, []
    issues = []
    for name in SCIENTIFIC_CHECKED:
        if name not in roster.columns:
            continue
        dated = [
            row
            for row, col in sorted(dates)
            if row in rows.index and col == roster.cell_position(name, row)
        ]
        if not dated:
            continue
        for row in dated:
            value = roster.frame.at[row, name]
            issues.append(make_issue(roster, row, name, value, ID_DATE))
        column = rows[name].copy()
        column[dated] = ""
        rows = rows.assign(**{name: column})
    return rows, issues


def _without_repeats(issues: list[RosterIssue]) -> list[RosterIssue]:
    """A whole name of one word is `name_one_word`, not also an empty last name."""
    one_word = {i.row for i in issues if i.code == "name_one_word"}
    if not one_word:
        return issues
    return [
        i
        for i in issues
        if not (i.code == "missing_value" and i.field == "last_name" and i.row in one_word)
    ]


@functools.cache
def warm_up(region: str = "US", phone_format: str = "e164") -> None:
    """Do once, on a two-row roster, what the first validation pays for: loading the phone
    metadata of the region, compiling the patterns, starting pandera. The CLI calls it while a
    workbook is being parsed (which releases the GIL), so the cost is hidden. Once a process
    (per region and format): a second warm-up gains nothing, and `serve` or a script that
    validates many rosters would pay about 80 ms of CPU for each."""
    from .roster import Table, map_columns

    cells = pd.DataFrame(
        {
            0: ["A1", ""],
            1: ["c1", "c2"],
            2: ["Ann", "=x"],
            3: ["Lee", "Bo"],
            4: ["(202) 555-0143", "+44 20 7946 0958"],
            5: ["ann@example.com", "é@example.org"],
            6: ["", "delete"],
        },
        dtype="str",
        index=pd.RangeIndex(2, 4),
    )
    headers = [
        "account_number",
        "external_contact_id",
        "first_name",
        "last_name",
        "phone_number",
        "email",
        "action",
    ]
    validate_roster(map_columns(Table("warm-up", headers, cells), {}), region, phone_format)


def make_issue(
    roster: Roster,
    row: int | None,
    name: str,
    value: str,
    code: str,
    variant: str = "",
    **details: object,
) -> RosterIssue:
    """An issue on a cell: its column as the file writes it, its severity and message as the
    code's registry entry says (`codes.CODES`), the message's details filled in."""
    label = roster.cell_label(name, row)
    column = BY_NAME.get(name)
    what = column.what_is_missing if column else name
    message = CODES[code].render(
        variant, label=label, field=name, value=value, what=what, **details
    )
    return RosterIssue(row, label, value, code, message, CODES[code].severity, name)


def _file_issues(roster: Roster) -> list[RosterIssue]:
    issues = _hidden_issues(roster)
    if roster.table.snapshot_damage:
        code = CODES["snapshot_damaged"]
        message = code.render(damage=roster.table.snapshot_damage)
        label = "the snapshot sheet"
        issues.append(RosterIssue(None, label, "", code.name, message, code.severity))
    code = CODES["unknown_column"]
    ignored = roster.ignored_columns
    for letter, header in ignored[:LISTED]:
        label = column_label(letter, header)
        issues.append(
            RosterIssue(None, label, "", code.name, code.render(label=label), code.severity)
        )
    if len(ignored) > LISTED:  # one warning for the rest, however many there are
        label = f"{ignored[LISTED][0]} to {ignored[-1][0]}"
        message = code.render("more", label=label, count=len(ignored) - LISTED)
        issues.append(RosterIssue(None, label, "", code.name, message, code.severity))
    return issues


def _hidden_issues(roster: Roster) -> list[RosterIssue]:
    """The rows and the columns read that the user does not see in the sheet (hidden, or
    filtered out): read all the same, and said so (`hidden_rows`, `hidden_column`)."""
    table = roster.table
    if not table.hidden_rows and not table.hidden_columns:
        return []
    from .site_layouts import SHEET_ROWS

    issues = []
    sheets = table.sheets or (table.details.get("sheet", ""),)
    by_sheet: dict[int, list[int]] = {}
    for row in sorted(set(table.hidden_rows) & set(roster.frame.index)):
        sheet, own = divmod(row, SHEET_ROWS)
        by_sheet.setdefault(sheet, []).append(own)
    code = CODES["hidden_rows"]
    for sheet, rows in by_sheet.items():
        name = sheets[sheet - 1] if table.sheets else sheets[0]
        message = code.render("filtered" if table.filtered else "", rows=_row_ranges(rows))
        issues.append(RosterIssue(None, f"sheet {name!r}", "", code.name, message, code.severity))
    hidden = set(table.hidden_columns)
    read = {column_index(letter): (letter, header) for letter, header in roster.columns.values()}
    phones = roster.facts.phone_order
    for position, letter, header in phones:
        read[position] = (letter, header)
    code = CODES["hidden_column"]
    visible_phones = [h for p, _, h in phones if p not in hidden]
    hidden_phones = [h for p, _, h in phones if p in hidden]
    for position, (letter, header) in sorted(read.items()):
        if position not in hidden:
            continue
        message = code.render(sheet=table.hidden_columns[position])
        if visible_phones and header in hidden_phones:
            message += code.alternatives["phones"].format(
                visible=", ".join(map(quoted_repr, visible_phones)),
                hidden=", ".join(map(quoted_repr, hidden_phones)),
            )
        label = column_label(letter, header)
        issues.append(RosterIssue(None, label, "", code.name, message, code.severity))
    return issues


def _row_ranges(rows: list[int]) -> str:
    """'row 4' or 'rows 3, 5-7', for at most `LISTED` ranges ('and 12 more')."""
    ranges: list[list[int]] = []
    for row in rows:
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    words = [f"{first}-{last}" if last > first else f"{first}" for first, last in ranges]
    if len(rows) == 1:
        return f"row {words[0]}"
    return f"rows {bounded_list(words)} ({len(rows):,} rows)"


def _formula_cells(roster: Roster) -> set[tuple[int, str]]:
    names = {column_index(letter): name for name, (letter, _) in roster.columns.items()}
    return {
        (row, names[col])
        for row, col in roster.table.formula_cells
        if col in names and row in roster.frame.index
    }


def _merged_issues(roster: Roster) -> list[RosterIssue]:
    """Cells of a read column that hold the value of a merged cell to their left
    (`merged_across`): `John Doe` over First and Last Name is no last name."""
    cells = roster.table.merged_cells
    if not cells:
        return []
    names = {column_index(letter): name for name, (letter, _) in roster.columns.items()}
    issues = []
    for row, col in sorted(cells):
        if col in names and row in roster.frame.index:
            name = names[col]
            value = str(roster.frame.at[row, name])
            issues.append(make_issue(roster, row, name, value, "merged_across"))
    return issues


def _formula_issues(roster: Roster, cells: set[tuple[int, str]]) -> list[RosterIssue]:
    return [make_issue(roster, row, name, "", "formula_no_value") for row, name in sorted(cells)]


# column rules (pandera)


_NUMBER = re.compile(r"[0-9]{1,18}")
_EXCEL_SCIENTIFIC = re.compile(EXCEL_SCIENTIFIC)
Rule = tuple[str, Callable[[pd.Series], pd.Series]]  # (problem code, test of a column)


def _rules(
    frame: pd.DataFrame, blank: set[str]
) -> tuple[dict[str, list[Rule]], Callable[[pd.DataFrame], pd.Series]]:
    """The rules of each column (the columns in `blank` left out), and the rule of the whole
    row (`no_site`). Made per roster (or part of one), because some rules depend on other
    columns of the same row."""
    upsert = frame["action"].str.lower() != "delete"
    has_contact_id = frame["contact_id"] != ""

    def filled(where: pd.Series | bool = True) -> Rule:
        return "missing_value", lambda s: (s != "") | ~where

    def numeric() -> Rule:
        return "not_numeric", lambda s: (s == "") | fullmatches(s, _NUMBER)

    def at_most(limit: int) -> Rule:
        return "too_long", lambda s: s.str.len() <= limit

    needed = {"upsert": upsert, "without_contact_id": ~has_contact_id}
    columns: dict[str, list[Rule]] = {}
    for column in COLUMNS:
        if not column.read:
            continue
        rules = columns[column.name] = []
        if column.needed:
            rules.append(filled(needed[column.needed]))
        if column.numeric:
            rules.append(numeric())
        if column.max_length:
            rules.append(at_most(column.max_length))
    columns["action"].append(("bad_action", lambda s: s.str.lower().isin(list(ACTIONS))))
    site_given = frame[[*SITE_COLUMNS, *SITE_NAME_COLUMNS]].ne("").any(axis=1)
    return {n: r for n, r in columns.items() if n not in blank}, lambda f: site_given


def _schema(frame: pd.DataFrame, blank: set[str]) -> pa.DataFrameSchema:
    """The rules as a pandera schema: every column text, none missing."""
    columns, row_rule = _rules(frame, blank)
    return pa.DataFrameSchema(
        {
            name: pa.Column(str, [pa.Check(test, name=code) for code, test in rules])
            for name, rules in columns.items()
        },
        checks=[pa.Check(row_rule, name="no_site")],
    )


def _failing_rows(frame: pd.DataFrame, blank: set[str]) -> pd.Series | None:
    """The rows some rule fails on, tested directly (about 1 ms for a few rows, where pandera
    takes about 15 ms whatever their number): pandera then runs on those rows alone, to name
    what fails (every rule is about one row). None when a column is not text or has a missing
    value: pandera checks the whole frame."""
    if len(frame) <= SMALL_ROWS:
        failing = _failing_rows_small(frame, blank)
        if failing is not None:
            return failing
    return _failing_rows_vectorized(frame, blank)


def _failing_rows_small(frame: pd.DataFrame, blank: set[str]) -> pd.Series | None:
    """`_failing_rows` of a few rows, row by row in Python: `_rules`, one value at a time
    (about 0.3 ms for 51 rows, against 4 ms). None when a column is not text without a missing
    value."""
    read = [c for c in COLUMNS if c.read and c.name not in blank]
    cells: dict[str, list[str]] = {}
    for name in {c.name for c in read} | {
        "action",
        "contact_id",
        *SITE_COLUMNS,
        *SITE_NAME_COLUMNS,
    }:
        texts = small_texts(frame[name]) if name in frame else None
        if texts is None:
            return None
        cells[name] = texts
    actions = frame["action"].str.lower().tolist()  # Arrow's lower case, as `_rules`
    sites = [cells[name] for name in (*SITE_COLUMNS, *SITE_NAME_COLUMNS)]
    check_action = "action" not in blank
    failing = []
    for row, action in enumerate(actions):
        needed = {"upsert": action != "delete", "without_contact_id": not cells["contact_id"][row]}
        bad = not any(column[row] for column in sites) or (check_action and action not in ACTIONS)
        for column in read:
            if bad:
                break
            value = cells[column.name][row]
            bad = (
                (column.needed and not value and needed[column.needed])
                or (column.numeric and value and _NUMBER.fullmatch(value) is None)
                or bool(column.max_length and len(value) > column.max_length)
            )
        failing.append(bool(bad))
    return pd.Series(failing, index=frame.index, dtype=bool)


def _failing_rows_vectorized(frame: pd.DataFrame, blank: set[str]) -> pd.Series | None:
    columns, row_rule = _rules(frame, blank)
    failing = ~row_rule(frame)
    for name, rules in columns.items():
        values = frame.get(name)
        if values is None or values.dtype != "str" or values.hasnans:
            return None
        for _, test in rules:
            failing |= ~test(values)
    return failing


def _any_filled(values: pd.Series) -> bool:
    """Whether any cell of the column is filled (a few rows: without a pandas call)."""
    texts = small_texts(values)
    return any(texts) if texts is not None else bool((values != "").any())


def _schema_issues(
    roster: Roster, frame: pd.DataFrame, formula: set[tuple[int, str]]
) -> list[RosterIssue]:
    """The column rules, `CHUNK_ROWS` rows at a time (every rule is about one row): pandera's
    intermediate columns are that long at most."""
    # A column left empty passes every rule but a required one: skip the rest (speed).
    blank = {
        column.name
        for column in COLUMNS
        if column.read
        and column.name not in REQUIRED_COLUMNS
        and not _any_filled(frame[column.name])
    }
    issues = []
    for start in range(0, len(frame), CHUNK_ROWS):
        issues += _chunk_issues(roster, frame.iloc[start : start + CHUNK_ROWS], formula, blank)
    return issues


def _chunk_issues(
    roster: Roster, frame: pd.DataFrame, formula: set[tuple[int, str]], blank: set[str]
) -> list[RosterIssue]:
    failing = _failing_rows(frame, blank)
    if failing is not None:
        if not failing.any():
            return []
        frame = frame[failing]
    try:
        _schema(frame, blank).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []
    issues = []
    seen_no_site = set()
    for case in cases.itertuples(index=False):
        row, name, code = int(case.index), case.column, case.check
        if code == "no_site":
            if row in seen_no_site:
                continue
            seen_no_site.add(row)
            given = [n for n in (*SITE_COLUMNS, *SITE_NAME_COLUMNS) if n in roster.columns]
            name = min(given, key=lambda n: column_index(roster.columns[n][0]))
        if (row, name) in formula:
            continue
        value = str(frame.at[row, name]) if name in frame else ""
        limit = BY_NAME[name].max_length if name in BY_NAME else 0
        length = _length(value)
        variant = ""
        if code == "not_numeric" and _rounded_cells(roster, name, pd.Index([row])):
            variant = "rounded"
        issues.append(
            make_issue(
                roster,
                row,
                name,
                value,
                code,
                variant,
                length=length,
                limit=limit,
                number=scientific_digits(value),
            )
        )
    return issues


# A spreadsheet reader gives at most this many characters of a cell (Excel's own limit): a cell
# of that length may have held more.
SPREADSHEET_CELL_LIMIT = 32_767


def _length(value: str) -> str:
    """A cell's length as a message says it: a cell cut at the reader's limit is "at least"
    (a CSV cell, never cut, has its own length however long)."""
    if len(value) == SPREADSHEET_CELL_LIMIT:
        return f"at least {SPREADSHEET_CELL_LIMIT:,}"
    return f"{len(value):,}"


# phones and e-mail


def _check_phones(
    roster: Roster, frame: pd.DataFrame, region: str, phone_format: str
) -> tuple[pd.Series, list[RosterIssue]]:
    normalized, problems = normalize_phones(frame["phone_number"], region, phone_format)
    if "phone_number" in roster.columns:
        dated = [
            row
            for row, col in roster.table.date_cells
            if row in problems.index and col == roster.cell_position("phone_number", row)
        ]
        problems[dated] = PHONE_DATE
        normalized[dated] = ""
    rounded = _rounded_cells(roster, "phone_number", problems.index)
    if rounded:
        problems[list(rounded)] = PHONE_SCIENTIFIC
        normalized[list(rounded)] = ""
    issues = []
    for row, code in problems[problems != ""].items():
        value = frame.at[row, "phone_number"]
        variant = "rounded" if row in rounded else ""
        readings: dict[str, str] = {"shown": rounded.get(row, "")}
        if code == PHONE_PLUS_AMBIGUOUS:
            national, international = plus_readings(value.strip(), region.upper(), phone_format)
            readings = {"national": national, "international": international}
        issues.append(
            make_issue(
                roster,
                row,
                "phone_number",
                value,
                code,
                variant,
                region=region.upper(),
                sent=normalized[row],
                **readings,
            )
        )
    return normalized, issues


def _rounded_cells(roster: Roster, name: str, rows: pd.Index) -> dict[int, str]:
    """The rows whose cell of the column is a number a spreadsheet rounded
    (`Table.rounded_cells`), each as the spreadsheet showed it (1.20256E+10)."""
    cells = roster.table.rounded_cells
    if not cells:
        return {}
    return {
        row: shown
        for (row, position), shown in cells.items()
        if row in rows and position == roster.cell_position(name, row)
    }


def _check_emails(roster: Roster, frame: pd.DataFrame) -> tuple[pd.Series, list[RosterIssue]]:
    normalized, messages = normalize_emails(frame["email"])
    issues = [
        make_issue(
            roster,
            row,
            "email",
            frame.at[row, "email"],
            "invalid_email",
            detail=message.rstrip("."),
        )
        for row, message in messages[messages != ""].items()
    ]
    return normalized, issues


# rules across rows


SITE_KEY_COLUMNS = ("dealer_id", "site_id", "external_site_id", "account_number", "site_name")


def site_keys(rows: pd.DataFrame) -> pd.Series:
    """Which site a row names, as written, as a number: rows that name a site the same way share
    a key (site_id is a number: 01001 is 1001). The plan finds the rest, once sites are
    resolved. A number per row, not the columns' text joined: a million rows cost 8 MB, not a
    string each."""
    site_id = rows["site_id"].str.lstrip("0")
    columns = [site_id if name == "site_id" else rows[name] for name in SITE_KEY_COLUMNS]
    return combined_keys(columns, rows.index)


def combined_keys(columns: list[pd.Series], index: pd.Index) -> pd.Series:
    """One number per row that is the same for two rows exactly when every column is: the
    columns' factorized codes combined (renumbered only when the product could overflow)."""
    key = np.zeros(len(index), dtype=np.int64)
    bound = 1  # every key is below it
    for column in columns:
        codes, uniques = factorized(column) if column.dtype == "str" else pd.factorize(column)
        count = len(uniques)
        if count <= 1:  # a column with one value tells no rows apart
            continue
        if bound * count >= 2**62:
            key, distinct = pd.factorize(key)
            bound = len(distinct)
        key = key * count + codes
        bound *= count
    return pd.Series(key, index=index)


def repeated_pairs(site: pd.Series, values: pd.Series) -> pd.Series:
    """The rows whose site key and value (not empty) another row has too, every one of them,
    with a key that the rows repeating each other share; in row order. Found by sorting, not
    hashing: a million distinct values need no hash table of them (which took 100 MB)."""
    table = pyarrow.table(
        {"site": site.to_numpy(), "value": pyarrow.array(values, pyarrow.large_string())}
    )
    order = pc.sort_indices(table, sort_keys=[("site", "ascending"), ("value", "ascending")])
    ordered = table.take(order)
    same = pc.and_(
        *(
            pc.equal(ordered[name].slice(1), ordered[name].slice(0, len(ordered) - 1))
            for name in ("site", "value")
        )
    )
    same = same.fill_null(False).to_numpy(zero_copy_only=False)
    del ordered
    shared = np.zeros(len(values), dtype=bool)  # in sorted order: equal to a neighbour
    shared[1:] |= same
    shared[:-1] |= same
    repeated = np.zeros(len(values), dtype=bool)
    repeated[order.to_numpy()] = shared
    repeated &= (values != "").to_numpy()
    return combined_keys([site[repeated], values[repeated]], values.index[repeated])


def duplicate_ids(
    roster: Roster, rows: pd.DataFrame, key: pd.Series | None = None, where: str = ""
) -> list[RosterIssue]:
    """One external id on several rows of a site: an error, each row named. Unless every row
    carries its own contact_id (an export of contacts that already share the id in CHeKT): then
    the rows are a conflict the plan lists and leaves alone, and this is only a warning.

    `key` says which rows name one contact: by default the site as written and the id; the plan
    passes the site it resolved and the id as repaired (and `where` to name the site)."""
    if key is None:
        key = repeated_pairs(site_keys(rows), rows["external_contact_id"])
    else:
        named = rows["external_contact_id"] != ""
        key = key[rows.index[named.to_numpy()]]
        key = key[key.duplicated(keep=False)]
    repeated = rows.loc[key.index, ["external_contact_id", "contact_id", "first_name", "last_name"]]
    issues = []
    for _, group in repeated.groupby(key, sort=False):
        listed = bounded_list([roster.row_text(int(r)) for r in group.index])  # bounded
        if _ids_by_name(roster, group.index):  # --match-by name: the name is the key
            issues += [
                make_issue(
                    roster,
                    int(row),
                    "first_name",
                    f"{found['first_name']} {found['last_name']}".strip(),
                    "duplicate_name",
                    rows=listed,
                    person=repr(f"{found['first_name']} {found['last_name']}".strip()),
                    where=where,
                )
                for row, found in group.iterrows()
            ]
            continue
        ids = group["contact_id"]
        exported = (ids != "").all() and not ids.duplicated().any()
        code = "duplicate_in_chekt" if exported else "duplicate_external_id"
        issues += [
            make_issue(
                roster, int(row), "external_contact_id", value, code, rows=listed, where=where
            )
            for row, value in group["external_contact_id"].items()
        ]
    return issues


def _ids_by_name(roster: Roster, index: pd.Index) -> bool:
    """Rows whose id `--match-by name` made from their name (never shown: a name is)."""
    from .sites import PROVISIONAL_PREFIX

    made = roster.frame["external_contact_id"].reindex(index, fill_value="")
    return bool(made.str.startswith(PROVISIONAL_PREFIX).all())


def _warnings(roster: Roster, rows: pd.DataFrame) -> list[RosterIssue]:
    issues = []
    repeated = repeated_pairs(site_keys(rows), rows["phone_number"])
    first_row = {k: row for row, k in repeated[~repeated.duplicated()].items()}
    later = repeated[repeated.duplicated()]
    phones = rows.loc[later.index, "phone_number"].tolist()
    for (row, k), phone in zip(later.items(), phones, strict=True):
        issues.append(
            make_issue(
                roster,
                row,
                "phone_number",
                phone,
                "duplicate_phone",
                other=roster.row_text(int(first_row[k])),
            )
        )
    for name in SCIENTIFIC_CHECKED:
        shown = fullmatches(rows[name], _EXCEL_SCIENTIFIC)
        rounded = _rounded_cells(roster, name, rows.index) if shown.any() else {}
        for row, value in _where(rows[name], shown):
            variant = "" if name == "external_contact_id" else "site"
            if row in rounded:
                variant = f"{variant}_rounded".lstrip("_")
            number = scientific_digits(value)
            issues.append(
                make_issue(roster, row, name, value, ID_SCIENTIFIC, variant, number=number)
            )
    for name in FREE_TEXT_COLUMNS:
        for row, value in _where(rows[name], contains(rows[name], _FORMULA_LIKE)):
            start = value[: len(value) - len(value.lstrip("'")) + 1]
            detail = (
                ": its apostrophe, which a spreadsheet hides, is part of the value and is sent"
                if start.startswith("'")
                else ""
            )
            issues.append(
                make_issue(roster, row, name, value, "formula_like", start=start, detail=detail)
            )
    return issues


def _where(values: pd.Series, mask: pd.Series) -> Iterator[tuple[Any, str]]:
    """(row, value) of `values` where `mask` holds; no lookup when it never does (the usual
    case, each lookup costing about 0.1 ms)."""
    return values[mask].items() if mask.any() else iter(())


def _character_issues(roster: Roster, frame: pd.DataFrame) -> list[RosterIssue]:
    """Control characters (an error), bidirectional overrides (a warning) and invisible
    characters (an error in an id, or in a cell of nothing else, which would show blank; else a
    warning), in every column read. Columns that are not read are not checked: their cells go
    nowhere."""
    issues = []
    for name in roster.columns:  # one vectorized scan per column; the rare hits one by one
        for row, value in _where(frame[name], contains(frame[name], _UNSAFE_CHARACTER)):
            invisible = "invisible_in_id" if name in ID_COLUMNS else "invisible_character"
            if invisible == "invisible_character" and not INVISIBLE.sub("", value).strip():
                invisible = "invisible_only"
            for code, pattern in (*CHARACTER_CODES, (invisible, INVISIBLE)):
                found = dict.fromkeys(pattern.findall(value))
                if found:
                    named = ", ".join(_character_name(c) for c in found)
                    issues.append(make_issue(roster, row, name, value, code, character=named))
    return issues


def _character_name(character: str) -> str:
    """U+200B ZERO WIDTH SPACE"""
    name = unicodedata.name(character, "")
    return f"U+{ord(character):04X} {name}" if name else f"U+{ord(character):04X}"


# reachability


def unread_phone_columns(roster: Roster) -> list[tuple[str, str]]:
    """Phone columns the roster does not read: (letter, header). Every column whose header
    says phone, mobile, cell or tel is read (the first non-empty one per row); only those left
    out of --phone-columns, or an unknown header that still looks like a phone's, are not."""
    left_out = [(c, h) for c, h, why in roster.facts.not_sent if why == PHONE_LEFT_OUT]
    return left_out + [(c, h) for c, h in roster.ignored_columns if PHONE_LIKE_HEADER.search(h)]


def unread_phones_hint(roster: Roster) -> str:
    """'; not read: 'Home Phone' (column E); add it to --phone-columns', or ""."""
    unread = unread_phone_columns(roster)
    if not unread:
        return ""
    named = bounded_list([f"{quoted_repr(header)} (column {letter})" for letter, header in unread])
    if any(c == unread[0][0] for c, _, why in roster.facts.not_sent if why == PHONE_LEFT_OUT):
        return f"; not read: {named}; add it to --phone-columns"
    return f'; not read: {named}; use --map "{unread[0][1]}=phone_number"'


def reachability_issue(
    roster: Roster, row: int, has_phone: bool, has_email: bool, allow_unreachable: bool
) -> RosterIssue | None:
    """A contact with no phone is a warning; with neither phone nor e-mail, an error (unless
    allowed): an entry on a call list that reaches nobody is useless in an alarm."""
    if has_phone:
        return None
    unread = unread_phones_hint(roster)
    code = "no_phone" if has_email or allow_unreachable else "unreachable"
    return make_issue(roster, row, "phone_number", "", code, unread=unread)


def _row_reachability(
    roster: Roster, frame: pd.DataFrame, rows: pd.DataFrame, allow_unreachable: bool
) -> list[RosterIssue]:
    """The row as the whole truth: a blank phone cell means no phone (a phone or e-mail cell
    that failed validation is reported as such, not here). Every row of a kind gets the same
    message, made once."""
    blank = (frame["phone_number"] == "") & (rows["action"] != "delete")
    if not blank.any():
        return []
    kinds: dict[bool, RosterIssue] = {}
    for emailed in (True, False):
        issue = reachability_issue(roster, 0, False, emailed, allow_unreachable)
        assert issue is not None  # no phone is always an issue
        kinds[emailed] = issue
    emailed = (frame["email"] != "")[blank]
    return [replace(kinds[e], row=int(row)) for row, e in emailed.items()]
