"""The pipeline a command runs, as library calls: read and validate a roster, plan it against CHeKT.

read and validate (schema) -> fetch the sites -> resolve each row's site -> fetch the contacts of
those sites -> reconcile into a Plan. Nothing here prints; progress goes through a callback.

This module is imported before a roster is read, so it imports the heavy stack (pandas, the
validation libraries, httpx) only inside its functions: `load_validated` parses the file in a
thread while that stack loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BulkContactsError, ConfigError, EmptyRoster, PermissionDenied

if TYPE_CHECKING:
    from .client import ChektClient
    from .layouts import Layout
    from .models import Site
    from .plan import Plan, PlanOptions
    from .schema import ValidatedRoster

Progress = Callable[[str, int], Callable[[int], None]]  # (what, total) -> advance(n)


@dataclass(frozen=True)
class ReadOptions:
    """How a roster is read and validated (`validate`, `plan` and `apply` take the same)."""

    sheet: str | None = None  # None: 'Contacts', else the first visible sheet
    column_map: Mapping[str, str] = field(default_factory=dict)  # header as written -> column
    region: str = "US"  # for phone numbers written without a country code
    phone_format: str = "e164"  # or "national"
    allow_unreachable: bool = False  # neither phone nor e-mail: a warning, not an error
    all_sheets: bool = False  # every visible sheet that looks like a roster (one tab per site)
    site: tuple[str, str] | None = None  # (site column, value): every row on that one site
    match_by: str | None = None  # "name": rows without an id are matched by first and last name
    header_row: int | None = None  # None: the first of the first 30 rows naming two columns
    phone_columns: tuple[str, ...] = ()  # phone headers, in the order the first is taken
    name_case: str = "keep"  # or "title": names in capitals or lower case are fixed

    @property
    def layout(self) -> Layout:
        from .layouts import Layout

        return Layout(self.header_row, tuple(self.phone_columns), self.name_case, self.all_sheets)


def load_validated(
    path: Path, options: ReadOptions = ReadOptions(), *, judge_reachability: bool = True
) -> ValidatedRoster:
    """Read and validate a roster. `plan` and `apply` judge reachability on the contacts
    instead of the rows (judge_reachability=False).

    The file is parsed in a thread while pandas and the validation stack are imported and warmed
    up: the workbook parser releases the GIL, so on two cores the two overlap. ConfigError for a
    region that is not one; InputError for a file that cannot be read as a roster; EmptyRoster
    for a roster with a header and no rows."""
    from .site_layouts import read_layout

    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_layout, path, options)
        import phonenumbers

        from .gc_pause import release_memory
        from .schema import validate_roster, warm_up
        from .site_layouts import roster_from_layout

        if options.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"{options.region!r} is not a region code; use a two-letter code such as US, "
                f"CA, GB or DE",
                setting="region",
            )
        warm_up(options.region, options.phone_format)
        roster, layout_warnings = roster_from_layout(reading.result(), options)
    release_memory()  # what reading the file used and no longer needs
    if roster.frame.empty:
        raise EmptyRoster(
            f"{roster.source}: no rows below the header (row {roster.table.header_row}): "
            f"nothing to check or send"
        )
    validated = validate_roster(
        roster,
        options.region,
        options.phone_format,
        allow_unreachable=options.allow_unreachable,
        judge_reachability=judge_reachability,
    )
    validated.issues[:0] = layout_warnings
    return validated


def plan_path(
    client: ChektClient,
    path: Path,
    options: PlanOptions,
    read: ReadOptions = ReadOptions(),
    progress: Progress | None = None,
) -> tuple[ValidatedRoster, Plan]:
    """Read, validate and plan a roster file, as `plan` does: reachability is judged on the
    contacts as the plan leaves them, and the plan's region, phone format and reachability rule
    are those the roster is read with. The access token is fetched while the roster is read
    (its failure, if any, is reported by the first real request)."""
    from dataclasses import replace

    options = replace(
        options,
        region=read.region,
        phone_format=read.phone_format,
        allow_unreachable=read.allow_unreachable,
        match_by=read.match_by,
    )

    def warm_up() -> None:
        try:
            client.tokens.current()
        except BulkContactsError:  # the same error comes again, with its context, from the plan
            return

    with ThreadPoolExecutor(1) as pool:
        pool.submit(warm_up)
        validated = load_validated(path, read, judge_reachability=False)
    return validated, plan_roster(client, validated, options, progress)


def plan_roster(
    client: ChektClient,
    validated: ValidatedRoster,
    options: PlanOptions,
    progress: Progress | None = None,
) -> Plan:
    """The plan for a validated roster. Without `skip_invalid`, invalid rows stop it before any
    contact is read: the plan then holds them and a refusal, and no site."""
    from .fetch import fetch_contacts, fetch_sites
    from .reconcile import dealers_of, has_invalid_rows, reconcile, resolve_sites

    if options.match_by and options.prune:
        # A contact matched by name to a row that turns out invalid is named by no id: prune
        # could delete it. Matching by name and pruning are two runs.
        raise ConfigError(
            "prune is refused when rows are matched by name: plan without prune first, then "
            "prune from an export (whose rows carry every contact's id)",
            setting="match_by",
        )
    rows = validated.rows
    dealers = dealers_of(rows, options.dealer_id)
    if (dealers == "").any():
        raise ConfigError(
            "rows without a dealer: set CHEKT_DEALER_ID (or fill the dealer_id column)",
            setting="dealer",
        )
    numeric = dealers[dealers.str.fullmatch(r"[0-9]{1,18}")]
    sites_by_dealer: dict[int, list[Site]] = {}
    out_of_scope: set[int] = set()
    for dealer in sorted({int(d) for d in numeric.unique()}):
        try:
            sites_by_dealer.update(fetch_sites(client, [dealer]))
        except PermissionDenied:
            if dealer == options.dealer_id:  # the dealer of every row without its own
                raise
            out_of_scope.add(dealer)  # named by rows: those rows are invalid
    from .sites import place_by_name, settle_generated_ids

    name_issues = place_by_name(validated, sites_by_dealer, options.dealer_id)
    placement, site_issues = resolve_sites(
        validated,
        sites_by_dealer,
        options.dealer_id,
        repair_ids=options.repair_ids,
        exact_ids=options.exact_ids,
        out_of_scope=frozenset(out_of_scope),
    )
    site_issues = [*name_issues, *site_issues]
    settle_generated_ids(validated, placement)
    if has_invalid_rows(validated, site_issues) and not options.skip_invalid:
        return reconcile(validated, {}, {}, {}, options, site_issues)  # refused: invalid rows
    sites = {
        (dealer, site.site_id): site
        for dealer, listed in sites_by_dealer.items()
        for site in listed
    }
    site_issues = [*site_issues, *_site_phone_issues(validated, placement, sites, options)]
    wanted = set(placement.values())
    advance = progress("sites", len(wanted)) if progress else None
    contacts = fetch_contacts(client, wanted, advance)
    plan = reconcile(validated, placement, sites, contacts, options, site_issues)
    plan.not_sent = phones_not_sent(validated)
    plan.derived = by_name_notes(validated, plan)
    log_decisions(client, plan)
    return plan


def _site_phone_issues(
    validated: ValidatedRoster, placement: Mapping, sites: dict, options: PlanOptions
) -> list:
    """`phone_region`: numbers read in the default region whose country is not their site's
    (the site's timezone tells it); found here, where each row's site is known."""
    from .layouts import phone_region_issues

    return phone_region_issues(validated.roster, validated.rows, placement, sites, options.region)


def phones_not_sent(validated: ValidatedRoster) -> dict[int, str]:
    """Per row, the numbers of the other phone columns (CHeKT holds one): the plan's reports
    list them in a "not sent" column."""
    found = validated.roster.facts.phones_not_sent
    if found is None:
        return {}
    return {int(row): text for row, text in found[found != ""].items()}


def by_name_notes(validated: ValidatedRoster, plan: Plan) -> dict[int, str]:
    """--match-by name: per row, the contact its name matched, or the id it was created
    under (a `derived` note in the plan's reports)."""
    if not validated.roster.facts.match_by_name:
        return {}
    from .codes import CODES
    from .sites import PROVISIONAL_PREFIX

    made = validated.roster.frame["external_contact_id"].astype("str")
    by_name = set(made.index[made.str.startswith(PROVISIONAL_PREFIX)])
    code = CODES["by_name"]
    notes = {}
    for site in plan.sites:
        for change in site.changes:
            if change.row is None or change.row not in by_name:
                continue
            generated = str(validated.rows.at[change.row, "external_contact_id"])
            if change.action == "create":
                notes[change.row] = code.render("generated", value=generated)
            elif change.external_contact_id == generated:
                notes[change.row] = code.render(
                    "held", contact_id=change.contact_id, value=generated
                )
            else:
                notes[change.row] = code.render(
                    "matched", contact_id=change.contact_id, own=change.external_contact_id
                )
    return notes


def log_decisions(client: ChektClient, plan: Plan) -> None:
    """With a run log: one line per planned change, conflict and refusal (no contact values
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
        log.decision(step="plan", action="refused", reason=str(refusal), refusal=refusal.kind)
