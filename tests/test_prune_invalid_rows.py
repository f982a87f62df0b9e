"""`--skip-invalid --prune` and the rows of the file that are invalid (QA F4): a prune never
deletes a contact an invalid row may mean. A contact whose external id any row names (valid or
not) is kept; so is, for an invalid row without a readable id, a contact with the row's name
(folded as --match-by name folds it) or phone; the plan says why (`prune_kept_for_invalid`)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts.models import Contact
from bulk_contacts.normalize import same_after_repair
from bulk_contacts.sites import person_key

from .planning import roster
from .test_identity import FULL, ZETA, contacts_of, line, plan_of, plan_with, run, seeded, write
from .test_lookalike_ids import look_alike
from .thorough import examples

__all__ = ["seeded"]  # the fixture, shared with test_identity

HD = [
    Contact(1, "John", "Doe", "HD-001", "+12025550143"),
    Contact(2, "María José", "Álvarez", "HD-002", "+12025550100"),
    Contact(3, "Pat", "Former", "HD-099", "+12025550122"),
]


def kept(plan) -> dict[int, str]:
    return {i.contact_id: i.why for s in plan.sites for i in s.listed}


def test_the_qa_file_deletes_nothing_and_says_why() -> None:
    rows = [
        line("HD-001", "John", "Doe", "2025550143", site="1001"),
        line("HD-002\u200b", "Maria", "Alvarez", "2025550100", site="1001"),
        line("", "Pat", "Former", "2025550122", site="1001"),
    ]
    plan = plan_with(rows, [ZETA], {1001: HD}, prune=True, skip_invalid=True, force=True)
    assert not plan.deletes and [r.row for r in plan.invalid] == [3, 4]
    assert kept(plan) == {2: "protected", 3: "protected"}
    [warning] = [w for w in plan.warnings if w.code == "prune_kept_for_invalid"]
    assert warning.row == 4
    assert "row 4 is invalid and may mean it" in warning.message
    assert "'HD-099' (contact_id 3, Pat Former)" in warning.message


def test_an_invalid_row_with_its_id_and_another_bad_cell_keeps_its_contact() -> None:
    rows = [
        line("HD-001", "John", "Doe", "2025550143", site="1001"),
        line("HD-099", "Pat", "Former", "2025550122", "not-an-email", site="1001"),
        line("HD-002", "Maria", "Alvarez", "12", site="1001"),
    ]
    plan = plan_with(rows, [ZETA], {1001: HD}, prune=True, skip_invalid=True, force=True)
    assert [r.row for r in plan.invalid] == [3, 4], plan.invalid
    assert not plan.deletes and kept(plan) == {2: "protected", 3: "protected"}


def test_an_invalid_row_without_an_id_keeps_a_contact_by_name_or_by_phone() -> None:
    by_phone = [line("HD-001", site="1001"), line("", "P.", "F.", "(202) 555-0122", site="1001")]
    plan = plan_with(by_phone, [ZETA], {1001: HD}, prune=True, skip_invalid=True, force=True)
    assert [d.contact_id for d in plan.deletes] == [2], plan.changes  # HD-002: nobody means it
    assert kept(plan) == {3: "protected"}
    by_name = [line("HD-001", site="1001"), line("", "maria jose", "ALVAREZ", "12", site="1001")]
    plan = plan_with(by_name, [ZETA], {1001: HD}, prune=True, skip_invalid=True, force=True)
    assert [d.contact_id for d in plan.deletes] == [3]
    assert kept(plan) == {2: "protected"}


def test_an_invalid_row_whose_site_is_unknown_keeps_its_match_on_every_site() -> None:
    rows = [line("HD-001", site="1001"), line("", "Pat", "Former", "2025550122", site="999")]
    plan = plan_with(rows, [ZETA], {1001: HD}, prune=True, skip_invalid=True, force=True)
    assert [d.contact_id for d in plan.deletes] == [2] and kept(plan) == {3: "protected"}


def test_a_valid_roster_still_prunes_what_no_row_names() -> None:
    rows = [line("HD-001", "John", "Doe", "2025550143", site="1001")]
    plan = plan_with(rows, [ZETA], {1001: HD}, prune=True, force=True)
    assert sorted(d.contact_id for d in plan.deletes) == [2, 3]


PEOPLE = [
    ("Ann", "Lee", "+12025550100"),
    ("Bob", "Ng", "+12025550101"),
    ("Cy", "Old", "+12025550102"),
    ("Di", "Park", "+12025550103"),
]
# How a row of the file is damaged: not at all, its id cell emptied, its phone or e-mail made
# invalid, its id made invisible-damaged; and whether its name or phone still matches.
DAMAGE = st.sampled_from(["none", "no_id", "bad_phone", "bad_email", "invisible", "no_id_phone"])


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), DAMAGE), max_size=6))
def test_skip_invalid_prune_never_deletes_what_a_row_names_or_matches(rows) -> None:
    """For any roster with invalid rows: --skip-invalid --prune never deletes a contact whose
    external id a row of the file gives, nor, for an invalid row without an id, one with the
    row's name or phone."""
    held = [Contact(i, f, la, f"E{i}", p) for i, (f, la, p) in enumerate(PEOPLE)]
    cells = []
    for who, damage in rows:
        first, last, phone = PEOPLE[who]
        ext, email = f"E{who}", ""
        if damage in ("no_id", "no_id_phone"):
            ext = ""
        if damage == "no_id_phone":
            first, last = "X", "Y"  # only the phone says who
        if damage == "bad_phone":
            phone = "12"
        if damage == "bad_email":
            email = "nope@"
        if damage == "invisible":
            ext += "\u200b"
        cells.append(line(ext, first, last, phone[2:], email, site="1001"))
    plan = plan_with(cells, [ZETA], {1001: held}, prune=True, skip_invalid=True, force=True)
    invalid = {r.row for r in plan.invalid}
    for delete in plan.deletes:
        contact = next(c for c in held if c.contact_id == delete.contact_id)
        for at, cell in enumerate(cells, 2):
            ext, first, last, phone = cell[4], cell[6], cell[7], cell[8]
            assert ext.replace("\u200b", "") != contact.external_contact_id, (delete, cell)
            if at in invalid and not ext:
                assert person_key(first, last) != person_key(contact.first_name, contact.last_name)
                assert not contact.phone_number.endswith(phone), (delete, cell)


def test_cli_skip_invalid_prune_keeps_the_contact_of_a_row_without_an_id(seeded, tmp_path):
    """Zeta (1001) holds keep1, Kim Keep, +12025550109."""
    path = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,new1,Ann,New,2025550177\n1001,,Kim,Keep,2025550109\n",
    )
    before = contacts_of(seeded, 1001)
    planned = run(seeded, "plan", path, "--prune", "--skip-invalid")
    assert planned.exit_code == 0, planned.output
    assert "(prune)" not in planned.output and "prune_kept_for_invalid" in planned.output
    assert "row 3 is invalid and may mean it" in planned.output
    applied = run(seeded, "apply", path, "--prune", "--skip-invalid", "--yes")
    assert applied.exit_code == 0, applied.output
    after = contacts_of(seeded, 1001)
    assert [c for c in after if c[1] == "keep1"] == [c for c in before if c[1] == "keep1"]


# An invalid row whose id is a contact's only once repaired (a number a spreadsheet rounded, a
# look-alike), under --exact-ids: the plan does not tell look-alikes apart for a row it skips.

LONG = Contact(11, "Lo", "Ng", "1234567890123", "+12025550107")
JOHN = Contact(12, "John", "Doe", "HD-001", "+12025550143")
KIM = Contact(9, "Kim", "Keep", "keep1", "+12025550109")
# The row, and the contact it means: each invalid before the plan (a bad cell, an invisible
# character) or made invalid by it (a rounded id that matches nothing exactly, no phone left).
MEANT = {
    "scientific": (line("1.23457E+12", "Lo", "Ng", "2025550107", site="1001"), LONG),
    "scientific, bad phone": (line("1.23457E+12", "Lo", "Ng", "12", site="1001"), LONG),
    "scientific, other name": (line("1.23457E+12", "Al", "Other", "2025550111", site="1001"), LONG),
    "lower case, bad phone": (line("hd-001", "John", "Doe", "12", site="1001"), JOHN),
    "lower case, unreachable": (line("hd-001", "John", "Doe", "", site="1001"), JOHN),
    "fullwidth, bad e-mail": (
        line("\uff28\uff24-001", "Jo", "D", "2025550143", "x@", site="1001"),
        JOHN,
    ),
    "U+2010 hyphen, bad phone": (line("HD\u2010001", "J", "D", "12", site="1001"), JOHN),
    "invisible character": (line("HD-001\u200b", "Al", "Other", "2025550111", site="1001"), JOHN),
}


@functools.cache
def meant_roster(name: str):
    """The roster of a `MEANT` row, read and validated once for the 16 combinations of flags
    planned over it (validation does not depend on them)."""
    row, meant = MEANT[name]
    return roster([line("keep1", "Kim", "Keep", "2025550109", site="1001"), row], FULL), meant


FLAGS = [
    (exact, repair, skip, match)
    for exact in (False, True)
    for repair in (False, True)
    for skip in (False, True)
    for match in (None, "name")
]


@pytest.mark.parametrize("name", MEANT)
@pytest.mark.parametrize(("exact", "repair", "skip", "match"), FLAGS)
def test_prune_never_deletes_the_contact_an_invalid_row_means_once_repaired(
    name, exact, repair, skip, match
) -> None:
    """Every combination of --exact-ids, --repair-ids, --skip-invalid and --match-by with
    --prune: the contact an invalid row's id means once repaired is never deleted (before the
    fix: every --exact-ids one deleted it; without --skip-invalid the plan was refused, with it
    the delete went through). With --exact-ids the plan says why it keeps it."""
    validated, meant = meant_roster(name)
    rows, issues = validated.rows.copy(), list(validated.issues)
    plan = plan_of(
        validated,
        [ZETA],
        {1001: [LONG, JOHN, KIM]},
        prune=True,
        force=True,
        skip_invalid=skip,
        exact_ids=exact,
        repair_ids=repair,
        match_by=match,
    )
    # the roster the other cases share is left as read
    assert validated.rows.equals(rows) and validated.issues == issues
    assert meant.contact_id not in {d.contact_id for d in plan.deletes}, plan.deletes
    assert not plan.creates  # (without --exact-ids the row is a conflict, or --repair-ids' match)
    if exact:
        assert 3 in {r.row for r in plan.invalid}, plan.invalid
        assert kept(plan)[meant.contact_id] == "protected"
        [warning] = [w for w in plan.warnings if w.code == "prune_kept_for_invalid"]
        assert warning.row == 3 and f"(contact_id {meant.contact_id}," in warning.message
        assert "row 3 is invalid and may mean it" in warning.message


def test_exact_ids_still_prunes_what_a_valid_look_alike_row_does_not_name() -> None:
    """--exact-ids keeps its meaning for the rows it plans: a valid `hd-001` is another person
    than HD-001 (a create, and with --prune the delete of HD-001), as the README says."""
    rows = [line("hd-001", "John", "Doe", "2025550143", site="1001")]
    plan = plan_with(rows, [ZETA], {1001: [JOHN]}, prune=True, force=True, exact_ids=True)
    assert [c.external_contact_id for c in plan.creates] == ["hd-001"]
    assert [d.contact_id for d in plan.deletes] == [12]


DAMAGES = st.sampled_from(["bad_phone", "bad_email", "unreachable", "invisible"])


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 8), DAMAGES, st.booleans()), max_size=5),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, "name"]),
)
def test_exact_ids_skip_invalid_prune_keeps_what_an_invalid_row_means(
    rows, exact, repair, match
) -> None:
    """For any roster of rows whose ids look like contacts' ids, some of them invalid: prune
    never deletes a contact whose id an invalid row's id is once repaired, whatever the flags."""
    held = [Contact(i, "P", f"Q{i}", f"HD-00{i}", f"+1202555014{i}") for i in range(4)]
    held.append(LONG)
    held.append(KIM)
    cells = [line("keep1", "Kim", "Keep", "2025550109", site="1001")]  # one valid row at least
    for who, how, damage, scientific in rows:
        ext = "1.23457E+12" if scientific else look_alike(held[who].external_contact_id, how)
        phone, email = "2025550199", ""
        if damage == "bad_phone":
            phone = "12"
        elif damage == "bad_email":
            email = "nope@"
        elif damage == "unreachable":
            phone = ""
        elif damage == "invisible":
            ext += "\u200b"
        cells.append(line(ext, "X", "Y", phone, email, site="1001"))
    plan = plan_with(
        cells,
        [ZETA],
        {1001: held},
        prune=True,
        skip_invalid=True,
        force=True,
        exact_ids=exact,
        repair_ids=repair,
        match_by=match,
    )
    invalid = {r.row for r in plan.invalid}
    for delete in plan.deletes:
        for at, cell in enumerate(cells, 2):
            if at in invalid:
                assert not same_after_repair(cell[4], delete.external_contact_id), (delete, cell)


def test_cli_exact_ids_skip_invalid_prune_of_a_workbook_deletes_no_one_a_row_means(
    start_sandbox, tmp_path
) -> None:
    """Against the sandbox: a workbook with a number cell a spreadsheet rounded (1234570000000,
    read as 1.23457E+12) and a look-alike id on a row with a bad phone, planned and applied with
    --exact-ids --skip-invalid --prune: both contacts they mean are kept and named."""
    import json

    import openpyxl

    people = [
        (11, "1234567890123", "Long", "+12025550301"),
        (12, "HD-001", "John", "+12025550143"),
        (13, "HD-002", "Maria", "+12025550100"),
    ]
    site = {
        "site_id": 101,
        "name": "Harbor",
        "account_number": "10-4471",
        "external_site_id": "ext-101",
        "timezone": "America/New_York",
        "contacts": [
            {
                "contact_id": c,
                "external_contact_id": ext,
                "first_name": f,
                "last_name": "X",
                "phone_number": phone,
            }
            for c, ext, f, phone in people
        ],
    }
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"dealers": [{"dealer_id": 12345, "sites": [site]}]}))
    server = start_sandbox(seed=seed)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for cells in [
        ["Account #", "External Contact ID", "First Name", "Last Name", "Phone"],
        ["10-4471", 1234570000000, "Long", "X", "+12025550301"],
        ["10-4471", "hd\u2010001", "John", "X", "12"],
        ["10-4471", "HD-002", "Maria", "X", "+12025550100"],
    ]:
        sheet.append(cells)
    book.save(path := tmp_path / "roster.xlsx")
    flags = ["--exact-ids", "--skip-invalid", "--prune", "--no-progress"]
    planned = run(server, "plan", str(path), *flags[:-1])
    assert planned.exit_code == 0, planned.output
    assert "(prune)" not in planned.output and "delete 0" in planned.output, planned.output
    assert "'1234567890123' (contact_id 11, Long X): row 2 is invalid" in planned.output
    assert "'HD-001' (contact_id 12, John X): row 3 is invalid" in planned.output
    applied = run(server, "apply", str(path), *flags[:-1], "--yes")
    assert applied.exit_code == 0, applied.output
    held = server.store.db.execute(
        "SELECT contact_id FROM contacts WHERE site_id = 101 ORDER BY contact_id"
    ).fetchall()
    assert [row[0] for row in held] == [11, 12, 13]
