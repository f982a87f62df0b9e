"""`--skip-invalid --prune` and the rows of the file that are invalid (QA F4): a prune never
deletes a contact an invalid row may mean. A contact whose external id any row names (valid or
not) is kept; so is, for an invalid row without a readable id, a contact with the row's name
(folded as --match-by name folds it) or phone; the plan says why (`prune_kept_for_invalid`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts.models import Contact
from bulk_contacts.sites import person_key

from .test_identity import ZETA, contacts_of, line, plan_with, run, seeded, write
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
