"""The sandbox's settings: who may call it, what it holds, and which faults it injects."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SandboxError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # the sandbox's public, documented rehearsal secret
DEFAULT_DEALER = 12345
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an SQLite INTEGER holds
MAX_BODY_BYTES = 2**20  # 1 MB: a contact's JSON is a few hundred bytes
BODY_TIMEOUT = 5.0  # seconds to wait for the rest of a request body


@dataclass(frozen=True)
class Faults:
    """Per-request fault probabilities and delays, drawn from one seeded generator."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    ack_loss_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "ack_loss_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SandboxError(f"{name} must be between 0 and 1, got {value}", setting=name)
        if self.error_rate + self.drop_rate > 1.0:
            raise SandboxError(
                "error_rate and drop_rate together must not exceed 1", setting="error_rate"
            )
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise SandboxError(
                "latency_ms and jitter_ms must not be negative", setting="latency_ms"
            )

    @property
    def any(self) -> bool:
        return bool(
            self.latency_ms
            or self.jitter_ms
            or self.error_rate
            or self.drop_rate
            or self.ack_loss_rate
        )


@dataclass(frozen=True)
class SandboxConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: Path | None = None
    seed: Path | None = None
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    dealers: tuple[int, ...] = (DEFAULT_DEALER,)
    client_public_key: Path | None = None
    token_ttl: int = 3600
    rate_limit: int | None = None  # requests per minute per client; None: unlimited
    burst: int | None = None
    faults: Faults = field(default_factory=Faults)
    request_log: Path | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout: float = BODY_TIMEOUT
    mark_replays: bool = True  # False: replays carry no Idempotency-Replayed (as some servers)
    # The rate limit's time: its bucket (monotonic seconds) and X-RateLimit-Reset (Unix time).
    # A test gives the client's injected clock here too, so the limit and the pacing share one.
    limit_clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    limit_wall: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        for dealer in self.dealers:
            if not 1 <= dealer <= INT64_MAX:
                raise SandboxError(
                    f"dealer id {dealer}: a dealer id is between 1 and {INT64_MAX}",
                    setting="dealers",
                )
        if self.max_body_bytes < 1 or self.body_timeout <= 0:
            raise SandboxError("max_body_bytes and body_timeout must be positive")
        if self.token_ttl < 1:
            raise SandboxError("token_ttl must be at least 1 second", setting="token_ttl")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise SandboxError(
                "rate_limit must be at least 1 request per minute", setting="rate_limit"
            )
        if self.burst is not None and self.burst < 1:
            raise SandboxError("burst must be at least 1", setting="burst")

    @property
    def bucket_capacity(self) -> int:
        """Burst size; without `burst`, one second's worth of the limit."""
        if self.burst is not None:
            return self.burst
        return max(1, -(-(self.rate_limit or 60) // 60))
