"""Reconciling a validated roster with what CHeKT holds: site by site, into a `Plan`.

Pure: it takes the roster, the dealer's sites and each site's contacts, and returns the plan.
The rules (the README's reconcile rules, under `plan`): the key is (dealer, site,
external_contact_id), and a row's contact_id is the contact's identity; values are compared after
normalization (`compare`), so formatting alone is never a change; an update sends only the changed
fields; contacts not in the file are kept unless --prune, which deletes only what no row of the
file names (whatever became of that row) and never unmanaged contacts or sites absent from the
file; two contacts sharing an external id are a conflict, never a guess; an id a spreadsheet
damaged (0042 shown as 42) is a warning when the row's contact_id confirms it, else a conflict,
never a create plus a prune; guards (`guards`) refuse a plan that empties a site or deletes too
much.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal, NamedTuple, cast

import numpy as np
import pandas as pd

from .codes import ERROR, REACHABILITY_CODES, WARNING
from .columns import BY_NAME, EDITABLE_FIELDS, SITE_COLUMNS
from .compare import ComparableValues, Comparison, comparable, compared, digest
from .gc_pause import gc_paused, release_memory
from .guards import guarded
from .models import Contact, Site, SiteKey
from .normalize import (
    EXCEL_SCIENTIFIC,
    SCIENTIFIC_ID,
    describe_damage,
    id_text,
    is_scientific,
    repair_key,
    repair_keys,
    same_after_repair,
)
from .outputs import visible
from .plan import (
    Change,
    Changes,
    Conflict,
    InvalidRow,
    Listed,
    Plan,
    PlanOptions,
    RowWarning,
    SitePlan,
    fingerprint,
)
from .roster import Roster
from .schema import (
    RosterIssue,
    ValidatedRoster,
    combined_keys,
    duplicate_ids,
    make_issue,
    reachability_issue,
    repeated_pairs,
)
from .words import quoted_repr

# PlanOptions: kept importable from here
__all__ = ["PlanOptions", "RowMatcher", "prune_added", "reconcile", "resolve_sites"]


# Each editable field: its name, and whether a contact must have it (what a blank cell means).
FIELDS = tuple((name, BY_NAME[name].required) for name in EDITABLE_FIELDS)
PHONE = EDITABLE_FIELDS.index("phone_number")


class RowView(NamedTuple):
    row: int
    external_contact_id: str
    action: str
    contact_id: str
    values: tuple[str, ...]  # the editable fields as the row gives them (EDITABLE_FIELDS order)
    comparable: tuple[str, ...]  # the same, as compared (`compare`)


# sites


def dealers_of(rows: pd.DataFrame, default: int | None) -> pd.Series:
    """Each row's dealer: its dealer_id cell, else the default (--dealer / CHEKT_DEALER_ID)."""
    given = rows["dealer_id"]
    fallback = "" if default is None else str(default)
    return given.where(given != "", fallback)


class Placement(Mapping[int, SiteKey]):
    """Which site each placed row names (`resolve_sites`): a mapping of row to site, in row
    order, held as number arrays (a million rows: 12 MB, not a 75 MB dict of Python ints)."""

    def __init__(self, rows: np.ndarray, codes: np.ndarray, sites: list[SiteKey]) -> None:
        self._rows, self._codes, self._sites = rows, codes, sites
        ordered = bool((rows[1:] > rows[:-1]).all())
        self._order = None if ordered else np.argsort(rows, kind="stable")
        self._sorted = rows if ordered else rows[self._order]

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Where each of `rows` is held (-1: not placed)."""
        found = np.searchsorted(self._sorted, rows)
        found[found >= len(self._sorted)] = 0
        held = self._sorted[found] == rows if len(self._sorted) else np.zeros(len(rows), bool)
        if self._order is not None:
            found = self._order[found]
        return np.where(held, found, -1)

    def sites_of(self, rows: list[int]) -> list[SiteKey | None]:
        """`get` of each of `rows`, at once."""
        sites: list[SiteKey | None] = [*self._sites, None]  # -1: None
        codes = np.where((at := self.positions(np.array(rows, dtype=np.int64))) >= 0, 0, -1)
        codes[at >= 0] = self._codes[at[at >= 0]]
        return list(map(sites.__getitem__, codes.tolist()))

    def __getitem__(self, row: int) -> SiteKey:
        if isinstance(row, int | np.integer):
            at = int(self.positions(np.array([row], dtype=np.int64))[0])
            if at >= 0:
                return self._sites[self._codes[at]]
        raise KeyError(row)

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows.tolist())

    def __len__(self) -> int:
        return len(self._rows)

    def values(self) -> ValuesView[SiteKey]:
        return _PlacedSites(self)

    def items(self) -> ItemsView[int, SiteKey]:
        return _Placed(self)


class _PlacedSites(ValuesView[SiteKey]):
    _mapping: Placement

    def __iter__(self) -> Iterator[SiteKey]:
        return map(self._mapping._sites.__getitem__, self._mapping._codes.tolist())


class _Placed(ItemsView[int, SiteKey]):
    _mapping: Placement

    def __iter__(self) -> Iterator[tuple[int, SiteKey]]:
        return zip(self._mapping, self._mapping.values(), strict=True)


def sites_of(placement: Mapping[int, SiteKey], rows: list[int]) -> list[SiteKey | None]:
    """The site of each of `rows` (None: not placed)."""
    if isinstance(placement, Placement):
        return placement.sites_of(rows)
    return [placement.get(row) for row in rows]


@gc_paused()
def resolve_sites(
    validated: ValidatedRoster,
    sites_by_dealer: dict[int, list[Site]],
    default: int | None,
    *,
    repair_ids: bool = False,
    exact_ids: bool = False,
    out_of_scope: frozenset[int] = frozenset(),
) -> tuple[Placement, list[RosterIssue]]:
    """Which site each row names, through the dealer's site list. Rows that name no site of
    their dealer, or name it ambiguously, get an issue (and are then invalid). A site id that a
    spreadsheet damaged (account 001234 shown as 1234) is never used silently: it is an error
    naming the likely site, unless the row's other site columns confirm it, or --repair-ids
    accepts a unique repair (a warning, each time). Then rows that name one contact on one site,
    however they write the site, the dealer or the id, are duplicates. A row whose dealer is
    `out_of_scope` (the credentials cannot reach it) is invalid."""
    index = {dealer: _SiteIndex(sites) for dealer, sites in sites_by_dealer.items()}
    rows = validated.rows
    issues: list[RosterIssue] = []
    # Each way of naming a site is resolved once, and spread to its rows by number: not a
    # Python string per row and site column (a million rows: 250 MB, for a few thousand sites).
    columns = [dealers_of(rows, default), *(rows[name] for name in SITE_COLUMNS)]
    firsts, codes = np.unique(
        combined_keys(columns, rows.index).to_numpy(), return_inverse=True, return_index=True
    )[1:]
    named = zip(*(column.take(firsts).tolist() for column in columns), strict=True)
    verdicts: list[_Verdict] = []
    for dealer, site_id, external, account in named:
        verdicts.append(
            _error("dealer_id", "dealer_out_of_scope", dealer=int(dealer))
            if dealer.isdigit() and int(dealer) in out_of_scope
            else _resolve_one(index, dealer, site_id, external, account, repair_ids)
        )
    found = np.array([v.site is not None for v in verdicts], dtype=bool)[codes]
    sites: list[SiteKey] = [v.site or (0, 0) for v in verdicts]  # (0, 0): not found
    placement = Placement(np.asarray(rows.index[found], dtype=np.int64), codes[found], sites)
    for row, code in _noted_rows(rows.index, codes, verdicts):
        key = tuple(column.iat[firsts[code]] for column in columns)
        for name, note_code, variant, details in verdicts[code].notes:
            value = dict(zip(("dealer_id", *SITE_COLUMNS), key, strict=True))[name]
            issues.append(
                make_issue(validated.roster, row, name, value, note_code, variant, **details)
            )
    issues += _duplicates_on_resolved_sites(validated, placement, exact_ids)
    return placement, issues


def _noted_rows(
    index: pd.Index, codes: np.ndarray, verdicts: list[_Verdict]
) -> Iterator[tuple[int, int]]:
    """(row, verdict number) of the rows whose verdict has notes, in row order."""
    noted = np.array([bool(v.notes) for v in verdicts], dtype=bool)[codes]
    positions = np.flatnonzero(noted)
    return zip(index[positions].tolist(), codes[positions].tolist(), strict=True)


Note = tuple[str, str, str, dict[str, object]]  # field blamed, code, variant, details


class _Verdict(NamedTuple):
    """A row's site, and what to say about it (`Note`s)."""

    site: SiteKey | None
    notes: tuple[Note, ...] = ()


class _SiteIndex:
    """A dealer's sites by id, and by account number and external site id: as CHeKT holds them
    (in NFC, as a roster's cells are), then trimmed, then repaired. A row's value is looked up
    in that order, and the first that finds a site decides: an exact match always wins over a
    trimmed or repaired one elsewhere, and is never ambiguous with it."""

    REPAIRABLE = ("external_site_id", "account_number")

    def __init__(self, sites: list[Site]) -> None:
        self.sites = sites
        self.by_id = {s.site_id: s for s in sites}
        self.exact: dict[str, dict[str, list[Site]]] = {
            f: defaultdict(list) for f in self.REPAIRABLE
        }
        self.trimmed: dict[str, dict[str, list[Site]]] = {
            f: defaultdict(list) for f in self.REPAIRABLE
        }
        for site in sites:
            for name in self.REPAIRABLE:
                value = id_text(getattr(site, name))
                if value.strip():
                    self.exact[name][value].append(site)
                    self.trimmed[name][value.strip()].append(site)
                    # A value holding ESC (put there by another tool) is exported as every
                    # file shows it (`AC\x1b[2J`): the untouched export names its site.
                    if (shown := visible(value)) != value:
                        self.exact[name][shown].append(site)
                        self.trimmed[name][shown.strip()].append(site)

    @cached_property
    def repaired(self) -> dict[str, dict[str, list[Site]]]:
        """The sites by id as repaired: built only when a row names no site exactly."""
        found: dict[str, dict[str, list[Site]]] = {f: defaultdict(list) for f in self.REPAIRABLE}
        for name in self.REPAIRABLE:
            for value, sites in self.exact[name].items():
                found[name][repair_key(value)] += sites
        return found

    def find(self, name: str, value: str) -> list[Site]:
        if name == "site_id":
            site = self.by_id.get(int(value)) if value.isdigit() else None
            return [site] if site else []
        return self.exact[name].get(value) or self.trimmed[name].get(value, [])

    def repairs(self, name: str, value: str) -> list[Site]:
        """Sites whose id is not `value` but is once a spreadsheet's damage is undone."""
        found = list(self.repaired[name].get(repair_key(value), []))
        if is_scientific(value):
            found += [
                site
                for site in self.sites
                if site not in found
                and getattr(site, name)
                and same_after_repair(value, id_text(getattr(site, name)))
            ]
        return found


def _resolve_one(
    index: dict[int, _SiteIndex],
    dealer: str,
    site_id: str,
    external: str,
    account: str,
    repair_ids: bool,
) -> _Verdict:
    """The row's site. No note and no site means: skip quietly (no site given, or a dealer
    already reported)."""
    if not dealer.isdigit() or int(dealer) not in index:
        return _Verdict(None)
    dealer_id, sites = int(dealer), index[int(dealer)]
    found: dict[str, Site] = {}
    damaged: dict[str, tuple[str, list[Site]]] = {}
    for name, value in zip(SITE_COLUMNS, (site_id, external, account), strict=True):
        if not value:
            continue
        candidates = sites.find(name, value)
        if not candidates and name != "site_id" and (repairs := sites.repairs(name, value)):
            damaged[name] = (value, repairs)
            continue
        if not candidates:
            return _error(name, "unknown_site", dealer=dealer_id)
        if len(candidates) > 1:
            listed = ", ".join(str(s.site_id) for s in candidates)
            return _error(
                name, "ambiguous_site", dealer=dealer_id, count=len(candidates), ids=listed
            )
        found[name] = candidates[0]
    confirmed = dict(found)
    notes = []
    for name, (value, repairs) in damaged.items():
        site, note = _repaired_site(name, value, repairs, confirmed, repair_ids, dealer_id)
        if site is None:
            return _Verdict(None, (note,))
        found[name] = site
        notes.append(note)
    if not found:
        return _Verdict(None)
    ids = {site.site_id for site in found.values()}
    if len(ids) > 1:
        named = ", ".join(f"{f} -> site {s.site_id}" for f, s in found.items())
        return _error(next(iter(found)), "site_mismatch", named=named)
    return _Verdict((dealer_id, ids.pop()), tuple(notes))


def _error(name: str, code: str, **details: object) -> _Verdict:
    return _Verdict(None, ((name, code, "", details),))


def _repaired_site(
    name: str,
    value: str,
    repairs: list[Site],
    confirmed: dict[str, Site],
    repair_ids: bool,
    dealer_id: int,
) -> tuple[Site | None, Note]:
    """A site id that matches a site only once repaired: used when the row's other site
    columns name that very site, or with --repair-ids when the repair is unique; else an error
    that names the likely site (a wrong site means the wrong people are phoned)."""
    by = {site.site_id: field for field, site in confirmed.items()}
    fits = [site for site in repairs if site.site_id in by]
    if len(by) == 1 and fits:
        chosen, why = fits[0], f"the row's {by[fits[0].site_id]} confirms it"
    elif not confirmed and len(repairs) == 1 and repair_ids:
        chosen, why = repairs[0], "as --repair-ids allows"
    elif len(repairs) == 1:
        damage = describe_damage(value, getattr(repairs[0], name))
        site = _site_label(repairs[0], name)
        return None, (
            name,
            "site_id_damaged",
            "",
            {"dealer": dealer_id, "site": site, "damage": damage},
        )
    else:
        could = [_site_label(site, name) for site in repairs]
        sites = f"{', '.join(could[:-1])} or {could[-1]}"
        return None, (name, "site_id_damaged", "several", {"dealer": dealer_id, "sites": sites})
    damage = describe_damage(value, getattr(chosen, name))
    details: dict[str, object] = {"site": _site_label(chosen, name), "why": why, "damage": damage}
    return chosen, (name, "site_id_repaired", "", details)


def _site_label(site: Site, name: str) -> str:
    where = f"site {site.site_id}, {site.name}" if site.name else f"site {site.site_id}"
    return f"{quoted_repr(getattr(site, name))} ({where})"


def _duplicates_on_resolved_sites(
    validated: ValidatedRoster, placement: Mapping[int, SiteKey], exact_ids: bool
) -> list[RosterIssue]:
    """Rows naming one contact on one site once sites and dealers are resolved (site_id 1001,
    account AC-1001 and external_site_id ext-1001 of that site; a blank dealer_id and the
    default dealer) and ids are repaired (42 and 0042, unless --exact-ids). Validation already
    reported the rows that write all of it the same way; rows that each carry their own
    contact_id are told apart by it."""
    count = len(placement)
    placed = validated.rows.loc[np.fromiter(placement, np.int64, count), "external_contact_id"]
    ids = placed if exact_ids else _rounded_keys(placement, repair_keys(placed))
    # Found by sorting numbers and Arrow strings: no Python tuple, string and count per row
    # (a million rows: 160 MB).
    numbers = {site: n for n, site in enumerate(set(placement.values()))}
    sites = np.fromiter(map(numbers.__getitem__, placement.values()), np.int64, count)
    repeated = repeated_pairs(pd.Series(sites, index=ids.index), ids)
    if repeated.empty:
        return []  # the common case, found without building keys for every row
    rows = validated.rows.loc[repeated.index]
    key = pd.Series(
        [f"{placement[row]}|{i}" for row, i in zip(rows.index, ids[rows.index], strict=True)],
        index=rows.index,
        dtype="str",
    )
    known = {(i.row, i.code) for i in validated.issues}
    where = (
        " once the sites are resolved (the rows write the site, the dealer or the id differently)"
    )
    return [
        issue
        for issue in duplicate_ids(validated.roster, rows, key, where)
        if issue.code in ("duplicate_external_id", "duplicate_name")
        and (issue.row, issue.code) not in known
    ]


def _rounded_keys(placement: Mapping[int, SiteKey], keys: pd.Series) -> pd.Series:
    """Repaired ids, where a long number shown in scientific notation (1.23457E+11) takes the
    key of a row on its site whose id rounds to it (123456789012): one id, once repaired."""
    shown = keys.str.fullmatch(SCIENTIFIC_ID)
    if not shown.any():
        return keys  # the common case
    keys = keys.copy()
    numbers = keys[keys.str.fullmatch(r"[0-9]+")]
    for row, value in keys[shown].items():
        for other, number in numbers.items():
            if placement[other] == placement[row] and same_after_repair(value, number):
                keys[row] = number
                break
    return keys


def has_invalid_rows(validated: ValidatedRoster, extra_issues: Sequence[RosterIssue]) -> bool:
    """Whether rows are invalid before the contacts are read (reachability is judged later, on
    the contacts)."""
    return any(i.severity == ERROR for i in _issues_to_plan(validated, extra_issues))


def _issues_to_plan(
    validated: ValidatedRoster, extra_issues: Sequence[RosterIssue]
) -> list[RosterIssue]:
    """The file's issues, but those of reachability: the plan judges each contact as it leaves
    it, not the row (with --blanks keep, a blank phone cell keeps CHeKT's phone)."""
    return [i for i in (*validated.issues, *extra_issues) if i.code not in REACHABILITY_CODES]


# reconciling


@gc_paused()
def reconcile(
    validated: ValidatedRoster,
    placement: Mapping[int, SiteKey],
    sites: dict[SiteKey, Site],
    contacts: dict[SiteKey, list[Contact]],
    options: PlanOptions,
    extra_issues: Sequence[RosterIssue] = (),
) -> Plan:
    """The plan for every site the roster names (and that could be read)."""
    issues = _issues_to_plan(validated, extra_issues)
    invalid_rows = {i.row for i in issues if i.severity == ERROR and i.row is not None}
    snapshot = validated.roster.snapshot
    rows = validated.rows
    everyone = [c for found in contacts.values() for c in found]
    comparison = Comparison(options.region, options.phone_format)
    context = _Context(
        options,
        comparison.values(contacts=everyone),
        validated.roster,
        _Names.of_rows(validated.rows, placement, options.exact_ids, invalid_rows),
        snapshot,
        comparison.values(contacts=list(snapshot.values())) if snapshot is not None else None,
    )
    by_site, in_scope = _rows_by_site(rows.index, placement, contacts, invalid_rows)
    plans: list[SitePlan] = []
    for batch in _batches(sorted(in_scope), by_site):
        positions = np.concatenate([by_site[key] for key in batch])
        views = iter(_row_views(rows.take(positions)))
        made = []
        for key in batch:
            site_rows = list(itertools.islice(views, len(by_site[key])))
            made.append(_site_plan(sites[key], key, contacts[key], site_rows, context))
        del views
        # The batch's changes as columns: a million changes as objects took 350 MB.
        held = Changes.packed([(p.dealer_id, p.site_id, _changes(p)) for p in made])
        for site_plan, changes in zip(made, held, strict=True):
            site_plan.changes = changes
        plans += made
        release_memory()  # the batch's rows and changes as objects, and Arrow's building
    found = [*issues, *context.issues]
    plan = Plan(
        sites=plans,
        invalid=_invalid_rows(validated.rows, found),
        options=options.as_dict(),
        source=validated.roster.source,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        warnings=_plan_warnings([*extra_issues, *context.issues]),
        sheets=validated.roster.table.sheets,
    )
    return guarded(plan, options)


def _plan_warnings(issues: Sequence[RosterIssue]) -> list[RowWarning]:
    """The warnings the plan itself found (validation's are shown with the roster)."""
    return sorted(
        (RowWarning(i.row, i.column, i.code, i.message) for i in issues if i.severity == WARNING),
        key=lambda w: (w.row or 0, w.code),
    )


# A create's `before`: one empty dict shared by every create (a million creates, 64 MB less);
# nothing changes a plan's dicts.
NOTHING_HELD: dict[str, str | None] = {}
# Rows turned into `RowView`s at a time: a million rows are planned a batch of sites at a
# time, not turned into Python objects all at once (that alone took 850 MB). Within a batch,
# a value of a `REPEATED_FIELDS` field is held once.
VIEW_ROWS = 16_384
# Fields whose values repeat from row to row: each distinct value is held once.
REPEATED_FIELDS = frozenset({"first_name", "last_name"})


def _rows_by_site(
    index: pd.Index,
    placement: Mapping[int, SiteKey],
    contacts: dict[SiteKey, list[Contact]],
    invalid_rows: set[int],
) -> tuple[dict[SiteKey, np.ndarray], set[SiteKey]]:
    """The positions of each site's rows to plan, in row order (a number array per site, not a
    Python int per row), and the sites in scope: those rows name, invalid rows too, whose
    contacts could be read."""
    numbers: dict[SiteKey, int] = {}
    number = numbers.setdefault
    if isinstance(placement, Placement):
        # Each site code once, spread to the rows by number: no Python int per row (a million
        # rows took 100 MB here, at the plan's peak).
        at = placement.positions(np.asarray(index, dtype=np.int64))
        held = placement._codes if len(placement._codes) else np.zeros(1, dtype=np.int64)
        site_codes = np.where(at >= 0, held[np.maximum(at, 0)], -1)
        used = np.unique(site_codes[site_codes >= 0]).tolist()
        of_code = np.full(len(placement._sites) + 1, -1, dtype=np.int64)  # [-1]: not placed
        for code in used:
            key = placement._sites[code]
            if key in contacts:
                of_code[code] = number(key, len(numbers))
        codes = of_code[site_codes]
    else:
        codes = np.fromiter(
            (
                -1 if key is None or key not in contacts else number(key, len(numbers))
                for key in sites_of(placement, index.tolist())
            ),
            np.int64,
            len(index),
        )
    planned = np.flatnonzero((codes >= 0) & ~index.isin(list(invalid_rows)))
    order = planned[np.argsort(codes[planned], kind="stable")]
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    by_number = {int(codes[part[0]]): part for part in np.split(order, cuts) if len(part)}
    empty = np.zeros(0, dtype=np.int64)
    return {key: by_number.get(n, empty) for key, n in numbers.items()}, set(numbers)


def _batches(keys: list[SiteKey], by_site: dict[SiteKey, np.ndarray]) -> Iterator[list[SiteKey]]:
    """The sites in order, in batches of about `VIEW_ROWS` rows (a site is never split)."""
    batch: list[SiteKey] = []
    count = 0
    for key in keys:
        batch.append(key)
        count += len(by_site[key])
        if count >= VIEW_ROWS:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


def _row_views(rows: pd.DataFrame) -> list[RowView]:
    """The rows as `RowView`s; a name on many rows is one string, not one per row (the creates
    and updates made from the rows keep them)."""
    held: dict[str, str] = {}
    keys = [rows[name].tolist() for name in ("external_contact_id", "action", "contact_id")]
    columns = [rows[name] for name in EDITABLE_FIELDS]
    values = []
    for name, column in zip(EDITABLE_FIELDS, columns, strict=True):
        listed = column.tolist()
        values.append(
            list(map(held.setdefault, listed, listed)) if name in REPEATED_FIELDS else listed
        )
    compared = [  # most fields compare as they are: their lists are shared
        listed if (keyed := comparable(name, column)) is column else keyed.tolist()
        for name, column, listed in zip(EDITABLE_FIELDS, columns, values, strict=True)
    ]
    return list(
        map(
            RowView._make,
            zip(
                rows.index.tolist(),
                *keys,
                zip(*values, strict=True),
                zip(*compared, strict=True),
                strict=True,
            ),
        )
    )


def _invalid_rows(rows: pd.DataFrame, issues: list[RosterIssue]) -> list[InvalidRow]:
    from .sites import shown_id

    problems: dict[int, list[str]] = defaultdict(list)
    for issue in issues:
        if issue.severity == ERROR and issue.row is not None:
            problems[issue.row].append(f"{issue.column}: {issue.message}")
    return [
        InvalidRow(
            row,
            shown_id(rows.at[row, "external_contact_id"] if row in rows.index else ""),
            tuple(found),
        )
        for row, found in sorted(problems.items())
    ]


# The sites of the rows naming an external id, those ids, the contact ids the rows name, and
# the invalid rows prune must look at again (`_Invalid`).
_Named = tuple[list[SiteKey | None], pd.Series, set[int], list["_Invalid"]]
# Phone numbers compared by their last digits (a national and an international form are one).
PHONE_DIGITS = 7
# An invalid row's phone digits a plan records (`_Invalid`): E.164 numbers have 15 at most, an
# extension adds a few.
PHONE_ENDS = 32


def _fold_digest(text: str) -> str:
    """48 bits of BLAKE2b of a folded name or a phone's digits: what a plan file records of an
    invalid row (`SitePlan.invalid`), rather than the row's values."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


class _Invalid(NamedTuple):
    """An invalid row prune keeps a contact for: its site (None: not resolved) and row; for a
    row with no readable id, the digest of its name as --match-by name folds it ("" for none)
    and of each ending of its phone's digits of PHONE_DIGITS digits or more, longest first (a
    contact's phone matches when one number ends the other); for a row with one under
    --exact-ids, the id as `written` (the contact whose id it is once repaired is kept: a row
    the plan skips cannot say it means another person)."""

    site: SiteKey | None
    row: int
    person: str = ""
    phones: tuple[str, ...] = ()
    written: str = ""

    @classmethod
    def unnamed(cls, site: SiteKey | None, row: int, person: str, phone: str) -> _Invalid:
        # A phone's last PHONE_ENDS digits at most (a cell of 1,000 digits is no number, and a
        # contact's is shorter: a longer one matches on them, which keeps more, never less).
        phone = phone[-PHONE_ENDS:]
        endings = tuple(_fold_digest(phone[-n:]) for n in range(len(phone), PHONE_DIGITS - 1, -1))
        return cls(site, row, _fold_digest(person) if person != "|" else "", endings)

    @property
    def entry(self) -> str:
        """As a plan records it (`SitePlan.invalid`)."""
        if self.written:
            return f"{self.row} id {self.written}"
        return f"{self.row} person {self.person or '-'} {','.join(self.phones) or '-'}"

    @classmethod
    def of_entry(cls, site: SiteKey, entry: str) -> _Invalid:
        row, kind, rest = entry.split(" ", 2)
        if kind == "id":
            return cls(site, int(row), written=rest)
        person, phones = rest.split(" ")
        return cls(
            site,
            int(row),
            "" if person == "-" else person,
            () if phones == "-" else tuple(phones.split(",")),
        )

    def may_mean(self, contact: Contact, person: str) -> str | None:
        """What the contact has that is the row's (`person`: its name's `_fold_digest`), or
        None."""
        if self.written:
            held = id_text(contact.external_contact_id)
            if held and same_after_repair(self.written, held):
                damage = describe_damage(self.written, held)
                return (
                    f"external_contact_id once repaired: {self.written!r} is {held!r} but for "
                    f"{damage}"
                )
            return None
        if self.person and self.person == person:
            return "name"
        phone = "".join(filter(str.isdigit, contact.phone_number or ""))
        if not self.phones or len(phone) < PHONE_DIGITS:
            return None
        # the row's phone ends the contact's, or the contact's ends the row's
        length = PHONE_DIGITS + len(self.phones) - 1
        if len(phone) <= length:
            return "phone" if _fold_digest(phone) in self.phones else None
        return "phone" if _fold_digest(phone[-length:]) == self.phones[0] else None


class _Names:
    """What the rows of the file name, whatever became of them (invalid, site not resolved,
    skipped, in a conflict): prune deletes none of it. A contact_id names its contact wherever
    it is; an external id names the contacts of its row's site that hold it, exactly or once
    repaired (not with --exact-ids); a row whose site is not resolved (site None) names them on
    every site in scope, since it cannot tell which it meant.

    Built when first asked (a site with a contact no row matched, or a --prune plan recording
    what its rows name): a million rows of creates on new sites never need it (it costs about
    150 bytes a row)."""

    def __init__(self, exact_ids: bool, source: Callable[[], _Named]) -> None:
        self.exact_ids = exact_ids
        self._source: Callable[[], _Named] | None = source
        self.unnamed: list[_Invalid] = []  # and rows the plan itself found invalid (`skipped`)

    def skipped(self, key: SiteKey, row: int, written: str) -> None:
        """A row of the site that the plan found invalid (`id_scientific_create`, `unreachable`)
        after it matched no contact: under --exact-ids, the contact whose id its id is once
        repaired is kept like that of a row invalid from the start (without --exact-ids, the
        row's id protects it already)."""
        if self.exact_ids and written:
            self.unnamed.append(_Invalid(key, row, written=written))
            self.__dict__.pop("_unnamed_by_site", None)

    @classmethod
    def of_rows(
        cls,
        rows: pd.DataFrame,
        placement: Mapping[int, SiteKey],
        exact_ids: bool,
        invalid_rows: set[int] | frozenset[int] = frozenset(),
    ) -> _Names:
        def named_by_rows() -> _Named:
            cids = rows["contact_id"]
            named = rows["external_contact_id"]
            named = named[named != ""]
            sites = sites_of(placement, named.index.tolist())
            contact_ids = set(map(int, cids[cids.str.isdigit()].tolist()))
            return sites, named.reset_index(drop=True), contact_ids, unnamed()

        def unnamed() -> list[_Invalid]:
            from .sites import person_key, shown_id

            found = []
            for row in sorted(invalid_rows & set(rows.index.tolist())):
                ext, cid = rows.at[row, "external_contact_id"], rows.at[row, "contact_id"]
                site = sites_of(placement, [row])[0]
                if cid.isdigit():
                    continue  # the row names its contact by id
                if shown_id(ext):
                    if exact_ids:  # else its id protects its contact once repaired already
                        found.append(_Invalid(site, row, written=ext))
                    continue
                person = person_key(rows.at[row, "first_name"], rows.at[row, "last_name"])
                phone = "".join(filter(str.isdigit, rows.at[row, "phone_number"]))
                found.append(_Invalid.unnamed(site, row, person, phone))
            return found

        return cls(exact_ids, named_by_rows)

    @classmethod
    def of_site(
        cls, key: SiteKey, named: list[str], exact_ids: bool, invalid: list[str] | None
    ) -> _Names:
        """What a plan recorded that the rows name on one site (`SitePlan.names`), and the
        invalid rows that may mean its contacts (`SitePlan.invalid`)."""
        rows = [_Invalid.of_entry(key, entry) for entry in invalid or ()]
        return cls(
            exact_ids, lambda: ([key] * len(named), pd.Series(named, dtype="str"), set(), rows)
        )

    def invalid_on_site(self, key: SiteKey) -> list[str]:
        """The invalid rows that may mean contacts of the site (placed on it, or not placed),
        for the plan to record (`SitePlan.invalid`)."""
        by_site = self._unnamed_by_site
        found = [*by_site.get(key, ()), *by_site.get(None, ())]
        return [row.entry for row in sorted(found, key=lambda r: r.row)]

    def _build(self) -> None:
        if self._source is None:
            return
        sites, named, self.contact_ids, unnamed = self._source()
        self.unnamed = [*unnamed, *self.unnamed]
        self._source = None
        exact_ids = self.exact_ids
        self.exact = set(zip(sites, named.tolist(), strict=True))
        keys = repair_keys(named)
        differ = (keys != named).tolist()
        # With the ids themselves (self.exact), the forms that differ make every repaired id.
        self.repaired = {
            (site, key)
            for site, key, other in zip(sites, keys.tolist(), differ, strict=True)
            if other and not exact_ids
        }
        scientific = named.str.fullmatch(SCIENTIFIC_ID).tolist()
        self.scientific = [
            (site, value)
            for site, value, shown in zip(sites, named.tolist(), scientific, strict=True)
            if shown
        ]

    @cached_property
    def _by_site(self) -> dict[SiteKey | None, set[str]]:
        self._build()
        grouped: dict[SiteKey | None, set[str]] = defaultdict(set)
        for site, value in self.exact:
            grouped[site].add(value)
        return grouped

    def on_site(self, key: SiteKey) -> list[str]:
        """The external ids that name contacts on the site (rows placed on it, and rows whose
        site is not resolved), for the plan to record."""
        return sorted(self._by_site.get(key, set()) | self._by_site.get(None, set()))

    def protects(self, key: SiteKey, contact: Contact) -> bool:
        self._build()
        held = id_text(contact.external_contact_id)
        if contact.contact_id in self.contact_ids:
            return True
        if not held:
            return False
        if (key, held) in self.exact or (None, held) in self.exact:
            return True
        if self.exact_ids:
            return False
        repaired = repair_key(held)
        for site in (key, None):
            if (site, repaired) in self.repaired or (site, repaired) in self.exact:
                return True
        near = (key, None)
        if any(site in near and same_after_repair(v, held) for site, v in self.scientific):
            return True
        return _maybe_scientific(held) and any(
            site in near and same_after_repair(held, v) for site, v in self.exact
        )

    @cached_property
    def _unnamed_by_site(self) -> dict[SiteKey | None, list[_Invalid]]:
        self._build()
        grouped: dict[SiteKey | None, list[_Invalid]] = defaultdict(list)
        for row in self.unnamed:
            grouped[row.site].append(row)
        return grouped

    def may_mean(self, key: SiteKey, contact: Contact) -> tuple[int, str] | None:
        """An invalid row that may mean the contact (on its site, or on a site not resolved):
        (its row, what matches: the id once repaired, under --exact-ids; for a row without a
        readable id, the name as --match-by name folds it, or the phone's last digits), or
        None."""
        from .sites import person_key

        by_site = self._unnamed_by_site
        if not by_site:
            return None  # the common case
        rows = [*by_site.get(key, ()), *by_site.get(None, ())]
        if not rows:
            return None
        person = _fold_digest(person_key(contact.first_name or "", contact.last_name or ""))
        for row in rows:
            if (by := row.may_mean(contact, person)) is not None:
                return row.row, by
        return None


@dataclass
class _Context:
    """What every site's reconcile needs: the options, the remote contacts' normalized values,
    the roster (to name its columns), what its rows name, and for an edited export, its
    snapshot (the merge base) and the snapshot's values. Issues found while planning (a
    damaged id matched anyway, a contact with no phone) are collected in `issues`."""

    options: PlanOptions
    remote: ComparableValues
    roster: Roster
    names: _Names
    snapshot: dict[int, Contact] | None = None
    base: ComparableValues | None = None
    issues: list[RosterIssue] = field(default_factory=list)
    # The current site's contacts a row matched and does not delete: (row, contact, the fields
    # compared and left as they are, a `compare.digest` mask), for `apply --refresh`
    # (`_record_unchanged`).
    unchanged: list[tuple[int, Contact, int]] = field(default_factory=list)

    def base_of(self, row: RowView) -> Contact | None:
        if self.snapshot is None or not row.contact_id.isdigit():
            return None
        return self.snapshot.get(int(row.contact_id))

    def warn(
        self, row: RowView, name: str, value: str, code: str, variant: str, **details: object
    ) -> None:
        self.issues.append(make_issue(self.roster, row.row, name, value, code, variant, **details))

    def kept_for_invalid(self, contact: Contact, row: int, by: str) -> None:
        """Say that prune keeps a contact because an invalid row may mean it."""
        held = id_text(contact.external_contact_id)
        person = " ".join(filter(None, (contact.first_name, contact.last_name)))
        self.issues.append(
            make_issue(
                self.roster,
                row,
                "external_contact_id",
                "",
                "prune_kept_for_invalid",
                contact=f"{held!r} (contact_id {contact.contact_id}, {person})",
                shown_row=self.roster.row_text(row),
                by=by,
            )
        )

    def reachable(
        self, row: RowView, after: dict[str, str | None], contact: Contact | None
    ) -> bool:
        """Judge the contact as the plan leaves it: no phone is a warning; neither phone nor
        e-mail an error (the row is then not planned) unless --allow-unreachable."""
        if row.values[PHONE]:
            return True  # the common case: the row gives a phone
        held = {name: getattr(contact, name, None) for name in ("phone_number", "email")}
        phone, email = ({**held, **after}[name] for name in held)
        issue = reachability_issue(
            self.roster, row.row, bool(phone), bool(email), self.options.allow_unreachable
        )
        if issue is not None:
            self.issues.append(issue)
        return issue is None or issue.severity != ERROR


def _maybe_scientific(value: str) -> bool:
    """is_scientific, with the cheap test first (most ids have no E)."""
    return ("E" in value or "e" in value) and is_scientific(value)


class _SiteContacts:
    """A site's contacts, found by contact_id, by external id (in NFC, as a roster's cells are),
    and by external id once repaired (only for the rows that match no id exactly)."""

    def __init__(self, remote: list[Contact]) -> None:
        self.remote = remote
        self.by_id = {c.contact_id: c for c in remote}
        self.by_external: dict[str, list[Contact]] = defaultdict(list)
        for contact in remote:
            if contact.external_contact_id:
                self.by_external[id_text(contact.external_contact_id)].append(contact)

    @cached_property
    def repaired(self) -> dict[str, list[tuple[str, Contact]]]:
        """The contacts by repaired id (`repair_key`), with their id as compared."""
        found: dict[str, list[tuple[str, Contact]]] = defaultdict(list)
        for held, contacts in self.by_external.items():
            found[repair_key(held)] += [(held, c) for c in contacts]
        return found

    @cached_property
    def scientific(self) -> list[tuple[str, Contact]]:
        """The contacts whose id is a number a spreadsheet could show in scientific notation,
        or is shown so."""
        return [
            (held, c)
            for held, contacts in self.by_external.items()
            if held[:1].isdigit()
            for c in contacts
        ]

    def repairs(self, written: str) -> list[Contact]:
        """Contacts whose external id is not `written` but is once a spreadsheet's damage is
        undone (`normalize.repair_key`, or a long number in scientific notation)."""
        if not self.by_external:
            return []  # a site without managed contacts (every row a create): nothing to look up
        found = [c for held, c in self.repaired.get(repair_key(written), []) if held != written]
        if _maybe_scientific(written) or written[:1].isdigit():
            shown = _maybe_scientific(written)
            found += [
                c
                for held, c in self.scientific
                if held != written
                and c not in found
                and (shown or _maybe_scientific(held))
                and same_after_repair(written, held)
            ]
        return found

    def own(self, contact: Contact) -> str:
        """The contact's external id as compared."""
        return id_text(contact.external_contact_id)


def _site_plan(
    site: Site,
    key: SiteKey,
    remote: list[Contact],
    rows: list[RowView],
    context: _Context,
) -> SitePlan:
    dealer_id, site_id = key
    plan = SitePlan(
        dealer_id,
        site_id,
        site.name,
        site.account_number,
        site.external_site_id,
        fingerprint(remote),
        len(remote),
    )
    held = _SiteContacts(remote)
    matched: dict[int, int] = {}  # contact_id -> the row that matched it
    for row in rows:
        contact = _match(row, held, matched, plan, context)
        if contact is False:
            continue  # a conflict was recorded
        found = len(context.issues)
        if contact is not None:
            matched[contact.contact_id] = row.row
            if context.options.match_by == "name":
                row = _names_as_held(row, context.remote.of_contact(contact), contact)
            own = contact.external_contact_id
            if own and own != row.external_contact_id:
                # A damaged id matched anyway: CHeKT's id is kept, and changes carry it.
                row = row._replace(external_contact_id=own)
        _plan_row(row, contact, context, plan)
        if contact is None and any(i.severity == ERROR for i in context.issues[found:]):
            context.names.skipped(key, row.row, row.external_contact_id)
    _record_unchanged(plan, context)
    in_conflict = {cid for conflict in plan.conflicts for cid in conflict.contact_ids}
    options = context.options
    _leftovers(
        key,
        remote,
        set(matched),
        in_conflict,
        context.names,
        options.prune,
        context.snapshot,
        plan,
        context.kept_for_invalid,
    )
    if options.prune:
        # What `apply --refresh` needs to prune the contacts added after the plan as a fresh
        # plan would (`prune_added`): the contacts seen, and the ids the rows give the site
        # (none for an edited export: contacts new since it are never pruned).
        plan.seen = sorted(c.contact_id for c in remote)
        plan.names = context.names.on_site(key) if context.snapshot is None else None
        # and the invalid rows that may mean a contact, as digests (`_Invalid`)
        plan.invalid = context.names.invalid_on_site(key) if context.snapshot is None else None
    _changes(plan).sort(key=lambda c: c.sort_key)
    plan.conflicts.sort(key=lambda c: (c.row or 0, c.external_contact_id or ""))
    plan.listed.sort(key=lambda item: item.contact_id)
    return plan


def _match(
    row: RowView,
    held: _SiteContacts,
    matched: dict[int, int],
    plan: SitePlan,
    context: _Context,
) -> Contact | Literal[False] | None:
    """The contact a row is about; None when there is none yet; False after a conflict."""
    if row.contact_id:
        contact = _by_contact_id(row, held, plan, context)
    else:
        contact = _by_external_id(row, held, plan, context)
        if contact is None and context.options.match_by == "name":
            contact = _by_name(row, held, plan)
    if isinstance(contact, Contact) and contact.contact_id in matched:
        return _conflict(
            plan,
            row,
            (contact.contact_id,),
            f"contact_id {contact.contact_id} is named by two rows "
            f"({context.roster.row_text(matched[contact.contact_id])} and "
            f"{context.roster.row_text(row.row)}); keep one of them",
        )
    return contact


def _by_contact_id(
    row: RowView, held: _SiteContacts, plan: SitePlan, context: _Context
) -> Contact | Literal[False] | None:
    """A row's contact_id is CHeKT's identity: the row is about that contact and no other, and
    a contact_id the site does not hold is never a create."""
    contact_id = int(row.contact_id)
    contact = held.by_id.get(contact_id)
    if contact is None:
        if row.action == "delete" or context.base_of(row) is not None:
            return None  # already absent, or deleted in CHeKT since the export
        return _conflict(
            plan,
            row,
            (contact_id,),
            f"contact_id {contact_id} is not on this site (deleted since the export, or on "
            f"another site); nothing is created for this row: to create the contact anew, "
            f"clear its contact_id",
        )
    own = held.own(contact)
    if row.external_contact_id != own and not _same_contact(row, contact, plan, context):
        return False
    if own and len(held.by_external[own]) > 1:
        return _shared(row, own, held.by_external[own], plan)
    return contact


def _same_contact(row: RowView, contact: Contact, plan: SitePlan, context: _Context) -> bool:
    """A row whose contact_id names a contact with another external id: the same id once a
    spreadsheet's damage is undone is that contact (a warning); anything else is a conflict."""
    written, own, cid = (
        row.external_contact_id,
        id_text(contact.external_contact_id),
        contact.contact_id,
    )
    if not written:
        message = f"contact_id {cid} has external_contact_id {own!r}: put it in the row"
    elif not own:
        message = (
            f"contact_id {cid} has no external_contact_id in CHeKT (made in the portal), but the "
            f"row gives {written!r}: clear one of them"
        )
    elif not context.options.exact_ids and same_after_repair(written, own):
        damage = describe_damage(written, own)
        context.warn(
            row,
            "external_contact_id",
            written,
            "id_damaged",
            "",
            own=own,
            damage=damage,
            contact_id=cid,
        )
        return True
    else:
        message = (
            f"the row has external_contact_id {written!r} but contact_id {cid} is {own!r}: "
            f"correct one of them (a contact_id names exactly one contact)"
        )
    _conflict(plan, row, (cid,), message)
    return False


def _by_external_id(
    row: RowView, held: _SiteContacts, plan: SitePlan, context: _Context
) -> Contact | Literal[False] | None:
    """The contact holding the row's external id; none (a create) only when no contact holds
    it even once a spreadsheet's damage is undone (unless --exact-ids)."""
    written = row.external_contact_id
    exact = held.by_external.get(written, [])
    if len(exact) > 1:
        return _shared(row, written, exact, plan)
    if exact:
        return exact[0]
    repairs = [] if context.options.exact_ids else held.repairs(written)
    if not repairs:
        return None
    own = held.own(repairs[0])
    if len(repairs) == 1 and context.options.repair_ids and len(held.by_external[own]) == 1:
        context.warn(
            row,
            "external_contact_id",
            written,
            "id_damaged",
            "repair_ids",
            own=own,
            damage=describe_damage(written, own),
            contact_id=repairs[0].contact_id,
        )
        return repairs[0]
    named = ", ".join(
        f"{quoted_repr(c.external_contact_id)} (contact_id {c.contact_id})" for c in repairs
    )
    return _conflict(
        plan,
        row,
        tuple(sorted(c.contact_id for c in repairs)),
        f"external_contact_id {quoted_repr(written)} is not on this site, but {named} is the same "
        f"id once a spreadsheet's damage or look-alike characters are undone "
        f"({describe_damage(written, own)}): write the id as CHeKT holds it (format the column "
        f"as Text if a spreadsheet changed it), or plan with --repair-ids to match it, or with "
        f"--exact-ids if they are different people",
    )


def _by_name(row: RowView, held: _SiteContacts, plan: SitePlan) -> Contact | Literal[False] | None:
    """--match-by name: a row whose id was generated (the file has none) and that no contact
    holds yet is the one contact of the site with its first and last name, normalized (case,
    accents, spacing); several are a conflict, never a guess; none, a create under the
    generated id."""
    from .sites import GENERATED_PREFIX, person_key

    if not row.external_contact_id.startswith(GENERATED_PREFIX):
        return None
    first, last = (
        row.values[EDITABLE_FIELDS.index("first_name")],
        row.values[EDITABLE_FIELDS.index("last_name")],
    )
    key = person_key(first, last)
    found = [c for c in held.remote if person_key(c.first_name, c.last_name) == key]
    if len(found) > 1:
        ids = tuple(sorted(c.contact_id for c in found))
        return _conflict(
            plan,
            row,
            ids,
            f"{first} {last} matches {len(found)} contacts of the site by name (contact_id "
            f"{', '.join(map(str, ids))}); give the row the external_contact_id or contact_id of "
            f"the one it means",
        )
    return found[0] if found else None


def _names_as_held(row: RowView, held: tuple[str, ...], contact: Contact) -> RowView:
    """--match-by name: a name that is CHeKT's once normalized ("ann", "LEE" for Ann Lee) is
    no change: the row takes CHeKT's spelling."""
    from .sites import normalize_name

    values, comparable = list(row.values), list(row.comparable)
    for name in ("first_name", "last_name"):
        at = EDITABLE_FIELDS.index(name)
        if normalize_name(values[at]) == normalize_name(getattr(contact, name) or ""):
            values[at], comparable[at] = getattr(contact, name) or "", held[at]
    return row._replace(values=tuple(values), comparable=tuple(comparable))


def _shared(row: RowView, external: str, found: list[Contact], plan: SitePlan) -> Literal[False]:
    ids = tuple(sorted(c.contact_id for c in found))
    return _conflict(
        plan,
        row,
        ids,
        f"the site holds {len(found)} contacts with external_contact_id {external!r} "
        f"(contact_id {', '.join(map(str, ids))}); resolve them in CHeKT first",
    )


def _conflict(plan: SitePlan, row: RowView, ids: tuple[int, ...], message: str) -> Literal[False]:
    """Record a conflict; False, for the matchers to return."""
    plan.conflicts.append(
        Conflict(
            plan.dealer_id, plan.site_id, row.row, row.external_contact_id or None, ids, message
        )
    )
    return False


def _changes(plan: SitePlan) -> list[Change]:
    """The changes of a site plan being made: a list, until the batch's are held as columns."""
    assert isinstance(plan.changes, list)
    return plan.changes


def _plan_row(row: RowView, contact: Contact | None, context: _Context, plan: SitePlan) -> None:
    if row.action == "delete":
        if contact is None:
            plan.unchanged += 1  # already absent
        else:
            _changes(plan).append(
                _change(plan, row, contact, "delete", contact.fields(), {}, "action=delete")
            )
        return
    base = context.base_of(row)
    if contact is None:
        if base is not None:
            _gone_since_export(row, base, context, plan)
            return
        if _EXCEL_SCIENTIFIC.fullmatch(row.external_contact_id):
            context.warn(
                row, "external_contact_id", row.external_contact_id, "id_scientific_create", ""
            )
            return  # an error: the row is invalid, and nothing is created under a lost id
        after = _new_contact(row)
        if context.reachable(row, after, None):
            _changes(plan).append(_change(plan, row, None, "create", NOTHING_HELD, after))
        return
    if base is not None and context.base is not None:
        held, was = context.remote.of_contact(contact), context.base.of_contact(base)
        after, clashes = _merge(row, held, was, context.options.blanks)
        if clashes:
            _conflict(
                plan,
                row,
                (contact.contact_id,),
                f"changed both in the file and in CHeKT since the export "
                f"({', '.join(clashes)}); edit the row again from a new export",
            )
            return
    else:
        after = _differences(row, context.remote.of_contact(contact), context.options.blanks)
    if not context.reachable(row, after, contact):
        return
    if after:
        _changes(plan).append(_change(plan, row, contact, "update", contact.fields(), after))
    else:
        plan.unchanged += 1
    # For `apply --refresh`: the fields the row compared and the plan leaves as they are.
    mask = _compared_mask(row, base, context) & ~sum(
        1 << i for i, name in enumerate(EDITABLE_FIELDS) if name in after
    )
    context.unchanged.append((row.row, contact, mask))


def _compared_mask(row: RowView, base: Contact | None, context: _Context) -> int:
    """The fields whose value decides whether the row changes its contact (a `compare.digest`
    mask): those the row fills in (all with --blanks clear), and for an edited export's row,
    those the reviewer changed (`_merge`)."""
    blanks = context.options.blanks
    edited = (
        [
            want != was
            for want, was in zip(row.comparable, context.base.of_contact(base), strict=True)
        ]
        if base is not None and context.base is not None
        else [True] * len(FIELDS)
    )
    return sum(
        1 << i
        for i, ((_, required), want, changed) in enumerate(
            zip(FIELDS, row.comparable, edited, strict=True)
        )
        if changed and (want != "" or (blanks == "clear" and not required))
    )


def _record_unchanged(plan: SitePlan, context: _Context) -> None:
    """For `apply --refresh`: the digest of what the plan compared for each contact a row
    matched, in the fields it leaves as they are (`SitePlan.digests`); a contact edited there
    since is then told apart from one that is not."""
    found, context.unchanged = context.unchanged, []
    by_name = context.options.match_by == "name"
    plan.digests = {}
    for row, contact, mask in found:
        own = contact.external_contact_id or ""
        held = compared(context.remote, contact, by_name)
        plan.digests[contact.contact_id] = f"{row} {digest(own, held, mask)} {own}"


_EXCEL_SCIENTIFIC = re.compile(EXCEL_SCIENTIFIC)


def _new_contact(row: RowView) -> dict[str, str | None]:
    """What a create sends: the required fields, and the others the row fills in."""
    after: dict[str, str | None] = {"external_contact_id": row.external_contact_id}
    for (name, required), value in zip(FIELDS, row.values, strict=True):
        if value or required:
            after[name] = value
    return after


def _gone_since_export(row: RowView, base: Contact, context: _Context, plan: SitePlan) -> None:
    """A row of an export whose contact was deleted in CHeKT since: CHeKT's deletion stands,
    unless the reviewer edited the row, which is then a conflict."""
    assert context.base is not None  # a row has a base only when the file has a snapshot
    edited = _differences(row, context.base.of_contact(base), "keep")
    if edited:
        _conflict(
            plan,
            row,
            (base.contact_id,),
            "deleted in CHeKT since the export, but edited in the file; to create it "
            "again, clear its contact_id",
        )
    else:
        plan.unchanged += 1


def _merge(
    row: RowView, held: tuple[str, ...], base: tuple[str, ...], blanks: str
) -> tuple[dict[str, str | None], list[str]]:
    """Three-way merge of a row of an edited export: only what the reviewer changed is sent;
    what changed in CHeKT since the export (and not in the file) stands; a field changed on
    both sides, differently, is a clash."""
    after: dict[str, str | None] = {}
    clashes = []
    fields = zip(EDITABLE_FIELDS, row.comparable, held, base, row.values, strict=True)
    for name, want, have, was, sent in fields:
        if want in (was, have) or (want == "" and blanks == "keep"):
            continue
        if have != was:
            clashes.append(name)
        else:
            after[name] = sent or None
    return after, clashes


def _change(
    plan: SitePlan,
    row: RowView,
    contact: Contact | None,
    action: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
    reason: str = "roster",
) -> Change:
    return Change(
        action,
        plan.dealer_id,
        plan.site_id,
        row.row,
        row.external_contact_id or None,
        contact.contact_id if contact else None,
        before,
        after,
        reason,
    )


def _differences(row: RowView, held: tuple[str, ...], blanks: str) -> dict[str, str | None]:
    """The fields to send: only those that really differ, formatting aside. `held` is the
    contact's fields made comparable (`compare`), as the row's are."""
    if row.comparable == held:
        return {}  # the common case: nothing differs
    after: dict[str, str | None] = {}
    fields = zip(FIELDS, row.comparable, held, row.values, strict=True)
    for (name, required), want, have, sent in fields:
        if want == have:
            continue
        if want == "":
            if blanks == "clear" and not required:
                after[name] = None
            continue
        after[name] = sent
    return after


def prune_added(
    site: SitePlan, added: list[Contact], exact_ids: bool, prune: bool = True
) -> SitePlan:
    """A saved `--prune` plan's site (that recorded `seen` and `names`) with the contacts added
    since the plan pruned or listed as a fresh plan would: deleted unless unmanaged, named by a
    row of the file or maybe meant by an invalid row (`SitePlan.invalid`). With `prune` False
    (a plan with invalid rows that did not record them) they are all listed, none deleted."""
    assert site.names is not None
    key = (site.dealer_id, site.site_id)
    names = _Names.of_site(key, site.names, exact_ids, site.invalid)
    added_plan = replace(site, changes=[], listed=[])
    _leftovers(key, added, set(), set(), names, prune, None, added_plan)
    listed = sorted([*site.listed, *added_plan.listed], key=lambda item: item.contact_id)
    changes = sorted([*site.changes, *added_plan.changes], key=lambda c: c.sort_key)
    return replace(site, changes=changes, listed=listed)


def _leftovers(
    key: SiteKey,
    remote: list[Contact],
    matched: set[int],
    in_conflict: set[int],
    names: _Names,
    prune: bool,
    snapshot: dict[int, Contact] | None,
    plan: SitePlan,
    kept_for: Callable[[Contact, int, str], None] | None = None,
) -> None:
    """Contacts on the site that no planned row is about: kept and listed, or pruned. Unmanaged
    contacts, those any row of the file names (invalid, unresolved, skipped rows), those an
    invalid row without a readable id may mean (by name or phone: `kept_for` is told, to say
    why), those in a conflict, and those created since the export a file came from are never
    pruned."""
    for contact in remote:
        if contact.contact_id in matched:
            continue
        if not contact.managed:
            why = "unmanaged"
        elif snapshot is not None and contact.contact_id not in snapshot:
            why = "new"
        elif contact.contact_id in in_conflict:
            why = "conflict"
        elif names.protects(key, contact):
            why = "protected"
        elif (maybe := names.may_mean(key, contact)) is not None:
            why = "protected"
            if prune and kept_for is not None:
                kept_for(contact, *maybe)
        else:
            why = "kept"
        if why == "kept" and prune:
            _changes(plan).append(
                Change(
                    "delete",
                    plan.dealer_id,
                    plan.site_id,
                    None,
                    contact.external_contact_id,
                    contact.contact_id,
                    contact.fields(),
                    {},
                    "prune",
                )
            )
            continue
        plan.listed.append(
            Listed(
                contact.contact_id,
                contact.external_contact_id,
                contact.first_name,
                contact.last_name,
                why,
            )
        )


class RowMatcher:
    """A row's contact found as a fresh plan finds it (`_by_external_id`, then with --match-by
    name `_by_name`), among a site's contacts now: for `apply --refresh`, which re-bases a saved
    plan's rows on what the site holds now. A row that is a conflict now gets the conflict a
    fresh plan reports, word for word."""

    def __init__(self, site: SitePlan, contacts: list[Contact], options: PlanOptions) -> None:
        self.held = _SiteContacts(contacts)
        self.options = options
        self._scratch = SitePlan(site.dealer_id, site.site_id, None, None, None, "", 0)
        self._key = (site.dealer_id, site.site_id)
        self._names = (
            None
            if site.names is None
            else _Names.of_site(self._key, site.names, options.exact_ids, site.invalid)
        )

    def match(
        self, row: int | None, external: str, values: tuple[str, ...] = ()
    ) -> Contact | Conflict | None:
        """The contact of the row naming `external` (with `values`, its editable fields, for
        --match-by name), None when it has none, or the conflict it is in."""
        view = RowView(row or 0, id_text(external), "", "", values, values)
        context = cast(_Context, self)  # the matchers read `options` and call `warn`
        found = _by_external_id(view, self.held, self._scratch, context)
        if found is None and values and self.options.match_by == "name":
            found = _by_name(view, self.held, self._scratch)
        if found is False:
            return self._scratch.conflicts.pop()
        return found

    def warn(self, *_: object, **__: object) -> None:
        """The plan warned about the row already (`id_damaged`): not again."""

    def pruned_now(self, contact: Contact) -> bool:
        """Whether a fresh --prune plan would delete `contact`, that no row is about: unless it
        is unmanaged or a row of the file names it (`SitePlan.names`; with none recorded, it
        may be: yes, to be safe)."""
        if not self.options.prune or not contact.managed:
            return False
        names = self._names
        return names is None or not (
            names.protects(self._key, contact) or names.may_mean(self._key, contact) is not None
        )
