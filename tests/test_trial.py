"""A new user's (and a hostile tester's) trial of the command line (issue 13's background): each
finding with the behaviour it now has, against a seeded sandbox over 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bulk_contacts.cli import main
from bulk_contacts.sandbox import SandboxServer

from . import warm
from .conftest import get_token
from .test_messages import environment, no_backoff_sleeps, run  # noqa: F401 (a fixture)

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
ROSTER = str(SAMPLES / "roster.csv")
MISTAKES = str(SAMPLES / "roster-with-mistakes.csv")


@pytest.fixture
def server(start_sandbox) -> SandboxServer:
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


def test_quiet_prints_nothing_but_errors(server, tmp_path) -> None:
    """-q: the exit code tells; stdout stays empty for every command, also apply and rollback."""
    for args in (
        ("validate", ROSTER, "-q"),
        ("plan", ROSTER, "-q"),
        ("apply", ROSTER, "-q", "--yes", "--journal", "j.jsonl", "--results", "r.csv"),
        ("rollback", "j.jsonl", "-q", "--yes"),
        ("export", "-q", "-o", "e.csv"),
    ):
        result = run(server, *args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout == "" and result.stderr == "", (args, result.output)


def test_quiet_still_says_what_failed_on_stderr(tmp_path) -> None:
    from bulk_contacts.apply import ApplyReport, RunFiles
    from bulk_contacts.terminal import run_text

    files = RunFiles.choose(tmp_path / "r.csv", tmp_path / "j.jsonl")
    counts = {"ok": 3, "failed": 1, "skipped": 0, "unverified": 0}
    report = ApplyReport(counts, files, failed_rows_written=True, verified_sites=2)
    lines = run_text(report, quiet=True, kind="apply")
    assert all(err for _, _, err in lines), lines  # nothing on stdout
    text = "\n".join(line for line, _, _ in lines)
    assert "apply: 3 done, 1 failed" in text and str(files.failed_rows) in text
    clean = ApplyReport({"ok": 3, "failed": 0, "skipped": 0, "unverified": 0}, files)
    assert run_text(clean, quiet=True, kind="apply") == []


def exit_code_meaning(code: int) -> str:
    """The README's exit-code table's row for `code`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        if line.startswith(f"| {code} |"):
            return line
    raise AssertionError(f"no row for exit code {code}")


def test_skip_invalid_exits_as_the_readme_says(server) -> None:
    """`plan --skip-invalid` with invalid rows: they were left out as asked, and listed; the exit
    code is 0 (1 is for invalid rows that stop the plan), and the table says so."""
    skipped = run(server, "plan", MISTAKES, "--skip-invalid", "--no-progress")
    assert "Invalid rows (11), not planned" in skipped.output
    assert "`--skip-invalid`" in exit_code_meaning(skipped.exit_code)
    stopped = run(server, "plan", MISTAKES, "--no-progress")
    assert "invalid rows that stop the plan" in exit_code_meaning(stopped.exit_code)


def test_a_rollback_with_nothing_to_undo_says_so(server, tmp_path) -> None:
    """Not "CHeKT already matches the roster": a rollback has no roster."""
    roster = tmp_path / "one.csv"
    roster.write_text(
        "Account #,External ID,First Name,Last Name,Phone\n10-4471,NEW-1,Ann,New,+12025550199\n"
    )
    assert run(server, "apply", str(roster), "--yes", "--journal", "j.jsonl").exit_code == 0
    (made,) = server.store.db.execute(
        "SELECT site_id, contact_id FROM contacts WHERE external_contact_id = 'NEW-1'"
    ).fetchall()
    token = get_token(server.url)
    deleted = httpx.delete(
        f"{server.url}/partner/v1/dealers/12345/sites/{made[0]}/contacts/{made[1]}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert deleted.status_code in (200, 204), deleted.text
    result = run(server, "rollback", "j.jsonl", "--yes")
    assert result.exit_code == 0, result.output
    assert "roster" not in result.output
    assert "Nothing to roll back: " in result.output


def test_plan_shows_every_problem_of_an_invalid_row(server, tmp_path) -> None:
    """Not only the first: a row with three problems shows them (bounded, with "+N more")."""
    roster = tmp_path / "bad.csv"
    roster.write_text(
        "Account #,External ID,First Name,Last Name,Phone,E-mail\n"
        "10-4471,HD-900,A\x07nn,,555-01,a@@b\n"
        "10-4471,HD-901,Ann,Lee,+12025550143,\n"
    )
    result = run(server, "plan", str(roster), "--skip-invalid", "--no-progress")
    (line,) = [line for line in result.output.splitlines() if line.startswith("  row 2")]
    assert line.count(" | ") == 2 and line.endswith("(+1 more)"), line
    verbose = run(server, "plan", str(roster), "--skip-invalid", "--no-progress", "-v")
    (line,) = [line for line in verbose.output.splitlines() if line.startswith("  row 2")]
    for column in ("'First Name'", "'Last Name'", "'Phone'", "'E-mail'"):
        assert column in line and "more)" not in line, line


def test_a_huge_spreadsheet_cell_is_not_called_32767_characters(tmp_path) -> None:
    """The xlsx reader stops a cell at 32,767 characters (Excel's limit): a 2,000,000-character
    cell is reported as at least that, never as exactly 32767."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Account #", "External ID", "First Name", "Last Name", "Phone"])
    sheet.append(["10-4471", "HD-1", "A" * 2_000_000, "Lee", "+12025550143"])
    book.save(tmp_path / "big.xlsx")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "big.xlsx")])
    assert result.exit_code == 1
    assert "32767 characters" not in result.output
    assert "at least 32,767 characters is too long for C 'First Name' (at most 255)" in (
        result.output
    )
    short = tmp_path / "short.csv"
    for length in (1300, 40_000):
        short.write_text(f"Account #,External ID,First Name,Last Name\n1,HD-1,{'x' * length},L\n")
        result = CliRunner().invoke(main, ["validate", str(short)])
        assert f"{length:,} characters is too long for C 'First Name'" in result.output


def test_ctrl_c_while_the_installed_script_loads_exits_130_quietly() -> None:
    """The console script's entry point catches Ctrl-C while the program is still being
    imported: a real SIGINT, sent by the process to itself as it imports the command line."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from importlib.metadata import entry_points\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bulk_contacts.cli':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "(script,) = entry_points(group='console_scripts', name='bulk-contacts')\n"
        "sys.exit(script.load()())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "validate", "x.csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == "interrupted: nothing was written\n"
    assert result.stdout == ""


def test_sigterm_while_planning_is_ctrl_c(start_sandbox, tmp_path) -> None:
    """SIGTERM before the first write (reading the sites), like Ctrl-C there: one line, exit
    130, no traceback; a real process and a real signal."""
    import os
    import signal
    import subprocess
    import sys

    from tests.test_writes import release_until_it_ends

    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    hold = server.hold_reads()  # SIGTERM while the apply's first read waits at the sandbox
    log = tmp_path / "run.log"
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", "apply", ROSTER, "--yes", "--log-file", str(log)],
        env={**os.environ, **environment(server)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hold.wait_held(1)
        process.send_signal(signal.SIGTERM)
        release_until_it_ends(process, hold)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip() == "interrupted: nothing was written: no change was sent to CHeKT"
    assert not list(tmp_path.glob("bulk-contacts-runs/*/journal.jsonl"))


def test_an_interrupt_through_generated_code_still_exits_130(tmp_path) -> None:
    """The cause of test_sigterm_while_planning_is_ctrl_c's rare failure (exit -2, killed by
    SIGINT, after the right message): CPython remembers a KeyboardInterrupt that went through
    code run from a string (the methods a dataclass or namedtuple generates while a module is
    imported) and, run as `python -m`, kills itself with SIGINT at exit whatever exit code was
    asked for. A signal landing there is made such an interrupt here, deterministically."""
    import subprocess
    import sys

    module = tmp_path / "interrupted"
    module.mkdir()
    (module / "__main__.py").write_text(
        "import sys\n"
        "from bulk_contacts import entry\n"
        "from bulk_contacts.cli import applying\n"
        "def interrupted(*args, **kwargs):\n"
        "    exec('raise KeyboardInterrupt')  # as SIGTERM landing in generated code\n"
        "applying.open_client = interrupted\n"
        f"sys.argv = ['bulk-contacts', 'apply', {ROSTER!r}, '--yes']\n"
        "entry.run()\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "interrupted"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 130, (result.returncode, result.stderr)
    assert result.stderr == "interrupted: nothing was written: no change was sent to CHeKT\n"


LOST_CTRL_C = """
import signal, sys, threading
from bulk_contacts import entry
from bulk_contacts.client import ChektClient

# the signal, chosen before sys.argv becomes the command's (argv[1] is then the command)
SIGNAL = signal.SIGINT if sys.argv[1] == "INT" else signal.SIGTERM

class Finalized:
    def __del__(self):
        # A Ctrl-C landing while a finalizer runs (in the main thread, where Python runs signal
        # handlers): Python prints "Exception ignored in" and carries on, the interrupt lost.
        try:
            signal.raise_signal(SIGNAL)
        except KeyboardInterrupt:
            print("dropped by Python", file=sys.stderr)
            raise

def finalizing(method):
    def reading(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread() and not Finalized.done:
            Finalized.done = True
            Finalized()
        return method(self, *args, **kwargs)
    return reading

Finalized.done = False
for name in ("list_sites", "list_sites_with_headers", "list_contacts"):
    setattr(ChektClient, name, finalizing(getattr(ChektClient, name)))
sys.argv = ["bulk-contacts", *sys.argv[2:]]
entry.run()
"""


def run_dropping_a_stop(server, signal_name: str, *args: str):
    """The command `args` as a real process, with a SIGINT or SIGTERM (`signal_name`) raised
    inside a finalizer while it reads the sites: Python drops its KeyboardInterrupt."""
    import os
    import sys

    return warm.run(
        [sys.executable, "-c", LOST_CTRL_C, signal_name, *args],
        env={**os.environ, **environment(server)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["apply", "rollback"])
@pytest.mark.parametrize("signal_name", ["INT", "TERM"])
def test_a_ctrl_c_python_lost_in_a_finalizer_still_stops_before_any_write(
    server, tmp_path, command: str, signal_name: str
) -> None:
    """A Ctrl-C (or SIGTERM) that lands while a finalizer or weakref callback runs is printed
    and dropped by Python ("Exception ignored in"): the run went on and wrote, exit 0. Seen
    once under load, while the sites were read. Now a stop asked for is remembered, and the
    run stops before its first write: one line and no traceback, exit 130, nothing sent. A real
    process and a real signal, raised inside a finalizer while the sites are read."""
    from .test_apply import contacts_of

    before = contacts_of(server)
    if command == "rollback":
        applied = run(server, "apply", ROSTER, "--yes", "-q", "--journal", "j.jsonl")
        assert applied.exit_code == 0, applied.output
        before = contacts_of(server)
    target = ROSTER if command == "apply" else "j.jsonl"
    done = run_dropping_a_stop(server, signal_name, command, target, "--yes")
    assert done.returncode == 130, done.stderr
    assert done.stderr == (
        "dropped by Python\ninterrupted: nothing was written: no change was sent to CHeKT\n"
    )
    assert contacts_of(server) == before


@pytest.mark.parametrize("signal_name", ["INT", "TERM"])
def test_a_ctrl_c_python_lost_while_a_plan_is_made_is_no_success(
    server, tmp_path, signal_name: str
) -> None:
    """A stop Python dropped (in a finalizer, while the sites are read) is no longer printed by
    Python ("Exception ignored in"): a command that writes nothing to CHeKT went on, wrote its
    file and exited 0, as if no one had asked it to stop (a service manager's SIGTERM, `timeout`).
    Now it says it was interrupted and exits 130, as a Ctrl-C at that moment would; its file
    is not written."""

    saved = tmp_path / "plan.json"
    done = run_dropping_a_stop(server, signal_name, "plan", ROSTER, "-q", "-o", str(saved))
    assert done.returncode == 130, done.stderr
    assert done.stderr == (
        "dropped by Python\ninterrupted: nothing was written (plan never writes to CHeKT)\n"
    )
    assert not saved.exists()


LOST_BEFORE_SERVING = """
import signal, sys
from bulk_contacts import entry
from bulk_contacts.web import server

class Finalized:
    def __del__(self):
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt:
            print("dropped by Python", file=sys.stderr)
            raise

# the SIGTERM lands in a finalizer as the server is made, or as it starts (before uvicorn's own
# signal handlers are set)
method = sys.argv[1]
original = getattr(server.WebServer, method)

def finalizing(self, *args, **kwargs):
    Finalized()
    return original(self, *args, **kwargs)

setattr(server.WebServer, method, finalizing)
sys.argv = ["bulk-contacts", "serve", "--port", "0", "--no-browser"]
entry.run()
"""


@pytest.mark.parametrize("method", ["__init__", "run"])
def test_a_stop_python_lost_before_serve_listens_stops_it(tmp_path, method: str) -> None:
    """A SIGTERM (a service manager's stop) Python dropped in a finalizer while `serve` starts:
    it went on serving, and the page could apply, until killed (the unraisable hook now keeps
    Python's own notice quiet). Now it stops before anything is served: exit 130, no URL."""
    import os
    import sys

    done = warm.run(
        [sys.executable, "-c", LOST_BEFORE_SERVING, method],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert done.stderr == "dropped by Python\ninterrupted: nothing was written\n"
    assert "open http" not in done.stdout


def test_a_plan_given_to_rollback_and_a_journal_given_to_apply_are_recognised(
    server, tmp_path
) -> None:
    assert run(server, "plan", ROSTER, "-q", "-o", "plan.json").exit_code == 0
    refused = run(server, "rollback", "plan.json", "--yes")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(
        "error: plan.json is a plan; rollback takes a journal or run folder: "
    ), refused.stderr
    assert "bulk-contacts apply plan.json" in refused.stderr and "not JSON" not in refused.stderr
    applied = run(server, "apply", ROSTER, "-q", "--yes", "--journal", "j.jsonl")
    assert applied.exit_code == 0, applied.output
    for command in ("apply", "plan", "validate"):
        result = run(server, command, "j.jsonl", *(["--yes"] if command == "apply" else []))
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: j.jsonl is a journal"), result.stderr
        assert "bulk-contacts rollback j.jsonl" in result.stderr
        assert "Headers found" not in result.stderr
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    result = run(server, "rollback", str(other), "--yes")
    assert result.exit_code == 2
    assert "not a journal" in result.stderr and "rollback takes the journal.jsonl" in result.stderr


def test_a_nul_in_one_csv_cell_is_a_row_error_not_a_binary_file(tmp_path) -> None:
    """As the README's code table says: a control character, NUL too, is `control_character`
    on its row; a file that is mostly control bytes is still refused as binary."""
    roster = tmp_path / "nul.csv"
    roster.write_bytes(
        b"Account #,External ID,First Name,Last Name,Phone\n"
        b"10-4471,HD-1,Ann\x00e,Lee,+12025550143\n"
        b"10-4471,HD-2,Bob,Stone,+12025550144\n"
    )
    result = CliRunner().invoke(main, ["validate", str(roster)])
    assert result.exit_code == 1, result.output
    assert "error control_character: 1" in result.output
    assert "row 2, C 'First Name': 'Ann\\x00e' holds a control character (U+0000)" in (
        result.output
    )
    import random

    noise = tmp_path / "noise.csv"
    noise.write_bytes(random.Random(7).randbytes(5000))
    refused = CliRunner().invoke(main, ["validate", str(noise)])
    assert refused.exit_code == 2 and "not a text file (it holds binary data)" in refused.output
    utf16 = tmp_path / "utf16.csv"  # UTF-16 without its BOM: every other byte a NUL
    utf16.write_bytes("Account #,External ID,First Name,Last Name\n".encode("utf-16-le"))
    refused = CliRunner().invoke(main, ["validate", str(utf16)])
    assert refused.exit_code == 2 and "not a text file" in refused.output


HOSTILE = "Ann\x1b[2J\x9b2J\u202e"  # ESC, C1 CSI, a bidi override
SHOWN = "Ann\\x1b[2J\\x9b2J\\u202e"


def assert_shown_visibly(path: Path) -> None:
    """No character a terminal acts on, but line ends, in a file the tool wrote; the hostile
    value is there, written as the terminal writes it."""
    from bulk_contacts.terminal import TERMINAL_UNSAFE

    if path.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path)
        cells = [str(c.value) for s in book.worksheets for r in s.iter_rows() for c in r]
        cells += [
            c.comment.text for s in book.worksheets for r in s.iter_rows() for c in r if c.comment
        ]
        text = "\n".join(cells)
    else:
        text = path.read_text(encoding="utf-8-sig")
    unsafe = {chr(c) for c in TERMINAL_UNSAFE} - {"\n", "\r"}
    assert not unsafe & set(text), (path, sorted(unsafe & set(text)))
    if path.suffix == ".json":
        assert "Ann\\u001b[2J\\u009b2J\\u202e" in text, path  # JSON's own escapes: exact
    else:
        assert SHOWN in text, path


def test_a_nul_in_a_csv_header_is_refused_naming_its_column(server, tmp_path) -> None:
    """A control character in a header cell is never dropped silently (a header's key ignores
    it): the file is refused, exit 2 like every header problem, naming the column."""
    roster = tmp_path / "nul-header.csv"
    roster.write_bytes(
        b"Account #,External ID,First Na\x00me,Last Name,Phone\n10-4471,HD-1,Ann,Lee,+12025550143\n"
    )
    for command in ("validate", "plan"):
        result = run(server, command, str(roster))
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "\x00" not in result.output
        assert (
            f"{roster}: the header of column C, 'First Na\\x00me', holds a control character "
            "(U+0000), which no header has (control_character, header row 1)" in result.output
        ), result.output
        assert "control_character" in result.output
    # a line break in a header cell (Alt+Enter in Excel) is not a control character to refuse
    wrapped = tmp_path / "wrapped.csv"
    wrapped.write_text(
        'Account #,External ID,"First\nName",Last Name,Phone\n10-4471,HD-1,Ann,Lee,+12025550143\n'
    )
    assert CliRunner().invoke(main, ["validate", str(wrapped)]).exit_code == 0


def test_every_report_writes_control_characters_visibly(server, tmp_path) -> None:
    roster = tmp_path / "hostile.csv"
    roster.write_text(
        "Account #,External ID,First Name,Last Name,Phone\n"
        f"10-4471,HD-1,{HOSTILE},Lee,+12025550143\n"
    )
    reports = [tmp_path / f"v.{suffix}" for suffix in ("csv", "json", "xlsx")]
    args = [a for report in reports for a in ("--report", str(report))]
    assert CliRunner().invoke(main, ["validate", str(roster), *args]).exit_code == 1
    for report in reports:
        assert_shown_visibly(report)
    # CHeKT holds the hostile name; the roster says John: the plan's reports show the old value
    server.store.db.execute(
        "UPDATE contacts SET first_name=? WHERE external_contact_id='HD-001'", (HOSTILE,)
    )
    reports = [tmp_path / f"p.{suffix}" for suffix in ("csv", "json", "xlsx", "html")]
    args = [a for report in reports for a in ("--report", str(report))]
    result = run(server, "plan", ROSTER, *args)
    assert result.exit_code == 0, result.output
    for report in reports:
        assert_shown_visibly(report)


def test_an_export_of_names_with_control_characters_imports_back_as_no_change(
    server, tmp_path
) -> None:
    """CHeKT holds a name with ESC, a C1 control and a bidi override: the export shows it as
    the terminal does, and the untouched export, imported, plans no change (xlsx: three-way;
    csv: two-way); retyping the name in the file cleans it."""
    server.store.db.execute(
        "UPDATE contacts SET first_name=? WHERE external_contact_id='HD-001'", (HOSTILE,)
    )
    for suffix in ("xlsx", "csv"):
        path = tmp_path / f"e.{suffix}"
        assert run(server, "export", "-q", "-o", str(path)).exit_code == 0
        assert_shown_visibly(path)
        again = run(server, "plan", str(path), "--detailed-exitcode", "--no-progress")
        assert again.exit_code == 0, again.output
        assert "No changes" in again.output
    import pandas as pd

    edited = pd.read_csv(tmp_path / "e.csv", dtype=str, keep_default_na=False)
    edited.loc[edited["external_contact_id"] == "HD-001", "first_name"] = "John"
    edited.to_csv(tmp_path / "edited.csv", index=False)
    cleaned = run(server, "apply", str(tmp_path / "edited.csv"), "--yes", "--no-progress")
    assert cleaned.exit_code == 0, cleaned.output
    (name,) = server.store.db.execute(
        "SELECT first_name FROM contacts WHERE external_contact_id='HD-001'"
    ).fetchone()
    assert name == "John"


def test_one_create_applied_and_rolled_back_past_the_key_generations_says_what_happens(
    server, tmp_path, monkeypatch
) -> None:
    """A create made and undone as many times in 24 hours as there are key generations (16; 3
    here, to keep the test short): the next is not made (no duplicate, ever), and its message
    says why, until when, and what to do instead."""
    import pandas as pd

    from bulk_contacts import client

    monkeypatch.setattr(client, "MAX_GENERATIONS", 3)

    roster = tmp_path / "one.csv"
    roster.write_text(
        "Account #,External ID,First Name,Last Name,Phone\n10-4471,NEW-1,Ann,New,+12025550199\n"
    )
    for cycle in range(3):
        applied = run(server, "apply", str(roster), "--yes", "-q", "--journal", f"j{cycle}.jsonl")
        assert applied.exit_code == 0, (cycle, applied.output)
        undone = run(server, "rollback", f"j{cycle}.jsonl", "--yes", "-q")
        assert undone.exit_code == 0, (cycle, undone.output)
    last = run(server, "apply", str(roster), "--yes", "-q", "--results", "r.csv")
    assert last.exit_code == 1, last.output
    (message,) = pd.read_csv("r.csv", dtype=str, keep_default_na=False)["error_message"]
    assert message.startswith("create of NEW-1 on site 101 not made: "), message
    assert "made and undone 3 times" in message, message
    assert "not made" in message and "24 hours" in message, message
    assert "external_contact_id" in message, message
    made = server.store.db.execute(
        "SELECT COUNT(*) FROM contacts WHERE external_contact_id = 'NEW-1'"
    ).fetchone()[0]
    assert made == 0


def test_ctrl_c_is_handled_even_when_started_with_sigint_ignored() -> None:
    """A shell's background job (and `nohup`) starts with SIGINT ignored, which Python keeps:
    a `kill -INT` between an apply's plan and its writes was lost, and every change was made.
    The entry point makes SIGINT a Ctrl-C again from its first line."""
    import signal
    import subprocess
    import sys

    probe = (
        "import signal, bulk_contacts.cli as cli; from bulk_contacts import entry; "
        "cli.run = lambda: print(signal.getsignal(signal.SIGINT) is entry._as_ctrl_c); "
        "entry.run()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "True", result.stdout + result.stderr


def test_the_rollback_advice_quotes_a_journal_path_with_a_space() -> None:
    from bulk_contacts.words import rollback_command

    assert rollback_command("my dir/res ults-journal.jsonl") == (
        "bulk-contacts rollback 'my dir/res ults-journal.jsonl'"
    )
    assert rollback_command("bulk-contacts-runs/x/journal.jsonl").endswith(
        " bulk-contacts-runs/x/journal.jsonl"
    )


def test_an_id_in_scientific_notation_is_named_and_never_created(server, tmp_path) -> None:
    """A long number id Excel showed as 4.56E+05 (digits lost: 456012 and 455987 both show so):
    validate warns on every id column; plan creates no contact under it (an error on the row),
    while a row naming an existing contact by it is still matched (`id_damaged`)."""
    roster = tmp_path / "sci.csv"
    roster.write_text(
        "Account #,External Site ID,External ID,First Name,Last Name,Phone\n"
        "10-4471,,4.56E+05,Kim,Lee,+1 202 555 0101\n"
        "1.04E+05,,HD-901,Bo,Ng,+1 202 555 0102\n"
        ",2.2E+10,HD-902,Cy,Oh,+1 202 555 0103\n"
        "10-4471,,HD-903,Di,Ma,+1 202 555 0104\n",
        encoding="utf-8",
    )
    checked = CliRunner().invoke(main, ["validate", str(roster)])
    assert "warning id_scientific: 3" in checked.output, checked.output
    assert (
        "row 2, C 'External ID': '4.56E+05' looks like a long number a spreadsheet "
        "showed in scientific notation" in checked.output
    )
    assert "format the column as Text in Excel and re-enter the ids" in checked.output
    assert "row 3, A 'Account #': '1.04E+05'" in checked.output
    assert "row 4, B 'External Site ID': '2.2E+10'" in checked.output
    planned = run(server, "plan", str(roster), "--skip-invalid", "--no-progress")
    assert (
        "row 2: C 'External ID': external_contact_id '4.56E+05' names no contact of the site, "
        "and is a long number a spreadsheet showed in scientific notation" in planned.output
    ), planned.output
    assert "create 1   update 0" in planned.output  # HD-903 only
    alone = tmp_path / "alone.csv"
    alone.write_text("".join(roster.read_text().splitlines(True)[i] for i in (0, 1, 4)))
    refused = run(server, "plan", str(alone), "--no-progress")
    assert refused.exit_code == 1, refused.output
    assert "REFUSED: 1 row is invalid" in refused.output, refused.output
    applied = run(server, "apply", str(roster), "--skip-invalid", "--yes", "--results", "r.csv")
    assert applied.exit_code == 0, applied.output
    held = {r[0] for r in server.store.db.execute("SELECT external_contact_id FROM contacts")}
    assert "4.56E+05" not in held and "HD-903" in held


def test_a_dropped_ctrl_c_after_the_question_starts_no_change(monkeypatch) -> None:
    """Between the question and the writes (the sites read again after "y"), a Ctrl-C Python
    dropped stops the run as one during the writes does: the writes start with the stop
    asked, so none is made."""
    from bulk_contacts import entry
    from bulk_contacts.cli.applying import StopOnInterrupt

    with StopOnInterrupt() as quiet:
        assert not quiet.event.is_set()
    monkeypatch.setattr(entry, "_stops", [2])
    with StopOnInterrupt() as stopped:
        assert stopped.event.is_set()
