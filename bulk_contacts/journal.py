"""The journal of an apply: JSON lines, an intent record before each write and an outcome record
after it, with before and after images. `rollback` reads it; a killed run loses nothing it did.

Durability: every record is written and flushed at once (a killed process loses nothing); an
intent is also fsynced before its write is sent (a lost machine loses nothing either). fsyncs are
grouped: one fsync covers every record written before it, however many workers are waiting, so
durability costs little when many changes are in flight.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from .errors import InputError

JOURNAL_FORMAT = "bulk-contacts-journal/1"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - see close()
        self._lock = threading.Lock()
        self._synced = threading.Condition()
        self._written = 0
        self._durable = 0
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def write(self, record: dict[str, Any], durable: bool = False) -> None:
        """Append a record; with `durable`, return only once it is on disk."""
        line = json.dumps(
            {"time": round(time.time(), 3), **record}, ensure_ascii=False, default=str
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            self._written += 1
            number = self._written
        with self._synced:
            self._synced.notify_all()
            if durable:
                self._synced.wait_for(lambda: self._durable >= number or self._closing)

    def _sync_loop(self) -> None:
        while True:
            with self._synced:
                self._synced.wait_for(lambda: self._written > self._durable or self._closing)
                if self._closing and self._written <= self._durable:
                    return
                target = self._written
            os.fsync(self._file.fileno())
            with self._synced:
                self._durable = max(self._durable, target)
                self._synced.notify_all()

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
        with self._synced:
            self._durable = self._written
            self._closing = True
            self._synced.notify_all()
        self._syncer.join(timeout=5)
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete record; a last line cut short by a killed process is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such journal") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read ({error})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the write a kill interrupted
            raise InputError(f"{path}: line {number} is not a journal record") from None
    if not records or records[0].get("format") != JOURNAL_FORMAT:
        raise InputError(f"{path}: not a bulk-contacts journal")
    return records
