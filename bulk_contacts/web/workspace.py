"""What one `serve` holds between pages: the connection, the uploaded roster with the columns
chosen and the cells corrected, the plan, the run in progress. One person uses it at a time (the
session is theirs alone); a lock keeps the page's requests from crossing.

Files live in a private temporary folder (mode 0700) removed when `serve` stops.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..check import CheckReport, CheckStep
from ..errors import InputError
from . import library
from .connection import Connection
from .runs import Run

SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
REGION = re.compile(r"[A-Za-z]{2}")
MAX_MAPPING_NAME = 80
IssueMap = dict[int, dict[str, list[list[str]]]]  # row -> field -> [[severity, message]]


@dataclass
class Upload:
    path: Path
    name: str
    sheets: list[str]
    table: Any  # roster.Table: a copy whose cells the Fix grid corrects
    edits: int = 0
    warnings: list[Any] = field(default_factory=list)  # the sheets' (`other_sheets`)


@dataclass
class Workspace:
    folder: Path
    runs_dir: Path
    mappings_file: Path
    connection: Connection | None = None
    checks: list[CheckStep] = field(default_factory=list)
    check_report: CheckReport | None = None
    upload: Upload | None = None
    # Which roster a page shows (its X-Roster header): a cell corrected or a column chosen in a
    # tab showing an earlier file never lands in the file another tab uploaded since.
    roster_number: int = 0
    region: str = "US"
    phone_format: str = "e164"
    read: library.ReadOptions = field(default_factory=library.ReadOptions)  # the layout's
    choices: dict[int, str | None] = field(default_factory=dict)
    roster: Any = None  # roster.Roster, or None when the columns do not make one
    roster_error: str = ""
    validated: library.ValidatedRoster | None = None
    issues: IssueMap = field(default_factory=dict)
    plan_form: dict[str, Any] = field(default_factory=dict)
    plan: library.Plan | None = None
    # Which plan the Apply page confirms: a page shows the number of the plan it showed, and
    # an Apply pressed in one tab never applies a plan made since in another.
    plan_number: int = 0
    run: Run | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _uploads: int = 0

    # messages shown once, on the next page

    def say(self, level: str, text: str) -> None:
        self.messages.append((level, self.shown(text)))

    def take_messages(self) -> list[tuple[str, str]]:
        messages, self.messages = self.messages, []
        return messages

    def shown(self, text: str) -> str:
        """A library message as the page shows it: the private folder's path left out."""
        return text.replace(f"{self.folder}/", "").replace(str(self.folder), "")

    def other_roster(self, shown: str | None) -> str:
        """Why a request from a page showing roster `shown` (its X-Roster header) is refused:
        "" when it shows the roster at hand (or says nothing)."""
        if shown is None or shown == str(self.roster_number):
            return ""
        return (
            "that page showed another roster than the one at hand (another tab or window "
            "uploaded or read a file since): nothing was changed; reload the page"
        )

    # connection

    def connect(self, connection: Connection, report: CheckReport) -> None:
        if self.run is not None and self.run.running:
            connection.close()
            raise InputError("a run is in progress: wait for it to finish, or stop it")
        if self.connection is not None:
            self.connection.close()
        self.connection, self.plan = connection, None
        self.checked(report)

    def checked(self, report: CheckReport) -> None:
        self.checks, self.check_report = report.steps, report

    def close(self) -> None:
        """At exit: a run in progress is stopped as Ctrl-C stops one (the changes in flight
        finish, the journal is complete), then the connection (and its sandbox) closes."""
        run = self.run
        if run is not None and run.running and run.thread is not None:
            run.stop.set()
            run.thread.join(timeout=60)
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    # upload and columns

    def new_upload_path(self, name: str) -> Path:
        self._uploads += 1
        folder = self.folder / "uploads" / str(self._uploads)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / safe_file_name(name)

    def load(self, path: Path, sheet: str | None = None) -> None:
        """Read the file (the CLI's reader and messages); the columns as the reader finds them."""
        table, warnings = library.read_table(path, sheet, self.read)
        self.roster_number += 1
        self.upload = Upload(path, path.name, library.sheet_names(path), table, 0, warnings)
        self.choices = {
            position: library.detected_column(header)
            for position, header in enumerate(table.headers)
        }
        self.refresh()

    def set_reading(self, region: str, phone_format: str) -> None:
        if not REGION.fullmatch(region):
            raise InputError(f"region {region!r}: use a two-letter code such as US, CA, GB or DE")
        if phone_format not in ("e164", "national"):
            raise InputError("phone format: e164 or national")
        import phonenumbers

        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise InputError(f"region {region!r} is not a region code; use one such as US or GB")
        self.region, self.phone_format = region.upper(), phone_format
        self.refresh()

    def set_choices(self, choices: dict[int, str | None]) -> None:
        self.choices = choices
        self.refresh()

    def refresh(self) -> None:
        """Read the table with the chosen columns and validate it again; any plan is dropped
        (it was made from other rows)."""
        self.plan = None
        self.roster, self.validated, self.issues, self.roster_error = None, None, {}, ""
        if self.upload is None:
            return
        try:
            self.roster = library.roster_of(self.upload.table, self.choices, self.read)
        except InputError as error:
            self.roster_error = self.shown(str(error))
            return
        self.validated = library.validate(self.roster, self.region, self.phone_format)
        self.validated.issues[:0] = self.upload.warnings  # as the command line gives them
        self.issues = issue_map(self.validated)

    # fixing

    def edit(self, row: int, field_name: str, value: str) -> dict[str, Any]:
        """Correct one cell and validate again; the rows whose problems changed."""
        if self.upload is None or self.roster is None:
            raise InputError("no roster: upload one first")
        if field_name not in self.roster.columns or row not in self.roster.frame.index:
            raise InputError(f"no cell {field_name} in row {row}")
        library.edit_cell(self.upload.table, self.roster, row, field_name, value)
        self.upload.edits += 1
        before = self.issues
        self.refresh()
        changed = sorted(
            r for r in set(before) | set(self.issues) if before.get(r) != self.issues.get(r)
        )
        return {
            "rows": [grid_issues(row, self.issues.get(row, {})) for row in changed],
            "counts": self.counts(),
        }

    def check(self, row: int, field_name: str, value: str) -> list[list[str]]:
        """The problems of a cell as typed, before it is saved (its row alone)."""
        if self.upload is None or self.roster is None:
            raise InputError("no roster: upload one first")
        if field_name not in self.roster.columns or row not in self.roster.frame.index:
            raise InputError(f"no cell {field_name} in row {row}")
        issues = library.cell_issues(
            self.upload.table,
            self.choices,
            row,
            field_name,
            value,
            (self.region, self.phone_format),
            self.read,
        )
        return [[issue.severity, issue.message] for issue in issues]

    def counts(self) -> dict[str, int]:
        validated = self.validated
        if validated is None:
            return {"rows": 0, "errors": 0, "warnings": 0, "invalid_rows": 0}
        return {
            "rows": len(validated.rows),
            "errors": len(validated.errors),
            "warnings": len(validated.warnings),
            "invalid_rows": len(validated.invalid_rows),
        }

    def grid(self) -> dict[str, Any]:
        """The rows for the Fix grid: the cells as the file has them (corrected), and each
        cell's problems."""
        roster = self.roster
        if roster is None:
            return {"columns": [], "rows": []}
        fields = sorted(roster.columns, key=lambda name: library.column_index_of(roster, name))
        frame = roster.frame[fields]
        if "external_contact_id" in fields:  # --match-by name's key for a blank id: shown blank
            frame = frame.assign(
                external_contact_id=frame["external_contact_id"].map(library.shown_id)
            )
        rows = [
            {"_row": int(number), **dict(zip(fields, values, strict=True))}
            | grid_issues(int(number), self.issues.get(int(number), {}))
            for number, values in zip(frame.index, frame.itertuples(index=False), strict=True)
        ]
        columns = [
            {"field": name, "letter": roster.columns[name][0], "header": roster.columns[name][1]}
            for name in fields
        ]
        return {"columns": columns, "rows": rows}

    # saved column mappings

    def saved_mappings(self) -> dict[str, dict[str, str]]:
        try:
            saved = json.loads(self.mappings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def save_mapping(self, name: str) -> None:
        name = name.strip()
        if not name or len(name) > MAX_MAPPING_NAME:
            raise InputError(f"a mapping's name: 1 to {MAX_MAPPING_NAME} characters")
        if self.upload is None:
            raise InputError("no roster: upload one first")
        headers = self.upload.table.headers
        saved = self.saved_mappings()
        saved[name] = {headers[p]: choice or "" for p, choice in self.choices.items()}
        self.mappings_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.mappings_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(saved, indent=1, ensure_ascii=False), encoding="utf-8")
        temporary.replace(self.mappings_file)

    def use_mapping(self, name: str) -> None:
        mapping = self.saved_mappings().get(name)
        if mapping is None or self.upload is None:
            raise InputError(f"no saved mapping named {name!r}")
        choices = dict(self.choices)
        for position, header in enumerate(self.upload.table.headers):
            if header in mapping:
                value = mapping[header]
                choices[position] = value if value in library.CHOICES else None
        self.set_choices(choices)


def safe_file_name(name: str) -> str:
    """The upload's own name, reduced to plain characters (its suffix kept): never a path."""
    base = SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    return base[:120] or "roster"


def issue_map(validated: library.ValidatedRoster) -> IssueMap:
    issues: IssueMap = {}
    for issue in validated.issues:
        if issue.row is None or issue.severity == "derived":  # what the reader did: no problem
            continue
        cell = issues.setdefault(issue.row, {}).setdefault(issue.field or "_row", [])
        cell.append([issue.severity, issue.message])
    return issues


def grid_issues(row: int, issues: dict[str, list[list[str]]]) -> dict[str, Any]:
    severities = {severity for cell in issues.values() for severity, _ in cell}
    worst = (
        library.ERROR if library.ERROR in severities else (library.WARNING if severities else "")
    )
    return {"_row": row, "_issues": issues, "_worst": worst}


def file_issues(validated: library.ValidatedRoster | None) -> list[library.RosterIssue]:
    """Problems of the file as a whole (an unknown column)."""
    return [i for i in validated.issues if i.row is None] if validated else []
