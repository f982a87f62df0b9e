"""Undoing an apply from its journal: the inverse plan.

Delete what was created, restore the fields that were updated, re-create what was deleted with
the same fields and external id. A contact that changed in CHeKT since that apply is not
overwritten: it is a conflict in the inverse plan, unless `force`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import ChektClient
from .fetch import fetch_contacts
from .models import CONTACT_FIELDS, Contact
from .plan import Change, Conflict, Plan, SitePlan, fingerprint

SiteKey = tuple[int, int]


def completed_changes(records: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """(intent, outcome) of every write that succeeded, in the order they were made."""
    intents = {r["n"]: r for r in records if r.get("type") == "intent"}
    return [
        (intents[r["n"]], r)
        for r in records
        if r.get("type") == "outcome" and r.get("status") == "ok" and r["n"] in intents
    ]


def inverse_plan(
    client: ChektClient,
    records: list[dict[str, Any]],
    journal: Path,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    done = completed_changes(records)
    by_site: dict[SiteKey, list[tuple[dict, dict]]] = defaultdict(list)
    for intent, outcome in done:
        by_site[(intent["dealer_id"], intent["site_id"])].append((intent, outcome))
    current = fetch_contacts(client, by_site, progress)
    sites = []
    for key in sorted(by_site):
        contacts = current[key]
        site = SitePlan(key[0], key[1], None, None, None, fingerprint(contacts), len(contacts))
        for intent, outcome in by_site[key]:
            _undo(intent, outcome, contacts, force, site)
        site.changes.sort(key=lambda c: c.sort_key)
        sites.append(site)
    return Plan(sites=sites, source=f"rollback of {journal}", options={"force": force})


def _undo(
    intent: dict, outcome: dict, contacts: list[Contact], force: bool, site: SitePlan
) -> None:
    by_id = {c.contact_id: c for c in contacts}
    action = intent["action"]
    contact_id = outcome.get("contact_id")
    external = intent.get("external_contact_id")

    def conflict(message: str) -> None:
        site.conflicts.append(
            Conflict(
                site.dealer_id,
                site.site_id,
                intent.get("row"),
                external,
                (contact_id,) if contact_id else (),
                message,
            )
        )

    def change(kind: str, target: Contact | None, after: dict) -> None:
        site.changes.append(
            Change(
                kind,
                site.dealer_id,
                site.site_id,
                intent.get("row"),
                external,
                target.contact_id if target else None,
                target.fields() if target else {},
                after,
                "rollback",
            )
        )

    if action == "delete":
        again = [c for c in contacts if external and c.external_contact_id == external]
        if len(again) == 1 and not _changed_fields(again[0], intent["before"], CONTACT_FIELDS):
            return  # already re-created as it was (an earlier rollback)
        if again:
            conflict(
                f"a contact with external_contact_id {external!r} is on the site again; "
                f"it is not re-created"
            )
        elif not external:
            conflict(
                "the deleted contact had no external_contact_id, which CHeKT requires to "
                "create one; re-create it in the portal"
            )
        else:
            before = intent["before"]
            change(
                "create",
                None,
                {k: before.get(k) for k in CONTACT_FIELDS if before.get(k) not in (None, "")},
            )
        return
    target = by_id.get(contact_id)
    if target is None:
        if action == "update":
            conflict("the contact was deleted since the apply; nothing to restore")
        return  # a created contact already gone: nothing to undo
    if action == "update" and not _changed_fields(target, intent["before"], intent["after"]):
        return  # already as it was before the apply (an earlier rollback)
    changed_since = _changed_fields(
        target,
        outcome.get("image") or {},
        intent["after"] if action == "update" else CONTACT_FIELDS,
    )
    if changed_since and not force:
        conflict(
            f"changed in CHeKT since the apply ({', '.join(changed_since)}); not "
            f"overwritten (--force to undo anyway)"
        )
        return
    if action == "create":
        change("delete", target, {})
    else:
        change("update", target, {k: intent["before"].get(k) for k in intent["after"]})


def _changed_fields(contact: Contact, image: dict, fields) -> list[str]:
    return [
        name for name in fields if (getattr(contact, name) or None) != (image.get(name) or None)
    ]
