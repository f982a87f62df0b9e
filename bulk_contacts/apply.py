"""Applying a plan: concurrent, ordered per site, journaled, interruptible.

Per site, creates run before updates before deletes (so a site never drops to zero contacts
mid-run), each phase's changes concurrently; sites run side by side within the client's
concurrency. Every write is announced in the journal (fsynced) before it is sent and recorded
after; every outcome goes to the results. A stop request (Ctrl-C) lets the writes in flight
finish and records the rest as skipped.

A saved plan is checked before anything is written: each site it touches is read again and its
fingerprint compared with the plan's. Stale sites are refused, or with `refresh`, their changes
are re-based on what the site holds now (`rebase_site`).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .client import ChektClient
from .errors import ApiError, NotFound
from .fetch import fetch_contacts
from .journal import JOURNAL_FORMAT, Journal
from .models import CONTACT_FIELDS, EDITABLE_FIELDS, Contact, NewContact
from .plan import ACTIONS, Change, Conflict, Plan, SitePlan, fingerprint
from .results import Outcome, Results

Progress = Callable[[Outcome], None]


@dataclass
class RunFiles:
    """Where an apply writes: results, failed rows, journal."""

    results: Path
    journal: Path
    failed_rows: Path

    @classmethod
    def choose(
        cls,
        results: Path | None,
        journal: Path | None,
        base: Path | None = None,
        kind: str = "apply",
    ) -> RunFiles:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = (base or Path("bulk-contacts-runs")) / f"{stamp}-{kind}"
        if results is None:
            results, default_journal = folder / "results.csv", folder / "journal.jsonl"
        else:  # beside the results the user chose
            default_journal = results.with_name(results.stem + "-journal.jsonl")
        return cls(
            results=results,
            journal=journal or default_journal,
            failed_rows=results.with_name(results.stem + "-failed-rows.csv"),
        )


@dataclass
class ApplyReport:
    counts: dict[str, int]
    files: RunFiles
    interrupted: bool = False
    failed_rows_written: bool = False
    stale: list[SitePlan] = field(default_factory=list)


# freshness


def check_freshness(
    client: ChektClient, plan: Plan, refresh: bool, progress: Callable[[int], None] | None = None
) -> list[SitePlan]:
    """Read every site the plan changes again. Sites whose contacts changed since the plan are
    returned as stale; with `refresh`, their changes are re-based on what they hold now."""
    touched = [site for site in plan.sites if site.changes]
    current = fetch_contacts(client, [(s.dealer_id, s.site_id) for s in touched], progress)
    stale = []
    for index, site in enumerate(plan.sites):
        contacts = current.get((site.dealer_id, site.site_id))
        if contacts is None or fingerprint(contacts) == site.fingerprint:
            continue
        stale.append(site)
        plan.sites[index] = (
            rebase_site(site, contacts)
            if refresh
            else replace(
                site,
                refused="the site changed in CHeKT since the plan was made (stale); make a "
                "new plan, or apply with --refresh",
            )
        )
    return stale


def rebase_site(site: SitePlan, contacts: list[Contact]) -> SitePlan:
    """The site's changes, made again against what it holds now: a create whose contact now
    exists becomes an update of the differing fields (or nothing); an update sends only what
    still differs; a delete of a contact that changed meanwhile becomes a conflict; changes to
    contacts that are gone are dropped."""
    by_id = {c.contact_id: c for c in contacts}
    by_external: dict[str, list[Contact]] = {}
    for contact in contacts:
        if contact.external_contact_id:
            by_external.setdefault(contact.external_contact_id, []).append(contact)
    changes, conflicts = [], list(site.conflicts)
    for change in site.changes:
        target = _current_target(change, by_id, by_external)
        rebased = (
            _rebase(change, target)
            if target is not False
            else "several contacts now share this external_contact_id"
        )
        if isinstance(rebased, str):
            ids = (change.contact_id,) if change.contact_id else ()
            conflicts.append(
                Conflict(
                    change.dealer_id,
                    change.site_id,
                    change.row,
                    change.external_contact_id,
                    ids,
                    rebased,
                )
            )
        elif rebased is not None:
            changes.append(rebased)
    changes.sort(key=lambda c: c.sort_key)
    return replace(
        site,
        fingerprint=fingerprint(contacts),
        contacts_before=len(contacts),
        changes=changes,
        conflicts=conflicts,
        refused="",
    )


def _current_target(
    change: Change, by_id: dict[int, Contact], by_external: dict[str, list[Contact]]
) -> Contact | bool | None:
    if change.action == "create":
        found = by_external.get(change.external_contact_id or "", [])
        return False if len(found) > 1 else (found[0] if found else None)
    return by_id.get(change.contact_id or 0)


def _rebase(change: Change, current: Contact | None) -> Change | str | None:
    """The change against `current`; None when nothing is left to do; a string: a conflict."""
    if change.action == "create":
        if current is None:
            return change
        after = _still_different(change.after, current)
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
        return None  # deleted meanwhile: nothing to update or delete
    if change.action == "update":
        after = _still_different(change.after, current)
        return replace(change, before=current.fields(), after=after) if after else None
    if current.fields() != {k: change.before.get(k) for k in CONTACT_FIELDS}:
        return "the contact changed in CHeKT since the plan was made; it is not deleted"
    return change


def _still_different(wanted: dict[str, str | None], current: Contact) -> dict[str, str | None]:
    return {
        k: v
        for k, v in wanted.items()
        if k in EDITABLE_FIELDS and (getattr(current, k) or None) != (v or None)
    }


# execution


class _PhaseQueue:
    """The changes ready to run: per site, the next phase (creates, then updates, then deletes)
    once the previous one is done. Workers take from it; it holds only references to the
    plan's changes, so memory stays flat however large the plan."""

    def __init__(self, sites: list[SitePlan]) -> None:
        self._ready: deque[tuple[SitePlan, Change]] = deque()
        self._phases = {
            id(site): [[c for c in site.changes if c.action == action] for action in ACTIONS]
            for site in sites
        }
        self._left: dict[int, int] = {}
        self._open = len(sites)
        self._condition = threading.Condition()
        with self._condition:
            for site in sites:
                self._next_phase(site)

    def _next_phase(self, site: SitePlan) -> None:
        """Queue the site's next non-empty phase (the condition's lock is held)."""
        phases = self._phases[id(site)]
        while phases and not phases[0]:
            phases.pop(0)
        if not phases:
            self._open -= 1
            self._condition.notify_all()
            return
        batch = phases.pop(0)
        self._left[id(site)] = len(batch)
        self._ready.extend((site, change) for change in batch)
        self._condition.notify_all()

    def take(self) -> tuple[SitePlan, Change] | None:
        """The next change to run, waiting for one; None when every site is done."""
        with self._condition:
            while not self._ready:
                if self._open == 0:
                    return None
                self._condition.wait()
            return self._ready.popleft()

    def done(self, site: SitePlan) -> None:
        with self._condition:
            self._left[id(site)] -= 1
            if self._left[id(site)] == 0:
                self._next_phase(site)


class Applier:
    """Runs a plan's changes through the client, journaling and recording each."""

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
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def run(self, plan: Plan, kind: str = "apply") -> bool:
        """Apply every change of the plan's sites that no guard refused. Returns True when a
        stop request cut the run short."""
        self.journal.write(
            {
                "format": JOURNAL_FORMAT,
                "type": "run",
                "kind": kind,
                "run_id": str(uuid.uuid4()),
                "tool": f"bulk-contacts {__version__}",
                "api_url": self.client.settings.api_url,
                "plan_checksum": plan.checksum or None,
                "source": plan.source,
            },
            durable=True,
        )
        sites = [site for site in plan.sites if site.changes and not site.refused]
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
            site, change = item
            try:
                self._execute(change, site)
            finally:
                queue.done(site)

    def _execute(self, change: Change, site: SitePlan) -> None:
        number = next(self._numbers)
        if self.stop.is_set():
            outcome = self._outcome(
                change, "skipped", error_message="not started: the run was interrupted"
            )
            self._record(number, change, outcome, None)
            return
        self.journal.write({"type": "intent", "n": number, **_change_record(change)}, durable=True)
        image = None
        try:
            result = self._send(change, site.fingerprint)
        except NotFound as error:
            status = "failed" if change.action == "create" else "skipped"
            outcome = self._failure(
                change, status, error, "the contact is no longer there (deleted by someone else)"
            )
        except ApiError as error:
            outcome = self._failure(change, "failed", error)
        except Exception as error:  # every change must end with an outcome, even after a bug
            outcome = self._outcome(
                change, "failed", error_message=f"unexpected error: {type(error).__name__}: {error}"
            )
        else:
            contact = result.contact
            image = contact.fields() if contact else None
            exchange = result.exchange
            outcome = self._outcome(
                change,
                "ok",
                contact_id=contact.contact_id if contact else change.contact_id,
                http_status=exchange.http_status,
                trace_id=exchange.trace_id or "",
                attempts=exchange.attempts,
                error_message=exchange.note if exchange.recovered else "",
            )
        self._record(number, change, outcome, image)

    def _send(self, change: Change, basis: str):
        dealer, site = change.dealer_id, change.site_id
        if change.action == "create":
            fields = {
                k: change.after.get(k)
                for k in ("external_contact_id", "first_name", "last_name", "phone_number", "email")
            }
            return self.client.create_contact(dealer, site, NewContact(**fields), basis=basis)
        if change.action == "update":
            return self.client.update_contact(
                dealer, site, change.contact_id, change.after, basis=basis
            )
        return self.client.delete_contact(dealer, site, change.contact_id, basis=basis)

    @staticmethod
    def _outcome(change: Change, status: str, **details: object) -> Outcome:
        values = {"contact_id": change.contact_id, **details}
        return Outcome(
            change.row,
            change.dealer_id,
            change.site_id,
            change.external_contact_id,
            change.action,
            status,
            **values,
        )  # type: ignore[arg-type]

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
        self, number: int, change: Change, outcome: Outcome, image: dict[str, str | None] | None
    ) -> None:
        self.journal.write({"type": "outcome", "n": number, **asdict(outcome), "image": image})
        self.results.add(outcome, change)
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
) -> ApplyReport:
    """Apply a plan (already checked for freshness and guards), writing the journal, the
    results and the failed rows."""
    results = Results(files.results, files.failed_rows)
    try:
        with Journal(files.journal) as journal:
            interrupted = Applier(client, journal, results, progress, stop).run(plan, kind)
    finally:
        results.close()
    return ApplyReport(dict(results.counts), files, interrupted, results.has_failed_rows)
