"""Where the web interface sends its requests: an embedded sandbox seeded with the sample data,
or CHeKT as the environment's settings (CHEKT_*) say, with non-secret settings changed in the
page. A secret typed in the page stays in this process's memory; nothing here is ever rendered
into a page but the API URL, the dealer and the kind of credentials.

`check_connection` is the one place that tests a connection (token, site list, timings); the
`check` command of the profiles work is meant to replace it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import ChektClient
from ..errors import BulkContactsError
from ..runlog import RunLog
from ..samples import write_samples
from ..settings import Settings, resolve_settings


class TrafficLog(RunLog):
    """Counts the answers that told us to slow down (429), for the live progress; writes
    nothing (a RunLog without a file)."""

    def __init__(self) -> None:
        super().__init__()
        self.rate_limited = 0

    def exchange(self, *, values: dict[str, Any] | None = None, **entry: Any) -> None:
        if entry.get("status") == 429:
            self.rate_limited += 1
        super().exchange(values=values, **entry)


class PacerCounter:
    """Wraps the client's pacer to count the requests it held back (the server's advertised
    limit, or a pause after a 429)."""

    def __init__(self, pacer: Any) -> None:
        self._pacer = pacer
        self.waits = 0

    def wait_turn(self) -> float:
        waited = self._pacer.wait_turn()
        if waited > 0:
            self.waits += 1
        return waited

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pacer, name)


@dataclass
class Connection:
    kind: str  # "sandbox" or "settings"
    settings: Settings
    client: ChektClient
    log: TrafficLog
    pacer: PacerCounter
    samples: dict[str, Path] = field(default_factory=dict)
    sandbox: Any = None  # the SandboxServer started for it

    @property
    def description(self) -> str:
        where = "the embedded sandbox" if self.kind == "sandbox" else "CHeKT"
        return f"{where} at {self.settings.api_url}"

    def close(self) -> None:
        self.client.close()
        if self.sandbox is not None:
            self.sandbox.stop()


def open_connection(kind: str, settings: Settings, **extra: Any) -> Connection:
    log = TrafficLog()
    client = ChektClient(settings, log=log)
    pacer = PacerCounter(client.pacer)
    client.pacer = pacer  # type: ignore[assignment]  # same interface, counted
    return Connection(kind, settings, client, log, pacer, **extra)


def sandbox_connection(folder: Path) -> Connection:
    """A sandbox on a free 127.0.0.1 port, its database in `folder`, seeded with the sample data
    (as `bulk-contacts demo` does); its own public rehearsal credentials."""
    from ..sandbox import SandboxConfig, SandboxServer

    folder.mkdir(parents=True, exist_ok=True)
    samples = write_samples(folder / "sample_data")
    config = SandboxConfig(port=0, db=folder / "sandbox.db", seed=samples["sandbox-seed.json"])
    server = SandboxServer(config).start()
    env = {
        "CHEKT_API_URL": server.url,
        "CHEKT_CLIENT_ID": config.client_id,
        "CHEKT_CLIENT_SECRET": config.client_secret,
        "CHEKT_DEALER_ID": str(config.dealers[0]),
    }
    try:
        settings = resolve_settings(env=env)
    except BulkContactsError:
        server.stop()
        raise
    return open_connection("sandbox", settings, samples=samples, sandbox=server)


def settings_connection(
    overrides: Mapping[str, str], secret: str | None, env: Mapping[str, str] | None = None
) -> Connection:
    """CHEKT_* from the environment, with the page's non-secret fields (API URL, token URL,
    dealer, client id) over them, and a secret typed in the page, if any, over
    CHEKT_CLIENT_SECRET. The same `resolve_settings` as the CLI decides, and says what is
    missing."""
    merged = dict(os.environ if env is None else env)
    merged.update({name: value for name, value in overrides.items() if value})
    if secret:
        merged["CHEKT_CLIENT_SECRET"] = secret
        merged.pop("CHEKT_API_KEY", None)
        merged.pop("CHEKT_PRIVATE_KEY_FILE", None)
    settings = resolve_settings(env=merged, require_dealer=False)
    return open_connection("settings", settings)


@dataclass(frozen=True)
class CheckStep:
    name: str
    ok: bool
    seconds: float
    detail: str


def check_connection(connection: Connection) -> list[CheckStep]:
    """Can we work? An access token, then the dealer's site list; each step timed. Stops at
    the first failure, whose message names what to fix."""
    client, dealer = connection.client, connection.settings.dealer_id
    steps = [_timed("access token", lambda: _token_detail(client))]
    if not steps[-1].ok:
        return steps
    if dealer is None:
        return [*steps, CheckStep("site list", False, 0.0, "no dealer id: fill in the dealer")]
    steps.append(_timed("site list", lambda: _sites_detail(client, dealer)))
    return steps


def _token_detail(client: ChektClient) -> str:
    client.tokens.current()
    return f"granted ({client.settings.auth_kind}, {client.settings.token_url})"


def _sites_detail(client: ChektClient, dealer: int) -> str:
    sites = client.list_sites(dealer)
    return f"dealer {dealer}: {len(sites)} site{'s' if len(sites) != 1 else ''}"


def _timed(name: str, step: Callable[[], str]) -> CheckStep:
    started = time.perf_counter()
    try:
        detail = step()
    except BulkContactsError as error:
        return CheckStep(name, False, time.perf_counter() - started, str(error))
    return CheckStep(name, True, time.perf_counter() - started, detail)
