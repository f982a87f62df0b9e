"""Runs on one machine told about each other: a lock per dealer and API (a second run for a
dealer against the same API URL warns, or waits its turn; a run for that dealer against another
API, a sandbox rehearsing a production run, does neither) and one per journal (one writer at a
time).

They are OS locks (filelock: `fcntl.flock` on POSIX, `msvcrt.locking` on Windows) on files in the
user's state folder (platformdirs), so the system releases them when their process ends, even by
`kill -9`: no pid file to go stale. A small JSON note beside each lock names its holder, for the
messages only. These locks only tell one machine's runs about each other (and `--wait` orders
them); they guarantee nothing across machines. What holds everywhere is the server's: its
idempotency keys keep two runs from making one contact twice; they do not keep one run from
overwriting or deleting what another writes (each run's verification reports that).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from filelock import Timeout, UnixFileLock, WindowsFileLock

from .errors import InputError

POLL_SECONDS = 0.2
# The OS lock itself, never filelock's soft (pid-file-like) fallback, which a kill -9 leaves held.
OsFileLock = WindowsFileLock if sys.platform == "win32" else UnixFileLock


def lock_folder() -> Path:
    """Where the locks live: the user's state folder (e.g. ~/.local/state/bulk-contacts/locks,
    %LOCALAPPDATA%\\bulk-contacts\\locks)."""
    folder = Path(platformdirs.user_state_dir("bulk-contacts", appauthor=False)) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Lock:
    """One OS lock with a note naming its holder."""

    def __init__(self, name: str) -> None:
        folder = lock_folder()
        self.file = OsFileLock(str(folder / f"{name}.lock"))
        self.note = folder / f"{name}.json"

    def try_acquire(self) -> bool:
        try:
            self.file.acquire(timeout=0)
        except Timeout:
            return False
        self._write_note()
        return True

    def acquire(self) -> None:
        self.file.acquire(timeout=-1, poll_interval=POLL_SECONDS)
        self._write_note()

    def release(self) -> None:
        if self.file.is_locked:
            self.file.release()

    def holder(self) -> str:
        """Who holds it, as the note says: "pid 123, since 10:15:02"."""
        try:
            note = json.loads(self.note.read_text(encoding="utf-8"))
            since = time.strftime("%H:%M:%S", time.localtime(float(note["since"])))
            return f"pid {int(note['pid'])}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _write_note(self) -> None:
        with contextlib.suppress(OSError):  # the note is for messages only
            self.note.write_text(
                json.dumps({"pid": os.getpid(), "since": time.time(), "argv": sys.argv[1:2]}),
                encoding="utf-8",
            )


def same_api(url: str) -> str:
    """An API base URL as one API is named however it is written: scheme and host in lower
    case, the host's final dot (`api.chekt.com.`), the scheme's default port and a trailing
    slash left out; any name of this machine (localhost, 127.0.0.1, ::1, ::ffff:127.0.0.1...)
    as `localhost`: on one port they are usually one server (a warning too many costs less
    than two runs writing side by side unwarned)."""
    from .settings import is_loopback

    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    host = "localhost" if is_loopback(host) else host
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}.get(scheme)) else None
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


class DealerLocks:
    """The locks of the dealers a run writes to through one API (`api_url`), taken in order (so
    two runs never wait for each other crosswise). `busy` names the dealers another run held
    when asked. A dealer's lock is its own for each API: a sandbox's dealer 12345 is not the
    production one, and runs against each are independent."""

    def __init__(self, dealers: Iterable[int], api_url: str) -> None:
        self.api_url = api_url
        api = hashlib.sha256(same_api(api_url).encode()).hexdigest()[:16]
        self.locks = {dealer: Lock(f"dealer-{dealer}-api-{api}") for dealer in sorted(set(dealers))}
        self.busy: dict[int, str] = {}

    def acquire(self, wait: bool, tell: Callable[[str], None]) -> DealerLocks:
        """Take each lock. One held by another run: with `wait`, say so and wait for it;
        without, warn and go on without it."""
        for dealer, lock in self.locks.items():
            if lock.try_acquire():
                continue
            holder = lock.holder()
            self.busy[dealer] = holder
            if wait:
                tell(
                    f"another bulk-contacts run writes to dealer {dealer} at {self.api_url} "
                    f"({holder}): waiting"
                )
                lock.acquire()
            else:
                tell(
                    f"warning: another bulk-contacts run writes to dealer {dealer} at "
                    f"{self.api_url} ({holder}); "
                    f"going on at the same time: the two cannot make a contact twice (the "
                    f"server's idempotency keys), but one may overwrite or delete what the other "
                    f"writes, and each run verifies its own changes only; to run after it "
                    f"instead, wait for it"
                )
        return self

    def release(self) -> None:
        for lock in self.locks.values():
            lock.release()

    def __enter__(self) -> DealerLocks:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


@contextlib.contextmanager
def hold_journal(
    path: Path,
    wait: bool = False,
    tell: Callable[[str], None] | None = None,
    busy: Callable[[str], Exception] | None = None,
) -> Iterator[None]:
    """One writer per journal: a journal another process is writing is refused (`busy` makes
    the error from the holder's description), or with `wait`, waited for."""
    # one file, one lock: on Windows J.jsonl and j.jsonl, C:\\ and c:\\ are the same file
    digest = hashlib.sha256(os.path.normcase(str(path.resolve())).encode()).hexdigest()[:20]
    lock = Lock(f"journal-{digest}")
    if not lock.try_acquire():
        holder = lock.holder()
        if not wait:
            if busy is not None:
                raise busy(holder)
            raise InputError(
                f"the journal {path} is being written by another run ({holder}); choose "
                f"another path, or wait for that run to end",
                setting="journal",
            )
        if tell is not None:
            tell(f"the journal {path} is being written by another run ({holder}): waiting")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
