"""Applying a plan: concurrent, ordered per site, journaled, interruptible.

Per site, creates run before updates before deletes (so a site never drops to zero contacts
mid-run), each phase's changes concurrently; sites run side by side within the client's
concurrency. Every write is announced in the journal (fsynced) before it is sent and recorded
after; every outcome goes to the results. A stop request (Ctrl-C), or a journal that cannot be
written any more, lets the writes in flight finish and records the rest as skipped. Afterwards,
every site the run touched is read again and compared with what the run meant to do (`verify`).

A saved plan is checked before anything is written (`load_saved_plan`): each site it touches is
read again and its fingerprint compared with the plan's. Stale sites are refused, or with
`refresh`, their changes are re-based on what the site holds now (`rebase_site`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import threading
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__
from .client import ChektClient
from .codes import CHANGED_SINCE_PLAN, CODES
from .columns import BY_NAME, CONTACT_FIELDS, EDITABLE_FIELDS
from .compare import ComparableValues, Comparison, compared, digest, digest_mask
from .errors import ApiError, ExitCode, InputError, JournalError, NotFound
from .fetch import fetch_contacts
from .guards import StaleSite, guarded
from .journal import JOURNAL_FORMAT, Journal, check_appendable
from .lock import hold_journal
from .models import Contact, NewContact, WriteResult
from .outputs import RUNS_FOLDER, files_beside, json_value, run_folder_name
from .plan import ACTIONS, Change, Conflict, Plan, PlanOptions, SitePlan, fingerprint
from .reconcile import RowMatcher, prune_added
from .results import Outcome, Results
from .verify import NOT_ON_SITE, Difference, verify_changes

Progress = Callable[[Outcome], None]
OPTIONAL_FIELDS = tuple(n for n in EDITABLE_FIELDS if not BY_NAME[n].required)
# The note of a change another run made at the same time (`Exchange.by_another_run`).
ANOTHER_RUN = (
    "already done by another run (the server replayed its answer to the same change): not this "
    "run's write; its rollback leaves it"
)


@dataclass
class RunFiles:
    """Where an apply writes: results, failed rows, journal."""

    results: Path
    journal: Path
    failed_rows: Path
    folder: Path | None = None  # the run folder made for it, if any (removed if left empty)

    @classmethod
    def choose(
        cls,
        results: Path | None,
        journal: Path | None,
        base: Path | None = None,
        kind: str = "apply",
    ) -> RunFiles:
        """The paths given, else a new run folder of its own (created here, never shared)."""
        folder = None
        if results is None:
            folder = new_run_folder(base or Path(RUNS_FOLDER), kind)
            results, journal = folder / "results.csv", journal or folder / "journal.jsonl"
        failed_rows, beside = files_beside(results)
        return cls(results, journal or beside, failed_rows, folder)

    @staticmethod
    def check_journal(results: Path | None, journal: Path | None, api_url: str) -> None:
        """An existing journal (`journal`, or the one beside `results`) is added to: before
        any work, it must be a journal of runs against this API (`check_appendable`)."""
        if journal is None and results is not None:
            journal = files_beside(results)[1]
        if journal is not None:
            check_appendable(journal, api_url)

    def discard_unused(self) -> None:
        """A run that sent nothing leaves no run folder behind: its files (a results header, a
        journal with no write in it) and the folder go. Anything else in it stays."""
        if self.folder is None:
            return
        for path in (self.results, self.failed_rows, self.journal):
            if path.parent == self.folder:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def new_run_folder(base: Path, kind: str) -> Path:
    """`<UTC time>-<kind>`, with `-2`, `-3`... when that name is taken: created exclusively, so
    two runs started in the same second never share a folder."""
    base.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        folder = base / run_folder_name(kind, attempt)
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


@dataclass
class ApplyReport:
    counts: dict[str, int]
    files: RunFiles
    interrupted: bool = False
    failed_rows_written: bool = False
    run_id: str = ""
    verified_sites: int = 0
    unverified: int = 0
    differences: list[Outcome] = field(default_factory=list)
    verify_error: str = ""
    journal_error: str = ""  # why the run stopped: the journal could not be written
    kept: list[dict[str, object]] = field(default_factory=list)  # outcomes not journaled
    fallback: Path | None = None  # where `kept` was written
    results_error: str = ""
    # Sites where a change failed, was skipped or did not verify; None: the run's outcome
    # could not be checked (the verification failed).
    troubled: set[tuple[int, int]] | None = field(default_factory=set)
    refused: int = 0  # changes of sites a guard refused: not done, not in the results
    # Of the ok changes: made by another run at the same time (journaled as such, and left
    # alone by this run's rollback).
    by_another_run: int = 0

    @property
    def clean(self) -> bool:
        """Every change done and verified (or verification skipped on purpose)."""
        return not (
            self.counts.get("failed")
            or self.unverified
            or self.verify_error
            or self.journal_error
            or self.results_error
        )

    @property
    def exit_code(self) -> ExitCode:
        """The command line's verdict on the run: 1 when the journal failed (whatever else),
        130 when it was interrupted, 1 when a change failed or does not hold, else 0."""
        if self.journal_error:
            return ExitCode.FAILED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        return ExitCode.OK if self.clean else ExitCode.FAILED


# freshness


class Freshness(NamedTuple):
    """A saved plan checked against CHeKT: the plan to apply, the sites found stale (changed
    since, and not as the plan would leave them), and those already applied (changed since, and
    holding every change the plan makes to them: nothing is left to do there), and with
    --refresh, the stale sites of an older plan that cannot tell what changed since."""

    plan: Plan
    stale: list[SitePlan]
    applied: list[SitePlan] = []  # noqa: RUF012 - a NamedTuple's default, never mutated
    # Stale sites of a plan made by a version that did not record the values it compared
    # (`SitePlan.digests`): re-based, but a contact it left unchanged and edited since is not
    # told apart.
    unchecked: list[SitePlan] = []  # noqa: RUF012 - a NamedTuple's default, never mutated
    # Stale sites of a --prune plan with invalid rows, made by a version that did not record
    # what they may mean (`SitePlan.invalid`): re-based, keeping every contact added since.
    unrecorded: list[SitePlan] = []  # noqa: RUF012 - a NamedTuple's default, never mutated
    # With --refresh, the conflicts re-basing found that the saved plan did not have: rows whose
    # reviewed change is not made (CHeKT changed since), which `apply` reports as a failure.
    new_conflicts: list[Conflict] = []  # noqa: RUF012 - a NamedTuple's default, never mutated


def check_freshness(
    client: ChektClient, plan: Plan, refresh: bool, progress: Callable[[int], None] | None = None
) -> Freshness:
    """Read every site the plan changes again. A site whose contacts changed since the plan
    and already hold each of its changes (this plan applied before, or the same changes made
    by hand) is already applied: nothing is left to do there. The other sites that changed are
    stale: in the plan returned, their changes are refused (`StaleSite`), or with `refresh`,
    re-based on what they hold now. The plan given is not changed."""
    prunes = bool(plan.options.get("prune"))
    if refresh and prunes and any(site.seen is None for site in plan.sites if site.changes):
        raise InputError(
            "the plan was made with --prune by an older bulk-contacts, which did not record the "
            "contacts each site held: --refresh cannot prune those added since; make a new plan "
            "(`bulk-contacts plan ROSTER --prune -o PLAN.json`), or apply it without --refresh"
        )
    # With --refresh, sites with nothing to change are read too: a contact edited there since
    # (`SitePlan.digests`) is a conflict, and a --prune plan prunes the contacts added since,
    # as a fresh plan would.
    touched = [
        site
        for site in plan.sites
        if site.changes or (refresh and (site.digests or (prunes and site.names is not None)))
    ]
    current = fetch_contacts(client, [(s.dealer_id, s.site_id) for s in touched], progress)
    sites, stale, applied, new_conflicts = [], [], [], []
    for site in plan.sites:
        contacts = current.get((site.dealer_id, site.site_id))
        if contacts is None or fingerprint(contacts) == site.fingerprint:
            sites.append(site)
            continue
        rebased = rebase_site(site, contacts, plan.options, bool(plan.invalid))
        if not rebased.changes and not site.changes and rebased.conflicts == site.conflicts:
            sites.append(site)  # nothing to do before, nothing now
            continue
        if not rebased.changes and len(rebased.conflicts) == len(site.conflicts):
            applied.append(site)
            sites.append(rebased)
            continue
        stale.append(site)
        refusal = stale_refusal(site, contacts)
        sites.append(rebased if refresh else replace(site, refusal=refusal))
        if refresh:
            new_conflicts += [c for c in rebased.conflicts if c not in site.conflicts]
    unchecked = [site for site in stale if site.digests is None] if refresh else []
    unrecorded = (
        [site for site in stale if _invalid_unrecorded(site, plan)] if refresh and prunes else []
    )
    return Freshness(
        replace(plan, sites=sites),
        stale,
        applied,
        unchecked=unchecked,
        new_conflicts=new_conflicts,
        unrecorded=unrecorded,
    )


def _invalid_unrecorded(site: SitePlan, plan: Plan) -> bool:
    """Whether a --prune plan with invalid rows did not record what they may mean on the site
    (`SitePlan.invalid`: a plan made by an earlier version)."""
    return bool(plan.invalid) and site.names is not None and site.invalid is None


def stale_refusal(site: SitePlan, contacts: list[Contact]) -> StaleSite:
    """What changed on a stale site, as far as the plan can tell: the contacts its changes are
    about that are gone, and (when it recorded them) the contact ids added and removed."""
    now = {c.contact_id for c in contacts}
    about = {c.contact_id for c in site.changes if c.contact_id is not None}
    added = removed = None
    if site.seen is not None:
        added, removed = len(now - set(site.seen)), len(set(site.seen) - now)
    return StaleSite(site.contacts_before, len(contacts), len(about - now), added, removed)


def load_saved_plan(
    client: ChektClient,
    path: Path,
    refresh: bool = False,
    guards: PlanOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> Freshness:
    """A plan file, checked before it is applied: not edited (its checksum), not stale (or
    re-based, with `refresh`), and guarded again with the options it was made with, loosened
    by the guards' options of `guards` (apply's force, allow_empty_sites, max_deletes).
    InputError for a file that is not an intact plan."""
    saved = Plan.read(path)
    fresh = check_freshness(client, saved, refresh, progress)
    options = options_of(saved.options)
    return fresh._replace(
        plan=guarded(fresh.plan, options.loosened_by(guards) if guards else options)
    )


def options_of(options: Mapping[str, Any]) -> PlanOptions:
    """A plan's options as saved, those this version knows."""
    known = {f.name for f in fields(PlanOptions)}
    return PlanOptions(**{k: v for k, v in options.items() if k in known})


def rebase_site(
    site: SitePlan, contacts: list[Contact], options: Mapping[str, Any], invalid: bool = False
) -> SitePlan:
    """The site's changes, made again against what it holds now, comparing values as the plan
    did (its `options`, `compare`) and finding each row's contact as a fresh plan finds it
    (`reconcile.RowMatcher`): a create whose contact now exists becomes an update of the
    differing fields (or nothing); an update sends only what still differs; a row whose contact
    is a conflict now (two contacts share its id...) gets the conflict a fresh plan reports.
    What the plan cannot re-base without a change nobody reviewed is a `changed_since_plan`
    conflict of its row: a delete of a contact edited meanwhile, an update of a contact deleted
    or given another external id, a contact the plan left unchanged that no longer holds what
    the plan compared (`SitePlan.digests`). Deletes of contacts that are gone are dropped. A
    --prune plan also prunes the contacts added since it, as a fresh plan would
    (`reconcile.prune_added`, from what the plan recorded: `SitePlan.seen`, `names` and
    `invalid`); when the plan has `invalid` rows but did not record what they may mean (an
    earlier version's plan), it keeps them all."""
    by_id = {c.contact_id: c for c in contacts}
    planning = options_of(options)
    matcher = RowMatcher(site, contacts, planning)
    values = Comparison.of_plan(options).values(
        [record for c in site.changes for record in (c.before, c.after)], contacts
    )
    clear = options.get("blanks") == "clear"
    changes, conflicts, targets = [], list(site.conflicts), set()
    digests = dict(site.digests or {})
    by_name = planning.match_by == "name"
    for change in site.changes:
        target = _current_target(change, by_id, matcher, site, planning)
        if isinstance(target, Contact):
            targets.add(target.contact_id)
        entry = digests.pop(change.contact_id or 0, None) if change.action == "update" else None
        held = entry.split(" ", 2)[1] if entry is not None else ""
        # the fields the row compared and the update leaves as they are, edited since?
        edited = (
            isinstance(target, Contact)
            and bool(held)
            and _digest_of(target, held, values, by_name) != held
        )
        rebased: Change | Conflict | str | None
        if (
            change.action == "update"
            and isinstance(target, Contact)
            and target.contact_id != change.contact_id
        ):
            # the updated contact is gone (or renamed), another holds the row's id now: a
            # fresh plan leaves it alone only when it holds all the row compared
            rebased = _replaced(change, target, edited, values, matcher, by_id)
        elif edited:
            rebased = (
                f"contact_id {change.contact_id} no longer holds what the plan compared in the "
                f"fields it does not update"
            )
        elif isinstance(target, Conflict | str):
            rebased = target
        else:
            rebased = _rebase(change, target, values, clear)
        if isinstance(rebased, str):
            ids = (change.contact_id,) if change.contact_id else ()
            conflicts.append(
                _changed_since(site, change.row, change.external_contact_id, ids, rebased)
            )
        elif isinstance(rebased, Conflict):
            conflicts.append(rebased)
        elif rebased is not None:
            changes.append(rebased)
    # the external id each contact the plan is about held then (`moved`, below)
    recorded = {
        c.contact_id: c.before.get("external_contact_id")
        for c in site.changes
        if c.contact_id is not None
    }
    for contact_id, entry in digests.items():
        row_text, held, own = entry.split(" ", 2)
        recorded[contact_id] = own or None
        row = int(row_text)
        found = matcher.match(row, own) if own else by_id.get(contact_id)
        if isinstance(found, Contact):
            targets.add(found.contact_id)
        problem = _unchanged_now(contact_id, held, own, found, by_id, values, by_name, matcher)
        if isinstance(problem, str):
            conflicts.append(_changed_since(site, row, own or None, (contact_id,), problem))
        elif problem is not None:
            conflicts.append(problem)
    changes.sort(key=lambda c: c.sort_key)
    conflicts.sort(key=lambda c: (c.row or 0, c.external_contact_id or ""))
    rebased_site = replace(
        site,
        fingerprint=fingerprint(contacts),
        contacts_before=len(contacts),
        changes=changes,
        conflicts=conflicts,
        refusal=None,
    )
    if options.get("prune") and site.seen is not None and site.names is not None:
        # Contacts added since, and those a change or an unchanged row was about that hold
        # another external id now and that no row and no conflict is about any more: a fresh
        # plan prunes them unless a row of the file names them.
        in_conflict = {i for c in conflicts for i in c.contact_ids}
        moved = {
            contact_id
            for contact_id, own in recorded.items()
            if contact_id in by_id
            and contact_id not in targets | in_conflict
            and by_id[contact_id].external_contact_id != own
        }
        seen = set(site.seen) | targets
        added = [c for c in contacts if c.contact_id not in seen or c.contact_id in moved]
        unknown = invalid and site.invalid is None  # what an invalid row means: not recorded
        rebased_site = prune_added(
            rebased_site, added, bool(options.get("exact_ids")), prune=not unknown
        )
    return rebased_site


def _changed_since(
    site: SitePlan, row: int | None, external: str | None, ids: tuple[int, ...], what: str
) -> Conflict:
    message = CODES[CHANGED_SINCE_PLAN].render(what=what)
    return Conflict(site.dealer_id, site.site_id, row, external, ids, message)


def _current_target(
    change: Change,
    by_id: dict[int, Contact],
    matcher: RowMatcher,
    site: SitePlan,
    options: PlanOptions,
) -> Contact | Conflict | str | None:
    """The contact a change is about now, as a fresh plan finds its row's: None when there is
    none; a Conflict a fresh plan reports for the row; a string when the row's contact is not
    the one the plan changes any more (a `changed_since_plan` conflict)."""
    if change.action == "create":
        after = change.after
        named = tuple(after.get(name) or "" for name in EDITABLE_FIELDS)
        return matcher.match(change.row, change.external_contact_id or "", named)
    current = by_id.get(change.contact_id or 0)
    own = change.before.get("external_contact_id") or ""
    if change.row is None or not own:  # a prune, or a contact without an id: by its id
        if current is None and change.action == "update":
            return f"contact_id {change.contact_id} was deleted (a new plan creates it anew)"
        return current
    found = matcher.match(change.row, own)
    if isinstance(found, Conflict) or (
        isinstance(found, Contact) and found.contact_id == change.contact_id
    ):
        return found
    if isinstance(found, Contact) and change.action == "update":
        return found  # another contact has the row's id now (`_replaced`)
    if isinstance(found, Contact):
        return (
            f"contact_id {change.contact_id} is gone or has another external_contact_id, and "
            f"contact_id {found.contact_id} now has {own!r}"
        )
    if current is None:  # deleted meanwhile: nothing left to delete; an update creates anew
        if change.action == "delete":
            return None
        return f"contact_id {change.contact_id} was deleted (a new plan creates it anew)"
    renamed = (
        f"contact_id {change.contact_id} now has external_contact_id "
        f"{current.external_contact_id!r}, not {own!r}"
    )
    if change.action == "delete" and not matcher.pruned_now(current):
        return None  # a fresh plan finds no contact for the row, and keeps that one
    return renamed


def _unchanged_now(
    contact_id: int,
    held: str,
    own: str,
    found: Contact | Conflict | None,
    by_id: dict[int, Contact],
    values: ComparableValues,
    by_name: bool,
    matcher: RowMatcher,
) -> Conflict | str | None:
    """A contact the plan left unchanged, now: None when a fresh plan leaves its row unchanged
    too; the conflict a fresh plan reports; a string (a `changed_since_plan` conflict) when a
    fresh plan would change it (or its row) and the plan holds no value to re-base on."""
    if isinstance(found, Conflict):
        return found
    current = by_id.get(contact_id)
    if found is None:
        if current is None:
            return f"contact_id {contact_id} was deleted (a new plan creates it anew)"
        return (
            f"contact_id {contact_id} now has external_contact_id "
            f"{current.external_contact_id!r}, not {own!r}"
        )
    now = _digest_of(found, held, values, by_name)
    if found.contact_id == contact_id:
        if now == held:
            return None
        return f"contact_id {contact_id} ({own!r}) no longer holds what the plan left unchanged"
    if now == held and (current is None or not matcher.pruned_now(current)):
        return None  # made again as it was: a fresh plan leaves it so too
    return (
        f"contact_id {contact_id} is gone or has another external_contact_id, and contact_id "
        f"{found.contact_id} now has {own!r}"
    )


def _replaced(
    change: Change,
    other: Contact,
    edited: bool,
    values: ComparableValues,
    matcher: RowMatcher,
    by_id: dict[int, Contact],
) -> str | None:
    """An update whose contact is gone or renamed, while `other` holds the row's external id
    now: nothing to do when `other` holds every value the row compared (what the update sends,
    and the digest of the rest) and the contact, if still there, is not pruned; else a
    `changed_since_plan` conflict (the plan does not hold the row's other values)."""
    before = by_id.get(change.contact_id or 0)
    same = not edited and not _still_different(change.after, other, values)
    if same and (before is None or not matcher.pruned_now(before)):
        return None
    own = change.before.get("external_contact_id")
    return (
        f"contact_id {change.contact_id} is gone or has another external_contact_id, and "
        f"contact_id {other.contact_id} now has {own!r}"
    )


def _digest_of(contact: Contact, held: str, values: ComparableValues, by_name: bool) -> str:
    """The contact's digest now, over the fields of the digest `held` the plan recorded."""
    own = contact.external_contact_id or ""
    return digest(own, compared(values, contact, by_name), digest_mask(held))


def _rebase(
    change: Change, current: Contact | None, values: ComparableValues, clear: bool
) -> Change | str | None:
    """The change against `current`; None when nothing is left to do; a string: a conflict.
    With `clear` (the plan's --blanks clear), a create that became an update also empties the
    optional fields its row left blank, as a fresh plan's update would."""
    if change.action == "create":
        if current is None:
            return change
        wanted = dict(change.after)
        if clear:
            blank = (n for n in OPTIONAL_FIELDS if n not in wanted)
            wanted |= dict.fromkeys(blank)
        after = _still_different(wanted, current, values)
        return (
            replace(
                change,
                action="update",
                contact_id=current.contact_id,
                before=current.fields(),
                after=after,
            )
            if after
            else None
        )
    if current is None:
        return None  # deleted meanwhile: nothing to delete
    if change.action == "update":
        after = _still_different(change.after, current, values)
        return replace(change, before=current.fields(), after=after) if after else None
    if values.differ(current.fields(), change.before, CONTACT_FIELDS):
        return f"contact_id {change.contact_id} was edited, so it is not deleted"
    return replace(change, before=current.fields())


def _still_different(
    wanted: dict[str, str | None], current: Contact, values: ComparableValues
) -> dict[str, str | None]:
    """The fields of `wanted` that `current` does not hold already."""
    differ = values.differ(wanted, current.fields(), [k for k in wanted if k in EDITABLE_FIELDS])
    return {k: wanted[k] for k in differ}


# execution


class _PhaseQueue:
    """The changes ready to run: per site, the next phase (creates, then updates, then deletes)
    once the previous one is done. Workers take from it. A site starts when the workers run out
    of changes ready: its changes are made then (a plan holds them as columns, `plan.Changes`)
    and dropped as they are done, so only the sites in flight hold `Change`s, however large the
    plan. Each change comes with its site's number and its place among the site's changes."""

    def __init__(self, sites: list[SitePlan]) -> None:
        self._waiting = iter(enumerate(sites))  # the sites not started
        self._ready: deque[tuple[int, int, Change]] = deque()
        self._phases: dict[int, list[list[tuple[int, Change]]]] = {}
        self._left: dict[int, int] = {}
        self._open = len(sites)
        self._condition = threading.Condition()

    def _start(self) -> bool:
        """Start the next site (queue its first phase); False when every site has started (the
        condition's lock is held)."""
        found = next(self._waiting, None)
        if found is None:
            return False
        number, site = found
        phases: dict[str, list[tuple[int, Change]]] = {action: [] for action in ACTIONS}
        for index, change in enumerate(site.changes):
            if change.action in phases:
                phases[change.action].append((index, change))
        self._phases[number] = [phase for phase in phases.values() if phase]
        self._next_phase(number)
        return True

    def _next_phase(self, number: int) -> None:
        """Queue the site's next phase, or close the site (the condition's lock is held)."""
        phases = self._phases[number]
        if not phases:
            del self._phases[number]
            self._left.pop(number, None)
            self._open -= 1
            self._condition.notify_all()
            return
        batch = phases.pop(0)
        self._left[number] = len(batch)
        self._ready.extend((number, index, change) for index, change in batch)
        self._condition.notify_all()

    def take(self) -> tuple[int, int, Change] | None:
        """The next change to run (its site's number, its index among the site's changes, the
        change), waiting for one; None when every site is done."""
        with self._condition:
            while not self._ready:
                if self._start():
                    continue
                if self._open == 0:
                    return None
                self._condition.wait()
            return self._ready.popleft()

    def done(self, number: int) -> None:
        with self._condition:
            self._left[number] -= 1
            if self._left[number] == 0:
                self._next_phase(number)


# How many changes the verification reads their sites again for at a time (`_Done.batches`).
VERIFIED_AT_A_TIME = 20_000
_NONE = -(2**63)  # None in a number array of `_Done`


class _Done:
    """The changes a run made (answered ok), for its verification: per change, its site's number
    and its index among the site's changes, and what its outcome holds beyond the change, in
    arrays (the trace id, a uuid the client made, as its 16 bytes): about 40 bytes a change,
    not 850 as the `Change` and its `Outcome`. `batches` makes them again, a batch of sites at
    a time. The caller holds the applier's lock to add."""

    def __init__(self, sites: list[SitePlan]) -> None:
        self.sites = sites
        self._site, self._index, self._contact_id = array("i"), array("i"), array("q")
        self._http_status, self._attempts, self._generation = array("h"), array("H"), array("B")
        self._traces = bytearray()
        # The few outcomes with more: a note, made by another run, a trace id that is not a
        # uuid as `str(uuid.UUID)` writes it; by their number.
        self._more: dict[int, tuple[str, bool, str | None]] = {}

    def add(self, site: int, index: int, outcome: Outcome, generation: int) -> None:
        trace = outcome.trace_id
        try:
            held = uuid.UUID(trace)
            odd = str(held) != trace
        except ValueError:
            held, odd = uuid.UUID(int=0), True
        if outcome.error_message or outcome.by_another_run or odd:
            more = (outcome.error_message, outcome.by_another_run, trace if odd else None)
            self._more[len(self._site)] = more
        self._site.append(site)
        self._index.append(index)
        self._contact_id.append(_NONE if outcome.contact_id is None else outcome.contact_id)
        self._http_status.append(-1 if outcome.http_status is None else outcome.http_status)
        self._attempts.append(outcome.attempts)
        self._generation.append(generation)
        self._traces += held.bytes

    def __len__(self) -> int:
        return len(self._site)

    def site_count(self) -> int:
        return len(set(self._site))

    def batches(self) -> Iterator[list[tuple[Change, Outcome, int]]]:
        """The changes made, with their outcomes and key generations, a batch of whole sites
        (`VERIFIED_AT_A_TIME` changes, or a site's more) at a time, in site order."""
        import numpy as np

        size = VERIFIED_AT_A_TIME
        order = np.argsort(np.frombuffer(self._site, dtype=np.int32), kind="stable").tolist()
        batch: list[tuple[Change, Outcome, int]] = []
        for number, entries in itertools.groupby(order, self._site.__getitem__):
            made = self.sites[number].changes
            changes = made if isinstance(made, list) else list(made)
            batch += [self._pair(changes[self._index[n]], n) for n in entries]
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _pair(self, change: Change, n: int) -> tuple[Change, Outcome, int]:
        note, by_another_run, trace = self._more.get(n, ("", False, None))
        if trace is None:
            trace = str(uuid.UUID(bytes=bytes(self._traces[16 * n : 16 * n + 16])))
        contact_id, http_status = self._contact_id[n], self._http_status[n]
        outcome = Outcome(
            change.row,
            change.dealer_id,
            change.site_id,
            change.external_contact_id,
            change.action,
            "ok",
            None if contact_id == _NONE else contact_id,
            None if http_status < 0 else http_status,
            "",
            note,
            trace,
            self._attempts[n],
            by_another_run,
        )
        return change, outcome, self._generation[n]


class Applier:
    """Runs a plan's changes through the client, journaling and recording each.

    No write is sent before its intent is durable in the journal. Once the journal cannot be
    written, no further write is sent; the writes in flight finish, and their outcomes, which
    the journal cannot take, are kept in `kept` (the caller prints them and writes them to a
    fallback file)."""

    def __init__(
        self,
        client: ChektClient,
        journal: Journal,
        results: Results,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client, self.journal, self.results = client, journal, results
        self.progress = progress
        self.stop = stop or threading.Event()
        self.run_id = str(uuid.uuid4())
        self.done = _Done([])  # the changes made, for the verification
        self.journal_error: JournalError | None = None
        self.results_error: OSError | None = None
        self.kept: list[dict[str, object]] = []
        self.troubled: set[tuple[int, int]] = set()
        self.announced = 0  # intents written: writes that may have been sent
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def run(self, plan: Plan, kind: str = "apply") -> bool:
        """Apply every change of the plan's sites that no guard refused. Returns True when a
        stop request cut the run short. Raises JournalError when not even the run's first
        record can be written (then nothing was sent)."""
        self.journal.write(
            {
                "format": JOURNAL_FORMAT,
                "type": "run",
                "kind": kind,
                "run_id": self.run_id,
                "tool": f"bulk-contacts {__version__}",
                "api_url": self.client.settings.api_url,
                # how long a write of this run may take to land (a rollback waits for it)
                "request_timeout": self.client.timeout,
                "plan_checksum": plan.checksum or None,
                "source": plan.source,
            },
            durable=True,
        )
        sites = [site for site in plan.sites if site.changes and not site.refused]
        self.done = _Done(sites)
        if sites:
            queue = _PhaseQueue(sites)
            workers = [
                threading.Thread(target=self._work, args=(queue,), name=f"apply-{n}", daemon=True)
                for n in range(min(self.client.concurrency, len(plan.changes)))
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():  # short waits, so the main thread takes Ctrl-C
                    worker.join(0.1)
        return self.stop.is_set()

    def _work(self, queue: _PhaseQueue) -> None:
        while (item := queue.take()) is not None:
            site, index, change = item
            try:
                self._execute(change, (site, index))
            finally:
                queue.done(site)

    def send_again(self, change: Change, generation: int) -> Outcome:
        """Send a change once more, under the next generation of its key (`generation`: the one
        it went under; its first answer, the verification found, did nothing): journaled as any
        write; its row is not counted. Its outcome."""
        return self._execute(change, None, generation + 1, counted=False)

    def _execute(
        self,
        change: Change,
        place: tuple[int, int] | None,
        generation: int = 0,
        counted: bool = True,
    ) -> Outcome:
        """Journal, send and record the change: its site's number and index among the site's
        changes (`place`: None for a change sent again) keep it for the verification."""
        number = next(self._numbers)
        not_started = self._why_not_start()
        announced = not not_started  # its intent may be in the journal: its outcome must be too
        if announced:
            try:
                with self._lock:
                    self.announced += 1
                self.journal.write(
                    {"type": "intent", "run": self.run_id, "n": number, **_change_record(change)},
                    durable=True,
                )
            except JournalError as error:
                self._journal_failed(error)
                not_started = self._why_not_start()
        if not_started:
            skipped = self._outcome(change, "skipped", error_message=not_started)
            self._record(number, change, skipped, keep=announced, counted=counted)
            return skipped
        outcome, image, sent_as = self._send_and_judge(change, generation)
        self._record(number, change, outcome, image, keep=True, counted=counted)
        if place is not None and outcome.status == "ok":
            with self._lock:
                self.done.add(*place, outcome, sent_as)
        return outcome

    def _why_not_start(self) -> str:
        if self.journal_error is not None:
            return "not sent: the journal cannot be written"
        if self.stop.is_set():
            return "not started: the run was interrupted"
        return ""

    def _journal_failed(self, error: JournalError) -> None:
        with self._lock:
            if self.journal_error is None:
                self.journal_error = error

    def _send_and_judge(
        self, change: Change, generation: int = 0
    ) -> tuple[Outcome, dict[str, str | None] | None, int]:
        """Send the change; its outcome, the contact as the API returned it, and the key
        generation it went under."""
        try:
            result = self._send(change, generation)
        except NotFound as error:
            status = "failed" if change.action == "create" else "skipped"
            why = "the contact is no longer there (deleted by someone else)"
            return self._failure(change, status, error, why), None, generation
        except ApiError as error:
            return self._failure(change, "failed", error), None, generation
        except Exception as error:  # every change must end with an outcome, even after a bug
            message = f"unexpected error: {type(error).__name__}: {error}"
            self.client.log.error(
                error, step="apply", action=change.action, site_id=change.site_id, row=change.row
            )
            return self._outcome(change, "failed", error_message=message), None, generation
        contact = result.contact
        exchange = result.exchange
        note = exchange.note if exchange.recovered else ""
        if exchange.by_another_run:
            note = ANOTHER_RUN
        if generation and not note:
            note = (
                f"sent again (key generation {exchange.generation}): the first answer did nothing"
            )
        outcome = self._outcome(
            change,
            "ok",
            contact_id=contact.contact_id if contact else change.contact_id,
            http_status=exchange.http_status,
            trace_id=exchange.trace_id or "",
            attempts=exchange.attempts,
            error_message=note,
        )
        outcome = replace(outcome, by_another_run=exchange.by_another_run)
        return outcome, contact.fields() if contact else None, exchange.generation

    def _send(self, change: Change, generation: int = 0) -> WriteResult:
        dealer, site = change.dealer_id, change.site_id
        if change.action == "create":
            fields = {name: change.after.get(name) for name in CONTACT_FIELDS}
            new = NewContact(**fields)  # type: ignore[arg-type]  # a create has the required ones
            return self.client.create_contact(dealer, site, new, generation)
        assert change.contact_id is not None  # updates and deletes name their contact
        if change.action == "update":
            return self.client.update_contact(
                dealer, site, change.contact_id, change.after, generation
            )
        return self.client.delete_contact(dealer, site, change.contact_id)

    @staticmethod
    def _outcome(
        change: Change,
        status: str,
        *,
        contact_id: int | None = None,
        http_status: int | None = None,
        error_code: str = "",
        error_message: str = "",
        trace_id: str = "",
        attempts: int = 0,
    ) -> Outcome:
        return Outcome(
            change.row,
            change.dealer_id,
            change.site_id,
            change.external_contact_id,
            change.action,
            status,
            change.contact_id if contact_id is None else contact_id,
            http_status,
            error_code,
            error_message,
            trace_id,
            attempts,
        )

    def _failure(self, change: Change, status: str, error: ApiError, why: str = "") -> Outcome:
        message = f"{why}: {error.message}" if why else error.message
        return self._outcome(
            change,
            status,
            http_status=error.status,
            error_code=error.code or "",
            error_message=message,
            trace_id=error.trace_id or "",
            attempts=error.attempts,
        )

    def _record(
        self,
        number: int,
        change: Change,
        outcome: Outcome,
        image: dict[str, str | None] | None = None,
        keep: bool = False,
        counted: bool = True,
    ) -> None:
        record = {"type": "outcome", "run": self.run_id, "n": number, **asdict(outcome)}
        record["image"] = image
        try:
            self.journal.write(record)
        except JournalError as error:
            self._journal_failed(error)
            if keep:  # its intent was written (and maybe the write made): keep the outcome
                with self._lock:
                    self.kept.append(record)
        try:
            self.results.add(outcome, change, counted)
        except OSError as error:  # the journal (or the fallback) has it; the run goes on
            self.results_error = self.results_error or error
        if outcome.status != "ok":
            with self._lock:
                self.troubled.add((change.dealer_id, change.site_id))
        self.client.log.decision(
            step="apply",
            action=change.action,
            site_id=change.site_id,
            row=change.row,
            external_contact_id=change.external_contact_id,
            contact_id=outcome.contact_id,
            status=outcome.status,
            trace_id=outcome.trace_id or None,
            reason=outcome.error_message or None,
        )
        if self.progress is not None:
            self.progress(outcome)


def _change_record(change: Change) -> dict[str, object]:
    return {
        "action": change.action,
        "dealer_id": change.dealer_id,
        "site_id": change.site_id,
        "row": change.row,
        "external_contact_id": change.external_contact_id,
        "contact_id": change.contact_id,
        "before": change.before,
        "after": change.after,
        "reason": change.reason,
    }


def apply_plan(
    client: ChektClient,
    plan: Plan,
    files: RunFiles,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    kind: str = "apply",
    verify: bool = True,
) -> ApplyReport:
    """Apply a plan (already checked for freshness and guards), writing the journal, the
    results and the failed rows; then, unless `verify` is off or the run was cut short, read
    every site it touched again and record what does not hold (`status=unverified`).

    The journal may be an existing one (a resumed run): this run's records are appended under
    its own run id. A journal another process is writing, or one of runs against another API,
    is refused (InputError) before anything is sent."""
    applier: Applier | None = None
    try:
        with hold_journal(files.journal):
            check_appendable(files.journal, client.settings.api_url)
            results = Results(files.results, files.failed_rows)
            try:
                with Journal(files.journal) as journal:
                    applier = Applier(client, journal, results, progress, stop)
                    report = _run(applier, plan, kind, files)
                    if verify and not report.interrupted and not report.journal_error:
                        _verify(applier, report, Comparison.of_plan(plan.options))
            finally:
                closing_error = _close(results)
    finally:
        if applier is None or not applier.announced:
            files.discard_unused()
    report.counts = dict(results.counts)
    report.by_another_run = results.by_another_run
    if report.troubled is not None:
        report.troubled |= applier.troubled
    report.failed_rows_written = results.has_failed_rows
    trouble = applier.results_error or closing_error
    if trouble is not None:
        report.results_error = f"{files.results}: {trouble.strerror or trouble}"
    return report


def _run(applier: Applier, plan: Plan, kind: str, files: RunFiles) -> ApplyReport:
    report = ApplyReport({}, files, run_id=applier.run_id)
    report.refused = plan.refused_changes
    try:
        report.interrupted = applier.run(plan, kind)
    except JournalError as error:  # not even the run record: nothing was sent
        applier.journal_error = error
    if applier.journal_error is not None:
        report.journal_error = str(applier.journal_error)
        report.kept = list(applier.kept)
        if report.kept:
            report.fallback = keep_outcomes(report.kept, files.journal, applier.run_id)
    return report


def _verify(applier: Applier, report: ApplyReport, comparison: Comparison) -> None:
    """Every site the run changed read again, a batch of sites at a time (`_Done.batches`)."""
    report.verified_sites = applier.done.site_count()
    differences: list[Difference] = []
    generations: dict[int, int] = {}  # id(change) of a difference -> its key's generation
    try:
        for batch in applier.done.batches():
            found = verify_changes(
                applier.client, [(c, o) for c, o, _ in batch], comparison=comparison
            )
            if found:
                sent_as = {id(change): generation for change, _, generation in batch}
                generations |= {id(d.change): sent_as.get(id(d.change), 0) for d in found}
            differences += found
        differences = _send_again(applier, differences, comparison, generations)
    except ApiError as error:
        report.verify_error = str(error)
        report.troubled = None
        return
    report.unverified = len(differences)
    assert report.troubled is not None
    report.troubled |= {(d.change.dealer_id, d.change.site_id) for d in differences}
    for difference in differences:
        outcome = replace(
            difference.outcome,
            status="unverified",
            error_message=f"not as intended after the run: {difference.message}",
        )
        try:
            applier.results.add(outcome, difference.change)
        except OSError as error:  # printed all the same; the journal's note has them too
            applier.results_error = applier.results_error or error
        report.differences.append(outcome)
    with contextlib.suppress(JournalError):
        applier.journal.write(
            {
                "type": "note",
                "run": applier.run_id,
                "verified_sites": report.verified_sites,
                "unverified": [asdict(o) for o in report.differences],
            },
            durable=True,
        )


def _send_again(
    applier: Applier,
    differences: list[Difference],
    comparison: Comparison,
    generations: Mapping[int, int],
) -> list[Difference]:
    """The differences that may be answers a server replayed without saying so, for a change
    undone since (a create whose contact is not on the site; an update whose contact holds the
    values it had before, not a third one someone else wrote): each change is sent once more,
    under its key's next generation, and checked again. The differences left."""
    again = [d for d in differences if _did_nothing(applier.client, d, comparison)]
    if not again or applier.stop.is_set():
        return differences
    resent = []
    for difference in again:
        change = difference.change
        outcome = applier.send_again(change, generations.get(id(change), 0))
        if outcome.status == "ok":
            resent.append((change, outcome))
    made = {id(change) for change, _ in resent}
    still = verify_changes(applier.client, resent, comparison=comparison) if resent else []
    kept = [d for d in differences if d not in again or id(d.change) not in made]
    return kept + still


def _did_nothing(client: ChektClient, difference: Difference, comparison: Comparison) -> bool:
    change, outcome = difference.change, difference.outcome
    if outcome.error_message:  # an answer confirmed, found, or already sent again
        return False
    if change.action == "create":
        return difference.message == NOT_ON_SITE
    if change.action != "update" or change.contact_id is None:
        return False
    try:
        current = client.get_contact(change.dealer_id, change.site_id, change.contact_id)
    except NotFound:
        return False
    values = comparison.values([change.before], [current])
    return not values.differ(current.fields(), change.before, change.after)


def _close(results: Results) -> OSError | None:
    try:
        results.close()
    except OSError as error:
        return error
    return None


def keep_outcomes(records: list[dict[str, object]], journal: Path, run_id: str) -> Path | None:
    """Outcomes the journal could not take, in a file beside it, else in the system's temporary
    folder (the journal's disk may be the full one). None when neither can be written."""
    lines = "".join(json_value(r, default=str) + "\n" for r in records)
    for path in (
        journal.with_name(f"{journal.stem}-{run_id[:8]}-unjournaled.jsonl"),
        Path(tempfile.gettempdir()) / f"bulk-contacts-{run_id}-unjournaled.jsonl",
    ):
        try:
            file = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            continue
        try:
            with file:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # no half-written copy left behind
                path.unlink()
            continue
        return path
    return None
