"""What a hostile QA pass found after issue 12 (and issue 16's rollback items): a rollback never
goes to another server, never undoes a later apply, never interleaves with a run in progress;
create keys that depend on the contact's identity only; refreshed plans keep their prunes;
Ctrl-C anywhere is one line and 130; unmarked replays; no empty run folders; rollback of a run
folder or of several journals; names in the results.

Real parts: sandboxes on 127.0.0.1, the command in a subprocess where processes or signals
matter, latency from the sandbox's fault options instead of sleeps.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bulk_contacts import retries
from bulk_contacts.journal import read_journal
from tests.test_writes import (
    JOURNAL_HOLDER,
    ROSTER,
    SAMPLES,
    command,
    contacts_of,
    count,
    duplicates,
    finish,
    run,
    seeded,
)

from . import warm


@pytest.fixture(autouse=True)
def no_backoff_sleeps():
    retries.set_testing(True)
    yield
    retries.set_testing(False)


def hold_journal_in(tmp_path: Path, name: str) -> subprocess.Popen:
    """Another process holding a journal's lock, as a running apply does."""
    holder = warm.WarmPopen(
        [sys.executable, "-c", JOURNAL_HOLDER, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


# `created_at` for replays too young to tell by their age whenever they are sent: ahead of the
# server's `Date` (as a stamp of the same second is, less the margin for rounding).
YOUNGER_THAN_ANY_REQUEST = "2999-01-01T00:00:00.000Z"


def restamp_stored_creates(server, created_at: str) -> None:
    """Give the answers the sandbox stored for creates another `created_at`: as old as they
    are after a few seconds in real use, or as young as in the same second."""
    rows = server.store.db.execute("SELECT key, response FROM idempotency").fetchall()
    for key, stored in rows:
        body = json.loads(stored) if stored else None
        if isinstance(body, dict) and body.get("created_at"):
            body["created_at"] = created_at
            server.store.db.execute(
                "UPDATE idempotency SET response=? WHERE key=?", (json.dumps(body), key)
            )


def run_folders(tmp_path: Path) -> list[Path]:
    runs = tmp_path / "bulk-contacts-runs"
    return sorted(runs.iterdir()) if runs.exists() else []


# 1. rollback never goes to another server


def test_rollback_of_a_journal_of_another_api_url_is_refused(start_sandbox, tmp_path) -> None:
    first = seeded(start_sandbox, tmp_path)
    other = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    applied = run(first, "apply", ROSTER, "--yes", "--journal", "j.jsonl")
    assert applied.exit_code == 0, applied.output
    on_first, on_other = contacts_of(first), contacts_of(other)
    refused = run(other, "rollback", "j.jsonl", "--yes", "--journal", "u.jsonl")
    assert refused.exit_code == 2, refused.output
    line = refused.output.strip()
    assert f"records runs against {first.url}, not {other.url}" in line
    assert f"--api-url {first.url}" in line and "nothing was rolled back" in line
    also = run(other, "rollback", "j.jsonl", "--yes", "--api-url", other.url)
    assert also.exit_code == 2, also.output
    assert contacts_of(first) == on_first and contacts_of(other) == on_other
    there = run(other, "rollback", "j.jsonl", "--yes", "--api-url", first.url)
    assert there.exit_code == 0, there.output
    assert contacts_of(first) != on_first and contacts_of(other) == on_other


# 2. a second rollback never undoes a later apply


def test_a_second_rollback_leaves_a_later_apply_alone(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    assert run(server, "apply", ROSTER, "--yes", "--journal", "a.jsonl").exit_code == 0
    assert run(server, "rollback", "a.jsonl", "--yes", "--journal", "u1.jsonl").exit_code == 0
    assert contacts_of(server) == before
    assert run(server, "apply", ROSTER, "--yes", "--journal", "b.jsonl").exit_code == 0
    made_by_b = contacts_of(server)
    again = run(server, "rollback", "a.jsonl", "--yes", "--journal", "u2.jsonl")
    assert again.exit_code == 0, again.output
    assert "already rolled back" in again.output
    assert contacts_of(server) == made_by_b  # B's contacts stay
    assert not (tmp_path / "u2.jsonl").exists()
    undone = [r for r in read_journal(tmp_path / "a.jsonl") if r["type"] == "undone"]
    assert len(undone) == 1 and len(undone[0]["steps"]) == 49
    assert run(server, "rollback", "b.jsonl", "--yes", "--journal", "u3.jsonl").exit_code == 0
    assert contacts_of(server) == before


def test_a_rollback_with_conflicts_records_only_the_sites_it_settled(
    start_sandbox, tmp_path
) -> None:
    server = seeded(start_sandbox, tmp_path)
    assert run(server, "apply", ROSTER, "--yes", "--journal", "a.jsonl").exit_code == 0
    server.store.db.execute(
        "UPDATE contacts SET first_name='Kwabena' WHERE external_contact_id='HD-003'"
    )
    first = run(server, "rollback", "a.jsonl", "--yes", "--journal", "u1.jsonl")
    assert first.exit_code == 1, first.output  # a conflict on site 101
    assert count(server, "external_contact_id='HD-003'") == 1
    records = read_journal(tmp_path / "a.jsonl")
    marked = {tuple(s) for r in records if r["type"] == "undone" for s in r["steps"]}
    intents = {(r["run"], r["n"]): r for r in records if r["type"] == "intent"}
    assert {intents[k]["site_id"] for k in marked} == {r["site_id"] for r in intents.values()} - {
        101
    }
    forced = run(server, "rollback", "a.jsonl", "--yes", "--force", "--journal", "u2.jsonl")
    assert forced.exit_code == 0, forced.output
    assert count(server, "external_contact_id='HD-003'") == 0  # site 101 undone at last


# 5. never interleaved with a run in progress


def test_rollback_of_a_run_in_progress_is_refused_or_waits(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    assert run(server, "apply", ROSTER, "--yes", "--journal", "j.jsonl").exit_code == 0
    applied = contacts_of(server)
    holder = hold_journal_in(tmp_path, "j.jsonl")
    try:
        refused = run(server, "rollback", "j.jsonl", "--yes", "--journal", "u.jsonl")
        assert refused.exit_code == 1, refused.output
        assert f"j.jsonl belongs to a run still in progress (pid {holder.pid}" in refused.output
        assert "--wait" in refused.output and "Traceback" not in refused.output
        assert contacts_of(server) == applied
        waiting = command(
            server, "rollback", "j.jsonl", "--yes", "--wait", "--no-progress", cwd=tmp_path
        )
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        assert "is being written by another run" in line and "waiting" in line, line
        assert contacts_of(server) == applied  # it waits: nothing undone yet
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        code, output = finish(waiting)
    finally:
        holder.kill()
        finish(holder)
    assert code == 0, output
    assert contacts_of(server) != applied and duplicates(server) == [(102, "NW-001", 2)]


# 8. no empty run folder


def test_a_run_refused_before_any_write_leaves_no_run_folder(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    holder = hold_journal_in(tmp_path, "j.jsonl")
    try:
        refused = run(server, "apply", ROSTER, "--yes", "--journal", "j.jsonl")
    finally:
        holder.kill()
        finish(holder)
    assert refused.exit_code == 2, refused.output
    assert run_folders(tmp_path) == []


def test_a_run_whose_journal_fails_at_once_leaves_no_run_folder(start_sandbox, tmp_path) -> None:
    from tests.test_writes import failing_appends

    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    with pytest.MonkeyPatch.context() as patch:
        failing_appends(patch, after=0)
        result = run(server, "apply", ROSTER, "--yes")
    assert result.exit_code == 1, result.output
    assert "nothing was sent" in result.output
    assert run_folders(tmp_path) == [] and contacts_of(server) == before


# 9. rollback of a run folder, or several journals; names in the results


def test_rollback_of_a_run_folder_and_of_several_journals(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    lines = (SAMPLES / "roster.csv").read_text(encoding="utf-8-sig").splitlines()
    half = tmp_path / "half.csv"
    half.write_text("\n".join(lines[:25]) + "\n")
    assert run(server, "apply", str(half), "--yes", "--journal", "j1.jsonl").exit_code == 0
    resumed = run(server, "apply", ROSTER, "--yes", "--prune", "--journal", "j2.jsonl")
    assert resumed.exit_code == 0, resumed.output
    undo = run(server, "rollback", "j2.jsonl", "j1.jsonl", "--yes", "--journal", "u.jsonl")
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before
    applied = run(server, "apply", ROSTER, "--yes", "--prune")
    assert applied.exit_code == 0, applied.output
    folder = tmp_path / re.search(r"results: (\S+)/results.csv", applied.output).group(1)
    table = pd.read_csv(folder / "results.csv", dtype=str, keep_default_na=False)
    created = table[table["external_contact_id"] == "HD-003"].iloc[0]
    assert (created["first_name"], created["last_name"]) == ("Kwame", "Mensah")
    assert list(table.columns[3:6]) == ["external_contact_id", "first_name", "last_name"]
    by_folder = run(server, "rollback", str(folder), "--yes", "--journal", "u2.jsonl")
    assert by_folder.exit_code == 0, by_folder.output
    assert contacts_of(server) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run(server, "rollback", str(empty), "--yes")
    assert missing.exit_code == 2 and "no journal.jsonl in it" in missing.output


# 3. a create's key names the contact, not its values


def plan_of(client, path: Path):
    from bulk_contacts.pipeline import plan_roster
    from bulk_contacts.reconcile import PlanOptions
    from bulk_contacts.roster import read_roster
    from bulk_contacts.schema import validate_roster

    return plan_roster(client, validate_roster(read_roster(path)), PlanOptions(dealer_id=12345))


def test_two_runs_creating_a_contact_with_other_values_make_it_once(
    start_sandbox, tmp_path
) -> None:
    """The race of two applies of rosters that differ in a phone, made deterministic: both plan
    before either writes, then each applies its plan."""
    from bulk_contacts.apply import RunFiles, apply_plan
    from bulk_contacts.client import ChektClient
    from bulk_contacts.settings import resolve_settings
    from tests.test_writes import big_roster, environment

    server = seeded(start_sandbox, tmp_path)
    first = big_roster(tmp_path / "first.csv", 30)
    second = tmp_path / "second.csv"
    second.write_text(first.read_text().replace("+1 202 555 00", "+1 303 555 00"))
    with ChektClient(resolve_settings(env=environment(server))) as client:
        plans = [plan_of(client, first), plan_of(client, second)]
        assert [len(p.creates) for p in plans] == [30, 30]
        reports = [
            apply_plan(client, plan, RunFiles.choose(tmp_path / f"r{n}.csv", None))
            for n, plan in enumerate(plans)
        ]
    assert count(server, "external_contact_id LIKE 'K-%'") == 30
    assert duplicates(server) == [(102, "NW-001", 2)]
    assert reports[0].clean and reports[0].exit_code == 0
    assert reports[1].exit_code == 1 and reports[1].unverified == 30
    assert {d.error_message for d in reports[1].differences} == {
        "not as intended after the run: phone_number not as sent"
    }
    phones = {r[0] for r in server.store.db.execute("SELECT phone_number FROM contacts")}
    assert not any(p and p.startswith("+1303") for p in phones)  # the first run's values stay


def test_the_dealer_lock_warning_says_what_it_does_not_guarantee(start_sandbox, tmp_path) -> None:
    from tests.test_writes import hold_dealer_lock

    server = seeded(start_sandbox, tmp_path)
    holder = hold_dealer_lock(tmp_path, server.url)
    try:
        result = run(server, "apply", ROSTER, "--yes", "--results", "r.csv")
    finally:
        holder.kill()
        finish(holder)
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if "another bulk-contacts" in line)
    assert "cannot make a contact twice" in warning
    assert "may overwrite or delete what the other writes" in warning
    assert "doubling a change" not in warning and warning.endswith("(--wait)")


# 7. replays a server does not mark


def test_unmarked_replays_are_caught_and_sent_again_without_waiting(
    start_sandbox, tmp_path, monkeypatch
) -> None:
    server = seeded(start_sandbox, tmp_path, mark_replays=False)
    before = contacts_of(server)
    assert run(server, "apply", ROSTER, "--yes", "--journal", "a.jsonl").exit_code == 0
    applied = contacts_of(server)
    assert run(server, "rollback", "a.jsonl", "--yes", "--journal", "u.jsonl").exit_code == 0
    assert contacts_of(server) == before
    restamp_stored_creates(server, "2020-01-01T00:00:00.000Z")  # a few seconds old: no sleep
    waits = record_waits(monkeypatch)
    again = run(server, "apply", ROSTER, "--yes", "--journal", "b.jsonl")
    assert again.exit_code == 0, again.output
    assert contacts_of(server) == applied  # the contacts really exist again
    assert not [w for w in waits if w >= 0.5], waits  # no wait for the replays to age


def record_waits(monkeypatch) -> list[float]:
    """The sleeps this process asks for from now on (`time.sleep`, and the retries' and the
    pacing's `retries.sleep`, even when `set_testing` skips them): a wait is seen as asked for,
    not as time that passed."""
    from bulk_contacts import retries

    waits: list[float] = []
    real_sleep, testable = time.sleep, retries.sleep

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    def retries_sleep(seconds: float) -> None:
        waits.append(seconds)
        testable(seconds)  # which may sleep: counted twice, the same wait

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(retries, "sleep", retries_sleep)
    return waits


@pytest.mark.parametrize("at_a_time", [None, 1])
def test_an_unmarked_replay_too_young_to_tell_is_caught_by_the_verification_and_sent_again(
    start_sandbox, tmp_path, monkeypatch, at_a_time
) -> None:
    """The verification reads the sites a batch at a time (`at_a_time` 1: a batch per site):
    each change sent again goes under its key's next generation all the same."""
    import bulk_contacts.apply as apply_module

    if at_a_time is not None:
        monkeypatch.setattr(apply_module, "VERIFIED_AT_A_TIME", at_a_time)
    server = seeded(start_sandbox, tmp_path, mark_replays=False)
    assert run(server, "apply", ROSTER, "--yes", "--journal", "a.jsonl").exit_code == 0
    applied = contacts_of(server)
    assert run(server, "rollback", "a.jsonl", "--yes", "--journal", "u.jsonl").exit_code == 0
    # Replays younger than the request's second cannot be told by their age. A stamp of the
    # current second was that only while the apply started within a second or so: on a loaded
    # machine the creates went out later and were told by their age (2 sent again, not 48).
    # A stamp ahead of the server's clock is never older than the request, however long the run.
    restamp_stored_creates(server, YOUNGER_THAN_ANY_REQUEST)
    again = run(server, "apply", ROSTER, "--yes", "--journal", "b.jsonl", "--results", "b.csv")
    assert again.exit_code == 0, again.output
    assert "apply: 49 done, 0 failed" in again.output and "every change holds" in again.output
    assert contacts_of(server) == applied  # really made, under the keys' next generation
    table = pd.read_csv(tmp_path / "b.csv", dtype=str, keep_default_na=False)
    resent = table[table["error_message"].str.startswith("sent again (key generation 1)")]
    assert len(resent) == 48 and set(table["status"]) == {"ok"}  # 46 creates, 2 updates
    undo = run(server, "rollback", "b.jsonl", "--yes", "--journal", "u2.jsonl")
    assert undo.exit_code == 0, undo.output  # the journal has the writes sent again too
    assert count(server, "external_contact_id LIKE 'HD-00%'") == 2


def test_a_concurrent_edit_is_reported_not_sent_again(start_sandbox, tmp_path, monkeypatch) -> None:
    """An update whose contact holds a third value (someone else's edit) is no replay: the
    verification reports it and nothing is sent again."""
    import bulk_contacts.apply as apply_module
    from bulk_contacts import verify

    server = seeded(start_sandbox, tmp_path)
    real = verify.verify_changes

    def edit_then_verify(client, done, progress=None, comparison=None):
        server.store.db.execute(
            "UPDATE contacts SET phone_number='+12025550999' WHERE external_contact_id='HD-002'"
        )
        return real(client, done, progress, comparison)

    monkeypatch.setattr(apply_module, "verify_changes", edit_then_verify)
    result = run(server, "apply", ROSTER, "--yes", "--results", "r.csv")
    assert result.exit_code == 1, result.output
    assert "unverified: site 101, update HD-002: not as intended after the run: phone_number" in (
        result.output
    )
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert not table["error_message"].str.startswith("sent again").any()


# 6. Ctrl-C anywhere: one line, no traceback, 130


def one_interrupted_line(out: str, err: str) -> str:
    assert "Traceback" not in out + err and "Exception in thread" not in err, out + err
    lines = [line for line in (out + err).splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, out + err
    return lines[0]


def interrupt_at(process: subprocess.Popen, hold) -> tuple[int, str, str]:
    """A real SIGINT once a request of `process` waits at the sandbox's `hold`; the held
    requests go on once the process has said it is stopping (on stderr). The exit code, stdout
    and stderr."""
    from tests.test_writes import read_until

    try:
        hold.wait_held(1)
        process.send_signal(signal.SIGINT)
        stopping = read_until(process.stderr, "stopping")
        hold.release()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    return process.returncode, out, stopping + err


@pytest.mark.parametrize("name", ["plan", "export"])
def test_ctrl_c_while_reading_is_one_line_and_130(start_sandbox, tmp_path, name) -> None:
    server = seeded(start_sandbox, tmp_path)
    hold = server.hold_reads(after=2)  # the command's first reads, then Ctrl-C
    args = ["plan", ROSTER] if name == "plan" else ["export", "-o", "e.xlsx"]
    process = command(server, *args, "--no-progress", "--concurrency", "1", cwd=tmp_path)
    from tests.test_writes import release_until_it_ends

    try:
        hold.wait_held(1)
        process.send_signal(signal.SIGINT)
        release_until_it_ends(process, hold)  # the reads in flight go on, one at a time
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, out + err
    line = one_interrupted_line(out, err)
    assert "nothing was written" in line
    assert not (tmp_path / "e.xlsx").exists()


def test_ctrl_c_during_apply_says_what_was_done_and_how_to_resume(start_sandbox, tmp_path) -> None:
    from tests.test_writes import big_roster

    server = seeded(start_sandbox, tmp_path)
    hold = server.hold_writes(after=3)  # 3 writes made, then Ctrl-C with the next in flight
    roster = big_roster(tmp_path / "big.csv", 40)
    journal = tmp_path / "j.jsonl"
    args = ["apply", str(roster), "--yes", "--no-progress", "--concurrency", "2"]
    process = command(server, *args, "--journal", str(journal), cwd=tmp_path)
    code, out, err = interrupt_at(process, hold)
    assert code == 130, out + err
    line = one_interrupted_line(out, err)
    made = count(server, "external_contact_id LIKE 'K-%'")
    assert 4 <= made <= 5  # and the writes in flight (one or two) at the Ctrl-C
    assert f"{made} changes made" in line and "not started" in line
    assert "run the same command again to finish" in line
    assert f"bulk-contacts rollback {journal}" in line
    resumed = run(server, *args, "--journal", str(journal))  # in this process: no signal here
    assert resumed.exit_code == 0, resumed.output
    assert count(server, "external_contact_id LIKE 'K-%'") == 40


def test_ctrl_c_twice_during_apply_stops_at_once_without_tracebacks(
    start_sandbox, tmp_path
) -> None:
    from tests.test_writes import big_roster, read_until

    server = seeded(start_sandbox, tmp_path)
    hold = server.hold_writes(after=3)  # 3 writes made, then Ctrl-C twice with 8 in flight
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 60)
    journal = tmp_path / "j.jsonl"
    args = ["apply", str(roster), "--yes", "--no-progress", "--concurrency", "8"]
    # --timeout: the rollback waits that long after a write left unanswered (here 1 s, not 30)
    process = command(server, *args, "--timeout", "1", "--journal", str(journal), cwd=tmp_path)
    try:
        hold.wait_held(8)
        process.send_signal(signal.SIGINT)
        stopping = read_until(process.stderr, "stopping")  # the first one was taken
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, out + stopping + err
    line = one_interrupted_line(out, stopping + err)
    assert "stopped at once" in line and f"bulk-contacts rollback {journal}" in line
    hold.release()  # the 8 writes left in flight land after the process ended
    server.wait_idle()
    assert count(server, "external_contact_id LIKE 'K-%'") == 11
    undo = run(server, "rollback", str(journal), "--yes", "--journal", "u.jsonl")
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before


def test_ctrl_c_during_rollback_says_how_to_finish(start_sandbox, tmp_path) -> None:
    from tests.test_writes import big_roster

    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 40)
    assert run(server, "apply", str(roster), "--yes", "--journal", "j.jsonl").exit_code == 0
    hold = server.hold_writes(after=3)  # the rollback's 3 first writes, then Ctrl-C
    undo_journal = tmp_path / "u.jsonl"
    args = ["rollback", "j.jsonl", "--yes", "--no-progress", "--concurrency", "2"]
    process = command(server, *args, "--journal", str(undo_journal), cwd=tmp_path)
    code, out, err = interrupt_at(process, hold)
    assert code == 130, out + err
    line = one_interrupted_line(out, err)
    assert "changes made" in line and "run the same command again to finish" in line
    assert 35 <= count(server, "external_contact_id LIKE 'K-%'") <= 36  # with those in flight
    again = run(server, "rollback", "j.jsonl", "--yes", "--journal", "u2.jsonl")
    assert again.exit_code == 0, again.output
    assert contacts_of(server) == before
