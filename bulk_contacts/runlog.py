"""The run log (`--log-file`): one JSON line per HTTP exchange, per decision, and per unexpected
error (with its traceback).

Only what is passed in explicitly is written: never headers, never tokens, never secrets.
Contact values are written only when the log is verbose.

The log is for diagnosis, never the record of a run (the journal and the results are): a log
that cannot be written (a full disk, an I/O error) stops there, whole lines only, and
`on_failure` is told once; the run goes on. A worker thread must never die at a log line with
a write made and its outcome not recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)


class RunLog:
    def __init__(
        self,
        path: Path | None = None,
        *,
        verbose: bool = False,
        on_failure: Callable[[Path, OSError], None] | None = None,
    ) -> None:
        self.verbose = verbose
        self.path = path
        self.on_failure = on_failure
        self.failure: OSError | None = None  # why the log stopped, if it did
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, _OPEN_FLAGS, 0o666)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    def write(self, kind: str, **entry: Any) -> None:
        if self._fd is None:
            return
        line = json.dumps({"time": round(time.time(), 3), "kind": kind, **entry}, default=str)
        data = (line + "\n").encode("utf-8")
        tell: Callable[[Path, OSError], None] | None = None
        with self._lock:
            if self._fd is None:
                return
            done = 0
            try:
                while done < len(data):  # O_APPEND: the line goes at the end, whole
                    done += os.write(self._fd, data[done:])
            except OSError as error:
                self.failure = failed = error
                with contextlib.suppress(OSError):
                    if done:  # no line cut short: its written part is taken off
                        os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
                    os.close(self._fd)
                self._fd = None
                tell, self.on_failure = self.on_failure, None  # told once
        if tell is not None and self.path is not None:
            tell(self.path, failed)

    def exchange(self, *, values: dict[str, Any] | None = None, **entry: Any) -> None:
        if values is not None and self.verbose:
            entry["values"] = values
        self.write("http", **entry)

    def decision(self, **entry: Any) -> None:
        self.write("decision", **entry)

    def error(self, error: BaseException, **entry: Any) -> None:
        """An unexpected error (a bug) the run went on after: its type, message and traceback,
        so it can be reported and fixed (contact values only when verbose, as elsewhere)."""
        self.write(
            "error",
            **entry,
            error=f"{type(error).__name__}: {error}" if self.verbose else type(error).__name__,
            traceback="".join(traceback.format_exception(error, limit=None))
            if self.verbose
            else "".join(traceback.format_tb(error.__traceback__)),
        )

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):  # every line was written whole already
                    os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
