"""The pipeline a command runs, as library calls: plan a roster against CHeKT.

read and validate (schema) -> fetch the sites -> resolve each row's site -> fetch the contacts of
those sites -> reconcile into a Plan. Nothing here prints; progress goes through a callback.
"""

from __future__ import annotations

from collections.abc import Callable

from .client import ChektClient
from .errors import ConfigError
from .fetch import fetch_contacts, fetch_sites
from .plan import Plan
from .reconcile import PlanOptions, dealers_of, has_invalid_rows, reconcile, resolve_sites
from .schema import ValidatedRoster

Progress = Callable[[str, int], Callable[[int], None]]  # (what, total) -> advance(n)


def plan_roster(
    client: ChektClient,
    validated: ValidatedRoster,
    options: PlanOptions,
    progress: Progress | None = None,
) -> Plan:
    """The plan for a validated roster. Without --skip-invalid, invalid rows stop it before any
    contact is read: the plan then holds them and a refusal, and no site."""
    rows = validated.rows
    dealers = dealers_of(rows, options.dealer_id)
    if (dealers == "").any():
        raise ConfigError(
            "rows without a dealer: pass --dealer or set CHEKT_DEALER_ID (or fill "
            "the dealer_id column)"
        )
    numeric = dealers[dealers.str.fullmatch(r"[0-9]{1,18}")]
    sites_by_dealer = fetch_sites(client, {int(d) for d in numeric.unique()})
    placement, site_issues = resolve_sites(
        validated,
        sites_by_dealer,
        options.dealer_id,
        repair_ids=options.repair_ids,
        exact_ids=options.exact_ids,
    )
    if has_invalid_rows(validated, site_issues) and not options.skip_invalid:
        return reconcile(validated, {}, {}, {}, options, site_issues)  # refused: invalid rows
    sites = {
        (dealer, site.site_id): site
        for dealer, listed in sites_by_dealer.items()
        for site in listed
    }
    wanted = set(placement.values())
    advance = progress("sites", len(wanted)) if progress else None
    contacts = fetch_contacts(client, wanted, advance)
    plan = reconcile(validated, placement, sites, contacts, options, site_issues)
    log_decisions(client, plan)
    return plan


def log_decisions(client: ChektClient, plan: Plan) -> None:
    """With --log-file: one line per planned change, conflict and refusal (no contact values
    unless the log is verbose)."""
    log = client.log
    if not log.enabled:
        return
    for site in plan.sites:
        for change in site.changes:
            log.decision(
                step="plan",
                action=change.action,
                site_id=site.site_id,
                row=change.row,
                external_contact_id=change.external_contact_id,
                contact_id=change.contact_id,
                reason=change.reason,
                fields=sorted(change.after),
                refused=site.refused or None,
            )
        for conflict in site.conflicts:
            log.decision(
                step="plan",
                action="conflict",
                site_id=site.site_id,
                row=conflict.row,
                external_contact_id=conflict.external_contact_id,
                reason=conflict.message,
            )
    for refusal in plan.refusals:
        log.decision(step="plan", action="refused", reason=refusal)
