"""The run log (`--log-file`): one JSON line per HTTP exchange, per decision, and per unexpected
error (with its traceback).

Only what is passed in explicitly is written: never headers, never tokens, never secrets.
Contact values are written only when the log is verbose.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any


class RunLog:
    def __init__(self, path: Path | None = None, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def write(self, kind: str, **entry: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"time": round(time.time(), 3), "kind": kind, **entry}, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

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
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
