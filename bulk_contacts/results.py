"""What an apply did, change by change: the results file (CSV streamed as outcomes arrive, or
.xlsx), and a roster of the failed rows to fix and import again."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from .columns import CONTACT_FIELDS, EDITABLE_FIELDS
from .errors import InputError
from .outputs import (
    OVERWRITE_HINT,
    SHEET_SUFFIXES,
    CsvWriter,
    OutputExists,
    open_new,
    replacing,
    write_table_rows,
    written_workbook,
)
from .plan import Change

RESULT_COLUMNS = (
    "row",
    "dealer_id",
    "site_id",
    "external_contact_id",
    "first_name",
    "last_name",
    "action",
    "status",
    "contact_id",
    "http_status",
    "error_code",
    "error_message",
    "trace_id",
    "attempts",
)
# A roster (dealer, site, the contact, what to do) with the error: fixed, it is imported again.
FAILED_COLUMNS = ("dealer_id", "site_id", *CONTACT_FIELDS, "action", "contact_id", "error")


@dataclass(frozen=True)
class Outcome:
    row: int | None
    dealer_id: int
    site_id: int
    external_contact_id: str | None
    action: str
    status: str  # ok, failed, skipped, or unverified (a verification row after the ok one)
    contact_id: int | None
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    trace_id: str = ""
    attempts: int = 0
    by_another_run: bool = False  # ok, but made by another run (`Exchange.by_another_run`)


class Results:
    """Outcomes, written as they come: `.csv` line by line; `.xlsx` at the end (kept as compact
    rows meanwhile, written to a temporary name and renamed into place). Failed rows go to a
    roster file beside it. Both CSV files are new files (an existing one raises OutputExists)
    and formula-safe (`outputs.CsvWriter`)."""

    def __init__(self, path: Path, failed_path: Path) -> None:
        if path.suffix.lower() not in SHEET_SUFFIXES:
            raise InputError(f"--results {path}: use a .csv or .xlsx file name")
        existing = [p for p in (path, failed_path) if p.exists()]
        if existing:
            raise OutputExists(f"{existing[0]}: exists (left untouched); {OVERWRITE_HINT}")
        self.path, self.failed_path = path, failed_path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rows: list[tuple] = []
        self._csv: IO[str] | None = None
        self._writer: CsvWriter | None = None
        if path.suffix.lower() == ".csv":
            self._csv = open_new(path, encoding=CsvWriter.ENCODING, newline="")
            self._writer = CsvWriter(self._csv)
            self._writer.writerow(RESULT_COLUMNS)
        self._failed: IO[str] | None = None
        self._failed_writer: CsvWriter | None = None
        self.counts = {"ok": 0, "failed": 0, "skipped": 0, "unverified": 0}
        self.by_another_run = 0  # of the ok ones: made by another run, not this one
        self._closed = False

    def add(self, outcome: Outcome, change: Change, counted: bool = True) -> None:
        """A row for the outcome; `counted` False for a row about a change already counted (a
        change sent again after the verification)."""
        named = {**change.before, **change.after}  # a contact's name as held, or as sent
        fields = {**asdict(outcome), **{k: named.get(k) for k in ("first_name", "last_name")}}
        values = tuple("" if fields[name] is None else fields[name] for name in RESULT_COLUMNS)
        with self._lock:
            self.counts[outcome.status] += counted
            self.by_another_run += counted and outcome.by_another_run and outcome.status == "ok"
            if self._writer is not None:
                self._writer.writerow(values)
                self._csv.flush()  # type: ignore[union-attr]  # open while _writer is
            else:
                self._rows.append(values)
            if outcome.status in ("failed", "unverified"):
                self._add_failed(change, outcome)

    def _add_failed(self, change: Change, outcome: Outcome) -> None:
        if self._failed_writer is None:
            self.failed_path.parent.mkdir(parents=True, exist_ok=True)
            self._failed = open_new(self.failed_path, encoding=CsvWriter.ENCODING, newline="")
            self._failed_writer = CsvWriter(self._failed)
            self._failed_writer.writerow(FAILED_COLUMNS)
        wanted = {**change.before, **change.after}
        row = {
            **{name: wanted.get(name) or "" for name in EDITABLE_FIELDS},
            "dealer_id": change.dealer_id,
            "site_id": change.site_id,
            "external_contact_id": change.external_contact_id or "",
            "action": "delete" if change.action == "delete" else "upsert",
            "contact_id": "" if change.external_contact_id else (change.contact_id or ""),
            "error": outcome.error_message,
        }
        self._failed_writer.writerow(row[name] for name in FAILED_COLUMNS)
        self._failed.flush()  # type: ignore[union-attr]  # opened just above

    @property
    def has_failed_rows(self) -> bool:
        return self._failed_writer is not None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._csv is not None:
                self._csv.close()
            else:
                self._write_xlsx()
            if self._failed is not None:
                self._failed.close()

    def _write_xlsx(self) -> None:
        with replacing(self.path) as temporary:
            self._write_workbook(temporary)

    def _write_workbook(self, path: Path) -> None:
        with written_workbook(
            path,
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        ) as workbook:
            sheet = workbook.add_worksheet("Results")
            bold = workbook.add_format({"bold": True})
            sheet.write_row(0, 0, RESULT_COLUMNS, bold)
            write_table_rows(sheet, self._rows)
            sheet.freeze_panes(1, 0)
