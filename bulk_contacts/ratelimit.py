"""A token bucket: the client paces its requests with it, the sandbox enforces a limit with it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from . import retries


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up. Thread-safe.

    `reserve()` takes a token and returns how long the caller must wait before using it, so
    callers queue fairly; `try_take()` takes one only if it is there now (a server's check).
    """

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate and a capacity of at least 1")
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self) -> bool:
        with self._lock:
            self._refill(self.clock())
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def reserve(self) -> float:
        with self._lock:
            self._refill(self.clock())
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    @property
    def remaining(self) -> int:
        with self._lock:
            self._refill(self.clock())
            return max(0, math.floor(self._tokens))

    def seconds_until(self, tokens: float) -> float:
        """How long until the bucket holds `tokens` (capped at its capacity)."""
        with self._lock:
            self._refill(self.clock())
            missing = min(tokens, self.capacity) - self._tokens
            return max(0.0, missing / self.rate)


class Pacer:
    """Paces every request of one client: its own bucket (`--rate`), and the server's word.

    Until the first answer arrives, one request goes alone (a probe), so that a server's limit is
    known before the workers fan out. When the server says `X-RateLimit-Remaining: 0`, or
    answers 429 with `Retry-After`, every worker waits until then instead of each finding out
    with a 429 of its own. When the server
    advertises a limit (`X-RateLimit-Limit`, per minute) slower than our own pace, we adopt it.

    Time is a parameter: `clock` (monotonic seconds) runs the bucket and the pauses, `wall` (Unix
    time) reads `X-RateLimit-Reset`, and `sleep` waits; by default it waits through
    `retries.sleep`, which `retries.set_testing()` turns off.
    """

    def __init__(
        self,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock, self.wall = clock, wall
        self.sleep = sleep or _testable_sleep
        self.bucket = TokenBucket(rate, max(1.0, rate / 10), clock) if rate else None
        self._paused_until = 0.0
        self._advertised: int | None = None
        self._lock = threading.Lock()
        self._probing = False
        self._answered = threading.Event()

    def wait_turn(self) -> float:
        """Block until this request may go; returns how long it waited."""
        waited = 0.0
        if not self._answered.is_set():
            with self._lock:
                probe, self._probing = not self._probing, True
            if not probe:
                self._answered.wait(timeout=60)
        with self._lock:
            pause = self._paused_until - self.clock()
        if pause > 0:
            self.sleep(pause)
            waited += pause
        if self.bucket is not None:
            delay = self.bucket.reserve()
            if delay > 0:
                self.sleep(delay)
                waited += delay
        return waited

    def answered(self) -> None:
        """A request has finished (answered or not): the probe's wait is over."""
        self._answered.set()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def observe(self, limit: str | None, remaining: str | None, reset: str | None) -> None:
        """Learn from a response's X-RateLimit-* headers."""
        if limit and limit.strip().isdigit():
            self._adopt(int(limit))
        if remaining is not None and remaining.strip() == "0" and reset:
            try:
                until = float(reset) - self.wall()
            except ValueError:
                return
            if 0 < until < 3600:
                self.pause(until)

    def _adopt(self, per_minute: int) -> None:
        with self._lock:
            if per_minute == self._advertised or per_minute < 1:
                return
            self._advertised = per_minute
            rate = per_minute / 60
            if self.bucket is None or rate < self.bucket.rate:
                # Smooth pacing at the advertised rate: the server's own burst allowance then
                # absorbs network jitter, and the bucket never runs dry.
                self.bucket = TokenBucket(rate, 1, self.clock)


def _testable_sleep(seconds: float) -> None:
    """`retries.sleep`, looked up when called (so `set_testing` and a test's stand-in apply)."""
    retries.sleep(seconds)
