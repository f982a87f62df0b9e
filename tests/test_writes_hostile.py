"""A hostile tester's findings about write safety (QA of the write path, as a user runs it):
a --log-file whose disk fills mid-run; a rollback run at once after a kill -9, with the killed
run's writes still on their way.

Real parts: a sandbox on 127.0.0.1, the command in a subprocess where the process matters (a
file size limit, a kill), latency from the sandbox's fault options instead of sleeps.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys

import httpx
import pytest

from bulk_contacts.journal import JOURNAL_FORMAT, read_journal
from bulk_contacts.sandbox import Faults

from . import warm
from .conftest import get_token
from .test_apply import run_on_a_terminal
from .test_writes import (
    big_roster,
    command,
    contacts_of,
    count,
    environment,
    finish,
    run,
    seeded,
)


def test_a_log_file_that_fills_up_mid_run_never_stops_or_hides_a_write(
    start_sandbox, tmp_path
) -> None:
    """QA finding: with --log-file on a disk that filled up mid-run, each worker thread died
    with a traceback at its next log line, a write already made had no outcome in the journal
    nor in the results, the other changes were never tried, and the run printed no summary.
    The log is for diagnosis: a failure to write it is one warning, and the run goes on."""
    server = seeded(start_sandbox, tmp_path, faults=Faults(latency_ms=5, seed=3))
    roster = big_roster(tmp_path / "big.csv", 60)
    limit = 4_000_000
    log = tmp_path / "run.log"
    log.write_bytes(b"#\n" * ((limit - 30_000) // 2))  # room for the plan's lines, not the run's
    journal = tmp_path / "j.jsonl"
    done = warm.run(
        [
            *(sys.executable, "-m", "bulk_contacts", "apply", str(roster), "--yes"),
            *("--no-progress", "--concurrency", "4", "--log-file", str(log)),
            *("--journal", str(journal), "--results", str(tmp_path / "r.csv")),
        ],
        env={**os.environ, **environment(server)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        rlimits={resource.RLIMIT_FSIZE: (limit, limit)},
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Exception in thread" not in output, output
    assert done.returncode == 0, output
    assert "apply: 60 done, 0 failed" in output, output
    assert f"warning: --log-file {log} cannot be written" in output, output
    assert "File too large" in output, output
    assert count(server, "external_contact_id LIKE 'K-%'") == 60
    records = read_journal(journal)
    intents = {r["n"] for r in records if r["type"] == "intent"}
    outcomes = {r["n"] for r in records if r["type"] == "outcome" and r["status"] == "ok"}
    assert len(intents) == 60 and outcomes == intents
    assert log.stat().st_size <= limit
    lines = log.read_bytes().splitlines()
    assert lines[-1] == b"#" or json.loads(lines[-1])  # no line cut short by the error


def test_a_rollback_right_after_a_kill_waits_for_the_writes_still_in_flight(
    start_sandbox, tmp_path
) -> None:
    """QA finding: `rollback` run at once after a kill -9 of an apply whose writes were still
    on their way (a slow server) read the sites before those writes landed, said "Nothing to
    roll back", and recorded them as undone; the writes then landed, and a second rollback
    said "already rolled back": eight contacts nobody could undo. The rollback now waits until
    a write the stopped run sent can no longer land (its --timeout after it was sent)."""
    server = seeded(start_sandbox, tmp_path)
    hold = server.hold_writes()  # the 8 writes wait at the sandbox's door
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 16)
    journal = tmp_path / "j.jsonl"
    process = command(
        server,
        *("apply", str(roster), "--yes", "--no-progress", "--concurrency", "8"),
        *("--timeout", "3", "--journal", str(journal), "--results", str(tmp_path / "r.csv")),
        cwd=tmp_path,
    )
    try:
        hold.wait_held(8)  # 8 writes sent, none done
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        finish(process)
    assert count(server, "external_contact_id LIKE 'K-%'") == 0  # none has landed yet
    # They land a second from now: within the run's --timeout of 3 s after they were sent, as
    # a slow server's would; a rollback reading the sites at once would not see them.
    hold.release(delay=1)
    undo = run(
        server, "rollback", str(journal), "--yes", "--journal", "u.jsonl", "--results", "u.csv"
    )
    assert undo.exit_code == 0, undo.output
    server.wait_idle()
    assert contacts_of(server) == before, undo.output
    assert re.search(r"waiting [1-4] s: 8 writes of \S+ had no answer", undo.output), undo.output
    # A retry the killed run was sending could land later still: the rollback says until when,
    # and does not record those writes as undone, so a rollback after that looks again.
    assert re.search(
        r"note: the stopped run may have been sending 8 writes again .* until "
        r"\d\d:\d\d:\d\d UTC: roll \S+ back again after that",
        undo.output,
    )
    undone = [r for r in read_journal(journal) if r["type"] == "undone"]
    assert all(not r["steps"] for r in undone)
    again = run(server, "rollback", str(journal), "--yes", "--journal", "u2.jsonl")
    assert again.exit_code == 0 and "Nothing to roll back" in again.output, again.output
    assert contacts_of(server) == before


def test_serve_refuses_a_rollback_while_a_stopped_runs_write_may_still_land(tmp_path) -> None:
    """The same in `serve` (which cannot hold a page for half a minute): its rollback of a run
    stopped with a write unanswered is refused until that write can no longer land."""
    import time

    from bulk_contacts.errors import InputError
    from bulk_contacts.web import library

    journal = tmp_path / "journal.jsonl"
    now = time.time()
    records = [
        {"type": "run", "format": JOURNAL_FORMAT, "run_id": "r1", "request_timeout": 30.0},
        {
            **{"type": "intent", "run": "r1", "n": 1, "action": "create", "dealer_id": 12345},
            **{"site_id": 101, "external_contact_id": "K-1", "before": {}, "after": {}},
        },
    ]
    journal.write_text("".join(json.dumps({"time": now, **r}) + "\n" for r in records))
    with pytest.raises(InputError, match=r"1 write of this run had no answer .* 3\d s more"):
        library.rollback_plan(None, journal, False)  # type: ignore[arg-type]  # never reached


def test_a_site_changed_while_the_plan_was_shown_is_not_written(start_sandbox, tmp_path) -> None:
    """QA finding: `apply ROSTER` read the sites, showed the plan and asked; while the operator
    read it, a colleague added in the portal (API) a contact the plan creates; the answer y
    then created it a second time (two contacts with one external id on the site: the alarm
    list doubled, reported only afterwards as unverified). A site that changed while the
    plan was shown is now refused, as a saved plan's stale site is; the others are applied."""
    server = seeded(start_sandbox, tmp_path)
    roster = big_roster(tmp_path / "big.csv", 24)  # K-0000 and K-0012 on site 101 (10-4471)

    def colleague() -> None:
        made = httpx.post(
            f"{server.url}/partner/v1/dealers/12345/sites/101/contacts",
            headers={"Authorization": f"Bearer {get_token(server.url)}"},
            json={"external_contact_id": "K-0000", "first_name": "Kim", "last_name": "Number 0"},
        )
        assert made.status_code == 201

    args = ["apply", str(roster), "--no-progress", "--results", str(tmp_path / "r.csv")]
    code, output = run_on_a_terminal(server, args, b"y\n", 90, at_prompt=colleague)
    assert count(server, "external_contact_id = 'K-0000'") == 1, output  # never doubled
    assert count(server, "site_id = 101 AND external_contact_id = 'K-0012'") == 0, output
    assert count(server, "external_contact_id LIKE 'K-%'") == 1 + 22, output  # the others made
    assert code == 1, output
    assert "1 site changed in CHeKT while the plan was shown" in output, output
    assert "apply: 22 done, 0 failed, 0 skipped, 2 not done (site refused)" in output, output
