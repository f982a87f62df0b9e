"""Validation: every rule, the normalizations, the reports, the command, and the fast paths'
agreement with phonenumbers and email-validator."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts import normalize
from bulk_contacts.cli import main
from bulk_contacts.normalize import (
    email_by_library,
    email_fast_path,
    nanp_candidates,
    nanp_valid,
    normalize_emails,
    normalize_phones,
    phone_by_library,
)
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster

from .thorough import examples

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
HEADER = "Account #,External ID,First Name,Last Name,Phone,E-mail,Action,Site ID,Contact ID\n"


def check(tmp_path: Path, body: str, **options):
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    # Each rule alone: rows without phone or e-mail are judged in test_identity.py.
    return validate_roster(read_roster(path), **{"judge_reachability": False, **options})


def codes(result) -> list[tuple[int | None, str, str]]:
    return [(i.row, i.field, i.code) for i in result.issues]


def test_a_clean_roster_is_valid_and_normalized(tmp_path) -> None:
    result = check(
        tmp_path,
        "A1,c1, José ,Ñ,(202) 555-0143,Ann@Example.COM,,,\n"
        "A1,c2,Bo,Li,+44 20 7946 0958,,DELETE,,\n",
    )
    assert result.valid and result.issues == []
    row = result.rows.loc[2]
    assert (row.first_name, row.phone_number, row.email, row.action) == (
        "José",
        "+12025550143",
        "Ann@example.com",
        "upsert",
    )
    assert result.rows.loc[3, "action"] == "delete"


def test_national_phone_format(tmp_path) -> None:
    result = check(
        tmp_path,
        "A1,c1,A,B,2025550143,,,,\nA1,c2,A,B,+44 20 7946 0958,,,,\n",
        phone_format="national",
    )
    assert result.rows["phone_number"].tolist() == ["(202) 555-0143", "+44 20 7946 0958"]


def test_unicode_is_compared_in_nfc(tmp_path) -> None:
    decomposed = "Jose\u0301"
    result = check(tmp_path, f"A1,c1,{decomposed},B,,,,,\n")
    assert result.rows.loc[2, "first_name"] == "José"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("A1,c1,,B,,,,,\n", [(2, "first_name", "missing_value")]),
        ("A1,,A,B,,,,,\n", [(2, "external_contact_id", "missing_value")]),
        ("A1,,A,B,,,,,77\n", []),  # a contact_id names the contact instead
        ("A1,c1,,,,,delete,,\n", []),  # a delete needs no names
        (",c1,A,B,,,,,\n", [(2, "account_number", "no_site")]),
        ("A1,c1,A,B,,,,12x,\n", [(2, "site_id", "not_numeric")]),
        ("A1,c1,A,B,,,,,abc\n", [(2, "contact_id", "not_numeric")]),
        ("A1,c1,A,B,,,remove,,\n", [(2, "action", "bad_action")]),
        (f"A1,c1,{'x' * 300},B,,,,,\n", [(2, "first_name", "too_long")]),
        ("A1,c1,A,B,555-0199,,,,\n", [(2, "phone_number", "invalid_phone")]),
        ("A1,c1,A,B,2.02555E+09,,,,\n", [(2, "phone_number", "phone_scientific")]),
        ("A1,c1,A,B,1/5/2024,,,,\n", [(2, "phone_number", "phone_date")]),
        ("A1,c1,A,B,,a@b@c.com,,,\n", [(2, "email", "invalid_email")]),
        (
            "A1,c1,A,B,,,,,\nA1,c1,C,D,,,,,\nA2,c1,E,F,,,,,\n",
            [
                (2, "external_contact_id", "duplicate_external_id"),
                (3, "external_contact_id", "duplicate_external_id"),
            ],
        ),
        (
            "A1,c1,A,B,2025550143,,,,\nA1,c2,C,D,(202) 555-0143,,,,\n",
            [(3, "phone_number", "duplicate_phone")],
        ),
        ("A1,c1,=cmd,B,,,,,\n", [(2, "first_name", "formula_like")]),
    ],
)
def test_each_rule(tmp_path, body: str, expected: list) -> None:
    assert codes(check(tmp_path, body)) == expected


def test_every_problem_is_collected_with_row_column_value_and_message(tmp_path) -> None:
    result = check(tmp_path, "A1,c1,,,123,x@,nope,,\n,c2,A,B,,,,,\n")
    assert {(i.row, i.code) for i in result.errors} == {
        (2, "missing_value"),
        (2, "invalid_phone"),
        (2, "invalid_email"),
        (2, "bad_action"),
        (3, "no_site"),
    }
    phone = next(i for i in result.issues if i.code == "invalid_phone")
    assert phone.column == "E 'Phone'" and phone.value == "123" and "region US" in phone.message
    assert result.invalid_rows == {2, 3}
    duplicate = check(tmp_path, "A1,c1,A,B,,,,,\nA1,c1,C,D,,,,,\n").issues[0]
    assert "rows 2, 3" in duplicate.message


def test_pandera_names_the_failing_rows_alone_and_a_valid_roster_skips_it(
    tmp_path, monkeypatch
) -> None:
    """The column rules are tested directly first (about 1 ms for a few rows; pandera takes
    about 15 ms whatever their number): pandera runs on the rows that fail, to name each
    failure, the same issues as it finds on the whole roster."""
    from bulk_contacts import schema

    checked: list[list[int]] = []
    real = schema.pa.DataFrameSchema.validate

    def validate(self, frame, *args, **kwargs):
        checked.append(frame.index.tolist())
        return real(self, frame, *args, **kwargs)

    monkeypatch.setattr(schema.pa.DataFrameSchema, "validate", validate)
    body = (
        "A1,c1,A,B,,,,,\nA1,c2,,B,,,,,\n,c3,A,B,,,,,\nA1,c4,A,B,,,,12x,\nA1,c5,A,B,,,,,abc\n"
        f"A1,c6,A,B,,,remove,,\nA1,c7,{'x' * 300},B,,,,,\nA1,,A,B,,,,,\nA1,c9,A,B,,,DELETE,,\n"
    )
    found = check(tmp_path, body)
    assert checked == [[3, 4, 5, 6, 7, 8, 9]]
    monkeypatch.setattr(schema, "_failing_rows", lambda frame, blank: None)  # pandera on all
    assert check(tmp_path, body).issues == found.issues
    assert checked[1] == list(range(2, 11))
    assert {i.code for i in found.issues} == {
        "missing_value",
        "no_site",
        "not_numeric",
        "bad_action",
        "too_long",
    }
    checked.clear()
    monkeypatch.undo()
    monkeypatch.setattr(schema.pa.DataFrameSchema, "validate", validate)
    assert check(tmp_path, "A1,c1,A,B,,,,,\nA1,c2,C,D,,,delete,,\n").valid
    assert checked == []


def test_warnings_do_not_make_a_roster_invalid(tmp_path) -> None:
    result = check(tmp_path, "A1,c1,=x,B,,,,,\n")
    assert result.valid and len(result.warnings) == 1


def test_a_phone_cell_that_became_a_date_is_named(tmp_path) -> None:
    path = tmp_path / "dated.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Account #", "External ID", "First Name", "Last Name", "Phone"])
    sheet.append(["A1", "c1", "Ann", "Lee", __import__("datetime").datetime(2024, 3, 1, 9, 30)])
    workbook.save(path)
    result = validate_roster(read_roster(path))
    assert codes(result) == [(2, "phone_number", "phone_date")]


def test_a_formula_without_a_value_is_named_not_called_missing(tmp_path) -> None:
    path = tmp_path / "f.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Account #", "External ID", "First Name", "Last Name"])
    sheet.append(["A1", "c1", "Ann", '=UPPER("x")'])
    workbook.save(path)
    result = validate_roster(read_roster(path), judge_reachability=False)
    assert codes(result) == [(2, "last_name", "formula_no_value")]


def test_a_formula_after_an_empty_styled_cell_is_named_on_its_own_column(tmp_path) -> None:
    """Issue 14, bug 1: an empty cell with a style is written `<c r="C2" s="1" t="n" />`; the
    formula in the next cell is named there, and the empty cell is not called a formula."""
    path = tmp_path / "f.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Account #", "External ID", "Phone", "First Name", "Last Name"])
    sheet.append(["A1", "c1", None, '=UPPER("x")', "Lee"])
    sheet["C2"].font = openpyxl.styles.Font(bold=True)
    workbook.save(path)
    result = validate_roster(read_roster(path), judge_reachability=False)
    assert codes(result) == [(2, "first_name", "formula_no_value")]


def test_unknown_columns_are_reported_as_warnings(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("Account #,External ID,First Name,Last Name,Colour\nA,c,A,B,hi\n")
    result = validate_roster(read_roster(path), judge_reachability=False)
    assert codes(result) == [(None, "", "unknown_column")] and result.valid


# the command


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_exit_codes(tmp_path) -> None:
    assert run("validate", str(SAMPLES / "roster.xlsx")).exit_code == 0
    assert run("validate", str(SAMPLES / "roster.csv")).exit_code == 0
    bad = run("validate", str(SAMPLES / "roster-with-mistakes.csv"))
    assert bad.exit_code == 1
    assert "phone_scientific" in bad.output and "row 3, E 'Phone'" in bad.output
    assert run("validate", str(tmp_path / "none.csv")).exit_code == 2
    assert run("validate", str(SAMPLES / "roster.csv"), "--region", "ZZ").exit_code == 2
    result = run("validate", str(SAMPLES / "roster.csv"), "--map", "nonsense")
    assert result.exit_code == 2 and "--map" in result.output
    assert run("validate", str(SAMPLES / "roster.csv"), "-q").output == ""


def test_summary_shows_the_first_examples_and_counts_the_rest(tmp_path) -> None:
    path = tmp_path / "many.csv"
    path.write_text(HEADER + "".join(f"A1,c{n},A,B,123,,,,\n" for n in range(10)))
    output = run("validate", str(path)).output
    assert "error invalid_phone: 10" in output and "... and 7 more" in output
    assert output.count("is not a valid phone number") == 3
    assert run("validate", str(path), "-v").output.count("is not a valid phone number") == 10


def test_reports_csv_json_and_annotated_xlsx(tmp_path) -> None:
    source = SAMPLES / "roster-with-mistakes.csv"
    paths = [tmp_path / f"report.{s}" for s in ("csv", "json", "xlsx")]
    result = run("validate", str(source), *[f"--report={p}" for p in paths])
    assert result.exit_code == 1
    data = json.loads(paths[1].read_text())
    # 10 rows with mistakes, and CB-101, which has neither phone nor e-mail (unreachable);
    # 7 rows without a phone (6 unreachable, 1 no_phone)
    assert data["summary"]["invalid_rows"] == 11 and len(data["issues"]) == 19
    rows = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
    assert len(rows) == 19 and set(rows.columns) >= {"row", "column", "code", "message"}
    workbook = openpyxl.load_workbook(paths[2])
    sheet = workbook["Contacts"]
    assert sheet["E3"].value == "2.02555E+09"  # the roster as read, every cell text
    assert sheet["E3"].fill.fgColor.rgb.endswith("F8CBAD")
    assert "scientific notation" in sheet["E3"].comment.text
    assert sheet["A2"].comment is None
    assert workbook.sheetnames == ["Contacts", "Issues"]
    # the annotated copy reads back as the same roster, to fix and feed back
    again = validate_roster(read_roster(paths[2]))
    assert codes(again) == codes(validate_roster(read_roster(source)))
    assert run("validate", str(source), "--report", str(tmp_path / "r.pdf")).exit_code == 2


# templates


def test_template_commands_write_the_files_in_templates(tmp_path) -> None:
    for name in ("roster-template.xlsx", "roster-template.csv"):
        out = tmp_path / name
        assert run("template", "-o", str(out)).exit_code == 0
        shipped = ROOT / "templates" / name
        if name.endswith(".csv"):
            assert out.read_bytes() == shipped.read_bytes()
        else:
            with zipfile.ZipFile(out) as a, zipfile.ZipFile(shipped) as b:
                assert {n: a.read(n) for n in a.namelist()} == {n: b.read(n) for n in b.namelist()}


def test_the_xlsx_template_is_formatted_for_the_job(tmp_path) -> None:
    out = tmp_path / "t.xlsx"
    run("template", "-o", str(out))
    workbook = openpyxl.load_workbook(out)
    assert workbook.sheetnames == ["Contacts", "Instructions"]
    sheet = workbook["Contacts"]
    headers = [c.value for c in sheet[1]]
    assert headers[:7] == [
        "account_number",
        "external_site_id",
        "site_name",
        "site_id",
        "external_contact_id",
        "first_name",
        "last_name",
    ]
    assert all(c.comment is not None for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    phone = headers.index("phone_number") + 1
    assert sheet.column_dimensions[openpyxl.utils.get_column_letter(phone)].number_format == "@"
    validations = sheet.data_validations.dataValidation
    assert validations and validations[0].formula1 == '"upsert,delete"'
    roster = read_roster(out)
    assert roster.frame.empty and not roster.ignored_columns


# fast paths agree with the libraries


PHONE_TEXT = st.one_of(
    st.from_regex(r"\A\+?1?[ (]?[2-9]\d{2}[) .\-]{0,2}\d{3}[ .\-]?\d{4}\Z"),
    st.text(alphabet="+0123456789 ().-", min_size=1, max_size=18),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(PHONE_TEXT, min_size=1, max_size=30))
def test_phone_fast_path_agrees_with_phonenumbers(values) -> None:
    series = pd.Series(values, dtype="str")
    national = nanp_candidates(series)
    valid = nanp_valid(national)
    for index, number in national.items():
        expected = ("+1" + number, "") if valid[index] else ("", "invalid_phone")
        assert phone_by_library(values[index], "US") == expected


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(PHONE_TEXT, min_size=1, max_size=20),
    st.sampled_from(["US", "CA", "GB", "DE"]),
    st.sampled_from(["e164", "national"]),
)
def test_normalize_phones_agrees_with_phonenumbers(values, region, phone_format) -> None:
    normalized, problems = normalize_phones(pd.Series(values), region, phone_format)
    for value, got, problem in zip(values, normalized, problems, strict=True):
        if problem in ("phone_scientific", "phone_date") or not value.strip():
            continue
        if problem == "phone_float":  # 2125550111.0: the number without its '.0' (issue 15)
            assert (got, "") == phone_by_library(
                value.strip().partition(".")[0], region, phone_format
            )
            continue
        assert (got, problem) == phone_by_library(value.strip(), region, phone_format)


EMAIL_TEXT = st.one_of(
    st.emails(),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(
            alphabet=st.characters(categories=["L", "N", "M", "Pc", "Pd"]), min_size=1, max_size=20
        ),
        st.sampled_from(["example.com", "Hotmail.COM", "x.test", "a-b.co.uk"]),
    ),
    st.from_regex(r"\A[A-Za-z0-9_%+.\-]{1,70}@[A-Za-z0-9.\-]{1,30}\Z"),
    st.from_regex(r"\A[a-z]{1,10}@(?:[a-z0-9\-]{1,70}\.){1,4}[a-z]{1,5}\Z"),
    st.text(min_size=1, max_size=30),
)


@pytest.mark.parametrize("examples", [examples(100), pytest.param(1000, marks=pytest.mark.slow)])
def test_email_fast_path_agrees_with_email_validator(examples: int) -> None:
    """A few examples by default (`thorough`), 1000 with `-m slow`."""
    settings(max_examples=examples, deadline=None)(
        given(st.lists(EMAIL_TEXT, min_size=1, max_size=30))(
            _email_fast_path_agrees_with_email_validator
        )
    )()


def _email_fast_path_agrees_with_email_validator(values) -> None:
    fast = email_fast_path(pd.Series(values, dtype="str"))
    for value, decided in zip(values, fast, strict=True):
        if isinstance(decided, str):
            assert (decided, "") == email_by_library(value)
    normalized, messages = normalize_emails(pd.Series(values, dtype="str"))
    for value, got, message in zip(values, normalized, messages, strict=True):
        if value.strip():
            assert (got, message) == email_by_library(value.strip())


# a small column, value by value, decides as the vectorized passes do

# What spreadsheets and people put in a phone or e-mail cell, and anything else: spaces around,
# non-ASCII digits and spaces, dates, floats, scientific notation, dropped pluses, extensions.
MESSY_TEXT = st.one_of(
    PHONE_TEXT,
    EMAIL_TEXT,
    st.text(alphabet="+0123456789 ().-,#xpeE/:T\u00a0\u0661\u0663\u0e51\u2003\n", max_size=20),
    st.from_regex(r"\A\+?[1-9][0-9]{6,14}(?:\.0+)?\Z"),
    # digits whose + was dropped: a number elsewhere (US), or another one of the region (DE)
    st.sampled_from(["53041144269", "4746776734", "447733019139", "352976874678", "12049078780"]),
    st.from_regex(r"\A\d{4}-\d{1,2}-\d{1,2}(?: \d{1,2}:\d{2})?\Z"),
    st.from_regex(r"\A[+-]?\d(?:[.,]\d+)?[eE][+-]?\d{1,2}\Z"),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(["", " ", "\t", "\u3000"]),
        PHONE_TEXT,
        st.sampled_from(["", " ", " ext 12", ",,3", "\u200b"]),
    ),
    st.text(max_size=12),
)


def same_series(one: pd.Series, other: pd.Series) -> None:
    assert one.dtype == other.dtype and one.index.equals(other.index)
    assert one.name == other.name
    assert one.tolist() == other.tolist()


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(MESSY_TEXT, max_size=40),
    st.sampled_from(["US", "CA", "GB", "DE", "us"]),
    st.sampled_from(["e164", "national"]),
)
def test_a_small_column_of_phones_is_decided_as_the_vectorized_passes_decide(
    values, region, phone_format
) -> None:
    """Columns of at most `SMALL_ROWS` rows are decided value by value (about 0.3 ms for a
    51-row roster, against 7 ms): the same results, row by row, as the vectorized passes."""
    column = pd.Series(values, index=range(2, len(values) + 2), dtype="str")
    small = normalize._normalize_phones(column, region, phone_format)
    vectorized = normalize._normalize_phones_vectorized(column, region.upper(), phone_format)
    for one, other in zip(small, vectorized, strict=True):
        same_series(one, other)


# A value for each decision the phone passes make (with US, CA, GB and DE as the region).
EVERY_PHONE_DECISION = [
    *("(202) 555-0143", "+1 202-555-0143", "202.555.0143", "1 (212) 555 0111", "212555011"),
    *("+44 20 7946 0958", "020 7946 0958", "030 901820", "+49 30 901820", "2125550111.0"),
    *("+12125550111.00", "123.0", "1.23457E+11", "2.1e10", "2024-01-02", "3/4/2025", "x"),
    *("+1 617 555 0124 ext 12", "617-555-0124,,12", "1-800-FLOWERS", "  202 555 0143 "),
    *("53041144269", "4746776734", "447733019139", "352976874678", "12049078780", ""),
    *("\u0662\u0660\u0662 555 0143", "202\u00a0555\u00a00143", "+1\u200b2025550143"),
]


@pytest.mark.parametrize("region", ["US", "CA", "GB", "DE"])
@pytest.mark.parametrize("phone_format", ["e164", "national"])
def test_every_phone_decision_is_the_same_value_by_value(region, phone_format) -> None:
    column = pd.Series(EVERY_PHONE_DECISION, dtype="str")
    small = normalize._normalize_phones(column, region, phone_format)
    vectorized = normalize._normalize_phones_vectorized(column, region, phone_format)
    for one, other in zip(small, vectorized, strict=True):
        same_series(one, other)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(MESSY_TEXT, max_size=40))
def test_a_small_column_of_emails_and_text_is_decided_as_the_vectorized_passes_decide(
    values,
) -> None:
    column = pd.Series(values, index=range(2, len(values) + 2), dtype="str", name="email")
    for one, other in zip(
        normalize._normalize_emails(column),
        normalize._normalize_emails_vectorized(column),
        strict=True,
    ):
        same_series(one, other)
    same_series(normalize.normalize_text(column), normalize._normalize_text_vectorized(column))


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(
        st.one_of(
            MESSY_TEXT,
            st.text(alphabet="=+-@'\t\r\n\x1b\x85\u202e\u2066\u200b\ufeffAa1.E,", max_size=8),
            st.from_regex(r"\A[1-9](?:[.,][0-9]+)?[eE]\+[0-9]{2,3}\Z"),
        ),
        max_size=30,
    )
)
def test_a_small_columns_pattern_tests_are_pandas(values) -> None:
    """`contains` and `fullmatches` (by Python's re, value by value, for a small column) and the
    comparison's case folding answer as pandas' string methods do."""
    from bulk_contacts import compare, schema

    column = pd.Series(values, index=range(2, len(values) + 2), dtype="str", name="first_name")
    for pattern in (
        schema._UNSAFE_CHARACTER,
        schema._FORMULA_LIKE,
        compare._SHOWN_ESCAPED_PATTERN,
        normalize.INVISIBLE,
    ):
        same_series(normalize.contains(column, pattern), column.str.contains(pattern.pattern))
    for pattern in (schema._EXCEL_SCIENTIFIC, schema._NUMBER):
        same_series(normalize.fullmatches(column, pattern), column.str.fullmatch(pattern.pattern))
    same_series(compare._casefold(column), column.str.casefold())


NUMBER_CELL = st.sampled_from(["", "", "12", "0042", "12x", "1" * 19, "\u0661\u0662"])
ACTION_CELL = st.sampled_from(["", "upsert", "delete", "DELETE", "Delete", "delete ", "remove"])
TEXT_CELL = st.one_of(
    st.sampled_from(["", "", "Ann", "x" * 70, "x" * 300, " ", "\u0130", "\u212a"]),
    st.text(max_size=4),
)


@settings(max_examples=examples(200), deadline=None)
@given(st.data())
def test_the_rules_of_a_few_rows_fail_the_rows_the_vectorized_rules_fail(data) -> None:
    """`_failing_rows` of a few rows is found row by row in Python: the same rows as the
    vectorized rules (which pandera then names the failures of)."""
    from bulk_contacts import schema
    from bulk_contacts.columns import COLUMNS, REQUIRED_COLUMNS

    count = data.draw(st.integers(1, 6))

    def cell(name: str):
        if name == "action":
            return ACTION_CELL
        return NUMBER_CELL if name.endswith("_id") else TEXT_CELL

    cells = {
        c.name: data.draw(st.lists(cell(c.name), min_size=count, max_size=count)) for c in COLUMNS
    }
    frame = pd.DataFrame(cells, index=range(2, count + 2)).astype("str")
    optional = [c.name for c in COLUMNS if c.read and c.name not in REQUIRED_COLUMNS]
    blank = set(data.draw(st.lists(st.sampled_from(optional), unique=True)))
    small = schema._failing_rows_small(frame, blank)
    assert small is not None
    same_series(small, schema._failing_rows_vectorized(frame, blank))


def test_a_column_longer_than_small_rows_takes_the_vectorized_passes(monkeypatch) -> None:
    """The value-by-value path is for small columns only: a large one's cost per row is the
    vectorized passes' (the benchmarks' million rows)."""
    calls: list[str] = []
    for name in ("_normalize_phones_vectorized", "_normalize_emails_vectorized"):
        real = getattr(normalize, name)
        monkeypatch.setattr(
            normalize, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a)
        )
    for rows in (normalize.SMALL_ROWS, normalize.SMALL_ROWS + 1):
        column = pd.Series(["(202) 555-0143", "ann@example.com"] * rows, dtype="str")[:rows]
        normalize.normalize_phones(column, "US")
        normalize.normalize_emails(column)
    assert calls == ["_normalize_phones_vectorized", "_normalize_emails_vectorized"]


def test_the_warm_up_runs_once_a_process_however_many_rosters_are_validated(
    tmp_path, monkeypatch
) -> None:
    """`serve` and scripts validate roster after roster in one process: the two-row warm-up
    roster (about 80 ms of CPU) is validated once per region and format, not before each."""
    from bulk_contacts import pipeline, schema

    validated: list[str] = []
    real = schema.validate_roster
    monkeypatch.setattr(
        schema,
        "validate_roster",
        lambda roster, *a, **k: validated.append(roster.source) or real(roster, *a, **k),
    )
    schema.warm_up.cache_clear()
    path = tmp_path / "r.csv"
    path.write_text(
        "Account #,External ID,First Name,Last Name,Phone\n10-4471,C-1,Ann,Lee,(202) 555-0143\n"
    )
    for _ in range(3):
        pipeline.load_validated(path)
    assert validated.count("warm-up") == 1, validated
    pipeline.load_validated(path, pipeline.ReadOptions(region="GB"))
    assert validated.count("warm-up") == 2, validated
