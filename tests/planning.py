"""Helpers for the planning tests: rosters built in memory, and a model of CHeKT to apply to."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pandas as pd

from bulk_contacts.models import Contact, Site
from bulk_contacts.plan import Plan
from bulk_contacts.reconcile import PlanOptions, reconcile, resolve_sites
from bulk_contacts.roster import Table, map_columns
from bulk_contacts.schema import ValidatedRoster, validate_roster

HEADER = [
    "site_id",
    "external_contact_id",
    "first_name",
    "last_name",
    "phone_number",
    "email",
    "action",
    "contact_id",
]
DEALER = 12345


def roster(rows: list[list[str]], header: list[str] = HEADER) -> ValidatedRoster:
    """A validated roster from rows of cells (the first data row is spreadsheet row 2)."""
    frame = (
        pd.DataFrame(rows, columns=range(len(header)), dtype="str")
        if rows
        else pd.DataFrame({i: pd.Series([], dtype="str") for i in range(len(header))})
    )
    frame.index = pd.RangeIndex(2, len(rows) + 2)
    return validate_roster(map_columns(Table("memory.csv", list(header), frame), {}))


class Model:
    """CHeKT as a dictionary: sites and their contacts, with a plan applied change by change."""

    def __init__(self, contacts: dict[int, list[Contact]]) -> None:
        self.contacts = {site: list(found) for site, found in contacts.items()}
        self.ids = itertools.count(10_000)

    @property
    def sites(self) -> dict[int, list[Site]]:
        return {DEALER: [Site(site_id=s, name=f"Site {s}") for s in sorted(self.contacts)]}

    def state(self) -> dict[tuple[int, int], list[Contact]]:
        return {(DEALER, site): list(found) for site, found in self.contacts.items()}

    def apply(self, plan: Plan) -> None:
        for change in plan.changes:
            found = self.contacts[change.site_id]
            if change.action == "create":
                found.append(Contact(next(self.ids), **change.after))
            elif change.action == "update":
                index = next(i for i, c in enumerate(found) if c.contact_id == change.contact_id)
                found[index] = replace(found[index], **change.after)
            else:
                found[:] = [c for c in found if c.contact_id != change.contact_id]


def plan_for(validated: ValidatedRoster, model: Model, **options) -> Plan:
    """The plan, as `plan` makes it. Contacts with neither phone nor e-mail are allowed unless
    the test says otherwise: reachability has its own tests (test_identity.py)."""
    settings = PlanOptions(dealer_id=DEALER, **{"allow_unreachable": True, **options})
    placement, issues = resolve_sites(validated, model.sites, DEALER)
    sites = {(DEALER, s.site_id): s for s in model.sites[DEALER]}
    return reconcile(validated, placement, sites, model.state(), settings, issues)
