"""Look-alike external ids (QA F3): an id that differs from a contact's only by case, a dash
variant, a compatibility form (fullwidth) or invisible characters and spaces is that contact's
id, damaged: a conflict (or a match with --repair-ids), never a create of a second copy of the
person plus a prune of the first; --exact-ids still tells them apart."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts import normalize
from bulk_contacts.models import Contact
from bulk_contacts.normalize import describe_damage, repair_key, repair_keys, same_after_repair

from .test_identity import ZETA, contacts_of, line, plan_with, run, seeded, write
from .thorough import examples

__all__ = ["seeded"]  # the fixture, shared with test_identity

DASHES = "\u2010\u2011\u2012\u2013\u2212\uff0d"


@pytest.mark.parametrize(
    ("written", "held", "damage"),
    [
        ("hd-001", "HD-001", "letters in another case"),
        ("Hd-001", "HD-001", "letters in another case"),
        *((f"HD{dash}002", "HD-002", f"a look-alike dash (U+{ord(dash):04X})") for dash in DASHES),
        ("\uff28\uff24-099", "HD-099", "compatibility forms (fullwidth, ligatures...)"),
        (
            "\uff48\uff44-099",
            "HD-099",
            "compatibility forms (fullwidth, ligatures...), letters in another case",
        ),
        ("HD\u00a0001", "HD 001", "spaces inside it"),
        ("HD  001", "HD 001", "spaces inside it"),
        ("HD-001\u200b", "hd-001", "an invisible character (U+200B), letters in another case"),
        ("Stra\u00dfe-1", "STRASSE-1", "letters in another case"),
        ("\u041dD-002", "HD-002", "letters or digits of another script that look like Latin ones"),
        ("H\u0395-7", "HE-7", "letters or digits of another script that look like Latin ones"),
        ("HD-00\u0661", "HD-001", "letters or digits of another script that look like Latin ones"),
    ],
)
def test_look_alike_ids_are_one_id_named_in_words(written, held, damage) -> None:
    assert same_after_repair(written, held) and same_after_repair(held, written)
    assert repair_key(written) == repair_key(held)
    assert describe_damage(written, held) == damage


@pytest.mark.parametrize(
    ("written", "held"),
    [("HD-001", "HD-0001"), ("HD-001", "HD001"), ("HD 001", "HD-001"), ("HD_001", "HD-001")],
)
def test_ids_that_only_look_different_are_not_folded(written, held) -> None:
    assert not same_after_repair(written, held)


def test_an_id_in_digits_of_another_script_has_the_key_of_its_ascii_digits() -> None:
    """The plan's keys (`repair_keys`, vectorized) are `repair_key`'s: `١٢` (Arabic-Indic) and
    `０１２` (fullwidth) are 12, as messages and the comparison say. Before: the vectorized
    path took any Unicode digit for a plain number and kept `١٢` as its key, so the plan never
    matched it to the contact 12 that `same_after_repair` says it is."""
    values = ["\u0661\u0662", "\uff10\uff11\uff12", "0\u0967\u0968.0", "12", "x"]
    column = pd.Series(values, dtype="str")
    for keys in (repair_keys(column), normalize._repair_keys_vectorized(column)):
        assert keys.tolist() == list(map(repair_key, values)) == ["12", "12", "12", "12", "X"]


LOOKS = st.text(alphabet=st.sampled_from(f"aZzA-09 \u00a0\u200b{DASHES}\uff21\uff41"), max_size=10)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(LOOKS, max_size=20))
def test_repair_keys_folds_look_alikes_as_repair_key_does(values) -> None:
    column = pd.Series(values, dtype="str")
    expected = list(map(repair_key, values))
    assert repair_keys(column).tolist() == expected  # a few rows: repair_key of each
    assert normalize._repair_keys_vectorized(column).tolist() == expected


def look_alike(value: str, how: int) -> str:
    """One of the ways an id is written that looks like `value` and is another string."""
    forms = [
        value.lower(),
        value.swapcase(),
        value.replace("-", "\u2010"),
        value.replace("-", "\u2212"),
        value.replace("-", "\uff0d"),
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value),  # fullwidth
        value + "\u200b",
        value.replace("H", "\u041d").replace("K", "\u039a"),  # Cyrillic En, Greek Kappa
        "".join(chr(0x660 + int(c)) if c.isdigit() else c for c in value),  # Arabic-Indic
    ]
    return forms[how % len(forms)]


HELD_IDS = st.sampled_from(["HD-001", "HD-002", "hd-099", "K-7"])


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(st.tuples(HELD_IDS, st.integers(0, 6), st.booleans()), min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_a_look_alike_of_a_contacts_id_is_never_a_create_nor_its_prune(rows, repair_ids, exact):
    """For any roster whose ids look like contacts' ids: no create of a look-alike of a contact
    (unless --exact-ids) and no prune of a contact some row looks like (unless --exact-ids)."""
    held = [
        Contact(i, "P", "Q", ext, f"+1202555014{i}")
        for i, ext in enumerate(["HD-001", "HD-002", "hd-099", "K-7"], 1)
    ]
    cells = [
        line(look_alike(ext, how) if alike else ext, "A", "B", site="1001")
        for ext, how, alike in rows
    ]
    plan = plan_with(
        cells,
        [ZETA],
        {1001: held},
        prune=True,
        force=True,
        skip_invalid=True,
        repair_ids=repair_ids,
        exact_ids=exact,
    )
    if exact:
        return  # different people by decision: nothing to check beyond the plan being made
    for create in plan.creates:
        assert not any(
            same_after_repair(create.external_contact_id, c.external_contact_id) for c in held
        ), create
    named = [ext for ext, _, _ in rows]
    for delete in plan.deletes:
        assert not any(same_after_repair(delete.external_contact_id, n) for n in named), delete


HD = [
    Contact(1, "John", "Doe", "HD-001", "+12025550143"),
    Contact(2, "Maria", "Alvarez", "HD-002", "+12025550100"),
    Contact(3, "Pat", "Former", "HD-099", "+12025550122"),
]


def test_the_qa_file_is_conflicts_naming_the_contact_and_nothing_is_deleted() -> None:
    rows = [
        line("hd-001", "John", "Doe", "2025550143", site="1001"),
        line("HD\u2010002", "Maria", "Alvarez", "2025550100", site="1001"),
        line("\uff28\uff24-099", "Pat", "Former", "2025550122", site="1001"),
    ]
    plan = plan_with(rows, [ZETA], {1001: HD}, prune=True, force=True)
    assert not plan.changes
    first, second, third = sorted(plan.conflicts, key=lambda c: c.row or 0)
    assert first.contact_ids == (1,) and "'HD-001' (contact_id 1)" in first.message
    assert "letters in another case" in first.message and "--repair-ids" in first.message
    assert "--exact-ids" in first.message
    assert "a look-alike dash (U+2010)" in second.message and second.contact_ids == (2,)
    assert "compatibility forms" in third.message and third.contact_ids == (3,)
    repaired = plan_with(rows, [ZETA], {1001: HD}, prune=True, force=True, repair_ids=True)
    assert not repaired.changes and not repaired.conflicts
    assert [(w.row, w.code) for w in repaired.warnings] == [
        (2, "id_damaged"),
        (3, "id_damaged"),
        (4, "id_damaged"),
    ]
    exact = plan_with(rows, [ZETA], {1001: HD}, prune=True, force=True, exact_ids=True)
    assert len(exact.creates) == 3 and len(exact.deletes) == 3


def test_a_row_with_a_contact_id_and_a_look_alike_id_is_that_contact_with_a_warning() -> None:
    rows = [line("hd-001", "John", "Doe", "2025550143", site="1001", cid="1")]
    plan = plan_with(rows, [ZETA], {1001: HD})
    assert not plan.changes and [(w.row, w.code) for w in plan.warnings] == [(2, "id_damaged")]
    assert "letters in another case" in plan.warnings[0].message


def test_two_rows_whose_ids_look_alike_are_duplicates() -> None:
    for pair in (("HD-005", "hd-005"), ("HD-005", "HD\u2011005"), ("HD-005", "\uff28D-005")):
        rows = [line(ext, "A", "B", site="1001") for ext in pair]
        plan = plan_with(rows, [ZETA], {1001: []}, skip_invalid=True)
        assert not plan.changes and [r.row for r in plan.invalid] == [2, 3], pair
        assert all("rows 2, 3" in r.problems[0] for r in plan.invalid)


def test_two_contacts_whose_ids_look_alike_neither_is_pruned_nor_guessed() -> None:
    """CHeKT holds HD-001 and hd-001: a row naming one exactly is that one, and the other
    (maybe the same person) is kept, not pruned; a row naming neither exactly is a conflict
    naming both."""
    twins = [HD[0], Contact(4, "Jon", "Doe", "hd-001", "+12025550144")]
    exact = plan_with(
        [line("HD-001", "John", "Doe", "2025550143", site="1001")],
        [ZETA],
        {1001: twins},
        prune=True,
        force=True,
    )
    assert not exact.changes and not exact.conflicts
    assert {i.contact_id: i.why for i in exact.sites[0].listed} == {4: "protected"}
    neither = plan_with(
        [line("Hd-001", "John", "Doe", "2025550143", site="1001")],
        [ZETA],
        {1001: twins},
        prune=True,
        force=True,
        repair_ids=True,
    )
    assert not neither.changes
    [conflict] = neither.conflicts
    assert conflict.contact_ids == (1, 4)


def test_cli_look_alike_ids_create_nothing_and_delete_nothing(seeded, tmp_path) -> None:
    """Site 1003 holds 0042 and 0043; Zeta (1001) holds keep1."""
    path = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,KEEP1,Kim,Keep,2025550109\n1001,K\uff25EP1,Kim,Keep,2025550109\n",
    )
    before = contacts_of(seeded, 1001)
    result = run(seeded, "plan", path, "--prune")
    assert "is used by rows 2, 3" in result.output, result.output
    single = write(
        tmp_path / "s.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,\uff2b\uff25\uff25\uff30\uff11,Kim,Keep,2025550109\n",
    )
    planned = run(seeded, "plan", single, "--prune")
    assert "'keep1' (contact_id 9)" in planned.output, planned.output
    assert "(prune)" not in planned.output and "+ create" not in planned.output
    applied = run(seeded, "apply", single, "--prune", "--yes")
    assert contacts_of(seeded, 1001) == before, applied.output
    repaired = run(seeded, "plan", single, "--prune", "--repair-ids", "--detailed-exitcode")
    assert repaired.exit_code == 0, repaired.output
    assert "id_damaged" in repaired.output


def test_a_look_alike_account_number_is_never_used_silently() -> None:
    """Sites are repaired the same way: 'ac‐1001' (a U+2010 hyphen, in lower case) is not a
    site, but names the likely one; --repair-ids takes it, with a warning."""
    rows = [line("HD-001", "John", "Doe", "2025550143", account="ac\u20101001")]
    plan = plan_with(rows, [ZETA], {1001: HD}, skip_invalid=True)
    [invalid] = plan.invalid
    assert "did you mean 'AC-1001' (site 1001, Zeta)?" in invalid.problems[0]
    assert "letters in another case" in invalid.problems[0]
    repaired = plan_with(rows, [ZETA], {1001: HD}, repair_ids=True)
    assert not repaired.invalid and not repaired.changes
