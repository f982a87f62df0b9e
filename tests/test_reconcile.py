"""The reconcile rules, one by one, and as properties over random states and rosters."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_contacts.errors import InputError
from bulk_contacts.models import Contact, Site
from bulk_contacts.plan import PLAN_FORMAT, Plan
from bulk_contacts.reconcile import resolve_sites

from .planning import DEALER, Model, plan_for, roster
from .thorough import examples

JOHN = Contact(1, "John", "Doe", "a1", "+12025550143", "john@example.com")
PORTAL = Contact(2, "Walk", "In")  # no external id: made in the portal


def row(ext="a1", first="John", last="Doe", phone="", email="", action="", cid="", site="101"):
    return [site, ext, first, last, phone, email, action, cid]


def actions(plan) -> list[tuple]:
    return [
        (c.action, c.external_contact_id or c.contact_id, c.after or None) for c in plan.changes
    ]


def test_create_update_and_formatting_that_is_not_a_change() -> None:
    model = Model({101: [JOHN]})
    same = row(first=" John ", phone="(202) 555-0143", email="JOHN@Example.com")
    plan = plan_for(roster([same, row("b2", "Ann", "Lee", "2125551234")]), model)
    assert actions(plan) == [
        (
            "create",
            "b2",
            {
                "external_contact_id": "b2",
                "first_name": "Ann",
                "last_name": "Lee",
                "phone_number": "+12125551234",
            },
        )
    ]
    assert plan.summary()["unchanged"] == 1
    plan = plan_for(roster([row(first="Johnny", phone="202-555-0143")]), model)
    change = plan.changes[0]
    assert (change.action, change.before["first_name"], change.after) == (
        "update",
        "John",
        {"first_name": "Johnny"},
    )
    assert change.before == {
        "external_contact_id": "a1",
        "first_name": "John",
        "last_name": "Doe",
        "phone_number": "+12025550143",
        "email": "john@example.com",
    }


def test_unicode_forms_are_the_same_name() -> None:
    model = Model({101: [Contact(1, "José", "Ñ", "a1")]})
    assert not plan_for(roster([row(first="Jose\u0301", last="N\u0303")]), model).changes


def test_blanks_keep_or_clear() -> None:
    model = Model({101: [JOHN]})
    assert not plan_for(roster([row()]), model).changes
    plan = plan_for(roster([row()]), model, blanks="clear")
    assert plan.changes[0].after == {"phone_number": None, "email": None}


def test_action_delete() -> None:
    model = Model({101: [JOHN, Contact(3, "Ann", "Lee", "b2")]})
    plan = plan_for(roster([row(action="delete"), row("b2", "Ann", "Lee")]), model)
    assert [(c.action, c.contact_id, c.reason) for c in plan.changes] == [
        ("delete", 1, "action=delete")
    ]
    assert plan.changes[0].before["first_name"] == "John"
    absent = plan_for(
        roster([row("zz", "", "", action="DELETE"), row("b2", "Ann", "Lee"), row()]), model
    )
    assert not absent.changes and absent.summary()["unchanged"] == 3


def test_unmanaged_contacts_are_listed_and_changed_only_by_their_contact_id() -> None:
    model = Model({101: [JOHN, PORTAL]})
    plan = plan_for(roster([row()]), model, prune=True)
    assert not plan.changes
    assert [(item.contact_id, item.why) for item in plan.sites[0].listed] == [(2, "unmanaged")]
    plan = plan_for(roster([row(), row("", "Walk", "Inn", cid="2")]), model)
    assert actions(plan) == [("update", 2, {"last_name": "Inn"})]
    plan = plan_for(roster([row(), row("", "X", "Y", action="delete", cid="2")]), model)
    assert actions(plan) == [("delete", 2, None)]


@pytest.mark.parametrize(
    ("cid", "message"), [("1", "has external_contact_id 'a1'"), ("99", "is not on this site")]
)
def test_a_contact_id_that_does_not_fit_is_a_conflict(cid: str, message: str) -> None:
    plan = plan_for(roster([row("", "A", "B", cid=cid)]), Model({101: [JOHN, PORTAL]}))
    assert not plan.changes and message in plan.conflicts[0].message


def test_duplicate_external_ids_are_a_conflict_and_never_pruned() -> None:
    twin = Contact(5, "Jon", "Doe", "a1")
    model = Model({101: [JOHN, twin, Contact(6, "Old", "Timer", "zz")]})
    plan = plan_for(roster([row(first="Johnny")]), model, prune=True, force=True)
    assert [c.contact_ids for c in plan.conflicts] == [(1, 5)]
    assert actions(plan) == [("delete", "zz", None)]
    assert {(i.contact_id, i.why) for i in plan.sites[0].listed} == {
        (1, "conflict"),
        (5, "conflict"),
    }


def test_prune_spares_unmanaged_invalid_rows_and_absent_sites() -> None:
    model = Model(
        {
            101: [JOHN, PORTAL, Contact(3, "Ann", "Lee", "b2"), Contact(4, "Bo", "Ng", "c3")],
            102: [Contact(7, "Far", "Away", "x9")],
        }
    )
    rows = [row("c3", "Bo", "Ng"), row("b2", "Ann", "Lee", phone="12")]  # b2's row is invalid
    plan = plan_for(roster(rows), model, prune=True, skip_invalid=True, force=True)
    assert actions(plan) == [("delete", "a1", None)]
    assert [s.site_id for s in plan.sites] == [101]
    why = {i.contact_id: i.why for i in plan.sites[0].listed}
    assert why == {2: "unmanaged", 3: "protected"}
    assert plan.summary()["invalid"] == 1


def test_the_empty_site_guard() -> None:
    model = Model({101: [JOHN]})
    plan = plan_for(roster([row(action="delete")]), model)
    assert plan.refused and not plan.refusals and "no contacts" in plan.sites[0].refused
    assert plan.changes == [] and plan.summary()["delete"] == 0
    allowed = plan_for(roster([row(action="delete")]), model, allow_empty_sites=True)
    assert not allowed.refused and len(allowed.changes) == 1


def test_the_max_deletes_guard() -> None:
    many = [Contact(n, "P", str(n), f"x{n}") for n in range(1, 41)]
    model = Model({101: many})
    keep = [row(f"x{n}", "P", str(n)) for n in range(1, 28)]  # 13 of 40 pruned: > 10 and > 25%
    assert any("deletes 13" in str(r) for r in plan_for(roster(keep), model, prune=True).refusals)
    assert not plan_for(roster(keep), model, prune=True, force=True).refusals
    few = [row(f"x{n}", "P", str(n)) for n in range(1, 38)]  # 3 deletes: within the default
    assert not plan_for(roster(few), model, prune=True).refusals
    assert plan_for(roster(few), model, prune=True, max_deletes=2).refusals
    assert len(plan_for(roster(keep), model, prune=True, force=True).changes) == 13


def test_sites_are_resolved_through_the_dealers_list() -> None:
    sites = {
        DEALER: [
            Site(101, "A", "ext-A", "ACCT-1"),
            Site(102, "B", "ext-B", "ACCT-2"),
            Site(103, "C", "ext-C", "ACCT-2"),
        ]
    }
    header = [
        "account_number",
        "external_site_id",
        "site_id",
        "external_contact_id",
        "first_name",
        "last_name",
    ]
    validated = roster(
        [
            ["ACCT-1", "", "", "a", "A", "B"],
            ["", "ext-B", "", "b", "A", "B"],
            ["NOPE", "", "", "c", "A", "B"],
            ["ACCT-2", "", "", "d", "A", "B"],
            ["ACCT-1", "ext-B", "", "e", "A", "B"],
            ["", "", "777", "f", "A", "B"],
        ],
        header,
    )
    placement, issues = resolve_sites(validated, sites, DEALER)
    assert placement == {2: (DEALER, 101), 3: (DEALER, 102)}
    assert [(i.row, i.code) for i in issues] == [
        (4, "unknown_site"),
        (5, "ambiguous_site"),
        (6, "site_mismatch"),
        (7, "unknown_site"),
    ]


# the plan as a value


def test_the_plan_file_round_trips_and_refuses_edits(tmp_path) -> None:
    model = Model({101: [JOHN, PORTAL]})
    plan = plan_for(roster([row(first="Johnny"), row("b2", "Ann", "Lee")]), model, prune=True)
    path = tmp_path / "plan.json"
    plan.write(path)
    body = json.loads(path.read_text())
    assert body["format"] == PLAN_FORMAT
    assert body["summary"] == {
        "create": 1,
        "update": 1,
        "delete": 0,
        "unchanged": 0,
        "conflict": 0,
        "invalid": 0,
    }
    assert body["sites"][0]["fingerprint"] and body["checksum"].startswith("sha256:")
    again = Plan.read(path)
    assert again.to_dict() == plan.to_dict()
    body["sites"][0]["changes"][0]["after"]["first_name"] = "Mallory"
    path.write_text(json.dumps(body))
    with pytest.raises(InputError, match="edited after it was made"):
        Plan.read(path)


def test_changes_are_sorted_creates_updates_deletes() -> None:
    model = Model({101: [JOHN, Contact(3, "Ann", "Lee", "b2")]})
    plan = plan_for(
        roster([row("b2", "", "", action="delete"), row(first="J"), row("c3", "C", "D")]), model
    )
    assert [c.action for c in plan.changes] == ["create", "update", "delete"]


# properties

EXT_IDS = st.sampled_from(["a", "b", "c", "d"])
NAMES = st.sampled_from(["Ann", "Bo", "José", "Zoë"])
PHONES = st.sampled_from(["", "+12025550143", "(202) 555-0143", "212-555-1234", "+44 20 7946 0958"])
EMAILS = st.sampled_from(["", "ann@example.com", "ANN@Example.com", "bo@example.org"])


@st.composite
def remote_states(draw):
    contacts = {}
    ids = iter(range(1, 1000))
    for site in (101, 102, 103):
        found = []
        for _ in range(draw(st.integers(0, 4))):
            managed = draw(st.booleans()) or draw(st.booleans())
            found.append(
                Contact(
                    next(ids),
                    draw(NAMES),
                    draw(NAMES),
                    draw(EXT_IDS) if managed else None,
                    draw(PHONES) or None,
                    draw(EMAILS) or None,
                )
            )
        contacts[site] = found
    return contacts


@st.composite
def rosters(draw):
    rows = []
    for site in draw(st.sets(st.sampled_from(["101", "102"]), max_size=2)):
        for ext in draw(st.sets(EXT_IDS, max_size=4)):
            rows.append(
                row(
                    ext,
                    draw(NAMES),
                    draw(NAMES),
                    draw(PHONES),
                    draw(EMAILS),
                    draw(st.sampled_from(["", "", "delete"])),
                    site=site,
                )
            )
    return rows


@pytest.mark.parametrize("examples", [examples(50), pytest.param(600, marks=pytest.mark.slow)])
def test_applying_a_plan_then_planning_again_changes_nothing(examples: int) -> None:
    """A few examples by default (`thorough`), 600 with `-m slow`."""
    settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])(
        given(remote_states(), rosters(), st.booleans(), st.sampled_from(["keep", "clear"]))(
            _applying_a_plan_then_planning_again_changes_nothing
        )
    )()


def _applying_a_plan_then_planning_again_changes_nothing(state, rows, prune, blanks) -> None:
    validated = roster(rows)
    model = Model(state)
    untouched_site = list(model.contacts[103])
    unmanaged = {c.contact_id for found in state.values() for c in found if not c.managed}
    options = {
        "prune": prune,
        "blanks": blanks,
        "force": True,
        "allow_empty_sites": True,
        "allow_unreachable": False,  # unreachable rows are not planned, each time alike
    }
    first = plan_for(validated, model, **options)
    assert all(c.site_id != 103 for c in first.changes)  # a site absent from the roster
    assert not {c.contact_id for c in first.deletes if c.reason == "prune"} & unmanaged
    model.apply(first)
    second = plan_for(validated, model, **options)
    assert second.changes == [], [c.__dict__ for c in second.changes]
    assert model.contacts[103] == untouched_site
