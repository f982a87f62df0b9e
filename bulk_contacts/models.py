"""Typed values that cross the library's surface: sites and contacts as CHeKT holds them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .columns import CONTACT_FIELDS

SiteKey = tuple[int, int]  # (dealer_id, site_id): a site, wherever the tool names one


def parse_timestamp(value: Any) -> datetime | None:
    """Both documented forms: `2021-07-01T00:00:00.000Z` and `2025-01-01 00:00:00` (UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


@dataclass(frozen=True)
class Contact:
    """A site contact as CHeKT returns it. `external_contact_id` is None for portal contacts."""

    contact_id: int
    first_name: str
    last_name: str
    external_contact_id: str | None = None
    phone_number: str | None = None
    email: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Contact:
        return cls(
            contact_id=int(data["contact_id"]),
            external_contact_id=_text(data.get("external_contact_id")) or None,
            first_name=_text(data.get("first_name")) or "",
            last_name=_text(data.get("last_name")) or "",
            phone_number=_text(data.get("phone_number")),
            email=_text(data.get("email")),
            created_at=parse_timestamp(data.get("created_at")),
        )

    @property
    def managed(self) -> bool:
        """Made through the API with an external id; portal contacts are unmanaged."""
        return bool(self.external_contact_id)

    def fields(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in CONTACT_FIELDS}


@dataclass(frozen=True)
class Site:
    site_id: int
    name: str | None = None
    external_site_id: str | None = None
    account_number: str | None = None
    timezone: str | None = None
    monitoring_station_id: int | None = None
    external_monitoring_station_id: str | None = None
    address1: str | None = None
    address2: str | None = None
    is_activated: bool = True
    created_at: datetime | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Site:
        return cls(
            site_id=int(data["site_id"]),
            name=_text(data.get("name")),
            external_site_id=_text(data.get("external_site_id")),
            account_number=_text(data.get("account_number")),
            timezone=_text(data.get("timezone")),
            monitoring_station_id=_number(data.get("monitoring_station_id")),
            external_monitoring_station_id=_text(data.get("external_monitoring_station_id")),
            address1=_text(data.get("address1")),
            address2=_text(data.get("address2")),
            is_activated=bool(_number(data.get("is_activated", 1))),
            created_at=parse_timestamp(data.get("created_at")),
        )


@dataclass(frozen=True)
class NewContact:
    """What a create sends. Optional fields left as None are not sent."""

    external_contact_id: str
    first_name: str
    last_name: str
    phone_number: str | None = None
    email: str | None = None

    def payload(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Exchange:
    """The outcome of one API call as a results file records it."""

    http_status: int | None
    trace_id: str | None
    request_id: str | None = None
    attempts: int = 1
    recovered: bool = False  # the answer was lost and the result was found by looking it up
    note: str = ""
    generation: int = 0  # of the idempotency key the answer came under
    # The change was made by another run (its answer, under the same idempotency key, was
    # replayed to this one, which never sent a write that could have made it): not this run's.
    by_another_run: bool = False


@dataclass(frozen=True)
class WriteResult:
    """A write's outcome: the contact as it now is (None after a delete) and how it went."""

    contact: Contact | None
    exchange: Exchange = field(default_factory=lambda: Exchange(None, None))
