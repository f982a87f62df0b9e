"""The journal of a run: JSON lines, an intent record before each write and an outcome record
after it, with before and after images. `rollback` reads it; a killed run loses nothing it did.

Durability: every record is appended with one `write` call (a killed process loses nothing); an
intent is also fsynced before its write is sent (a lost machine loses nothing either). fsyncs are
grouped: one fsync covers every record written before it, however many workers are waiting, so
durability costs little when many changes are in flight.

No write without a durable intent: when a record cannot be written or synced (a full disk, an
I/O error), the journal is marked failed, every waiting and later `write` raises `JournalError`,
and the file is cut back to its last complete record, so it stays readable. The fsync thread
records its own failure instead of dying with it, and a writer waits for it at most
`sync_timeout` seconds.

Records are paired by run id and counter (`run`, `n`): several runs may append to one journal
(a resumed apply), and `rollback` undoes them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import InputError, JournalError
from .outputs import json_value

JOURNAL_FORMAT = "bulk-contacts-journal/1"
SYNC_TIMEOUT = 60.0
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)


class Journal:
    """An append-only journal file, shared by the workers of one run."""

    def __init__(self, path: Path, *, sync_timeout: float = SYNC_TIMEOUT) -> None:
        self.path = path
        self.sync_timeout = sync_timeout
        self.failure: BaseException | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, _OPEN_FLAGS, 0o600)
            self._size = _drop_partial_tail(path, self._fd)
        except OSError as error:
            raise JournalError(
                f"the journal {path} cannot be written ({error.strerror or error}): "
                f"nothing was sent"
            ) from None
        self._lock = threading.Lock()
        self._synced = threading.Condition()
        self._written = 0
        self._durable = 0
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def write(self, record: dict[str, Any], durable: bool = False) -> None:
        """Append a record; with `durable`, return only once it is on disk. Raises
        JournalError once the journal cannot be written (then nothing more is written)."""
        # U+202E, the C1 controls...: as JSON escapes (read back exactly), never raw in a file
        # a person may `tail -f`.
        line = json_value({"time": round(time.time(), 3), **record}, default=str)
        with self._lock:
            self._check()
            try:
                self._append((line + "\n").encode("utf-8"))
            except OSError as error:
                self._fail(error)
                self._check()
            self._written += 1
            number = self._written
        with self._synced:
            self._synced.notify_all()
            if durable:
                synced = self._synced.wait_for(
                    lambda: self._durable >= number or self.failure is not None or self._closing,
                    timeout=self.sync_timeout,
                )
                if not synced:
                    self.failure = TimeoutError(
                        f"fsync did not finish within {self.sync_timeout:g} s"
                    )
                    self._synced.notify_all()
        self._check()

    def _append(self, data: bytes) -> None:
        """One record, whole or not at all: a record cut short by an error is cut off again."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # the reader ignores a cut last line anyway
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _check(self) -> None:
        if self.failure is not None:
            reason = getattr(self.failure, "strerror", None) or str(self.failure)
            raise JournalError(f"the journal {self.path} cannot be written ({reason})")

    def _fail(self, error: BaseException) -> None:
        with self._synced:
            if self.failure is None:
                self.failure = error
            self._synced.notify_all()

    def _sync_loop(self) -> None:
        try:
            while True:
                with self._synced:
                    self._synced.wait_for(
                        lambda: (
                            self._written > self._durable
                            or self._closing
                            or self.failure is not None
                        )
                    )
                    if self.failure is not None or (
                        self._closing and self._written <= self._durable
                    ):
                        return
                    target = self._written
                os.fsync(self._fd)
                with self._synced:
                    self._durable = max(self._durable, target)
                    self._synced.notify_all()
        except BaseException as error:  # recorded, so no writer waits for a dead thread
            self._fail(error)

    def close(self) -> None:
        """Sync what was written and close. A failure here is kept in `failure`."""
        with self._lock:
            if self.failure is None:
                try:
                    os.fsync(self._fd)
                except OSError as error:
                    self._fail(error)
        with self._synced:
            self._durable = self._written
            self._closing = True
            self._synced.notify_all()
        self._syncer.join(timeout=5)
        os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _drop_partial_tail(path: Path, fd: int) -> int:
    """Cut a last line left incomplete by a killed run (the reader ignores it, but a record
    appended after it would turn it into a damaged line). The file's size after that."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    with open(path, "rb") as reader:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            reader.seek(start)
            chunk = reader.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return size
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                os.ftruncate(fd, start + cut + 1)
                return start + cut + 1
            end = start
    os.ftruncate(fd, 0)
    return 0


# reading


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    time: float | None = None


class RunRecord(_Record):
    type: Literal["run"]
    format: str
    run_id: str
    kind: str = "apply"
    api_url: str | None = None


Images = dict[str, str | None]


class IntentRecord(_Record):
    type: Literal["intent"]
    n: int = Field(ge=1)
    run: str | None = None
    action: Literal["create", "update", "delete"]
    dealer_id: int
    site_id: int
    row: int | None = None
    external_contact_id: str | None = None
    contact_id: int | None = None
    before: Images
    after: Images


class OutcomeRecord(_Record):
    type: Literal["outcome"]
    n: int = Field(ge=1)
    run: str | None = None
    status: Literal["ok", "failed", "skipped"]
    action: Literal["create", "update", "delete"]
    dealer_id: int
    site_id: int
    contact_id: int | None = None
    http_status: int | None = None
    image: Images | None = None


class NoteRecord(_Record):
    """Anything a run adds for people (the verification's summary): kept, not used."""

    type: Literal["note"]
    run: str | None = None


class UndoneRecord(_Record):
    """Written by a rollback into the journal it undid: the writes (`[run id, n]`) it found
    undone, so a later rollback of the journal leaves them alone (and what was made since)."""

    type: Literal["undone"]
    run: str | None = None  # the rollback's run id
    steps: list[Annotated[list[str | int], Field(min_length=2, max_length=2)]]
    journal: str | None = None  # the rollback's own journal


RECORD = TypeAdapter(
    Annotated[
        RunRecord | IntentRecord | OutcomeRecord | NoteRecord | UndoneRecord,
        Field(discriminator="type"),
    ]
)
RECORD_TYPES = ("run", "intent", "outcome", "note", "undone")


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every record, each checked, with the run it belongs to in `run`. A last line cut short by
    a killed process is ignored; any other damaged line is an InputError naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such journal") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    if PLAN_FILE.match(data[:64]):
        raise NotAJournal(f"{path}: not a journal (it is a plan)", plan=True)
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    records: list[dict[str, Any]] = []
    run = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        cut_short = number == len(lines) and not complete
        if not records and not cut_short and not _json_line(raw):
            raise NotAJournal(f"{path}: not a journal (its first line is not JSON)")
        record = _parse(path, number, raw, cut_short)
        if record is None:
            break  # the write a kill interrupted
        if number == 1 and not (
            record.get("type") == "run" and record.get("format") == JOURNAL_FORMAT
        ):
            raise NotAJournal(f"{path}: not a bulk-contacts journal (line 1 is no run record)")
        if record["type"] == "run":
            run = record["run_id"]
        record.setdefault("run", run)
        records.append(record)
    if not records:
        raise InputError(f"{path}: not a bulk-contacts journal (no record in it)")
    return records


# A plan file (`plan -o`), as it begins; and what a rollback takes instead of another file.
PLAN_FILE = re.compile(rb'(?:\xef\xbb\xbf)?\s*\{\s*"format":\s*"bulk-contacts-plan/')


class NotAJournal(InputError):
    """A file that is no journal at all (not a damaged one); `plan`: it is a plan file."""

    def __init__(self, message: str, plan: bool = False) -> None:
        super().__init__(message)
        self.plan = plan


def _json_line(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return True


def _parse(path: Path, number: int, raw: bytes, cut_short: bool) -> dict[str, Any] | None:
    """One line as a checked record; None for a last line cut short."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # nested too deeply
        if cut_short:
            return None
        raise InputError(f"{path}: line {number} is not a journal record (not JSON)") from None
    problem = _problem(value)
    if problem:
        raise InputError(
            f"{path}: line {number} is not a journal record ({problem}); the journal is "
            f"damaged: restore it from a copy, or remove that line if you know what it held"
        )
    return value


def _problem(value: Any) -> str:
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__.replace('dict', 'object')}, not an object"
    if value.get("type") not in RECORD_TYPES:
        return f"no record type ({', '.join(RECORD_TYPES)})"
    try:
        RECORD.validate_python(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        return f"{value['type']}: {where + ': ' if where else ''}{first['msg']}"
    return ""


def check_appendable(path: Path, api_url: str) -> int:
    """Before a run appends to an existing journal: it must be a journal of runs against the
    same API (a rollback must reach the contacts every run touched). The number of runs in it."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        records = read_journal(path)
    except InputError as error:
        raise InputError(
            f"the journal {path} exists and is not one this run can add to ({error}); "
            f"choose another path",
            setting="journal",
        ) from None
    runs = [r for r in records if r["type"] == "run"]
    urls: set[str] = {r["api_url"] for r in runs if r.get("api_url")}
    if urls and urls != {api_url}:
        raise InputError(
            f"the journal {path} records runs against {', '.join(sorted(urls))}, not "
            f"{api_url}; choose another path",
            setting="journal",
        )
    return len(runs)
