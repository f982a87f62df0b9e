"""The sandbox's request log: one JSON line per request, with its trace id and request id."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any


class RequestLog:
    """Appends to `path` (None: keeps nothing). Never records headers or bodies, so no secret
    or token can reach it."""

    def __init__(self, path: Path | None) -> None:
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"time": round(time.time(), 3), **entry})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
