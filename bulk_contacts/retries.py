"""When and how long to wait before trying a request again: one policy, one place.

`set_testing(True)` makes every policy skip its sleeps (as stamina does), so tests of retry
paths run instantly; the waits they would have made are still counted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

_testing = False


def set_testing(on: bool = True) -> None:
    global _testing
    _testing = on


def sleep(seconds: float) -> None:
    if seconds > 0 and not _testing:
        time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by total waiting time."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 120.0
    jitter: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): full-range jitter over
        the upper half, so parallel workers do not retry in lockstep."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * (0.5 + self.jitter.random() / 2)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Honour the server's Retry-After when it gives one, else back off."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        return self.backoff(attempt)

    def allows(self, attempt: int, waited: float, next_wait: float) -> bool:
        return attempt < self.max_attempts and waited + next_wait <= self.max_total_wait
