"""Where the web interface sends its requests: an embedded sandbox seeded with the sample data,
or CHeKT as a profile and the environment's settings (CHEKT_*, the working folder's .env) say,
with non-secret settings changed in the page, in the command line's order: the page's fields,
then the environment, then the profile, then the defaults. A secret typed in the page goes to
the keychain under the chosen profile (without a keychain, or without a profile, it stays in
this process's memory); nothing here is ever rendered into a page but the API URL, the dealer
and the kind of credentials.

`check_connection` is the `check` command's check (`check.run_check`): DNS, TCP, TLS, token,
site list, each timed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..check import CheckReport, run_check
from ..client import ChektClient
from ..errors import BulkContactsError
from ..profiles import (
    SECRET_VARIABLE,
    keychain_problem,
    layered_environ,
    store_secret,
    with_profile,
)
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
    profile: str | None = None  # the settings file's profile it was made with
    secret_note: str = ""  # where a secret typed in the page went

    @property
    def description(self) -> str:
        where = "the embedded sandbox" if self.kind == "sandbox" else "CHeKT"
        profile = f" (profile {self.profile})" if self.profile else ""
        return f"{where} at {self.settings.api_url}{profile}"

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
    overrides: Mapping[str, str],
    secret: str | None,
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> Connection:
    """The page's non-secret fields (API URL, token URL, dealer, client id) over CHEKT_* from
    the environment (with the working folder's .env beneath it), over `profile`'s settings and
    its keychain secret. A secret typed in the page goes to the keychain under `profile`, when
    there are both; otherwise it stays in memory. The same `resolve_settings` as the CLI
    decides, and says what is missing."""
    base = layered_environ(os.environ) if env is None else dict(env)
    note = ""
    if secret and profile:
        note = _keep_secret(profile, secret, overrides, base)
    layered = with_profile(base, profile or None)
    merged = dict(layered.environ)
    merged.update({name: value for name, value in overrides.items() if value})
    if secret:
        merged["CHEKT_CLIENT_SECRET"] = secret
        merged.pop("CHEKT_API_KEY", None)
        merged.pop("CHEKT_PRIVATE_KEY_FILE", None)
        note = note or "the secret stays in this program's memory until serve stops"
    settings = resolve_settings(env=merged, require_dealer=False)
    connection = open_connection("settings", settings, profile=profile or None)
    connection.secret_note = note
    return connection


def _keep_secret(
    profile: str, secret: str, overrides: Mapping[str, str], env: Mapping[str, str]
) -> str:
    """Store a typed secret under `profile` in the keychain; where it went, in words."""
    from ..profiles import find_profile

    chosen = find_profile(profile)
    if chosen.auth not in SECRET_VARIABLE:
        return "profile signs with a key file: the typed secret was used for this session only"
    other_client = overrides.get("CHEKT_CLIENT_ID") or env.get("CHEKT_CLIENT_ID")
    if chosen.client_id and other_client and other_client != chosen.client_id:
        return (
            f"the client id is not profile {profile}'s: the secret stays in this program's "
            f"memory, not in the keychain"
        )
    problem = keychain_problem()
    if problem:
        return f"{problem}: the secret stays in this program's memory until serve stops"
    store_secret(profile, secret)
    return f"the secret was stored in the keychain for profile {profile}"


def check_connection(connection: Connection) -> CheckReport:
    """The `check` command's steps (DNS, TCP, TLS, token, site list), each timed; stops at the
    first failure, whose message names what to fix."""
    return run_check(connection.settings, connection.client)
