"""Fault injection for the sandbox: latency, server errors, dropped connections and lost answers.

Each request draws its fate from one generator seeded by `--fault-seed`, so a run is reproducible:
the n-th request always meets the same fault.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from enum import Enum

from .config import Faults


class Fate(Enum):
    SERVE = "serve"
    ERROR = "error"  # answered 500 or 503 before anything is done
    DROP = "drop"  # connection closed with no answer, nothing done
    ACK_LOSS = "ack_loss"  # a write is committed, then its answer fails


@dataclass(frozen=True)
class Draw:
    delay: float  # seconds
    fate: Fate
    status: int  # for ERROR and ACK_LOSS: 500 or 503; 0 when ACK_LOSS drops the connection


class FaultPlan:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)
        self._lock = threading.Lock()

    def draw(self, is_write: bool) -> Draw:
        f = self.faults
        with self._lock:
            jitter = self._random.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0
            roll = self._random.random()
            ack_roll = self._random.random()
            pick = self._random.random()
        delay = (f.latency_ms + jitter) / 1000
        if roll < f.error_rate:
            return Draw(delay, Fate.ERROR, 500 if pick < 0.5 else 503)
        if roll < f.error_rate + f.drop_rate:
            return Draw(delay, Fate.DROP, 0)
        if is_write and ack_roll < f.ack_loss_rate:
            return Draw(delay, Fate.ACK_LOSS, 500 if pick < 0.5 else 0)
        return Draw(delay, Fate.SERVE, 0)
