"""A hostile QA pass over issue 11's identity rules: what still slipped through, each reproduced
as a test (unit, command line, a seeded sandbox) before it was fixed.

QA 4: invisible characters and Unicode forms in ids; more of the forms Excel gives ids.
QA 5: international numbers whose `+` a spreadsheet dropped.
QA 13: an exact site match always wins over a repaired one.
QA 16: rows whose ids are one once repaired are duplicates, whatever their order.
QA 17: `--map` of a header the file does not have; dial strings (pauses) in phone numbers.
"""

from __future__ import annotations

import functools
import json
import sys
import unicodedata

import pandas as pd
import phonenumbers
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts import normalize
from bulk_contacts.cli import main
from bulk_contacts.errors import InputError
from bulk_contacts.models import Contact, Site
from bulk_contacts.normalize import (
    INVISIBLE,
    describe_damage,
    normalize_phones,
    repair_key,
    repair_keys,
    same_after_repair,
    usual_length,
)
from bulk_contacts.plan import Plan
from bulk_contacts.reconcile import resolve_sites
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster

from .planning import DEALER, roster
from .test_identity import FULL, ZETA, contacts_of, line, plan_with, run, seeded, write
from .thorough import examples

__all__ = ["seeded"]  # the fixture, shared with test_identity


def phones(*values: str, region: str = "US", phone_format: str = "e164") -> list[tuple[str, str]]:
    sent, problems = normalize_phones(pd.Series(values, dtype="str"), region, phone_format)
    return list(zip(sent.tolist(), problems.tolist(), strict=True))


# QA 17: --map of a header that is not in the file


def test_map_of_a_header_not_in_the_file_is_an_error_naming_the_headers(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("Account #,External ID,First Name,Last Name,Cell Phone\n1,c,A,B,2025550143\n")
    with pytest.raises(InputError) as caught:
        read_roster(path, column_map={"Mobile 2": "phone_number"})
    message = str(caught.value)
    assert '--map "Mobile 2=phone_number"' in message and "r.csv" in message
    assert "no header 'Mobile 2'" in message
    assert "A 'Account #', B 'External ID', C 'First Name', D 'Last Name', E 'Cell Phone'" in (
        message
    )
    # a header written in another case or spacing is the same header
    read = read_roster(path, column_map={"cell  phone": "phone_number"})
    assert read.frame.loc[2, "phone_number"] == "2025550143"


def test_cli_map_of_a_missing_header_exits_2(tmp_path) -> None:
    path = write(
        tmp_path / "r.csv",
        "Account #,External ID,First Name,Last Name,Phone\n1,c,A,B,2025550143\n",
    )
    result = CliRunner().invoke(main, ["validate", path, "--map", "Mobile 2=phone_number"])
    assert result.exit_code == 2, result.output
    assert "no header 'Mobile 2'" in result.output and "Traceback" not in result.output
    assert "E 'Phone'" in result.output


# QA 17: dial strings (pauses) are kept as written, like an extension

ZETA_CONTACT = Contact(5, "A", "B", "d1", "+16175550124,,12")


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("(617) 555-0124,,12", "+16175550124,,12"),  # a double pause: the PBX answers slowly
        ("+16175550124,,12", "+16175550124,,12"),
        ("(617) 555-0124,12,34", "+16175550124,12,34"),  # extension, then a code
        ("(617) 555-0124p12", "+16175550124,12"),  # p: a pause, as phones write it
        ("(617) 555-0124 PP12", "+16175550124,,12"),
        ("(617) 555-0124,,12#", "+16175550124,,12#"),
        ("(617) 555-0124 , , 12", "+16175550124,,12"),
        ("(617) 555-0124,12", "+16175550124,12"),  # as before
        ("(617) 555-0124 ext 12", "+16175550124,12"),
        ("(617) 555-0124 #12,,34", "+16175550124,12,,34"),  # an extension, then pauses
    ],
)
def test_a_dial_string_keeps_its_pauses_and_is_named(written: str, sent: str) -> None:
    assert phones(written) == [(sent, "phone_extension")]


def test_a_dial_string_in_national_format_and_trailing_pauses() -> None:
    assert phones("617 555 0124,,12", phone_format="national") == [
        ("(617) 555-0124,,12", "phone_extension")
    ]
    assert phones("(617) 555-0124,,") == [("+16175550124", "")]  # nothing to dial after them
    assert phones("(800) 555-HELP") == [("+18005554357", "")]  # a vanity number keeps its P
    assert phones("(617) 555-0124,,1x") == [("", "invalid_phone")]


def test_a_dial_string_already_in_chekt_is_no_change_and_a_new_pause_is_one() -> None:
    held = {1001: [ZETA_CONTACT]}
    same = plan_with([line("d1", phone="617-555-0124,,12", site="1001")], [ZETA], held)
    assert not same.changes and same.summary()["unchanged"] == 1
    fewer = plan_with([line("d1", phone="617-555-0124,12", site="1001")], [ZETA], held)
    assert [c.after for c in fewer.changes] == [{"phone_number": "+16175550124,12"}]


def test_validate_shows_the_dial_string_as_sent() -> None:
    validated = roster([line("d1", phone="(617) 555-0124,,12", site="1001")], FULL)
    [issue] = validated.issues
    assert issue.code == "phone_extension" and "'+16175550124,,12'" in issue.message


def test_cli_a_double_pause_is_sent_as_written(seeded, tmp_path) -> None:
    path = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        '1001,keep1,Kim,Keep,2025550109\n1001,d1,Dial,String,"(617) 555-0124,,12"\n',
    )
    checked = run(seeded, "validate", path)
    assert checked.exit_code == 0 and "phone_extension" in checked.output, checked.output
    plan = run(seeded, "plan", path)
    assert "+16175550124,,12" in plan.output, plan.output
    assert run(seeded, "apply", path, "--yes").exit_code == 0
    assert contacts_of(seeded, 1001)[-1][3] == "+16175550124,,12"
    again = run(seeded, "plan", path, "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.output, again.output


# QA 4: invisible characters and Unicode forms in ids

SOME_INVISIBLE = ["\u200b", "\ufeff", "\u200d", "\u2060", "\u00ad", "\u200c", "\u180e"]


@pytest.mark.parametrize("character", SOME_INVISIBLE)
@pytest.mark.parametrize(
    ("where", "column"),
    [
        ({"ext": "E1{c}00"}, "external_contact_id"),
        ({"ext": "E100", "account": "{c}001234"}, "account_number"),
        ({"ext": "E100", "external": "ext-1002{c}"}, "external_site_id"),
        ({"ext": "E100", "site": "1002{c}"}, "site_id"),
        ({"ext": "E100", "site": "1002", "cid": "10{c}0"}, "contact_id"),
    ],
)
def test_an_invisible_character_in_an_id_is_an_error_showing_it(where, column, character) -> None:
    cells = {name: value.format(c=character) for name, value in where.items()}
    validated = roster([line(**cells)], FULL)
    found = [i for i in validated.issues if i.code == "invisible_in_id"]
    assert [(i.row, i.field, i.severity) for i in found] == [(2, column, "error")]
    escaped = f"\\u{ord(character):04x}" if ord(character) > 0xFF else f"\\x{ord(character):02x}"
    assert escaped in found[0].message and f"U+{ord(character):04X}" in found[0].message


@pytest.mark.parametrize("character", SOME_INVISIBLE)
def test_an_invisible_character_in_a_name_is_a_warning(character) -> None:
    validated = roster([line("E100", f"An{character}n", "Lee", site="1002")], FULL)
    assert [(i.field, i.code, i.severity) for i in validated.issues] == [
        ("first_name", "invisible_character", "warning")
    ]
    assert f"U+{ord(character):04X}" in validated.issues[0].message


@pytest.mark.parametrize("character", SOME_INVISIBLE)
@pytest.mark.parametrize(
    ("first", "last"), [("{c}", "Lee"), ("Ann", "{c}{c} "), ("{c} {c}", "Lee")]
)
def test_a_name_of_invisible_characters_alone_is_an_error_never_a_blank_looking_contact(
    character, first, last
) -> None:
    """A name cell holding only invisible characters (a zero-width space pasted from a web
    page) looked filled to the required-value rule and was sent: a contact whose name shows
    blank on a call list. It is an error (`invisible_only`), the row is not sent."""
    first, last = first.format(c=character), last.format(c=character)
    validated = roster([line("E100", first, last, "2025550100", site="1002")], FULL)
    field = "first_name" if first != "Ann" else "last_name"
    found = [(i.row, i.field, i.code, i.severity) for i in validated.issues]
    assert found == [(2, field, "invisible_only", "error")], validated.issues
    assert f"U+{ord(character):04X}" in validated.issues[0].message
    assert not validated.valid


def test_a_bidi_override_is_still_its_own_code_not_an_invisible_one() -> None:
    validated = roster([line("E100", "An\u202en", site="1002")], FULL)
    assert [i.code for i in validated.issues] == ["bidi_override"]


ZERO = Site(1002, "Zero Site", "ext-1002", "001234")
E100 = Contact(100, "Ann", "Lee", "E100", "+12025550100")
E101 = Contact(101, "Bob", "Ng", "E101", "+12025550101")


def codes_of(plan) -> list[tuple[int | None, str]]:
    return [(w.row, w.code) for w in plan.warnings]


def test_a_row_id_with_an_invisible_character_is_never_a_create_and_a_prune() -> None:
    rows = [
        line("E100\u200b", "Ann", "Lee", "2025550100", site="1002"),
        line("E101", "Bob", "Ng", "2025550101", site="1002"),
    ]
    plan = plan_with(rows, [ZERO], {1002: [E100, E101]}, prune=True, skip_invalid=True)
    assert not plan.changes and [r.row for r in plan.invalid] == [2]
    assert {i.contact_id: i.why for i in plan.sites[0].listed} == {100: "protected"}


def test_an_id_in_chekt_with_an_invisible_character_is_a_conflict_never_create_and_prune():
    held = Contact(100, "Ann", "Lee", "E100\u200b", "+12025550100")
    rows = [
        line("E100", "Ann", "Lee", "2025550100", site="1002"),
        line("E101", "Bob", "Ng", "2025550101", site="1002"),
    ]
    plan = plan_with(rows, [ZERO], {1002: [held, E101]}, prune=True, force=True)
    assert not plan.changes
    [conflict] = plan.conflicts
    assert "invisible character (U+200B)" in conflict.message
    assert "'E100\\u200b'" in conflict.message
    by_id = plan_with(
        [line("E100", "Ann", "Lee", "2025550100", site="1002", cid="100"), *rows[1:]],
        [ZERO],
        {1002: [held, E101]},
        prune=True,
    )
    assert not by_id.changes and codes_of(by_id) == [(2, "id_damaged")]
    repaired = plan_with(rows, [ZERO], {1002: [held, E101]}, prune=True, repair_ids=True)
    assert not repaired.changes and codes_of(repaired) == [(2, "id_damaged")]


def test_ids_are_compared_in_nfc_on_both_sides() -> None:
    """CHeKT may hold an id decomposed (e + a combining accent) that a roster writes composed:
    one id, matched exactly, no warning."""
    held = Contact(100, "Ann", "Lee", "Jose\u0301", "+12025550100")
    site = Site(1002, "Zero Site", "ext-Jose\u0301", "Aca\u0308t")
    rows = [line("Jos\u00e9", "Ann", "Lee", "2025550100", external="ext-Jos\u00e9")]
    plan = plan_with(rows, [site], {1002: [held]}, prune=True, force=True)
    assert not plan.changes and not plan.invalid and not plan.warnings
    assert plan.summary()["unchanged"] == 1
    by_account = plan_with(
        [line("Jos\u00e9", "Ann", "Lee", "2025550100", account="Ac\u00e4t")],
        [site],
        {1002: [held]},
    )
    assert not by_account.changes and not by_account.invalid


# QA 4: more of the forms Excel gives ids


@pytest.mark.parametrize(
    ("written", "held", "damage"),
    [
        ("1,234", "1234", "thousands separators"),
        ("1,234", "001234", "thousands separators, leading zeros dropped"),
        ("1,234,567", "1234567", "thousands separators"),
        ("1\u00a0234", "1234", "thousands separators"),  # French Excel: a non-breaking space
        ("1\u202f234", "1234", "thousands separators"),  # a narrow one
        ("1 234", "1234", "thousands separators"),
        ("1'234", "1234", "thousands separators"),  # Swiss
        ("1,234.0", "1234", "thousands separators, '.0' added"),
        ("'0042", "0042", "a leading apostrophe kept"),
        ("'0042", "42", "a leading apostrophe kept, leading zeros dropped"),
        ("'E100", "E100", "a leading apostrophe kept"),
        ("\u00a00042\u00a0", "42", "leading zeros dropped, spaces around it"),
        ("E100\u200b", "E100", "an invisible character (U+200B)"),
        ("\ufeff42", "0042", "an invisible character (U+FEFF), leading zeros dropped"),
    ],
)
def test_more_of_what_excel_does_to_ids_is_repaired(written, held, damage) -> None:
    assert same_after_repair(written, held) and same_after_repair(held, written)
    assert describe_damage(written, held) == damage


@pytest.mark.parametrize(
    ("written", "held"),
    [
        ("1,23", "123"),  # not groups of three: not a number Excel wrote
        ("12,34", "1234"),
        ("1,234", "1243"),
        ("1,23,456", "123456"),
        ("1,234 567", "1234567"),  # two kinds of separator
        ("1.234", "1234"),  # a dot is a decimal point: 1.234 is not 1234
        ("A'B", "AB"),  # an apostrophe inside an id is part of it
        ("''42", "42"),
        ("E10\u200b0", "E1000"),
    ],
)
def test_what_is_not_excels_damage_is_not_repaired(written, held) -> None:
    assert not same_after_repair(written, held) and not same_after_repair(held, written)


ID_TEXT = st.text(
    alphabet=st.sampled_from("0123456789,.' E+-aZ\u00a0\u202f\u200b\ufeff\u00ad"), max_size=12
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(ID_TEXT, max_size=20))
def test_repair_keys_is_repair_key_vectorized(values) -> None:
    column = pd.Series(values, dtype="str")
    expected = list(map(repair_key, values))
    assert repair_keys(column).tolist() == expected  # a few rows: repair_key of each
    assert normalize._repair_keys_vectorized(column).tolist() == expected


def test_cli_an_export_saved_with_thousands_separators_and_invisible_ids(start_sandbox, tmp_path):
    """CHeKT holds 1234 and E100 with a zero-width space; Excel shows the first as 1,234 and a
    roster types the second without it."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED_4))
    server = start_sandbox(seed=seed)
    exported = tmp_path / "x.csv"
    assert run(server, "export", "-o", str(exported), "--site", "1002").exit_code == 0
    text = exported.read_text(encoding="utf-8-sig").replace(",1234,", ',"1,234",')
    text = text.replace("E100\u200b", "E100")  # typed again without it, as validate asks
    exported.write_text(text, encoding="utf-8")
    checked = run(server, "plan", str(exported), "--prune", "--detailed-exitcode")
    assert checked.exit_code == 0, checked.output
    assert "id_damaged" in checked.output and "thousands separators" in checked.output
    typed = write(
        tmp_path / "typed.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1002,1234,Al,One,2025550100\n1002,E100,Ann,Lee,2025550101\n",
    )
    plan = run(server, "plan", typed, "--prune")
    assert "create 0   update 0   delete 0" in plan.output, plan.output
    assert "invisible character (U+200B)" in plan.output
    invalid = write(
        tmp_path / "invalid.csv",
        "account_number,external_contact_id,first_name,last_name,phone_number\n"
        "001234,1234,Al,One,2025550100\n\u200b001234,E100\u200b,Ann,Lee,2025550101\n",
    )
    checked = run(server, "validate", invalid)
    assert checked.exit_code == 1 and "invisible_in_id" in checked.output, checked.output
    assert "'\\u200b001234'" in checked.output and "'E100\\u200b'" in checked.output
    applied = run(server, "apply", invalid, "--skip-invalid", "--prune", "--yes")
    assert applied.exit_code == 0, applied.output
    assert [c[1] for c in contacts_of(server, 1002)] == ["1234", "E100\u200b"]


SEED_4 = {
    "dealers": [
        {
            "dealer_id": DEALER,
            "sites": [
                {
                    "site_id": 1002,
                    "name": "Zero Site",
                    "account_number": "001234",
                    "external_site_id": "ext-1002",
                    "timezone": "America/New_York",
                    "contacts": [
                        {
                            "contact_id": 100,
                            "external_contact_id": "1234",
                            "first_name": "Al",
                            "last_name": "One",
                            "phone_number": "+12025550100",
                        },
                        {
                            "contact_id": 101,
                            "external_contact_id": "E100\u200b",
                            "first_name": "Ann",
                            "last_name": "Lee",
                            "phone_number": "+12025550101",
                        },
                    ],
                }
            ],
        }
    ]
}


def test_the_invisible_characters_are_unicodes_format_characters() -> None:
    bidi = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    every = [chr(c) for c in range(sys.maxunicode + 1) if c not in bidi]
    assert {c for c in every if unicodedata.category(c) == "Cf"} == {
        c for c in every if INVISIBLE.fullmatch(c) and unicodedata.category(c) != "Cn"
    }


# QA 13: an exact site match always wins over a repaired one


def placed(rows, sites, **options):
    """(placement, [(row, code)]) of the rows, as `plan` resolves their sites."""
    return placed_of(roster(rows, FULL), sites, **options)


def placed_of(validated, sites, **options):
    """`placed` for a roster already read and validated."""
    placement, issues = resolve_sites(validated, {DEALER: sites}, DEALER, **options)
    return {row: site for row, (_, site) in placement.items()}, [(i.row, i.code) for i in issues]


@functools.cache
def site_written(where: str, written: str):
    """The one-row roster whose site is `written` in column `where`, validated once for the
    cases that place it among other sites, with or without --repair-ids."""
    return roster([line("E1", **{where: written})], FULL)


@pytest.mark.parametrize("repair_ids", [False, True])
@pytest.mark.parametrize(
    ("accounts", "written", "site"),
    [
        (["1234", "001234"], "1234", 1),
        (["1234", "001234"], "001234", 2),
        (["001234", "1234"], "1234", 2),
        (["1234", " 1234"], "1234", 1),  # spaces around it in CHeKT: a repair, not a tie
        ([" 1234", "1234"], "1234", 2),
        (["1234\u200b", "1234"], "1234", 2),
        (["1234", "1234.0", "1,234", "'1234"], "1234", 1),
        (["1,234", "1234"], "1,234", 1),
        (["'1234", "1234"], "'1234", 1),
        (["123456789012", "1.23457E+11"], "1.23457E+11", 2),
        (["1.23457E+11", "123456789012"], "123456789012", 2),
        (["Ac\u00e4t", "Aca\u0308t "], "Ac\u00e4t", 1),
    ],
)
def test_an_exact_site_match_wins_over_a_repaired_one(accounts, written, site, repair_ids):
    sites = [Site(i, f"S{i}", f"ext-{i}", a) for i, a in enumerate(accounts, 1)]
    externals = [Site(i, f"S{i}", a, f"acc-{i}") for i, a in enumerate(accounts, 1)]
    for listed, where in ((sites, "account"), (externals, "external")):
        validated = site_written(where, written)
        rows, before = validated.rows.copy(), list(validated.issues)
        found, issues = placed_of(validated, listed, repair_ids=repair_ids)
        assert (found, issues) == ({2: site}, []), (listed, where)
        assert validated.rows.equals(rows) and validated.issues == before  # left as read


def test_a_site_matched_only_by_spaces_in_chekt_is_still_found_as_before() -> None:
    """A roster's cell is trimmed, so CHeKT's ' 1234 ' cannot be written exactly: with no exact
    match, the trimmed one is taken silently (as before), and is not a repair."""
    found, issues = placed([line("E1", account="1234")], [Site(1, "S1", "e1", " 1234 ")])
    assert (found, issues) == ({2: 1}, [])
    tie = [Site(1, "S1", "e1", " 1234"), Site(2, "S2", "e2", "1234 ")]
    assert placed([line("E1", account="1234")], tie)[1] == [(2, "ambiguous_site")]


@pytest.mark.parametrize("repair_ids", [False, True])
def test_a_repaired_site_is_never_used_when_another_column_matches_exactly(repair_ids) -> None:
    sites = [Site(1, "S1", "ext-1", "1234"), Site(2, "S2", "ext-2", "001235")]
    found, issues = placed(
        [line("E1", account="1235", external="ext-1")], sites, repair_ids=repair_ids
    )
    assert found == {} and issues == [(2, "site_id_damaged")]


SITE_IDS = st.sampled_from(
    ["1234", "001234", " 1234", "1234.0", "1,234", "'1234", "1234\u200b", "01234", "x1234"]
)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(SITE_IDS, min_size=1, max_size=5), SITE_IDS, st.booleans())
def test_a_site_written_exactly_is_that_site_and_no_other(accounts, written, repair_ids):
    """For any sites: a row naming a site's account exactly (as a roster writes it: trimmed)
    resolves to that site, without a word, when no other site has that exact account; it is
    ambiguous when several have; and a repaired match is never taken for it."""
    written = written.strip()
    sites = [Site(i, f"S{i}", f"ext-{i}", a) for i, a in enumerate(accounts, 1)]
    exact = [s.site_id for s in sites if s.account_number == written]
    found, issues = placed([line("E1", account=written)], sites, repair_ids=repair_ids)
    if len(exact) == 1:
        assert (found, issues) == ({2: exact[0]}, [])
    elif exact:
        assert found == {} and issues == [(2, "ambiguous_site")]
    else:
        assert set(found.values()) <= {s.site_id for s in sites if s.account_number != written}


def sites_seed(*accounts: str) -> dict:
    return {
        "dealers": [
            {
                "dealer_id": DEALER,
                "sites": [
                    {
                        "site_id": 2000 + i,
                        "name": f"Site {i}",
                        "account_number": account,
                        "external_site_id": f"ext-{i}",
                        "timezone": "America/New_York",
                        "contacts": [],
                    }
                    for i, account in enumerate(accounts, 1)
                ],
            }
        ]
    }


@pytest.mark.parametrize("repair", [[], ["--repair-ids"]])
def test_cli_exact_accounts_win_over_repaired_ones(start_sandbox, tmp_path, repair) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(sites_seed("1234", "001234", " 5678", "5678")))
    server = start_sandbox(seed=seed)
    path = write(
        tmp_path / "r.csv",
        "account_number,external_contact_id,first_name,last_name,phone_number\n"
        "1234,a,A,One,2025550101\n001234,b,B,Two,2025550102\n5678,c,C,Three,2025550103\n",
    )
    out = tmp_path / "plan.json"
    result = run(server, "plan", path, *repair, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "site_id_repaired" not in result.output and "ambiguous" not in result.output
    plan = Plan.read(out)
    assert [(c.site_id, c.external_contact_id) for c in plan.creates] == [
        (2001, "a"),
        (2002, "b"),
        (2004, "c"),
    ]
    assert not plan.warnings


# QA 16: rows whose ids are one once repaired are duplicates, in either order

TWIN = Contact(3, "M", "D", "0042", "+12025550142")


@pytest.mark.parametrize("order", [("42", "0042"), ("0042", "42"), ("1,234", "1234")])
@pytest.mark.parametrize(
    "held",
    [[], [TWIN], [Contact(3, "M", "D", "42", "+12025550142")], [Contact(3, "M", "D", "1234")]],
)
def test_ids_one_once_repaired_are_duplicates_in_either_order(order, held) -> None:
    rows = [line(ext, "A", "B", site="1001") for ext in order]
    plan = plan_with(rows, [ZETA], {1001: held}, skip_invalid=True)
    assert not plan.changes and [r.row for r in plan.invalid] == [2, 3]
    assert all("rows 2, 3" in r.problems[0] for r in plan.invalid)


def test_a_long_id_and_its_scientific_form_are_duplicates() -> None:
    rows = [line(ext, "A", "B", site="1001") for ext in ("123456789012", "1.23457E+11")]
    for held in ([], [Contact(7, "L", "N", "123456789012")]):
        plan = plan_with(rows, [ZETA], {1001: held}, skip_invalid=True)
        assert not plan.changes and [r.row for r in plan.invalid] == [2, 3], held


PLAN_IDS = st.sampled_from(
    [
        *("42", "0042", "42.0", "'42", "4\u200b2", "1,234", "1234", "001234", "a", "'a"),
        *("a\u00ad", "123456789012", "1.23457E+11", "123457000000"),
    ]
)


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(st.tuples(PLAN_IDS, st.sampled_from(["1001", "01001"])), max_size=6),
    st.lists(PLAN_IDS, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_no_two_changes_are_about_one_repaired_id_on_a_site(rows, held, exact_ids, repair_ids):
    """For any roster: the plan never holds two creates or updates about one (site, repaired
    id), and never creates a contact whose id is an existing contact's once repaired (unless
    --exact-ids)."""
    contacts = [Contact(i, "P", "Q", ext, "+12025550143") for i, ext in enumerate(held, 1)]
    cells = [line(ext, "A", "B", site=site) for ext, site in rows]
    plan = plan_with(
        cells,
        [ZETA],
        {1001: contacts},
        skip_invalid=True,
        exact_ids=exact_ids,
        repair_ids=repair_ids,
    )
    same = (lambda a, b: a == b) if exact_ids else same_after_repair
    changed = [c for c in plan.changes if c.action in ("create", "update")]
    for i, one in enumerate(changed):
        for other in changed[i + 1 :]:
            assert not same(one.external_contact_id, other.external_contact_id), (one, other)
    if not exact_ids:
        for create in plan.creates:
            assert not any(
                same_after_repair(create.external_contact_id, c.external_contact_id)
                for c in contacts
            ), create


@pytest.mark.parametrize("order", [("42", "0042"), ("0042", "42"), ("77", "077")])
def test_cli_42_and_0042_are_duplicates_in_either_order(seeded, tmp_path, order) -> None:
    """Site 1003 holds 0042 (and 0043), and no 77."""
    path = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        f"1003,{order[0]},Maria,Diaz,2025550142\n1003,{order[1]},Mary,Diaz,2025550144\n"
        "1003,0043,Luis,Diaz,2025550143\n",
    )
    before = contacts_of(seeded, 1003)
    result = run(seeded, "plan", path)
    assert result.exit_code == 1, result.output
    assert "is used by rows 2, 3 for the same site" in result.output, result.output
    prune = ["--prune"] if "0042" in order else []  # else no row names 0042: pruned
    applied = run(seeded, "apply", path, "--skip-invalid", *prune, "--yes")
    assert applied.exit_code == 0, applied.output
    assert contacts_of(seeded, 1003) == before


# QA 5: international numbers whose + a spreadsheet dropped


@pytest.mark.parametrize(
    ("written", "region", "sent", "code"),
    [
        ("442079460958", "US", "+442079460958", "phone_plus_dropped"),  # +44 20 7946 0958
        ("525512345678", "US", "+525512345678", "phone_plus_dropped"),  # +52 55 1234 5678
        ("525512345678", "GB", "+525512345678", "phone_plus_dropped"),
        ("441212345678", "DE", "", "phone_plus_ambiguous"),  # valid in DE too: never guessed
        ("4915123456789", "DE", "", "phone_plus_ambiguous"),  # DE's own, + dropped
        ("2025550142", "US", "+12025550142", ""),  # a national number, as typed
        ("12025550142", "US", "+12025550142", ""),  # +1 dropped: the same number
        ("02079460958", "GB", "+442079460958", ""),
        ("+442079460958", "US", "+442079460958", ""),
        ("44207946", "US", "", "invalid_phone"),  # no number either way
    ],
)
def test_a_dropped_plus_is_put_back_only_when_unambiguous(written, region, sent, code) -> None:
    assert phones(written, region=region) == [(sent, code)]


def test_a_dropped_plus_in_national_format_and_in_validate() -> None:
    assert phones("442079460958", phone_format="national") == [
        ("+44 20 7946 0958", "phone_plus_dropped")
    ]
    validated = roster([line("p1", phone="442079460958", site="1001")], FULL)
    [issue] = validated.issues
    assert (issue.code, issue.severity) == ("phone_plus_dropped", "warning")
    assert "'+442079460958'" in issue.message and "Text" in issue.message
    german = validate_roster(
        roster([line("p1", phone="441212345678", site="1001")], FULL).roster, "DE"
    )
    [issue] = german.issues
    assert (issue.code, issue.severity) == ("phone_plus_ambiguous", "error")
    assert "'+49441212345678'" in issue.message and "'+441212345678'" in issue.message


REGIONS = ["US", "GB", "MX", "DE", "FR", "AU", "IN", "BR", "JP", "ES", "IT", "NL", "ZA", "CN"]
KINDS = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(REGIONS),
    st.sampled_from(KINDS),
    st.sampled_from(["US", "GB", "DE", "MX", "FR", "AU"]),
)
def test_a_number_whose_plus_was_dropped_is_never_sent_wrong(home, kind, region) -> None:
    """phonenumbers' example number of a region, its + dropped, read with another default
    region: sent only as that very number, or refused; never as another number, silently or
    not, but for digits of the default region's own length that are a valid number there (read
    as typed: the documented limit)."""
    number = phonenumbers.example_number_for_type(home, kind)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = e164[1:]
    [(sent, code)] = phones(digits, region=region)
    if code in ("", "phone_plus_dropped") and sent != e164:
        assert code == "" and len(digits) <= usual_length(region), (digits, region, sent)
    if code == "phone_plus_dropped":
        assert sent == e164


def test_cli_a_dropped_plus_is_put_back_with_a_warning(seeded, tmp_path) -> None:
    path = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,keep1,Kim,Keep,2025550109\n1001,uk1,Ann,Smith,442079460958\n"
        "1001,mx1,Ana,Ruiz,525512345678\n",
    )
    checked = run(seeded, "validate", path)
    assert checked.exit_code == 0, checked.output
    assert "phone_plus_dropped: 2" in checked.output
    plan = run(seeded, "plan", path)
    assert "+442079460958" in plan.output and "+525512345678" in plan.output, plan.output
    assert run(seeded, "apply", path, "--yes").exit_code == 0
    phones = {c[3] for c in contacts_of(seeded, 1001)}
    assert {"+442079460958", "+525512345678"} <= phones
    again = run(seeded, "plan", path, "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.output, again.output
    german = run(seeded, "validate", path, "--region", "DE")
    assert german.exit_code == 1 and "phone_plus_ambiguous" in german.output, german.output
