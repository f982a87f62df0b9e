"""`export`, and importing the export back: untouched it plans no change; edited, only what the
reviewer changed is sent (a three-way merge with the snapshot inside the file)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_contacts.cli import main
from bulk_contacts.client import ChektClient
from bulk_contacts.export import fetch_export, write_export
from bulk_contacts.outputs import formula_safe
from bulk_contacts.pipeline import plan_roster
from bulk_contacts.reconcile import PlanOptions
from bulk_contacts.roster import read_roster
from bulk_contacts.sandbox import SandboxConfig, SandboxServer
from bulk_contacts.schema import validate_roster
from bulk_contacts.settings import resolve_settings
from bulk_contacts.spreadsheet import unquote_formula

from .thorough import examples

SAMPLES = Path(__file__).parent.parent / "sample_data"
DEALER = 12345


def environment(server) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": str(DEALER),
    }


def run(server, *args: str):
    return CliRunner().invoke(main, list(args), env=environment(server))


@pytest.fixture
def seeded(start_sandbox):
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


@pytest.mark.parametrize("suffix", ["xlsx", "csv"])
def test_an_untouched_export_plans_no_change(seeded, tmp_path, suffix) -> None:
    path = tmp_path / f"contacts.{suffix}"
    result = run(seeded, "export", "-o", str(path), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "9 contacts of 13 sites written" in result.output
    plan = run(seeded, "plan", str(path), "--prune", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes" in plan.output
    assert "2 in a conflict" in plan.output  # NW-001 is doubled in the seed: left alone


def test_the_xlsx_export_is_safe_text_with_sites_and_a_hidden_snapshot(seeded, tmp_path) -> None:
    seeded.store.create_contact(
        101,
        {
            "external_contact_id": "=1+2",
            "first_name": "@SUM(A1)",
            "last_name": "-Minus",
            "phone_number": "+12025550199",
            "email": "+plus@example.com",
        },
    )
    path = tmp_path / "contacts.xlsx"
    run(seeded, "export", "-o", str(path))
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Contacts", "Sites", "bulk-contacts snapshot"]
    assert workbook["bulk-contacts snapshot"].sheet_state == "hidden"
    sheet = workbook["Contacts"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert cells and all(cell.data_type == "s" for cell in cells)  # text: never a formula
    header = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[4] == "=1+2")
    values = dict(zip(header, row, strict=True))
    assert (
        values["first_name"],
        values["last_name"],
        values["phone_number"],
        values["email"],
        values["site_id"],
    ) == ("@SUM(A1)", "-Minus", "+12025550199", "+plus@example.com", "101")
    with zipfile.ZipFile(path) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")
    roster = read_roster(path)
    assert roster.frame.loc[
        roster.frame["external_contact_id"] == "=1+2", "first_name"
    ].tolist() == ["@SUM(A1)"]
    assert len(roster.snapshot) == 10


def test_the_csv_export_has_a_bom_and_formula_safety_undone_on_reading(seeded, tmp_path) -> None:
    seeded.store.create_contact(
        101,
        {
            "external_contact_id": "q1",
            "first_name": "=cmd|' /C calc'!A0",
            "last_name": "'=quoted",
            "phone_number": "+12025550199",
        },
    )
    path = tmp_path / "contacts.csv"
    run(seeded, "export", "-o", str(path), "--site", "101")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in text and "''=quoted" in text and ",+12025550199," in text
    frame = read_roster(path).frame
    row = frame[frame["external_contact_id"] == "q1"].iloc[0]
    assert (row["first_name"], row["last_name"]) == ("=cmd|' /C calc'!A0", "'=quoted")


def test_export_selects_sites_and_refuses_unknown_ones(seeded, tmp_path) -> None:
    path = tmp_path / "some.csv"
    result = run(seeded, "export", "-o", str(path), "--site", "101", "--account", "10-4474")
    assert result.exit_code == 0 and "6 contacts of 2 sites" in result.output
    result = run(seeded, "export", "-o", str(tmp_path / "none.csv"), "--site", "999")
    assert result.exit_code == 2 and "dealer 12345 has no site 999" in result.output
    result = run(seeded, "export", "-o", str(tmp_path / "x.pdf"))
    assert result.exit_code == 2


def test_an_edited_export_is_a_three_way_merge(seeded, tmp_path) -> None:
    path = tmp_path / "review.xlsx"
    run(seeded, "export", "-o", str(path), "--site", "101", "--site", "104")
    # In CHeKT, after the export: John's phone changes; Diego's first name changes.
    seeded.store.db.execute(
        "UPDATE contacts SET phone_number='+12025550000' WHERE external_contact_id='HD-001'"
    )
    seeded.store.db.execute(
        "UPDATE contacts SET first_name='Diego A.' WHERE external_contact_id='RX-002'"
    )
    seeded.store.create_contact(
        101, {"external_contact_id": "HD-NEW", "first_name": "New", "last_name": "Hire"}
    )
    # In the file: John's e-mail, Pat's first name, and Diego's first name differently.
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Contacts"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        values = dict(zip(header, row, strict=True))
        if values["external_contact_id"].value == "HD-001":
            values["email"].value = "john@new.example.com"
        if values["external_contact_id"].value == "HD-099":
            values["first_name"].value = "Patricia"
        if values["external_contact_id"].value == "RX-002":
            values["first_name"].value = "Diego B."
    workbook.save(path)
    result = run(
        seeded,
        "apply",
        str(path),
        "--prune",
        "--yes",
        "--no-progress",
        "--results",
        str(tmp_path / "r.csv"),
    )
    assert result.exit_code == 0, result.output
    assert "changed both in the file and in CHeKT since the export (first_name)" in result.output
    assert "1 created in CHeKT since the export (kept)" in result.output
    rows = {
        r[0]: r[1:]
        for r in seeded.store.db.execute(
            "SELECT external_contact_id, first_name, phone_number, email FROM contacts "
            "WHERE site_id IN (101, 104)"
        )
    }
    assert rows["HD-001"] == ("John", "+12025550000", "john@new.example.com")
    assert rows["HD-099"][0] == "Patricia"
    assert rows["RX-002"][0] == "Diego A."  # the conflict is not guessed
    assert "HD-NEW" in rows  # created since the export: never pruned by it


def test_csv_safety_round_trips() -> None:
    for value in [
        "=1",
        "+1",
        "-1",
        "@a",
        "\tx",
        "\rx",
        "'=x",
        "''=x",
        "+12025550143",
        "Ann",
        "'plain",
        "",
    ]:
        assert unquote_formula(formula_safe(value)) == value
    assert formula_safe("+12025550143") == "+12025550143"


# round trips

NAMES = st.text(
    alphabet=st.characters(
        categories=["L", "Nd", "Zs", "Pd", "Po", "Sm"], include_characters="=+-@'"
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip())
PHONES = st.sampled_from(
    ["", "+12025550143", "(212) 555-1234", "+44 20 7946 0958", "202.555.0187", "+33 1 42 68 53 00"]
)
EMAILS = st.sampled_from(["", "ann@example.com", "Zoë.Müller@Example.de", "+tag@example.org"])
CONTACTS = st.lists(st.tuples(st.booleans(), NAMES, NAMES, PHONES, EMAILS), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def shared_sandbox():
    with SandboxServer(SandboxConfig(port=0)) as server:
        for site in (1, 2):
            server.store.create_site(
                DEALER,
                {
                    "site_id": site,
                    "name": f"S{site}",
                    "account_number": f"A{site}",
                    "timezone": "UTC",
                },
            )
        yield server


@pytest.mark.parametrize("suffix", ["xlsx", "csv"])
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(contacts=CONTACTS)
def test_round_trip_export_then_plan_is_no_change(
    shared_sandbox, tmp_path, suffix, contacts
) -> None:
    store = shared_sandbox.store
    store.db.execute("DELETE FROM contacts")
    for n, (managed, first, last, phone, email) in enumerate(contacts):
        store.create_contact(
            1 + n % 2,
            {
                "external_contact_id": f"x{n}" if managed else None,
                "first_name": first,
                "last_name": last,
                "phone_number": phone or None,
                "email": email or None,
            },
        )
    settings_ = resolve_settings(env=environment(shared_sandbox))
    path = tmp_path / f"round.{suffix}"
    with ChektClient(settings_) as client:
        write_export(fetch_export(client, DEALER), path, overwrite=True)
        # contacts with neither phone nor e-mail are exported too: they round-trip as such
        validated = validate_roster(read_roster(path), allow_unreachable=True)
        assert validated.valid, [i.message for i in validated.errors]
        options = PlanOptions(dealer_id=DEALER, prune=True, allow_unreachable=True)
        plan = plan_roster(client, validated, options)
    assert plan.changes == [], [c.__dict__ for c in plan.changes]


def test_export_without_a_dealer_is_one_line_naming_the_setting(seeded, tmp_path) -> None:
    env = {**environment(seeded), "CHEKT_DEALER_ID": ""}
    output = tmp_path / "out.xlsx"
    result = CliRunner().invoke(main, ["export", "-o", str(output)], env=env)
    assert result.exit_code == 2, result.output
    assert "error: no dealer id: set CHEKT_DEALER_ID (--dealer)" in result.output
    assert "Traceback" not in result.output and not output.exists()
