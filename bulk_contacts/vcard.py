"""vCard files (.vcf, from Apple Contacts, Outlook, Google, phones) as a roster: one row per card,
under the headers of a contacts export, which the reader knows (`layouts`).

Each card's structured name (N) gives the first name (given and middle names) and the last name
(family name and suffix); its numbers go to Mobile, Home, Business or Other Phone by their TYPE
(a second number of one type joins the first as "a ::: b", as Google's exports write it, so it
is listed as not sent); its first e-mail is the e-mail, a second one and the NOTE are columns
CHeKT has no field for. Row 2 is the first card (row 1 is the header the cards are given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InputError

VCARD_HEADER = [
    "First Name",
    "Last Name",
    "Mobile Phone",
    "Home Phone",
    "Business Phone",
    "Other Phone",
    "E-mail Address",
    "E-mail 2 Address",
    "Notes",
]
PHONE_TYPES = (
    ("Mobile Phone", ("cell", "mobile", "iphone")),
    ("Home Phone", ("home",)),
    ("Business Phone", ("work",)),
)


def vcard_rows(text: str, path: Path) -> list[list[Any]]:
    """The header, then one row per card. InputError naming the card that cannot be read."""
    import vobject

    rows: list[list[Any]] = [list(VCARD_HEADER)]
    try:
        for card in vobject.readComponents(text, ignoreUnreadable=True):
            rows.append(_card_row(card))
    except Exception as error:  # vobject raises ParseError, ValueError... on a damaged card
        raise InputError(
            f"{path}: card {len(rows)} (row {len(rows) + 1}) cannot be read as a vCard "
            f"({type(error).__name__}: {str(error)[:120]}); export the contacts again"
        ) from None
    if len(rows) == 1:
        raise InputError(f"{path}: a vCard file with no card (BEGIN:VCARD ... END:VCARD)")
    return rows


def _values(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, []))


def _card_row(card: Any) -> list[Any]:
    first = last = ""
    names = _values(card, "n")
    if names and names[0].value is not None:
        n = names[0].value
        first = " ".join(_parts(n.given) + _parts(n.additional))
        last = " ".join(_parts(n.family) + _parts(n.suffix))
    if not first and not last:
        shown = _values(card, "fn")
        first = str(shown[0].value).strip() if shown else ""
    phones: dict[str, list[str]] = {}
    for tel in _values(card, "tel"):
        phones.setdefault(_phone_column(tel), []).append(str(tel.value).strip())
    emails = [str(e.value).strip() for e in _values(card, "email")]
    notes = " ".join(str(n.value).strip() for n in _values(card, "note"))
    return [
        first,
        last,
        *(" ::: ".join(phones.get(column, [])) for column in VCARD_HEADER[2:6]),
        emails[0] if emails else "",
        " ::: ".join(emails[1:]),
        notes,
    ]


def _parts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if v and str(v).strip()]


def _phone_column(tel: Any) -> str:
    kinds = {str(t).casefold() for t in tel.params.get("TYPE", [])}
    kinds |= {str(t).casefold() for t in getattr(tel, "singletonparams", [])}
    for column, names in PHONE_TYPES:
        if kinds & set(names):
            return column
    return "Other Phone"
