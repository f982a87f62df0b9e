"""Runs: an apply or rollback in a background thread with its live tally (for the page's
server-sent events), and the run folders already on disk (the CLI's and the page's alike)."""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BulkContactsError
from . import library
from .connection import Connection


@dataclass
class Run:
    """One apply or rollback as it goes: the tally the page shows, Stop, and the report."""

    kind: str  # apply or rollback
    total: int
    files: Any  # RunFiles
    api_url: str
    stop: threading.Event = field(default_factory=threading.Event)
    tally: Counter = field(default_factory=Counter)
    report: Any = None  # ApplyReport once finished
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    thread: threading.Thread | None = None
    _base: tuple[int, int] = (0, 0)
    _connection: Connection | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def folder(self) -> Path:
        return Path(self.files.results).parent

    def record(self, outcome: library.Outcome) -> None:
        self.tally[outcome.status] += 1
        self.tally["retried"] += outcome.attempts > 1

    def snapshot(self) -> dict[str, Any]:
        """What the progress view shows; sent as one server-sent event."""
        connection = self._connection
        rate_limited = connection.log.rate_limited - self._base[0] if connection else 0
        held = connection.pacer.waits - self._base[1] if connection else 0
        done = sum(self.tally[s] for s in ("ok", "failed", "skipped"))
        end = self.finished or time.monotonic()
        return {
            "kind": self.kind,
            "total": self.total,
            "done": done,
            "ok": self.tally["ok"],
            "failed": self.tally["failed"],
            "skipped": self.tally["skipped"],
            "retried": self.tally["retried"],
            "rate_limited": rate_limited,
            "held_back": held,
            "seconds": round(end - self.started, 1),
            "stopping": self.stop.is_set() and self.running,
            "finished": not self.running,
            "interrupted": bool(self.report and self.report.interrupted),
            "error": self.error,
        }


def start_run(
    connection: Connection,
    plan: library.Plan,
    base: Path,
    kind: str,
    tell: Callable[[str], None] = lambda _: None,
) -> Run:
    """Apply `plan` in a thread, writing a run folder under `base` as the CLI does, holding
    the run lock of each dealer it writes to at this API as the CLI does (`lock.DealerLocks`):
    another run holding one is told of (`tell`, a warning) and the run goes on, as `apply`
    without --wait does; a run in a terminal meanwhile is warned of this one."""
    from ..lock import DealerLocks

    files = library.run_files(base, kind)
    api_url = connection.settings.api_url
    run = Run(kind, len(plan.changes), files, api_url)
    run._connection = connection
    run._base = (connection.log.rate_limited, connection.pacer.waits)
    dealers = {site.dealer_id for site in plan.sites if site.changes}
    locks = DealerLocks(dealers, api_url).acquire(False, tell)

    def work() -> None:
        try:
            run.report = library.run_plan(
                connection.client, plan, files, run.record, run.stop, kind
            )
        except (BulkContactsError, OSError) as error:
            run.error = str(error)
        finally:
            locks.release()
            run.finished = time.monotonic()

    run.thread = threading.Thread(target=work, name=f"web-{kind}", daemon=True)
    run.thread.start()
    return run


# run folders


@dataclass(frozen=True)
class PastRun:
    name: str
    folder: Path
    kind: str
    api_url: str
    counts: dict[str, int]
    journal: Path
    results: Path
    failed_rows: Path | None
    problem: str = ""


def past_runs(base: Path) -> list[PastRun]:
    """Every run folder under `base` (newest first) that holds a journal."""
    if not base.is_dir():
        return []
    folders = sorted((p for p in base.iterdir() if p.is_dir()), reverse=True)
    return [describe_run(folder) for folder in folders if (folder / "journal.jsonl").is_file()]


def find_run(base: Path, name: str) -> PastRun | None:
    """The run folder of that exact name (never a path: names come from the page)."""
    return next((run for run in past_runs(base) if run.name == name), None)


def describe_run(folder: Path) -> PastRun:
    journal, results = folder / "journal.jsonl", folder / "results.csv"
    failed = folder / "results-failed-rows.csv"
    kind, api_url, problem = folder.name.rsplit("-", 1)[-1], "", ""
    try:
        header = library.journal_records(journal)[0]
        kind, api_url = header.get("kind", kind), header.get("api_url", "")
    except BulkContactsError as error:
        problem = str(error)
    return PastRun(
        folder.name,
        folder,
        kind,
        api_url,
        _result_counts(results),
        journal,
        results,
        failed if failed.is_file() else None,
        problem,
    )


def _result_counts(results: Path) -> dict[str, int]:
    try:
        with results.open(encoding="utf-8-sig", newline="") as handle:
            return dict(Counter(row.get("status", "") for row in csv.DictReader(handle)))
    except OSError:
        return {}
