"""Undoing runs from their journal: the inverse plan.

Delete what was created, restore the fields that were updated, re-create what was deleted with
the same fields and external id. A contact that changed in CHeKT since is not overwritten: it is
a conflict in the inverse plan, unless `force`.

Everything a run may have done is undone, not only what it recorded as done: an intent with no
outcome (the run was killed, or its journal failed, while the write was in flight) and a failure
that may hide a committed write (no answer, 5xx) are resolved by looking at CHeKT. A create whose
contact is on the site (by external id) is deleted; an update whose fields hold the values it
sent is reverted; a delete whose contact is gone is re-created.

Records are paired by run id and counter, and a journal several runs wrote (a resumed apply) is
undone completely, newest first: the undo of each write is played, newest first, on a copy of
each site's current contacts, and the inverse plan is the difference between the site now and
that copy, one change per contact.

A rollback records in each journal it undid the writes it found undone once it has run (an
`undone` record): a later rollback of the same journal leaves those alone, so it never undoes
what was made since (a later apply making the same contact again), and says so.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import ChektClient
from .columns import CONTACT_FIELDS, EDITABLE_FIELDS
from .compare import ComparableValues, Comparison
from .errors import BulkContactsError, InputError, RunInProgress
from .fetch import fetch_contacts, fetch_sites
from .journal import Journal, NotAJournal, read_journal
from .lock import hold_journal
from .models import Contact, SiteKey
from .plan import Change, Conflict, Plan, SitePlan, fingerprint
from .retries import RetryPolicy

if TYPE_CHECKING:
    from .apply import ApplyReport

Fields = dict[str, Any]
Journals = list[tuple[Path, list[dict[str, Any]]]]  # each journal's path and its records


@dataclass(frozen=True)
class Step:
    """A write a journal says a run made (`outcome` its ok record), or may have made (None)."""

    intent: dict[str, Any]
    outcome: dict[str, Any] | None

    @property
    def site(self) -> SiteKey:
        return (self.intent["dealer_id"], self.intent["site_id"])


def journal_steps(records: list[dict[str, Any]]) -> list[Step]:
    """The writes of every run in the journal, oldest first. A write whose outcome is missing,
    or a failure that may hide a committed write, is a step with no outcome; refused and skipped
    writes did nothing and are not steps, nor are writes another run made (`by_another_run`:
    undoing them would undo that run's work)."""
    intents: dict[tuple[str, int], dict[str, Any]] = {}
    outcomes: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        if record["type"] in ("intent", "outcome"):
            kind = intents if record["type"] == "intent" else outcomes
            kind[(record["run"], record["n"])] = record
    undone = undone_steps(records)
    steps = []
    for key, intent in intents.items():
        if key in undone:
            continue
        outcome = outcomes.get(key)
        if outcome is None or _uncertain(outcome):
            steps.append(Step(intent, None))
        elif outcome["status"] == "ok" and not outcome.get("by_another_run"):
            steps.append(Step(intent, outcome))
    return steps


# How long a write may take to land when its run's journal does not say (its --timeout).
DEFAULT_REQUEST_TIMEOUT = 30.0
IN_FLIGHT_MARGIN = 1.0  # seconds past the timeout: the intent's time is taken before the send


def in_flight(records: list[dict[str, Any]]) -> tuple[int, float]:
    """The writes a stopped run sent and never saw answered (intents with no outcome, not
    undone since), and the time (Unix) until which one of them may still land in CHeKT: its
    intent's time plus its run's request timeout. A rollback that reads the sites before then
    would miss a write landing after it. (0, 0.0) when there are none."""
    times = [sent + timeout for _, sent, timeout in _unanswered(records)]
    return len(times), (max(times) + IN_FLIGHT_MARGIN if times else 0.0)


def still_retried(records: list[dict[str, Any]], now: float) -> tuple[set[tuple[str, int]], float]:
    """The unanswered writes the stopped run may have been sending again (after a 5xx or no
    answer) when it stopped, which could land until every attempt the retry policy allows
    had timed out: a rollback before then does not record them as undone, so a later one
    looks for them again. Their keys, and the time until which one may land."""
    policy = RetryPolicy()
    horizon = {
        key: sent + policy.max_attempts * timeout + policy.max_total_wait
        for key, sent, timeout in _unanswered(records)
    }
    late = {key for key, until in horizon.items() if until > now}
    return late, max((horizon[key] for key in late), default=0.0)


def _unanswered(records: list[dict[str, Any]]) -> list[tuple[tuple[str, int], float, float]]:
    """Each intent with no outcome (not undone since): its key, its time, its run's timeout."""
    timeouts = {
        r["run_id"]: float(r.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)
        for r in records
        if r["type"] == "run"
    }
    answered = {(r["run"], r["n"]) for r in records if r["type"] == "outcome"}
    skip = answered | undone_steps(records)
    return [
        (
            (r["run"], r["n"]),
            float(r.get("time") or 0.0),
            timeouts.get(r["run"], DEFAULT_REQUEST_TIMEOUT),
        )
        for r in records
        if r["type"] == "intent" and (r["run"], r["n"]) not in skip
    ]


def undone_steps(records: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """The writes (run id, n) an earlier rollback recorded as undone."""
    return {(str(run), int(n)) for r in records if r["type"] == "undone" for run, n in r["steps"]}


def step_key(step: Step) -> tuple[str, int]:
    return (step.intent["run"], step.intent["n"])


def journal_files(paths: Iterable[Path]) -> list[Path]:
    """The journals named: a file, or a run folder (its `journal.jsonl`); each once."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            journal = path / "journal.jsonl"
            if not journal.is_file():
                raise InputError(
                    f"{path}: a folder with no journal.jsonl in it; name a run folder "
                    f"(bulk-contacts-runs/<run>/) or a journal file"
                )
            path = journal
        if all(path.resolve() != other.resolve() for other in found):
            found.append(path)
    return found


def hold_source_journal(
    path: Path, wait: bool = False, tell: Callable[[str], None] | None = None
) -> AbstractContextManager[None]:
    """The lock of a journal to roll back: a run still writing it is refused (RunInProgress,
    exit 1), or with `wait` waited for (`tell` says so); never interleaved with."""

    def busy(holder: str) -> Exception:
        return RunInProgress(
            f"{path} belongs to a run still in progress ({holder}): nothing was rolled back; "
            f"roll back once it has ended, or wait for it",
            setting="wait",
        )

    return hold_journal(path, wait, tell, busy)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """A journal's records; a file that is not one says what rollback takes instead."""
    try:
        return read_journal(path)
    except NotAJournal as error:
        if error.plan:
            raise InputError(
                f"{path} is a plan; rollback takes a journal or run folder: the journal.jsonl "
                f"of the apply to undo, or its folder (`bulk-contacts rollback "
                f"bulk-contacts-runs/<run>/`, both printed at the end of the apply); the plan "
                f"itself is applied with `bulk-contacts apply {path}`"
            ) from None
        raise InputError(
            f"{error}; rollback takes the journal.jsonl an apply wrote, or its run folder (both "
            f"printed at the end of the apply: `journal: ...`)"
        ) from None


def read_journals(paths: Iterable[Path]) -> Journals:
    """Each journal's records, the journals oldest first (by their first run's time), so that
    their writes together are oldest first and a rollback undoes the newest first."""
    journals = [(path, _read_journal(path)) for path in paths]

    def started(item: tuple[Path, list[dict[str, Any]]]) -> float:
        times = [r.get("time") or 0.0 for r in item[1] if r["type"] == "run"]
        return min(times) if times else 0.0

    return sorted(journals, key=started)


def already_rolled_back(records: list[dict[str, Any]]) -> bool:
    """Nothing is left to undo because an earlier rollback undid it all."""
    return not journal_steps(records) and any(r["type"] == "undone" for r in records)


def journal_dealers(records: list[dict[str, Any]]) -> set[int]:
    """The dealers the journals' runs wrote to (whose locks a rollback takes)."""
    return {r["dealer_id"] for r in records if r["type"] == "intent"}


def check_api_url(journals: Journals, api_url: str) -> None:
    """A rollback goes to the server its journal's runs wrote to, never another: a journal of
    runs against another API URL is refused, naming the URL to give with --api-url."""
    for path, records in journals:
        urls = sorted({r["api_url"] for r in records if r["type"] == "run" and r.get("api_url")})
        if urls and urls != [api_url]:
            raise InputError(
                f"{path} records runs against {', '.join(urls)}, not {api_url}: nothing was "
                f"rolled back; to roll back there, pass --api-url {urls[0]}",
                setting="api_url",
            )


def settled_steps(
    records: list[dict[str, Any]], plan: Plan, troubled: set[SiteKey] | None
) -> list[tuple[str, int]]:
    """The journal's writes a rollback (`plan`, run or not) leaves undone: those on sites where
    the inverse plan has no conflict and the run had no change that failed, was skipped or did
    not verify (`troubled`; None: the run could not be checked, nothing is settled)."""
    if troubled is None:
        return []
    unsettled = {
        (site.dealer_id, site.site_id) for site in plan.sites if site.conflicts or site.refused
    }
    unsettled |= troubled
    late, _ = still_retried(records, time.time())
    return [
        step_key(s)
        for s in journal_steps(records)
        if s.site not in unsettled and step_key(s) not in late
    ]


def record_undone(path: Path, steps: list[tuple[str, int]], run_id: str, own: Path | None) -> None:
    """Append to the journal undone the writes the rollback `run_id` leaves undone."""
    if not steps:
        return
    with Journal(path) as journal:
        journal.write(
            {
                "type": "undone",
                "run": run_id,
                "steps": [list(key) for key in steps],
                "journal": str(own) if own else None,
            },
            durable=True,
        )


def record_rollback(journals: Journals, plan: Plan, report: ApplyReport | None) -> list[str]:
    """Record in each rolled-back journal the writes the rollback (`plan`, and its `report`
    when it ran) leaves undone; a warning for each journal that could not be written to."""
    troubled = set() if report is None else report.troubled
    warnings = []
    for path, records in journals:
        try:
            record_undone(
                path,
                settled_steps(records, plan, troubled),
                report.run_id if report else "",
                report.files.journal if report else None,
            )
        except BulkContactsError as error:
            warnings.append(
                f"warning: {path}: could not record what was undone ({error}); a later "
                f"rollback of it may undo what was made since"
            )
    return warnings


def _uncertain(outcome: dict[str, Any]) -> bool:
    """A failure after which the write may still have been made: no answer, or a server error."""
    status = outcome.get("http_status")
    return outcome["status"] == "failed" and (status is None or status >= 500 or status == 429)


def inverse_plan(
    client: ChektClient,
    records: list[dict[str, Any]],
    journal: Path,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    comparison: Comparison | None = None,
) -> Plan:
    """The plan that undoes every write of the journal's runs. Values are compared as a plan
    compares them (`compare`), with `comparison`'s region and phone format: a contact whose
    phone CHeKT holds in another format has not changed since (by default, phones are read for
    the US)."""
    steps = journal_steps(records)
    by_site: dict[SiteKey, list[Step]] = defaultdict(list)
    for step in steps:
        by_site[step.site].append(step)
    current = fetch_contacts(client, by_site, progress)
    # The sites by name and account number, as plan and apply show them (a site gone since
    # is shown by its id alone).
    named = {
        (dealer, site.site_id): site
        for dealer, sites in fetch_sites(client, {key[0] for key in by_site}).items()
        for site in sites
    }
    values = (comparison or Comparison()).values(
        [image for step in steps for image in _images(step)],
        [c for contacts in current.values() for c in contacts],
    )
    sites = []
    for key in sorted(by_site):
        contacts = current[key]
        held = named.get(key)
        site = SitePlan(
            key[0],
            key[1],
            held.name if held else None,
            held.account_number if held else None,
            held.external_site_id if held else None,
            fingerprint(contacts),
            len(contacts),
        )
        undo = _Undo(site, contacts, force, values)
        for step in reversed(by_site[key]):  # newest first
            undo.play(step)
        site.changes = sorted(undo.changes(), key=lambda c: c.sort_key)
        sites.append(site)
    return Plan(sites=sites, source=f"rollback of {journal}", options={"force": force})


def _images(step: Step) -> list[Fields]:
    """The contact's fields as a step records them: before, sent, and as the API returned it."""
    image = (step.outcome or {}).get("image")
    return [step.intent["before"], step.intent["after"], *([image] if image else [])]


@dataclass
class _Undo:
    """One site's contacts as the undo of its steps, newest first, leaves them (`state`)."""

    site: SitePlan
    contacts: list[Contact]
    force: bool
    values: ComparableValues
    now: dict[int, Fields] = field(init=False)
    state: dict[int, Fields] = field(init=False)
    alias: dict[int, int] = field(default_factory=dict)  # a deleted contact -> its re-creation
    blocked: set[int] = field(default_factory=set)  # in a conflict: older steps leave it alone
    source: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> newest intent

    def __post_init__(self) -> None:
        self.now = {c.contact_id: c.fields() for c in self.contacts}
        self.state = {cid: dict(fields) for cid, fields in self.now.items()}

    def play(self, step: Step) -> None:
        intent = step.intent
        target = self._id(intent, step.outcome)
        if intent["action"] != "delete" and (target is None or target not in self.state):
            target, ambiguous = self._follow(step)
            if ambiguous:
                return
        if target in self.blocked:
            return
        undo = {"create": self._create, "update": self._update, "delete": self._delete}
        undo[intent["action"]](step, target)

    def _id(self, intent: dict[str, Any], outcome: dict[str, Any] | None) -> int | None:
        found = (outcome or {}).get("contact_id") or intent.get("contact_id")
        return self.alias.get(found, found) if found else None

    def _follow(self, step: Step) -> tuple[int | None, bool]:
        """The contact a create or update was made on, when its id is not on the site (the
        write's outcome is unknown, or a later rollback re-created the contact under a new id):
        the one contact with its external id. Several: a conflict, and True."""
        external = step.intent.get("external_contact_id")
        found = self._by_external(external)
        if len(found) > 1:
            self._conflict(
                step,
                None,
                f"{len(found)} contacts share external_contact_id {external!r}; this "
                f"{step.intent['action']} is not undone (resolve them in CHeKT)",
            )
            self.blocked.update(found)
            return None, True
        return (found[0] if found else None), False

    def _create(self, step: Step, target: int | None) -> None:
        if target is None:
            return  # never made, or gone already
        image = (step.outcome or {}).get("image") or step.intent["after"]
        if self._changed_since(step, target, image, CONTACT_FIELDS):
            return
        self._touch(target, step.intent)
        del self.state[target]

    def _update(self, step: Step, target: int | None) -> None:
        intent = step.intent
        fields = self.state.get(target) if target is not None else None
        if fields is None or target is None:
            if step.outcome is not None:
                self._conflict(step, target, "the contact was deleted since; nothing to restore")
            return
        if not self.values.differ(fields, intent["before"], intent["after"]):
            return  # as it was before (never made, or undone already)
        image = (step.outcome or {}).get("image") or intent["after"]
        if self._changed_since(step, target, image, intent["after"]):
            return
        self._touch(target, intent)
        fields.update({k: intent["before"].get(k) for k in intent["after"]})

    def _delete(self, step: Step, target: int | None) -> None:
        intent = step.intent
        if target is not None and target in self.state:
            return  # never made
        before, external = intent["before"], intent.get("external_contact_id")
        again = self._by_external(external)
        if len(again) == 1 and not self.values.differ(self.state[again[0]], before, CONTACT_FIELDS):
            self.alias[intent["contact_id"]] = again[0]  # re-created as it was already
            return
        if again:
            self._conflict(
                step,
                None,
                f"a contact with external_contact_id {external!r} is on the site again; it is "
                f"not re-created",
            )
        elif not external:
            self._conflict(
                step,
                None,
                "the deleted contact had no external_contact_id, which CHeKT requires to create "
                "one; re-create it in the portal",
            )
        else:
            self.state[intent["contact_id"]] = {k: before.get(k) for k in CONTACT_FIELDS}
            self._touch(intent["contact_id"], intent)

    def _changed_since(self, step: Step, target: int, image: Fields, fields: Iterable[str]) -> bool:
        """A contact changed by someone else since the step: a conflict, unless forced."""
        changed = self.values.differ(self.state[target], image, fields)
        if not changed or self.force:
            return False
        self._conflict(
            step,
            target,
            f"changed in CHeKT since the apply ({', '.join(changed)}); not overwritten "
            f"(--force to undo anyway)",
        )
        return True

    def _by_external(self, external: str | None) -> list[int]:
        if not external:
            return []
        return [cid for cid, f in self.state.items() if f.get("external_contact_id") == external]

    def _touch(self, target: int, intent: dict[str, Any]) -> None:
        self.source.setdefault(target, intent)

    def _conflict(self, step: Step, target: int | None, message: str) -> None:
        if target is not None:
            self.blocked.add(target)
        shown = target if target is not None and target in self.now else None
        self.site.conflicts.append(
            Conflict(
                self.site.dealer_id,
                self.site.site_id,
                step.intent.get("row"),
                step.intent.get("external_contact_id"),
                (shown,) if shown else (),
                message,
            )
        )

    def changes(self) -> list[Change]:
        """What brings the site from what it holds now to `state`: one change per contact."""
        made = []
        for cid, fields in self.state.items():
            before = self.now.get(cid)
            if before is None:
                after = {k: v for k, v in fields.items() if v not in (None, "")}
                made.append(self._change("create", cid, None, {}, after))
                continue
            changed = self.values.differ(before, fields, EDITABLE_FIELDS)
            after = {k: fields.get(k) for k in changed}
            if after:
                made.append(self._change("update", cid, cid, before, after))
        for cid, before in self.now.items():
            if cid not in self.state:
                made.append(self._change("delete", cid, cid, before, {}))
        return made

    def _change(
        self, action: str, key: int, contact_id: int | None, before: Fields, after: Fields
    ) -> Change:
        intent = self.source.get(key, {})
        external = (before or after).get("external_contact_id") or intent.get("external_contact_id")
        return Change(
            action,
            self.site.dealer_id,
            self.site.site_id,
            intent.get("row"),
            external,
            contact_id,
            before,
            after,
            "rollback",
        )
