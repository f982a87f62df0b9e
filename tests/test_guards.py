"""The plan is a value: guards return typed refusals carrying their numbers, a new plan each time;
writing a plan, checking it for freshness and guarding it again never change the plan they read."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts.errors import ExitCode
from bulk_contacts.guards import (
    EmptiesSite,
    InvalidRows,
    StaleSite,
    TooMuchChange,
    guarded,
    refusal_from_dict,
)
from bulk_contacts.models import Contact
from bulk_contacts.plan import Plan
from bulk_contacts.reconcile import PlanOptions
from bulk_contacts.terminal import refusal_lines

from .planning import DEALER, Model, plan_for, roster
from .thorough import examples


def row(external="a1", first="John", last="Doe", action="", site="101", contact_id=""):
    return [site, external, first, last, "", "", action, contact_id]


def many(count: int) -> Model:
    return Model({101: [Contact(n, "P", str(n), f"x{n}") for n in range(1, count + 1)]})


def pruned_to(keep: int, count: int = 40, **options) -> Plan:
    rows = [row(f"x{n}", "P", str(n)) for n in range(1, keep + 1)]
    return plan_for(roster(rows), many(count), prune=True, **options)


def test_too_much_change_carries_its_numbers() -> None:
    plan = pruned_to(27)  # 13 of 40 deleted: more than 10 and more than 25%
    assert plan.refusals == [TooMuchChange(deletes=13, in_scope=40, max_deletes=None)]
    assert "deletes 13 contacts" in str(plan.refusals[0]) and "--" not in str(plan.refusals[0])
    assert plan.refusals[0].passed_by == ("force", "max_deletes")
    limited = pruned_to(37, max_deletes=2)
    assert limited.refusals == [TooMuchChange(deletes=3, in_scope=40, max_deletes=2)]
    assert "past the limit of 2" in str(limited.refusals[0])


def test_empties_site_and_invalid_rows_carry_their_numbers() -> None:
    plan = plan_for(roster([row(action="delete")]), Model({101: [Contact(1, "John", "Doe", "a1")]}))
    assert plan.sites[0].refusal == EmptiesSite(contacts_before=1, deletes=1)
    assert plan.refused_sites == plan.sites and plan.changes == []
    invalid = plan_for(roster([row(first="")]), Model({101: []}))
    assert invalid.refusals == [InvalidRows(rows=1)]
    assert invalid.refusals[0].passed_by == ("skip_invalid",)


@settings(max_examples=examples(25), deadline=None)
@given(keep=st.integers(1, 40), limit=st.one_of(st.none(), st.integers(0, 20)))
def test_guarding_returns_a_new_plan_and_is_idempotent(keep: int, limit: int | None) -> None:
    plan = pruned_to(keep, max_deletes=limit, allow_empty_sites=True)
    before = copy.deepcopy(plan)
    options = PlanOptions(dealer_id=DEALER, prune=True, max_deletes=limit)
    again = guarded(plan, options)
    assert plan == before  # the plan given is not changed
    assert guarded(again, options) == again
    deletes = 40 - keep
    if (limit is not None and deletes > limit) or (limit is None and deletes > 10):
        assert again.refusals == [TooMuchChange(deletes, 40, limit)]
    else:
        assert again.refusals == []
    loosened = guarded(again, replace(options, force=True, allow_empty_sites=True))
    assert not loosened.refused and len(loosened.changes) == deletes


def test_a_stale_site_stays_refused_when_guarded_again() -> None:
    plan = pruned_to(39)
    stale = replace(plan, sites=[replace(plan.sites[0], refusal=StaleSite(40, 41))])
    again = guarded(stale, PlanOptions(dealer_id=DEALER, allow_empty_sites=True, force=True))
    assert again.sites[0].refusal == StaleSite(40, 41) and again.changes == []
    assert again.exit_code() == ExitCode.FAILED


def test_a_stale_site_says_what_changed_in_words() -> None:
    """Never two equal counts as the reason ("4 contacts then, 4 now"): what the plan knows."""
    assert "then" not in str(StaleSite(4, 4)) and "edited, added or removed" in str(StaleSite(4, 4))
    assert "it held 40 contacts then and 41 now" in str(StaleSite(40, 41))
    recorded = str(StaleSite(4, 4, gone=0, added=2, removed=2))
    assert "2 contacts added and 2 removed since" in recorded and "then" not in recorded
    gone = str(StaleSite(4, 4, gone=2))
    assert "2 contacts the plan changes or deletes are no longer there" in gone
    # a plan file of an older version keeps only the counts: read with the defaults
    assert refusal_from_dict(
        {"refusal": "stale_site", "contacts_then": 4, "contacts_now": 5}
    ) == StaleSite(4, 5)


def test_writing_a_plan_does_not_change_it_and_reads_back_equal(tmp_path) -> None:
    plan = replace(pruned_to(27), sites=[replace(pruned_to(27).sites[0], refusal=StaleSite(40, 2))])
    before = copy.deepcopy(plan)
    body = plan.to_dict()
    assert plan == before and plan.checksum == ""
    path = tmp_path / "plan.json"
    plan.write(path)
    read = Plan.read(path)
    assert read.checksum == body["checksum"]
    assert replace(read, checksum="") == plan
    saved = json.loads(path.read_text())
    assert saved["refusals"][0] == {
        "refusal": "too_much_change",
        "deletes": 13,
        "in_scope": 40,
        "max_deletes": None,
        "message": str(plan.refusals[0]),
    }


@pytest.mark.parametrize(
    "refusal", [InvalidRows(3), TooMuchChange(12, 40, None), EmptiesSite(2, 2), StaleSite(4, 5)]
)
def test_each_refusal_round_trips(refusal) -> None:
    assert refusal_from_dict(json.loads(json.dumps(refusal.to_dict()))) == refusal


def test_one_helper_gives_the_exit_code() -> None:
    clean = pruned_to(39)
    assert clean.exit_code() == ExitCode.OK
    assert clean.exit_code(pending=True) == ExitCode.CHANGES
    assert pruned_to(40).exit_code(pending=True) == ExitCode.OK  # nothing to change
    assert pruned_to(27).exit_code(pending=True) == ExitCode.FAILED
    conflicted = replace(clean, sites=[replace(clean.sites[0], conflicts=["c"])])
    assert conflicted.exit_code() == ExitCode.OK
    assert conflicted.exit_code(conflicts_fail=True) == ExitCode.FAILED


def test_the_command_line_words_a_refusal_with_its_flags() -> None:
    lines = refusal_lines(pruned_to(27))
    assert lines[0].startswith("REFUSED: the plan deletes 13 contacts")
    assert lines[0].endswith("(--force, --max-deletes N)")


def test_a_saved_plans_options_are_loosened_only_by_the_guards_options() -> None:
    """apply PLAN.json --force/--allow-empty-sites/--max-deletes go past the saved plan's
    guards; the options that made the plan (prune, blanks, region...) stay the saved ones."""
    saved = PlanOptions(prune=True, blanks="clear", region="GB", max_deletes=3)
    given = PlanOptions(force=True, allow_empty_sites=True, prune=False, region="US")
    loosened = saved.loosened_by(given)
    assert loosened == replace(saved, force=True, allow_empty_sites=True)
    assert saved.loosened_by(replace(given, max_deletes=20)).max_deletes == 20
    assert saved.loosened_by(PlanOptions()) == saved  # nothing given: the saved guards
