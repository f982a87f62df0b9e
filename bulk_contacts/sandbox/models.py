"""Request and response bodies of the emulated Partner API, as CHeKT's API reference documents
them (its contacts part is kept in tests/data/contacts-api-reference.txt, which the tests check
the sandbox against).

They drive both validation and `/openapi.json`. Strings are strict (a number is not a name) and
unknown fields are refused, as a careful server would.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ..columns import BY_NAME
from .config import INT64_MAX, INT64_MIN

# What an SQLite INTEGER holds: a larger number would fail in the database (a 500), so it is a 422
# naming the field instead.
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
Id = Annotated[StrictInt, Field(ge=1, le=INT64_MAX)]
TEXT_LIMIT = 255  # the sites' text fields
NonBlank = Annotated[StrictStr, Field(min_length=1, max_length=TEXT_LIMIT, pattern=r"\S")]
OptionalText = Annotated[StrictStr, Field(max_length=TEXT_LIMIT)]
# A contact's fields hold what the roster's columns allow (`columns.Column.max_length`).
ExternalId = Annotated[
    StrictStr,
    Field(min_length=1, max_length=BY_NAME["external_contact_id"].max_length, pattern=r"\S"),
]
FirstName = Annotated[
    StrictStr, Field(min_length=1, max_length=BY_NAME["first_name"].max_length, pattern=r"\S")
]
LastName = Annotated[
    StrictStr, Field(min_length=1, max_length=BY_NAME["last_name"].max_length, pattern=r"\S")
]
Phone = Annotated[StrictStr, Field(max_length=BY_NAME["phone_number"].max_length)]
Email = Annotated[StrictStr, Field(max_length=BY_NAME["email"].max_length)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["permission_denied"])
    message: str
    request_id: str = Field(examples=["req_3f2a9c1e0b7d4a65"])
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactCreate(Strict):
    external_contact_id: ExternalId
    first_name: FirstName
    last_name: LastName
    phone_number: Phone | None = None
    email: Email | None = None


class ContactUpdate(Strict):
    """Partial update: only the fields sent change. Names may not be cleared (they are required)."""

    first_name: FirstName = None  # type: ignore[assignment]  # absent: not sent, not cleared
    last_name: LastName = None  # type: ignore[assignment]  # absent: not sent, not cleared
    phone_number: Phone | None = None
    email: Email | None = None


class Contact(BaseModel):
    contact_id: int = Field(examples=[1])
    external_contact_id: str | None = Field(
        examples=["1234"], description="Empty for contacts made in the CHeKT portal."
    )
    first_name: str
    last_name: str
    phone_number: str | None
    email: str | None
    created_at: str = Field(examples=["2021-07-01T00:00:00.000Z"])


class SiteCreate(Strict):
    external_site_id: NonBlank
    name: NonBlank
    timezone: NonBlank
    account_number: OptionalText | None = None
    monitoring_station_id: Int64 | None = None
    external_monitoring_station_id: OptionalText | None = None
    address1: OptionalText | None = None
    address2: OptionalText | None = None


class Site(BaseModel):
    site_id: int
    external_site_id: str | None
    name: str | None
    monitoring_station_id: int | None
    external_monitoring_station_id: str | None
    account_number: str | None
    address1: str | None
    address2: str | None
    timezone: str | None
    is_activated: int = Field(examples=[1], description="0 or 1")
    created_at: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int
