"""`apply` and `rollback` against the sandbox: faults, kills, interrupts, stale plans, undo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from bulk_contacts import retries
from bulk_contacts.apply import RunFiles, apply_plan
from bulk_contacts.cli import main
from bulk_contacts.client import ChektClient
from bulk_contacts.journal import read_journal
from bulk_contacts.pipeline import plan_roster
from bulk_contacts.reconcile import PlanOptions
from bulk_contacts.roster import read_roster
from bulk_contacts.sandbox import Faults
from bulk_contacts.schema import validate_roster
from bulk_contacts.settings import resolve_settings

from . import warm
from .conftest import get_token

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
ROSTER = str(SAMPLES / "roster.xlsx")


@pytest.fixture(autouse=True)
def no_backoff_sleeps(tmp_path, monkeypatch):
    """No backoff sleeps; and default run folders land in the test's own directory."""
    monkeypatch.chdir(tmp_path)
    retries.set_testing(True)
    yield
    retries.set_testing(False)


def environment(server) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": "12345",
    }


def run(server, *args: str):
    return CliRunner().invoke(main, list(args), env=environment(server))


def contacts_of(server) -> list[tuple]:
    """Everything the sandbox holds, as comparable tuples (ids aside)."""
    rows = server.store.db.execute(
        "SELECT site_id, external_contact_id, first_name, last_name, phone_number, email "
        "FROM contacts ORDER BY site_id, external_contact_id, first_name"
    )
    return [tuple(row) for row in rows]


def duplicates(server) -> list[tuple]:
    rows = server.store.db.execute(
        "SELECT site_id, external_contact_id, COUNT(*) FROM contacts "
        "WHERE external_contact_id IS NOT NULL GROUP BY site_id, external_contact_id "
        "HAVING COUNT(*) > 1"
    )
    return [tuple(row) for row in rows]


def seeded(start_sandbox, **options):
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json", **options)


def assert_matches_roster(server, tmp_path) -> None:
    """Planning again gives no change, and no external id is doubled (NW-001 was, in the seed)."""
    result = run(server, "plan", ROSTER, "--prune", "--detailed-exitcode", "-q")
    assert result.exit_code == 0, (result.output, duplicates(server))
    assert duplicates(server) == [(102, "NW-001", 2)]


FAULTS = {
    "errors": {"faults": Faults(error_rate=0.25, seed=1)},
    "drops": {"faults": Faults(drop_rate=0.2, seed=2)},
    "ack-loss": {"faults": Faults(ack_loss_rate=0.3, seed=3)},
    "all-at-once": {"faults": Faults(error_rate=0.1, drop_rate=0.1, ack_loss_rate=0.2, seed=4)},
    "429s": {"rate_limit": 6000, "burst": 3},
    "token-expiry": {"token_ttl": 1, "faults": Faults(latency_ms=40)},
}


@pytest.mark.parametrize("fault", FAULTS)
def test_after_any_fault_the_api_holds_exactly_the_roster(start_sandbox, tmp_path, fault) -> None:
    if fault == "429s":  # the sandbox's bucket refills in real time: the client's waits are real
        retries.set_testing(False)
    server = seeded(start_sandbox, **FAULTS[fault])
    result = run(
        server,
        "apply",
        ROSTER,
        "--prune",
        "--yes",
        "--no-progress",
        "--results",
        str(tmp_path / "results.csv"),
    )
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "results.csv", dtype=str, keep_default_na=False)
    # A failure says which rows and what the API holds: a flaky one is evidence to keep.
    not_ok = results[results["status"] != "ok"].to_string()
    assert len(results) == 50 and set(results["status"]) == {"ok"}, not_ok
    assert_matches_roster(server, tmp_path)


def test_results_journal_and_order_per_site(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    result = run(
        server,
        "apply",
        ROSTER,
        "--prune",
        "--yes",
        "--results",
        str(tmp_path / "r.csv"),
        "--journal",
        str(tmp_path / "j.jsonl"),
    )
    assert result.exit_code == 0, result.output
    assert "apply: 50 done, 0 failed, 0 skipped" in result.output
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == [
        "row",
        "dealer_id",
        "site_id",
        "external_contact_id",
        "first_name",
        "last_name",
        "action",
        "status",
        "contact_id",
        "http_status",
        "error_code",
        "error_message",
        "trace_id",
        "attempts",
    ]
    assert Counter(table["action"]) == {"create": 46, "update": 2, "delete": 2}
    assert table["trace_id"].str.len().min() == 36
    records = read_journal(tmp_path / "j.jsonl")
    intents = [r for r in records if r["type"] == "intent"]
    outcomes = {r["n"]: r for r in records if r["type"] == "outcome"}
    assert len(intents) == len(outcomes) == 50
    for site in {r["site_id"] for r in intents}:
        done = [r["action"] for r in intents if r["site_id"] == site]
        assert done == sorted(done, key=["create", "update", "delete"].index)
    update = next(r for r in intents if r["action"] == "update")
    assert update["before"]["first_name"] and update["after"]
    image = outcomes[update["n"]]["image"]  # the contact as the API returned it
    assert {k: image[k] for k in update["after"]} == update["after"]
    assert "sandbox-secret" not in (tmp_path / "j.jsonl").read_text()


class RejectingTransport(httpx.HTTPTransport):
    """CHeKT refusing one create for a rule of its own (a 422 the roster could not foresee)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"HD-003"' in request.content:
            return httpx.Response(
                422,
                json={
                    "error": {
                        "code": "validation_error",
                        "message": "phone_number: not allowed here",
                        "request_id": "req_x",
                        "field": "phone_number",
                    }
                },
            )
        return super().handle_request(request)


def test_failures_are_recorded_and_their_rows_written_to_fix(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    settings = resolve_settings(env=environment(server))
    validated = validate_roster(read_roster(SAMPLES / "roster.xlsx"))
    files = RunFiles.choose(tmp_path / "r.csv", None)
    with ChektClient(settings, transport=RejectingTransport()) as client:
        plan = plan_roster(client, validated, PlanOptions(dealer_id=12345))
        report = apply_plan(client, plan, files)
    assert report.counts == {"ok": 48, "failed": 1, "skipped": 0, "unverified": 0}
    table = pd.read_csv(files.results, dtype=str, keep_default_na=False)
    failed = table[table["status"] == "failed"].iloc[0]
    assert (failed["external_contact_id"], failed["http_status"], failed["error_code"]) == (
        "HD-003",
        "422",
        "validation_error",
    )
    assert "not allowed here" in failed["error_message"]
    assert report.failed_rows_written and files.failed_rows == tmp_path / "r-failed-rows.csv"
    rows = pd.read_csv(files.failed_rows, dtype=str, keep_default_na=False)
    assert rows[
        ["site_id", "external_contact_id", "first_name", "last_name", "action"]
    ].values.tolist() == [["101", "HD-003", "Kwame", "Mensah", "upsert"]]
    again = CliRunner().invoke(main, ["validate", str(files.failed_rows)])
    assert again.exit_code == 0, again.output  # a roster, ready to import again


def test_a_contact_deleted_meanwhile_is_skipped_not_failed(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    settings = resolve_settings(env=environment(server))
    validated = validate_roster(read_roster(SAMPLES / "roster.xlsx"))
    with ChektClient(settings) as client:
        plan = plan_roster(client, validated, PlanOptions(dealer_id=12345))
        server.store.db.execute("DELETE FROM contacts WHERE external_contact_id='HD-002'")
        report = apply_plan(client, plan, RunFiles.choose(tmp_path / "r.csv", None))
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    gone = table[table["external_contact_id"] == "HD-002"].iloc[0]
    assert (gone["status"], gone["http_status"]) == ("skipped", "404")
    assert "deleted by someone else" in gone["error_message"]
    assert report.counts["failed"] == 0


def test_off_a_terminal_apply_needs_yes(start_sandbox) -> None:
    server = seeded(start_sandbox)
    before = contacts_of(server)
    result = run(server, "apply", ROSTER)
    assert result.exit_code == 2 and "--yes" in result.output
    assert contacts_of(server) == before


def test_rollback_restores_the_previous_state_exactly(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    before = contacts_of(server)
    journal = tmp_path / "j.jsonl"
    assert (
        run(
            server,
            "apply",
            ROSTER,
            "--prune",
            "--yes",
            "--journal",
            str(journal),
            "--results",
            str(tmp_path / "r.csv"),
        ).exit_code
        == 0
    )
    assert contacts_of(server) != before
    result = run(
        server,
        "rollback",
        str(journal),
        "--yes",
        "--no-progress",
        "--journal",
        str(tmp_path / "undo.jsonl"),
        "--results",
        str(tmp_path / "u.csv"),
    )
    assert result.exit_code == 0, result.output
    assert contacts_of(server) == before
    assert read_journal(tmp_path / "undo.jsonl")[0]["kind"] == "rollback"
    # Its plan names the sites as plan and apply do, not by their ids alone.
    assert "101 Harbor Dental (10-4471)" in result.output, result.output


def test_rollback_leaves_contacts_changed_since_unless_forced(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    journal = tmp_path / "j.jsonl"
    run(
        server,
        "apply",
        ROSTER,
        "--yes",
        "--journal",
        str(journal),
        "--results",
        str(tmp_path / "r.csv"),
    )
    server.store.db.execute(
        "UPDATE contacts SET first_name='Kwabena' WHERE external_contact_id='HD-003'"
    )
    result = run(server, "rollback", str(journal), "--yes", "--results", str(tmp_path / "u.csv"))
    assert result.exit_code == 1
    assert "changed in CHeKT since the apply (first_name)" in result.output
    kept = server.store.db.execute(
        "SELECT first_name FROM contacts WHERE external_contact_id='HD-003'"
    ).fetchall()
    assert [tuple(k) for k in kept] == [("Kwabena",)]
    forced = run(
        server, "rollback", str(journal), "--yes", "--force", "--results", str(tmp_path / "f.csv")
    )
    assert forced.exit_code == 0, forced.output
    assert (
        server.store.db.execute(
            "SELECT COUNT(*) FROM contacts WHERE external_contact_id='HD-003'"
        ).fetchone()[0]
        == 0
    )


def test_rollback_compares_values_as_a_plan_does(start_sandbox, tmp_path) -> None:
    """Issue 14, one diff engine: a phone CHeKT now holds in another format has not changed since
    the apply, so its create is undone (not a conflict)."""
    server = seeded(start_sandbox)
    before = contacts_of(server)
    journal = tmp_path / "j.jsonl"
    args = ["--yes", "--journal", str(journal), "--results", str(tmp_path / "r.csv")]
    assert run(server, "apply", ROSTER, "--prune", *args).exit_code == 0
    server.store.db.execute(
        "UPDATE contacts SET phone_number='(202) 867-5309' WHERE external_contact_id='HD-003'"
    )
    result = run(server, "rollback", str(journal), "--yes", "--results", str(tmp_path / "u.csv"))
    assert result.exit_code == 0, result.output
    assert "changed in CHeKT since the apply" not in result.output
    assert contacts_of(server) == before


def test_a_stale_saved_plan_is_refused_for_its_stale_sites_only(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    assert run(server, "plan", ROSTER, "-o", str(plan), "-q").exit_code == 0
    server.store.create_contact(
        101,
        {
            "external_contact_id": "HD-003",
            "first_name": "Kwame",
            "last_name": "Mensah",
            "phone_number": "+12028675309",
        },
    )
    result = run(
        server, "apply", str(plan), "--yes", "--no-progress", "--results", str(tmp_path / "r.csv")
    )
    assert result.exit_code == 1, result.output
    assert "1 site changed since the plan was made, refused: 101" in result.output
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert "101" not in set(table["site_id"]) and len(table) > 40
    assert duplicates(server) == [(102, "NW-001", 2)]


def test_refresh_rebases_a_stale_site_without_duplicating(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    run(server, "plan", ROSTER, "-o", str(plan), "-q")
    server.store.create_contact(
        101, {"external_contact_id": "HD-003", "first_name": "Kwame", "last_name": "Mensah"}
    )
    result = run(
        server, "apply", str(plan), "--yes", "--refresh", "--results", str(tmp_path / "r.csv")
    )
    assert result.exit_code == 0, result.output
    assert "re-based on their current contacts: 101" in result.output
    assert duplicates(server) == [(102, "NW-001", 2)]
    phone = server.store.db.execute(
        "SELECT phone_number FROM contacts WHERE external_contact_id='HD-003'"
    ).fetchone()[0]
    assert phone == "+12028675309"  # the create became an update of what differed
    assert run(server, "plan", ROSTER, "--detailed-exitcode", "-q").exit_code == 0


def test_refresh_compares_values_as_a_fresh_plan_does(start_sandbox, tmp_path) -> None:
    """Issue 14, bug 2: the contact the plan would create appears meanwhile with the same phone
    number written another way; re-basing finds nothing to change, as a fresh plan does."""
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    run(server, "plan", ROSTER, "-o", str(plan), "-q")
    server.store.create_contact(
        101,
        {
            "external_contact_id": "HD-003",
            "first_name": "Kwame",
            "last_name": "Mensah",
            "phone_number": "(202) 867-5309",
        },
    )
    results = tmp_path / "r.csv"
    result = run(server, "apply", str(plan), "--yes", "--refresh", "--results", str(results))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(results, dtype=str, keep_default_na=False)
    assert "HD-003" not in set(table["external_contact_id"])
    phone = server.store.db.execute(
        "SELECT phone_number FROM contacts WHERE external_contact_id='HD-003'"
    ).fetchone()[0]
    assert phone == "(202) 867-5309"


def add_over_the_api(server, site: int, external_id: str) -> int:
    """A contact added to a site over the API, as another tool would: its contact_id."""
    response = httpx.post(
        f"{server.url}/partner/v1/dealers/12345/sites/{site}/contacts",
        json={"external_contact_id": external_id, "first_name": "Lee", "last_name": "Late"},
        headers={"Authorization": f"Bearer {get_token(server.url)}"},
    )
    response.raise_for_status()
    return int(response.json()["contact_id"])


def pruned_by_a_fresh_plan(server, tmp_path) -> set[int]:
    fresh = tmp_path / "fresh.json"
    fresh.unlink(missing_ok=True)
    run(server, "plan", ROSTER, "--prune", "-o", str(fresh), "-q", "--force")
    sites = json.loads(fresh.read_text())["sites"]
    return {c["contact_id"] for s in sites for c in s["changes"] if c["reason"] == "prune"}


def test_refresh_prunes_a_contact_added_since_the_plan(start_sandbox, tmp_path) -> None:
    """QA6: a --prune plan re-based with --refresh deletes a contact added to a site after the
    plan (no row names it), as a fresh plan would, on a site the plan changes and on one it
    left alone; a portal contact (no external id) stays."""
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    assert run(server, "plan", ROSTER, "--prune", "-o", str(plan), "-q").exit_code == 0
    late = add_over_the_api(server, 101, "LATE-1")
    server.store.create_contact(101, {"first_name": "Portal", "last_name": "Only"})  # no id
    assert late in pruned_by_a_fresh_plan(server, tmp_path)
    args = ["--yes", "--refresh", "--no-progress", "--results", str(tmp_path / "r.csv")]
    result = run(server, "apply", str(plan), *args)
    assert result.exit_code == 0, result.output
    assert run(server, "plan", ROSTER, "--prune", "--detailed-exitcode", "-q").exit_code == 0
    # A plan with nothing to do on site 103; a contact added there is pruned too.
    plan = tmp_path / "plan2.json"
    assert run(server, "plan", ROSTER, "--prune", "-o", str(plan), "-q").exit_code == 0
    assert not any(site["changes"] for site in json.loads(plan.read_text())["sites"])
    later = add_over_the_api(server, 103, "LATE-2")
    assert pruned_by_a_fresh_plan(server, tmp_path) == {later}
    args[-1] = str(tmp_path / "r2.csv")
    result = run(server, "apply", str(plan), *args)
    assert result.exit_code == 0, result.output
    assert run(server, "plan", ROSTER, "--prune", "--detailed-exitcode", "-q").exit_code == 0
    ids = {row[0] for row in server.store.db.execute("SELECT contact_id FROM contacts")}
    assert late not in ids and later not in ids
    portal = "SELECT COUNT(*) FROM contacts WHERE first_name='Portal'"
    assert server.store.db.execute(portal).fetchone()[0] == 1


def test_refresh_of_an_old_prune_plan_says_to_make_a_new_one(start_sandbox, tmp_path) -> None:
    """A --prune plan saved before plans recorded the contacts they saw: --refresh cannot prune
    what was added since, and says so in one line (exit 2); without --refresh it applies."""
    from bulk_contacts.plan import checksum_of

    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    run(server, "plan", ROSTER, "--prune", "-o", str(plan), "-q")
    body = json.loads(plan.read_text())
    for site in body["sites"]:
        del site["seen"], site["names"]
    del body["checksum"]
    body["checksum"] = checksum_of(body)
    plan.write_text(json.dumps(body))
    server.store.create_contact(
        101, {"external_contact_id": "LATE-1", "first_name": "Lee", "last_name": "Late"}
    )
    result = run(server, "apply", str(plan), "--yes", "--refresh")
    assert result.exit_code == 2, result.output
    assert "older bulk-contacts" in result.output and "make a new plan" in result.output
    assert "Traceback" not in result.output


def test_an_edited_plan_is_refused(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    run(server, "plan", ROSTER, "-o", str(plan), "-q")
    body = json.loads(plan.read_text())
    body["sites"][0]["changes"][0]["after"]["first_name"] = "Mallory"
    plan.write_text(json.dumps(body))
    result = run(server, "apply", str(plan), "--yes")
    assert result.exit_code == 2 and "edited after it was made" in result.output


def test_the_guards_hold_at_apply_time(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    result = run(
        server, "apply", str(SAMPLES / "roster.csv"), "--prune", "--max-deletes", "1", "--yes"
    )
    assert result.exit_code == 1 and "REFUSED" in result.output
    assert run(server, "plan", ROSTER, "--detailed-exitcode", "-q").exit_code == 3


# a real process, killed and interrupted


def big_roster(path: Path, count: int) -> Path:
    lines = ["Account #,External ID,First Name,Last Name,Phone"]
    lines += [
        f"10-44{71 + n % 12},K-{n:04d},Kim,Number {n},+1 202 555 {n % 10000:04d}"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_apply(server, roster: Path, tmp_path: Path) -> subprocess.Popen:
    return warm.WarmPopen(
        [
            sys.executable,
            "-m",
            "bulk_contacts",
            "apply",
            str(roster),
            "--yes",
            "--no-progress",
            "--concurrency",
            "4",
            "--results",
            str(tmp_path / "r.csv"),
            "--journal",
            str(tmp_path / "j.jsonl"),
        ],
        env={**os.environ, **environment(server)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_mid_apply_then_run_again_converges_without_duplicates(
    start_sandbox, tmp_path
) -> None:
    server = seeded(start_sandbox)
    hold = server.hold_writes(after=20)  # 20 writes made, then the run is stopped there
    roster = big_roster(tmp_path / "big.csv", 150)
    process = start_apply(server, roster, tmp_path)
    try:
        hold.wait_held(4)  # each of the 4 writers waits for a write the sandbox holds
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
        process.communicate(timeout=10)
    assert made_by_roster(server) == 20
    records = read_journal(tmp_path / "j.jsonl")  # complete records only, nothing lost
    assert sum(r["type"] == "outcome" for r in records) == 20
    assert sum(r["type"] == "intent" for r in records) == 24

    # The 4 writes the killed run left in flight land while the run again writes: once its
    # first write arrives (it planned without them), all go on together.
    def release_once_the_run_again_writes() -> None:
        hold.wait_held(5)
        hold.release()

    releasing = threading.Thread(target=release_once_the_run_again_writes, daemon=True)
    releasing.start()
    again = run(
        server,
        "apply",
        str(roster),
        "--yes",
        "--results",
        str(tmp_path / "r2.csv"),
        "--journal",
        str(tmp_path / "j2.jsonl"),
    )
    releasing.join(timeout=10)
    assert again.exit_code == 0, again.output
    server.wait_idle()
    assert made_by_roster(server) == 150
    assert duplicates(server) == [(102, "NW-001", 2)]
    assert run(server, "plan", str(roster), "--detailed-exitcode", "-q").exit_code == 0


def made_by_roster(server) -> int:
    return server.store.db.execute(
        "SELECT COUNT(*) FROM contacts WHERE external_contact_id LIKE 'K-%'"
    ).fetchone()[0]


def test_ctrl_c_finishes_what_is_in_flight_and_writes_everything(start_sandbox, tmp_path) -> None:
    from tests.test_writes import read_until

    server = seeded(start_sandbox)
    hold = server.hold_writes(after=10)  # 10 writes made, then Ctrl-C with 4 in flight
    roster = big_roster(tmp_path / "big.csv", 150)
    process = start_apply(server, roster, tmp_path)
    try:
        hold.wait_held(4)
        process.send_signal(signal.SIGINT)
        stopping = read_until(process.stderr, "stopping: finishing the changes in flight")
        hold.release()  # the writes in flight are answered after the Ctrl-C
        _, stderr = process.communicate(timeout=30)
        stderr = stopping + stderr
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, stderr
    assert "interrupted: " in stderr and "run the same command again to finish" in stderr
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert len(table) == 150  # every change has its line
    assert set(table["status"]) == {"ok", "skipped"}
    assert (table["status"] == "ok").sum() == made_by_roster(server) == 14  # with those in flight
    records = read_journal(tmp_path / "j.jsonl")
    intents = {r["n"] for r in records if r["type"] == "intent"}
    outcomes = {r["n"] for r in records if r["type"] == "outcome" and r["status"] == "ok"}
    assert intents == outcomes  # no write was left without its outcome


def run_on_a_terminal(
    server,
    args: list[str],
    answer: bytes | None,
    seconds: float = 60,
    at_prompt: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its stdin and stdout; at its prompt, call
    `at_prompt()` if given (what another operator does while this one reads the plan), then
    type `answer`, or press Ctrl-C (the terminal's SIGINT) when it is None."""
    import pty
    import select

    leader, follower = pty.openpty()
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", *args],
        env={**os.environ, **environment(server)},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen, answered = b"", False
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break  # the process closed the terminal
                if not chunk:
                    break
                seen += chunk
                if not answered and b"[y/N]" in seen:
                    if at_prompt is not None:
                        at_prompt()
                    if answer is None:
                        process.send_signal(signal.SIGINT)
                    else:
                        os.write(leader, answer)
                    answered = True
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), seen.decode(errors="replace")
    finally:
        process.kill()
        process.wait()
        os.close(leader)


def test_on_a_terminal_apply_asks_first(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox)
    before = contacts_of(server)
    args = ["apply", ROSTER, "--no-progress", "--results", str(tmp_path / "r.csv")]
    code, output = run_on_a_terminal(server, args, b"n\n")
    assert code == 0 and "Nothing was changed." in output, output
    assert contacts_of(server) == before
    code, output = run_on_a_terminal(server, args, b"y\n")
    assert code == 0 and "apply: 49 done" in output, output
    assert contacts_of(server) != before
