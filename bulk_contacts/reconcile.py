"""Reconciling a validated roster with what CHeKT holds: site by site, into a `Plan`.

Pure: it takes the roster, the dealer's sites and each site's contacts, and returns the plan.
The rules (SPEC "Reconcile rules"): the key is (dealer, site, external_contact_id); values are
compared after normalization, so formatting alone is never a change; an update sends only the
changed fields; contacts not in the file are kept unless --prune, which never touches unmanaged
contacts, sites absent from the file, or contacts whose row failed validation; two contacts
sharing an external id are a conflict, never a guess; guards refuse a plan that empties a site or
deletes too much.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pandas as pd

from .gc_pause import gc_paused
from .models import EDITABLE_FIELDS, Contact, Site
from .normalize import normalize_emails, normalize_phones, normalize_text
from .plan import Change, Conflict, InvalidRow, Listed, Plan, SitePlan, fingerprint
from .schema import ERROR, RosterIssue, ValidatedRoster, make_issue

DEFAULT_MAX_DELETES = 10
DEFAULT_MAX_DELETE_SHARE = 0.25
SiteKey = tuple[int, int]  # (dealer_id, site_id)


@dataclass(frozen=True)
class PlanOptions:
    dealer_id: int | None = None
    region: str = "US"
    phone_format: str = "e164"
    blanks: str = "keep"  # keep: an empty optional cell leaves the field; clear: empties it
    prune: bool = False
    max_deletes: int | None = None  # None: more than 10 and more than 25% of those in scope
    force: bool = False
    allow_empty_sites: bool = False
    skip_invalid: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowView(NamedTuple):
    row: int
    external_contact_id: str
    first_name: str
    last_name: str
    phone_number: str
    email: str
    action: str
    contact_id: str


# sites


def dealers_of(rows: pd.DataFrame, default: int | None) -> pd.Series:
    """Each row's dealer: its dealer_id cell, else the default (--dealer / CHEKT_DEALER_ID)."""
    given = rows["dealer_id"]
    fallback = "" if default is None else str(default)
    return given.where(given != "", fallback)


@gc_paused()
def resolve_sites(
    validated: ValidatedRoster, sites_by_dealer: dict[int, list[Site]], default: int | None
) -> tuple[dict[int, SiteKey], list[RosterIssue]]:
    """Which site each row names, through the dealer's site list. Rows that name no site of
    their dealer, or name it ambiguously, get an issue (and are then invalid)."""
    index = {dealer: _SiteIndex(sites) for dealer, sites in sites_by_dealer.items()}
    rows = validated.rows
    placement: dict[int, SiteKey] = {}
    issues: list[RosterIssue] = []
    cache: dict[tuple[str, ...], tuple[SiteKey | None, str, str, str]] = {}
    identity = zip(
        rows.index.tolist(),
        dealers_of(rows, default).tolist(),
        rows["site_id"].tolist(),
        rows["external_site_id"].tolist(),
        rows["account_number"].tolist(),
        strict=True,
    )
    for row, dealer, site_id, external, account in identity:
        key = (dealer, site_id, external, account)
        if key not in cache:
            cache[key] = _resolve_one(index, *key)
        found, field, code, message = cache[key]
        if found is not None:
            placement[row] = found
        elif code:
            value = {
                "site_id": site_id,
                "external_site_id": external,
                "account_number": account,
                "dealer_id": dealer,
            }[field]
            issues.append(make_issue(validated.roster, row, field, value, code, message))
    return placement, issues


class _SiteIndex:
    def __init__(self, sites: list[Site]) -> None:
        self.by_id = {s.site_id: s for s in sites}
        self.by_external: dict[str, list[Site]] = defaultdict(list)
        self.by_account: dict[str, list[Site]] = defaultdict(list)
        for site in sites:
            if site.external_site_id:
                self.by_external[site.external_site_id.strip()].append(site)
            if site.account_number:
                self.by_account[site.account_number.strip()].append(site)


def _resolve_one(
    index: dict[int, _SiteIndex], dealer: str, site_id: str, external: str, account: str
) -> tuple[SiteKey | None, str, str, str]:
    """(site, field blamed, issue code, message); code "" means: skip quietly (no site given,
    already reported by validation)."""
    if not dealer.isdigit() or int(dealer) not in index:
        return None, "dealer_id", "", ""
    dealer_id, sites = int(dealer), index[int(dealer)]
    found: dict[str, Site] = {}
    for field, value, lookup in (
        ("site_id", site_id, None),
        ("external_site_id", external, sites.by_external),
        ("account_number", account, sites.by_account),
    ):
        if not value:
            continue
        if lookup is None:
            site = sites.by_id.get(int(value)) if value.isdigit() else None
            candidates = [site] if site else []
        else:
            candidates = lookup.get(value, [])
        if not candidates:
            return (
                None,
                field,
                "unknown_site",
                (
                    f"{field} {value!r} is not a site of dealer {dealer_id}; check it, or create "
                    f"the site in CHeKT first"
                ),
            )
        if len(candidates) > 1:
            ids = ", ".join(str(s.site_id) for s in candidates)
            return (
                None,
                field,
                "ambiguous_site",
                (
                    f"{field} {value!r} names {len(candidates)} sites of dealer {dealer_id} "
                    f"(site_id {ids}); give the site_id"
                ),
            )
        found[field] = candidates[0]
    if not found:
        return None, "site_id", "", ""
    ids = {site.site_id for site in found.values()}
    if len(ids) > 1:
        named = ", ".join(f"{f} -> site {s.site_id}" for f, s in found.items())
        return (
            None,
            next(iter(found)),
            "site_mismatch",
            (f"the row's site columns name different sites ({named}); correct one of them"),
        )
    return (dealer_id, ids.pop()), "", "", ""


# reconciling


@gc_paused()
def reconcile(
    validated: ValidatedRoster,
    placement: dict[int, SiteKey],
    sites: dict[SiteKey, Site],
    contacts: dict[SiteKey, list[Contact]],
    options: PlanOptions,
    extra_issues: Sequence[RosterIssue] = (),
) -> Plan:
    """The plan for every site the roster names (and that could be read)."""
    issues = [*validated.issues, *extra_issues]
    invalid_rows = {i.row for i in issues if i.severity == ERROR and i.row is not None}
    snapshot = validated.roster.snapshot
    context = _Context(
        options,
        _RemoteValues([c for found in contacts.values() for c in found], options),
        snapshot,
        _RemoteValues(list(snapshot.values()), options) if snapshot is not None else None,
    )
    by_site: dict[SiteKey, list[RowView]] = defaultdict(list)
    protected: dict[SiteKey, list[RowView]] = defaultdict(list)
    for view in _row_views(validated.rows):
        key = placement.get(view.row)
        if key is None or key not in contacts:
            continue
        (protected if view.row in invalid_rows else by_site)[key].append(view)
    plans = []
    for key in sorted(set(by_site) | set(protected)):
        plans.append(
            _site_plan(sites[key], key, contacts[key], by_site[key], protected[key], context)
        )
    plan = Plan(
        sites=plans,
        invalid=_invalid_rows(validated.rows, issues),
        options=options.as_dict(),
        source=validated.roster.source,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    apply_guards(plan, options)
    return plan


def _row_views(rows: pd.DataFrame) -> list[RowView]:
    columns = [rows[name].tolist() for name in RowView._fields[1:]]
    return list(map(RowView._make, zip(rows.index.tolist(), *columns, strict=True)))


def _invalid_rows(rows: pd.DataFrame, issues: list[RosterIssue]) -> list[InvalidRow]:
    problems: dict[int, list[str]] = defaultdict(list)
    for issue in issues:
        if issue.severity == ERROR and issue.row is not None:
            problems[issue.row].append(f"{issue.column}: {issue.message}")
    return [
        InvalidRow(
            row, str(rows.at[row, "external_contact_id"]) if row in rows.index else "", tuple(found)
        )
        for row, found in sorted(problems.items())
    ]


class _RemoteValues:
    """Every remote contact's fields normalized as the roster's are (vectorized, once), so
    that comparing them is formatting-blind."""

    values: dict[int, tuple[str, str, str, str]]

    def __init__(self, everyone: list[Contact], options: PlanOptions) -> None:
        frame = pd.DataFrame(
            [
                (c.contact_id, c.first_name, c.last_name, c.phone_number or "", c.email or "")
                for c in everyone
            ],
            columns=["contact_id", "first_name", "last_name", "phone_number", "email"],
            dtype="str",
        )
        if frame.empty:
            self.values = {}
            return
        first, last = normalize_text(frame["first_name"]), normalize_text(frame["last_name"])
        phone_text = normalize_text(frame["phone_number"])
        phones, phone_problems = normalize_phones(phone_text, options.region, options.phone_format)
        phones = phones.where(phone_problems == "", phone_text)  # unparseable: compare as text
        email_text = normalize_text(frame["email"])
        emails, email_problems = normalize_emails(email_text)
        emails = emails.where(email_problems == "", email_text).str.casefold()
        ids = [c.contact_id for c in everyone]
        columns = (first.tolist(), last.tolist(), phones.tolist(), emails.tolist())
        self.values = dict(zip(ids, zip(*columns, strict=True), strict=True))

    def of(self, contact: Contact) -> tuple[str, str, str, str]:
        return self.values[contact.contact_id]


@dataclass
class _Context:
    """What every site's reconcile needs: the options, the remote contacts' normalized values,
    and for an edited export, its snapshot (the merge base) and the snapshot's values."""

    options: PlanOptions
    remote: _RemoteValues
    snapshot: dict[int, Contact] | None = None
    base: _RemoteValues | None = None

    def base_of(self, row: RowView) -> Contact | None:
        if self.snapshot is None or not row.contact_id.isdigit():
            return None
        return self.snapshot.get(int(row.contact_id))


def _site_plan(
    site: Site,
    key: SiteKey,
    remote: list[Contact],
    rows: list[RowView],
    protected_rows: list[RowView],
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
    by_external: dict[str, list[Contact]] = defaultdict(list)
    by_id = {c.contact_id: c for c in remote}
    for contact in remote:
        if contact.external_contact_id:
            by_external[contact.external_contact_id].append(contact)
    matched: set[int] = set()
    for row in rows:
        contact = _match(row, by_external, by_id, matched, plan)
        if contact is False:
            continue  # a conflict was recorded
        _plan_row(row, contact, context, plan)
        if contact is not None:
            matched.add(contact.contact_id)
    spared = {c.contact_id for row in protected_rows for c in _named_by(row, by_external, by_id)}
    in_conflict = {cid for conflict in plan.conflicts for cid in conflict.contact_ids}
    _leftovers(remote, matched, spared, in_conflict, context, plan)
    plan.changes.sort(key=lambda c: c.sort_key)
    plan.conflicts.sort(key=lambda c: (c.row or 0, c.external_contact_id or ""))
    plan.listed.sort(key=lambda item: item.contact_id)
    return plan


def _named_by(
    row: RowView, by_external: dict[str, list[Contact]], by_id: dict[int, Contact]
) -> list[Contact]:
    if row.external_contact_id:
        return by_external.get(row.external_contact_id, [])
    if row.contact_id.isdigit() and int(row.contact_id) in by_id:
        return [by_id[int(row.contact_id)]]
    return []


def _match(
    row: RowView,
    by_external: dict[str, list[Contact]],
    by_id: dict[int, Contact],
    matched: set[int],
    plan: SitePlan,
) -> Contact | bool | None:
    """The contact a row is about; None when there is none yet; False after a conflict."""

    def conflict(ids: tuple[int, ...], message: str) -> bool:
        _conflict(plan, row, ids, message)
        return False

    if row.external_contact_id:
        found = by_external.get(row.external_contact_id, [])
        if len(found) > 1:
            ids = tuple(sorted(c.contact_id for c in found))
            return conflict(
                ids,
                f"the site holds {len(found)} contacts with external_contact_id "
                f"{row.external_contact_id!r} (contact_id "
                f"{', '.join(map(str, ids))}); resolve them in CHeKT first",
            )
        return found[0] if found else None
    contact_id = int(row.contact_id)
    contact = by_id.get(contact_id)
    if contact is None:
        return conflict(
            (contact_id,),
            f"contact_id {contact_id} is not on this site (deleted "
            f"since the export, or on another site)",
        )
    if contact.external_contact_id:
        return conflict(
            (contact_id,),
            f"contact_id {contact_id} has external_contact_id "
            f"{contact.external_contact_id!r}: put it in the row",
        )
    if contact_id in matched:
        return conflict((contact_id,), f"contact_id {contact_id} is named by two rows")
    return contact


def _conflict(plan: SitePlan, row: RowView, ids: tuple[int, ...], message: str) -> None:
    plan.conflicts.append(
        Conflict(
            plan.dealer_id, plan.site_id, row.row, row.external_contact_id or None, ids, message
        )
    )


def _plan_row(row: RowView, contact: Contact | None, context: _Context, plan: SitePlan) -> None:
    if row.action == "delete":
        if contact is None:
            plan.unchanged += 1  # already absent
        else:
            plan.changes.append(
                _change(plan, row, contact, "delete", contact.fields(), {}, "action=delete")
            )
        return
    base = context.base_of(row)
    if contact is None:
        if base is not None:
            _gone_since_export(row, base, context, plan)
        else:
            plan.changes.append(_change(plan, row, None, "create", {}, _new_contact(row)))
        return
    if base is not None:
        after, clashes = _merge(
            row, context.remote.of(contact), context.base.of(base), context.options.blanks
        )  # type: ignore[union-attr]
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
        after = _differences(row, contact, context.remote.of(contact), context.options.blanks)
    if after:
        plan.changes.append(_change(plan, row, contact, "update", contact.fields(), after))
    else:
        plan.unchanged += 1


def _new_contact(row: RowView) -> dict[str, str | None]:
    after: dict[str, str | None] = {
        "external_contact_id": row.external_contact_id,
        "first_name": row.first_name,
        "last_name": row.last_name,
    }
    if row.phone_number:
        after["phone_number"] = row.phone_number
    if row.email:
        after["email"] = row.email
    return after


def _gone_since_export(row: RowView, base: Contact, context: _Context, plan: SitePlan) -> None:
    """A row of an export whose contact was deleted in CHeKT since: CHeKT's deletion stands,
    unless the reviewer edited the row, which is then a conflict."""
    edited = _differences(row, base, context.base.of(base), "keep")  # type: ignore[union-attr]
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
    row: RowView, held: tuple[str, str, str, str], base: tuple[str, str, str, str], blanks: str
) -> tuple[dict[str, str | None], list[str]]:
    """Three-way merge of a row of an edited export: only what the reviewer changed is sent;
    what changed in CHeKT since the export (and not in the file) stands; a field changed on
    both sides, differently, is a clash."""
    mine = (row.first_name, row.last_name, row.phone_number, row.email.casefold())
    after: dict[str, str | None] = {}
    clashes = []
    for name, want, have, was in zip(EDITABLE_FIELDS, mine, held, base, strict=True):
        if want in (was, have) or (want == "" and blanks == "keep"):
            continue
        if have != was:
            clashes.append(name)
        else:
            after[name] = getattr(row, name) or None
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


def _differences(
    row: RowView, contact: Contact, held: tuple[str, str, str, str], blanks: str
) -> dict[str, str | None]:
    """The fields to send: only those that really differ, formatting aside. `held` is the
    contact's fields normalized as the roster's are (e-mail case-folded)."""
    wanted = (row.first_name, row.last_name, row.phone_number, row.email.casefold())
    if wanted == held:
        return {}  # the common case: nothing differs
    after: dict[str, str | None] = {}
    for name, want, have in zip(EDITABLE_FIELDS, wanted, held, strict=True):
        if want == have:
            continue
        if want == "":
            if blanks == "clear" and name in ("phone_number", "email"):
                after[name] = None
            continue
        after[name] = getattr(row, name)
    return after


def _leftovers(
    remote: list[Contact],
    matched: set[int],
    spared: set[int],
    in_conflict: set[int],
    context: _Context,
    plan: SitePlan,
) -> None:
    """Contacts on the site that no valid row is about: kept and listed, or pruned. Unmanaged
    contacts, those of invalid rows, those in a conflict, and those created since the export a
    file came from are never pruned."""
    snapshot = context.snapshot
    for contact in remote:
        if contact.contact_id in matched:
            continue
        if not contact.managed:
            why = "unmanaged"
        elif snapshot is not None and contact.contact_id not in snapshot:
            why = "new"
        elif contact.contact_id in in_conflict:
            why = "conflict"
        elif contact.contact_id in spared:
            why = "protected"
        else:
            why = "kept"
        if why == "kept" and context.options.prune:
            plan.changes.append(
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


# guards


EMPTY_SITE = "it would leave the site with no contacts; use --allow-empty-sites if that is meant"


def apply_guards(plan: Plan, options: PlanOptions) -> None:
    """Refuse, site by site, a plan that leaves a site with no contacts; and the whole plan when
    rows are invalid (without --skip-invalid) or when it deletes more than --max-deletes
    (default: more than 10 and more than 25% of the contacts in scope) unless --force.
    Idempotent: apply runs the guards again, with its own flags, on a saved plan."""
    plan.refusals = []
    if plan.invalid and not options.skip_invalid:
        plan.refusals.append(
            f"{len(plan.invalid)} rows are invalid; fix them (validate shows "
            f"each problem) or plan the valid rows with --skip-invalid"
        )
    for site in plan.sites:
        if site.refused == EMPTY_SITE:
            site.refused = ""
        empties = site.count("delete") and site.contacts_after <= 0
        if not site.refused and empties and not options.allow_empty_sites:
            site.refused = EMPTY_SITE
    deletes = sum(site.count("delete") for site in plan.sites if not site.refused)
    in_scope = sum(site.contacts_before for site in plan.sites)
    if options.max_deletes is not None:
        too_many = deletes > options.max_deletes
        limit = f"--max-deletes {options.max_deletes}"
    else:
        too_many = deletes > DEFAULT_MAX_DELETES and deletes > DEFAULT_MAX_DELETE_SHARE * in_scope
        limit = (
            f"the default limit (more than {DEFAULT_MAX_DELETES} and more than "
            f"{DEFAULT_MAX_DELETE_SHARE:.0%} of the {in_scope} contacts in scope)"
        )
    if too_many and not options.force:
        plan.refusals.append(
            f"the plan deletes {deletes} contacts, past {limit}; review it, "
            f"then use --force (or raise --max-deletes)"
        )
