"""Messages that must point the right way (issue 16): what the command line says after each
step, against a seeded sandbox over 127.0.0.1."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_contacts import retries
from bulk_contacts.apply import ApplyReport, RunFiles
from bulk_contacts.cli import main
from bulk_contacts.sandbox import SandboxServer
from bulk_contacts.terminal import run_text

from . import warm
from .conftest import run_in_process
from .test_apply import run_on_a_terminal
from .test_writes import read_until

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
ROSTER = str(SAMPLES / "roster.csv")
MISTAKES = str(SAMPLES / "roster-with-mistakes.csv")


@pytest.fixture(autouse=True)
def no_backoff_sleeps():
    retries.set_testing(True)
    yield
    retries.set_testing(False)


@pytest.fixture
def server(start_sandbox) -> SandboxServer:
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


def environment(server: SandboxServer) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": "12345",
    }


def run(server: SandboxServer, *args: str):
    return CliRunner().invoke(main, list(args), env=environment(server))


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# Site 104 holds two contacts: deleting both is refused (it would leave the site empty), while
# the create on site 101 goes ahead.
EMPTIES_104 = (
    "Account #,External ID,First Name,Last Name,Phone,Action\n"
    "10-4471,HD-003,Kwame,Mensah,+1 202 867 5309,\n"
    "10-4474,RX-009,,,,delete\n"
    "10-4474,RX-002,,,,delete\n"
)


# --report


def test_apply_does_not_point_to_a_report_option_it_does_not_have(server, tmp_path) -> None:
    planned = run(server, "plan", ROSTER, "--no-progress")
    assert "--report plan.html shows all" in planned.output  # plan has --report
    applied = run(server, "apply", ROSTER, "--yes", "--no-progress", "--results", "r.csv")
    assert applied.exit_code == 0, applied.output
    assert "more lines (-v prints all)" in applied.output
    assert "--report" not in applied.output
    rolled = run(server, "rollback", "r-journal.jsonl", "--yes", "--no-progress")
    assert rolled.exit_code == 0, rolled.output
    assert "more lines (-v prints all)" in rolled.output
    assert "--report" not in rolled.output


# --skip-invalid


def test_skip_invalid_is_not_suggested_to_whoever_gave_it(server) -> None:
    skipped = run(server, "plan", MISTAKES, "--skip-invalid", "--no-progress")
    assert skipped.exit_code == 0, skipped.output
    assert "--skip-invalid" not in skipped.output
    assert "Invalid rows (11), not planned" in skipped.output
    refused = run(server, "plan", MISTAKES, "--no-progress")
    assert refused.exit_code == 1
    assert "REFUSED: 10 rows are invalid" in refused.output
    assert refused.output.count("--skip-invalid") == 1  # the refusal names it, once
    validated = CliRunner().invoke(main, ["validate", MISTAKES])
    assert "invalid: fix the 11 rows above (or plan with --skip-invalid)" in validated.output


# an applied plan applied again


def test_a_plan_applied_again_is_recognised_as_already_applied(server, tmp_path) -> None:
    assert run(server, "plan", ROSTER, "-o", "plan.json", "-q").exit_code == 0
    first = run(server, "apply", "plan.json", "--yes", "--no-progress", "--results", "1.csv")
    assert first.exit_code == 0, first.output
    again = run(server, "apply", "plan.json", "--yes", "--no-progress", "--results", "2.csv")
    assert again.exit_code == 0, again.output
    assert "already applied: CHeKT holds every change of plan.json" in again.output
    assert "REFUSED" not in again.output and "stale" not in again.output
    assert not Path("2.csv").exists()  # nothing was run


def test_a_plan_applied_in_part_is_stale_for_the_rest(server, tmp_path) -> None:
    """Only a site whose changes all hold is 'already applied'; one changed otherwise since
    stays refused as stale."""
    assert run(server, "plan", ROSTER, "-o", "plan.json", "-q").exit_code == 0
    assert run(server, "apply", "plan.json", "--yes", "--results", "1.csv").exit_code == 0
    server.store.db.execute(
        "UPDATE contacts SET phone_number = '+12025550111' WHERE external_contact_id = 'HD-002'"
    )
    again = run(server, "apply", "plan.json", "--yes", "--no-progress", "--results", "2.csv")
    assert again.exit_code == 1, again.output
    assert "11 sites already hold their changes (already applied)" in again.output
    assert "1 site changed since the plan was made, refused: 101" in again.output
    assert "REFUSED for site 101" in again.output
    assert "No changes" not in again.output


# Ctrl-C


def big_roster(path: Path, count: int) -> Path:
    lines = ["Account #,External ID,First Name,Last Name,Phone"]
    lines += [
        f"10-44{71 + n % 12},K-{n:04d},Kim,Number {n},+1 202 555 {n % 10000:04d}"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_after_ctrl_c_in_a_rollback_the_advice_is_the_same_command(start_sandbox, tmp_path) -> None:
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    roster = big_roster(tmp_path / "big.csv", 120)
    applied = run(server, "apply", str(roster), "--yes", "--results", "a.csv")
    assert applied.exit_code == 0, applied.output
    hold = server.hold_writes(after=5)  # the rollback's first 5 writes, then Ctrl-C
    command = [sys.executable, "-m", "bulk_contacts", "rollback", "a-journal.jsonl", "--yes"]
    process = warm.WarmPopen(
        [*command, "--no-progress", "--concurrency", "2", "--journal", "rb.jsonl"],
        env={**os.environ, **environment(server)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hold.wait_held(2)  # both writers wait for a write in flight
        process.send_signal(signal.SIGINT)
        said = read_until(process.stderr, "stopping:")
        hold.release()  # the writes in flight are answered after the Ctrl-C was taken
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, said + stderr
    output = stdout + said + stderr
    assert (
        "run the same command again to finish: bulk-contacts rollback a-journal.jsonl" in output
    ), output
    assert "bulk-contacts rollback rb.jsonl" not in output  # that would undo the rollback
    finished = run(server, "rollback", "a-journal.jsonl", "--yes", "--results", "again.csv")
    assert finished.exit_code == 0, finished.output
    left = server.store.db.execute(
        "SELECT COUNT(*) FROM contacts WHERE external_contact_id LIKE 'K-%'"
    ).fetchone()[0]
    assert left == 0


def test_after_a_second_ctrl_c_the_command_to_finish_is_printed_and_finishes(
    start_sandbox, tmp_path
) -> None:
    """A second Ctrl-C stops at once; its advice is the same as after one: the command typed,
    quoted, with --refresh for a saved plan and --overwrite for the --results file the stopped
    run left; following it finishes the job."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    roster = tmp_path / "my roster.csv"
    big_roster(roster, 60)
    assert run(server, "plan", str(roster), "-o", "plan.json", "-q").exit_code == 0
    hold = server.hold_writes(after=2)  # 2 writes made, 2 in flight when Ctrl-C comes
    slow_run = ["--no-progress", "--concurrency", "2", "--results", "res.csv"]
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", "apply", "plan.json", "--yes", *slow_run],
        env={**os.environ, **environment(server)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hold.wait_held(2)
        process.send_signal(signal.SIGINT)
        # the first Ctrl-C is handled: the second stops at once
        said = read_until(process.stderr, "stopping:")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    hold.release()  # the 2 writes left in flight land after the run stopped
    server.wait_idle()
    stderr = said + stderr
    assert process.returncode == 130, stderr
    assert "stopped at once" in stderr, stderr
    found = re.search(r"run the same command again to finish: (bulk-contacts .*?); ", stderr)
    assert found, stderr
    words = shlex.split(found.group(1))
    assert words[:3] == ["bulk-contacts", "apply", "plan.json"], words
    assert "--refresh" in words and "--overwrite" in words and "res.csv" in words, words
    assert "rollback res-journal.jsonl" in stderr  # or undo what was done
    # The advice followed in this process (in tmp_path, own_folder): the signals were the
    # stopped run's; what is tested here is the command it printed.
    finished = run_in_process(*words[1:], env=environment(server))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    again = run(server, "plan", str(roster))
    assert again.exit_code == 0 and "No changes" in again.output, again.output
    made = server.store.db.execute(
        "SELECT COUNT(*) FROM contacts WHERE external_contact_id LIKE 'K-%'"
    ).fetchone()[0]
    assert made == 60


def test_ctrl_c_at_the_confirmation_exits_130(server, tmp_path) -> None:
    code, output = run_on_a_terminal(server, ["apply", ROSTER, "--no-progress"], None)
    assert code == 130, output
    assert "interrupted: nothing was written: no change was sent to CHeKT" in output
    assert "Nothing was changed." not in output  # said once, not twice
    assert "Aborted" not in output
    assert not Path("bulk-contacts-runs").exists()


# counts


def test_a_refused_sites_changes_are_counted_as_not_done(server, tmp_path) -> None:
    roster = write(tmp_path / "r.csv", EMPTIES_104)
    result = run(server, "apply", roster, "--yes", "--no-progress", "--results", "out.csv")
    assert result.exit_code == 1, result.output  # part of the plan was refused
    assert "apply: 1 done, 0 failed, 0 skipped, 2 not done (site refused)" in result.output


@pytest.mark.parametrize(
    ("failed", "refused", "style"), [(0, 0, "ok"), (0, 2, "warning"), (1, 2, "error")]
)
def test_the_counts_line_is_not_shown_as_success_when_part_was_not_done(
    tmp_path, failed: int, refused: int, style: str
) -> None:
    """A run whose sites were refused exits 1: its counts line says so in its colour too."""
    files = RunFiles(tmp_path / "r.csv", tmp_path / "j.jsonl", tmp_path / "f.csv", tmp_path)
    counts = {"ok": 1, "failed": failed, "skipped": 0}
    report = ApplyReport(counts=counts, files=files, refused=refused)
    line = next(line for line in run_text(report, False, "apply") if line[0].startswith("apply:"))
    assert line[1] == style, line


def summary_of_terminal(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.strip().startswith("create "))
    return {key: int(value) for key, value in re.findall(r"(\w+) (\d+)", line)}


def summary_of_html(page: str) -> dict[str, int]:
    return {
        key: int(value) for value, key in re.findall(r'data-count="\w+"><b>(\d+)</b>(\w+)', page)
    }


def test_the_html_report_and_the_terminal_count_changes_the_same_way(server, tmp_path) -> None:
    roster = write(tmp_path / "r.csv", EMPTIES_104)
    result = run(server, "plan", roster, "--no-progress", "--report", "plan.html")
    assert result.exit_code == 1, result.output
    terminal = summary_of_terminal(result.output)
    assert terminal == {
        "create": 1,
        "update": 0,
        "delete": 0,
        "refused": 2,
        "unchanged": 0,
        "conflict": 0,
        "invalid": 0,
    }
    page = Path("plan.html").read_text(encoding="utf-8")
    assert summary_of_html(page) == terminal
    assert "1 change to make, 2 refused" in page
    assert "1 change planned" in result.output


# plan files and roster options


def test_plan_given_a_plan_file_says_it_is_for_apply(server, tmp_path) -> None:
    assert run(server, "plan", ROSTER, "-o", "plan.json", "-q").exit_code == 0
    result = run(server, "plan", "plan.json")
    assert result.exit_code == 2
    assert "plan.json is a plan file: apply it with `bulk-contacts apply plan.json`" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_roster_options_with_a_saved_plan_are_an_error_naming_them(server, tmp_path) -> None:
    assert run(server, "plan", ROSTER, "-o", "plan.json", "-q").exit_code == 0
    result = run(
        server,
        "apply",
        "plan.json",
        "--yes",
        "--map",
        "Cell=phone_number",
        "--skip-invalid",
        "--prune",
    )
    assert result.exit_code == 2, result.output
    assert (
        "plan.json is a saved plan, made with its own roster and plan options: --map, "
        "--prune, --skip-invalid cannot change it" in result.output
    )
    assert not Path("bulk-contacts-runs").exists()
    # the guards' options may loosen a saved plan, as before
    loosened = run(server, "apply", "plan.json", "--yes", "--force", "--results", "r.csv")
    assert loosened.exit_code == 0, loosened.output
    # and --refresh is for a saved plan only
    refreshed = run(server, "apply", ROSTER, "--yes", "--refresh")
    assert refreshed.exit_code == 2 and "--refresh is for a saved plan" in refreshed.output


def test_a_dealer_out_of_scope_is_an_invalid_row(start_sandbox, tmp_path) -> None:
    server = start_sandbox(dealers=(12345,))
    server.store.create_site(12345, {"site_id": 1, "name": "S1", "timezone": "UTC"})
    roster = write(
        tmp_path / "r.csv",
        "dealer_id,site_id,external_contact_id,first_name,last_name,phone\n"
        "12345,1,a,Ann,Lee,2025550143\n"
        "999,2,b,Bo,Ng,2025550144\n",
    )
    env = {k: v for k, v in environment(server).items() if k != "CHEKT_DEALER_ID"}
    refused = CliRunner().invoke(main, ["plan", roster], env=env)
    assert refused.exit_code == 1, refused.output
    assert "row 3: A 'dealer_id': dealer 999 is outside the scope of these credentials" in (
        refused.output
    )
    skipped = CliRunner().invoke(main, ["plan", roster, "--skip-invalid"], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert "create 1" in skipped.output and "invalid 1" in skipped.output


# plurals

NAME = {"first_name": "Ann", "last_name": "Other"}


def test_a_plan_applied_again_after_its_rollback_says_what_changed_in_words(
    server, tmp_path
) -> None:
    """A rollback re-creates the contacts a plan deleted (under new contact_ids) and deletes
    those it created: the plan applied again is stale, and says so in words, not as a count
    that did not change ("4 contacts then, 4 now")."""
    roster = write(
        tmp_path / "r.csv",
        "Account #,External ID,First Name,Last Name,Phone,Action\n"
        "10-4471,HD-099,,,,delete\n"
        "10-4471,HD-777,Ann,Lee,+1 202 555 0143,\n",
    )
    assert run(server, "plan", roster, "-o", "plan.json", "-q").exit_code == 0
    assert run(server, "apply", "plan.json", "--yes", "--results", "a.csv").exit_code == 0
    assert run(server, "rollback", "a-journal.jsonl", "--yes").exit_code == 0
    again = run(server, "apply", "plan.json", "--yes", "--no-progress", "--results", "b.csv")
    assert again.exit_code == 1, again.output
    assert "then," not in again.output, again.output
    assert (
        "the site's contacts changed in CHeKT since the plan was made: 1 contact the plan "
        "changes or deletes is no longer there (deleted, or made again under a new contact_id, "
        "as a rollback does)" in again.output
    ), again.output
    assert (
        "make a new plan, or re-base its changes on what it holds now (--refresh)" in again.output
    )


def test_one_is_singular(server, tmp_path) -> None:
    roster = write(
        tmp_path / "one.csv",
        "Account #,External ID,First Name,Last Name,Phone\n10-4473,CB-9,Ann,Lee,2025550143\n",
    )
    validated = CliRunner().invoke(main, ["validate", roster])
    assert "1 contact row, 0 invalid, 0 warnings" in validated.output, validated.output
    planned = run(server, "plan", roster, "-o", "plan.json")
    assert "1 site\n" in planned.output and "1 change planned" in planned.output
    applied = run(server, "apply", "plan.json", "--yes", "--results", "r.csv")
    assert "apply: 1 done" in applied.output
    assert "verified: 1 site read again" in applied.output, applied.output
    server.store.create_contact(103, {"external_contact_id": "CB-8", **NAME})
    write(tmp_path / "one.csv", Path(roster).read_text().replace("2025550143", "2025550199"))
    assert run(server, "plan", roster, "-o", "plan2.json", "-q").exit_code == 0
    server.store.create_contact(103, {"external_contact_id": "CB-7", **NAME})
    stale = run(server, "apply", "plan2.json", "--yes", "--results", "r2.csv")
    assert "1 site changed since the plan was made" in stale.output, stale.output
    exported = run(server, "export", "-o", "e.csv", "--site", "103")
    assert "3 contacts of 1 site written" in exported.output, exported.output
    plural = ("1 sites", "1 rows", "1 contacts", "1 changes")
    for output in (validated.output, planned.output, applied.output, stale.output):
        assert not any(wrong in output for wrong in plural), output


def test_after_ctrl_c_the_command_to_finish_is_the_one_typed_with_every_option(
    start_sandbox, tmp_path
) -> None:
    """The finishing command keeps the prune, the name case, the API URL and the dealer (the
    environment of the run that finishes it names none), quoted for a path with a space:
    following it gives what a fresh plan with the same options wants, nothing left to do."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    hold = server.hold_writes(after=10)  # 10 writes made, 2 in flight when Ctrl-C comes
    roster = tmp_path / "my roster.csv"
    big_roster(roster, 90)
    options = ["--prune", "--name-case", "title", "--api-url", server.url, "--dealer", "12345"]
    secrets = {"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": "sandbox-secret"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHEKT_")}
    slow_run = ["--no-progress", "--concurrency", "2", "--results", "r.csv"]
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", "apply", roster.name, *options, "--yes", *slow_run],
        env={**clean, **secrets},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hold.wait_held(2)
        process.send_signal(signal.SIGINT)
        said = read_until(process.stderr, "stopping:")
        hold.release()  # the writes in flight are answered after the Ctrl-C was taken
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    stderr = said + stderr
    assert process.returncode == 130, stderr
    assert (tmp_path / "r-journal.jsonl").exists()
    found = re.search(r"run the same command again to finish: (bulk-contacts .*?); ", stderr)
    assert found, stderr
    words = shlex.split(found.group(1))
    assert words[:2] == ["bulk-contacts", "apply"] and words[2] == roster.name
    for option in options:
        assert option in words, found.group(1)
    assert "--overwrite" in words  # the results file of the interrupted run is there
    # Followed in this process (in tmp_path, own_folder; no CHEKT_* variable reaches a test but
    # the secrets given here).
    finished = run_in_process(*words[1:], env=secrets)
    assert finished.returncode == 0, finished.stderr
    again = run(server, "plan", str(roster), "--prune", "--name-case", "title")
    assert again.exit_code == 0 and "No changes" in again.output, again.output


# a value of 100,000 characters is quoted shortened: its start, and how long it is


BIG = 100_000


def test_a_100_kb_header_is_shortened_in_every_message(tmp_path) -> None:
    header = "H" * BIG
    missing = write(tmp_path / "missing.csv", f"account_number,first_name,{header}\n10-4471,A,x\n")
    result = CliRunner().invoke(main, ["validate", missing])
    assert result.exit_code == 2, result.output[:2000]
    (line,) = result.output.strip().splitlines()
    assert f"C '{'H' * 60}…' (100,000 characters)" in line and len(line) < 1000, line[:2000]
    unknown = write(
        tmp_path / "unknown.csv",
        f"account_number,external_contact_id,first_name,last_name,phone_number,{header}\n"
        f"10-4471,E1,Ann,Lee,+12025550143,x\n",
    )
    result = CliRunner().invoke(main, ["validate", unknown, "--verbose"])
    assert result.exit_code == 0, result.output[:2000]
    assert f"F '{'H' * 60}…' (100,000 characters)" in result.output, result.output[:2000]
    assert max(map(len, result.output.splitlines())) < 1000, result.output[:2000]


def test_a_100_kb_cell_is_shortened_in_every_message(tmp_path) -> None:
    cell = "z" * BIG
    roster = write(
        tmp_path / "big-cell.csv",
        "account_number,external_contact_id,first_name,last_name,phone_number,email\n"
        f"10-4471,E1,Ann,Lee,+12025550143,{cell}\n10-4471,E2,Bo,Lee,{cell},b@example.com\n",
    )
    result = CliRunner().invoke(main, ["validate", roster])
    assert result.exit_code == 1, result.output[:2000]
    shown = f"'{'z' * 60}…' (100,000 characters)"
    assert "invalid_email" in result.output and "invalid_phone" in result.output
    assert result.output.count(shown) == 2, result.output[:3000]
    assert max(map(len, result.output.splitlines())) < 1000, result.output[:3000]
