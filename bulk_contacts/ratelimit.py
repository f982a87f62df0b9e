"""A token bucket: the client paces its requests with it, the sandbox enforces a limit with it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


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
