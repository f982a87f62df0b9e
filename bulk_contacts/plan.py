"""The plan: what `apply` would change, as a value.

Reports and apply both consume it; neither recomputes it nor changes it: the guards, a freshness
check and a rebase each return a new plan. It is sorted, serializable (`bulk-contacts-plan/1`),
carries a checksum so an edited plan is refused, and a fingerprint per site of the contact list
it was made from, so a plan applied after CHeKT changed is refused for the sites that changed.
Its refusals are typed values (`guards`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, overload

from .columns import CONTACT_FIELDS, EDITABLE_FIELDS
from .errors import ExitCode, InputError
from .guards import Refusal, refusal_from_dict
from .models import Contact
from .outputs import json_text, open_replacing

PLAN_FORMAT = "bulk-contacts-plan/1"
ACTIONS = ("create", "update", "delete")
SUMMARY_KEYS = ("create", "update", "delete", "unchanged", "conflict", "invalid")


@dataclass(frozen=True)
class PlanOptions:
    """What a plan is made with; the plan keeps them (`Plan.options`), and the guards read
    theirs from them."""

    dealer_id: int | None = None
    region: str = "US"
    phone_format: str = "e164"
    blanks: str = "keep"  # keep: an empty optional cell leaves the field; clear: empties it
    prune: bool = False
    max_deletes: int | None = None  # None: more than 10 and more than 25% of those in scope
    force: bool = False
    allow_empty_sites: bool = False
    skip_invalid: bool = False
    exact_ids: bool = False  # 42 and 0042 are two ids: external ids are never repaired
    repair_ids: bool = False  # use a site (or contact) id that matches one only once repaired
    allow_unreachable: bool = False  # plan contacts with neither phone nor e-mail
    match_by: str | None = None  # "name": a row without its own id matches a contact by name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def loosened_by(self, given: PlanOptions) -> PlanOptions:
        """These options (a saved plan's), with the guards' options of `given` (apply's) going
        further: the guards may be loosened, the options that made the plan cannot change."""
        return replace(
            self,
            force=self.force or given.force,
            allow_empty_sites=self.allow_empty_sites or given.allow_empty_sites,
            max_deletes=self.max_deletes if given.max_deletes is None else given.max_deletes,
        )


# The options that may loosen a saved plan's guards (`PlanOptions.loosened_by`); the others made
# the plan and cannot change it.
GUARD_OPTIONS = ("force", "allow_empty_sites", "max_deletes")


# The keys a change's `after` holds compactly (`Change`), in the order a plan gives them.
_AFTER_KEYS = ("external_contact_id", *EDITABLE_FIELDS)
_after_keys: dict[tuple[str, ...], tuple[str, ...]] = {}  # each key tuple held once
_VALUE_SLOTS = ("_v0", "_v1", "_v2", "_v3", "_v4")
_held_keys = attrgetter("_keys")
_held_values = attrgetter(*_VALUE_SLOTS)


@dataclass(frozen=True, init=False)
class Change:
    # Held compactly: a million creates in a plan cost 160 MB less than with an `after` dict
    # each. `after` is a property giving a new dict each time (nothing changes a plan's dicts);
    # its keys are held once for every change with the same keys, its values in slots.
    __slots__ = (
        "_keys",  # after's keys (a shared tuple), or after itself when its keys are unusual
        "_v0",
        "_v1",
        "_v2",
        "_v3",
        "_v4",
        "action",
        "before",
        "contact_id",
        "dealer_id",
        "external_contact_id",
        "reason",
        "row",
        "site_id",
    )
    action: str  # create, update or delete
    dealer_id: int
    site_id: int
    row: int | None  # the roster row that asked for it; None for a prune
    external_contact_id: str | None
    contact_id: int | None  # None for a create
    # The contact as held (updates and deletes: all its fields; creates: nothing), and what is
    # sent (creates: the new contact; updates: only the fields that change; deletes: nothing).
    before: dict[str, str | None]
    after: dict[str, str | None]
    reason: str  # "roster", "action=delete" or "prune"

    def __init__(
        self,
        action: str,
        dealer_id: int,
        site_id: int,
        row: int | None,
        external_contact_id: str | None,
        contact_id: int | None,
        before: dict[str, str | None] | None = None,
        after: dict[str, str | None] | None = None,
        reason: str = "",
    ) -> None:
        put = object.__setattr__
        put(self, "action", action)
        put(self, "dealer_id", dealer_id)
        put(self, "site_id", site_id)
        put(self, "row", row)
        put(self, "external_contact_id", external_contact_id)
        put(self, "contact_id", contact_id)
        put(self, "before", {} if before is None else before)
        put(self, "reason", reason)
        after = {} if after is None else after
        keys = tuple(after)
        values = list(after.values())
        if _in_order(keys):
            put(self, "_keys", _after_keys.setdefault(keys, keys))
            values += [None] * (len(_AFTER_KEYS) - len(values))
        else:
            put(self, "_keys", dict(after))
            values = [None] * len(_AFTER_KEYS)
        for name, value in zip(_VALUE_SLOTS, values, strict=True):
            put(self, name, value)

    def _after(self) -> dict[str, str | None]:
        keys = _held_keys(self)
        if isinstance(keys, dict):
            return dict(keys)
        return dict(zip(keys, _held_values(self), strict=False))  # the first len(keys)

    def __reduce__(self) -> tuple[Any, ...]:
        return Change, tuple(getattr(self, f.name) for f in fields(Change))

    @property
    def sort_key(self) -> tuple:
        return (
            ACTIONS.index(self.action),
            self.row or 0,
            self.external_contact_id or "",
            self.contact_id or 0,
        )


setattr(Change, "after", property(Change._after, doc="What is sent, as a new dict."))  # noqa: B010

_change_slots = [getattr(Change, name).__set__ for name in Change.__slots__]


def _held_change(*slots: Any) -> Change:
    """A change from its slots' values, in `Change.__slots__` order (no checks: they are those
    of a change already made)."""
    change = object.__new__(Change)
    for put, value in zip(_change_slots, slots, strict=True):
        put(change, value)
    return change


# How many changes a site's `Changes` makes at a time when it is iterated.
MADE_AT_A_TIME = 2_048


class _Columns:
    """The changes of a batch of sites as columns: small numbers in number arrays, the text in
    Arrow string arrays (UTF-8, no Python object each), the field names of `after` and the
    reasons as indexes into their few distinct values. `Changes` reads a site's part of it."""

    __slots__ = (
        "actions",
        "before",
        "contact_ids",
        "external",
        "key_tuples",
        "keys",
        "reason_texts",
        "reasons",
        "rows",
        "same_id",
        "values",
    )

    def __init__(self, changes: list[Change]) -> None:
        import numpy as np
        import pyarrow as pa

        slots = [list(map(attrgetter(name), changes)) for name in Change.__slots__]
        held = dict(zip(Change.__slots__, slots, strict=True))
        codes = {action: n for n, action in enumerate(ACTIONS)}
        self.actions = np.array([codes[a] for a in held["action"]], dtype=np.int8)
        tuples: dict[tuple[str, ...], int] = {}
        if any(isinstance(k, dict) for k in held["_keys"]):
            raise TypeError("an after with unusual keys")
        self.keys = np.array([tuples.setdefault(k, len(tuples)) for k in held["_keys"]], np.int16)
        self.key_tuples = list(tuples)
        reasons: dict[str, int] = {}
        self.reasons = np.array(
            [reasons.setdefault(r, len(reasons)) for r in held["reason"]], dtype=np.int8
        )
        self.reason_texts = list(reasons)
        self.rows = _numbers(held["row"])
        self.contact_ids = _numbers(held["contact_id"])
        external = held["external_contact_id"]
        self.external = pa.array(external, type=pa.string())
        # A create's first value is its external id again: held once.
        same = [v == e for v, e in zip(held["_v0"], external, strict=True)]
        self.same_id = np.array(same, dtype=bool)
        first = [None if s else v for s, v in zip(same, held["_v0"], strict=True)]
        self.values = [_texts(first), *(_texts(held[name]) for name in _VALUE_SLOTS[1:])]
        befores = held["before"]
        # Every create shares one empty `before`: then it is held once.
        self.before = befores[:1] if all(b is befores[0] for b in befores) else befores

    def make(self, start: int, stop: int, dealer_id: int, site_id: int) -> list[Change]:
        """The changes start..stop, as `Change`s."""
        count = stop - start
        keys = self.key_tuples
        reasons = self.reason_texts
        external = self.external.slice(start, count).to_pylist()
        values = [list(_read(column, start, count)) for column in self.values]
        values[0] = [
            e if same else v
            for e, v, same in zip(
                external, values[0], self.same_id[start:stop].tolist(), strict=True
            )
        ]
        before = self.before
        return list(
            map(
                _held_change,
                map(keys.__getitem__, self.keys[start:stop].tolist()),
                *values,
                map(ACTIONS.__getitem__, self.actions[start:stop].tolist()),
                itertools.repeat(before[0], count) if len(before) == 1 else before[start:stop],
                _read(self.contact_ids, start, count),
                itertools.repeat(dealer_id, count),
                external,
                map(reasons.__getitem__, self.reasons[start:stop].tolist()),
                _read(self.rows, start, count),
                itertools.repeat(site_id, count),
            )
        )


def _numbers(values: list[int | None]) -> Any:
    """Ints (or None) as an Arrow array, 4 bytes each when they fit; None when all are None
    (a create's contact_id)."""
    import pyarrow as pa

    if all(v is None for v in values):
        return None
    try:
        return pa.array(values, type=pa.int32())
    except (OverflowError, pa.ArrowException):
        return pa.array(values, type=pa.int64())


def _texts(values: list[str | None]) -> Any:
    """Text (or None) as an Arrow array, dictionary-encoded when that is smaller (names repeat
    from row to row)."""
    import pyarrow as pa

    plain = pa.array(values, type=pa.string())
    encoded = plain.dictionary_encode()
    return encoded if encoded.nbytes < plain.nbytes else plain


def _read(column: Any, start: int, count: int) -> Iterable[Any]:
    """Values start..start+count of a `_numbers` or `_texts` column, as Python values."""
    if column is None:
        return itertools.repeat(None, count)
    return column.slice(start, count).to_pylist()


class _AsList(Sequence[Change]):
    """Compares equal to a list of the same changes, unhashable and shown as that list: a
    sequence of changes read as they are needed, standing in for the list it replaces."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # unhashable, as the list it replaces

    def __repr__(self) -> str:
        return repr(list(self))


class Changes(_AsList):
    """A site's changes, held as columns (`_Columns`, shared by a batch of sites) and made
    `Change`s only when read: a million creates take about 90 bytes each, not 350 as objects.
    A sequence like the list it replaces (each read makes new, equal `Change`s); it compares
    equal to a list of the same changes, and pickles and copies as one."""

    __slots__ = ("_columns", "_dealer_id", "_site_id", "_start", "_stop")

    def __init__(
        self, columns: _Columns, start: int, stop: int, dealer_id: int, site_id: int
    ) -> None:
        self._columns, self._start, self._stop = columns, start, stop
        self._dealer_id, self._site_id = dealer_id, site_id

    @classmethod
    def packed(cls, sites: Sequence[tuple[int, int, list[Change]]]) -> list[Sequence[Change]]:
        """The changes of each (dealer_id, site_id, changes) as columns shared by all of them;
        a site's list as it is when a change of it is not one columns hold (an unusual `after`,
        another site's change)."""
        fits = [
            all(c.dealer_id == dealer and c.site_id == site for c in changes)
            for dealer, site, changes in sites
        ]
        every = [
            c for (_, _, changes), fit in zip(sites, fits, strict=True) if fit for c in changes
        ]
        try:
            columns = _Columns(every)
        except (TypeError, KeyError, ValueError, OverflowError, ImportError):
            return [changes for _, _, changes in sites]
        except Exception as error:  # pyarrow's conversion errors
            if type(error).__module__.startswith("pyarrow"):
                return [changes for _, _, changes in sites]
            raise
        packed: list[Sequence[Change]] = []
        start = 0
        for (dealer, site, changes), fit in zip(sites, fits, strict=True):
            if not fit:
                packed.append(changes)
                continue
            packed.append(cls(columns, start, start + len(changes), dealer, site))
            start += len(changes)
        return packed

    def __len__(self) -> int:
        return self._stop - self._start

    def _make(self, start: int, stop: int) -> list[Change]:
        at = self._start
        return self._columns.make(at + start, at + stop, self._dealer_id, self._site_id)

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._make(start, max(start, stop))
            return [self._make(n, n + 1)[0] for n in range(start, stop, step)]
        at = index + len(self) if index < 0 else index
        if not 0 <= at < len(self):
            raise IndexError("change index out of range")
        return self._make(at, at + 1)[0]

    def __iter__(self) -> Iterator[Change]:
        for start in range(0, len(self), MADE_AT_A_TIME):
            yield from self._make(start, min(start + MADE_AT_A_TIME, len(self)))

    def count_of(self, action: str) -> int:
        """How many changes have this action, without making them."""
        if action not in ACTIONS:
            return 0
        held = self._columns.actions[self._start : self._stop]
        return int((held == ACTIONS.index(action)).sum())

    def __reduce__(self) -> tuple[Any, ...]:
        return list, (list(self),)


class ChangesOf(_AsList):
    """The changes of several sites, one after the other, read as they are needed
    (`Plan.changes`)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Iterable[Sequence[Change]]) -> None:
        self._parts = [part for part in parts if len(part)]

    def __len__(self) -> int:
        return sum(map(len, self._parts))

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if isinstance(index, slice):
            return list(self)[index]
        at = index + len(self) if index < 0 else index
        if at < 0:
            raise IndexError("change index out of range")
        for part in self._parts:
            if at < len(part):
                return part[at]
            at -= len(part)
        raise IndexError("change index out of range")

    def __iter__(self) -> Iterator[Change]:
        return itertools.chain.from_iterable(self._parts)

    def __bool__(self) -> bool:
        return bool(self._parts)


def count_of(changes: Sequence[Change], action: str) -> int:
    """How many of `changes` have this action (without making those held as columns)."""
    if isinstance(changes, Changes):
        return changes.count_of(action)
    return sum(c.action == action for c in changes)


def _in_order(keys: tuple[str, ...]) -> bool:
    """Whether `keys` are some of `_AFTER_KEYS`, in their order (then held compactly)."""
    found = iter(_AFTER_KEYS)
    return all(key in found for key in keys)


@dataclass(frozen=True)
class Conflict:
    dealer_id: int
    site_id: int
    row: int | None
    external_contact_id: str | None
    contact_ids: tuple[int, ...]
    message: str


@dataclass(frozen=True)
class Listed:
    """A contact on a site that the plan leaves alone, and why: `kept` (not in the roster, no
    --prune), `unmanaged` (made in the portal), `protected` (named by a row of the file that was
    not planned: invalid, its site not resolved, skipped), `conflict` (in a conflict), `new`
    (created in CHeKT since the export the file came from)."""

    contact_id: int
    external_contact_id: str | None
    first_name: str
    last_name: str
    why: str


@dataclass
class SitePlan:
    dealer_id: int
    site_id: int
    name: str | None
    account_number: str | None
    external_site_id: str | None
    fingerprint: str
    contacts_before: int
    # A list, or for a plan made here `Changes` (held as columns, made `Change`s when read).
    changes: Sequence[Change] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    listed: list[Listed] = field(default_factory=list)
    refusal: Refusal | None = None  # why this site's changes are refused (a guard, staleness)
    # A --prune plan's record for re-basing it (`apply --refresh`): the contact ids the site
    # held, and the external ids the file's rows name on it (None for an edited export, whose
    # contacts new since it are never pruned). None when the plan does not prune (or was made
    # by a version that did not record them).
    seen: list[int] | None = None
    names: list[str] | None = None
    # Also for re-basing a --prune plan: the invalid rows that may mean a contact of the site
    # (`reconcile.invalid_entry`: "ROW name DIGEST", "ROW phone DIGEST,...", "ROW id ID" under
    # --exact-ids), so that one added since is kept as a fresh plan keeps it. [] when there are
    # none; None where `names` is, and in plans made by a version that did not record them.
    invalid: list[str] | None = None
    # What `apply --refresh` needs to tell a contact the plan leaves unchanged that was edited
    # since: per contact id, "ROW DIGEST EXTERNAL_ID" (the row that matched it, `compare.digest`
    # of the values compared, and the contact's external id, "" for none). None in plans made
    # by a version that did not record them.
    digests: dict[int, str] | None = None

    @property
    def refused(self) -> str:
        """Why the site's changes are refused, in words; "" when they are not."""
        return "" if self.refusal is None else str(self.refusal)

    @property
    def contacts_after(self) -> int:
        return self.contacts_before + self.count("create") - self.count("delete")

    def count(self, action: str) -> int:
        return count_of(self.changes, action)

    @property
    def label(self) -> str:
        """How reports name the site: "101 Harbor Dental (10-4471)"."""
        name = f"{self.site_id} {self.name or ''}".strip()
        return f"{name} ({self.account_number})" if self.account_number else name


@dataclass(frozen=True, slots=True)
class RowWarning:
    """A warning the plan found on a row, that validation alone could not: an id a spreadsheet
    damaged and the plan matched anyway (`id_damaged`, `site_id_repaired`), a contact the plan
    leaves with no phone (`no_phone`)."""

    row: int | None
    column: str
    code: str
    message: str


@dataclass(frozen=True)
class InvalidRow:
    row: int
    external_contact_id: str
    problems: tuple[str, ...]


@dataclass
class Plan:
    sites: list[SitePlan]
    invalid: list[InvalidRow] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    refusals: list[Refusal] = field(default_factory=list)  # why the whole plan is refused
    created_at: str = ""
    checksum: str = ""  # of the plan file it was read from; "" for a plan made in this process
    warnings: list[RowWarning] = field(default_factory=list)
    # Per roster row, the numbers of its other phone columns: not sent (CHeKT holds one).
    not_sent: dict[int, str] = field(default_factory=dict)
    # Per roster row, what the plan derived for it: --match-by name's match or generated id.
    derived: dict[int, str] = field(default_factory=dict)
    # With --all-sheets, the workbook's visible sheets ("" not read): rows name them by name.
    sheets: tuple[str, ...] = ()

    @property
    def changes(self) -> Sequence[Change]:
        """The changes to make: those of sites a guard refused are not among them. A sequence
        that makes each change as it is read (a plan's changes are held as columns)."""
        return ChangesOf(site.changes for site in self.sites if not site.refused)

    @property
    def creates(self) -> list[Change]:
        return [c for c in self.changes if c.action == "create"]

    @property
    def deletes(self) -> list[Change]:
        return [c for c in self.changes if c.action == "delete"]

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for site in self.sites for c in site.conflicts]

    @property
    def refused_sites(self) -> list[SitePlan]:
        return [site for site in self.sites if site.refused]

    @property
    def refused(self) -> bool:
        """A guard refused the plan, or part of it."""
        return bool(self.refusals or self.refused_sites)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def exit_code(self, *, pending: bool = False, conflicts_fail: bool = False) -> ExitCode:
        """The command line's verdict on the plan: 1 when a guard refused it or part of it (or,
        with `conflicts_fail`, as a rollback asks, when contacts are left in conflict); with
        `pending`, 3 when changes are waiting (`plan --detailed-exitcode`); else 0."""
        if self.refused or (conflicts_fail and self.conflicts):
            return ExitCode.FAILED
        if pending and self.has_changes:
            return ExitCode.CHANGES
        return ExitCode.OK

    @property
    def no_phone(self) -> int:
        """How many contacts the plan leaves with no phone number."""
        return sum(w.code == "no_phone" for w in self.warnings)

    @property
    def refused_changes(self) -> int:
        """How many changes a refusal of their site holds back (listed, not made)."""
        return sum(len(site.changes) for site in self.refused_sites)

    def summary(self) -> dict[str, int]:
        """The counts every view shows the same way (terminal, HTML, xlsx, the browser): the
        changes to make by action, then `refused` (changes of refused sites, not among those;
        only when there are some), unchanged contacts, conflicts and invalid rows."""
        counts = {action: 0 for action in SUMMARY_KEYS}
        for site in self.sites:
            if not site.refused:
                for action in ACTIONS:
                    counts[action] += site.count(action)
            counts["unchanged"] += site.unchanged
            counts["conflict"] += len(site.conflicts)
        counts["invalid"] = len(self.invalid)
        refused = self.refused_changes
        if not refused:
            return counts
        ordered = {key: counts[key] for key in ACTIONS}
        return {**ordered, "refused": refused, **counts}

    # serialization

    def to_dict(self, *, sites: bool = True) -> dict[str, Any]:
        """The plan file's body, with its checksum (the plan itself is not changed). Without
        `sites`: the body but its sites, without a checksum (`json_pieces` adds them)."""
        body = {
            "format": PLAN_FORMAT,
            "created_at": self.created_at,
            "source": self.source,
            "options": self.options,
            "summary": self.summary(),
            "refusals": [refusal.to_dict() for refusal in self.refusals],
            "sites": [_site_to_dict(site) for site in self.sites] if sites else [],
            "invalid": [asdict(row) for row in self.invalid],
            "warnings": [asdict(w) for w in self.warnings],
        }
        if self.not_sent:
            body["not_sent"] = {str(row): text for row, text in self.not_sent.items()}
        if self.derived:
            body["derived"] = {str(row): text for row, text in self.derived.items()}
        if self.sheets:
            body["sheets"] = list(self.sheets)
        if sites:
            body["checksum"] = checksum_of(body)
        return body

    def to_json(self) -> str:
        return "".join(self.json_pieces())

    def json_pieces(self) -> Iterator[str]:
        """The plan file's text (`json_text(self.to_dict(), indent=1)`) in pieces, a site at a
        time, its checksum computed as it goes: a million changes are never one dict or one
        string."""
        body = self.to_dict(sites=False)
        body["sites"] = _SITES
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        before, after = canonical.split(_json_value(_SITES))
        digest = hashlib.sha256(before.encode())
        body["checksum"] = _SITES  # last, as `to_dict` puts it
        head, middle, tail = json_text(body, indent=1).split(_json_value(_SITES))
        yield head
        for n, site in enumerate(self.sites):
            held = _site_to_dict(site)
            text = json.dumps(held, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            digest.update(("," if n else "[").encode())
            digest.update(text.encode())
            lines = json_text(held, indent=1).rstrip("\n").replace("\n", "\n  ")
            yield ("," if n else "[") + "\n  " + lines
        digest.update(("]" if self.sites else "[]").encode())
        digest.update(after.encode())
        yield ("\n ]" if self.sites else "[]") + middle
        yield _json_value("sha256:" + digest.hexdigest()) + tail

    def write(self, path: Path, overwrite: bool = False) -> None:
        """To a temporary name renamed into place; an existing file only with `overwrite`.
        Written a site at a time (`json_pieces`)."""
        with open_replacing(path, overwrite, "utf-8") as handle:
            for piece in self.json_pieces():
                handle.write(piece)

    @classmethod
    def from_dict(cls, body: dict[str, Any], source: str = "plan") -> Plan:
        if body.get("format") != PLAN_FORMAT:
            raise InputError(f"{source}: not a bulk-contacts plan (format {body.get('format')!r})")
        expected = body.get("checksum")
        if expected != checksum_of({k: v for k, v in body.items() if k != "checksum"}):
            raise InputError(_edited(source))
        return cls._made(body, [_site_from_dict(s) for s in body["sites"]], expected)

    @classmethod
    def _made(cls, body: dict[str, Any], sites: list[SitePlan], checksum: str) -> Plan:
        """The plan of a checked body, with its sites as read."""
        invalid = [
            InvalidRow(r["row"], r["external_contact_id"], tuple(r["problems"]))
            for r in body.get("invalid", [])
        ]
        return cls(
            sites,
            invalid,
            body.get("options", {}),
            body.get("source", ""),
            [refusal_from_dict(r) for r in body.get("refusals", [])],
            body.get("created_at", ""),
            checksum,
            [RowWarning(**w) for w in body.get("warnings", [])],
            {int(row): str(text) for row, text in body.get("not_sent", {}).items()},
            {int(row): str(text) for row, text in body.get("derived", {}).items()},
            tuple(str(name) for name in body.get("sheets", [])),
        )

    @classmethod
    def read(cls, path: Path) -> Plan:
        """A plan file, read a site at a time (`_read_streamed`): a million changes are never
        one parsed document. Its checksum is checked as `from_dict` checks it."""
        try:
            plan = _read_streamed(path)
            if plan is not None:
                return plan
            body = json.loads(path.read_text(encoding=PLAN_ENCODING), object_pairs_hook=_unique)
        except KeyTwice as error:
            raise InputError(
                f"{path}: not a plan as bulk-contacts wrote it (the key {error.key!r} appears "
                f"twice in one object, so readers may disagree on what it says); make a new "
                f"plan with `bulk-contacts plan ... -o PLAN.json`"
            ) from None
        except UnicodeDecodeError as error:
            raise InputError(_not_utf8(path) or f"{path}: cannot be read ({error})") from None
        except OSError as error:
            raise InputError(f"{path}: cannot be read ({error})") from None
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: not a plan file (invalid JSON: {error.msg})") from None
        except RecursionError:  # json's parser recurses once per level of nesting
            raise InputError(
                f"{path}: not a plan file (its JSON is nested too deeply); make a new plan with "
                f"`bulk-contacts plan ... -o PLAN.json`"
            ) from None
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a complete plan file ({error})") from None
        if not isinstance(body, dict):
            raise InputError(f"{path}: not a plan file")
        try:
            return cls.from_dict(body, str(path))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a complete plan file ({error})") from None


# Byte order marks of the encodings a text editor may save a plan in instead of UTF-8
# (Notepad's "Unicode" is UTF-16 LE): UTF-32's first, as its little-endian one starts as UTF-16's.
_OTHER_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _not_utf8(path: Path) -> str:
    """What to say of a plan saved in UTF-16 or UTF-32 (by its byte order mark); "" else (a
    named pipe is not opened again: it would wait for another writer)."""
    if not path.is_file():
        return ""
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError:
        return ""
    for mark, name in _OTHER_MARKS:
        if start.startswith(mark):
            return (
                f"{path}: saved as {name}, not as the UTF-8 a plan is written in; save it again "
                f"as UTF-8 (the plan is the same), or make a new plan with `bulk-contacts plan "
                f"... -o PLAN.json`"
            )
    return ""


class KeyTwice(ValueError):
    """A key twice in one object of a plan file: bulk-contacts never writes one, and JSON readers
    disagree on which one counts (Python's keeps the last), so the file may not say what the
    plan holds."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of a plan file, refused (`KeyTwice`) when a key appears twice."""
    held = dict(pairs)
    if len(held) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise KeyTwice(key)
            seen.add(key)
    return held


class _JsonStream:
    """A JSON text read from a file a piece at a time: whitespace, single characters and whole
    values (`json.JSONDecoder.raw_decode`, so each value is read exactly as `json.loads` reads
    it)."""

    CHUNK = 1 << 20
    _SPACE = re.compile(r"[ \t\n\r]*")
    _DECODER = json.JSONDecoder(object_pairs_hook=_unique)

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._buffer = ""
        self._at = 0
        self._ended = False

    def _more(self) -> bool:
        """Read on (at least as much as is pending: a long value is parsed O(n log n) times at
        most); False at the end of the file."""
        if self._ended:
            return False
        piece = self._handle.read(max(self.CHUNK, len(self._buffer) - self._at))
        if not piece:
            self._ended = True
            return False
        self._buffer = self._buffer[self._at :] + piece
        self._at = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), not taken."""
        while True:
            match = self._SPACE.match(self._buffer, self._at)
            self._at = match.end() if match else self._at
            if self._at < len(self._buffer) or not self._more():
                return self._buffer[self._at : self._at + 1]

    def take(self, expected: str) -> None:
        if self.peek() != expected:
            raise json.JSONDecodeError(f"Expecting {expected!r}", self._buffer, self._at)
        self._at += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._DECODER.raw_decode(self._buffer, self._at)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            if end == len(self._buffer) and self._more():  # a number may go on
                continue
            self._at = end
            return value

    def members(self, items: str) -> Iterator[tuple[str, Any]]:
        """The members of the object that starts here, in the file's order; the value of the
        member named `items`, when it is an array, as an iterator over its items (to be read
        through before the next member). Raises JSONDecodeError as `json.loads` would."""
        self.take("{")
        if self.peek() == "}":
            self._at += 1
            return
        keys: set[str] = set()
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise json.JSONDecodeError("Expecting property name", self._buffer, self._at)
            if key in keys:
                raise KeyTwice(key)
            keys.add(key)
            self.take(":")
            if key == items and self.peek() == "[":
                yield key, self._items()
            else:
                yield key, self.value()
            if self.peek() == "}":
                self._at += 1
                return
            self.take(",")

    def _items(self) -> Iterator[Any]:
        self.take("[")
        if self.peek() == "]":
            self._at += 1
            return
        while True:
            yield self.value()
            if self.peek() == "]":
                self._at += 1
                return
            self.take(",")

    def end(self) -> None:
        if self.peek():
            raise json.JSONDecodeError("Extra data", self._buffer, self._at)


# A saved plan is UTF-8, read with or without a byte order mark (Notepad saves one): the mark is
# no part of the JSON, and the checksum is over the JSON's content (`checksum_of`), not its bytes,
# so a plan saved again that way is the same plan, and an edit is still refused.
PLAN_ENCODING = "utf-8-sig"

# How many changes a saved plan's sites are read into before they are packed as columns.
READ_AT_A_TIME = 16_384


def _read_streamed(path: Path) -> Plan | None:
    """A plan file read twice, a site at a time: first all but its sites (the format checked,
    the part of the checksum's text before and after the sites), then its sites, each hashed
    as `checksum_of` hashes it and turned into a `SitePlan`, their changes packed as columns
    (`Changes.packed`) a batch at a time. The plan, or InputError (edited: the checksum does not
    match, checked before any site is used; not a plan); None when the file is not an object
    with one array of sites, or not a regular file that can be read twice (a named pipe:
    `Plan.read` reads it whole, once, as before)."""
    if not path.is_file():
        return None
    with path.open(encoding=PLAN_ENCODING) as handle:
        stream = _JsonStream(handle)
        if stream.peek() != "{":
            return None
        body: dict[str, Any] = {}
        arrays = 0
        for key, value in stream.members("sites"):
            if key == "sites" and isinstance(value, Iterator):
                arrays += 1
                for _ in value:  # read through: the sites are read on the second pass
                    pass
                value = _SITES
            body[key] = value
        stream.end()
    if arrays != 1 or body.get("sites") != _SITES:
        return None
    if body.get("format") != PLAN_FORMAT:
        raise InputError(f"{path}: not a bulk-contacts plan (format {body.get('format')!r})")
    expected = body.pop("checksum", None)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    before, _, after = canonical.partition(_json_value(_SITES))
    digest = hashlib.sha256(before.encode())
    sites: list[SitePlan] = []
    batch: list[SitePlan] = []
    held = 0  # changes in the batch
    broken: Exception | None = None  # a site that cannot be read: told once the checksum is
    count = 0
    with path.open(encoding=PLAN_ENCODING) as handle:
        stream = _JsonStream(handle)
        for key, value in stream.members("sites"):
            if key != "sites" or not isinstance(value, Iterator):
                continue
            for data in value:
                text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                digest.update((("," if count else "[") + text).encode())
                count += 1
                if broken is not None:
                    continue
                try:
                    site = _site_from_dict(data)
                except (KeyError, TypeError, ValueError) as error:
                    broken = error
                    continue
                batch.append(site)
                held += len(site.changes)
                if held >= READ_AT_A_TIME:
                    sites += _packed(batch)
                    batch, held = [], 0
    digest.update(b"]" if count else b"[]")
    digest.update(after.encode())
    if expected != "sha256:" + digest.hexdigest():
        raise InputError(_edited(str(path)))
    if broken is not None:
        raise broken
    return Plan._made(body, sites + _packed(batch), expected)


def _packed(sites: list[SitePlan]) -> list[SitePlan]:
    """The sites, their changes held as columns (`Changes.packed`)."""
    held = Changes.packed([(site.dealer_id, site.site_id, list(site.changes)) for site in sites])
    for site, changes in zip(sites, held, strict=True):
        site.changes = changes
    return sites


def _edited(source: str) -> str:
    return (
        f"{source}: the plan was edited after it was made (its checksum does not match); "
        f"make a new plan with `bulk-contacts plan ... -o PLAN.json`"
    )


# A change read with an empty `before` (a create's) shares one, as a plan made here does.
_NO_BEFORE: dict[str, Any] = {"before": {}}


def _site_from_dict(data: dict[str, Any]) -> SitePlan:
    return SitePlan(
        dealer_id=data["dealer_id"],
        site_id=data["site_id"],
        name=data.get("name"),
        account_number=data.get("account_number"),
        external_site_id=data.get("external_site_id"),
        fingerprint=data["fingerprint"],
        contacts_before=data["contacts_before"],
        changes=[
            Change(**c) if not isinstance(c, dict) or c.get("before") else Change(**c | _NO_BEFORE)
            for c in data.get("changes", [])
        ],
        unchanged=data.get("unchanged", 0),
        conflicts=[
            Conflict(**{**c, "contact_ids": tuple(c["contact_ids"])})
            for c in data.get("conflicts", [])
        ],
        listed=[Listed(**item) for item in data.get("listed", [])],
        refusal=refusal_from_dict(data["refusal"]) if data.get("refusal") else None,
        seen=[int(i) for i in data["seen"]] if data.get("seen") is not None else None,
        names=[str(n) for n in data["names"]] if data.get("names") is not None else None,
        invalid=[str(n) for n in data["invalid"]] if data.get("invalid") is not None else None,
        digests=(
            {int(k): str(v) for k, v in data["digests"].items()}
            if data.get("digests") is not None
            else None
        ),
    )


def _site_to_dict(site: SitePlan) -> dict[str, Any]:
    body = asdict(replace(site, changes=[]))
    body["changes"] = [asdict(change) for change in site.changes]
    body["refusal"] = site.refusal.to_dict() if site.refusal is not None else None
    for name in ("seen", "names", "invalid", "digests"):  # recorded only where needed
        if body[name] is None:
            del body[name]
    if site.digests is not None:  # string keys, as JSON reads them back (the checksum's order)
        body["digests"] = {str(k): v for k, v in site.digests.items()}
    return body


# Where `json_pieces` puts the sites (and the checksum) in a body it writes around them.
_SITES = "\x00sites\x00"


def _json_value(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def checksum_of(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


_contact_fields = attrgetter(*CONTACT_FIELDS)


def fingerprint(contacts: list[Contact]) -> str:
    """Of the contact list a site had: any change to any contact changes it."""
    rows = sorted((c.contact_id, *[v or "" for v in _contact_fields(c)]) for c in contacts)
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:32]
