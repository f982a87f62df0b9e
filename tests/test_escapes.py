"""Terminal escapes (issue 13, item 1): control characters in a roster are errors, bidirectional
overrides warnings, and nothing the tool prints can act on the terminal, on a TTY or not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import xlsxwriter
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bulk_contacts.cli import main
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster
from bulk_contacts.terminal import TERMINAL_UNSAFE, printable

from .test_apply import environment, run_on_a_terminal

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home: enough to repaint a plan
TITLE = "\x1b]0;pwned\x07"  # OSC: set the window title
HOSTILE_CONTROLS = {
    "ESC": f"Ann{CLEAR}",
    "OSC": f"Bo{TITLE}",
    "backspace": "Cy\x08\x08\x08Dee",
    "NUL": "Nul\x00l",
    "CR": "Ed\rREFUSED",
    "LF": "Fay\nGil",
    "C1 CSI": "Hal\x9b2J",
    "DEL": "Ivy\x7f",
}
BIDI = {"RLO": "Jo\u202eeoJ", "RLI": "Kim\u2067miK\u2069", "LRE": "Lu\u202a"}


def roster_xlsx(path: Path, rows: list[list[str]]) -> Path:
    """A workbook holding the values exactly (xlsxwriter escapes controls as _xHHHH_, which
    calamine reads back as the characters)."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False})
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["account_number", "external_contact_id", "first_name", "last_name"])
    for line, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            sheet.write_string(line, col, value)
    workbook.close()
    return path


def test_control_characters_are_errors_and_bidi_overrides_warnings(tmp_path) -> None:
    values = [*HOSTILE_CONTROLS.values(), *BIDI.values()]
    rows = [["10-4471", f"c{n}", value, "Lee"] for n, value in enumerate(values)]
    rows.append([f"10-4471{CLEAR}", f"x{TITLE}", "Plain", "Name\u202e"])  # any column read
    # no phone and no e-mail in these rows: reachability is not what this test is about
    roster = read_roster(roster_xlsx(tmp_path / "r.xlsx", rows))
    validated = validate_roster(roster, allow_unreachable=True)
    found = {(i.row, i.field): (i.code, i.severity) for i in validated.issues}
    for row in range(2, 2 + len(HOSTILE_CONTROLS)):
        assert found[(row, "first_name")] == ("control_character", "error"), row
    for row in range(2 + len(HOSTILE_CONTROLS), 2 + len(values)):
        assert found[(row, "first_name")] == ("bidi_override", "warning"), row
    last = 2 + len(values)
    assert found[(last, "account_number")] == ("control_character", "error")
    assert found[(last, "external_contact_id")] == ("control_character", "error")
    assert found[(last, "last_name")] == ("bidi_override", "warning")
    assert validated.invalid_rows == set(range(2, 2 + len(HOSTILE_CONTROLS))) | {last}
    message = next(i.message for i in validated.issues if i.row == 2)
    assert "U+001B" in message and "\\x1b[2J" in message and "\x1b" not in message


def test_validate_refuses_them_and_prints_them_escaped(tmp_path) -> None:
    rows = [["10-4471", "c1", HOSTILE_CONTROLS["ESC"], "Lee"], ["10-4471", "c2", "Ok", "Lu\u202e"]]
    path = roster_xlsx(tmp_path / "r.xlsx", rows)
    result = CliRunner().invoke(main, ["validate", str(path), "-v"])
    assert result.exit_code == 1, result.output
    assert "error control_character: 1" in result.output
    assert "warning bidi_override: 1" in result.output
    assert_escaped(result.output)


def test_a_column_that_is_not_read_is_not_checked(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "account_number,external_contact_id,first_name,last_name,phone_number,Notes\n"
        '10-4471,c1,Ann,Lee,+12025550143,"two\nlines"\n',
        encoding="utf-8",
    )
    validated = validate_roster(read_roster(path))
    # Notes is a column CHeKT has no field for: named once as not sent (issue 15), not checked
    assert validated.valid and {i.code for i in validated.issues} == {"not_sent"}


def assert_escaped(output: str) -> None:
    """No character a terminal acts on, but the line breaks between lines."""
    unsafe = {chr(c) for c in TERMINAL_UNSAFE} - {"\n"}
    assert not unsafe & set(output), sorted(unsafe & set(output))


@pytest.fixture
def hostile_sandbox(start_sandbox):
    """The sample seed, plus what CHeKT itself may hold: names that no roster validated."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    server.store.create_contact(
        101,
        {
            "external_contact_id": f"EVIL{TITLE}",
            "first_name": f"Mallory{CLEAR}",
            "last_name": "Rlo\u202eeviL\nREFUSED: nothing",
        },
    )
    return server


def test_plan_prints_values_from_chekt_escaped(hostile_sandbox) -> None:
    result = CliRunner().invoke(
        main,
        ["plan", str(SAMPLES / "roster.csv"), "--prune", "--no-progress", "--max-deletes", "5"],
        env=environment(hostile_sandbox),
    )
    assert result.exit_code == 0, result.output
    assert_escaped(result.output)
    line = next(line for line in result.output.splitlines() if "Mallory" in line)
    assert "- delete" in line and "Mallory\\x1b[2J\\x1b[H" in line
    assert "EVIL\\x1b]0;pwned\\x07" in line and "\\u202eeviL\\x0aREFUSED: nothing" in line


def test_on_a_terminal_too(hostile_sandbox) -> None:
    """The same plan on a pseudo-terminal: colours (click's own escapes) but no value's."""
    args = ["plan", str(SAMPLES / "roster.csv"), "--prune", "--no-progress", "--max-deletes", "5"]
    code, seen = run_on_a_terminal(hostile_sandbox, args, b"")
    assert code == 0, seen
    assert "\x1b[32m" in seen  # a terminal: click colours the output
    for raw in (CLEAR, TITLE, "\u202e", "\x07"):
        assert raw not in seen
    assert "Mallory\\x1b[2J\\x1b[H" in seen


@given(st.text())
def test_printable_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    shown = printable(text)
    assert not {chr(c) for c in TERMINAL_UNSAFE} & set(shown)
    assert printable(shown) == shown  # what is left is shown as it is


def test_every_line_the_cli_prints_goes_through_echo() -> None:
    """One place escapes: cli.echo. Any other click.echo/secho would print values raw; a prompt
    is escaped itself."""
    modules = sorted((ROOT / "bulk_contacts" / "cli").glob("*.py"))
    assert len(modules) > 5
    trees = [ast.parse(module.read_text(encoding="utf-8")) for module in modules]
    for function in (node for tree in trees for node in ast.walk(tree)):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "click"
            ):
                continue
            if node.func.attr in ("echo", "secho"):
                assert function.name == "echo", f"click.{node.func.attr} in {function.name}()"
            if node.func.attr in ("confirm", "prompt"):
                first = node.args[0]
                assert isinstance(first, ast.Call) and getattr(first.func, "id", "") == "printable"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_export_of_site_ids_holding_escapes_imports_back_as_no_change(
    start_sandbox, tmp_path, suffix
) -> None:
    """QA (inputs): CHeKT's account number and external site id holding ESC are exported
    visibly (`AC\\x1b[2J`); imported back, the untouched export must name its site (as names
    compare as shown), not be `unknown_site` on every row."""
    server = start_sandbox()
    site = server.store.create_site(
        12345,
        {"name": "Evil", "account_number": f"AC{CLEAR}", "external_site_id": f"X{TITLE}"},
    )
    server.store.create_contact(
        site["site_id"],
        {"external_contact_id": "E1", "first_name": "Ann", "last_name": "Lee",
         "phone_number": "+12025550143"},
    )  # fmt: skip
    exported = tmp_path / f"contacts{suffix}"
    env = environment(server)
    result = CliRunner().invoke(main, ["export", "-o", str(exported), "--no-progress"], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main, ["plan", str(exported), "--no-progress", "--detailed-exitcode"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "invalid 0" in result.output and "unknown_site" not in result.output
    assert_escaped(result.output)


def test_the_journal_holds_no_character_a_terminal_acts_on_and_rolls_back_exactly(
    hostile_sandbox, tmp_path
) -> None:
    """QA (inputs): the journal is JSON lines a person may `tail -f`; it wrote U+202E and the
    C1 controls (CSI, U+009B) of a contact CHeKT holds raw (JSON escapes only C0). As JSON
    escapes they read back exactly: the rollback restores the name byte for byte."""
    hostile = {
        "external_contact_id": "EVIL2",
        "first_name": "Csi\x9b2J",
        "last_name": "Rlo\u202eeviL\u2028",
    }
    hostile_sandbox.store.create_contact(101, hostile)
    journal = tmp_path / "journal.jsonl"
    env = environment(hostile_sandbox)
    args = ["--prune", "--max-deletes", "5", "--no-progress", "--yes", "--journal", str(journal)]
    result = CliRunner().invoke(
        main,
        ["apply", str(SAMPLES / "roster.csv"), *args, "--results", str(tmp_path / "r.csv")],
        env=env,
    )
    assert result.exit_code == 0, result.output
    text = journal.read_text(encoding="utf-8")
    assert "Rlo\\u202eeviL" in text
    assert_escaped(text)
    result = CliRunner().invoke(
        main,
        ["rollback", str(journal), "--yes", "--no-progress", "--results", str(tmp_path / "b.csv")],
        env=env,
    )
    assert result.exit_code == 0, result.output
    back = hostile_sandbox.store.db.execute(
        "SELECT first_name, last_name FROM contacts WHERE external_contact_id='EVIL2'"
    ).fetchall()
    assert [tuple(row) for row in back] == [(hostile["first_name"], hostile["last_name"])]
