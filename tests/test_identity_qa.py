"""A hostile QA pass over issue 11's identity rules: what still slipped through, each reproduced
as a test (unit, command line, a seeded sandbox) before it was fixed.

QA 4: invisible characters and Unicode forms in ids; more of the forms Excel gives ids.
QA 5: international numbers whose `+` a spreadsheet dropped.
QA 13: an exact site match always wins over a repaired one.
QA 16: rows whose ids are one once repaired are duplicates, whatever their order.
QA 17: `--map` of a header the file does not have; dial strings (pauses) in phone numbers.
"""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from bulk_contacts.cli import main
from bulk_contacts.errors import InputError
from bulk_contacts.models import Contact
from bulk_contacts.normalize import normalize_phones
from bulk_contacts.roster import read_roster

from .planning import roster
from .test_identity import FULL, ZETA, contacts_of, line, plan_with, run, seeded, write

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
