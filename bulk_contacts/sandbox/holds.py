"""A hold on the sandbox's requests (its writes, by default): the first `after` pass, the next
ones wait at the door until released. A test stops a run at a point it knows (so many writes
made, so many in flight) instead of guessing it from the time that passed:
`SandboxServer.hold_writes` and `hold_reads`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from ..errors import SandboxError

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READS = frozenset({"GET", "HEAD"})


class WriteHold:
    """Counts the requests under /partner/ of the given methods (the writes: POST, PUT, PATCH,
    DELETE) the sandbox receives; those after the first `after` wait, before anything of
    theirs is done, until `release()`.

    The test's thread waits with `wait_held`; the sandbox's event loop with `enter`."""

    def __init__(self, after: int, methods: frozenset[str] = WRITES) -> None:
        if after < 0:
            raise SandboxError(f"after must not be negative, got {after}", setting="after")
        self.after, self.methods = after, methods
        self._changed = threading.Condition()
        self._received = 0
        self._held = 0
        self._released = False
        self._delay = 0.0
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def received(self) -> int:
        """Requests of its methods received since the hold was set, held or not."""
        with self._changed:
            return self._received

    @property
    def held(self) -> int:
        """Requests that have waited at the door so far (they stay counted once released)."""
        with self._changed:
            return self._held

    async def enter(self) -> None:
        """One request of its methods arrives: pass at once, or wait until released."""
        with self._changed:
            self._received += 1
            if self._released or self._received <= self.after:
                self._changed.notify_all()
                return
            opened = asyncio.Event()
            self._waiting.append((asyncio.get_running_loop(), opened))
            self._held += 1
            self._changed.notify_all()
        await opened.wait()
        if self._delay:
            await asyncio.sleep(self._delay)

    def wait_received(self, count: int, timeout: float = 30) -> None:
        """Until `count` requests have arrived (held or passed); a hang fails after `timeout`."""
        self._wait(lambda: self._received >= count, timeout, f"{count} requests to arrive")

    def wait_held(self, count: int = 1, timeout: float = 30) -> None:
        """Until `count` requests wait at the door; a hang fails after `timeout`."""
        self._wait(lambda: self._held >= count, timeout, f"{count} requests to be held")

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(condition, timeout):
                raise SandboxError(
                    f"waited {timeout} s for {what}: {self._received} received, {self._held} held"
                )

    def release(self, delay: float = 0.0, later: bool = True) -> None:
        """Let the held requests through, and every later one; `delay`: the held ones go on
        that many seconds from now (writes in flight that land later). `later=False`: only
        those held now go on, the next ones are held again (one step at a time)."""
        with self._changed:
            self._released, self._delay = later, delay
            waiting, self._waiting = self._waiting, []
        for loop, opened in waiting:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(opened.set)
