"""Issue 11: a contact is never lost or doubled because a spreadsheet changed an id.

Each reproduction of the issue, as a unit test over the reconcile rules, through the command
line, and against a seeded sandbox; and the property that prune deletes only what no row names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_contacts.cli import main
from bulk_contacts.models import Contact, Site
from bulk_contacts.normalize import normalize_phones, repair_key, same_after_repair
from bulk_contacts.plan import Plan
from bulk_contacts.reconcile import PlanOptions, reconcile, resolve_sites

from .planning import DEALER, roster
from .thorough import examples

ZERO = Site(1002, "Zero Site", "ext-1002", "001234")
ZETA = Site(1001, "Zeta", "ext-1001", "AC-1001")
DIAZ = Site(1003, "Diaz Home", "ext-1003", "AC-1003")
E100 = Contact(100, "Ann", "Lee", "E100", "+12025550100")
E101 = Contact(101, "Bob", "Ng", "E101", "+12025550101")
MARIA = Contact(3, "Maria", "Diaz", "0042", "+12025550142", "maria@example.com")
KEEP = Contact(9, "Kim", "Keep", "keep1", "+12025550109")

FULL = [
    "dealer_id",
    "site_id",
    "account_number",
    "external_site_id",
    "external_contact_id",
    "contact_id",
    "first_name",
    "last_name",
    "phone_number",
    "email",
    "action",
]


def line(
    ext="",
    first="A",
    last="B",
    phone="2025550199",
    email="",
    *,
    site="",
    account="",
    external="",
    cid="",
    dealer="",
    action="",
):
    return [dealer, site, account, external, ext, cid, first, last, phone, email, action]


def plan_with(rows, sites, contacts, **options) -> Plan:
    return plan_of(roster(rows, FULL), sites, contacts, **options)


def plan_of(validated, sites, contacts, **options) -> Plan:
    """`plan_with` for a roster already read and validated (a table of flags over one roster
    validates it once: about two thirds of a small plan's CPU)."""
    settings_ = PlanOptions(dealer_id=DEALER, **options)
    placement, issues = resolve_sites(
        validated,
        {DEALER: sites},
        DEALER,
        repair_ids=settings_.repair_ids,
        exact_ids=settings_.exact_ids,
    )
    state = {(DEALER, s.site_id): list(contacts.get(s.site_id, [])) for s in sites}
    by_key = {(DEALER, s.site_id): s for s in sites}
    fetched = {key: state[key] for key in set(placement.values())}
    return reconcile(validated, placement, by_key, fetched, settings_, issues)


def pruned(plan: Plan) -> set[int]:
    return {c.contact_id for c in plan.deletes if c.reason == "prune"}


def warning_codes(plan: Plan) -> list[tuple[int | None, str]]:
    return [(w.row, w.code) for w in plan.warnings]


# the repairs themselves


@pytest.mark.parametrize(
    ("written", "held", "same"),
    [
        ("42", "0042", True),
        ("42.0", "0042", True),
        ("0042", "42", True),
        (" 0042 ", "0042", True),
        ("1.23457E+11", "123456789012", True),
        ("1.23457E+11", "123458000000", False),
        ("42", "0043", False),
        ("A42", "A042", False),  # only all-digit ids lose their zeros
        ("42", "42.5", False),
    ],
)
def test_same_after_repair(written: str, held: str, same: bool) -> None:
    assert same_after_repair(written, held) is same
    assert same_after_repair(held, written) is same


def test_repair_key_undoes_zeros_point_zero_and_spaces() -> None:
    assert {repair_key(v) for v in ("42", "0042", "42.0", " 042 ", "00042.00")} == {"42"}
    assert repair_key("000") == "0" and repair_key("AB-01") == "AB-01"


# reproduction 1: prune deletes a contact whose row is in the file


def test_repro1_a_row_whose_site_is_not_resolved_protects_its_contact() -> None:
    rows = [
        line("E100", "Ann", "Lee", "2025550100", account="1234"),
        line("E101", "Bob", "Ng", "2025550101", account="001234"),
    ]
    plan = plan_with(rows, [ZERO], {1002: [E100, E101]}, prune=True, skip_invalid=True)
    assert pruned(plan) == set()
    assert [row.row for row in plan.invalid] == [2]
    problem = plan.invalid[0].problems[0]
    assert "did you mean '001234' (site 1002, Zero Site)" in problem
    assert "leading zeros" in problem and "--repair-ids" in problem
    assert {i.contact_id: i.why for i in plan.sites[0].listed} == {100: "protected"}


def test_repro1_repair_ids_accepts_a_unique_repair_with_a_warning() -> None:
    rows = [
        line("E100", "Ann", "Lee", "2025550100", account="1234"),
        line("E101", "Bob", "Ng", "2025550101", account="001234"),
    ]
    plan = plan_with(rows, [ZERO], {1002: [E100, E101]}, prune=True, repair_ids=True)
    assert not plan.invalid and not plan.changes and plan.summary()["unchanged"] == 2
    assert warning_codes(plan) == [(2, "site_id_repaired")]
    assert "'1234' is taken as '001234'" in plan.warnings[0].message


def test_an_ambiguous_site_repair_is_never_accepted() -> None:
    other = Site(1004, "Other", "ext-1004", "0001234")
    rows = [line("E100", "Ann", "Lee", account="1234")]
    plan = plan_with(rows, [ZERO, other], {1002: [E100, E101]}, repair_ids=True, skip_invalid=True)
    assert [row.row for row in plan.invalid] == [2] and not plan.sites
    assert (
        "could be '001234' (site 1002, Zero Site) or '0001234' (site 1004, Other)"
        in (plan.invalid[0].problems[0])
    )


def test_a_damaged_account_confirmed_by_the_site_id_is_used_with_a_warning() -> None:
    rows = [line("E100", "Ann", "Lee", site="1002", account="1234")]
    plan = plan_with(rows, [ZERO], {1002: [E100, E101]})
    assert not plan.invalid and warning_codes(plan) == [(2, "site_id_repaired")]
    assert "site_id confirms it" in plan.warnings[0].message


def test_unplaced_rows_protect_that_id_on_every_site_in_scope() -> None:
    """A row naming no site that resolves (its dealer or account is wrong) protects contacts
    with its id wherever the plan looks: it cannot tell which site it meant."""
    other = Contact(200, "Ann", "Lee", "E100")
    rows = [
        line("E100", "Ann", "Lee", account="NOPE"),
        line("E101", "Bob", "Ng", site="1002"),
        line("keep1", "Kim", "Keep", site="1001"),
    ]
    plan = plan_with(
        rows,
        [ZERO, ZETA],
        {1002: [E100, E101], 1001: [KEEP, other]},
        prune=True,
        skip_invalid=True,
        force=True,
    )
    assert pruned(plan) == set()


# reproduction 2: an export edited in Excel deletes and re-creates contacts


def test_repro2_contact_id_is_an_identity_and_damage_is_a_warning() -> None:
    rows = [line("42", "Maria", "Diaz", "12025550142", "maria@example.com", site="1003", cid="3")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, prune=True)
    assert not plan.creates and pruned(plan) == {9}
    assert plan.summary()["unchanged"] == 1
    assert warning_codes(plan) == [(2, "id_damaged")]
    message = plan.warnings[0].message
    assert "'42'" in message and "'0042'" in message and "Text" in message


def test_a_changed_row_of_a_damaged_id_updates_the_contact_under_its_own_id() -> None:
    rows = [line("42", "Mary", "Diaz", "12025550142", site="1003", cid="3")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA]})
    [change] = plan.changes
    assert (change.action, change.contact_id, change.external_contact_id) == ("update", 3, "0042")
    assert change.after == {"first_name": "Mary"}


@pytest.mark.parametrize(
    ("ext", "cid", "message"),
    [
        ("77", "3", "external_contact_id '77' but contact_id 3 is '0042'"),
        ("0042", "99", "contact_id 99 is not on this site"),
        ("42", "99", "contact_id 99 is not on this site"),
    ],
)
def test_a_contact_id_that_does_not_fit_its_row_is_a_conflict(ext, cid, message) -> None:
    rows = [line(ext, "Maria", "Diaz", site="1003", cid=cid)]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, prune=True, force=True)
    assert not plan.changes or pruned(plan) == {9}
    assert not plan.creates and 3 not in pruned(plan)
    [conflict] = plan.conflicts
    assert message in conflict.message


def test_exact_ids_makes_a_damaged_id_beside_a_contact_id_a_conflict() -> None:
    rows = [line("42", "Maria", "Diaz", site="1003", cid="3")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, exact_ids=True)
    assert not plan.changes and len(plan.conflicts) == 1


def test_without_contact_id_a_repaired_match_is_a_conflict_never_create_and_prune() -> None:
    rows = [line("42", "Maria", "Diaz", "12025550142", site="1003"), line("keep1", site="1003")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, prune=True, force=True)
    assert not plan.creates and not plan.deletes
    [conflict] = plan.conflicts
    assert conflict.contact_ids == (3,)
    assert "'42'" in conflict.message and "'0042'" in conflict.message
    assert "--exact-ids" in conflict.message


def test_exact_ids_treats_42_and_0042_as_different_people() -> None:
    rows = [line("42", "Maria", "Diaz", site="1003"), line("keep1", site="1003")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, prune=True, force=True, exact_ids=True)
    assert [(c.action, c.external_contact_id) for c in plan.changes] == [
        ("create", "42"),
        ("update", "keep1"),
        ("delete", "0042"),
    ]


def test_repair_ids_matches_a_unique_repaired_id_with_a_warning() -> None:
    rows = [line("42", "Maria", "Diaz", "12025550142", "maria@example.com", site="1003")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA]}, repair_ids=True)
    assert not plan.changes and not plan.conflicts and warning_codes(plan) == [(2, "id_damaged")]


def test_a_long_id_shown_in_scientific_notation_is_matched_by_contact_id() -> None:
    long_id = Contact(7, "Lo", "Ng", "123456789012", "+12025550107")
    rows = [line("1.23457E+11", "Lo", "Ng", "2025550107", site="1001", cid="7")]
    plan = plan_with(rows, [ZETA], {1001: [long_id, KEEP]}, prune=True, force=True)
    assert pruned(plan) == {9} and len(plan.changes) == 1  # keep1: no row names it
    assert warning_codes(plan) == [(2, "id_damaged")]
    assert "scientific notation" in plan.warnings[0].message
    without = plan_with([line("1.23457E+11", "Lo", "Ng", site="1001")], [ZETA], {1001: [long_id]})
    assert not without.changes and without.conflicts[0].contact_ids == (7,)


def test_a_delete_naming_an_absent_contact_id_is_nothing_to_do() -> None:
    rows = [line("0042", site="1003", cid="99", action="delete"), line("keep1", site="1003")]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, KEEP]}, prune=True, force=True)
    assert [(c.action, c.contact_id) for c in plan.changes] == [("update", 9)]
    assert plan.summary()["unchanged"] == 1 and not plan.conflicts


def test_one_contact_named_by_two_rows_is_a_conflict_for_the_second() -> None:
    rows = [
        line("0042", "Maria", "Diaz", "12025550142", "maria@example.com", site="1003"),
        line("42", "Mary", "Diaz", site="1003", cid="3"),
    ]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA]}, exact_ids=True)
    assert not plan.changes and [c.row for c in plan.conflicts] == [3]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA]}, skip_invalid=True)  # 42 = 0042: duplicates
    assert [row.row for row in plan.invalid] == [2, 3] and not plan.changes


def test_validate_finds_site_ids_written_with_zeros_as_duplicates() -> None:
    rows = [line("z1", phone="2025550101", site="1001"), line("z1", site="01001")]
    validated = roster(rows, FULL)
    assert [(i.row, i.code) for i in validated.issues] == [
        (2, "duplicate_external_id"),
        (3, "duplicate_external_id"),
    ]


# reproduction 4: a phone extension is dropped silently


def test_repro4_an_extension_is_kept_in_a_dialable_form_and_named() -> None:
    values = ["(617) 555-0124 ext 12", "617-555-0124 x12", "+16175550124,12", "6175550124"]
    import pandas as pd

    phones, problems = normalize_phones(pd.Series(values, dtype="str"), "US")
    assert phones.tolist() == ["+16175550124,12"] * 3 + ["+16175550124"]
    assert problems.tolist() == ["phone_extension"] * 3 + [""]
    national, _ = normalize_phones(pd.Series(values[:1], dtype="str"), "US", "national")
    assert national.tolist() == ["(617) 555-0124,12"]
    validated = roster([line("a1", phone="(617) 555-0124 ext 12", site="1001")], FULL)
    [issue] = validated.issues
    assert (issue.code, issue.severity) == ("phone_extension", "warning")
    assert "'+16175550124,12'" in issue.message


def test_an_extension_already_in_chekt_is_no_change() -> None:
    held = Contact(5, "A", "B", "a1", "+16175550124,12")
    plan = plan_with([line("a1", phone="(617) 555-0124 x 12", site="1001")], [ZETA], {1001: [held]})
    assert not plan.changes and plan.summary()["unchanged"] == 1


# reproduction 5: one site named three ways doubles a contact


@pytest.mark.parametrize(
    "ways",
    [
        [{"site": "1001"}, {"account": "AC-1001"}, {"external": "ext-1001"}],
        [{"site": "1001"}, {"site": "01001"}],
        [{"site": "1001"}, {"site": "1001", "dealer": str(DEALER)}],
        [{"site": "1001", "ext": "0042"}, {"site": "1001", "ext": "42"}],
    ],
)
def test_repro5_duplicates_are_found_after_sites_are_resolved(ways) -> None:
    rows = [line(**{"ext": "z1", **way}) for way in ways]
    plan = plan_with(rows, [ZETA], {1001: [KEEP]}, skip_invalid=True)
    assert not plan.creates
    assert [row.row for row in plan.invalid] == list(range(2, 2 + len(ways)))
    listed = ", ".join(str(r) for r in range(2, 2 + len(ways)))
    assert all(f"rows {listed}" in row.problems[0] for row in plan.invalid)


def test_exact_ids_keeps_42_and_0042_apart_in_the_file() -> None:
    rows = [line("0042", site="1001"), line("42", site="1001")]
    plan = plan_with(rows, [ZETA], {1001: [KEEP]}, exact_ids=True)
    assert [c.external_contact_id for c in plan.creates] == ["0042", "42"]


def test_rows_of_an_export_each_with_its_contact_id_are_not_duplicates() -> None:
    twin = Contact(4, "Mario", "Diaz", "42", "+12025550143")
    rows = [
        line("0042", "Maria", "Diaz", "12025550142", "maria@example.com", site="1003", cid="3"),
        line("42", "Mario", "Diaz", "12025550143", site="1003", cid="4"),
    ]
    plan = plan_with(rows, [DIAZ], {1003: [MARIA, twin]})
    assert not plan.invalid and not plan.changes and plan.summary()["unchanged"] == 2


# reproduction 6: contacts with no phone are created silently

PHONE_1 = ["account_number", "external_contact_id", "first_name", "last_name", "Phone 1", "email"]


def test_repro6_a_phone_column_by_another_name_is_read() -> None:
    """Issue 15: 'Phone 1' (and Home Phone, Business Phone...) is a phone column, read; a
    column left out of --phone-columns is named instead (tests/test_layouts.py)."""
    validated = roster(
        [
            ["AC-1001", "a1", "Ann", "Lee", "2025550100", "ann@example.com"],
            ["AC-1001", "a2", "Bo", "Ng", "", ""],
        ],
        PHONE_1,
    )
    assert [(i.row, i.code, i.severity) for i in validated.issues if i.row] == [
        (3, "unreachable", "error"),
    ]
    assert validated.rows.loc[2, "phone_number"] == "+12025550100"
    assert "not read" not in validated.issues[-1].message


def test_reachability_is_judged_on_the_contact_the_plan_leaves() -> None:
    """With --blanks keep, a blank cell keeps CHeKT's value: the contact still has a phone."""
    rows = [
        line("keep1", "Kim", "Keep", "", site="1001"),  # CHeKT has a phone: kept
        line("n1", "No", "Phone", "", "n1@example.com", site="1001"),  # create: e-mail only
        line("u1", "Un", "Reachable", "", site="1001"),  # create: nothing
    ]
    plan = plan_with(rows, [ZETA], {1001: [KEEP]}, skip_invalid=True)
    assert warning_codes(plan) == [(3, "no_phone")]
    assert [row.row for row in plan.invalid] == [4] and "unreachable" not in str(plan.changes)
    assert [c.external_contact_id for c in plan.creates] == ["n1"]
    cleared = plan_with(rows[:1], [ZETA], {1001: [KEEP]}, blanks="clear", skip_invalid=True)
    assert [row.row for row in cleared.invalid] == [2] and not cleared.changes
    allowed = plan_with(rows, [ZETA], {1001: [KEEP]}, allow_unreachable=True)
    assert not allowed.invalid and len(allowed.creates) == 2
    assert warning_codes(allowed) == [(3, "no_phone"), (4, "no_phone")]


# the property: prune deletes only what no row names

SITES = [Site(101, "A", "ext-A", "00101"), Site(102, "B", "ext-B", "00102"), Site(103, "C")]
IDS = st.sampled_from(
    ["1", "01", "001", "a", "b", "7", "007", "7.0", "123456789012", "1.23457E+11", " a"]
)


@st.composite
def states(draw):
    ids = iter(range(1, 10_000))
    return {
        site.site_id: [
            Contact(
                next(ids),
                "P",
                "Q",
                draw(st.one_of(IDS, st.none())),
                draw(st.sampled_from([None, "+12025550143"])),
            )
            for _ in range(draw(st.integers(0, 5)))
        ]
        for site in SITES
    }


@st.composite
def files(draw, contact_ids: list[int]):
    """Rows naming sites every way (and wrongly), with ids, damaged ids, contact ids, and
    random reasons to be invalid."""
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        where = draw(
            st.sampled_from(
                [
                    {"site": "101"},
                    {"site": "0102"},
                    {"account": "00101"},
                    {"account": "101"},  # damaged: unresolved without --repair-ids
                    {"external": "ext-B"},
                    {"account": "NOPE"},
                    {"site": "103"},
                    {"site": "101", "account": "00102"},  # two sites: site_mismatch
                    {},  # no site at all
                ]
            )
        )
        cid = draw(st.one_of(st.just(""), st.sampled_from([str(c) for c in contact_ids] or [""])))
        rows.append(
            line(
                draw(IDS) if cid == "" or draw(st.booleans()) else "",
                draw(st.sampled_from(["A", "", "=x"])),
                "B",
                draw(st.sampled_from(["2025550199", "", "12", "1/5/2024"])),
                draw(st.sampled_from(["", "x@example.com", "bad@"])),
                cid=cid,
                action=draw(st.sampled_from(["", "", "remove"])),
                **where,
            )
        )
    return rows


def resolved(row: list[str], repair_ids: bool) -> int | None:
    """Which site a row names, as the test itself reads it: one exact way (or, with
    --repair-ids, one account once its zeros are back), or none."""
    _, site, account, external = row[:4]
    found = set()
    if site:
        found.add(int(site))
    accounts = {s.site_id for s in SITES if account and s.account_number == account}
    if account and not accounts and repair_ids:
        accounts = {s.site_id for s in SITES if account and s.account_number == account.zfill(5)}
    if account and not accounts:
        return None
    found |= accounts
    found |= {s.site_id for s in SITES if external and s.external_site_id == external}
    return found.pop() if len(found) == 1 else None


def named_by(rows: list[list[str]], state: dict[int, list[Contact]], repair_ids: bool) -> set[int]:
    """Every contact some row names: by contact_id anywhere; by external id (exactly or once
    repaired) on the row's site, or on every site when the row's site is not resolved."""
    named = set()
    for row in rows:
        ext, cid, site = row[4], row[5], resolved(row, repair_ids)
        for where, contacts in state.items():
            for contact in contacts:
                if cid and contact.contact_id == int(cid):
                    named.add(contact.contact_id)
                held = contact.external_contact_id
                if ext and held and (site in (None, where)) and same_after_repair(ext, held):
                    named.add(contact.contact_id)
    return named


@pytest.mark.parametrize("examples", [examples(80), pytest.param(1000, marks=pytest.mark.slow)])
def test_prune_never_deletes_a_contact_any_row_names(examples: int) -> None:
    """A few examples by default (`thorough`), 1000 with `-m slow`."""
    settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])(
        given(st.data(), st.booleans())(_prune_never_deletes_a_contact_any_row_names)
    )()


def _prune_never_deletes_a_contact_any_row_names(data, repair_ids) -> None:
    state = data.draw(states())
    contact_ids = [c.contact_id for found in state.values() for c in found] + [9999]
    rows = data.draw(files(contact_ids))
    plan = plan_with(
        rows,
        SITES,
        state,
        prune=True,
        skip_invalid=True,
        force=True,
        allow_empty_sites=True,
        repair_ids=repair_ids,
    )
    assert not pruned(plan) & named_by(rows, state, repair_ids), (rows, plan.deletes)


# the command line, against a seeded sandbox

SEED = {
    "dealers": [
        {
            "dealer_id": DEALER,
            "sites": [
                {
                    "site_id": 1001,
                    "name": "Zeta",
                    "account_number": "AC-1001",
                    "external_site_id": "ext-1001",
                    "timezone": "America/New_York",
                    "contacts": [
                        {
                            "contact_id": 9,
                            "external_contact_id": "keep1",
                            "first_name": "Kim",
                            "last_name": "Keep",
                            "phone_number": "+12025550109",
                        }
                    ],
                },
                {
                    "site_id": 1002,
                    "name": "Zero Site",
                    "account_number": "001234",
                    "external_site_id": "ext-1002",
                    "timezone": "America/New_York",
                    "contacts": [
                        {
                            "contact_id": 100,
                            "external_contact_id": "E100",
                            "first_name": "Ann",
                            "last_name": "Lee",
                            "phone_number": "+12025550100",
                        },
                        {
                            "contact_id": 101,
                            "external_contact_id": "E101",
                            "first_name": "Bob",
                            "last_name": "Ng",
                            "phone_number": "+12025550101",
                        },
                    ],
                },
                {
                    "site_id": 1003,
                    "name": "Diaz Home",
                    "account_number": "AC-1003",
                    "external_site_id": "ext-1003",
                    "timezone": "America/New_York",
                    "contacts": [
                        {
                            "contact_id": 3,
                            "external_contact_id": "0042",
                            "first_name": "Maria",
                            "last_name": "Diaz",
                            "phone_number": "+12025550142",
                            "email": "maria@example.com",
                        },
                        {
                            "contact_id": 4,
                            "external_contact_id": "0043",
                            "first_name": "Luis",
                            "last_name": "Diaz",
                            "phone_number": "+12025550143",
                        },
                    ],
                },
            ],
        }
    ]
}


@pytest.fixture
def seeded(start_sandbox, tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    return start_sandbox(seed=seed)


def run(server, *args: str):
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": str(DEALER),
    }
    quiet = [] if args[0] == "validate" else ["--no-progress"]
    return CliRunner().invoke(main, [*args, *quiet], env=env)


def contacts_of(server, site_id: int) -> list[tuple]:
    return server.store.db.execute(
        "SELECT contact_id, external_contact_id, first_name, phone_number FROM contacts "
        "WHERE site_id = ? ORDER BY contact_id",
        (site_id,),
    ).fetchall()


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_repro1_cli_prune_keeps_the_contact_of_a_row_with_a_damaged_account(seeded, tmp_path):
    roster_ = write(
        tmp_path / "r.csv",
        "Account #,External ID,First Name,Last Name,Phone\n"
        "1234,E100,Ann,Lee,2025550100\n001234,E101,Bob,Ng,2025550101\n",
    )
    out = tmp_path / "plan.json"
    result = run(seeded, "plan", roster_, "--skip-invalid", "--prune", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "did you mean '001234' (site 1002, Zero Site)?" in result.output
    assert "delete 0" in result.output and "(prune)" not in result.output
    assert Plan.read(out).deletes == []
    repaired = run(seeded, "plan", roster_, "--prune", "--repair-ids", "--detailed-exitcode")
    assert repaired.exit_code == 0, repaired.output
    assert "site_id_repaired" in repaired.output and "No changes" in repaired.output
    applied = run(seeded, "apply", roster_, "--skip-invalid", "--prune", "--yes")
    assert applied.exit_code == 0, applied.output
    assert [c[1] for c in contacts_of(seeded, 1002)] == ["E100", "E101"]


def excel_saved(path: Path) -> None:
    """What Excel does to a csv export it opens and saves: numbers lose their leading zeros
    and their plus sign."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        row[:] = [
            cell.lstrip("+").lstrip("0") or "0" if cell.lstrip("+").isdigit() else cell
            for cell in row
        ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_repro2_cli_an_export_saved_by_excel_keeps_every_contact_id(seeded, tmp_path) -> None:
    exported = tmp_path / "x.csv"
    result = run(seeded, "export", "-o", str(exported), "--site", "1003")
    assert result.exit_code == 0, result.output
    excel_saved(exported)
    assert ",42,3," in exported.read_text() and "12025550142" in exported.read_text()
    before = contacts_of(seeded, 1003)
    checked = run(seeded, "plan", str(exported), "--prune", "--detailed-exitcode")
    assert checked.exit_code == 0, checked.output
    assert "id_damaged" in checked.output and "'42'" in checked.output
    assert "No changes" in checked.output
    applied = run(seeded, "apply", str(exported), "--prune", "--yes")
    assert applied.exit_code == 0, applied.output
    assert contacts_of(seeded, 1003) == before


def test_repro2_cli_a_contact_id_not_on_the_site_is_a_conflict_not_a_create(seeded, tmp_path):
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,contact_id,first_name,last_name,phone_number\n"
        "1003,0042,3,Maria,Diaz,2025550142\n1003,0043,777,Luis,Diaz,2025550143\n",
    )
    result = run(seeded, "plan", roster_, "--prune")
    assert result.exit_code == 0, result.output
    assert "contact_id 777 is not on this site" in result.output
    assert "create 0   update 0   delete 0" in result.output


def test_cli_without_contact_id_a_damaged_id_is_a_conflict_unless_exact_ids(seeded, tmp_path):
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1003,42,Maria,Diaz,12025550142\n1003,0043,Luis,Diaz,2025550143\n",
    )
    result = run(seeded, "plan", roster_, "--prune")
    assert result.exit_code == 0, result.output
    assert "create 0   update 0   delete 0   unchanged 1   conflict 1" in result.output
    assert "'0042' (contact_id 3) is the same id" in result.output
    repaired = run(seeded, "plan", roster_, "--prune", "--repair-ids", "--detailed-exitcode")
    assert repaired.exit_code == 0 and "id_damaged" in repaired.output, repaired.output
    exact = run(seeded, "plan", roster_, "--prune", "--exact-ids")
    assert "create 1   update 0   delete 1" in exact.output, exact.output


def test_repro4_cli_an_extension_is_shown_sent_and_then_no_change(seeded, tmp_path) -> None:
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,keep1,Kim,Keep,2025550109\n1001,x1,Ext,Ension,(617) 555-0124 ext 12\n",
    )
    checked = run(seeded, "validate", roster_)
    assert checked.exit_code == 0 and "warning phone_extension: 1" in checked.output
    plan = run(seeded, "plan", roster_)
    assert "phone_extension" in plan.output and "+16175550124,12" in plan.output
    assert run(seeded, "apply", roster_, "--yes").exit_code == 0
    assert contacts_of(seeded, 1001)[-1][3] == "+16175550124,12"
    again = run(seeded, "plan", roster_, "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.output


def test_repro5_cli_one_site_named_three_ways_creates_nothing(seeded, tmp_path) -> None:
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,account_number,external_site_id,external_contact_id,first_name,last_name,phone\n"
        "1001,,,keep1,Kim,Keep,2025550109\n"
        "1001,,,z1,Zed,One,2025550111\n,AC-1001,,z1,Zed,One,2025550111\n"
        ",,ext-1001,z1,Zed,One,2025550111\n",
    )
    result = run(seeded, "plan", roster_)
    assert result.exit_code == 1
    assert "duplicate_external_id" in result.output or "rows 3, 4, 5" in result.output
    assert "rows 3, 4, 5" in result.output
    applied = run(seeded, "apply", roster_, "--skip-invalid", "--yes")
    assert applied.exit_code == 0, applied.output
    assert [c[1] for c in contacts_of(seeded, 1001)] == ["keep1"]


def test_repro6_cli_a_home_phone_column_is_read(seeded, tmp_path) -> None:
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,Home Phone,email\n"
        "1001,keep1,Kim,Keep,2025550109,\n"
        "1001,n1,No,Phone,2025550110,n1@example.com\n"
        "1001,u1,Un,Reachable,2025550111,\n",
    )
    # Issue 15: Home Phone is a phone column, read as the phone.
    checked = run(seeded, "validate", roster_)
    assert checked.exit_code == 0, checked.output
    assert "no phone" not in checked.output and "not read" not in checked.output
    plan = run(seeded, "plan", roster_)
    assert plan.exit_code == 0 and "no phone" not in plan.output


def test_validate_reports_carry_the_new_codes(tmp_path) -> None:
    roster_ = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone,email\n"
        "1001,a1,A,B,(617) 555-0124 ext 12,\n1001,a2,C,D,,c@example.com\n1001,a3,E,F,,\n",
    )
    report = tmp_path / "problems.json"
    result = CliRunner().invoke(main, ["validate", roster_, "--report", str(report)])
    assert result.exit_code == 1
    codes = {(i["row"], i["code"]) for i in json.loads(report.read_text())["issues"]}
    assert codes == {(2, "phone_extension"), (3, "no_phone"), (4, "unreachable")}
