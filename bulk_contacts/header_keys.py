"""Headers as the reader knows them (`columns.header_key` compares them), and the one rule
that says a row is a roster's header: it names at least two roster columns, not only site
columns.

The rule finds the header row of a sheet (`layouts.header_row`) and the sheets that look like
rosters (`site_layouts.read_layout`, `--all-sheets` and the `other_sheets` warning). No pandas
here: the sheets are looked at in a thread while pandas loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .columns import (
    ALIAS_KEYS,
    FULL_NAME,
    FULL_NAME_ALIASES,
    NUMBERED_PHONE,
    PHONE_COLUMN_ORDER,
    SITE_COLUMNS,
    SITE_NAME_COLUMNS,
    header_key,
)

__all__ = [
    "ALIAS_KEYS",
    "FULL_NAME_KEYS",
    "HEADER_SEARCH_ROWS",
    "custom_keys",
    "header_key",
    "names_roster_columns",
    "phone_rank",
]

HEADER_SEARCH_ROWS = 30  # the header is looked for in the sheet's first rows


_key = header_key
FULL_NAME_KEYS = frozenset(_key(alias) for alias in (FULL_NAME, *FULL_NAME_ALIASES))
SITE_NAMES = frozenset((*SITE_COLUMNS, *SITE_NAME_COLUMNS))

PHONE_RANKS: dict[str, float] = {
    _key(alias): float(rank)
    for rank, (_, aliases) in enumerate(PHONE_COLUMN_ORDER)
    for alias in aliases
}
NUMBERED_RANK = float(
    next(i for i, (kind, _) in enumerate(PHONE_COLUMN_ORDER) if kind == "numbered")
)
_NUMBERED = re.compile(NUMBERED_PHONE)
OTHER_RANK = float(len(PHONE_COLUMN_ORDER))
_PHONE_WORD = re.compile(r"(?<![a-z])(?:tele?phone|cellphone|phone|mobile|cell|tel)(?![a-z])")
# "Phone 1 - Type", "Phone (not sent)" (a column `serve` was told not to send): no numbers
_NOT_A_NUMBER = (
    "type",
    "label",
    "ext",
    "extension",
    "notes",
    "note",
    "carrier",
    "provider",
    "notsent",
)


def phone_rank(key: str, header: str = "") -> float | None:
    """Where a phone column comes in the default order (lower first); None: not a phone."""
    rank = PHONE_RANKS.get(key)
    if rank is not None:
        return rank
    numbered = _NUMBERED.fullmatch(key)
    if numbered:
        return NUMBERED_RANK + int(numbered.group(1)) / 100
    if _PHONE_WORD.search(header.casefold()) and not key.endswith(_NOT_A_NUMBER):
        return OTHER_RANK  # "Emergency Phone", "Evening Tel": a phone, after the known ones
    return None


def column_named(header: object, custom: Mapping[str, str]) -> str | None:
    """The roster column a header names: `--map`'s (`custom`, by header key), an alias, a whole
    name (full_name) or one of several phones (phone_number); None if it names none."""
    if not isinstance(header, str):
        return None
    key = _key(header)
    if not key:
        return None
    name = custom.get(key) or ALIAS_KEYS.get(key)
    if name is None and key in FULL_NAME_KEYS:
        name = FULL_NAME
    if name is None and phone_rank(key, header) is not None:
        name = "phone_number"
    return name


def roster_columns_named(cells: Iterable[object], custom: Mapping[str, str]) -> set[str]:
    """The roster columns a row's cells name (several phone columns are one: phone_number)."""
    return {name for cell in cells if (name := column_named(cell, custom)) is not None}


def names_roster_columns(cells: Iterable[object], custom: Mapping[str, str]) -> bool:
    """The one rule for a roster's header: the row names at least two roster columns, not only
    site columns (an export's Sites sheet names three site columns and no person). `Name |
    Phone` is one (a whole name and a phone)."""
    named = roster_columns_named(cells, custom)
    return len(named) >= 2 and bool(named - SITE_NAMES)


def custom_keys(column_map: Mapping[str, str]) -> dict[str, str]:
    """`--map`'s headers by their keys, as `custom` above takes them."""
    return {_key(header): name for header, name in column_map.items()}
