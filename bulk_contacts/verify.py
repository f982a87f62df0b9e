"""Checking a run's writes: every site a run touched is read again and compared with what each
change meant to do. A write answered "done" is not taken on trust: a replayed answer that did
nothing, a concurrent edit, a lost write all show up here, contact by contact.

What must hold, per change that was answered ok: a create's contact is on its site exactly once
(by external id) with the fields sent; an update's fields hold the values sent; a deleted contact
is gone. The cost is one list call per site touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .client import ChektClient
from .compare import ComparableValues, Comparison
from .fetch import fetch_contacts
from .models import Contact
from .plan import Change
from .results import Outcome

NOT_ON_SITE = "the created contact is not on the site"


@dataclass(frozen=True)
class Difference:
    """A change the site does not show, and how."""

    change: Change
    outcome: Outcome
    message: str


def verify_changes(
    client: ChektClient,
    done: Iterable[tuple[Change, Outcome]],
    progress: Callable[[int], None] | None = None,
    comparison: Comparison | None = None,
) -> list[Difference]:
    """The changes (with their ok outcomes) that the sites do not show now. Values are compared
    as the plan compares them (`compare`): CHeKT may hold a phone in another format."""
    done = list(done)
    current = fetch_contacts(client, {(c.dealer_id, c.site_id) for c, _ in done}, progress)
    values = (comparison or Comparison()).values(
        [change.after for change, _ in done], [c for found in current.values() for c in found]
    )
    differences = []
    for change, outcome in done:
        contacts = current[(change.dealer_id, change.site_id)]
        message = difference(change, outcome, contacts, values)
        if message:
            differences.append(Difference(change, outcome, message))
    return differences


def difference(
    change: Change, outcome: Outcome, contacts: list[Contact], values: ComparableValues
) -> str:
    """What is not as the change meant, on a site holding `contacts`; "" when all is."""
    if change.action == "create":
        found = [c for c in contacts if c.external_contact_id == change.external_contact_id]
        if not found:
            return NOT_ON_SITE
        if len(found) > 1:
            return f"{len(found)} contacts on the site have this external_contact_id"
        return _fields_differ(found[0], change.after, values)
    contact_id = outcome.contact_id or change.contact_id
    target = next((c for c in contacts if c.contact_id == contact_id), None)
    if change.action == "delete":
        return "the deleted contact is still on the site" if target else ""
    if target is None:
        return "the updated contact is no longer on the site"
    return _fields_differ(target, change.after, values)


def _fields_differ(contact: Contact, sent: dict[str, str | None], values: ComparableValues) -> str:
    wrong = values.differ(contact.fields(), sent, sent)
    return f"{', '.join(wrong)} not as sent" if wrong else ""
