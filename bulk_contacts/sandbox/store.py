"""The sandbox's state, kept in SQLite: dealers, sites, contacts, tokens and idempotency records.

All access happens on the server's event loop thread, one statement at a time, so a request's
read-check-write sequence is atomic without further locking.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS dealers (dealer_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sites (
    site_id INTEGER PRIMARY KEY AUTOINCREMENT,
    dealer_id INTEGER NOT NULL REFERENCES dealers(dealer_id),
    external_site_id TEXT,
    name TEXT,
    monitoring_station_id INTEGER,
    external_monitoring_station_id TEXT,
    account_number TEXT,
    address1 TEXT,
    address2 TEXT,
    timezone TEXT,
    is_activated INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sites_by_dealer ON sites(dealer_id);
CREATE TABLE IF NOT EXISTS contacts (
    contact_id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites(site_id),
    external_contact_id TEXT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone_number TEXT,
    email TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_by_site ON contacts(site_id);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS assertion_ids (jti TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    client_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT,
    expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, endpoint, key)
);
"""

SITE_FIELDS = (
    "site_id",
    "external_site_id",
    "name",
    "monitoring_station_id",
    "external_monitoring_station_id",
    "account_number",
    "address1",
    "address2",
    "timezone",
    "is_activated",
    "created_at",
)
STORED_CONTACT_FIELDS = ("contact_id", *columns.CONTACT_FIELDS, "created_at")
IDEMPOTENCY_TTL = 24 * 3600


def timestamp(now: float | None = None) -> str:
    """CHeKT's timestamp form: `2021-07-01T00:00:00.000Z`."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def token_digest(token: str) -> str:
    """Tokens are kept hashed: the database file never holds a usable bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """SQLite-backed state. `path=None` keeps everything in memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if path:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def is_empty(self) -> bool:
        return self.db.execute("SELECT 1 FROM sites LIMIT 1").fetchone() is None

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # dealers and sites
    def ensure_dealer(self, dealer_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO dealers(dealer_id) VALUES (?)", (dealer_id,))

    def list_sites(self, dealer_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {', '.join(SITE_FIELDS)} FROM sites WHERE dealer_id=? ORDER BY site_id",
            (dealer_id,),
        )
        return [dict(row) for row in rows]

    def get_site(self, dealer_id: int, site_id: int) -> dict[str, Any] | None:
        row = self.db.execute(
            f"SELECT {', '.join(SITE_FIELDS)} FROM sites WHERE dealer_id=? AND site_id=?",
            (dealer_id, site_id),
        ).fetchone()
        return dict(row) if row else None

    def create_site(self, dealer_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        self.ensure_dealer(dealer_id)
        values = {key: fields.get(key) for key in SITE_FIELDS if key in fields}
        values.setdefault("is_activated", 1)
        values.setdefault("created_at", timestamp())
        values["dealer_id"] = dealer_id
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.db.execute(
            f"INSERT INTO sites ({columns}) VALUES ({marks})", tuple(values.values())
        )
        site = self.get_site(dealer_id, int(cursor.lastrowid or 0))
        assert site is not None
        return site

    # contacts
    def list_contacts(self, site_id: int) -> list[dict[str, Any]]:
        fields = ", ".join(STORED_CONTACT_FIELDS)
        rows = self.db.execute(
            f"SELECT {fields} FROM contacts WHERE site_id=? ORDER BY contact_id", (site_id,)
        )
        return [dict(row) for row in rows]

    def get_contact(self, site_id: int, contact_id: int) -> dict[str, Any] | None:
        fields = ", ".join(STORED_CONTACT_FIELDS)
        row = self.db.execute(
            f"SELECT {fields} FROM contacts WHERE site_id=? AND contact_id=?", (site_id, contact_id)
        ).fetchone()
        return dict(row) if row else None

    def create_contact(self, site_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        values = {key: fields.get(key) for key in STORED_CONTACT_FIELDS if key in fields}
        values.setdefault("created_at", timestamp())
        values["site_id"] = site_id
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.db.execute(
            f"INSERT INTO contacts ({columns}) VALUES ({marks})", tuple(values.values())
        )
        contact = self.get_contact(site_id, int(cursor.lastrowid or 0))
        assert contact is not None
        return contact

    def update_contact(
        self, site_id: int, contact_id: int, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        if fields:
            assignments = ", ".join(f"{key}=?" for key in fields)
            self.db.execute(
                f"UPDATE contacts SET {assignments} WHERE site_id=? AND contact_id=?",
                (*fields.values(), site_id, contact_id),
            )
        return self.get_contact(site_id, contact_id)

    def delete_contact(self, site_id: int, contact_id: int) -> bool:
        cursor = self.db.execute(
            "DELETE FROM contacts WHERE site_id=? AND contact_id=?", (site_id, contact_id)
        )
        return cursor.rowcount > 0

    # tokens and assertions
    def save_token(self, token: str, client_id: str, expires_at: float) -> None:
        self.db.execute(
            "INSERT INTO tokens(token_hash, client_id, expires_at) VALUES (?, ?, ?)",
            (token_digest(token), client_id, expires_at),
        )

    def find_token(self, token: str) -> tuple[str, float] | None:
        row = self.db.execute(
            "SELECT client_id, expires_at FROM tokens WHERE token_hash=?", (token_digest(token),)
        ).fetchone()
        return (row["client_id"], row["expires_at"]) if row else None

    def use_assertion_id(self, jti: str, expires_at: float) -> bool:
        """Record a JWT id; False when it was seen before (a replayed assertion)."""
        now = time.time()
        self.db.execute("DELETE FROM assertion_ids WHERE expires_at < ?", (now,))
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO assertion_ids(jti, expires_at) VALUES (?, ?)",
            (jti, max(expires_at, now)),
        )
        return cursor.rowcount > 0

    # idempotency
    def find_idempotent(
        self, client_id: str, endpoint: str, key: str
    ) -> tuple[str, int, str | None] | None:
        row = self.db.execute(
            "SELECT body_hash, status, response FROM idempotency "
            "WHERE client_id=? AND endpoint=? AND key=? AND expires_at > ?",
            (client_id, endpoint, key, time.time()),
        ).fetchone()
        return (row["body_hash"], row["status"], row["response"]) if row else None

    def save_idempotent(
        self,
        client_id: str,
        endpoint: str,
        key: str,
        body_hash: str,
        status: int,
        response: Any,
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO idempotency"
            "(client_id, endpoint, key, body_hash, status, response, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                client_id,
                endpoint,
                key,
                body_hash,
                status,
                None if response is None else json.dumps(response),
                time.time() + IDEMPOTENCY_TTL,
            ),
        )


class _Transaction:
    """`with store.transaction():` groups statements so a write and its idempotency record
    commit together (what ack-loss relies on: the write is durable before the answer fails)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
