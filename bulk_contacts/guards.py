"""The guards: what a plan may not do without leave, and why, as values carrying the numbers.

A guard never rewrites a plan: `guarded(plan, options)` returns a new plan whose refusals are the
guards' verdict for those options (octoDNS's `TooMuchChange` is the model: the refusal carries
the counts and thresholds; the caller chooses the words and the exit code). A refusal names the
options that go past it (`passed_by`), by their `PlanOptions` names: the command line turns them
into flags, the web interface into its controls.

- `InvalidRows`: rows are invalid and the plan was not asked to skip them (the whole plan).
- `TooMuchChange`: more deletes than `max_deletes`, or by default more than 10 and more than 25%
  of the contacts in scope (the whole plan), unless `force`.
- `EmptiesSite`: the site would be left with no contacts (that site's changes).
- `StaleSite`: the site changed in CHeKT since a saved plan was made (that site's changes; set by
  `apply.check_freshness`, not by the guards).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from .words import plural

if TYPE_CHECKING:
    from .plan import Plan, PlanOptions, SitePlan

DEFAULT_MAX_DELETES = 10
DEFAULT_MAX_DELETE_SHARE = 0.25


@dataclass(frozen=True)
class Refusal:
    """Why (part of) a plan is refused. `str()` is the message, in terms of values."""

    kind: ClassVar[str] = ""
    passed_by: ClassVar[tuple[str, ...]] = ()

    @property
    def message(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """As the plan file keeps it: the kind, the numbers, and the message for a reader."""
        numbers = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"refusal": self.kind, **numbers, "message": self.message}


@dataclass(frozen=True)
class InvalidRows(Refusal):
    rows: int

    kind = "invalid_rows"
    passed_by = ("skip_invalid",)

    @property
    def message(self) -> str:
        return (
            f"{plural(self.rows, 'row')} {'is' if self.rows == 1 else 'are'} invalid; fix "
            f"{'it' if self.rows == 1 else 'them'} (validate shows each problem) or plan the "
            f"valid rows only"
        )


@dataclass(frozen=True)
class TooMuchChange(Refusal):
    deletes: int
    in_scope: int  # contacts on the plan's sites before it
    max_deletes: int | None  # the limit asked for; None: the default rule

    kind = "too_much_change"
    passed_by = ("force", "max_deletes")

    @property
    def message(self) -> str:
        if self.max_deletes is not None:
            limit = f"the limit of {self.max_deletes}"
        else:
            limit = (
                f"the default limit (more than {DEFAULT_MAX_DELETES} and more than "
                f"{DEFAULT_MAX_DELETE_SHARE:.0%} of the {plural(self.in_scope, 'contact')} in "
                f"scope)"
            )
        return (
            f"the plan deletes {plural(self.deletes, 'contact')}, past {limit}; review it, "
            f"then force it (or raise the limit)"
        )


@dataclass(frozen=True)
class EmptiesSite(Refusal):
    contacts_before: int
    deletes: int

    kind = "empties_site"
    passed_by = ("allow_empty_sites",)

    @property
    def message(self) -> str:
        return (
            f"it would leave the site with no contacts ({self.deletes} of its "
            f"{self.contacts_before} deleted); allow empty sites if that is meant"
        )


@dataclass(frozen=True)
class StaleSite(Refusal):
    contacts_then: int  # when the plan was made
    contacts_now: int
    # Contacts the plan updates or deletes that the site no longer holds (deleted, or made
    # again under a new contact_id, as a rollback does).
    gone: int = 0
    # Contacts added and removed since, when the plan recorded the site's contact ids (a
    # --prune plan's `seen`); None when it did not.
    added: int | None = None
    removed: int | None = None

    kind = "stale_site"
    passed_by = ("refresh",)

    @property
    def message(self) -> str:
        return (
            f"the site's contacts changed in CHeKT since the plan was made: {self.what_changed}; "
            f"make a new plan, or re-base its changes on what it holds now"
        )

    @property
    def what_changed(self) -> str:
        """In words: what the plan knows of the change, never just two equal counts."""
        found = []
        if self.gone:
            found.append(
                f"{plural(self.gone, 'contact')} the plan changes or deletes "
                f"{'is' if self.gone == 1 else 'are'} no longer there (deleted, or made again "
                f"under a new contact_id, as a rollback does)"
            )
        if self.added or self.removed:
            found.append(
                f"{plural(self.added or 0, 'contact')} added and {self.removed or 0} removed since"
            )
        elif self.added is None and self.contacts_then != self.contacts_now:
            found.append(
                f"it held {plural(self.contacts_then, 'contact')} then and {self.contacts_now} now"
            )
        return "; ".join(found) or "contacts were edited, added or removed"


REFUSALS: dict[str, type[Refusal]] = {
    cls.kind: cls for cls in (InvalidRows, TooMuchChange, EmptiesSite, StaleSite)
}


def refusal_from_dict(data: dict[str, Any]) -> Refusal:
    """A refusal as the plan file keeps it (KeyError or TypeError when it is not one)."""
    cls = REFUSALS[data["refusal"]]
    kept = {f.name for f in fields(cls) if f.name in data or f.default is MISSING}
    return cls(**{name: data[name] for name in kept})  # a plan of an older version: defaults


# the guards


def guarded(plan: Plan, options: PlanOptions) -> Plan:
    """The plan with the guards' refusals under `options` (the plan given is not changed).
    Idempotent: `apply` guards a saved plan again with its own options. A stale site stays
    refused; the other refusals are the guards' verdict afresh."""
    sites = [_guard_site(site, options) for site in plan.sites]
    refusals: list[Refusal] = []
    if plan.invalid and not options.skip_invalid:
        refusals.append(InvalidRows(len(plan.invalid)))
    too_much = _too_much_change(sites, options)
    if too_much is not None:
        refusals.append(too_much)
    return replace(plan, sites=sites, refusals=refusals)


def _guard_site(site: SitePlan, options: PlanOptions) -> SitePlan:
    if isinstance(site.refusal, StaleSite):
        return site
    deletes = site.count("delete")
    empties = deletes and site.contacts_after <= 0 and not options.allow_empty_sites
    refusal = EmptiesSite(site.contacts_before, deletes) if empties else None
    return site if refusal == site.refusal else replace(site, refusal=refusal)


def _too_much_change(sites: list[SitePlan], options: PlanOptions) -> TooMuchChange | None:
    if options.force:
        return None
    deletes = sum(site.count("delete") for site in sites if site.refusal is None)
    in_scope = sum(site.contacts_before for site in sites)
    if options.max_deletes is not None:
        too_many = deletes > options.max_deletes
    else:
        too_many = deletes > DEFAULT_MAX_DELETES and deletes > DEFAULT_MAX_DELETE_SHARE * in_scope
    return TooMuchChange(deletes, in_scope, options.max_deletes) if too_many else None
