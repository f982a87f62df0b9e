"""Two applies of one roster at once (QA F7): the server's idempotency keys keep them from making
a contact twice, and a create the other run already made (its answer replayed to this run) is
journaled as such (`by_another_run`), counted apart in the summary, and left alone by this run's
rollback: it is not this run's work. Two real processes against one sandbox over 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bulk_contacts.journal import read_journal

from . import warm
from .test_apply import ROSTER, environment, run, seeded
from .test_writes import finish, hold_dealer_lock

COUNT = 40


def roster(path: Path) -> Path:
    lines = ["Account #,External ID,First Name,Last Name,Phone"]
    lines += [f"10-4471,K-{n:03d},Kim,Number {n},+1 202 555 {1000 + n}" for n in range(COUNT)]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(server, path: Path, folder: Path, name: str) -> subprocess.Popen:
    return warm.WarmPopen(
        [
            sys.executable,
            "-m",
            "bulk_contacts",
            "apply",
            str(path),
            "--yes",
            "--no-progress",
            "--concurrency",
            "4",
            "--results",
            str(folder / f"{name}.csv"),
            "--journal",
            str(folder / f"{name}.jsonl"),
        ],
        env={**os.environ, **environment(server)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def own_creates(journal: Path) -> tuple[set[int], set[int]]:
    """The contact ids a journal says its run created, and those it found made by another."""
    outcomes = [
        r
        for r in read_journal(journal)
        if r["type"] == "outcome" and r["action"] == "create" and r["status"] == "ok"
    ]
    mine = {r["contact_id"] for r in outcomes if not r.get("by_another_run")}
    others = {r["contact_id"] for r in outcomes if r.get("by_another_run")}
    return mine, others


def k_contacts(server) -> set[int]:
    rows = server.store.db.execute(
        "SELECT contact_id FROM contacts WHERE external_contact_id LIKE 'K-%'"
    )
    return {row[0] for row in rows}


def test_two_applies_at_once_each_journal_and_rollback_only_their_own_creates(
    start_sandbox, tmp_path
) -> None:
    server = seeded(start_sandbox)
    path = roster(tmp_path / "k.csv")
    # Every write waits at the sandbox until both runs write (each journal announces one): the
    # second run plans before the first has made anything, however late a process starts, and
    # their creates overlap.
    from .test_writes import journal_count, poll

    hold = server.hold_writes()
    first, second = (start(server, path, tmp_path, name) for name in ("a", "b"))
    outputs = []
    try:
        poll(
            lambda: (
                all(journal_count(tmp_path / f"{n}.jsonl", "intent") for n in "ab")
                or first.poll() is not None
                or second.poll() is not None
            ),
            seconds=60,
            what="both runs' writes",
        )
        hold.release()
        for process in (first, second):
            outputs.append(process.communicate(timeout=120)[0])
    finally:
        for process in (first, second):
            process.kill()
    assert first.returncode == 0 and second.returncode == 0, outputs
    made = k_contacts(server)
    assert len(made) == COUNT  # no duplicates
    (a_mine, a_others), (b_mine, b_others) = (
        own_creates(tmp_path / "a.jsonl"),
        own_creates(tmp_path / "b.jsonl"),
    )
    assert not a_mine & b_mine and a_mine | b_mine == made, (a_mine, b_mine)
    assert a_others <= b_mine and b_others <= a_mine
    assert a_others or b_others, outputs  # the runs did overlap
    for output, others in zip(outputs, (a_others, b_others), strict=True):
        if others:
            assert f"{len(others)} already done by another run" in output, output
    undone = run(server, "rollback", str(tmp_path / "b.jsonl"), "--yes", "--no-verify")
    assert undone.exit_code == 0, undone.output
    assert k_contacts(server) == a_mine  # the other run's creates are still there


# The run lock is per dealer and API: a rehearsal in a sandbox neither warns about nor waits for a
# run for the same dealer in production, nor a second sandbox on another port; two runs against
# one API still know about each other.


def test_a_run_against_another_api_for_the_same_dealer_is_not_held_up(
    start_sandbox, tmp_path
) -> None:
    production, rehearsal = seeded(start_sandbox), seeded(start_sandbox)
    assert production.url != rehearsal.url
    holder = hold_dealer_lock(tmp_path, production.url + "/")  # the same API, written so
    try:
        other = run(rehearsal, "apply", ROSTER, "--yes", "--results", "other.csv")
        same = run(production, "apply", ROSTER, "--yes", "--results", "same.csv")
    finally:
        holder.kill()
        finish(holder)
    assert other.exit_code == 0, other.output
    assert "another bulk-contacts run" not in other.output, other.output
    assert same.exit_code == 0, same.output
    assert (
        f"another bulk-contacts run writes to dealer 12345 at {production.url} (pid {holder.pid}"
        in same.output
    ), same.output
