"""Loading a seed file into an empty sandbox database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from ..errors import SeedError
from .models import Id, Int64
from .store import Store

__all__ = ["SeedError", "load_seed", "read_seed"]


class _Seeded(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedContact(_Seeded):
    contact_id: Id | None = None
    external_contact_id: StrictStr | None = None
    first_name: StrictStr = Field(min_length=1)
    last_name: StrictStr = Field(min_length=1)
    phone_number: StrictStr | None = None
    email: StrictStr | None = None
    created_at: StrictStr | None = None


class SeedSite(_Seeded):
    site_id: Id | None = None
    external_site_id: StrictStr | None = None
    name: StrictStr | None = None
    account_number: StrictStr | None = None
    timezone: StrictStr | None = None
    monitoring_station_id: Int64 | None = None
    external_monitoring_station_id: StrictStr | None = None
    address1: StrictStr | None = None
    address2: StrictStr | None = None
    is_activated: Int64 = 1
    created_at: StrictStr | None = None
    contacts: list[SeedContact] = []


class SeedDealer(_Seeded):
    dealer_id: Id
    sites: list[SeedSite] = []


class Seed(_Seeded):
    dealers: list[SeedDealer]


def read_seed(path: Path) -> Seed:
    """A JSON seed file, or an xlsx export made by `bulk-contacts export` (`clone`)."""
    from .clone import is_workbook, seed_from_export

    if is_workbook(path):
        return seed_from_export(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SeedError(f"seed file {path}: cannot be read ({error})") from None
    try:
        return Seed.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise SeedError(
            f"seed file {path}: not valid JSON at line {error.lineno}, column {error.colno}: "
            f"{error.msg}"
        ) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise SeedError(
            f"seed file {path}: {where.lstrip('.') or 'top level'}: {first['msg']} "
            f"(see the seed format in the README)"
        ) from None


def load_seed(store: Store, seed: Seed, path: Path) -> None:
    """Insert the seed's dealers, sites and contacts; given ids are kept, missing ones assigned."""
    if not store.is_empty():
        raise SeedError(f"seed file {path}: the database already holds sites; seed an empty one")
    try:
        with store.transaction():
            for dealer in seed.dealers:
                store.ensure_dealer(dealer.dealer_id)
                for site in dealer.sites:
                    fields = site.model_dump(exclude={"contacts"}, exclude_none=True)
                    created = store.create_site(dealer.dealer_id, fields)
                    for contact in site.contacts:
                        store.create_contact(
                            created["site_id"], contact.model_dump(exclude_none=True)
                        )
    except sqlite3.IntegrityError as error:
        raise SeedError(f"seed file {path}: {error} (is an id given twice?)") from None
