"""What counts as a change: a contact's fields compared once normalized, so that formatting alone
is never a change (the README's reconcile rules, under `plan`). The one rule that the plan,
`apply --refresh` (which re-bases a saved plan), the verification after a run and `rollback`
share.

Each editable field is compared by its column's rule (`columns.Column.compare`): text trimmed and
in Unicode NFC; phone numbers as parsed numbers (as text when they do not parse); e-mail
addresses as email-validator normalizes them (as text when they do not validate), case-folded.
Values are made comparable in one vectorized pass per field, over the distinct values, then
looked up. Other fields (the external id, the key) are compared exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import pandas as pd

from .codes import PHONE_EXTENSION
from .columns import BY_NAME, EDITABLE_FIELDS
from .models import Contact
from .normalize import contains, normalize_emails, normalize_phones, normalize_text, small_texts
from .outputs import TERMINAL_UNSAFE, visible

Record = Mapping[str, Any]  # a contact's fields by name; None or "" for none


@dataclass(frozen=True)
class Comparison:
    """The settings values are normalized with: a plan's --region and --phone-format."""

    region: str = "US"
    phone_format: str = "e164"

    @classmethod
    def of_plan(cls, options: Mapping[str, Any]) -> Comparison:
        """The comparison a plan was made with (its options as saved)."""
        return cls(options.get("region") or "US", options.get("phone_format") or "e164")

    def normalized(self, name: str, values: pd.Series) -> pd.Series:
        """Values as held (in CHeKT, a journal, a plan), made comparable."""
        text = normalize_text(values)
        rule = BY_NAME[name].compare
        if rule == "phone":
            phones, problems = normalize_phones(text, self.region, self.phone_format)
            text = phones.where(problems.isin(["", PHONE_EXTENSION]), text)
        elif rule == "email":
            emails, problems = normalize_emails(text)
            text = emails.where(problems == "", text)
        return comparable(name, text)

    def values(
        self, records: Iterable[Record] = (), contacts: Sequence[Contact] = ()
    ) -> ComparableValues:
        """Every editable value of `records` and `contacts`, made comparable at once, to be
        looked up."""
        held = {name: list(map(attrgetter(name), contacts)) for name in EDITABLE_FIELDS}
        seen = {name: set(values) - {None} | {""} for name, values in held.items()}
        for record in records:
            for name in EDITABLE_FIELDS:
                seen[name].add(record.get(name) or "")
        return ComparableValues(self, seen, contacts, held)


# Any character files and the terminal show escaped (`outputs.visible`), as the characters
# themselves (Arrow's regular expressions read no \u escape).
_SHOWN_ESCAPED = "[" + "".join(map(chr, TERMINAL_UNSAFE)) + "]"
_SHOWN_ESCAPED_PATTERN = re.compile(_SHOWN_ESCAPED)


def _casefold(values: pd.Series) -> pd.Series:
    """`values.str.casefold()` (which pandas does by Python's str.casefold), without pandas'
    call for a small column."""
    texts = small_texts(values)
    if texts is None:
        return values.str.casefold()
    folded = [text.casefold() for text in texts]
    return pd.Series(folded, index=values.index, name=values.name, dtype="str")


def comparable(name: str, normalized: pd.Series) -> pd.Series:
    """Values already normalized as a validated roster's are, made comparable. A value holding
    characters every file the tool writes shows escaped (ESC as `\\x1b`) compares as it is
    shown: CHeKT's `Ann<ESC>` and an export's `Ann\\x1b`, imported back, are the same value."""
    text = _casefold(normalized) if BY_NAME[name].compare == "email" else normalized
    if len(text) and contains(text, _SHOWN_ESCAPED_PATTERN).any():
        text = text.map(visible).astype(text.dtype)
    return text


class ComparableValues:
    """Values of the editable fields and their comparable forms (and the contacts' fields,
    comparable, in EDITABLE_FIELDS order). A value not seen when it was built is made comparable
    when first asked for."""

    def __init__(
        self,
        comparison: Comparison,
        seen: Mapping[str, Iterable[str | None]],
        contacts: Sequence[Contact] = (),
        held: Mapping[str, list[str | None]] | None = None,
    ) -> None:
        self.comparison = comparison
        self._forms: dict[str, dict[str | None, str]] = {}
        for name, values in seen.items():
            distinct = pd.Series(list(values), dtype="str")
            forms = comparison.normalized(name, distinct)
            self._forms[name] = dict(zip(distinct.tolist(), forms.tolist(), strict=True))
            self._forms[name][None] = self._forms[name][""]  # no value, as CHeKT may write it
        held = held or {}
        columns = [map(self._forms[name].__getitem__, held[name]) for name in held]
        ids = map(attrgetter("contact_id"), contacts)
        self._by_id = dict(zip(ids, zip(*columns, strict=True), strict=False))

    def of(self, name: str, value: str | None) -> str:
        forms = self._forms[name]
        text = value or ""
        if text not in forms:
            one = pd.Series([text], dtype="str")
            forms[text] = self.comparison.normalized(name, one).iloc[0]
        return forms[text]

    def of_contact(self, contact: Contact) -> tuple[str, ...]:
        """A contact's fields, comparable: found by its id among those this was built from."""
        try:
            return self._by_id[contact.contact_id]
        except KeyError:
            return tuple(self.of(name, getattr(contact, name)) for name in EDITABLE_FIELDS)

    def differ(self, one: Record, other: Record, names: Iterable[str]) -> list[str]:
        """The fields of `names` in which two records differ: editable ones once comparable,
        the others exactly (None and "" are both no value)."""
        return [
            name
            for name in names
            if (
                self.of(name, one.get(name)) != self.of(name, other.get(name))
                if name in self._forms
                else (one.get(name) or None) != (other.get(name) or None)
            )
        ]


def digest(external_id: str, compared: Sequence[str], mask: int) -> str:
    """A short digest of what a plan compared for a contact it leaves unchanged: its external id
    and the comparable values (`ComparableValues.compared`) of the fields whose bit is set in
    `mask` (bit i: EDITABLE_FIELDS[i]). The mask comes first, in hex, so that the same fields
    can be compared again (`apply --refresh`); then 48 bits of BLAKE2b."""
    parts = [external_id, *(v if mask >> i & 1 else "" for i, v in enumerate(compared))]
    text = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return f"{mask:x}.{hashlib.blake2b(text, digest_size=6).hexdigest()}"


def digest_mask(digest_text: str) -> int:
    """The fields a `digest` covers."""
    return int(digest_text.split(".", 1)[0], 16)


def compared(values: ComparableValues, contact: Contact, by_name: bool) -> tuple[str, ...]:
    """A contact's editable fields as a plan compares them: comparable (`compare`), and with
    --match-by name, its first and last name as names are matched (`sites.normalize_name`:
    case, accents and spacing aside)."""
    held = values.of_contact(contact)
    if not by_name:
        return held
    from .sites import normalize_name

    return tuple(
        normalize_name(getattr(contact, name) or "") if name in _NAMES else value
        for name, value in zip(EDITABLE_FIELDS, held, strict=True)
    )


_NAMES = ("first_name", "last_name")
