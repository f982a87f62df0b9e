"""What the tool writes: no file replaced without --overwrite, none left half-written, every
output path checked before any network call, every CSV formula-safe (issues 11 and 13)."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bulk_contacts import outputs
from bulk_contacts.cli import main
from bulk_contacts.errors import InputError
from bulk_contacts.plan import Change
from bulk_contacts.results import Outcome, Results
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster
from bulk_contacts.spreadsheet import unquote_formula

from . import warm
from .conftest import run_in_process

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
ROSTER = str(SAMPLES / "roster.csv")
# Credentials that would work, and an API that can never answer: a command that reached the
# network would fail with a connection error (exit 1), not with the path's one line (exit 2).
NO_NETWORK = {
    "CHEKT_CLIENT_ID": "sandbox-client",
    "CHEKT_CLIENT_SECRET": "sandbox-secret",
    "CHEKT_API_URL": "https://chekt.invalid",
    "CHEKT_DEALER_ID": "12345",
}
GOOD = b"a good file, there before the command ran\n"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env or NO_NETWORK)


def assert_one_line_refusal(result, *words: str) -> None:
    """Exit 2, one line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def unwritable(tmp_path) -> Iterator[Path]:
    """A folder no file can be created in, for every user: as root (who passes chmod) /proc,
    whose top level takes no new files; else a folder chmod 0555."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


# issue 11, reproduction 3: files are never replaced without --overwrite


def test_template_refuses_to_replace_a_filled_roster(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "roster.xlsx").write_bytes(GOOD)
    result = run("template")  # the default -o roster.xlsx
    assert_one_line_refusal(result, "roster.xlsx", "--overwrite")
    assert (tmp_path / "roster.xlsx").read_bytes() == GOOD
    replaced = run("template", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    template = (ROOT / "templates" / "roster-template.xlsx").read_bytes()
    assert (tmp_path / "roster.xlsx").read_bytes() == template


@pytest.mark.parametrize(
    "args",
    [
        ["export", "-o", "{out}.xlsx"],
        ["export", "-o", "{out}.csv"],
        ["plan", ROSTER, "-o", "{out}.json"],
        ["plan", ROSTER, "--report", "{out}.html"],
        ["plan", ROSTER, "--report", "{out}.csv"],
        ["validate", ROSTER, "--report", "{out}.xlsx"],
        ["validate", ROSTER, "--report", "{out}.json"],
        ["apply", ROSTER, "--yes", "--results", "{out}.csv"],
        ["rollback", "{journal}", "--yes", "--results", "{out}.xlsx"],
        ["template", "-o", "{out}.csv"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith(("{", "/"))),
)
def test_an_existing_output_is_refused_before_any_work(tmp_path, args) -> None:
    out, journal = tmp_path / "mine", tmp_path / "old-journal.jsonl"
    journal.write_text('{"format": "bulk-contacts-journal/1", "kind": "apply"}\n')
    args = [a.format(out=out, journal=journal) for a in args]
    target = Path(next(a for a in args if a.startswith(str(out))))
    target.write_bytes(GOOD)
    result = run(*args)
    assert_one_line_refusal(result, str(target), "--overwrite")
    assert target.read_bytes() == GOOD


def test_overwrite_replaces_a_report(tmp_path) -> None:
    report = tmp_path / "problems.csv"
    report.write_bytes(GOOD)
    mistakes = str(SAMPLES / "roster-with-mistakes.csv")
    result = run("validate", mistakes, "--report", str(report))
    assert_one_line_refusal(result, "--overwrite")
    replaced = run("validate", mistakes, "--report", str(report), "--overwrite")
    assert replaced.exit_code == 1, replaced.output  # the roster has invalid rows
    assert report.read_text(encoding="utf-8-sig").startswith("row,column,field,value")
    assert [p.name for p in tmp_path.iterdir()] == ["problems.csv"]  # no temporary file left


def test_a_journal_is_never_replaced_even_with_overwrite(tmp_path) -> None:
    """An existing journal is added to (issue 12); a file that is not one is refused, before any
    network call, and left as it was, --overwrite or not."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(GOOD)
    result = run("apply", ROSTER, "--yes", "--journal", str(journal), "--overwrite")
    assert_one_line_refusal(result, "--journal", "not a journal")
    assert journal.read_bytes() == GOOD
    # the journal chosen beside the results counts too
    (tmp_path / "r-journal.jsonl").write_bytes(GOOD)
    beside = run("apply", ROSTER, "--yes", "--results", str(tmp_path / "r.csv"), "--overwrite")
    assert_one_line_refusal(beside, "r-journal.jsonl", "not a journal")
    assert (tmp_path / "r-journal.jsonl").read_bytes() == GOOD


def test_the_log_file_is_appended_to(start_sandbox, tmp_path) -> None:
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    log = tmp_path / "run.jsonl"
    log.write_bytes(GOOD)
    env = {**NO_NETWORK, "CHEKT_API_URL": server.url}
    result = run("plan", ROSTER, "--log-file", str(log), env=env)
    assert result.exit_code == 0, result.output
    assert log.read_bytes().startswith(GOOD) and len(log.read_bytes()) > len(GOOD)


def test_the_same_file_twice_or_the_roster_itself_is_refused(tmp_path) -> None:
    twice = tmp_path / "plan.json"
    result = run("plan", ROSTER, "-o", str(twice), "--report", str(twice))
    assert_one_line_refusal(result, "plan.json", "twice")
    assert not twice.exists()
    copy = tmp_path / "roster.xlsx"
    copy.write_bytes((SAMPLES / "roster.xlsx").read_bytes())
    itself = run("validate", str(copy), "--report", str(copy), "--overwrite")
    assert_one_line_refusal(itself, "is the file being read")
    assert copy.read_bytes() == (SAMPLES / "roster.xlsx").read_bytes()


# issue 13, item 10: every output path is checked when options are parsed

OUTPUT_OPTIONS = {
    "validate --report": (["validate", ROSTER, "--report"], ".csv"),
    "plan --report": (["plan", ROSTER, "--report"], ".html"),
    "plan -o": (["plan", ROSTER, "-o"], ".json"),
    "plan --log-file": (["plan", ROSTER, "--log-file"], ".jsonl"),
    "apply --results": (["apply", ROSTER, "--yes", "--results"], ".csv"),
    "apply --journal": (["apply", ROSTER, "--yes", "--journal"], ".jsonl"),
    "apply --log-file": (["apply", ROSTER, "--yes", "--log-file"], ".log"),
    "export -o": (["export", "-o"], ".xlsx"),
    "template -o": (["template", "-o"], ".xlsx"),
    "rollback --results": (["rollback", "{journal}", "--yes", "--results"], ".csv"),
    "rollback --journal": (["rollback", "{journal}", "--yes", "--journal"], ".jsonl"),
}


def journal_file(tmp_path: Path) -> Path:
    journal = tmp_path / "old.jsonl"
    journal.write_text('{"format": "bulk-contacts-journal/1", "kind": "apply"}\n')
    return journal


@pytest.mark.parametrize("case", ["missing folder", "under a file", "unwritable folder", "suffix"])
@pytest.mark.parametrize("option", OUTPUT_OPTIONS)
def test_every_output_path_is_checked_before_anything_else(
    tmp_path, unwritable, option, case
) -> None:
    prefix, suffix = OUTPUT_OPTIONS[option]
    (tmp_path / "a-file").write_text("x")
    folder = {
        "missing folder": tmp_path / "missing",
        "under a file": tmp_path / "a-file",
        "unwritable folder": unwritable,
        "suffix": tmp_path,
    }[case]
    path = folder / ("out.txt.bak" if case == "suffix" else f"out{suffix}")
    args = [a.format(journal=journal_file(tmp_path)) for a in prefix]
    result = run(*args, str(path))
    words = {
        "missing folder": ["does not exist"],
        "under a file": ["is not a folder"],
        "unwritable folder": ["cannot write"],
        "suffix": ["file name"],
    }[case]
    assert_one_line_refusal(result, option.split()[-1], str(path), *words)
    assert not (tmp_path / "missing").exists()


def test_a_fifo_is_never_an_output(tmp_path) -> None:
    log, report = tmp_path / "log.jsonl", tmp_path / "report.csv"
    os.mkfifo(log)
    os.mkfifo(report)
    appended = run("plan", ROSTER, "--log-file", str(log))  # opening it would block
    assert_one_line_refusal(appended, "is not a regular file")
    replaced = run("plan", ROSTER, "--report", str(report), "--overwrite")
    assert_one_line_refusal(replaced, "is not a regular file")


def test_a_report_in_the_working_folder_names_it(tmp_path, unwritable, monkeypatch) -> None:
    monkeypatch.chdir(unwritable)
    result = run("template", "-o", "roster.csv")
    assert_one_line_refusal(result, f"cannot write in the folder {unwritable}")


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_the_default_run_folder_needs_a_writable_working_folder(
    tmp_path, unwritable, monkeypatch, command
) -> None:
    target = str(journal_file(tmp_path)) if command == "rollback" else ROSTER
    monkeypatch.chdir(unwritable)
    result = run(command, target, "--yes")
    assert_one_line_refusal(result, "run folder", "cannot write")


def test_the_demo_folder_is_checked_first(tmp_path) -> None:
    (tmp_path / "a-file").write_text("x")
    result = run("demo", "--out", str(tmp_path / "a-file" / "demo"))
    assert_one_line_refusal(result, "--out", "is not a folder")


def test_the_sandbox_request_log_is_checked_before_it_serves(tmp_path) -> None:
    result = run_in_process(
        "sandbox", "--port", "0", "--request-log", str(tmp_path / "missing" / "requests.jsonl")
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --request-log {tmp_path / 'missing' / 'requests.jsonl'}: the folder "
        f"{tmp_path / 'missing'} does not exist; create it first"
    ]


# every file written whole goes to a temporary name first


def big_roster(path: Path, rows: int, problems: bool = False) -> Path:
    """A roster of `rows` rows; with `problems`, every row lacks its last name."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_number", "external_contact_id", "first_name", "last_name"])
        for n in range(rows):
            writer.writerow([f"A-{n % 50}", f"c{n}", f"First{n}", "" if problems else f"L{n}"])
    return path


def limited_run(args: list[str], max_bytes: int) -> subprocess.CompletedProcess:
    """The CLI with files limited to `max_bytes` (RLIMIT_FSIZE): a disk that fills up mid-write.
    Python ignores SIGXFSZ, so the write fails with EFBIG."""
    import resource

    return warm.run(
        [sys.executable, "-m", "bulk_contacts", *args],
        capture_output=True,
        text=True,
        timeout=60,
        rlimits={resource.RLIMIT_FSIZE: (max_bytes, max_bytes)},
    )


@contextlib.contextmanager
def files_limited_to(max_bytes: int) -> Iterator[None]:
    """`limited_run`'s limit on this process, for the block (a new process costs a second of
    imports): the test writes nothing else meanwhile, and the limit is lifted after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("suffix", [".xlsx", ".csv", ".json"])
def test_a_write_that_fails_midway_leaves_the_good_file_untouched(tmp_path, suffix) -> None:
    roster = big_roster(tmp_path / "roster.csv", 5000, problems=True)
    report = tmp_path / f"report{suffix}"
    good = GOOD * 1000  # 42 KB, under the limit: a report written earlier
    report.write_bytes(good)
    args = ["validate", str(roster), "--report", str(report), "--overwrite"]
    if suffix == ".xlsx":  # xlsxwriter leaves its temporary file open when a write fails
        result = limited_run(args, 50_000)
    else:
        with files_limited_to(50_000):
            result = run_in_process(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --report {report}: cannot be written (File too large); it was left as it was"
    ]
    assert report.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report" + suffix, "roster.csv"]


def test_a_kill_during_the_write_leaves_the_good_file_untouched(tmp_path) -> None:
    roster = big_roster(tmp_path / "roster.csv", 60_000)
    report = tmp_path / "annotated.xlsx"
    report.write_bytes(GOOD)
    command = ["validate", str(roster), "--overwrite", "--report", str(report)]
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if any(p.name.startswith(".annotated.xlsx.") for p in tmp_path.iterdir()):
                break
            time.sleep(0.005)
        assert process.poll() is None, "the command ended before it started writing"
        process.kill()  # SIGKILL: no handler runs
        process.wait(timeout=10)
    finally:
        process.kill()
    assert report.read_bytes() == GOOD


def test_a_file_that_appears_during_the_write_is_not_replaced(tmp_path) -> None:
    path = tmp_path / "plan.html"
    with (
        pytest.raises(outputs.OutputExists, match="--overwrite"),
        outputs.replacing(path) as temporary,
    ):
        temporary.write_text("the new report")
        path.write_bytes(GOOD)  # another program, meanwhile
    assert path.read_bytes() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["plan.html"]


def test_a_replaced_file_keeps_its_permissions(tmp_path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(GOOD)
    path.chmod(0o640)
    outputs.write_text(path, "new", overwrite=True)
    assert path.read_text() == "new" and (path.stat().st_mode & 0o777) == 0o640


def test_check_output_names_the_option_and_what_to_do(tmp_path) -> None:
    existing = tmp_path / "x.csv"
    existing.write_text("x")
    with pytest.raises(InputError, match=r"^--report .*x\.csv: exists \(left untouched\); pass"):
        outputs.check_output(existing, "--report", (".csv",))
    outputs.check_output(existing, "--report", (".csv",), overwrite=True)
    outputs.check_output(existing, "--log-file", (".csv",), mode="append")


# issue 13, item 2: every CSV the tool writes is formula-safe

HOSTILE = ['=HYPERLINK("http://evil.example","click")', "=cmd|'/C calc'!A1", "+1+2", "@SUM(A1)"]


def cells_of(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def assert_no_formula(path: Path) -> None:
    for cell in cells_of(path):
        assert not cell.startswith(("=", "@", "\t", "\r")), (path.name, cell)
        assert not cell.startswith(("+", "-")) or outputs.PHONE_LIKE.fullmatch(cell), cell


def hostile_roster(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["account_number", "external_contact_id", "first_name", "last_name", "email"]
        writer.writerow(header)
        for n, value in enumerate(HOSTILE):
            writer.writerow(["10-4471", value, value, f"-{n}", f"c{n}@example.com"])
        writer.writerow(["10-4471", "x", "", "missing first name", "x@example.com"])
    return path


@given(st.text())
def test_formula_safe_never_starts_a_formula_and_reads_back_exactly(value: str) -> None:
    safe = outputs.formula_safe(value)
    assert unquote_formula(safe) == value
    assert not safe.startswith(("=", "@", "\t", "\r"))
    assert not safe.startswith(("+", "-")) or outputs.PHONE_LIKE.fullmatch(safe)


def test_validate_report_csv_is_formula_safe(tmp_path) -> None:
    report = tmp_path / "problems.csv"
    result = run("validate", str(hostile_roster(tmp_path)), "--report", str(report))
    assert result.exit_code == 1, result.output
    assert any(cell == "'" + HOSTILE[0] for cell in cells_of(report))
    assert_no_formula(report)


def test_every_text_column_is_checked_like_names(tmp_path) -> None:
    validated = validate_roster(read_roster(hostile_roster(tmp_path)))
    flagged = {(i.row, i.field) for i in validated.issues if i.code == "formula_like"}
    for row in range(2, 2 + len(HOSTILE)):
        assert {(row, "external_contact_id"), (row, "first_name"), (row, "last_name")} <= flagged


def test_results_and_failed_rows_are_formula_safe(tmp_path) -> None:
    results = Results(tmp_path / "r.csv", tmp_path / "r-failed-rows.csv")
    for n, value in enumerate(HOSTILE):
        change = Change(
            "create",
            12345,
            101,
            n + 2,
            value,
            None,
            after={"first_name": value, "last_name": "@x", "phone_number": "+12025550143"},
        )
        outcome = Outcome(n + 2, 12345, 101, value, "create", "failed", None, 422, "x", value)
        results.add(outcome, change)
    results.close()
    for path in (tmp_path / "r.csv", tmp_path / "r-failed-rows.csv"):
        assert "'" + HOSTILE[1] in cells_of(path)
        assert_no_formula(path)
    assert "+12025550143" in cells_of(tmp_path / "r-failed-rows.csv")
    # the failed rows are read back as a roster with the values as they were
    again = read_roster(tmp_path / "r-failed-rows.csv")
    assert list(again.frame["external_contact_id"]) == HOSTILE
    assert list(again.frame["last_name"]) == ["@x"] * len(HOSTILE)


def test_plan_report_csv_is_formula_safe(start_sandbox, tmp_path) -> None:
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    report = tmp_path / "plan.csv"
    env = {**NO_NETWORK, "CHEKT_API_URL": server.url}
    roster = str(hostile_roster(tmp_path))
    result = run("plan", roster, "--skip-invalid", "--report", str(report), env=env)
    assert result.exit_code == 0, result.output
    assert "'" + HOSTILE[0] in cells_of(report)
    assert_no_formula(report)


# issue 13, item 3: a user's own apostrophe is kept; the tool's own is taken off


def test_a_users_apostrophe_is_kept_and_reported(tmp_path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "account_number,external_contact_id,first_name,last_name\n"
        "10-4471,'=7,'+Ann,'-Lee\n"
        "10-4471,c2,'Bob,O'Neil\n",
        encoding="utf-8",
    )
    validated = validate_roster(read_roster(path))
    assert list(validated.rows["external_contact_id"]) == ["'=7", "c2"]
    assert list(validated.rows["first_name"]) == ["'+Ann", "'Bob"]
    flagged = {(i.row, i.field) for i in validated.issues if i.code == "formula_like"}
    assert flagged == {(2, "external_contact_id"), (2, "first_name"), (2, "last_name")}
    message = next(i.message for i in validated.issues if i.code == "formula_like")
    assert "apostrophe" in message


def test_an_export_csv_reads_back_exactly(tmp_path) -> None:
    from bulk_contacts.export import EXPORT_COLUMNS

    path = tmp_path / "export.csv"
    values = ["=1+2", "'=kept", "+12025550143", "-Minus"]
    rows = [
        {**dict.fromkeys(EXPORT_COLUMNS, ""), "site_id": "101", "first_name": v, "last_name": "L"}
        for v in values
    ]
    outputs.write_csv(path, EXPORT_COLUMNS, [[r[c] for c in EXPORT_COLUMNS] for r in rows])
    assert list(read_roster(path).frame["first_name"]) == values
    # edited in a spreadsheet, with a column added: still the tool's own file
    edited = tmp_path / "edited.csv"
    header = ["notes", *EXPORT_COLUMNS]
    outputs.write_csv(edited, header, [["", *[r[c] for c in EXPORT_COLUMNS]] for r in rows])
    assert list(read_roster(edited).frame["first_name"]) == values


def test_results_xlsx_is_written_whole(tmp_path) -> None:
    path = tmp_path / "r.xlsx"
    path.write_bytes(GOOD)
    with pytest.raises(outputs.OutputExists):
        Results(path, tmp_path / "r-failed-rows.csv").close()
    assert path.read_bytes() == GOOD


# a working folder the user cannot write in: the message names the run folder it would make


def without_root_powers() -> list[str]:
    """The command prefix that runs a command as this user without the power to ignore file
    permissions: root passes any chmod, so its capabilities to do so are dropped (setpriv, from
    util-linux); another user has none to drop."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("kind", ["apply", "rollback"])
def test_a_read_only_working_folder_names_the_run_folder_and_what_to_do(tmp_path, kind) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    journal = tmp_path / "old-journal.jsonl"
    journal.write_text('{"format": "bulk-contacts-journal/1", "kind": "apply"}\n')
    source = ROSTER if kind == "apply" else str(journal)
    folder.chmod(0o555)
    try:
        done = subprocess.run(
            [*without_root_powers(), sys.executable, "-m", "bulk_contacts", kind, source, "--yes"],
            cwd=folder,
            env={**os.environ, **NO_NETWORK},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = (done.stdout + done.stderr).strip().splitlines()
    run_folder = rf"{re.escape(str(folder / 'bulk-contacts-runs'))}/\d{{8}}T\d{{6}}Z-{kind}"
    assert re.fullmatch(
        rf"error: cannot create the run folder {run_folder}: cannot write in the folder "
        rf"{re.escape(str(folder))} \(Permission denied\); run the command from a folder you "
        rf"can write in, or name the results file with --results FILE \(its journal is "
        rf"written beside it\)",
        line,
    ), line
    assert not (folder / "bulk-contacts-runs").exists()
